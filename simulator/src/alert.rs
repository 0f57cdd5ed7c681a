//! The scenario's alert rule, evaluated on the simulated signal the way Prometheus evaluates
//! a rule with `for`: pending from the first step the condition holds, firing once it has
//! held for `for` without a break.

use crate::model::{exceed, Timeline};
use crate::scenario::{AlertRule, NodeKind, Signal};
use crate::world::{EdgeKind, World};

/// When the page fires and what the signal showed then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fired {
    /// Step index.
    pub step: usize,
    pub value: f64,
    /// True when `alert.at` forced it (a mis-tuned rule).
    pub forced: bool,
}

/// Rules look at a trailing window, as `rate(…[5m])` and `histogram_quantile` over it do.
const RULE_WINDOW_S: u64 = 300;

/// The rule's signal at step `k`, in its unit, over the trailing rule window.
pub(crate) fn signal(world: &World, tl: &Timeline, rule: &AlertRule, k: usize) -> f64 {
    let s = world.service(&rule.service);
    let width = (RULE_WINDOW_S / tl.step_s).max(1) as usize;
    let steps = k.saturating_sub(width - 1)..=k;
    let http = matches!(
        world.services[s].kind,
        NodeKind::Gateway | NodeKind::Service
    );
    let error_ratio = || {
        let (mut errors, mut requests, mut model, mut n) = (0.0, 0.0, 0.0, 0.0);
        for j in steps.clone() {
            let st = tl.service(j, s);
            errors += st.errors as f64;
            requests += st.requests as f64;
            model += st.error;
            n += 1.0;
        }
        if http && requests > 0.0 {
            errors / requests
        } else {
            model / n
        }
    };
    match rule.signal {
        Signal::ErrorRate => error_ratio(),
        Signal::LatencyP99 => window_p99(tl, s, steps),
        Signal::Saturation => {
            steps.clone().map(|j| tl.service(j, s).cpu).sum::<f64>() / steps.count() as f64
        }
        Signal::Availability => {
            // What a blackbox probe sees: failures inside and on the way in.
            let (mut weighted, mut rate) = (0.0, 0.0);
            for j in steps.clone() {
                for &e in &world.services[s].callers {
                    let edge = tl.edge(j, e);
                    weighted += edge.error * edge.rate;
                    rate += edge.rate;
                }
            }
            let incoming = if rate > 0.0 { weighted / rate } else { 0.0 };
            1.0 - error_ratio().max(incoming).min(1.0)
        }
        Signal::ConsumerLag => {
            let st = tl.service(k, s);
            if world.services[s].kind == NodeKind::Queue {
                st.lag
            } else {
                world.services[s]
                    .deps
                    .iter()
                    .filter(|&&e| world.edges[e].kind == EdgeKind::Consume)
                    .map(|&e| tl.service(k, world.edges[e].to).lag)
                    .sum()
            }
        }
    }
}

/// The 99th percentile (ms) of all requests over `steps`: the latency where the request-
/// weighted mix of each step's distribution leaves 1% above, found by bisection.
fn window_p99(tl: &Timeline, s: usize, steps: std::ops::RangeInclusive<usize>) -> f64 {
    let points: Vec<(f64, f64, f64)> = steps
        .map(|j| {
            let st = tl.service(j, s);
            (st.requests.max(1) as f64, st.latency_ms, st.sigma.max(0.05))
        })
        .collect();
    let total: f64 = points.iter().map(|p| p.0).sum();
    let above = |x: f64| {
        points
            .iter()
            .map(|(n, mean, sigma)| n * exceed(*mean, *sigma, x))
            .sum::<f64>()
            / total
    };
    let (mut lo, mut hi) = (0.01_f64, 1.0e7_f64);
    for _ in 0..60 {
        let mid = (lo * hi).sqrt();
        if above(mid) > 0.01 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Evaluates `rule`; `None` when it never fires in the window.
pub(crate) fn evaluate(world: &World, tl: &Timeline, rule: &AlertRule) -> Option<Fired> {
    if let Some(at) = rule.at {
        let step = ((at / tl.step_s) as usize).min(tl.steps - 1);
        return Some(Fired {
            step,
            value: signal(world, tl, rule, step),
            forced: true,
        });
    }
    let mut pending: Option<usize> = None;
    for k in 0..tl.steps {
        let value = signal(world, tl, rule, k);
        let holds = match rule.signal {
            Signal::Availability => value < rule.threshold,
            _ => value > rule.threshold,
        };
        if !holds {
            pending = None;
            continue;
        }
        let since = *pending.get_or_insert(k);
        if (k - since) as u64 * tl.step_s >= rule.for_s {
            return Some(Fired {
                step: k,
                value,
                forced: false,
            });
        }
    }
    None
}
