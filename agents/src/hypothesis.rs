//! Hypotheses: a suspected root cause with the evidence for and against it.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use cairn_connectors::FaultKind;

use crate::evidence::Evidence;

/// A confidence in `[0, 1]`; constructed only through [`Confidence::new`], which clamps.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    /// Clamps `value` into `[0, 1]`; NaN becomes 0.
    pub fn new(value: f64) -> Self {
        Self(if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, 1.0)
        })
    }

    /// The value in `[0, 1]`.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0}%", self.0 * 100.0)
    }
}

/// Where a hypothesis stands with the engineers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HypothesisStatus {
    Open,
    Confirmed,
    Rejected,
}

/// A suspected root cause: a service, what may be wrong with it, and why we think so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hypothesis {
    pub service: String,
    /// The fault kind, when the evidence says which; `None` means "something is wrong here".
    pub kind: Option<FaultKind>,
    pub confidence: Confidence,
    /// Evidence for the hypothesis, strongest first.
    pub supporting: Vec<Evidence>,
    /// Evidence against it (e.g. a dependency in trouble first).
    pub contradicting: Vec<Evidence>,
    pub status: HypothesisStatus,
}

impl Hypothesis {
    /// The distinct domains its supporting evidence comes from.
    pub fn domains(&self) -> Vec<crate::evidence::Domain> {
        let mut d: Vec<_> = self.supporting.iter().map(|e| e.domain).collect();
        d.sort();
        d.dedup();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_clamps() {
        assert_eq!(Confidence::new(1.7).get(), 1.0);
        assert_eq!(Confidence::new(-0.2).get(), 0.0);
        assert_eq!(Confidence::new(f64::NAN).get(), 0.0);
        assert_eq!(Confidence::new(0.42).to_string(), "42%");
    }
}
