//! `metrics.om`: the timeline as the exporters a real cluster runs would expose it, scraped
//! every step — application HTTP histograms and counters, cAdvisor and kube-state-metrics
//! container series, HikariCP pools, postgres/redis/kafka exporters, and blackbox probes.
//!
//! Written as OpenMetrics with timestamps, so `promtool tsdb create-blocks-from openmetrics`
//! loads it: every family is contiguous, counters are `_total` samples of a family declared
//! without the suffix, and histogram points (buckets, sum, count) are grouped per timestamp.

use std::io::Write;

use crate::faults::Cause;
use crate::model::{below, Timeline};
use crate::rng::Rng;
use crate::scenario::NodeKind;
use crate::world::{EdgeKind, Runtime, World};

/// Histogram bucket bounds, seconds (the last is `+Inf`).
const BUCKETS: [f64; 9] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The four statement templates each database runs; one dominates under a slow query.
pub(crate) const QUERY_IDS: [&str; 4] = ["3f1a9c2e", "7b22d041", "a90c5e17", "d4e8b3f6"];

/// Writes OpenMetrics text into a buffer.
pub(crate) struct Exposition<'a> {
    out: &'a mut Vec<u8>,
    ts: &'a [String],
}

impl<'a> Exposition<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, ts: &'a [String]) -> Self {
        Self { out, ts }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    /// One series: `values[k]` at step `k`, `None` where the target was not scraped.
    fn series(
        &mut self,
        name: &str,
        labels: &str,
        decimals: usize,
        values: impl Iterator<Item = Option<f64>>,
    ) {
        for (k, value) in values.enumerate() {
            if let Some(v) = value {
                self.point(name, labels, decimals, v, k);
            }
        }
    }

    fn point(&mut self, name: &str, labels: &str, decimals: usize, v: f64, k: usize) {
        let _ = write!(self.out, "{name}{{{labels}}} ");
        if decimals == 0 {
            let _ = write!(self.out, "{}", v.round() as i64);
        } else {
            let _ = write!(self.out, "{v:.decimals$}");
        }
        let _ = writeln!(self.out, " {}", self.ts[k]);
    }

    pub(crate) fn eof(&mut self) {
        let _ = writeln!(self.out, "# EOF");
    }
}

