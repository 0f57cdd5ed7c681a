//! Infrastructure: restarts, OOM kills, node failures, CPU throttling, memory and volumes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::Duration;

use cairn_connectors::{EventQuery, SourceError, TimeWindow};

use super::{num, Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};
use crate::signals::{points, ratio, signal_of, sum, Direction, Points};

pub struct Infrastructure;

fn evidence(
    cx: &Context<'_>,
    service: &str,
    signal: Signal,
    score: f64,
    onset_ms: Option<i64>,
    query: String,
    reason: String,
) -> Evidence {
    Evidence {
        onset_ms,
        ..Evidence::new(
            Domain::Infrastructure,
            signal,
            service,
            cx.source.name(),
            query,
            TimeWindow {
                start: cx.cut(),
                end: cx.window().end,
            },
            score,
            reason,
        )
    }
}

/// Per-service series of `metric`, summed over pods when `add`, else each pod kept apart.
async fn per_service(
    cx: &Context<'_>,
    metric: &str,
) -> Result<BTreeMap<String, Vec<cairn_connectors::Series>>, SourceError> {
    let mut out: BTreeMap<String, Vec<cairn_connectors::Series>> = BTreeMap::new();
    for s in cx.metric(metric).await? {
        if let Some(service) = s.service() {
            out.entry(service.to_owned()).or_default().push(s);
        }
    }
    Ok(out)
}

#[async_trait]
impl Agent for Infrastructure {
    fn name(&self) -> &'static str {
        "infrastructure"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let mut out = Vec::new();
        let from = (cx.cut() - Duration::minutes(10)).max(cx.window().start);
        let events = cx
            .source
            .events(&EventQuery {
                window: TimeWindow {
                    start: from,
                    end: cx.window().end,
                },
                service: None,
            })
            .await?;
        let mut oom: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        let mut node_down: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut nodes = Vec::new();
        for e in &events {
            let service = e.service.clone().unwrap_or_default();
            match e.reason.as_str() {
                "OOMKilled" | "OOMKilling" if !service.is_empty() => {
                    let entry = oom.entry(service).or_insert((0, e.ts.timestamp_millis()));
                    entry.0 += 1;
                }
                "NodeNotReady" if e.object.starts_with("node/") => nodes.push(e.object.clone()),
                "NodeNotReady" | "TaintManagerEviction" | "Evicted" if !service.is_empty() => {
                    node_down
                        .entry(service)
                        .or_insert((e.object.clone(), e.ts.timestamp_millis()));
                }
                _ => {}
            }
        }
        for (service, (count, first)) in oom {
            out.push(evidence(
                cx,
                &service,
                Signal::OomKill,
                (0.7 + 0.1 * count as f64).min(0.95),
                Some(first),
                format!("events reason=OOMKilled service={service}"),
                format!(
                    "{count} container(s) OOMKilled, first at {}",
                    chrono::DateTime::from_timestamp_millis(first)
                        .map(|t| t.format("%H:%M:%S").to_string())
                        .unwrap_or_default()
                ),
            ));
        }
        for (service, (pod, at)) in node_down {
            let node = nodes
                .first()
                .cloned()
                .unwrap_or_else(|| "a node".to_owned());
            out.push(evidence(
                cx,
                &service,
                Signal::NodeFailure,
                0.85,
                Some(at),
                format!("events reason=NodeNotReady service={service}"),
                format!("{pod} lost with {node} (NodeNotReady), rescheduled"),
            ));
        }

