//! Every fault kind leaves the signals `scenario.md` names — in the bundle, read back through
//! the same reader the agents use — and the same production without the fault does not.

use cairn_connectors::{Bundle, DataSource, EventQuery, LogQuery, SeriesSelector, TimeWindow};
use cairn_simulator::{simulate, Scenario};
use chrono::{DateTime, Duration, Utc};

/// A small production with every kind of node: a gateway, services, a database, a cache, a
/// queue with a producer and a consumer, and an external API.
const TOPOLOGY: &str = r#"
topology:
  - {name: edge, kind: gateway, depends_on: [shop, search]}
  - {name: shop, kind: service, depends_on: [payments, orders-db, cart-cache, orders-queue]}
  - {name: search, kind: service, depends_on: [catalog-db]}
  - {name: payments, kind: service, depends_on: [stripe]}
  - {name: worker, kind: service, depends_on: [orders-queue, orders-db], consumes: [orders-queue]}
  - {name: orders-db, kind: database}
  - {name: catalog-db, kind: database}
  - {name: cart-cache, kind: cache}
  - {name: orders-queue, kind: queue}
  - {name: stripe, kind: external}
load: {rps: 300, diurnal: 0.2}
"#;

/// The bundle of the small production, with `fault` (a YAML list entry) or none.
fn bundle(fault: Option<&str>) -> Probe {
    let faults = fault.map_or_else(|| "faults: []".to_owned(), |f| format!("faults:\n  - {f}"));
    let text = format!(
        "version: 1\nname: signature\nseed: 11\nduration: 60m\nstep: 15s\n{TOPOLOGY}{faults}\nalert: {{service: edge, signal: error_rate, threshold: 0.5, at: 35m}}\nexpect: {{no_issue: true}}\n"
    );
    let scenario = Scenario::parse(&text, "signature.yaml").expect("valid scenario");
    let simulation = simulate(&scenario).expect("simulates");
    let bundle = Bundle::from_files(&simulation.files).expect("readable bundle");
    let window = bundle.meta().window;
    Probe {
        bundle,
        window,
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
    }
}

/// Reads a simulated bundle around the fault, which always starts 30 minutes in.
struct Probe {
    bundle: Bundle,
    window: TimeWindow,
    runtime: tokio::runtime::Runtime,
}

/// Before the fault (minutes 5–29) or after it has settled (minutes 36–59).
#[derive(Clone, Copy)]
enum Phase {
    Before,
    After,
}

impl Probe {
    fn span(&self, phase: Phase) -> TimeWindow {
        let start = self.window.start;
        let (from, to) = match phase {
            Phase::Before => (5, 29),
            Phase::After => (36, 59),
        };
        TimeWindow::new(
            start + Duration::minutes(from),
            start + Duration::minutes(to),
        )
        .unwrap()
    }

    fn fault_at(&self) -> DateTime<Utc> {
        self.window.start + Duration::minutes(30)
    }