/// Escapes a label value (names are plain, but a free-text value may not be).
fn esc(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Running totals of a counter, rounded as they are written.
fn cumulative(values: impl Iterator<Item = f64>) -> impl Iterator<Item = Option<f64>> {
    values.scan(0.0, |total, v| {
        *total += v.max(0.0);
        Some(Some(*total))
    })
}

/// Writes every metric family for the timeline.
pub(crate) fn write(world: &World, tl: &Timeline, seed: u64, ex: &mut Exposition<'_>) {
    let steps = tl.steps;
    let dt = tl.step_s as f64;
    let http: Vec<usize> = (0..world.services.len())
        .filter(|&s| {
            matches!(
                world.services[s].kind,
                NodeKind::Gateway | NodeKind::Service
            )
        })
        .collect();

    // Application: HTTP server histogram and status counters.
    ex.family(
        "http_server_requests_seconds",
        "histogram",
        "Duration of HTTP server requests.",
    );
    for &s in &http {
        let labels = format!("service=\"{}\"", esc(&world.services[s].name));
        let mut buckets = [0.0_f64; BUCKETS.len()];
        let (mut count, mut sum) = (0.0, 0.0);
        for k in 0..steps {
            let st = tl.service(k, s);
            let n = st.requests as f64;
            for (b, le) in BUCKETS.iter().enumerate() {
                buckets[b] += n * below(st.latency_ms, st.sigma, le * 1000.0);
            }
            count += n;
            sum += n * st.latency_ms / 1000.0;
            for (b, le) in BUCKETS.iter().enumerate() {
                let bucket_labels = format!("{labels},le=\"{le}\"");
                ex.point(
                    "http_server_requests_seconds_bucket",
                    &bucket_labels,
                    0,
                    buckets[b].min(count),
                    k,
                );
            }
            ex.point(
                "http_server_requests_seconds_bucket",
                &format!("{labels},le=\"+Inf\""),
                0,
                count,
                k,
            );
            ex.point("http_server_requests_seconds_sum", &labels, 3, sum, k);
            ex.point("http_server_requests_seconds_count", &labels, 0, count, k);
        }
    }
    ex.family(
        "http_requests",
        "counter",
        "HTTP requests served, by status code.",
    );
    for &s in &http {
        let name = esc(&world.services[s].name);
        for code in [200_u16, 500, 503, 504] {
            let labels = format!("service=\"{name}\",code=\"{code}\"");
            let values = (0..steps).map(|k| {
                let st = tl.service(k, s);
                if code == 200 {
                    return (st.requests - st.errors) as f64;
                }
                let total: f64 = st.causes.iter().sum();
                let share: f64 = Cause::ALL
                    .iter()
                    .filter(|c| c.status() == code)
                    .map(|c| st.causes[*c as usize])
                    .sum::<f64>()
                    / total.max(1e-12);
                st.errors as f64 * share
            });
            ex.series("http_requests_total", &labels, 0, cumulative(values));
        }
    }

    // Client side of each call: what the caller saw from each dependency.
    ex.family(
        "http_client_requests_seconds",
        "summary",
        "Outgoing HTTP calls, by peer and outcome.",
    );
    for (e, edge) in world.edges.iter().enumerate() {
        if edge.kind != EdgeKind::Call {
            continue;
        }
        let caller = esc(&world.services[edge.from].name);
        let peer = esc(&world.services[edge.to].name);
        let external = world.services[edge.to].kind == NodeKind::External;
        let mut rng = Rng::stream(seed, "client", e as u64);
        let calls: Vec<(f64, f64, f64)> = (0..steps)
            .map(|k| {
                let st = tl.edge(k, e);
                let n = rng.poisson(st.rate * dt) as f64;
                let failed = (n * st.error).round().min(n);
                let client = if st.cause == Some(Cause::RateLimited) {
                    failed
                } else {
                    0.0
                };
                (n, failed - client, client)
            })
            .collect();
        let outcomes: &[(&str, usize)] = if external {
            &[("SUCCESS", 0), ("SERVER_ERROR", 1), ("CLIENT_ERROR", 2)]
        } else {
            &[("SUCCESS", 0), ("SERVER_ERROR", 1)]
        };
        for &(outcome, i) in outcomes {
            let labels = format!("service=\"{caller}\",peer=\"{peer}\",outcome=\"{outcome}\"");
            let pick = |c: &(f64, f64, f64)| match i {
                0 => c.0 - c.1 - c.2,
                1 => c.1,
                _ => c.2,
            };
            let (mut count, mut sum) = (0.0, 0.0);
            for k in 0..steps {
                let n = pick(&calls[k]);
                count += n;
                sum += n * tl.edge(k, e).latency_ms / 1000.0;
                ex.point("http_client_requests_seconds_count", &labels, 0, count, k);
                ex.point("http_client_requests_seconds_sum", &labels, 3, sum, k);
            }
        }
    }

    // Connection pools of database clients (HikariCP names).
    let pools: Vec<usize> = (0..world.edges.len())
        .filter(|&e| world.edges[e].kind == EdgeKind::Database)
        .collect();
    let pool_labels = |e: usize| {
        let edge = &world.edges[e];
        format!(
            "service=\"{}\",pool=\"{}\"",
            esc(&world.services[edge.from].name),
            esc(&world.services[edge.to].name)
        )
    };
    ex.family(
        "hikaricp_connections_active",
        "gauge",
        "Connections in use.",
    );
    for &e in &pools {
        ex.series(
            "hikaricp_connections_active",
            &pool_labels(e),
            0,
            (0..steps).map(|k| Some(tl.edge(k, e).pool_active.ceil())),
        );
    }
    ex.family(
        "hikaricp_connections_pending",
        "gauge",
        "Threads waiting for a connection.",
    );
    for &e in &pools {
        ex.series(
            "hikaricp_connections_pending",
            &pool_labels(e),
            0,
            (0..steps).map(|k| Some(tl.edge(k, e).pool_pending.round())),
        );
    }
    ex.family("hikaricp_connections_max", "gauge", "Maximum pool size.");
    for &e in &pools {
        let size = world.edges[e].pool_size;
        ex.series(
            "hikaricp_connections_max",
            &pool_labels(e),
            0,
            (0..steps).map(|_| Some(size)),
        );
    }
    ex.family(
        "hikaricp_connections_timeout",
        "counter",
        "Connection acquisitions that timed out.",
    );
    for &e in &pools {
        ex.series(
            "hikaricp_connections_timeout_total",
            &pool_labels(e),
            0,
            cumulative((0..steps).map(|k| tl.edge(k, e).pool_timeouts * dt)),
        );
    }

    // Runtime: garbage collection.
    for (family, runtime) in [
        ("jvm_gc_pause_seconds", Runtime::Jvm),
        ("go_gc_duration_seconds", Runtime::Go),
    ] {
        let services: Vec<usize> = (0..world.services.len())
            .filter(|&s| world.services[s].runtime == runtime)
            .collect();
        if services.is_empty() {
            continue;
        }
        ex.family(
            family,
            "summary",
            "Time spent in garbage-collection pauses.",
        );
        for s in services {
            let labels = format!("service=\"{}\"", esc(&world.services[s].name));
            let (mut count, mut sum) = (0.0, 0.0);
            for k in 0..steps {
                let gc = tl.service(k, s).gc;
                count += dt * (2.0 + 40.0 * gc);
                sum += gc * dt;
                ex.point(&format!("{family}_count"), &labels, 0, count, k);
                ex.point(&format!("{family}_sum"), &labels, 3, sum, k);
            }
        }
    }

    // Containers (cAdvisor, kube-state-metrics), one series per pod.
    let pod_labels = |p: usize, k: usize| {
        let pod = tl.pod(k, p);
        let def = &world.pods[p];
        let name = if pod.generation == 0 {
            def.name.clone()
        } else {
            replacement_name(&def.name, pod.generation, seed)
        };
        format!(
            "service=\"{}\",pod=\"{}\",node=\"{}\"",
            esc(&world.services[def.service].name),
            esc(&name),
            world.nodes[pod.node]
        )
    };
    let per_pod = |ex: &mut Exposition<'_>,
                   name: &str,
                   decimals: usize,
                   counter: bool,
                   value: &dyn Fn(usize, usize) -> f64| {
        for p in 0..world.pods.len() {
            let mut current = String::new();
            let mut total = 0.0;
            for k in 0..steps {
                let labels = pod_labels(p, k);
                if labels != current {
                    current = labels;
                    total = 0.0;
                }
                let pod = tl.pod(k, p);
                if !pod.up && counter {
                    continue;
                }
                let v = value(p, k);
                if counter {
                    total += v;
                    ex.point(name, &current, decimals, total, k);
                } else if pod.up {
                    ex.point(name, &current, decimals, v, k);
                }
            }
        }
    };
    ex.family(
        "container_cpu_usage_seconds",
        "counter",
        "Cumulative CPU time consumed.",
    );
    per_pod(ex, "container_cpu_usage_seconds_total", 3, true, &|p, k| {
        tl.pod(k, p).cpu * world.services[world.pods[p].service].cpu_limit * dt
    });
    ex.family(
        "container_cpu_cfs_throttled_seconds",
        "counter",
        "Time the container was throttled.",
    );
    per_pod(
        ex,
        "container_cpu_cfs_throttled_seconds_total",
        3,
        true,
        &|p, k| tl.pod(k, p).throttled * world.services[world.pods[p].service].cpu_limit * dt * 0.5,
    );
    ex.family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set.",
    );
    per_pod(
        ex,
        "container_memory_working_set_bytes",
        0,
        false,
        &|p, k| {
            (tl.pod(k, p).mem_mb * 1_048_576.0)
                .min(world.services[world.pods[p].service].mem_limit_mb * 1_048_576.0)
        },
    );
    ex.family(
        "container_spec_memory_limit_bytes",
        "gauge",
        "Memory limit of the container.",
    );
    per_pod(
        ex,
        "container_spec_memory_limit_bytes",
        0,
        false,
        &|p, _| world.services[world.pods[p].service].mem_limit_mb * 1_048_576.0,
    );
    ex.family(
        "kube_pod_container_status_restarts",
        "counter",
        "Container restarts.",
    );
    for p in 0..world.pods.len() {
        let mut current = String::new();
        for k in 0..steps {
            let labels = pod_labels(p, k);
            if labels != current {
                current = labels;
            }
            let pod = tl.pod(k, p);
            ex.point(
                "kube_pod_container_status_restarts_total",
                &current,
                0,
                f64::from(pod.restarts),
                k,
            );
        }
    }
    ex.family(
        "container_network_receive_packets_dropped",
        "counter",
        "Packets dropped on receive.",
    );
    per_pod(
        ex,
        "container_network_receive_packets_dropped_total",
        0,
        true,
        &|p, k| tl.service(k, world.pods[p].service).rx_dropped * dt,
    );

    // Volumes (kubelet).
    let volumes: Vec<usize> = (0..world.services.len())
        .filter(|&s| world.in_cluster(s))
        .collect();
    let volume_labels = |s: usize| {
        let name = esc(&world.services[s].name);
        format!("service=\"{name}\",persistentvolumeclaim=\"data-{name}\"")
    };
    ex.family(
        "kubelet_volume_stats_used_bytes",
        "gauge",
        "Bytes used on the volume.",
    );
    for &s in &volumes {
        let capacity = world.services[s].disk_gb * 1e9;
        let mut rng = Rng::stream(seed, "disk", s as u64);
        let values: Vec<Option<f64>> = (0..steps)
            .map(|k| {
                let fill = tl.service(k, s).disk;
                let jitter = if fill >= 0.999 {
                    0.0
                } else {
                    rng.range(-0.0005, 0.0005)
                };
                Some(((fill + jitter) * capacity).min(capacity))
            })
            .collect();
        ex.series(
            "kubelet_volume_stats_used_bytes",
            &volume_labels(s),
            0,
            values.into_iter(),
        );
    }
    ex.family(
        "kubelet_volume_stats_capacity_bytes",
        "gauge",
        "Size of the volume.",
    );
    for &s in &volumes {
        let capacity = world.services[s].disk_gb * 1e9;
        ex.series(
            "kubelet_volume_stats_capacity_bytes",
            &volume_labels(s),
            0,
            (0..steps).map(|_| Some(capacity)),
        );
    }

    write_databases(world, tl, ex);
    write_caches(world, tl, ex);
    write_queues(world, tl, ex);
    write_probes(world, tl, ex);
}

