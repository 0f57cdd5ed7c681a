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
                if let Some(e) = own_time_shift(cx, &service, &p.before, &p.after, window) {
                    out.push(e);
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

/// Share of the baseline's own times a span may exceed by chance (its 95th percentile).
const TAIL_QUANTILE: f64 = 0.95;

/// How a service's own time per span moved: its typical span (the median against the
/// baseline's noise), and its tail — how many more spans went beyond what 95% of the
/// baseline's spans stayed under than chance allows (a binomial test, so a service whose
/// spans were always heavy-tailed is not blamed for its tail, and one whose slow spans are
/// new is).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OwnTime {
    median_before: f64,
    median_after: f64,
    p90_before: f64,
    p90_after: f64,
    median_z: f64,
    /// Beyond the baseline's tail by a margin, so a hair above it is not "slow".
    tail: f64,
    beyond: usize,
    spans: usize,
    tail_z: f64,
}

impl OwnTime {
    fn compare(before: &[f64], after: &[f64]) -> Option<Self> {
        if before.is_empty() || after.is_empty() {
            return None;
        }
        let base = Baseline::of(before)?;
        let quantile = |v: &[f64], q: f64| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            crate::stats::quantile_of_sorted(&v, q)
        };
        let median_after = quantile(after, 0.5);
        let median_z = if median_after > base.median + 1.0 {
            (median_after - base.median) / base.sigma
        } else {
            0.0
        };
        let tail = quantile(before, TAIL_QUANTILE) * 1.5 + 1.0;
        let n = after.len() as f64;
        let beyond = after.iter().filter(|v| **v > tail).count();
        let chance = 1.0 - TAIL_QUANTILE;
        let tail_z = (beyond as f64 - n * chance) / (n * chance * (1.0 - chance)).sqrt();
        Some(Self {
            median_before: base.median,
            median_after,
            p90_before: quantile(before, 0.9),
            p90_after: quantile(after, 0.9),
            median_z,
            tail,
            beyond,
            spans: after.len(),
            tail_z,
        })
    }

    fn z(&self) -> f64 {
        self.median_z.max(self.tail_z)
    }

    fn reason(&self, service: &str) -> String {
        // The typical span says it plainest when it moved; the tail when only the tail did.
        if self.median_z >= 4.0 || self.median_z >= self.tail_z {
            format!(
                "time spent in {service} itself {} ms → {} ms per span (p90 {} ms)",
                num(self.median_before),
                num(self.median_after),
                num(self.p90_after)
            )
        } else {
            format!(
                "{} of {} spans ({:.0}%) spent over {} ms in {service} itself, where 95% stayed before (p90 {} ms → {} ms)",
                self.beyond,
                self.spans,
                100.0 * self.beyond as f64 / self.spans as f64,
                num(self.tail),
                num(self.p90_before),
                num(self.p90_after)
            )
        }
    }
}

/// Evidence that a service's own time per span grew after the cut ([`OwnTime`]).
fn own_time_shift(
    cx: &Context<'_>,
    service: &str,
    before: &[f64],
    after: &[f64],
    window: TimeWindow,
) -> Option<Evidence> {
    let shift = OwnTime::compare(before, after)?;
    if shift.z() < 4.0 {
        return None;
    }
    Some(Evidence {
        observed: shift.median_after,
        baseline: shift.median_before,
        ..Evidence::new(
            Domain::Traces,
            Signal::TraceOrigin,
            service.to_owned(),
            cx.source.name().to_owned(),
            format!(
                "own time (duration − children) of {service}'s spans, before vs after the onset"
            ),
            window,
            crate::signals::strength(shift.z()) * 0.9,
            shift.reason(service),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::OwnTime;

    /// `n` own times cycling through `pattern`.
    fn spans(pattern: &[f64], n: usize) -> Vec<f64> {
        pattern.iter().copied().cycle().take(n).collect()
    }

    #[test]
    fn a_tail_that_was_always_there_is_not_a_shift() {
        // One span in ten is slow (a cache miss), before and after alike.
        let before = spans(&[3.0, 4.0, 3.5, 4.2, 3.8, 3.1, 4.4, 3.3, 3.9, 450.0], 200);
        let after = spans(&[3.2, 4.1, 3.6, 4.0, 3.7, 3.4, 4.3, 3.5, 3.6, 470.0], 300);
        let shift = OwnTime::compare(&before, &after).unwrap();
        assert!(shift.z() < 4.0, "{shift:?}");
    }

    #[test]
    fn new_slow_spans_are_a_shift_even_when_the_median_holds() {
        // The typical span is as fast as before, but one in five now takes 100 ms.
        let before = spans(&[1.8, 2.0, 2.5, 1.9, 2.7, 2.2, 1.7, 2.4, 2.1, 2.6], 60);
        let after = spans(&[1.9, 2.4, 100.0, 2.5, 2.0, 2.2, 1.8, 100.0, 2.3, 2.6], 96);
        let shift = OwnTime::compare(&before, &after).unwrap();
        assert!(shift.median_z < 4.0 && shift.tail_z > 6.0, "{shift:?}");
        assert!(
            shift
                .reason("contacts")
                .starts_with("19 of 96 spans (20%) spent over 5.1 ms in contacts itself"),
            "{}",
            shift.reason("contacts")
        );
    }

    #[test]
    fn a_slower_typical_span_is_a_shift() {
        let before = spans(&[30.0, 31.0, 29.0, 30.5, 29.5], 100);
        let after = spans(&[280.0, 290.0, 285.0, 300.0, 270.0], 100);
        let shift = OwnTime::compare(&before, &after).unwrap();
        assert!(shift.median_z > 10.0, "{shift:?}");
        assert!(shift
            .reason("checkout")
            .starts_with("time spent in checkout itself 30.0 ms → 285 ms"));
    }
}