        // Memory against its limit, per pod.
        let memory = per_service(cx, "container_memory_working_set_bytes").await?;
        let limits = per_service(cx, "container_spec_memory_limit_bytes").await?;
        for (service, series) in &memory {
            let limit = limits
                .get(service)
                .and_then(|l| l.first())
                .and_then(|s| s.samples.last())
                .map(|s| s.value);
            for s in series {
                let used = points(&s.samples);
                if let Some(limit) = limit.filter(|l| *l > 0.0) {
                    let share: Points = used.iter().map(|&(t, v)| (t, v / limit)).collect();
                    let before = share
                        .iter()
                        .filter(|p| p.0 < cx.cut_ms)
                        .map(|p| p.1)
                        .fold(0.0, f64::max);
                    let after = share
                        .iter()
                        .filter(|p| p.0 >= cx.cut_ms)
                        .map(|p| p.1)
                        .fold(0.0, f64::max);
                    let query = format!("container_memory_working_set_bytes{{service=\"{service}\"}} / container_spec_memory_limit_bytes");
                    if after > 0.85 && after > before + 0.15 {
                        out.push(evidence(
                            cx,
                            service,
                            Signal::MemoryGrowth,
                            0.6 + 0.3 * ((after - 0.85) / 0.15).min(1.0),
                            None,
                            query,
                            format!(
                                "memory climbed to {:.0}% of its limit (was at most {:.0}% before)",
                                after * 100.0,
                                before * 100.0
                            ),
                        ));
                        break;
                    }
                    // A leak caught early: a steady climb well above anything before, still
                    // rising at the end of the data.
                    let recent: Vec<f64> = share
                        .iter()
                        .filter(|p| p.0 >= cx.cut_ms - 5 * 60_000)
                        .map(|p| p.1)
                        .collect();
                    let rising = recent.windows(2).filter(|w| w[1] >= w[0]).count() * 10
                        >= recent.len().saturating_sub(1) * 8;
                    let last = recent.last().copied().unwrap_or(0.0);
                    if recent.len() >= 4 && rising && last > before + 0.1 && last >= after - 0.02 {
                        let score = 0.45 + 0.4 * ((last - before) / 0.4).min(1.0);
                        out.push(evidence(cx, service, Signal::MemoryGrowth, score, None, query, format!("memory rising steadily: {:.0}% of its limit, above anything before ({:.0}%)", last * 100.0, before * 100.0)));
                        break;
                    }
                }
            }
        }
        // Restarts.
        for (service, series) in per_service(cx, "kube_pod_container_status_restarts_total").await?
        {
            let grew: f64 = series
                .iter()
                .map(|s| {
                    let after: Vec<f64> = s
                        .samples
                        .iter()
                        .filter(|p| p.ts_ms >= cx.cut_ms)
                        .map(|p| p.value)
                        .collect();
                    let before = s
                        .samples
                        .iter()
                        .filter(|p| p.ts_ms < cx.cut_ms)
                        .map(|p| p.value)
                        .next_back()
                        .unwrap_or(0.0);
                    after.last().map_or(0.0, |last| last - before)
                })
                .sum();
            if grew >= 1.0 {
                out.push(evidence(cx, &service, Signal::Restart, 0.5, None, format!("increase(kube_pod_container_status_restarts_total{{service=\"{service}\"}})"), format!("{grew:.0} container restart(s) since the onset")));
            }
        }
        // CPU throttling.
        for (service, series) in
            per_service(cx, "container_cpu_cfs_throttled_seconds_total").await?
        {
            let total = sum(&series.iter().map(signal_of).collect::<Vec<_>>());
            if let Some(e) = cx.shifted(
                Domain::Infrastructure,
                Signal::CpuSaturation,
                &service,
                format!("rate(container_cpu_cfs_throttled_seconds_total{{service=\"{service}\"}})"),
                &total,
                Direction::Up,
                4.0,
                |b, p| format!("CPU throttled {} → {} s/s: at its limit", num(b), num(p)),
            ) {
                if e.observed > 0.01 {
                    out.push(e);
                }
            }
        }
        // Volumes.
        let used = per_service(cx, "kubelet_volume_stats_used_bytes").await?;
        let capacity = per_service(cx, "kubelet_volume_stats_capacity_bytes").await?;
        for (service, series) in &used {
            let Some(cap) = capacity.get(service) else {
                continue;
            };
            let fill = ratio(
                &sum(&series
                    .iter()
                    .map(|s| points(&s.samples))
                    .collect::<Vec<_>>()),
                &sum(&cap.iter().map(|s| points(&s.samples)).collect::<Vec<_>>()),
            );
            let before = fill
                .iter()
                .filter(|p| p.0 < cx.cut_ms)
                .map(|p| p.1)
                .fold(0.0, f64::max);
            let after = fill
                .iter()
                .filter(|p| p.0 >= cx.cut_ms - 15 * 60_000)
                .map(|p| p.1)
                .fold(0.0, f64::max);
            let full_at = fill.iter().find(|p| p.1 >= 0.98).map(|p| p.0);
            if after >= 0.97
                && (before < 0.97 || full_at.is_some_and(|t| t >= cx.cut_ms - 15 * 60_000))
            {
                out.push(evidence(cx, service, Signal::DiskFull, 0.9, full_at, format!("kubelet_volume_stats_used_bytes{{service=\"{service}\"}} / kubelet_volume_stats_capacity_bytes"), format!("volume {:.0}% full", after * 100.0)));
            }
        }
        Ok(out)
    }
}
