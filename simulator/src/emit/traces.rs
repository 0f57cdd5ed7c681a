//! `traces.jsonl`: sampled requests walked through the call graph, one span per hop, with
//! errors placed where they start and carried up to the root, as a tracer would record them.
//!
//! Sampling is head-based (a few traces per entry point and step) plus tail-based for
//! errors (failed traces are kept more often), as production tracing usually runs.

use serde_json::{Map, Value};

use cairn_connectors::{Span, SpanStatus};

use crate::faults::Cause;
use crate::model::Timeline;
use crate::rng::Rng;
use crate::scenario::NodeKind;
use crate::world::{EdgeKind, World};

const HEAD_SAMPLES: usize = 1;
const TAIL_ATTEMPTS: usize = 3;
const MAX_SPANS: usize = 40;
const MAX_DEPTH: usize = 8;

/// Builds the spans of step `k`.
pub(crate) struct Tracer<'a> {
    pub world: &'a World,
    pub tl: &'a Timeline,
    pub start_ms: i64,
    pub rng: Rng,
    pub spans: Vec<(i64, Span)>,
}

struct Trace {
    id: String,
    spans: Vec<(i64, Span)>,
    failed: bool,
}

impl Tracer<'_> {
    pub(crate) fn step(&mut self, k: usize) {
        let step_ms = self.tl.step_s as f64 * 1000.0;
        for s in 0..self.world.services.len() {
            let service = &self.world.services[s];
            if service.entry_share <= 0.0 || self.tl.service(k, s).rate <= 0.0 {
                continue;
            }
            for attempt in 0..HEAD_SAMPLES + TAIL_ATTEMPTS {
                let start = self.start_ms as f64 + k as f64 * step_ms + self.rng.unit() * step_ms;
                let mut trace = Trace {
                    id: self.rng.hex(32),
                    spans: Vec::new(),
                    failed: false,
                };
                let (_, failed) = self.span(&mut trace, k, s, None, start, 0, "server");
                trace.failed = failed;
                // Head samples are kept; the extra attempts only when they failed.
                if attempt < HEAD_SAMPLES || trace.failed {
                    self.spans.extend(trace.spans);
                }
            }
        }
    }

    /// Records service `s` handling a request from `start_ms`; returns (duration, failed).
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        trace: &mut Trace,
        k: usize,
        s: usize,
        parent: Option<String>,
        start_ms: f64,
        depth: usize,
        role: &str,
    ) -> (f64, bool) {
        let st = self.tl.service(k, s);
        let service = &self.world.services[s];
        let span_id = self.rng.hex(16);
        let slot = trace.spans.len();
        trace.spans.push((0, placeholder()));
        let own_latency = (st.latency_ms - self.downstream_mean(k, s)).max(0.2);
        let mut elapsed = own_latency * (self.rng.normal() * st.sigma * 0.6).exp() * 0.5;
        let own_share: f64 = own_error(st);
        let mut failed = self.rng.chance(own_share);
        let mut error_type: Option<String> = failed.then(|| "internal".to_owned());
        let (mut cursor, mut children_end) = (0.0_f64, 0.0_f64);
        if depth < MAX_DEPTH && trace.spans.len() < MAX_SPANS && !failed {
            let deps = service.deps.clone();
            let routed: Vec<usize> = deps
                .iter()
                .copied()
                .filter(|&e| {
                    self.world.edges[e].kind == EdgeKind::Call
                        && self.world.edges[e].calls < 1.0
                        && service.kind == NodeKind::Gateway
                })
                .collect();
            let chosen_route = if routed.is_empty() {
                None
            } else {
                let mut pick = self.rng.unit()
                    * routed
                        .iter()
                        .map(|&e| self.world.edges[e].calls)
                        .sum::<f64>();
                routed
                    .iter()
                    .copied()
                    .find(|&e| {
                        pick -= self.world.edges[e].calls;
                        pick <= 0.0
                    })
                    .or(routed.last().copied())
            };
            for e in deps {
                let def = &self.world.edges[e];
                if def.kind == EdgeKind::Consume {
                    continue;
                }
                let called = if routed.contains(&e) {
                    Some(e) == chosen_route
                } else {
                    self.rng.chance(def.calls.min(1.0))
                };
                if !called || trace.spans.len() >= MAX_SPANS {
                    continue;
                }
                let (took, child_failed) =
                    self.call(trace, k, e, &span_id, start_ms + elapsed + cursor, depth);
                // Calls overlap: later ones start before earlier ones end.
                cursor += crate::model::PARALLEL_SHARE * took;
                children_end =
                    children_end.max(cursor + took * (1.0 - crate::model::PARALLEL_SHARE));
                if child_failed && def.kind != EdgeKind::Cache {
                    failed = true;
                    error_type = Some("upstream".to_owned());
                    break;
                }
            }
        }
        elapsed += children_end + own_latency * 0.5 * self.rng.range(0.6, 1.4);
        let mut attrs = Map::new();
        attrs.insert("span.kind".to_owned(), Value::from(role));
        if let Some(kind) = &error_type {
            attrs.insert("error.type".to_owned(), Value::from(kind.as_str()));
        }
        let status = if failed { 500 } else { 200 };
        attrs.insert("http.status_code".to_owned(), Value::from(status));
        let route = service
            .routes
            .first()
            .cloned()
            .unwrap_or_else(|| "/".to_owned());
        trace.spans[slot] = (
            start_ms as i64,
            Span {
                ts: crate::emit::at(start_ms as i64),
                trace_id: trace.id.clone(),
                span_id,
                parent_span_id: parent,
                service: service.name.clone(),
                operation: format!("GET {route}"),
                duration_ms: round3(elapsed),
                status: Some(if failed {
                    SpanStatus::Error
                } else {
                    SpanStatus::Ok
                }),
                attrs: attrs.into(),
            },
        );
        (elapsed, failed)
    }

    /// The caller's client span for edge `e`, and the callee's server span when reached.
    fn call(
        &mut self,
        trace: &mut Trace,
        k: usize,
        e: usize,
        parent: &str,
        start_ms: f64,
        depth: usize,
    ) -> (f64, bool) {
        let def = &self.world.edges[e];
        let to = def.to;
        let callee = &self.world.services[to];
        let edge = self.tl.edge(k, e);
        let client_id = self.rng.hex(16);
        let slot = trace.spans.len();
        trace.spans.push((0, placeholder()));
        let mut attrs = Map::new();
        attrs.insert("span.kind".to_owned(), Value::from("client"));
        attrs.insert("peer.service".to_owned(), Value::from(callee.name.as_str()));
        // An edge fault strikes before the callee sees the request.
        let edge_fault = edge.cause.filter(|c| {
            matches!(
                c,
                Cause::Dns | Cause::Tls | Cause::Reset | Cause::RateLimited | Cause::Timeout
            )
        });
        let edge_share = match edge_fault {
            Some(_) => edge.error,
            None => 0.0,
        };
        let (took, failed, operation) = if edge_fault.is_some() && self.rng.chance(edge_share) {
            let cause = edge_fault.unwrap_or(Cause::Timeout);
            let (took, kind) = match cause {
                Cause::Timeout => (def.timeout_ms, "timeout"),
                Cause::Dns => (self.rng.range(1.0, 20.0), "dns"),
                Cause::Tls => (self.rng.range(2.0, 15.0), "tls_handshake"),
                Cause::Reset => (self.rng.range(5.0, 400.0), "connection_reset"),
                _ => (edge.latency_ms * 0.3, "http_429"),
            };
            attrs.insert("error.type".to_owned(), Value::from(kind));
            if cause == Cause::RateLimited {
                attrs.insert("http.status_code".to_owned(), Value::from(429));
            }
            (took, true, operation_of(callee.kind, &callee.name))
        } else if matches!(callee.kind, NodeKind::Service | NodeKind::Gateway) {
            let (took, failed) = self.span(
                trace,
                k,
                to,
                Some(client_id.clone()),
                start_ms + 0.3,
                depth + 1,
                "server",
            );
            (took + 0.6, failed, operation_of(callee.kind, &callee.name))
        } else {
            // Databases, caches, queues and externals are not traced inside: the client span
            // is all there is.
            let st = self.tl.service(k, to);
            let mean = match callee.kind {
                NodeKind::Database => st.query_ms,
                _ => st.latency_ms,
            };
            let took = mean * (self.rng.normal() * st.sigma.max(0.3)).exp()
                / (st.sigma.max(0.3).powi(2) / 2.0).exp();
            let failed = callee.kind != NodeKind::Cache && self.rng.chance(st.error.min(1.0));
            if failed {
                attrs.insert("error.type".to_owned(), Value::from("dependency_error"));
            }
            if callee.kind == NodeKind::Database {
                attrs.insert("db.system".to_owned(), Value::from("postgresql"));
                attrs.insert(
                    "db.statement".to_owned(),
                    Value::from("SELECT o.* FROM orders o WHERE o.customer_id = $1"),
                );
            }
            (
                took.min(def.timeout_ms),
                failed,
                operation_of(callee.kind, &callee.name),
            )
        };
        trace.spans[slot] = (
            start_ms as i64,
            Span {
                ts: crate::emit::at(start_ms as i64),
                trace_id: trace.id.clone(),
                span_id: client_id,
                parent_span_id: Some(parent.to_owned()),
                service: self.world.services[def.from].name.clone(),
                operation,
                duration_ms: round3(took),
                status: Some(if failed {
                    SpanStatus::Error
                } else {
                    SpanStatus::Ok
                }),
                attrs: attrs.into(),
            },
        );
        (took, failed)
    }

    /// The part of a service's mean latency that its dependencies account for.
    fn downstream_mean(&self, k: usize, s: usize) -> f64 {
        self.world.services[s]
            .deps
            .iter()
            .filter(|&&e| self.world.edges[e].kind != EdgeKind::Consume)
            .map(|&e| self.world.edges[e].calls.min(3.0) * self.tl.edge(k, e).latency_ms)
            .fold((0.0_f64, 0.0_f64), |(sum, max), v| (sum + v, max.max(v)))
            .pipe(|(sum, max)| max + crate::model::PARALLEL_SHARE * (sum - max))
    }
}

