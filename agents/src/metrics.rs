//! The metrics specialist: which services' signals left their baseline after the onset.
//!
//! For every series, the samples before the onset form a robust baseline (median and MAD);
//! the series scores its largest deviation after the onset, in units of baseline noise,
//! counting only the direction that means trouble for that signal (latency up, success
//! down). A service scores its strongest series.

use chrono::Duration;

use cairn_connectors::{Sample, Series, TimeWindow};

use crate::evidence::{Domain, Evidence};
use crate::incident::Incident;
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
    if has(&["success", "availability", "hit_ratio", "hit_rate", "up"]) && !has(&["duration", "latency"]) {
        Direction::Down
    } else if has(&[
        "latency", "duration", "seconds", "error", "cpu", "memory", "restart", "throttl", "wait",
        "lag", "retrans", "reset", "timeout", "fail", "oom", "disk", "usage",
    ]) {
        Direction::Up
    } else {
        Direction::Either
    }
}

/// How far before the page a fault's first effects may already show: faults are injected,
/// or start, a little before a rule fires.
const ONSET_LEAD: Duration = Duration::minutes(2);
/// Fewest baseline samples that make a baseline.
const MIN_BASELINE_SAMPLES: usize = 2;

/// The anomaly of one series after the onset.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesAnomaly {
    pub score: f64,
    pub observed: f64,
    pub baseline: f64,
    pub at_ms: i64,
}

/// Scores one series against its pre-onset baseline; `None` without enough data.
pub fn score_series(samples: &[Sample], metric: &str, incident: &Incident) -> Option<SeriesAnomaly> {
    let cut = (incident.onset - ONSET_LEAD).timestamp_millis();
    let before: Vec<f64> = samples.iter().filter(|s| s.ts_ms < cut).map(|s| s.value).collect();
    if before.len() < MIN_BASELINE_SAMPLES {
        return None;
    }
    let baseline = Baseline::of(&before)?;
    // A series that never varied before the onset gives no scale for its noise: any
    // change would look infinitely strange. It says nothing here (counters that start
    // from zero are read by the domain agents that know what they count).
    if baseline.mad == 0.0 {
        return None;
    }
    let direction = trouble_direction(metric);
    samples
        .iter()
        .filter(|s| s.ts_ms >= cut && s.value.is_finite())
        .map(|s| {
            let z = baseline.z(s.value);
            let score = match direction {
                Direction::Up => z,
                Direction::Down => -z,
                Direction::Either => z.abs(),
            };
            SeriesAnomaly { score, observed: s.value, baseline: baseline.median, at_ms: s.ts_ms }
        })
        .max_by(|a, b| a.score.total_cmp(&b.score))
}

/// Turns the strongest anomaly of a series into evidence.
pub fn evidence_for(series: &Series, anomaly: &SeriesAnomaly, window: TimeWindow, source: &str) -> Evidence {
    let labels = series
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    Evidence {
        domain: Domain::Metrics,
        source: source.to_owned(),
        query: format!("{}{{{labels}}}", series.metric),
        window,
        observed: anomaly.observed,
        baseline: anomaly.baseline,
        score: anomaly.score,
        reason: format!(
            "{} {} to {} from a baseline of {} ({:.1}σ)",
            series.metric,
            if anomaly.observed < anomaly.baseline { "fell" } else { "rose" },
            short(anomaly.observed),
            short(anomaly.baseline),
            anomaly.score
        ),
    }
}

/// A number with about three significant digits.
pub fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn incident_at(onset_s: i64) -> Incident {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        Incident {
            title: "t".into(),
            onset: t(onset_s),
            window: TimeWindow::new(t(0), t(10_000)).unwrap(),
            entry_service: None,
        }
    }

    fn samples(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample { ts_ms: i as i64 * 60_000, value: *v })
            .collect()
    }

    #[test]
    fn latency_jump_after_onset_scores_high() {
        let s = samples(&[1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.0, 5.0, 6.0]);
        let a = score_series(&s, "latency_p99_seconds", &incident_at(8 * 60)).unwrap();
        assert!(a.score > 10.0, "{a:?}");
        assert_eq!(a.observed, 6.0);
    }

    #[test]
    fn success_rate_rising_is_not_trouble() {
        let s = samples(&[90.0, 91.0, 90.0, 89.0, 90.0, 91.0, 89.0, 90.0, 99.0, 99.0]);
        let a = score_series(&s, "success_rate_percent", &incident_at(8 * 60)).unwrap();
        assert!(a.score < 1.0, "a rise of success is not trouble: {a:?}");
    }

    #[test]
    fn too_little_history_gives_nothing() {
        let s = samples(&[1.0, 9.0, 9.0]);
        assert!(score_series(&s, "latency", &incident_at(60)).is_none());
    }

    #[test]
    fn flat_baseline_gives_no_noise_scale() {
        let s = samples(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0]);
        assert!(score_series(&s, "errors_total", &incident_at(8 * 60)).is_none());
    }

    #[test]
    fn directions() {
        assert_eq!(trouble_direction("availability_percent"), Direction::Down);
        assert_eq!(trouble_direction("pod_server_latency_p99_seconds"), Direction::Up);
        assert_eq!(trouble_direction("requests_sum"), Direction::Either);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.123456), "0.123");
        assert_eq!(short(1234.5), "1234");
        assert_eq!(short(12.345), "12.3");
    }
}
