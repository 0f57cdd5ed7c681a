//! `logs.jsonl`: what services print — access lines and routine chatter, harmless warnings,
//! and error lines whose templates say why requests failed, in each runtime's own style.

use serde_json::{Map, Value};

use crate::faults::Cause;
use crate::model::{Timeline, POOL_TIMEOUT_MS};
use crate::rng::Rng;
use crate::scenario::NodeKind;
use crate::world::{EdgeKind, Runtime, World};

/// Share of failed requests that leave an error line (log sampling), and the most error
/// lines per service and step (rate limiting of a log shipper under a storm).
const ERROR_LOG_SAMPLING: f64 = 0.25;
const MAX_ERROR_LINES: u64 = 40;

/// One log line before serialisation.
pub(crate) struct Line {
    pub ts_ms: i64,
    pub service: usize,
    pub pod: Option<String>,
    pub level: &'static str,
    pub message: String,
    pub attrs: Map<String, Value>,
}

/// Context for writing lines of one service at one step.
pub(crate) struct Writer<'a> {
    pub world: &'a World,
    pub tl: &'a Timeline,
    pub start_ms: i64,
    pub rng: Rng,
    pub lines: Vec<Line>,
    pub pod_names: &'a dyn Fn(usize, usize) -> String,
}

fn ip(rng: &mut Rng) -> String {
    format!(
        "10.{}.{}.{}",
        20 + rng.below(40),
        rng.below(255),
        2 + rng.below(250)
    )
}

fn class_name(service: &str) -> String {
    service
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}

