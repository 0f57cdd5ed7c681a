//! Cairn's own metrics, in Prometheus text: requests by route and status, acknowledgement
//! latency, investigations by outcome.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use cairn_agents::Verdict;

/// Upper bounds of the acknowledgement latency histogram, seconds.
const BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0];

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(&'static str, u16), u64>,
    ack_buckets: [u64; BUCKETS.len()],
    ack_count: u64,
    ack_sum: f64,
    investigations: BTreeMap<&'static str, u64>,
}

/// The counters, shared by handlers and workers.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, route: &'static str, status: u16, took: Duration) {
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c.requests.entry((route, status)).or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                c.ack_buckets[i] += 1;
            }
        }
        c.ack_count += 1;
        c.ack_sum += secs;
    }

    /// Records one finished investigation.
    pub fn investigation(&self, verdict: Verdict) {
        let outcome = match verdict {
            Verdict::RootCauseFound => "root_cause_found",
            Verdict::NoRootCauseFound => "no_root_cause_found",
        };
        let mut c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c.investigations.entry(outcome).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let c = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::from("# TYPE cairn_http_requests_total counter\n");
        for ((route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "cairn_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# TYPE cairn_ack_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "cairn_ack_seconds_bucket{{le=\"{le}\"}} {}",
                c.ack_buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "cairn_ack_seconds_bucket{{le=\"+Inf\"}} {}",
            c.ack_count
        );
        let _ = writeln!(out, "cairn_ack_seconds_sum {}", c.ack_sum);
        let _ = writeln!(out, "cairn_ack_seconds_count {}", c.ack_count);
        out.push_str("# TYPE cairn_investigations_total counter\n");
        for (outcome, n) in &c.investigations {
            let _ = writeln!(
                out,
                "cairn_investigations_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out
    }
}
