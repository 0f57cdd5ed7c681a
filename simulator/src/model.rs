//! The step model: for every metric step, how much load each service gets, how slow it is,
//! how often it fails and why — with faults applied and their effects carried along the
//! dependency edges the way production carries them.
//!
//! Each step runs two passes over the graph. Rates flow from callers to callees (retries
//! amplify them with the previous step's failures, cache misses push reads to the
//! database). Latency and errors flow back from callees to callers (timeouts turn slowness
//! into errors, a cache failure falls back instead of failing). Queues, memory, disks and
//! pods keep state from one step to the next.

use crate::faults::{Active, Cause, Effects};
use crate::rng::Rng;
use crate::scenario::{NodeKind, Scenario};
use crate::world::{EdgeKind, World};

/// How long, in seconds, a pod is gone after an OOM kill before it serves again.
const RESTART_S: f64 = 25.0;
/// A caller gives up waiting for a pooled connection after this long.
pub(crate) const POOL_TIMEOUT_MS: f64 = 3000.0;
/// A server abandons a request after this long.
const SERVER_TIMEOUT_MS: f64 = 30_000.0;
/// At most this share of calls is retried: a failing dependency gets at most 20% more load.
const RETRY_BUDGET: f64 = 0.2;
/// A read the cache would have answered costs the database this many ordinary queries.
const MISS_COST: f64 = 12.0;
/// Share of a non-slowest dependency call that adds to a request's latency (calls overlap).
pub(crate) const PARALLEL_SHARE: f64 = 0.35;
/// z-score of the 99th percentile of a normal distribution.
const Z99: f64 = 2.326;

/// One service at one step.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceState {
    /// Requests (or, for a queue, messages produced) per second.
    pub rate: f64,
    /// Share of requests answered with an error.
    pub error: f64,
    /// Why they failed: weight of each cause (own and inherited).
    pub causes: [f64; Cause::COUNT],
    /// Mean latency (ms) as the service's callers see it, dependencies included.
    pub latency_ms: f64,
    pub sigma: f64,
    /// CPU used over the limit, `[0, 1]`.
    pub cpu: f64,
    /// Share of CFS periods throttled.
    pub throttled: f64,
    /// Share of the volume used.
    pub disk: f64,
    /// Database: mean query time (ms) and lock wait (ms).
    pub query_ms: f64,
    pub lock_ms: f64,
    /// Time the slow statement template takes beyond the others (ms), under a slow query.
    pub slow_ms: f64,
    /// Cache: hit ratio and whether it answers at all.
    pub hit_ratio: f64,
    pub up: bool,
    /// Queue: messages behind, messages consumed per second.
    pub lag: f64,
    pub consumed: f64,
    /// Garbage-collection pause, seconds per second.
    pub gc: f64,
    /// Share of pods not serving.
    pub down: f64,
    /// Packets dropped on receive per second.
    pub rx_dropped: f64,
    /// An external's answer to the blackbox probe.
    pub probe_status: u16,
    /// The served certificate has expired.
    pub cert_expired: bool,
    /// Observed this step: requests and errors counted, p99 latency measured.
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: f64,
}

/// One dependency edge at one step.
#[derive(Debug, Clone, Default)]
pub(crate) struct EdgeState {
    /// Calls per second.
    pub rate: f64,
    /// Share of calls failing as the caller sees them.
    pub error: f64,
    pub cause: Option<Cause>,
    pub latency_ms: f64,
    /// Connection pool (database edges): connections in use, requests waiting, timeouts/s.
    pub pool_active: f64,
    pub pool_pending: f64,
    pub pool_timeouts: f64,
}

/// One pod at one step.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodState {
    pub mem_mb: f64,
    pub restarts: u32,
    pub up: bool,
    pub node: usize,
    /// Bumped when the pod is replaced (rescheduled), which gives it a new name.
    pub generation: u32,
    pub cpu: f64,
    pub throttled: f64,
}

