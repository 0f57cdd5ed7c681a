//! Series arithmetic shared by the agents: counters to rates, ratios of series, and the shift
//! of a series after the onset against its own robust baseline.

use std::collections::BTreeMap;

use cairn_connectors::{Sample, Series};

use crate::stats::Baseline;

/// Which way a signal moves when something is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Either,
}

/// The direction that means trouble for a metric, from its name.
pub fn trouble_direction(metric: &str) -> Direction {
    let m = metric.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&[
        "success",
        "availability",
        "hit_ratio",
        "hit_rate",
        "_up",
        "probe_success",
    ]) && !has(&["duration", "latency"])
    {
        Direction::Down
    } else if has(&[
        "latency", "duration", "seconds", "error", "cpu", "memory", "restart", "throttl", "wait",
        "lag", "retrans", "reset", "timeout", "fail", "oom", "disk", "usage", "pending", "dropped",
        "locks",
    ]) {
        Direction::Up
    } else {
        Direction::Either
    }
}

/// Whether a metric is a monotonic counter (its rate is what matters).
pub fn is_counter(metric: &str) -> bool {
    metric.ends_with("_total")
        || metric.ends_with("_count")
        || metric.ends_with("_sum")
        || metric.ends_with("_bucket")
}

/// Points of a derived signal: (epoch ms, value).
pub type Points = Vec<(i64, f64)>;

/// Per-second rate of a counter between consecutive samples; a reset (drop) starts over.
pub fn rate(samples: &[Sample]) -> Points {
    samples
        .windows(2)
        .filter_map(|w| {
            let dt = (w[1].ts_ms - w[0].ts_ms) as f64 / 1000.0;
            let dv = w[1].value - w[0].value;
            (dt > 0.0 && dv >= 0.0).then_some((w[1].ts_ms, dv / dt))
        })
        .collect()
}

/// The raw samples as points.
pub fn points(samples: &[Sample]) -> Points {
    samples.iter().map(|s| (s.ts_ms, s.value)).collect()
}

/// The signal a series carries: its rate for counters, its values otherwise.
pub fn signal_of(series: &Series) -> Points {
    if is_counter(&series.metric) {
        rate(&series.samples)
    } else {
        points(&series.samples)
    }
}

/// Sums point series that share timestamps (e.g. one counter over several pods).
pub fn sum(parts: &[Points]) -> Points {
    let mut total: BTreeMap<i64, f64> = BTreeMap::new();
    for part in parts {
        for &(t, v) in part {
            *total.entry(t).or_default() += v;
        }
    }
    total.into_iter().collect()
}

/// `num / den` where both have a point; points where `den` is ~0 are left out.
pub fn ratio(num: &Points, den: &Points) -> Points {
    let den: BTreeMap<i64, f64> = den.iter().copied().collect();
    num.iter()
        .filter_map(|&(t, n)| den.get(&t).filter(|d| **d > 1e-9).map(|d| (t, n / d)))
        .collect()
}

/// How a signal moved after the cut, against the baseline before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub baseline: f64,
    /// Typical value after the cut (median).
    pub after: f64,
    /// The most extreme value after the cut in the trouble direction.
    pub peak: f64,
    /// Robust z of the peak (in baseline noise units), signed towards trouble.
    pub z: f64,
    /// Robust z of the after-median: a sustained shift, not a spike.
    pub sustained_z: f64,
    /// When the signal first left its baseline (epoch ms).
    pub onset_ms: Option<i64>,
    /// How long (ms) the signal stayed beyond 3σ after the cut.
    pub anomalous_ms: i64,
    /// Whether it is still beyond 3σ at the end of the data.
    pub ongoing: bool,
}

impl Shift {
    /// `[0, 1]`: 1 for a shift that lasts (or has not ended), less for a blip that came and went.
    pub fn persistence(&self) -> f64 {
        if self.ongoing {
            1.0
        } else {
            (self.anomalous_ms as f64 / (8.0 * 60_000.0)).min(1.0)
        }
    }
}

/// Compares the points after `cut_ms` with those before; `None` without enough of either.
pub fn shift(points: &Points, cut_ms: i64, direction: Direction) -> Option<Shift> {
    shift_floored(points, cut_ms, direction, 0.0)
}