fn of_kind(world: &World, kind: NodeKind) -> Vec<usize> {
    (0..world.services.len())
        .filter(|&s| world.services[s].kind == kind)
        .collect()
}

/// postgres_exporter: activity, locks, statement statistics.
fn write_databases(world: &World, tl: &Timeline, ex: &mut Exposition<'_>) {
    let dbs = of_kind(world, NodeKind::Database);
    if dbs.is_empty() {
        return;
    }
    let dt = tl.step_s as f64;
    let steps = tl.steps;
    let label = |s: usize| format!("service=\"{}\"", esc(&world.services[s].name));
    ex.family(
        "pg_up",
        "gauge",
        "Whether the last scrape of postgres succeeded.",
    );
    for &s in &dbs {
        ex.series("pg_up", &label(s), 0, (0..steps).map(|_| Some(1.0)));
    }
    ex.family("pg_stat_activity_count", "gauge", "Connections by state.");
    for &s in &dbs {
        let values = (0..steps).map(|k| {
            let st = tl.service(k, s);
            Some((st.rate * st.query_ms / 1000.0).ceil() + 1.0)
        });
        ex.series(
            "pg_stat_activity_count",
            &format!("{},state=\"active\"", label(s)),
            0,
            values,
        );
    }
    ex.family("pg_locks_count", "gauge", "Locks held or awaited, by mode.");
    for &s in &dbs {
        let values = (0..steps).map(|k| {
            let st = tl.service(k, s);
            Some((st.rate * st.lock_ms / 1000.0).round())
        });
        ex.series(
            "pg_locks_count",
            &format!("{},mode=\"exclusivelock\"", label(s)),
            0,
            values,
        );
    }
    // Per statement template: calls and total time. The first template runs the share of
    // calls a slow query slows, so under one it takes most of the time.
    let shares = [crate::faults::HOT_QUERY_SHARE, 0.4, 0.3, 0.15];
    ex.family(
        "pg_stat_statements_calls",
        "counter",
        "Times each statement template ran.",
    );
    for &s in &dbs {
        for (q, id) in QUERY_IDS.iter().enumerate() {
            let values = (0..steps).map(|k| tl.service(k, s).rate * shares[q] * dt);
            ex.series(
                "pg_stat_statements_calls_total",
                &format!("{},queryid=\"{id}\"", label(s)),
                0,
                cumulative(values),
            );
        }
    }
    ex.family(
        "pg_stat_statements_seconds",
        "counter",
        "Time spent in each statement template.",
    );
    for &s in &dbs {
        for (q, id) in QUERY_IDS.iter().enumerate() {
            let values = (0..steps).map(|k| {
                let st = tl.service(k, s);
                let calls = st.rate * shares[q] * dt;
                let ordinary = st.query_ms - crate::faults::HOT_QUERY_SHARE * st.slow_ms;
                let added = if q == 0 { st.slow_ms } else { 0.0 };
                calls * (ordinary + added) / 1000.0
            });
            ex.series(
                "pg_stat_statements_seconds_total",
                &format!("{},queryid=\"{id}\"", label(s)),
                3,
                cumulative(values),
            );
        }
    }
}