/// The simulated production over the whole window.
#[derive(Debug)]
pub(crate) struct Timeline {
    pub steps: usize,
    pub step_s: u64,
    pub services: usize,
    pub edges: usize,
    pub pods: usize,
    svc: Vec<ServiceState>,
    edge: Vec<EdgeState>,
    pod: Vec<PodState>,
    /// Pods killed for memory, replaced after a node failure, when.
    pub oom_kills: Vec<(usize, usize)>,
    pub node_down: Vec<(usize, usize)>,
    pub rescheduled: Vec<(usize, usize, usize)>,
    /// When each service's certificate expires (Unix seconds); set by the caller.
    pub cert_expiry: Vec<f64>,
    /// What a rate-limited dependency asks callers to wait, seconds.
    pub retry_after_s: u64,
}

impl Timeline {
    pub(crate) fn service(&self, k: usize, s: usize) -> &ServiceState {
        &self.svc[k * self.services + s]
    }
    pub(crate) fn edge(&self, k: usize, e: usize) -> &EdgeState {
        &self.edge[k * self.edges + e]
    }
    pub(crate) fn pod(&self, k: usize, p: usize) -> &PodState {
        &self.pod[k * self.pods + p]
    }
}

/// The load multiplier of the 24-hour swing at `hour` (peak mid-afternoon, trough at night).
fn diurnal(amplitude: f64, hour: f64) -> f64 {
    1.0 + amplitude * (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin()
}

/// Probability that a log-normal latency with mean `mean` and spread `sigma` exceeds `limit`.
pub(crate) fn exceed(mean: f64, sigma: f64, limit: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let median = mean / (sigma * sigma / 2.0).exp();
    let z = ((limit / median).ln()) / sigma;
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Share of a log-normal latency distribution with mean `mean` below `limit` (a histogram bucket).
pub(crate) fn below(mean: f64, sigma: f64, limit: f64) -> f64 {
    1.0 - exceed(mean, sigma, limit)
}

/// The 99th percentile of a log-normal with mean `mean` and spread `sigma`.
pub(crate) fn p99(mean: f64, sigma: f64) -> f64 {
    mean / (sigma * sigma / 2.0).exp() * (Z99 * sigma).exp()
}

/// Complementary error function (Numerical Recipes' erfcc, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Runs the model over the scenario's window.
pub(crate) fn run(
    scenario: &Scenario,
    world: &mut World,
    active: &Active,
    start_hour: f64,
) -> Timeline {
    let n = world.services.len();
    let m = world.edges.len();
    let p = world.pods.len();
    let steps = (scenario.duration / scenario.step) as usize + 1;
    let step_s = scenario.step as f64;

    calibrate(scenario, world);

    let mut tl = Timeline {
        steps,
        step_s: scenario.step,
        services: n,
        edges: m,
        pods: p,
        svc: Vec::with_capacity(steps * n),
        edge: Vec::with_capacity(steps * m),
        pod: Vec::with_capacity(steps * p),
        oom_kills: Vec::new(),
        node_down: Vec::new(),
        rescheduled: Vec::new(),
        cert_expiry: vec![0.0; n],
        retry_after_s: 30,
    };
    let mut noise = Rng::stream(scenario.seed, "load", 0);
    let mut observe = Rng::stream(scenario.seed, "observe", 0);
    let mut wander = 0.0;
    let mut pods: Vec<PodState> = world
        .pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let mut rng = Rng::stream(scenario.seed, "memory", i as u64);
            PodState {
                mem_mb: world.services[pod.service].mem_base_mb * rng.range(0.95, 1.05),
                restarts: 0,
                up: true,
                node: pod.node,
                generation: 0,
                cpu: 0.0,
                throttled: 0.0,
            }
        })
        .collect();
    active.place(world, &mut pods);
    let mut restart_until = vec![-1.0_f64; p];
    let mut lag = vec![0.0_f64; n];
    let mut consumed_prev = vec![0.0_f64; n];
    let mut prev_edge_error = vec![0.0_f64; m];

    for k in 0..steps {
        let tau = k as f64 * step_s;
        let hour = start_hour + tau / 3600.0;
        // Load wanders slowly around the diurnal curve, as real traffic does.
        wander = 0.92 * wander + 0.08 * noise.normal();
        let load = scenario.load.rps
            * diurnal(scenario.load.diurnal, hour)
            * (1.0 + 0.04 * wander + 0.015 * noise.normal());
        let fx = active.effects(world, tau);

        // Pods: node failures take them away, OOM kills restart them.
        for (i, pod) in pods.iter_mut().enumerate() {
            if fx.rescheduled_now.contains(&pod.node) {
                if let Some(&(_, to)) = fx.reschedule.iter().find(|(from, _)| *from == pod.node) {
                    pod.node = to;
                    pod.generation += 1;
                    restart_until[i] = tau + RESTART_S;
                    tl.rescheduled.push((k, i, to));
                }
            }
            pod.up = !fx.nodes_down.contains(&pod.node) && tau >= restart_until[i];
        }
        for &node in &fx.nodes_down_now {
            tl.node_down.push((k, node));
        }

        // Pass 1: rates, callers first.
        let mut svc: Vec<ServiceState> = vec![ServiceState::default(); n];
        let mut edge: Vec<EdgeState> = vec![EdgeState::default(); m];
        for &s in &world.order {
            let service = &world.services[s];
            let mut rate = service.entry_share * load * fx.services[s].load_mult;
            for &e in &service.callers {
                let edge_def = &world.edges[e];
                if edge_def.kind == EdgeKind::Consume {
                    continue;
                }
                rate += edge[e].rate;
            }
            for &e in &service.deps {
                if world.edges[e].kind == EdgeKind::Consume {
                    rate += consumed_prev[world.edges[e].to];
                }
            }
            svc[s].rate = rate;
            // What this service sends each dependency.
            for &e in &service.deps {
                let def = &world.edges[e];
                // Clients retry failures, within a retry budget (as gRPC, Envoy and Finagle do).
                let retry = 1.0 + def.retries * prev_edge_error[e].min(RETRY_BUDGET);
                let mut calls = rate * def.calls * retry;
                if def.kind == EdgeKind::Database {
                    calls = rate * db_calls(world, &fx, s, e) * retry;
                }
                if def.kind == EdgeKind::Consume {
                    calls = consumed_prev[def.to];
                }
                edge[e].rate = calls;
            }
        }

        // Queues: what is produced, what the consumers manage, what piles up.
        for s in 0..n {
            if world.services[s].kind != NodeKind::Queue {
                continue;
            }
            let produced = svc[s].rate;
            let capacity = world.services[s].capacity * fx.services[s].consumer_speed;
            let consumers_healthy = consumer_health(world, &svc, s);
            let mut consumed = (produced + lag[s] / step_s).min(capacity * consumers_healthy);
            if let Some(lag_rate) = fx.services[s].lag_rate {
                consumed = consumed.min((produced - lag_rate).max(0.0));
            }
            lag[s] = (lag[s] + (produced - consumed) * step_s).max(0.0);
            svc[s].lag = lag[s] + produced * observe.range(0.05, 0.3);
            svc[s].consumed = consumed;
            consumed_prev[s] = consumed;
        }

        // Pass 2: latency and errors, callees first.
        for &s in world.order.iter().rev() {
            let service = &world.services[s];
            let fxs = &fx.services[s];
            let pods_of: &[usize] = &service.pods;
            let down = if pods_of.is_empty() {
                0.0
            } else {
                pods_of.iter().filter(|&&i| !pods[i].up).count() as f64 / pods_of.len() as f64
            };
            let capacity = (service.capacity * (1.0 - down)).max(1e-9);
            let requests_rho = svc[s].rate / capacity;
            let rho = match fxs.cpu_target {
                Some((target, weight)) => {
                    requests_rho.max(requests_rho + (target - requests_rho) * weight)
                }
                None => requests_rho,
            };
            let cpu = rho.min(1.0);
            let queueing = ((1.0 - 0.4) / (1.0 - rho.min(0.97))).max(1.0);
            let mut own = [0.0_f64; Cause::COUNT];
            own[Cause::Baseline as usize] = service.base_error;
            for &(cause, share) in &fxs.errors {
                own[cause as usize] += share;
            }
            if rho > 1.0 {
                own[Cause::Overload as usize] += 1.0 - 1.0 / rho;
            }
            if down > 0.0 && service.kind != NodeKind::External {
                own[Cause::Unavailable as usize] += down;
            }

            // Memory and GC.
            let mut gc_ms = 0.0;
            let mut gc = 0.0;
            for &i in pods_of {
                let pod = &mut pods[i];
                if fxs.leak_mb_per_min > 0.0 && pod.up {
                    pod.mem_mb += fxs.leak_mb_per_min * step_s / 60.0;
                }
                let noise_mb = service.mem_base_mb * 0.01 * observe.normal();
                let used = (pod.mem_mb + noise_mb) / service.mem_limit_mb;
                // Collections get longer and more frequent as the heap fills.
                let pressure = ((used - 0.6) / 0.4).clamp(0.0, 1.0).powf(1.5);
                gc = f64::max(gc, 0.004 + 0.25 * pressure);
                gc_ms = f64::max(gc_ms, service.base_latency_ms * 14.0 * pressure);
                if pod.mem_mb >= service.mem_limit_mb {
                    tl.oom_kills.push((k, i));
                    pod.restarts += 1;
                    pod.mem_mb = service.mem_base_mb * observe.range(0.95, 1.05);
                    pod.up = false;
                    restart_until[i] = tau + RESTART_S;
                }
            }
            if matches!(
                service.runtime,
                crate::world::Runtime::Jvm | crate::world::Runtime::Go
            ) {
                svc[s].gc = gc;
            }

            // Disk.
            let disk = fxs.disk_fill.map_or(service.disk_base, |fill| {
                service.disk_base + (1.0 - service.disk_base) * fill
            });
            if disk >= 0.999 {
                own[Cause::Disk as usize] += fxs.disk_error;
            }

            let mut latency = service.base_latency_ms * queueing + fxs.latency_add_ms + gc_ms;
            match service.kind {
                NodeKind::Database => {
                    svc[s].query_ms = latency + fxs.query_add_ms + fxs.lock_ms;
                    svc[s].lock_ms = fxs.lock_ms + 0.2 * observe.unit();
                    svc[s].slow_ms = fxs.query_add_ms / crate::faults::HOT_QUERY_SHARE;
                    latency = svc[s].query_ms;
                }
                NodeKind::Cache => {
                    svc[s].hit_ratio = fxs.hit_ratio.unwrap_or(service.hit_ratio);
                    svc[s].up = !fxs.cache_down;
                    if fxs.cache_down {
                        own[Cause::CacheDown as usize] = 1.0;
                    }
                }
                NodeKind::External => {
                    svc[s].probe_status =
                        if fxs.rate_limit > 0.0 && observe.chance(fxs.rate_limit.min(1.0) * 1.5) {
                            429
                        } else {
                            200
                        };
                }
                _ => {}
            }
            svc[s].cert_expired = fxs.cert_expired;
            svc[s].rx_dropped = fxs.rx_dropped * svc[s].rate.max(1.0) * 20.0 + 0.02;

            // Dependencies: what each edge adds in latency and failures.
            let mut survive = 1.0;
            let mut inherited = [0.0_f64; Cause::COUNT];
            let (mut downstream_sum, mut downstream_max) = (0.0_f64, 0.0_f64);
            let mut pool_wait_ms = 0.0_f64;
            for &e in &service.deps {
                let def = &world.edges[e];
                let d = def.to;
                if def.kind == EdgeKind::Consume {
                    continue;
                }
                let efx = &fx.edges[e];
                let mut l = svc[d].latency_ms + efx.latency_add_ms;
                let mut causes: Vec<(Cause, f64)> = efx.errors.clone();
                match def.kind {
                    EdgeKind::Cache => {
                        // A failed lookup falls back to the database: no error, a little time.
                        // Without a database to fall back to, the caller fails with it.
                        if !svc[d].up {
                            l = 1.0;
                            if !has_database(world, s) {
                                causes.push((Cause::CacheDown, svc[d].error));
                            }
                        }
                    }
                    EdgeKind::Produce => {
                        l = svc[d].latency_ms.min(50.0);
                        if !svc[d].up && svc[d].error > 0.5 {
                            causes.push((Cause::Upstream, svc[d].error));
                        }
                    }
                    EdgeKind::Database => {
                        causes.push((Cause::Upstream, svc[d].error));
                        // Little's law: connections busy = calls/s × time each holds one.
                        let demand = edge[e].rate * svc[d].query_ms / 1000.0;
                        let available = def.pool_size * (1.0 - fx.services[s].pool_leak);
                        let (wait_ms, fail) = pool_pressure(demand, available, svc[d].query_ms);
                        edge[e].pool_active = demand.min(available) + def.pool_size - available;
                        // Threads waiting for a connection (Little's law on the wait).
                        edge[e].pool_pending = edge[e].rate * wait_ms / 1000.0;
                        edge[e].pool_timeouts = edge[e].rate * fail;
                        // Waiting for a connection happens in the caller, before any query:
                        // it is the caller's time and the caller's failure, not the database's.
                        pool_wait_ms += db_calls(world, &fx, s, e).min(3.0) * wait_ms;
                        own[Cause::Pool as usize] += fail;
                    }
                    EdgeKind::Call => {
                        causes.push((Cause::Upstream, svc[d].error));
                    }
                    EdgeKind::Consume => {}
                }
                let timeouts = if def.kind == EdgeKind::Cache {
                    0.0
                } else {
                    exceed(l, svc[d].sigma.max(0.3), def.timeout_ms)
                };
                if timeouts > 0.0 {
                    causes.push((Cause::Timeout, timeouts));
                }
                let raw = 1.0
                    - causes
                        .iter()
                        .fold(1.0, |acc, (_, share)| acc * (1.0 - share.clamp(0.0, 1.0)));
                let seen = raw * (1.0 - 0.5 * def.retries * (1.0 - raw));
                let cause = causes
                    .iter()
                    .copied()
                    .filter(|(_, share)| *share > 0.0)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(c, _)| c);
                let latency_e =
                    l.min(def.timeout_ms) * (1.0 - timeouts) + def.timeout_ms * timeouts;
                edge[e].error = seen;
                edge[e].cause = cause;
                edge[e].latency_ms = latency_e * (1.0 + def.retries * raw);
                let calls = if def.kind == EdgeKind::Database {
                    db_calls(world, &fx, s, e)
                } else {
                    def.calls.min(3.0)
                };
                let contribution = calls * edge[e].latency_ms;
                downstream_sum += contribution;
                downstream_max = downstream_max.max(contribution);
                if seen > 0.0 {
                    // A routing share fails its share of requests; repeated calls each may fail.
                    let fail = if calls < 1.0 {
                        calls * seen
                    } else {
                        1.0 - (1.0 - seen).powf(calls.min(3.0))
                    };
                    survive *= 1.0 - fail;
                    let weight = raw.max(1e-12);
                    for (c, share) in &causes {
                        let c = if *c == Cause::Upstream {
                            Cause::Upstream
                        } else {
                            *c
                        };
                        inherited[c as usize] += fail * share.clamp(0.0, 1.0)
                            / weight.max(causes.iter().map(|x| x.1).sum::<f64>());
                    }
                }
            }
            // Calls overlap: the slowest one counts in full, the others partly.
            latency +=
                downstream_max + PARALLEL_SHARE * (downstream_sum - downstream_max) + pool_wait_ms;
            let own_ok = own
                .iter()
                .fold(1.0, |acc, share| acc * (1.0 - share.clamp(0.0, 1.0)));
            let error = (1.0 - own_ok * survive).clamp(0.0, 1.0);
            for c in 0..Cause::COUNT {
                svc[s].causes[c] = own[c].clamp(0.0, 1.0) + inherited[c];
            }
            svc[s].error = error;
            // Servers give up on a request after their own timeout.
            svc[s].latency_ms = latency.clamp(0.05, SERVER_TIMEOUT_MS);
            svc[s].sigma = service.sigma * (1.0 + 0.3 * (queueing - 1.0).min(2.0));
            svc[s].cpu = cpu;
            svc[s].throttled = ((rho - 0.85) / 0.15).clamp(0.0, 1.0);
            svc[s].disk = disk;
            svc[s].down = down;
            for &i in pods_of {
                pods[i].cpu = if pods[i].up {
                    (cpu * observe.range(0.9, 1.1)).min(1.0)
                } else {
                    0.0
                };
                pods[i].throttled = svc[s].throttled;
            }
        }

        // Observation: what counters and histograms would show this step.
        for s in 0..n {
            let st = &mut svc[s];
            st.requests = observe.poisson(st.rate * step_s);
            let expected = st.requests as f64 * st.error;
            st.errors = observe.poisson(expected).min(st.requests);
            st.p99_ms = p99(st.latency_ms, st.sigma) * (1.0 + 0.06 * observe.normal()).max(0.5);
        }
        for e in 0..m {
            prev_edge_error[e] = edge[e].error;
        }
        tl.svc.extend(svc);
        tl.edge.extend(edge);
        tl.pod.extend(pods.iter().cloned());
    }
    tl
}

