//! The sixteen fault kinds of `scenario.md` as effects on the model: what each does to its
//! target (and, for edge faults, to the calls into it) at a given moment.
//!
//! Faults and noise share this code; noise is a fault at `severity` (default 0.5) of the
//! kind's default effect. Each kind reads the parameters it knows; unknown ones are
//! reported as warnings, and every parameter has a default.

use std::collections::BTreeMap;

use cairn_connectors::FaultKind;

use crate::model::PodState;
use crate::rng::Rng;
use crate::scenario::{Fault, NodeKind, Noise, Param, Scenario};
use crate::world::{EdgeKind, World};

/// Why a request failed: decides the status code, the log template and the span error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cause {
    /// The background trickle every service has.
    Baseline = 0,
    /// A bug shipped by a deploy.
    Deploy,
    /// A configuration or feature-flag change.
    Config,
    /// More work than CPU: requests shed.
    Overload,
    /// Pods gone (killed, restarting, node lost).
    Unavailable,
    /// No pooled database connection in time.
    Pool,
    /// No space left on the volume.
    Disk,
    /// The cache refuses connections.
    CacheDown,
    /// A dependency answered with an error.
    Upstream,
    /// A dependency did not answer in time.
    Timeout,
    /// Connections reset on the way.
    Reset,
    /// The dependency's name does not resolve.
    Dns,
    /// The dependency's certificate is not valid.
    Tls,
    /// The dependency answered 429.
    RateLimited,
}

impl Cause {
    pub(crate) const COUNT: usize = 14;
    pub(crate) const ALL: [Cause; Cause::COUNT] = [
        Cause::Baseline,
        Cause::Deploy,
        Cause::Config,
        Cause::Overload,
        Cause::Unavailable,
        Cause::Pool,
        Cause::Disk,
        Cause::CacheDown,
        Cause::Upstream,
        Cause::Timeout,
        Cause::Reset,
        Cause::Dns,
        Cause::Tls,
        Cause::RateLimited,
    ];

    /// The HTTP status a server answers with when a request fails for this cause.
    pub(crate) fn status(self) -> u16 {
        match self {
            Cause::Overload | Cause::Unavailable => 503,
            Cause::Timeout | Cause::Pool => 504,
            _ => 500,
        }
    }
}

/// What is done to one service at one moment.
#[derive(Debug, Clone)]
pub(crate) struct ServiceEffects {
    pub load_mult: f64,
    pub latency_add_ms: f64,
    pub errors: Vec<(Cause, f64)>,
    /// CPU driven towards this utilisation by something other than requests, with the
    /// weight (severity × ramp) of the push.
    pub cpu_target: Option<(f64, f64)>,
    pub leak_mb_per_min: f64,
    /// How far the volume has filled towards 100%, `[0, 1]`.
    pub disk_fill: Option<f64>,
    pub disk_error: f64,
    /// Share of the connection pool leaked (never returned).
    pub pool_leak: f64,
    /// Mean time added to every query (the slow template's share of it).
    pub query_add_ms: f64,
    pub lock_ms: f64,
    pub hit_ratio: Option<f64>,
    pub cache_down: bool,
    /// Queue: consumers' speed (1 = normal) and, when set, the rate at which lag grows.
    pub consumer_speed: f64,
    pub lag_rate: Option<f64>,
    pub rate_limit: f64,
    pub cert_expired: bool,
    pub rx_dropped: f64,
}

impl Default for ServiceEffects {
    fn default() -> Self {
        Self {
            load_mult: 1.0,
            latency_add_ms: 0.0,
            errors: Vec::new(),
            cpu_target: None,
            leak_mb_per_min: 0.0,
            disk_fill: None,
            disk_error: 0.0,
            pool_leak: 0.0,
            query_add_ms: 0.0,
            lock_ms: 0.0,
            hit_ratio: None,
            cache_down: false,
            consumer_speed: 1.0,
            lag_rate: None,
            rate_limit: 0.0,
            cert_expired: false,
            rx_dropped: 0.0,
        }
    }
}

/// What is done to the calls along one edge.
#[derive(Debug, Clone, Default)]
pub(crate) struct EdgeEffects {
    pub errors: Vec<(Cause, f64)>,
    pub latency_add_ms: f64,
}