    /// Per-second increase of a counter (summed over matching series) in `phase`.
    fn rate(&self, metric: &str, service: &str, labels: &[(&str, &str)], phase: Phase) -> f64 {
        let window = self.span(phase);
        let selector = SeriesSelector {
            window,
            metric: Some(metric.to_owned()),
            service: Some(service.to_owned()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let series = self
            .runtime
            .block_on(self.bundle.series(&selector))
            .unwrap();
        assert!(!series.is_empty(), "no {metric} for {service}");
        series
            .iter()
            .filter(|s| s.samples.len() > 1)
            .map(|s| {
                let (first, last) = (s.samples[0], s.samples[s.samples.len() - 1]);
                (last.value - first.value) / ((last.ts_ms - first.ts_ms) as f64 / 1000.0)
            })
            .sum()
    }

    /// Largest value of a gauge (over matching series) in `phase`.
    fn max(&self, metric: &str, service: &str, labels: &[(&str, &str)], phase: Phase) -> f64 {
        let selector = SeriesSelector {
            window: self.span(phase),
            metric: Some(metric.to_owned()),
            service: Some(service.to_owned()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let series = self
            .runtime
            .block_on(self.bundle.series(&selector))
            .unwrap();
        assert!(!series.is_empty(), "no {metric} for {service}");
        series
            .iter()
            .flat_map(|s| s.samples.iter().map(|p| p.value))
            .fold(f64::MIN, f64::max)
    }

    /// Mean latency (ms) from a histogram's or summary's `_sum` and `_count`.
    fn latency_ms(
        &self,
        family: &str,
        service: &str,
        labels: &[(&str, &str)],
        phase: Phase,
    ) -> f64 {
        let sum = self.rate(&format!("{family}_sum"), service, labels, phase);
        let count = self.rate(&format!("{family}_count"), service, labels, phase);
        1000.0 * sum / count.max(1e-9)
    }

    /// Share of a service's requests answered with 5xx in `phase`.
    fn error_ratio(&self, service: &str, phase: Phase) -> f64 {
        let ok = self.rate("http_requests_total", service, &[("code", "200")], phase);
        let all: f64 = ["200", "500", "503", "504"]
            .iter()
            .map(|c| self.rate("http_requests_total", service, &[("code", c)], phase))
            .sum();
        1.0 - ok / all.max(1e-9)
    }

    /// Log lines of `service` containing `text` in `phase`.
    fn logs(&self, service: &str, text: &str, phase: Phase) -> usize {
        let query = LogQuery {
            window: self.span(phase),
            service: Some(service.to_owned()),
            contains: Some(text.to_owned()),
            limit: usize::MAX,
        };
        self.runtime
            .block_on(self.bundle.logs(&query))
            .unwrap()
            .len()
    }

    /// Infrastructure events with `reason` over the whole window.
    fn events(&self, reason: &str) -> Vec<cairn_connectors::InfraEvent> {
        let query = EventQuery {
            window: self.window,
            service: None,
        };
        let events = self.runtime.block_on(self.bundle.events(&query)).unwrap();
        events.into_iter().filter(|e| e.reason == reason).collect()
    }

    /// Changes to `service` over the whole window.
    fn changes(&self, service: &str) -> Vec<cairn_connectors::Change> {
        let query = EventQuery {
            window: self.window,
            service: Some(service.to_owned()),
        };
        self.runtime.block_on(self.bundle.changes(&query)).unwrap()
    }
}

use Phase::{After, Before};

/// Asserts `signature` holds with the fault and fails without it.
fn check(fault: &str, signature: impl Fn(&Probe) -> Result<(), String>) {
    let with = bundle(Some(fault));
    if let Err(missing) = signature(&with) {
        panic!("{fault}: signature missing: {missing}");
    }
    let without = bundle(None);
    assert!(
        signature(&without).is_err(),
        "{fault}: the signature shows without the fault too"
    );
}

fn ensure(cond: bool, what: String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what)
    }
}

#[test]
fn bad_deploy_ships_a_version_then_errors_with_a_new_template() {
    check(
        "{kind: bad_deploy, target: shop, at: 30m, params: {version: v9.9.9, error_rate: 0.2}}",
        |p| {
            let deploys = p.changes("shop");
            ensure(
                deploys
                    .iter()
                    .any(|c| c.version.as_deref() == Some("v9.9.9") && c.ts == p.fault_at()),
                format!("deploy of v9.9.9 at the onset: {deploys:?}"),
            )?;
            let (before, after) = (p.error_ratio("shop", Before), p.error_ratio("shop", After));
            ensure(
                after > 0.1 && before < 0.02,
                format!("shop errors {before:.3} → {after:.3}"),
            )?;
            ensure(
                p.error_ratio("edge", After) > p.error_ratio("edge", Before) * 3.0,
                "callers' errors".into(),
            )
        },
    );
}

#[test]
fn config_change_records_the_change_and_shifts_behaviour() {
    check(
        "{kind: config_change, target: search, at: 30m, params: {latency_ms: 400}}",
        |p| {
            let changes = p.changes("search");
            ensure(
                changes.iter().any(|c| {
                    c.kind == cairn_connectors::ChangeKind::Config && c.ts == p.fault_at()
                }),
                format!("config change: {changes:?}"),
            )?;
            let (before, after) = (
                p.latency_ms("http_server_requests_seconds", "search", &[], Before),
                p.latency_ms("http_server_requests_seconds", "search", &[], After),
            );
            ensure(
                after > before + 200.0,
                format!("search latency {before:.0} → {after:.0} ms"),
            )?;
            ensure(
                p.latency_ms("http_server_requests_seconds", "edge", &[], After)
                    > p.latency_ms("http_server_requests_seconds", "edge", &[], Before) + 50.0,
                "callers' latency".into(),
            )
        },
    );
}

#[test]
fn memory_leak_climbs_to_oom_kills_and_restarts() {
    check(
        "{kind: memory_leak, target: payments, at: 30m, params: {growth_mb_per_min: 120}}",
        |p| {
            let oom = p.events("OOMKilled");
            ensure(
                oom.iter().any(|e| e.service.as_deref() == Some("payments")),
                "OOMKilled event".into(),
            )?;
            ensure(
                oom.iter().all(|e| e.service.as_deref() == Some("payments")),
                "OOM only on the target".into(),
            )?;
            ensure(
                p.max(
                    "kube_pod_container_status_restarts_total",
                    "payments",
                    &[],
                    After,
                ) >= 1.0,
                "restart counter".into(),
            )?;
            let limit = p.max("container_spec_memory_limit_bytes", "payments", &[], After);
            ensure(
                p.max("container_memory_working_set_bytes", "payments", &[], After) > 0.9 * limit,
                "memory near the limit".into(),
            )?;
            ensure(
                p.logs("payments", "OutOfMemory", After)
                    + p.logs("payments", "out of memory", After)
                    + p.logs("payments", "MemoryError", After)
                    > 0,
                "OOM in the logs".into(),
            )
        },
    );
}

#[test]
fn cpu_saturation_pins_cpu_throttles_and_slows_callers() {
    check("{kind: cpu_saturation, target: search, at: 30m}", |p| {
        ensure(
            p.rate(
                "container_cpu_cfs_throttled_seconds_total",
                "search",
                &[],
                After,
            ) > 0.01,
            "throttling".into(),
        )?;
        ensure(
            p.rate(
                "container_cpu_cfs_throttled_seconds_total",
                "search",
                &[],
                Before,
            ) < 0.01,
            "no throttling before".into(),
        )?;
        let cpu_ratio = p.rate("container_cpu_usage_seconds_total", "search", &[], After)
            / p.rate("container_cpu_usage_seconds_total", "search", &[], Before);
        ensure(cpu_ratio > 2.0, format!("CPU ×{cpu_ratio:.1}"))?;
        ensure(
            p.latency_ms("http_server_requests_seconds", "edge", &[], After)
                > p.latency_ms("http_server_requests_seconds", "edge", &[], Before) * 1.5,
            "callers' latency".into(),
        )
    });
}

#[test]
fn pool_exhaustion_shows_at_the_client_while_the_database_stays_healthy() {
    check("{kind: db_pool_exhaustion, target: shop, at: 30m}", |p| {
        ensure(
            p.max(
                "hikaricp_connections_pending",
                "shop",
                &[("pool", "orders-db")],
                After,
            ) > 0.0,
            "pending connections".into(),
        )?;
        ensure(
            p.logs("shop", "timed out", After) > 0,
            "pool timeouts in the logs".into(),
        )?;
        let db_before = p.rate("pg_stat_statements_seconds_total", "orders-db", &[], Before)
            / p.rate("pg_stat_statements_calls_total", "orders-db", &[], Before);
        let db_after = p.rate("pg_stat_statements_seconds_total", "orders-db", &[], After)
            / p.rate("pg_stat_statements_calls_total", "orders-db", &[], After);
        ensure(
            db_after < db_before * 1.3,
            format!("database query time {db_before:.4} → {db_after:.4} s"),
        )
    });
}

#[test]
fn slow_query_slows_the_database_one_template_dominates_and_callers_slow() {
    check("{kind: slow_query, target: orders-db, at: 30m}", |p| {
        let hot = p.rate(
            "pg_stat_statements_seconds_total",
            "orders-db",
            &[("queryid", "3f1a9c2e")],
            After,
        );
        let total = p.rate("pg_stat_statements_seconds_total", "orders-db", &[], After);
        ensure(
            hot > 0.6 * total,
            format!("hot template {:.0}% of time", 100.0 * hot / total),
        )?;
        ensure(
            p.max("pg_locks_count", "orders-db", &[], After)
                > p.max("pg_locks_count", "orders-db", &[], Before),
            "lock waits".into(),
        )?;
        ensure(
            p.logs("orders-db", "duration:", After) > 0,
            "slow-query log".into(),
        )?;
        ensure(
            p.latency_ms("http_server_requests_seconds", "shop", &[], After)
                > p.latency_ms("http_server_requests_seconds", "shop", &[], Before) * 1.5,
            "callers slow".into(),
        )?;
        ensure(
            p.latency_ms("http_server_requests_seconds", "worker", &[], After)
                > p.latency_ms("http_server_requests_seconds", "worker", &[], Before) * 1.2,
            "every caller slows".into(),
        )
    });
}

#[test]
fn dependency_latency_shows_in_probes_and_the_callers_client_latency() {
    check(
        "{kind: dependency_latency, target: stripe, at: 30m, params: {latency_ms: 2500}}",
        |p| {
            ensure(
                p.max("probe_duration_seconds", "stripe", &[], After) > 1.0,
                "probe duration".into(),
            )?;
            let (before, after) = (
                p.latency_ms(
                    "http_client_requests_seconds",
                    "payments",
                    &[("peer", "stripe"), ("outcome", "SUCCESS")],
                    Before,
                ),
                p.latency_ms(
                    "http_client_requests_seconds",
                    "payments",
                    &[("peer", "stripe")],
                    After,
                ),
            );
            ensure(
                after > before + 1000.0,
                format!("payments → stripe {before:.0} → {after:.0} ms"),
            )?;
            ensure(
                p.logs("payments", "stripe", After) > 0,
                "timeouts naming stripe".into(),
            )
        },
    );
}

#[test]
fn network_loss_drops_packets_at_the_receiver_and_resets_only_that_edge() {
    check(
        "{kind: network_loss, target: payments, at: 30m, params: {loss_pct: 10}}",
        |p| {
            ensure(
                p.rate(
                    "container_network_receive_packets_dropped_total",
                    "payments",
                    &[],
                    After,
                ) > 10.0
                    * p.rate(
                        "container_network_receive_packets_dropped_total",
                        "payments",
                        &[],
                        Before,
                    )
                    .max(0.01),
                "dropped packets".into(),
            )?;
            ensure(
                p.logs("shop", "reset", After) > 0,
                "connection resets in the caller".into(),
            )?;
            let edge = p.rate(
                "http_client_requests_seconds_count",
                "shop",
                &[("peer", "payments"), ("outcome", "SERVER_ERROR")],
                After,
            );
            ensure(
                edge > 0.5,
                format!("errors on shop → payments: {edge:.2}/s"),
            )?;
            ensure(
                p.error_ratio("search", After) < 0.01,
                "other edges are fine".into(),
            )
        },
    );
}

#[test]
fn dns_failure_fails_callers_while_the_target_stays_healthy() {
    check("{kind: dns_failure, target: payments, at: 30m}", |p| {
        let lines = p.logs("shop", "payments.prod.svc.cluster.local", After);
        ensure(lines > 0, "resolution errors in the caller's logs".into())?;
        ensure(p.error_ratio("shop", After) > 0.1, "caller fails".into())?;
        ensure(
            p.error_ratio("payments", After) < 0.01,
            "target healthy".into(),
        )
    });
}

#[test]
fn cert_expired_fails_every_caller_at_once() {
    check("{kind: cert_expired, target: payments, at: 30m}", |p| {
        let expiry = p.max("probe_ssl_earliest_cert_expiry", "payments", &[], After);
        ensure(
            expiry <= p.fault_at().timestamp() as f64,
            "certificate expired at the onset".into(),
        )?;
        ensure(
            p.logs("shop", "certificate", After) > 0,
            "handshake failures in the caller".into(),
        )?;
        ensure(p.error_ratio("shop", After) > 0.3, "caller fails".into())
    });
}

#[test]
fn disk_full_fills_the_volume_then_writes_fail() {
    check(
        "{kind: disk_full, target: orders-db, at: 30m, params: {fill_minutes: 4}}",
        |p| {
            let used = p.max("kubelet_volume_stats_used_bytes", "orders-db", &[], After);
            let capacity = p.max(
                "kubelet_volume_stats_capacity_bytes",
                "orders-db",
                &[],
                After,
            );
            ensure(
                used >= 0.99 * capacity,
                format!("volume {:.0}% full", 100.0 * used / capacity),
            )?;
            ensure(
                p.logs("orders-db", "No space left on device", After) > 0,
                "write errors".into(),
            )?;
            ensure(
                p.error_ratio("shop", After) > p.error_ratio("shop", Before) + 0.05,
                "service errors".into(),
            )
        },
    );
}

#[test]
fn node_failure_takes_down_the_node_and_reschedules_its_pods() {
    check(
        "{kind: node_failure, target: shop, at: 30m, params: {node: node-2}}",
        |p| {
            let down = p.events("NodeNotReady");
            ensure(
                down.iter().any(|e| e.object == "node/node-2"),
                "node NotReady".into(),
            )?;
            let services: std::collections::BTreeSet<_> =
                down.iter().filter_map(|e| e.service.clone()).collect();
            ensure(
                services.contains("shop"),
                format!("target's pod on the node: {services:?}"),
            )?;
            ensure(!p.events("Scheduled").is_empty(), "pods rescheduled".into())
        },
    );
}

#[test]
fn traffic_spike_multiplies_entry_load() {
    check(
        "{kind: traffic_spike, target: edge, at: 30m, params: {multiplier: 4}}",
        |p| {
            let ratio = p.rate("http_requests_total", "edge", &[], After)
                / p.rate("http_requests_total", "edge", &[], Before);
            ensure(ratio > 3.0, format!("entry load ×{ratio:.1}"))?;
            let cpu = p.rate("container_cpu_usage_seconds_total", "shop", &[], After)
                / p.rate("container_cpu_usage_seconds_total", "shop", &[], Before);
            ensure(cpu > 1.8, format!("downstream CPU ×{cpu:.1}"))
        },
    );
}

#[test]
fn cache_failure_collapses_hits_and_moves_load_to_the_database() {
    check("{kind: cache_failure, target: cart-cache, at: 30m}", |p| {
        let hit = |phase| {
            let h = p.rate("redis_keyspace_hits_total", "cart-cache", &[], phase);
            h / (h + p.rate("redis_keyspace_misses_total", "cart-cache", &[], phase)).max(1e-9)
        };
        ensure(
            hit(Before) > 0.8 && hit(After) < 0.2,
            format!("hit ratio {:.2} → {:.2}", hit(Before), hit(After)),
        )?;
        let load = p.rate("pg_stat_statements_calls_total", "orders-db", &[], After)
            / p.rate("pg_stat_statements_calls_total", "orders-db", &[], Before);
        ensure(load > 2.0, format!("database load ×{load:.1}"))?;
        ensure(
            p.latency_ms("http_server_requests_seconds", "shop", &[], After)
                > p.latency_ms("http_server_requests_seconds", "shop", &[], Before),
            "latency up".into(),
        )
    });
}

#[test]
fn rate_limited_answers_429_and_the_caller_errors() {
    check("{kind: rate_limited, target: stripe, at: 30m}", |p| {
        ensure(
            p.max("probe_http_status_code", "stripe", &[], After) == 429.0,
            "probe sees 429".into(),
        )?;
        ensure(
            p.rate(
                "http_client_requests_seconds_count",
                "payments",
                &[("peer", "stripe"), ("outcome", "CLIENT_ERROR")],
                After,
            ) > 0.5,
            "429s at the caller".into(),
        )?;
        ensure(
            p.logs("payments", "429", After) > 0,
            "429 in the caller's logs".into(),
        )?;
        ensure(
            p.error_ratio("payments", After) > 0.05,
            "caller errors".into(),
        )
    });
}

#[test]
fn queue_backlog_grows_lag_while_producers_stay_healthy() {
    check(
        "{kind: queue_backlog, target: orders-queue, at: 30m}",
        |p| {
            let lag = p.max("kafka_consumergroup_lag", "orders-queue", &[], After);
            ensure(
                lag > 10.0
                    * p.max("kafka_consumergroup_lag", "orders-queue", &[], Before)
                        .max(10.0),
                format!("lag {lag:.0}"),
            )?;
            ensure(
                p.error_ratio("shop", After) < 0.02,
                "producer healthy".into(),
            )
        },
    );
}

#[test]
fn a_false_alarm_shows_nothing_beyond_noise() {
    let p = bundle(None);
    for service in ["edge", "shop", "search", "payments", "worker"] {
        let (before, after) = (
            p.error_ratio(service, Before),
            p.error_ratio(service, After),
        );
        assert!(
            after < 0.02 && (after - before).abs() < 0.01,
            "{service}: errors {before:.4} → {after:.4}"
        );
        let (lb, la) = (
            p.latency_ms("http_server_requests_seconds", service, &[], Before),
            p.latency_ms("http_server_requests_seconds", service, &[], After),
        );
        assert!(
            (la / lb - 1.0).abs() < 0.25,
            "{service}: latency {lb:.0} → {la:.0} ms"
        );
    }
    assert!(p.events("OOMKilled").is_empty() && p.events("NodeNotReady").is_empty());
}

/// A rule that already holds on ordinary traffic pages before the fault: `simulate` still
/// writes the bundle (the spec's rule fired) but says why the page misses the fault; the same
/// rule tuned to fire on the fault, or a fixed `alert.at`, says nothing.
#[test]
fn a_rule_that_fires_before_the_fault_is_named() {
    let warnings = |alert: &str| {
        let text = format!(
            "version: 1\nname: early\nseed: 11\nduration: 60m\nstep: 15s\n{TOPOLOGY}faults:\n  - {{kind: bad_deploy, target: shop, at: 30m, params: {{error_rate: 0.6}}}}\nalert: {alert}\nexpect: {{root_cause: {{service: shop, kind: bad_deploy}}}}\n"
        );
        let scenario = Scenario::parse(&text, "early.yaml").expect("valid scenario");
        simulate(&scenario).expect("simulates").warnings
    };
    let early = warnings("{service: edge, signal: latency_p99, threshold: 1, for: 1m}");
    assert!(
        early
            .iter()
            .any(|w| w.contains("before the first fault starts (30m)")),
        "{early:?}"
    );
    let on_time = warnings("{service: edge, signal: error_rate, threshold: 0.1, for: 1m}");
    assert!(on_time.is_empty(), "{on_time:?}");
    let fixed = warnings("{service: edge, signal: error_rate, threshold: 0.1, at: 5m}");
    assert!(fixed.is_empty(), "{fixed:?}");
}
