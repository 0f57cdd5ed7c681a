//! Traces: where time and errors start on the call path. A span's own time is its duration
//! less its children's; a service whose own time grew is where the latency originates, and
//! the deepest failing span of a trace is where its error began. A client span with no
//! children into an untraced peer (database, external) counts for the peer.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use cairn_connectors::{SourceError, Span, SpanQuery, SpanStatus, TimeWindow};

use super::{num, Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};
use crate::stats::Baseline;

const MAX_SPANS: usize = 1_000_000;

pub struct Traces;

#[derive(Default)]
struct PerService {
    before: Vec<f64>,
    after: Vec<f64>,
    spans_before: usize,
    spans_after: usize,
    origins_before: usize,
    origins_after: usize,
    first_origin: Option<i64>,
}

#[async_trait]
impl Agent for Traces {
    fn name(&self) -> &'static str {
        "traces"
    }

    async fn survey(&self, cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        let spans = cx
            .source
            .spans(&SpanQuery {
                window: cx.window(),
                service: None,
                trace_id: None,
                limit: MAX_SPANS,
            })
            .await?;
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let mut children: HashMap<(&str, &str), Vec<&Span>> = HashMap::new();
        for s in &spans {
            if let Some(parent) = &s.parent_span_id {
                children
                    .entry((s.trace_id.as_str(), parent.as_str()))
                    .or_default()
                    .push(s);
            }
        }
        let cut_ms = cx.cut_for(spans.iter().map(|s| s.ts.timestamp_millis()).collect());
        let mut per: BTreeMap<String, PerService> = BTreeMap::new();
        // Client spans whose only children are another service's server spans: the time
        // between is the network (and the callee's queues) on that edge, credited to the callee.
        let mut edges: BTreeMap<(String, String), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for s in &spans {
            let kids = children.get(&(s.trace_id.as_str(), s.span_id.as_str()));
            let child_time: f64 = kids.map_or(0.0, |k| k.iter().map(|c| c.duration_ms).sum());
            let own = (s.duration_ms - child_time).max(0.0);
            let after = s.ts.timestamp_millis() >= cut_ms;
            if let Some(kids) = kids.filter(|k| k.iter().all(|c| c.service != s.service)) {
                let callee = kids[0].service.clone();
                let slot = edges.entry((s.service.clone(), callee)).or_default();
                if after {
                    slot.1.push(own)
                } else {
                    slot.0.push(own)
                }
                continue;
            }
            let peer = s
                .attrs
                .get("peer.service")
                .and_then(|v| v.as_str())
                .filter(|_| kids.is_none());
            let credited = peer.unwrap_or(&s.service).to_owned();
            let p = per.entry(credited).or_default();
            if after {
                p.after.push(own);
                p.spans_after += 1;
            } else {
                p.before.push(own);
                p.spans_before += 1;
            }
            let failed = s.status == Some(SpanStatus::Error);
            let child_failed =
                kids.is_some_and(|k| k.iter().any(|c| c.status == Some(SpanStatus::Error)));
            if failed && !child_failed {
                if after {
                    p.origins_after += 1;
                    let t = s.ts.timestamp_millis();
                    p.first_origin = Some(p.first_origin.map_or(t, |f| f.min(t)));
                } else {
                    p.origins_before += 1;
                }
            }
        }
        let mut out = Vec::new();
        let window = TimeWindow {
            start: cx.cut(),
            end: cx.window().end,
        };
        for ((caller, callee), (before, after)) in &edges {
            if before.len() < 3 || after.len() < 3 {
                continue;
            }
            let Some(base) = Baseline::of(before) else {
                continue;
            };
            let mut now = after.clone();
            now.sort_by(f64::total_cmp);
            let median_after = now[now.len() / 2];
            let z = (median_after - base.median) / base.sigma.max(1.0);
            if z >= 5.0 && median_after > base.median + 20.0 {
                out.push(Evidence {
                    observed: median_after,
                    baseline: base.median,
                    ..Evidence::new(
                        Domain::Traces,
                        Signal::PacketLoss,
                        callee.clone(),
                        cx.source.name().to_owned(),
                        format!("{caller} → {callee}: client span time not spent inside {callee}, before vs after the onset"),
                        window,
                        crate::signals::strength(z) * 0.85,
                        format!("calls from {caller} spend {} ms on the way to and from {callee} (was {} ms): network or connection trouble at {callee}", num(median_after), num(base.median)),
                    )
                });
            }
        }
        for (service, p) in per {
            if p.before.len() >= 5 && p.after.len() >= 5 {
                let base = Baseline::of(&p.before);
                let mut after = p.after.clone();
                after.sort_by(f64::total_cmp);
                let median_after = after[after.len() / 2];
                let p90_after = after[(after.len() * 9 / 10).min(after.len() - 1)];
                if let Some(base) = base {
                    let z = (median_after - base.median) / base.sigma;
                    let z90 = (p90_after - base.median) / base.sigma / 3.0;
                    let z = z.max(z90);
                    if z >= 4.0 && median_after > base.median + 1.0 {
                        out.push(Evidence {
                            observed: median_after,
                            baseline: base.median,
                            ..Evidence::new(
                                Domain::Traces,
                                Signal::TraceOrigin,
                                service.clone(),
                                cx.source.name().to_owned(),
                                format!("own time (duration − children) of {service}'s spans, before vs after the onset"),
                                window,
                                crate::signals::strength(z) * 0.9,
                                format!("time spent in {service} itself {} ms → {} ms per span (p90 {} ms)", num(base.median), num(median_after), num(p90_after)),
                            )
                        });
                    }
                }
            }
            let share_after = p.origins_after as f64 / p.spans_after.max(1) as f64;
            let share_before = p.origins_before as f64 / p.spans_before.max(1) as f64;
            if p.origins_after >= 3 && share_after > 3.0 * share_before + 0.01 {
                out.push(Evidence {
                    observed: share_after,
                    baseline: share_before,
                    onset_ms: p.first_origin,
                    ..Evidence::new(
                        Domain::Traces,
                        Signal::TraceOrigin,
                        service.clone(),
                        cx.source.name().to_owned(),
                        format!(
                            "failed spans of {service} with no failed child, before vs after the onset"
                        ),
                        window,
                        (0.5 + share_after).min(0.85),
                        format!(
                            "errors start here in {} traces ({:.1}% of its spans, baseline {:.1}%)",
                            p.origins_after,
                            share_after * 100.0,
                            share_before * 100.0
                        ),
                    )
                });
            }
        }
        Ok(out)
    }
}
