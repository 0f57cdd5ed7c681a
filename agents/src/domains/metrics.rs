//! Metrics: golden signals per service — errors, latency, traffic — and every other series
//! that left its robust pre-onset baseline.

use std::collections::BTreeMap;

use async_trait::async_trait;

use cairn_connectors::{Series, SeriesSelector, SourceError};

use super::{num, Agent, Context, SHARE_NOISE};
use crate::evidence::{Domain, Evidence, Signal};
use crate::signals::{is_counter, ratio, signal_of, sum, trouble_direction, Direction, Points};

/// Families other specialists read with their meaning (pools, databases, probes…).
const OTHERS: [&str; 14] = [
    "hikaricp_",
    "pg_",
    "redis_",
    "kafka_",
    "probe_",
    "kubelet_volume",
    "container_network_receive_packets_dropped",
    "kube_pod_container_status_restarts",
    "container_cpu_cfs_throttled",
    "container_spec_",
    "http_client_requests",
    "jvm_gc",
    "go_gc",
    "container_memory",
];
/// Weakest shift (robust z) worth recording.
const MIN_Z: f64 = 4.0;

pub struct Metrics;

/// The labels that identify a series apart from where it runs (pods come and go).
fn identity(series: &Series) -> String {
    series
        .labels
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "pod" | "node" | "instance" | "le" | "code" | "status" | "status_code"
            )
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn signal_for(metric: &str) -> Signal {
    let m = metric.to_ascii_lowercase();
    if m.contains("latency") || m.contains("duration") || m.contains("requests_seconds") {
        Signal::Latency
    } else if m.contains("error")
        || m.contains("fail")
        || m.contains("success")
        || m.contains("availability")
    {
        Signal::Errors
    } else if m.contains("cpu") {
        Signal::CpuSaturation
    } else if m.contains("memory") {
        Signal::MemoryGrowth
    } else {
        Signal::Anomaly
    }
}

#[async_trait]
impl Agent for Metrics {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let services: Vec<Option<String>> = if cx.topology.services.is_empty() {
            vec![None]
        } else {
            cx.topology
                .services
                .iter()
                .map(|s| Some(s.name.clone()))
                .collect()
        };
        let mut found: BTreeMap<(String, Signal), Evidence> = BTreeMap::new();
        for service in services {
            let selector = SeriesSelector {
                service: service.clone(),
                ..SeriesSelector::all(cx.window())
            };
            let series = cx.source.series(&selector).await?;
            let mut by_service: BTreeMap<String, Vec<Series>> = BTreeMap::new();
            for s in series {
                if let Some(name) = s.service() {
                    if !OTHERS.iter().any(|p| s.metric.starts_with(p)) {
                        by_service.entry(name.to_owned()).or_default().push(s);
                    }
                }
            }
            for (name, series) in by_service {
                for evidence in examine_service(cx, &name, &series) {
                    let key = (evidence.service.clone(), evidence.signal);
                    if found.get(&key).is_none_or(|e| e.score < evidence.score) {
                        found.insert(key, evidence);
                    }
                }
            }
        }
        Ok(found.into_values().collect())
    }
}

