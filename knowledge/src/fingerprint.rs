//! Symptom fingerprints: what was anomalous in an incident (which services, which signals,
//! which log templates), so incidents can be compared with each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an investigation found anomalous, as weighted features.
///
/// A feature is a short key such as `checkout|errors`, `cart-cache|cache_misses` or
/// `tmpl:connection refused to <*>`; its weight (0–1) is how strongly it showed. The
/// agents build it; the store keeps it with the investigation; precedent search compares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint {
    pub features: BTreeMap<String, f64>,
}

impl Fingerprint {
    /// Adds `feature`, keeping the larger weight when it is already there.
    pub fn add(&mut self, feature: impl Into<String>, weight: f64) {
        let weight = if weight.is_finite() {
            weight.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let slot = self.features.entry(feature.into()).or_insert(0.0);
        *slot = slot.max(weight);
    }

    /// True when nothing was anomalous.
    pub fn is_empty(&self) -> bool {
        self.features.values().all(|w| *w <= 0.0)
    }

    /// Weighted Jaccard similarity in `[0, 1]`: the sum of the smaller weights over the sum
    /// of the larger, feature by feature. 0 when either side is empty.
    pub fn similarity(&self, other: &Fingerprint) -> f64 {
        let mut min_sum = 0.0;
        let mut max_sum = 0.0;
        for (key, a) in &self.features {
            let b = other.features.get(key).copied().unwrap_or(0.0);
            min_sum += a.min(b);
            max_sum += a.max(b);
        }
        for (key, b) in &other.features {
            if !self.features.contains_key(key) {
                max_sum += b;
            }
        }
        if max_sum <= 0.0 {
            0.0
        } else {
            min_sum / max_sum
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Fingerprint;

    fn fp(items: &[(&str, f64)]) -> Fingerprint {
        let mut f = Fingerprint::default();
        for (k, w) in items {
            f.add(*k, *w);
        }
        f
    }

    #[test]
    fn identical_is_one_disjoint_is_zero_empty_is_zero() {
        let a = fp(&[("a|errors", 0.8), ("b|latency", 0.5)]);
        assert!((a.similarity(&a) - 1.0).abs() < 1e-9);
        assert_eq!(a.similarity(&fp(&[("c|errors", 0.9)])), 0.0);
        assert_eq!(a.similarity(&Fingerprint::default()), 0.0);
        assert_eq!(
            Fingerprint::default().similarity(&Fingerprint::default()),
            0.0
        );
    }

    #[test]
    fn similarity_is_symmetric_and_graded() {
        let a = fp(&[("a|errors", 0.8), ("b|latency", 0.5)]);
        let b = fp(&[("a|errors", 0.4), ("c|latency", 0.5)]);
        let s = a.similarity(&b);
        assert!((s - b.similarity(&a)).abs() < 1e-12);
        // min sum 0.4 over max sum 0.8 + 0.5 + 0.5.
        assert!((s - 0.4 / 1.8).abs() < 1e-9, "{s}");
    }

    #[test]
    fn weights_are_clamped_and_the_larger_kept() {
        let mut f = Fingerprint::default();
        f.add("x", 3.0);
        f.add("x", 0.2);
        f.add("y", f64::NAN);
        assert_eq!(f.features["x"], 1.0);
        assert_eq!(f.features["y"], 0.0);
    }
}