/// `value.pipe(f)` = `f(value)`, to keep a fold readable.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<A, B> Pipe for (A, B) {}

/// The share of requests failing in the service itself (not in what it calls).
fn own_error(st: &crate::model::ServiceState) -> f64 {
    let inherited = [
        Cause::Upstream,
        Cause::Timeout,
        Cause::Reset,
        Cause::Dns,
        Cause::Tls,
        Cause::RateLimited,
    ];
    let own: f64 = Cause::ALL
        .iter()
        .filter(|c| !inherited.contains(c))
        .map(|c| st.causes[*c as usize])
        .sum();
    own.min(1.0)
}

fn operation_of(kind: NodeKind, name: &str) -> String {
    match kind {
        NodeKind::Database => format!("SELECT {name}"),
        NodeKind::Cache => "GET".to_owned(),
        NodeKind::Queue => format!("{name} publish"),
        NodeKind::External => format!("POST https://{name}"),
        _ => format!("HTTP GET {name}"),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn placeholder() -> Span {
    Span {
        ts: crate::emit::at(0),
        trace_id: String::new(),
        span_id: String::new(),
        parent_span_id: None,
        service: String::new(),
        operation: String::new(),
        duration_ms: 0.0,
        status: None,
        attrs: Default::default(),
    }
}