/// Every anomaly among one service's series.
fn examine_service(cx: &Context<'_>, service: &str, series: &[Series]) -> Vec<Evidence> {
    let mut out = Vec::new();
    // Counters with a status code: the error ratio, and the traffic.
    let mut by_family: BTreeMap<(String, String), Vec<&Series>> = BTreeMap::new();
    for s in series {
        by_family
            .entry((s.metric.clone(), identity(s)))
            .or_default()
            .push(s);
    }
    let mut paired = std::collections::BTreeSet::new();
    for ((metric, id), group) in &by_family {
        let code_of = |s: &Series| {
            s.labels
                .get("code")
                .or_else(|| s.labels.get("status"))
                .or_else(|| s.labels.get("status_code"))
                .cloned()
        };
        if is_counter(metric) && group.iter().any(|s| code_of(s).is_some()) {
            let all: Vec<Points> = group.iter().map(|s| signal_of(s)).collect();
            let bad: Vec<Points> = group
                .iter()
                .filter(|s| code_of(s).is_some_and(|c| c.starts_with('5')))
                .map(|s| signal_of(s))
                .collect();
            let total = sum(&all);
            let errors = ratio(&sum(&bad), &total);
            let query = format!("sum(rate({metric}{{service=\"{service}\",code=~\"5..\"}})) / sum(rate({metric}{{service=\"{service}\"}}))");
            out.extend(cx.shifted_floored(
                Domain::Metrics,
                Signal::Errors,
                service,
                query,
                &errors,
                Direction::Up,
                MIN_Z,
                SHARE_NOISE,
                |b, p| {
                    format!(
                        "error ratio {:.1}% → {:.1}% (5xx share of {metric})",
                        b * 100.0,
                        p * 100.0
                    )
                },
            ));
            let query = format!("sum(rate({metric}{{service=\"{service}\"}}))");
            out.extend(load(cx, service, query, &total));
            paired.insert((metric.clone(), id.clone()));
            continue;
        }
        // `_sum` / `_count` pairs: the mean.
        if let Some(stem) = metric.strip_suffix("_sum") {
            let count = format!("{stem}_count");
            if let Some(counts) = by_family.get(&(count.clone(), id.clone())) {
                let sums: Vec<Points> = group.iter().map(|s| signal_of(s)).collect();
                let n: Vec<Points> = counts.iter().map(|s| signal_of(s)).collect();
                let mean: Points = ratio(&sum(&sums), &sum(&n))
                    .into_iter()
                    .map(|(t, v)| (t, v * 1000.0))
                    .collect();
                let query =
                    format!("rate({stem}_sum{{service=\"{service}\"}}) / rate({stem}_count)");
                out.extend(collapse(cx, service, &query, stem, &mean));
                out.extend(cx.shifted(
                    Domain::Metrics,
                    signal_for(stem),
                    service,
                    query,
                    &mean,
                    Direction::Up,
                    MIN_Z,
                    |b, p| format!("mean {stem} {} ms → {} ms", num(b), num(p)),
                ));
                paired.insert((metric.clone(), id.clone()));
                paired.insert((count, id.clone()));
            }
        }
    }
    for s in series {
        if s.metric.ends_with("_bucket") || paired.contains(&(s.metric.clone(), identity(s))) {
            continue;
        }
        let mut points = signal_of(s);
        let mut direction = trouble_direction(&s.metric);
        // The ceiling of a failure share, when the series is read as one.
        let mut share = None;
        let signal = signal_for(&s.metric);
        // A success share near its ceiling moves little in relative terms: 99.9% → 95% is a
        // fifty-fold rise in failures. Such a series is read as its complement, the failure
        // share, which rises.
        let name = s.metric.to_ascii_lowercase();
        if direction == Direction::Down
            && (name.contains("availability") || name.contains("success"))
        {
            let max = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
            if max <= 100.0 && points.iter().all(|p| p.1 >= 0.0) {
                let ceiling = if max > 1.0 { 100.0 } else { 1.0 };
                points = points.into_iter().map(|(t, v)| (t, ceiling - v)).collect();
                direction = Direction::Up;
                share = Some(ceiling);
            }
        }
        let query = if is_counter(&s.metric) {
            format!("rate({}{{{}}})", s.metric, identity(s))
        } else {
            format!("{}{{{}}}", s.metric, identity(s))
        };
        out.extend(collapse(cx, service, &query, &s.metric, &points));
        let metric = s.metric.clone();
        let describe = |b: f64, p: f64| format!("{metric} {} → {}", num(b), num(p));
        let evidence = cx.shifted_floored(
            Domain::Metrics,
            signal,
            service,
            query,
            &points,
            direction,
            MIN_Z,
            share.map_or(0.0, |ceiling| SHARE_NOISE * ceiling),
            describe,
        );
        // Traffic counters and gauges that rise a lot are load, not a fault in this service.
        if let Some(mut e) = evidence {
            if signal == Signal::Anomaly
                && (s.metric.contains("request")
                    || s.metric.contains("ops")
                    || s.metric.contains("workload"))
            {
                e.signal = Signal::Load;
                if e.observed < 1.8 * e.baseline.max(1e-9) {
                    continue;
                }
            }
            // Cpu and memory that moved but stayed low are symptoms, not saturation; a
            // utilisation that reached its ceiling from well below is the resource running out.
            if matches!(signal, Signal::CpuSaturation | Signal::MemoryGrowth) {
                if at_ceiling(&s.metric, e.baseline, e.observed) {
                    e.reason.push_str(" (at its limit)");
                } else {
                    e.score *= 0.6;
                }
            }
            match scope(&s.metric) {
                Scope::Own => {}
                // Every pod on the node carries the same series: it cannot single one out.
                Scope::Node => {
                    e.score *= NODE_WEIGHT;
                    e.reason = format!("on its node: {}", e.reason);
                }
                // The time a service waits on the calls it makes is its dependencies' trouble
                // first; it counts for the service itself only in part.
                Scope::Outbound => {
                    e.score *= OUTBOUND_WEIGHT;
                    e.reason = format!("its outbound calls: {}", e.reason);
                }
            }
            out.push(e);
        }
    }
    out
}