/// Every effect at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Effects {
    pub services: Vec<ServiceEffects>,
    pub edges: Vec<EdgeEffects>,
    /// Nodes NotReady now, nodes that went NotReady this step, and (node, replacement)
    /// pairs whose pods move now.
    pub nodes_down: Vec<usize>,
    pub nodes_down_now: Vec<usize>,
    pub reschedule: Vec<(usize, usize)>,
    pub rescheduled_now: Vec<usize>,
}

/// A fault resolved against the world: target index, window, parameters with defaults.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub fault: Fault,
    pub target: usize,
    pub start: f64,
    pub end: f64,
    /// For node failures: the node, and where its pods go.
    pub node: usize,
    pub spare_node: usize,
}

/// The faults and noise of a scenario, ready to be applied step by step.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub list: Vec<Resolved>,
    pub step_s: f64,
}

/// Share of a database's calls that run the statement a slow query slows.
pub(crate) const HOT_QUERY_SHARE: f64 = 0.15;

/// The parameters each kind reads (all optional).
fn known_params(kind: FaultKind) -> &'static [&'static str] {
    match kind {
        FaultKind::BadDeploy => &["version", "error_rate", "latency_ms"],
        FaultKind::ConfigChange => &["error_rate", "latency_ms", "flag", "key", "value"],
        FaultKind::MemoryLeak => &["growth_mb_per_min"],
        FaultKind::CpuSaturation => &["utilization", "latency_ms"],
        FaultKind::DbPoolExhaustion => &["pool_size", "database"],
        FaultKind::SlowQuery => &["latency_ms", "lock_wait_ms"],
        FaultKind::DependencyLatency => &["latency_ms"],
        FaultKind::NetworkLoss => &["loss_pct", "from"],
        FaultKind::DnsFailure => &["error_rate"],
        FaultKind::CertExpired => &["error_rate"],
        FaultKind::DiskFull => &["fill_minutes", "error_rate"],
        FaultKind::NodeFailure => &["node", "reschedule_s"],
        FaultKind::TrafficSpike => &["multiplier"],
        FaultKind::CacheFailure => &["hit_ratio"],
        FaultKind::RateLimited => &["error_rate", "retry_after_s"],
        FaultKind::QueueBacklog => &["lag_rate"],
    }
}

/// Which kind of node each fault kind expects as its target, when it expects one.
fn expected_target(kind: FaultKind) -> Option<&'static [NodeKind]> {
    match kind {
        FaultKind::SlowQuery => Some(&[NodeKind::Database]),
        FaultKind::CacheFailure => Some(&[NodeKind::Cache]),
        FaultKind::DependencyLatency | FaultKind::RateLimited => Some(&[NodeKind::External]),
        FaultKind::TrafficSpike => Some(&[NodeKind::Gateway]),
        FaultKind::QueueBacklog => Some(&[NodeKind::Queue]),
        _ => None,
    }
}

pub(crate) fn number(params: &BTreeMap<String, Param>, key: &str, default: f64) -> f64 {
    match params.get(key) {
        Some(Param::Number(n)) => *n,
        Some(Param::Text(t)) => t.trim().trim_end_matches('%').parse().unwrap_or(default),
        _ => default,
    }
}

pub(crate) fn text(params: &BTreeMap<String, Param>, key: &str) -> Option<String> {
    params.get(key).map(ToString::to_string)
}