/// redis_exporter: up, hits, misses, clients.
fn write_caches(world: &World, tl: &Timeline, ex: &mut Exposition<'_>) {
    let caches = of_kind(world, NodeKind::Cache);
    if caches.is_empty() {
        return;
    }
    let dt = tl.step_s as f64;
    let steps = tl.steps;
    let label = |s: usize| format!("service=\"{}\"", esc(&world.services[s].name));
    ex.family("redis_up", "gauge", "Whether redis answers.");
    for &s in &caches {
        ex.series(
            "redis_up",
            &label(s),
            0,
            (0..steps).map(|k| Some(if tl.service(k, s).up { 1.0 } else { 0.0 })),
        );
    }
    ex.family("redis_keyspace_hits", "counter", "Successful key lookups.");
    for &s in &caches {
        let values = (0..steps).map(|k| {
            let st = tl.service(k, s);
            if st.up {
                st.rate * st.hit_ratio * dt
            } else {
                0.0
            }
        });
        ex.series(
            "redis_keyspace_hits_total",
            &label(s),
            0,
            cumulative(values),
        );
    }
    ex.family("redis_keyspace_misses", "counter", "Failed key lookups.");
    for &s in &caches {
        let values = (0..steps).map(|k| {
            let st = tl.service(k, s);
            if st.up {
                st.rate * (1.0 - st.hit_ratio) * dt
            } else {
                0.0
            }
        });
        ex.series(
            "redis_keyspace_misses_total",
            &label(s),
            0,
            cumulative(values),
        );
    }
    ex.family("redis_connected_clients", "gauge", "Client connections.");
    for &s in &caches {
        let clients = 4.0 * world.services[s].callers.len() as f64;
        ex.series(
            "redis_connected_clients",
            &label(s),
            0,
            (0..steps).map(|k| Some(if tl.service(k, s).up { clients } else { 0.0 })),
        );
    }
}

