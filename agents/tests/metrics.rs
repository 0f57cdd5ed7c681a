//! The metrics agent on a small in-memory production: whose behaviour a series measures
//! (the service, its node, its outbound calls), saturation, and when the trouble began.

use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::Duration;

use cairn_agents::domains::metrics::Metrics;
use cairn_agents::domains::{Agent, Context, ONSET_LEAD_MS};
use cairn_agents::{Evidence, Incident, Signal};
use cairn_connectors::{
    DataSource, Sample, Series, SeriesSelector, ServiceNode, SourceError, TimeWindow, Topology,
};

mod common;

use common::t0;

/// Minutes 0–59, the page at 38.
const PAGE_MIN: i64 = 38;

/// A gauge for `service`, one sample a minute from `from` to `to` (exclusive), `level(m)`.
fn gauge(metric: &str, service: &str, to: i64, level: impl Fn(i64) -> f64) -> Series {
    Series {
        metric: metric.into(),
        labels: [("service".to_string(), service.to_string())].into(),
        samples: (0..to)
            .map(|m| Sample {
                ts_ms: (t0() + Duration::minutes(m)).timestamp_millis(),
                value: level(m),
            })
            .collect(),
    }
}

/// Baseline noise around `base`, then `high` from minute `from` on.
fn step(base: f64, high: f64, from: i64) -> impl Fn(i64) -> f64 {
    move |m| {
        if m >= from {
            high * (1.0 + 0.01 * (m % 3) as f64)
        } else {
            base * (1.0 + 0.05 * ((m * 7) % 5) as f64)
        }
    }
}

struct Production(Vec<Series>);

#[async_trait]
impl DataSource for Production {
    fn name(&self) -> &str {
        "fake"
    }
    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        Ok(Some(topology(&self.0)))
    }
    async fn series(&self, query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        Ok(self
            .0
            .iter()
            .filter(|s| query.matches(&s.metric, &s.labels))
            .cloned()
            .collect())
    }
}

/// Every service the series name, none depending on another.
fn topology(series: &[Series]) -> Topology {
    let mut names: Vec<String> = series
        .iter()
        .filter_map(|s| s.labels.get("service").cloned())
        .collect();
    names.sort();
    names.dedup();
    Topology {
        services: names
            .into_iter()
            .map(|name| ServiceNode {
                name,
                kind: Some("service".into()),
                team: None,
                runtime: None,
                depends_on: vec![],
            })
            .collect(),
    }
}

/// What the metrics agent finds in `series`.
async fn survey(series: Vec<Series>) -> Vec<Evidence> {
    let source = Production(series);
    let incident = Incident {
        title: "page".into(),
        onset: t0() + Duration::minutes(PAGE_MIN),
        window: TimeWindow {
            start: t0(),
            end: t0() + Duration::minutes(59),
        },
        entry_service: None,
    };
    let cx = Context {
        incident: &incident,
        source: &source,
        topology: topology(&source.0),
        cut_ms: incident.onset.timestamp_millis() - ONSET_LEAD_MS,
        deadline: Instant::now() + StdDuration::from_secs(30),
    };
    Metrics.survey(&cx).await.unwrap()
}

/// `a < factor · b`, or a failure that shows both.
fn assert_below(a: &Evidence, factor: f64, b: &Evidence) {
    assert!(
        a.score < factor * b.score,
        "{} ({}) vs {} ({})",
        a.score,
        a.service,
        b.score,
        b.service
    );
}

fn strongest<'a>(found: &'a [Evidence], service: &str) -> &'a Evidence {
    found
        .iter()
        .filter(|e| e.service == service)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .unwrap_or_else(|| panic!("nothing on {service}: {found:#?}"))
}

#[tokio::test]
async fn a_utilisation_at_its_ceiling_is_saturation_and_a_small_rise_is_a_symptom() {
    let found = survey(vec![
        gauge("cpu_usage_rate_percent", "hog", 59, step(1.0, 99.0, 37)),
        gauge("cpu_usage_rate_percent", "busy", 59, step(1.0, 9.0, 37)),
    ])
    .await;
    let (hog, busy) = (strongest(&found, "hog"), strongest(&found, "busy"));
    assert_eq!(hog.signal, Signal::CpuSaturation);
    assert!(hog.reason.ends_with("(at its limit)"), "{}", hog.reason);
    assert!(!busy.reason.contains("limit"), "{}", busy.reason);
    assert!(
        hog.score > busy.score + 0.3,
        "{} vs {}",
        hog.score,
        busy.score
    );
}