impl Active {
    /// Resolves the scenario's faults and noise; returns them with the warnings to show.
    pub(crate) fn resolve(scenario: &Scenario, world: &World) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut list = Vec::new();
        let entries = scenario
            .faults
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("faults[{i}]"), f.clone()))
            .chain(
                scenario
                    .noise
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| match n {
                        Noise::Fault(f) => Some((format!("noise[{i}]"), f.clone())),
                        Noise::Deploy { .. } => None,
                    }),
            );
        for (path, fault) in entries {
            let target = world.service(&fault.target);
            for key in fault.params.keys() {
                if !known_params(fault.kind).contains(&key.as_str()) {
                    warnings.push(format!(
                        "{path}.params.{key}: {} does not use `{key}`; ignored (it reads: {})",
                        fault.kind,
                        known_params(fault.kind).join(", ")
                    ));
                }
            }
            if let Some(kinds) = expected_target(fault.kind) {
                let actual = world.services[target].kind;
                if !kinds.contains(&actual) {
                    warnings.push(format!(
                        "{path}.target: {} usually targets a {}; `{}` is a {}, simulated anyway",
                        fault.kind,
                        kinds[0].as_str(),
                        fault.target,
                        actual.as_str()
                    ));
                }
            }
            let start = fault.at as f64;
            let end = fault
                .duration
                .map_or(f64::INFINITY, |d| (fault.at + d) as f64);
            let pods = &world.services[target].pods;
            let node = match text(&fault.params, "node") {
                Some(name) => world.nodes.iter().position(|n| *n == name).unwrap_or_else(|| {
                    warnings.push(format!("{path}.params.node: no node `{name}` (nodes are node-1 … node-{}); using the target's node", world.nodes.len()));
                    pods.first().map_or(0, |&p| world.pods[p].node)
                }),
                None => pods.first().map_or(0, |&p| world.pods[p].node),
            };
            let spare_node = (node
                + 1
                + Rng::stream(scenario.seed, "spare", 0).below(world.nodes.len().max(2) - 1))
                % world.nodes.len();
            list.push(Resolved {
                fault,
                target,
                start,
                end,
                node,
                spare_node,
            });
        }
        (
            Active {
                list,
                step_s: scenario.step as f64,
            },
            warnings,
        )
    }

    /// Puts the target of each node failure on its node, so the failure hits it.
    pub(crate) fn place(&self, world: &World, pods: &mut [PodState]) {
        for r in &self.list {
            if r.fault.kind == FaultKind::NodeFailure {
                if let Some(&p) = world.services[r.target].pods.first() {
                    pods[p].node = r.node;
                }
            }
        }
    }

    /// Every effect in force at `tau` seconds from the window's start.
    pub(crate) fn effects(&self, world: &World, tau: f64) -> Effects {
        let mut fx = Effects {
            services: vec![ServiceEffects::default(); world.services.len()],
            edges: vec![EdgeEffects::default(); world.edges.len()],
            nodes_down: Vec::new(),
            nodes_down_now: Vec::new(),
            reschedule: Vec::new(),
            rescheduled_now: Vec::new(),
        };
        for r in &self.list {
            if tau < r.start || tau >= r.end {
                continue;
            }
            apply(r, world, tau, self.step_s, &mut fx);
        }
        fx
    }
}