/// kafka_exporter: consumer-group lag and topic offsets.
fn write_queues(world: &World, tl: &Timeline, ex: &mut Exposition<'_>) {
    let queues = of_kind(world, NodeKind::Queue);
    if queues.is_empty() {
        return;
    }
    let dt = tl.step_s as f64;
    let steps = tl.steps;
    ex.family(
        "kafka_consumergroup_lag",
        "gauge",
        "Messages the consumer group is behind.",
    );
    for &q in &queues {
        let name = esc(&world.services[q].name);
        let groups: Vec<&str> = world.services[q]
            .callers
            .iter()
            .filter(|&&e| world.edges[e].kind == EdgeKind::Consume)
            .map(|&e| world.services[world.edges[e].from].name.as_str())
            .collect();
        for group in groups {
            let labels = format!(
                "service=\"{name}\",topic=\"{name}\",consumergroup=\"{}\"",
                esc(group)
            );
            ex.series(
                "kafka_consumergroup_lag",
                &labels,
                0,
                (0..steps).map(|k| Some(tl.service(k, q).lag)),
            );
        }
    }
    ex.family(
        "kafka_consumergroup_lag_seconds",
        "gauge",
        "Age of the oldest unconsumed message.",
    );
    for &q in &queues {
        let name = esc(&world.services[q].name);
        let labels = format!("service=\"{name}\",topic=\"{name}\"");
        let values = (0..steps).map(|k| {
            let st = tl.service(k, q);
            Some(st.lag / st.consumed.max(st.rate * 0.05).max(0.1))
        });
        ex.series("kafka_consumergroup_lag_seconds", &labels, 1, values);
    }
    ex.family(
        "kafka_topic_partition_current_offset",
        "gauge",
        "Latest offset of the topic.",
    );
    for &q in &queues {
        let name = esc(&world.services[q].name);
        let labels = format!("service=\"{name}\",topic=\"{name}\"");
        ex.series(
            "kafka_topic_partition_current_offset",
            &labels,
            0,
            cumulative((0..steps).map(|k| tl.service(k, q).rate * dt)),
        );
    }
}