/// Query-equivalents per request that caller `s` sends over database edge `e`: its own
/// queries plus, when its caches miss more than usual, the expensive reads they front.
fn db_calls(world: &World, fx: &Effects, s: usize, e: usize) -> f64 {
    let deps = &world.services[s].deps;
    let databases = deps
        .iter()
        .filter(|&&d| world.edges[d].kind == EdgeKind::Database)
        .count()
        .max(1);
    let mut fallback = 0.0;
    for &c in deps {
        let def = &world.edges[c];
        if def.kind != EdgeKind::Cache {
            continue;
        }
        let cache = &world.services[def.to];
        let hit = if fx.services[def.to].cache_down {
            0.0
        } else {
            fx.services[def.to].hit_ratio.unwrap_or(cache.hit_ratio)
        };
        fallback += def.calls * (cache.hit_ratio - hit).max(0.0);
    }
    world.edges[e].calls + fallback * MISS_COST / databases as f64
}

fn has_database(world: &World, s: usize) -> bool {
    world.services[s]
        .deps
        .iter()
        .any(|&e| world.edges[e].kind == EdgeKind::Database)
}

/// The share of messages the consumers of queue `q` can take, by how healthy they are.
fn consumer_health(world: &World, svc: &[ServiceState], q: usize) -> f64 {
    let consumers: Vec<usize> = world.services[q]
        .callers
        .iter()
        .filter(|&&e| world.edges[e].kind == EdgeKind::Consume)
        .map(|&e| world.edges[e].from)
        .collect();
    if consumers.is_empty() {
        return 1.0;
    }
    consumers
        .iter()
        .map(|&c| 1.0 - svc[c].error.min(1.0) * 0.8)
        .sum::<f64>()
        / consumers.len() as f64
}