/// Applies one active fault at `tau`.
fn apply(r: &Resolved, world: &World, tau: f64, step_s: f64, fx: &mut Effects) {
    let f = &r.fault;
    let sev = f.severity;
    let p = &f.params;
    let since = tau - r.start;
    // Most faults come on over a minute rather than in one sample.
    let ramp = ((since + step_s) / 60.0).min(1.0);
    let t = r.target;
    let callers: Vec<usize> = world.services[t].callers.clone();
    match f.kind {
        FaultKind::BadDeploy => {
            let s = &mut fx.services[t];
            s.errors
                .push((Cause::Deploy, number(p, "error_rate", 0.10) * sev));
            s.latency_add_ms += number(p, "latency_ms", 0.0) * sev;
        }
        FaultKind::ConfigChange => {
            let s = &mut fx.services[t];
            s.errors
                .push((Cause::Config, number(p, "error_rate", 0.05) * sev));
            s.latency_add_ms += number(p, "latency_ms", 200.0) * sev;
        }
        FaultKind::MemoryLeak => {
            fx.services[t].leak_mb_per_min += number(p, "growth_mb_per_min", 40.0) * sev;
        }
        FaultKind::CpuSaturation => {
            let utilization = number(p, "utilization", 1.0);
            // Something other than requests (a hot loop, a runaway job) takes the CPU.
            let s = &mut fx.services[t];
            s.cpu_target = Some((utilization.max(0.0), (sev * ramp).clamp(0.0, 1.0)));
            // Latency comes from queueing for CPU; an explicit latency adds on top.
            s.latency_add_ms += number(p, "latency_ms", 0.0) * sev * ramp;
        }
        FaultKind::DbPoolExhaustion => {
            // Connections leak and are never returned; the pool runs dry over minutes.
            let leak = (since / 180.0 + 0.2).min(1.0) * sev.max(0.0);
            fx.services[t].pool_leak = fx.services[t].pool_leak.max(leak.min(1.0));
        }
        FaultKind::SlowQuery => {
            // One statement template (a share of the calls) turns slow and takes locks.
            let s = &mut fx.services[t];
            s.query_add_ms += HOT_QUERY_SHARE * number(p, "latency_ms", 800.0) * sev * ramp;
            s.lock_ms += HOT_QUERY_SHARE * number(p, "lock_wait_ms", 300.0) * sev * ramp;
        }
        FaultKind::DependencyLatency => {
            fx.services[t].latency_add_ms += number(p, "latency_ms", 2000.0) * sev * ramp;
        }
        FaultKind::NetworkLoss => {
            let loss = number(p, "loss_pct", 5.0) / 100.0 * sev;
            let from = text(p, "from");
            fx.services[t].rx_dropped += loss;
            for &e in &callers {
                let caller = &world.services[world.edges[e].from].name;
                if from.as_ref().is_none_or(|f| f == caller) {
                    let edge = &mut fx.edges[e];
                    edge.errors.push((Cause::Reset, (loss * 0.6).min(1.0)));
                    edge.latency_add_ms += loss * 100.0 * 25.0;
                }
            }
        }
        FaultKind::DnsFailure => {
            let share = number(p, "error_rate", 0.6) * sev;
            for &e in &callers {
                fx.edges[e].errors.push((Cause::Dns, share.min(1.0)));
            }
        }
        FaultKind::CertExpired => {
            fx.services[t].cert_expired = true;
            let share = number(p, "error_rate", 1.0) * sev;
            for &e in &callers {
                fx.edges[e].errors.push((Cause::Tls, share.min(1.0)));
            }
        }
        FaultKind::DiskFull => {
            let fill_s = number(p, "fill_minutes", 8.0).max(0.1) * 60.0;
            let s = &mut fx.services[t];
            // A full fault fills the volume; noise only half of what its severity would.
            let progress = (since / fill_s).min(1.0);
            let fill = if sev >= 1.0 {
                progress
            } else {
                progress * sev.max(0.0) * 0.5
            };
            s.disk_fill = Some(s.disk_fill.unwrap_or(0.0).max(fill));
            s.disk_error = number(p, "error_rate", 0.4) * sev;
        }
        FaultKind::NodeFailure => {
            let reschedule_s = number(p, "reschedule_s", 90.0) * sev.max(0.2);
            if since < reschedule_s {
                fx.nodes_down.push(r.node);
                if since < step_s {
                    fx.nodes_down_now.push(r.node);
                }
            } else {
                fx.nodes_down.push(r.node);
                fx.reschedule.push((r.node, r.spare_node));
                if since < reschedule_s + step_s {
                    fx.rescheduled_now.push(r.node);
                }
            }
        }
        FaultKind::TrafficSpike => {
            let multiplier = number(p, "multiplier", 3.0).max(0.0);
            fx.services[t].load_mult *= 1.0 + (multiplier - 1.0) * sev * ramp;
        }
        FaultKind::CacheFailure => {
            let hit = number(p, "hit_ratio", 0.05).clamp(0.0, 1.0);
            let base = world.services[t].hit_ratio;
            let s = &mut fx.services[t];
            s.hit_ratio = Some(base - (base - hit) * sev * ramp);
            s.cache_down = hit <= 0.0 && sev >= 1.0;
        }
        FaultKind::RateLimited => {
            let share = number(p, "error_rate", 0.3) * sev;
            fx.services[t].rate_limit = share;
            for &e in &callers {
                fx.edges[e]
                    .errors
                    .push((Cause::RateLimited, share.min(1.0)));
            }
        }
        FaultKind::QueueBacklog => {
            let s = &mut fx.services[t];
            s.consumer_speed = (1.0 - 0.85 * sev * ramp).max(0.02);
            if let Some(Param::Number(rate)) = p.get("lag_rate") {
                s.lag_rate = Some(rate * sev);
            }
            // The consumers work slowly: each message takes longer.
            for &e in &callers {
                if world.edges[e].kind == EdgeKind::Consume {
                    let consumer = world.edges[e].from;
                    let base = world.services[consumer].base_latency_ms;
                    fx.services[consumer].latency_add_ms += base * 6.0 * sev * ramp;
                }
            }
        }
    }
}