/// [`shift`], with the baseline's noise taken to be at least `sigma_floor` (for series whose
/// scale says how small a move means nothing, such as a share of failures).
pub fn shift_floored(
    points: &Points,
    cut_ms: i64,
    direction: Direction,
    sigma_floor: f64,
) -> Option<Shift> {
    let before: Vec<f64> = points
        .iter()
        .filter(|p| p.0 < cut_ms)
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    let after: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= cut_ms && p.1.is_finite())
        .collect();
    if before.len() < 2 || after.is_empty() {
        return None;
    }
    let mut base = Baseline::of(&before)?;
    base.sigma = base.sigma.max(sigma_floor);
    let signed = |v: f64| match direction {
        Direction::Up => (v - base.median) / base.sigma,
        Direction::Down => (base.median - v) / base.sigma,
        Direction::Either => (v - base.median).abs() / base.sigma,
    };
    let (_, peak) = after
        .iter()
        .copied()
        .max_by(|a, b| signed(a.1).total_cmp(&signed(b.1)))?;
    let mut values: Vec<f64> = after.iter().map(|p| p.1).collect();
    let after_median = crate::stats::median(&mut values)?;
    // Onset: the first of two consecutive points beyond 4σ (one point is noise).
    let recent: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= cut_ms - 10 * 60_000)
        .collect();
    let onset_ms = recent
        .iter()
        .enumerate()
        .find(|(i, p)| signed(p.1) > 4.0 && recent.get(i + 1).is_none_or(|n| signed(n.1) > 4.0))
        .map(|(_, p)| p.0);
    let step = if after.len() >= 2 {
        (after[after.len() - 1].0 - after[0].0) / (after.len() as i64 - 1)
    } else {
        60_000
    };
    let anomalous_ms = after.iter().filter(|p| signed(p.1) > 3.0).count() as i64 * step.max(1);
    // Still in trouble at the end: beyond 3σ, and beyond what the baseline itself reached
    // one sample in twenty. A series that steps between a few values (a quantile read off
    // histogram buckets) has a small noise around its usual value; its next step up, which
    // the baseline often took, is back to normal, not a lasting anomaly.
    let mut ordinary: Vec<f64> = before.iter().map(|v| signed(*v)).collect();
    ordinary.sort_by(f64::total_cmp);
    let usual = crate::stats::quantile_of_sorted(&ordinary, 0.95);
    let tail = after.len().min(2);
    let ongoing = after[after.len() - tail..]
        .iter()
        .all(|p| signed(p.1) > 3.0_f64.max(usual));
    Some(Shift {
        baseline: base.median,
        after: after_median,
        peak,
        z: signed(peak),
        sustained_z: signed(after_median),
        onset_ms,
        anomalous_ms,
        ongoing,
    })
}

/// Strength in `[0, 1]` of a robust z: 3σ is weak, 10σ strong.
pub fn strength(z: f64) -> f64 {
    if z <= 2.0 {
        0.0
    } else {
        1.0 - (-(z - 2.0) / 6.0).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Points {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 60_000, *v))
            .collect()
    }

    #[test]
    fn a_lasting_step_is_a_shift_with_its_onset() {
        let mut v = vec![
            100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 103.0, 97.0, 100.0, 101.0,
        ];
        v.extend([400.0, 420.0, 410.0, 405.0, 415.0]);
        let s = shift(&series(&v), 10 * 60_000, Direction::Up).unwrap();
        assert!(s.z > 20.0 && s.sustained_z > 20.0, "{s:?}");
        assert_eq!(s.onset_ms, Some(10 * 60_000));
        assert!(s.ongoing && s.persistence() == 1.0);
    }

    #[test]
    fn a_blip_that_passed_has_low_persistence() {
        let mut v = vec![100.0; 20];
        v.extend([
            400.0, 100.0, 101.0, 99.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0,
        ]);
        let s = shift(&series(&v), 20 * 60_000, Direction::Up).unwrap();
        assert!(!s.ongoing && s.persistence() < 0.2, "{s:?}");
    }

    #[test]
    fn ending_on_a_value_the_baseline_often_had_is_not_ongoing() {
        // A p99 read off histogram buckets: mostly 10 ms, one sample in five at the next
        // bucket (25 ms). A burst to the 100 ms bucket, then back to 25 ms.
        let baseline: Vec<f64> = (0..30)
            .map(|i| match i % 5 {
                0 => 24.4,
                1 => 9.82,
                2 => 9.93,
                _ => 9.95,
            })
            .collect();
        let mut v = baseline.clone();
        v.extend([9.9, 24.0, 89.0, 97.5, 24.3]);
        let s = shift(&series(&v), 30 * 60_000, Direction::Up).unwrap();
        assert!(s.z > 10.0, "the burst itself is far out: {s:?}");
        assert!(!s.ongoing && s.persistence() <= 0.5, "{s:?}");
        // Settling on a level the baseline never had is still trouble.
        let mut v = baseline;
        v.extend([9.9, 24.0, 89.0, 97.5, 60.0]);
        let s = shift(&series(&v), 30 * 60_000, Direction::Up).unwrap();
        assert!(s.ongoing, "{s:?}");
    }

    #[test]
    fn counters_become_rates_and_ratios_align() {
        let samples: Vec<Sample> = [0.0, 60.0, 120.0, 0.0, 60.0]
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                ts_ms: i as i64 * 60_000,
                value: *v,
            })
            .collect();
        let r = rate(&samples);
        assert_eq!(
            r,
            vec![(60_000, 1.0), (120_000, 1.0), (240_000, 1.0)],
            "a reset is skipped"
        );
        assert_eq!(ratio(&r, &vec![(60_000, 2.0)]), vec![(60_000, 0.5)]);
    }
}