/// Waiting time (ms) for a pooled connection, and the share of requests that give up.
///
/// `demand` is connections the traffic needs busy (Little's law), `available` what the pool
/// can lend. Below saturation the wait grows like a queue's (≈ ρ⁸/(1−ρ) query times);
/// past it the queue only grows, so waits hit the timeout and the excess fails.
fn pool_pressure(demand: f64, available: f64, query_ms: f64) -> (f64, f64) {
    if available < 0.5 {
        return (POOL_TIMEOUT_MS, 0.97);
    }
    let ratio = demand / available;
    if ratio >= 0.98 {
        let fail = if ratio > 1.0 {
            (1.0 - 1.0 / ratio).min(0.97)
        } else {
            0.0
        };
        return (POOL_TIMEOUT_MS, fail.max(0.02));
    }
    let wait = query_ms * ratio.powi(8) / (1.0 - ratio);
    (wait.min(POOL_TIMEOUT_MS), 0.0)
}

/// Sets each service's capacity from the traffic it gets on an average, fault-free step,
/// with seeded headroom: production is provisioned for its load, not for a spike.
fn calibrate(scenario: &Scenario, world: &mut World) {
    let n = world.services.len();
    let mut rate = vec![0.0_f64; n];
    let mut edge_rate = vec![0.0_f64; world.edges.len()];
    // Twice: consumers come before their queues in callers-first order, so what a queue
    // hands its consumers is known only after the first pass.
    for _ in 0..2 {
        let queued: Vec<f64> = rate.clone();
        for &s in &world.order {
            let mut r =
                world.services[s].entry_share * scenario.load.rps * (1.0 + scenario.load.diurnal);
            for &e in &world.services[s].callers {
                if world.edges[e].kind != EdgeKind::Consume {
                    r += edge_rate[e];
                }
            }
            for &e in &world.services[s].deps {
                if world.edges[e].kind == EdgeKind::Consume {
                    r += queued[world.edges[e].to];
                }
            }
            rate[s] = r;
            for &e in &world.services[s].deps {
                edge_rate[e] = if world.edges[e].kind == EdgeKind::Consume {
                    queued[world.edges[e].to]
                } else {
                    r * world.edges[e].calls
                };
            }
        }
    }
    for s in 0..n {
        let mut rng = Rng::stream(scenario.seed, "capacity", s as u64);
        let headroom = match world.services[s].kind {
            NodeKind::Database => rng.range(3.5, 5.0),
            NodeKind::Queue => rng.range(2.5, 4.0),
            NodeKind::External => 1e6,
            _ => rng.range(1.8, 2.6),
        };
        // Capacity is set for the daily peak, so the peak runs at 1/headroom of the limit.
        world.services[s].capacity = (rate[s] * headroom).max(1.0);
    }
    // Pools are sized for the peak with room to spare, in tens, as operators size them.
    for e in 0..world.edges.len() {
        if world.edges[e].kind == EdgeKind::Database {
            let db = &world.services[world.edges[e].to];
            let busy = edge_rate[e] * db.base_latency_ms * 1.5 / 1000.0;
            let needed = ((busy * 12.0 / 10.0).ceil() * 10.0).max(10.0);
            world.edges[e].pool_size = world.edges[e].pool_size.max(needed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_helpers_agree() {
        let mean = 100.0;
        let sigma = 0.5;
        let p = p99(mean, sigma);
        assert!(
            (exceed(mean, sigma, p) - 0.01).abs() < 1e-4,
            "{}",
            exceed(mean, sigma, p)
        );
        assert!(below(mean, sigma, 1e9) > 0.999_999);
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn pool_pressure_grows_with_demand() {
        assert!(pool_pressure(1.0, 20.0, 5.0).0 < 0.01);
        assert_eq!(pool_pressure(1.0, 20.0, 5.0).1, 0.0);
        let (near, _) = pool_pressure(18.0, 20.0, 5.0);
        assert!(near > 5.0, "{near}");
        let (wait, fail) = pool_pressure(30.0, 20.0, 5.0);
        assert!(wait == POOL_TIMEOUT_MS && fail > 0.3);
        assert_eq!(pool_pressure(5.0, 0.0, 5.0).1, 0.97);
    }
}