impl Writer<'_> {
    fn push(&mut self, k: usize, s: usize, level: &'static str, message: String) {
        let step_ms = self.tl.step_s as i64 * 1000;
        let ts_ms = self.start_ms + k as i64 * step_ms + (self.rng.unit() * step_ms as f64) as i64;
        let pods = &self.world.services[s].pods;
        let pod = if pods.is_empty() {
            None
        } else {
            let p = pods[self.rng.below(pods.len())];
            self.tl.pod(k, p).up.then(|| (self.pod_names)(p, k))
        };
        if pod.is_none() && !pods.is_empty() {
            return;
        }
        self.lines.push(Line {
            ts_ms,
            service: s,
            pod,
            level,
            message,
            attrs: Map::new(),
        });
    }

    /// Every line of every service at step `k`.
    pub(crate) fn step(&mut self, k: usize) {
        for s in 0..self.world.services.len() {
            if !self.world.in_cluster(s) {
                continue;
            }
            self.routine(k, s);
            self.errors(k, s);
            self.fault_chatter(k, s);
        }
    }

    fn route(&mut self, s: usize) -> String {
        let routes = &self.world.services[s].routes;
        if routes.is_empty() {
            "/".to_owned()
        } else {
            routes[self.rng.below(routes.len())]
                .replace("{id}", &self.rng.below(90_000).to_string())
                .replace("{uuid}", &self.rng.hex(8))
                .replace("{key}", &format!("k{}", self.rng.below(500)))
        }
    }

    /// Access lines, routine chatter and harmless warnings.
    fn routine(&mut self, k: usize, s: usize) {
        let service = &self.world.services[s];
        let st = self.tl.service(k, s);
        let lines = self.rng.poisson(1.2);
        for _ in 0..lines {
            let message = match (service.kind, service.runtime) {
                (NodeKind::Gateway, _) => {
                    let ms = st.latency_ms * self.rng.range(0.5, 1.6);
                    format!("{} - - \"GET {} HTTP/1.1\" 200 {} {:.3}", ip(&mut self.rng), self.route(s), 200 + self.rng.below(4000), ms / 1000.0)
                }
                (_, Runtime::Jvm) => {
                    let route = self.route(s);
                    format!("Completed GET {route} with status 200 in {} ms", (st.latency_ms * self.rng.range(0.5, 1.6)).round())
                }
                (_, Runtime::Go) => {
                    let route = self.route(s);
                    format!("request completed method=GET path={route} status=200 duration={:.1}ms", st.latency_ms * self.rng.range(0.5, 1.6))
                }
                (_, Runtime::Python) => {
                    let route = self.route(s);
                    format!("{} - \"GET {route} HTTP/1.1\" 200 {}", ip(&mut self.rng), 100 + self.rng.below(3000))
                }
                (_, Runtime::Node) => {
                    let route = self.route(s);
                    format!("request completed {{\"method\":\"GET\",\"url\":\"{route}\",\"statusCode\":200,\"responseTime\":{:.0}}}", st.latency_ms * self.rng.range(0.5, 1.6))
                }
                (_, Runtime::Postgres) => match self.rng.below(3) {
                    0 => format!("checkpoint complete: wrote {} buffers ({:.1}%); 0 WAL file(s) added, 0 removed, 1 recycled; write={:.3} s", 100 + self.rng.below(3000), self.rng.range(0.5, 9.0), self.rng.range(0.5, 30.0)),
                    1 => format!("automatic vacuum of table \"app.public.{}\": index scans: 1", *self.rng.pick(&["orders", "items", "accounts", "events", "sessions"])),
                    _ => format!("connection authorized: user=app database=app application_name={}", self.caller_name(s)),
                },
                (_, Runtime::Redis) => match self.rng.below(2) {
                    0 => format!("{} changes in 60 seconds. Saving...", 1000 + self.rng.below(90_000)),
                    _ => "Background saving terminated with success".to_owned(),
                },
                (_, Runtime::Kafka) => format!(
                    "[Log partition={}-{}, dir=/var/lib/kafka/data] Rolled new log segment at offset {} in {} ms.",
                    service.name,
                    self.rng.below(12),
                    self.rng.below(90_000_000),
                    1 + self.rng.below(9)
                ),
                (_, Runtime::Remote) => continue,
            };
            self.push(k, s, "info", message);
        }
        // Harmless warnings: present on a good day, not a sign of anything.
        if self.rng.chance(0.08) {
            let message = match service.kind {
                NodeKind::Database => format!("temporary file: path \"base/pgsql_tmp/pgsql_tmp{}.0\", size {}", 1000 + self.rng.below(9000), 1_000_000 + self.rng.below(9_000_000)),
                NodeKind::Cache => "WARNING overcommit_memory is set to 0! Background save may fail under low memory condition.".to_owned(),
                NodeKind::Queue => format!("[GroupCoordinator 1]: Member consumer-{}-1 in group {} has failed, removing it from the group", self.rng.hex(6), self.caller_name(s)),
                _ => match self.rng.below(4) {
                    0 => format!("Slow request {} took {} ms", self.route(s), (st.latency_ms * self.rng.range(3.0, 6.0)).round()),
                    1 => format!("Deprecated header X-Client-Version used by client {}", self.rng.hex(6)),
                    2 => format!("Retrying request to {} (attempt 2 of 2)", self.dep_name(s)),
                    _ => format!("Certificate for internal CA expires in {} days", 20 + self.rng.below(60)),
                },
            };
            self.push(k, s, "warn", message);
        }
    }

    fn caller_name(&mut self, s: usize) -> String {
        let callers = &self.world.services[s].callers;
        if callers.is_empty() {
            "app".to_owned()
        } else {
            self.world.services[self.world.edges[callers[self.rng.below(callers.len())]].from]
                .name
                .clone()
        }
    }

    fn dep_name(&mut self, s: usize) -> String {
        let deps = &self.world.services[s].deps;
        if deps.is_empty() {
            "upstream".to_owned()
        } else {
            self.world.services[self.world.edges[deps[self.rng.below(deps.len())]].to]
                .name
                .clone()
        }
    }

    /// Error lines: as many as failed requests (sampled), each naming its cause.
    fn errors(&mut self, k: usize, s: usize) {
        let st = self.tl.service(k, s);
        let expected = if matches!(
            self.world.services[s].kind,
            NodeKind::Gateway | NodeKind::Service
        ) {
            st.errors as f64
        } else {
            st.rate * st.error * self.tl.step_s as f64
        };
        let count = self
            .rng
            .poisson((expected * ERROR_LOG_SAMPLING).min(MAX_ERROR_LINES as f64 * 3.0))
            .min(MAX_ERROR_LINES);
        if count == 0 {
            return;
        }
        let total: f64 = st.causes.iter().sum();
        for _ in 0..count {
            let mut pick = self.rng.unit() * total;
            let mut cause = Cause::Baseline;
            for c in Cause::ALL {
                pick -= st.causes[c as usize];
                if pick <= 0.0 {
                    cause = c;
                    break;
                }
            }
            let message = self.error_message(k, s, cause);
            let level = if cause == Cause::CacheDown {
                "warn"
            } else {
                "error"
            };
            self.push(k, s, level, message);
        }
    }

    /// The dependency edge of `s` failing most for `cause` at step `k`.
    fn failing_edge(&mut self, k: usize, s: usize, cause: Cause) -> Option<usize> {
        let deps = &self.world.services[s].deps;
        deps.iter()
            .copied()
            .filter(|&e| {
                self.tl.edge(k, e).cause == Some(cause)
                    || cause == Cause::Upstream && self.tl.edge(k, e).error > 0.0
            })
            .max_by(|&a, &b| {
                self.tl
                    .edge(k, a)
                    .error
                    .total_cmp(&self.tl.edge(k, b).error)
            })
    }

    fn error_message(&mut self, k: usize, s: usize, cause: Cause) -> String {
        let service = &self.world.services[s];
        let runtime = service.runtime;
        let class = class_name(&service.name);
        let edge = if cause == Cause::Pool {
            // The pool belongs to a database edge.
            self.world.services[s]
                .deps
                .iter()
                .copied()
                .find(|&e| self.world.edges[e].kind == EdgeKind::Database)
        } else {
            self.failing_edge(k, s, cause)
        };
        let peer = match edge {
            Some(e) => self.world.services[self.world.edges[e].to].name.clone(),
            None => self.dep_name(s),
        };
        let timeout = edge.map_or(2000.0, |e| self.world.edges[e].timeout_ms);
        let route = self.route(s);
        match cause {
            Cause::Baseline => match runtime {
                Runtime::Jvm => format!("Request {route} failed: java.lang.IllegalArgumentException: invalid page token"),
                Runtime::Go => format!("handler error path={route} err=\"invalid request: missing field\""),
                Runtime::Postgres => format!("duplicate key value violates unique constraint \"{}_pkey\"", service.name.replace('-', "_")),
                _ => format!("Unhandled validation error on {route}: bad request body"),
            },
            Cause::Deploy => match runtime {
                Runtime::Jvm => format!(
                    "java.lang.NullPointerException: Cannot invoke \"{class}Request.getItems()\" because \"request\" is null\n\tat com.acme.{}.{class}Service.handle({class}Service.java:{})",
                    service.name.replace('-', ""),
                    100 + self.rng.below(300)
                ),
                Runtime::Go => format!("panic recovered: runtime error: invalid memory address or nil pointer dereference path={route}"),
                Runtime::Python => format!("TypeError: 'NoneType' object is not subscriptable (in {}.handlers.process_{})", service.name.replace('-', "_"), self.rng.below(9)),
                _ => "TypeError: Cannot read properties of undefined (reading 'items')".to_owned(),
            },
            Cause::Config => format!("request failed after config reload: upstream_timeout_ms=50 exceeded calling {peer} (feature path {route})"),
            Cause::Overload => format!("rejecting request {route}: server overloaded ({} requests queued)", 200 + self.rng.below(800)),
            Cause::Unavailable => format!("upstream connect error or disconnect/reset before headers. reset reason: connection failure (calling {peer})"),
            Cause::Pool => match runtime {
                Runtime::Jvm => format!("HikariPool-1 - Connection is not available, request timed out after {POOL_TIMEOUT_MS}ms."),
                Runtime::Go => format!("acquire connection from pool {peer}: pool timed out after {POOL_TIMEOUT_MS}ms"),
                Runtime::Python => format!("sqlalchemy.exc.TimeoutError: QueuePool limit of size 20 overflow 0 reached, connection timed out, timeout {:.2}", POOL_TIMEOUT_MS / 1000.0),
                _ => format!("TimeoutError: pool timed out acquiring a connection to {peer} after {POOL_TIMEOUT_MS}ms"),
            },
            Cause::Disk => match runtime {
                Runtime::Postgres => format!("could not write to file \"pg_wal/xlogtemp.{}\": No space left on device", 100 + self.rng.below(900)),
                Runtime::Redis => "Write error saving DB on disk: No space left on device".to_owned(),
                Runtime::Kafka => "Error while appending records to partition: java.io.IOException: No space left on device".to_owned(),
                Runtime::Jvm => format!("java.io.IOException: No space left on device (writing /var/data/{}/spool)", service.name),
                _ => format!("write /var/data/{}/spool/{}.tmp: no space left on device", service.name, self.rng.hex(8)),
            },
            Cause::CacheDown => format!("Redis connection to {peer}:6379 failed: Connection refused; falling back to database"),
            Cause::Upstream => {
                let status = edge.and_then(|e| {
                    let to = self.world.edges[e].to;
                    (self.world.services[to].kind == NodeKind::Database).then_some(0)
                });
                match status {
                    Some(_) => format!("query failed on {peer}: ERROR: canceling statement due to statement timeout"),
                    None => format!("call to {peer} failed: {} {}", 500, "Internal Server Error"),
                }
            }
            Cause::Timeout => match runtime {
                Runtime::Jvm => format!("java.net.SocketTimeoutException: Read timed out calling {peer} (timeout {timeout:.0} ms)"),
                Runtime::Go => format!("call {peer}: context deadline exceeded (Client.Timeout exceeded while awaiting headers) after {timeout:.0}ms"),
                _ => format!("Timeout calling {peer}: no response after {timeout:.0} ms"),
            },
            Cause::Reset => match runtime {
                Runtime::Jvm => format!("java.net.SocketException: Connection reset (calling {peer})"),
                _ => format!("read tcp {}:{}->{}:8080: read: connection reset by peer (calling {peer})", ip(&mut self.rng), 30000 + self.rng.below(30000), ip(&mut self.rng)),
            },
            Cause::Dns => match runtime {
                Runtime::Jvm => format!("java.net.UnknownHostException: {peer}.prod.svc.cluster.local: Name or service not known"),
                _ => format!("dial tcp: lookup {peer}.prod.svc.cluster.local on 10.96.0.10:53: no such host"),
            },
            Cause::Tls => match runtime {
                Runtime::Jvm => format!("javax.net.ssl.SSLHandshakeException: PKIX path validation failed: java.security.cert.CertificateExpiredException: certificate expired (calling {peer})"),
                _ => format!("Get \"https://{peer}/\": tls: failed to verify certificate: x509: certificate has expired or is not yet valid"),
            },
            Cause::RateLimited => format!("{peer} responded 429 Too Many Requests (Retry-After: {}s)", self.retry_after(k, edge)),
        }
    }

    fn retry_after(&self, _k: usize, _edge: Option<usize>) -> u64 {
        self.tl.retry_after_s
    }

    /// Lines a fault leaves beyond failed requests: slow-query logs, GC warnings, lag,
    /// handshake errors on the server side, evictions.
    fn fault_chatter(&mut self, k: usize, s: usize) {
        let service = &self.world.services[s];
        let st = self.tl.service(k, s);
        match service.kind {
            // Statements over log_min_duration_statement (250 ms) are logged.
            NodeKind::Database if st.query_ms + st.slow_ms > 250.0 => {
                let n = self.rng.poisson(3.0).min(6);
                for _ in 0..n {
                    let ms = (st.query_ms + st.slow_ms) * self.rng.range(0.7, 2.0);
                    let table = *self.rng.pick(&["orders", "order_items", "accounts"]);
                    self.push(k, s, "warn", format!("duration: {ms:.3} ms  execute <unnamed>: SELECT o.* FROM {table} o JOIN customers c ON c.id = o.customer_id WHERE o.status = $1 ORDER BY o.created_at DESC"));
                }
                if st.lock_ms > 100.0 && self.rng.chance(0.7) {
                    let pid = 1000 + self.rng.below(30000);
                    let tx = 100_000 + self.rng.below(900_000);
                    self.push(k, s, "warn", format!("process {pid} still waiting for ShareLock on transaction {tx} after 1000.051 ms"));
                }
            }
            NodeKind::Cache if st.hit_ratio < self.world.services[s].hit_ratio * 0.6 => {
                if self.rng.chance(0.6) {
                    let keys = 10_000 + self.rng.below(500_000);
                    self.push(
                        k,
                        s,
                        "warn",
                        format!(
                            "Evicted {keys} keys: used_memory above maxmemory (policy allkeys-lru)"
                        ),
                    );
                }
            }
            NodeKind::Queue if st.lag > (st.rate * 60.0).max(500.0) => {
                if self.rng.chance(0.4) {
                    let group = self.consumer_name(s);
                    let generation = 10 + self.rng.below(90);
                    self.push(k, s, "warn", format!("[GroupCoordinator 1]: Preparing to rebalance group {group} in state PreparingRebalance with old generation {generation} (reason: consumer poll timeout has expired)"));
                }
            }
            _ => {}
        }
        // Consumers struggling with slow messages.
        for &e in &service.deps {
            if self.world.edges[e].kind == EdgeKind::Consume {
                let q = self.world.edges[e].to;
                let qs = self.tl.service(k, q);
                if qs.lag > (qs.rate * 60.0).max(500.0) && self.rng.chance(0.5) {
                    let topic = self.world.services[q].name.clone();
                    self.push(k, s, "warn", format!("Processing of batch from {topic} took {} ms; consumer is falling behind", (st.latency_ms * 50.0).round()));
                }
            }
        }
        // GC pressure before an OOM kill.
        if st.gc > 0.05 && self.rng.chance(0.6) {
            let message = match service.runtime {
                Runtime::Jvm => format!(
                    "[gc] Pause Full (G1 Compaction Pause) {}M->{}M({}M) {:.3}ms",
                    (service.mem_limit_mb * 0.97) as u64,
                    (service.mem_limit_mb * 0.93) as u64,
                    service.mem_limit_mb as u64,
                    st.gc * 4000.0
                ),
                Runtime::Go => format!(
                    "gc pressure: heap {} MB of {} MB limit, GC CPU fraction {:.2}",
                    (service.mem_limit_mb * 0.95) as u64,
                    service.mem_limit_mb as u64,
                    st.gc
                ),
                _ => format!(
                    "memory usage high: {:.0}% of container limit",
                    90.0 + st.gc * 20.0
                ),
            };
            self.push(k, s, "warn", message);
        }
        // A server whose certificate expired sees handshakes fail.
        if st.cert_expired && self.rng.chance(0.8) {
            let from = ip(&mut self.rng);
            let port = 30000 + self.rng.below(30000);
            self.push(k, s, "error", format!("http: TLS handshake error from {from}:{port}: remote error: tls: bad certificate"));
        }
    }

    fn consumer_name(&mut self, q: usize) -> String {
        let consumers: Vec<usize> = self.world.services[q]
            .callers
            .iter()
            .filter(|&&e| self.world.edges[e].kind == EdgeKind::Consume)
            .map(|&e| self.world.edges[e].from)
            .collect();
        if consumers.is_empty() {
            "consumers".to_owned()
        } else {
            self.world.services[consumers[self.rng.below(consumers.len())]]
                .name
                .clone()
        }
    }

    /// Lines around a restart: the kill, then the start-up banner.
    pub(crate) fn restart(&mut self, k: usize, p: usize, oom: bool) {
        let s = self.world.pods[p].service;
        let service = &self.world.services[s];
        let pod = (self.pod_names)(p, k);
        let step_ms = self.tl.step_s as i64 * 1000;
        let ts = self.start_ms + k as i64 * step_ms;
        if oom {
            let message = match service.runtime {
                Runtime::Jvm => "java.lang.OutOfMemoryError: Java heap space".to_owned(),
                Runtime::Go => "fatal error: runtime: out of memory".to_owned(),
                Runtime::Python => "MemoryError".to_owned(),
                Runtime::Node => "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory".to_owned(),
                _ => "Out of memory: killed process".to_owned(),
            };
            self.lines.push(Line {
                ts_ms: ts - 500,
                service: s,
                pod: Some(pod.clone()),
                level: "error",
                message,
                attrs: Map::new(),
            });
        }
        let banner = match service.runtime {
            Runtime::Jvm => format!(
                "Started {}Application in {:.3} seconds (process running for {:.3})",
                class_name(&service.name),
                self.rng.range(8.0, 20.0),
                self.rng.range(9.0, 22.0)
            ),
            _ => format!("{} starting: listening on :8080", service.name),
        };
        self.lines.push(Line {
            ts_ms: ts + 20_000,
            service: s,
            pod: Some(pod),
            level: "info",
            message: banner,
            attrs: Map::new(),
        });
    }
}