/// How far below everything in its baseline a service's own latency must fall to count as
/// a collapse: under half its baseline's fastest, and under this share of its typical.
const COLLAPSE_SHARE: f64 = 0.3;
/// Baseline points needed to know how fast a service ever answers.
const COLLAPSE_BASELINE: usize = 5;

/// A service's own latency that fell far below anything its baseline shows, and stayed
/// there: it stopped doing its usual work — it returns early, fails fast or sheds requests.
/// Callers see that as failures, so it is evidence of errors, not of health. (A latency
/// that merely dips is noise; this needs the typical value after the cut to sit under half
/// the baseline's fastest sample.) `None` for any other series, a client's latency included.
fn collapse(
    cx: &Context<'_>,
    service: &str,
    query: &str,
    metric: &str,
    points: &Points,
) -> Option<Evidence> {
    if signal_for(metric) != Signal::Latency || scope(metric) != Scope::Own {
        return None;
    }
    let before: Vec<f64> = points
        .iter()
        .filter(|p| p.0 < cx.cut_ms && p.1.is_finite())
        .map(|p| p.1)
        .collect();
    let after: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= cx.cut_ms && p.1.is_finite())
        .collect();
    if before.len() < COLLAPSE_BASELINE || after.len() < 2 {
        return None;
    }
    let fastest = before.iter().copied().fold(f64::INFINITY, f64::min);
    let typical = crate::stats::median(&mut before.clone())?;
    let now = crate::stats::median(&mut after.iter().map(|p| p.1).collect::<Vec<_>>())?;
    if typical <= 0.0 || now > 0.5 * fastest || now > COLLAPSE_SHARE * typical {
        return None;
    }
    let onset_ms = after.iter().find(|p| p.1 <= 0.5 * fastest).map(|p| p.0);
    let score = COLLAPSE_WEIGHT * (1.0 - now / typical) * cx.lateness(Signal::Errors, onset_ms);
    Some(Evidence {
        observed: now,
        baseline: typical,
        onset_ms,
        trend: super::trend(points, cx.cut_ms),
        ..Evidence::new(
            Domain::Metrics,
            Signal::Errors,
            service,
            cx.source.name(),
            query.to_owned(),
            cx.after_cut(),
            score,
            format!(
                "its own latency collapsed: {metric} {} → {} (faster than anything before): it stopped doing its usual work (returns early or fails fast)",
                num(typical),
                num(now)
            ),
        )
    })
}

/// What a collapse of a service's own latency counts at most: inferred, not seen failing.
const COLLAPSE_WEIGHT: f64 = 0.6;

/// How much a node-level series (shared by every pod on the node) counts for one service.
const NODE_WEIGHT: f64 = 0.4;
/// How much the latency or errors of a service's own outbound calls count for it.
const OUTBOUND_WEIGHT: f64 = 0.5;

/// Whose behaviour a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The service itself.
    Own,
    /// The machine it runs on (`node_*`, the node exporter's convention).
    Node,
    /// The calls it makes to others (client-side latency and errors).
    Outbound,
}

fn scope(metric: &str) -> Scope {
    let m = metric.to_ascii_lowercase();
    if m.starts_with("node_") {
        Scope::Node
    } else if m.contains("client") || m.contains("outbound") || m.contains("upstream") {
        Scope::Outbound
    } else {
        Scope::Own
    }
}

/// Whether a utilisation share (percent or ratio, by its name) went from well below its
/// ceiling to at it: saturation, whatever the noise of the baseline.
fn at_ceiling(metric: &str, baseline: f64, peak: f64) -> bool {
    let m = metric.to_ascii_lowercase();
    let ceiling = if m.contains("percent") {
        100.0
    } else if m.contains("ratio") || m.contains("utili") {
        1.0
    } else {
        return false;
    };
    peak >= 0.9 * ceiling && peak <= 1.05 * ceiling && baseline <= 0.6 * ceiling
}

/// Traffic far above its baseline: evidence of load, with the multiplier.
fn load(cx: &Context<'_>, service: &str, query: String, total: &Points) -> Option<Evidence> {
    let mut e = cx.shifted(
        Domain::Metrics,
        Signal::Load,
        service,
        query,
        total,
        Direction::Up,
        MIN_Z,
        |b, p| {
            format!(
                "traffic {} → {} req/s (×{:.1})",
                num(b),
                num(p),
                p / b.max(1e-9)
            )
        },
    )?;
    let multiplier = e.observed / e.baseline.max(1e-9);
    if multiplier < 1.8 {
        return None;
    }
    e.score = e.score.min(((multiplier - 1.0) / 3.0).min(1.0));
    Some(e)
}