/// blackbox_exporter: probes of externals and of every HTTP service's certificate.
fn write_probes(world: &World, tl: &Timeline, ex: &mut Exposition<'_>) {
    let steps = tl.steps;
    let externals = of_kind(world, NodeKind::External);
    let label = |s: usize| format!("service=\"{}\"", esc(&world.services[s].name));
    if !externals.is_empty() {
        ex.family("probe_success", "gauge", "Whether the probe succeeded.");
        for &s in &externals {
            ex.series(
                "probe_success",
                &label(s),
                0,
                (0..steps).map(|k| {
                    let st = tl.service(k, s);
                    Some(if st.probe_status == 200 && !st.cert_expired {
                        1.0
                    } else {
                        0.0
                    })
                }),
            );
        }
        ex.family(
            "probe_duration_seconds",
            "gauge",
            "How long the probe took.",
        );
        for &s in &externals {
            ex.series(
                "probe_duration_seconds",
                &label(s),
                4,
                (0..steps).map(|k| Some(tl.service(k, s).p99_ms / 2.5 / 1000.0)),
            );
        }
        ex.family(
            "probe_http_status_code",
            "gauge",
            "HTTP status of the probe's response.",
        );
        for &s in &externals {
            ex.series(
                "probe_http_status_code",
                &label(s),
                0,
                (0..steps).map(|k| Some(f64::from(tl.service(k, s).probe_status))),
            );
        }
    }
    let tls: Vec<usize> = (0..world.services.len())
        .filter(|&s| {
            matches!(
                world.services[s].kind,
                NodeKind::Gateway | NodeKind::Service | NodeKind::External
            )
        })
        .collect();
    ex.family(
        "probe_ssl_earliest_cert_expiry",
        "gauge",
        "Earliest expiry of the served certificate chain (Unix seconds).",
    );
    for &s in &tls {
        let values: Vec<Option<f64>> = (0..steps).map(|_| Some(tl.cert_expiry[s])).collect();
        ex.series(
            "probe_ssl_earliest_cert_expiry",
            &label(s),
            0,
            values.into_iter(),
        );
    }
}

/// The name a replaced pod gets: same ReplicaSet hash, new suffix.
pub(crate) fn replacement_name(name: &str, generation: u32, seed: u64) -> String {
    let stem = name.rsplit_once('-').map_or(name, |(stem, _)| stem);
    let mut rng = Rng::stream(seed, name, u64::from(generation));
    format!("{stem}-{}", crate::world::pod_suffix(&mut rng))
}