#[tokio::test]
async fn node_and_outbound_series_count_less_for_the_service_than_its_own() {
    let found = survey(vec![
        gauge("server_latency_seconds", "own", 59, step(0.01, 0.5, 37)),
        gauge(
            "node_network_receive_bytes",
            "neighbour",
            59,
            step(1e5, 5e6, 37),
        ),
        gauge("client_latency_seconds", "caller", 59, step(0.01, 0.5, 37)),
    ])
    .await;
    let own = strongest(&found, "own");
    let node = strongest(&found, "neighbour");
    let caller = strongest(&found, "caller");
    assert!(node.reason.starts_with("on its node: "), "{}", node.reason);
    assert!(
        caller.reason.starts_with("its outbound calls: "),
        "{}",
        caller.reason
    );
    assert!(own.score > 0.9, "{}", own.score);
    assert_below(node, 0.5, own);
    assert_below(caller, 0.6, own);
}

#[tokio::test]
async fn trouble_that_began_well_after_the_page_counts_less() {
    let found = survey(vec![
        gauge("server_latency_seconds", "early", 59, step(0.01, 0.5, 37)),
        gauge(
            "server_latency_seconds",
            "late",
            59,
            step(0.01, 0.5, PAGE_MIN + 6),
        ),
    ])
    .await;
    let (early, late) = (strongest(&found, "early"), strongest(&found, "late"));
    assert_below(late, 0.5, early);
}

#[tokio::test]
async fn a_series_that_went_quiet_is_not_still_anomalous() {
    // Both rise at the onset; one stops reporting four minutes later (its pod served
    // nothing more), with its last samples still high.
    let found = survey(vec![
        gauge("server_latency_seconds", "lasting", 59, step(0.01, 0.5, 37)),
        gauge("server_latency_seconds", "quiet", 41, step(0.01, 0.5, 37)),
    ])
    .await;
    let (lasting, quiet) = (strongest(&found, "lasting"), strongest(&found, "quiet"));
    assert_below(quiet, 0.8, lasting);
}

#[tokio::test]
async fn a_failure_share_must_move_beyond_half_a_percent_to_count() {
    // A perfect baseline has no noise to measure: 100% → 98.5% would be infinitely many σ.
    let perfect = |low: f64| move |m: i64| if m >= 37 { low } else { 100.0 };
    let found = survey(vec![
        gauge("availability_percent", "dip", 59, perfect(98.5)),
        gauge("availability_percent", "outage", 59, perfect(90.0)),
    ])
    .await;
    assert!(!found.iter().any(|e| e.service == "dip"), "{:#?}", found);
    let outage = strongest(&found, "outage");
    assert_eq!(outage.signal, Signal::Errors);
    assert!(outage.score > 0.9, "{}", outage.score);
}

#[tokio::test]
async fn own_latency_that_collapsed_is_a_failure_but_a_dip_is_not() {
    // One service starts answering ten times faster than ever before (it returns early or
    // fails fast); one gets a little faster; one's outbound calls collapse (its
    // dependency's doing, not its own).
    let found = survey(vec![
        gauge(
            "server_latency_seconds",
            "broken",
            59,
            step(0.09, 0.009, 37),
        ),
        gauge(
            "server_latency_seconds",
            "quicker",
            59,
            step(0.09, 0.07, 37),
        ),
        gauge(
            "client_latency_seconds",
            "caller",
            59,
            step(0.09, 0.009, 37),
        ),
    ])
    .await;
    let broken = strongest(&found, "broken");
    assert_eq!(broken.signal, Signal::Errors);
    assert!(broken.reason.contains("collapsed"), "{}", broken.reason);
    assert!(broken.score >= 0.4, "{}", broken.score);
    assert_eq!(
        broken.onset_ms,
        Some((t0() + Duration::minutes(37)).timestamp_millis())
    );
    assert!(!found.iter().any(|e| e.service == "quicker"), "{found:#?}");
    assert!(!found.iter().any(|e| e.service == "caller"), "{found:#?}");
}
