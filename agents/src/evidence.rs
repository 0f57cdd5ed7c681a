//! Evidence: one observation from one query, with the numbers that make it matter, and the
//! shared ledger every agent writes to.

use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use cairn_connectors::{FaultKind, TimeWindow};

/// Which specialist found a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    Changes,
    Metrics,
    Topology,
    Logs,
    Traces,
    Infrastructure,
    Database,
    Network,
    Precedent,
}

impl Domain {
    /// Its snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Changes => "changes",
            Domain::Metrics => "metrics",
            Domain::Topology => "topology",
            Domain::Logs => "logs",
            Domain::Traces => "traces",
            Domain::Infrastructure => "infrastructure",
            Domain::Database => "database",
            Domain::Network => "network",
            Domain::Precedent => "precedent",
        }
    }
}

/// What an observation is a sign of: the vocabulary that turns evidence into a fault kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A service's own errors rose.
    Errors,
    /// A service's own latency rose.
    Latency,
    /// Traffic into a service rose far above its baseline.
    Load,
    /// Some other series left its baseline.
    Anomaly,
    /// A deploy shortly before the onset.
    Deploy,
    /// A configuration or feature-flag change shortly before the onset.
    ConfigChange,
    /// Error log lines of a kind not seen before the onset.
    NewErrorTemplate,
    /// Memory climbing towards its limit.
    MemoryGrowth,
    /// Containers killed for memory.
    OomKill,
    /// Containers restarting.
    Restart,
    /// CPU at its limit, throttled.
    CpuSaturation,
    /// Clients waiting for, or timing out on, pooled connections.
    PoolExhaustion,
    /// Database statements slower, lock waits.
    SlowQueries,
    /// An external dependency answering slowly.
    ExternalLatency,
    /// An external dependency answering 429.
    RateLimited,
    /// Packets dropped, connections reset.
    PacketLoss,
    /// Names not resolving.
    DnsFailure,
    /// TLS handshakes failing, certificates expired.
    TlsFailure,
    /// A volume full, writes failing.
    DiskFull,
    /// A node not ready, pods evicted.
    NodeFailure,
    /// A cache's hit ratio collapsed or the cache is down.
    CacheMisses,
    /// Consumers falling behind a queue.
    ConsumerLag,
    /// Traces show the time or errors starting in this service.
    TraceOrigin,
    /// A past incident or recorded knowledge points here.
    Precedent,
}

impl Signal {
    /// Its snake_case name, as serialized (`cache_misses`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Errors => "errors",
            Signal::Latency => "latency",
            Signal::Load => "load",
            Signal::Anomaly => "anomaly",
            Signal::Deploy => "deploy",
            Signal::ConfigChange => "config_change",
            Signal::NewErrorTemplate => "new_error_template",
            Signal::MemoryGrowth => "memory_growth",
            Signal::OomKill => "oom_kill",
            Signal::Restart => "restart",
            Signal::CpuSaturation => "cpu_saturation",
            Signal::PoolExhaustion => "pool_exhaustion",
            Signal::SlowQueries => "slow_queries",
            Signal::ExternalLatency => "external_latency",
            Signal::RateLimited => "rate_limited",
            Signal::PacketLoss => "packet_loss",
            Signal::DnsFailure => "dns_failure",
            Signal::TlsFailure => "tls_failure",
            Signal::DiskFull => "disk_full",
            Signal::NodeFailure => "node_failure",
            Signal::CacheMisses => "cache_misses",
            Signal::ConsumerLag => "consumer_lag",
            Signal::TraceOrigin => "trace_origin",
            Signal::Precedent => "precedent",
        }
    }
}

/// Whether an observation argues for its service being the cause, or against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    /// It points at the service (every agent's finding about the present).
    #[default]
    Supports,
    /// It points away from the service: engineers rejected it as the cause of a similar
    /// incident. Ranking lowers the service's confidence by it instead of adding to it.
    Contradicts,
}

impl Stance {
    fn is_supports(&self) -> bool {
        *self == Stance::Supports
    }
}

/// One observation: what was seen, where, compared to what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub domain: Domain,
    /// The service the observation is about (the suspect it supports).
    pub service: String,
    pub signal: Signal,
    /// The data source that answered.
    pub source: String,
    /// The query that produced it, in words a reader can rerun.
    pub query: String,
    /// When the observation holds.
    pub window: TimeWindow,
    pub observed: f64,
    pub baseline: f64,
    /// Strength in `[0, 1]`: how strongly this alone points at the service.
    pub score: f64,
    /// When the change began (epoch ms), when the agent could tell.
    pub onset_ms: Option<i64>,
    /// One line a person reads, with the numbers.
    pub reason: String,
    /// A dashboard, commit or pull request, when the source gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The signal around the onset, a few dozen points, for a sparkline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trend: Vec<f64>,
    /// For or against the service (only precedent argues against).
    #[serde(skip_serializing_if = "Stance::is_supports")]
    pub stance: Stance,
    /// The error-log template (variables masked) a new-template finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The past incident a precedent finding refers to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_ref: Option<i64>,
    /// The knowledge record a precedent finding rests on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_ref: Option<i64>,
    /// The fault kind the evidence names outright (engineers recorded it), rather than one
    /// inferred from its signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names_kind: Option<FaultKind>,
}

impl Evidence {
    /// Evidence with the required parts; observed and baseline 0, supporting its service, no
    /// onset, link, trend, template or references (set them with struct update syntax).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        domain: Domain,
        signal: Signal,
        service: impl Into<String>,
        source: impl Into<String>,
        query: impl Into<String>,
        window: TimeWindow,
        score: f64,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            domain,
            service: service.into(),
            signal,
            source: source.into(),
            query: query.into(),
            window,
            observed: 0.0,
            baseline: 0.0,
            score,
            onset_ms: None,
            reason: reason.into(),
            link: None,
            trend: Vec::new(),
            stance: Stance::Supports,
            template: None,
            incident_ref: None,
            record_ref: None,
            names_kind: None,
        }
    }
}

/// The evidence every agent of one investigation has found so far.
#[derive(Debug, Default)]
pub struct Ledger {
    items: Mutex<Vec<Evidence>>,
}

impl Ledger {
    /// Adds evidence.
    /// An item the ledger already holds (same service, domain, signal and reason, found again
    /// in a later round) is not added twice.
    pub fn record(&self, evidence: impl IntoIterator<Item = Evidence>) {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        for e in evidence {
            let known = items.iter().any(|k| {
                k.service == e.service
                    && k.domain == e.domain
                    && k.signal == e.signal
                    && k.reason == e.reason
            });
            if !known {
                items.push(e);
            }
        }
    }

    /// Everything recorded so far.
    pub fn snapshot(&self) -> Vec<Evidence> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many items have been recorded.
    pub fn len(&self) -> usize {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_are_their_serialized_names() {
        // Fingerprints are stored with these names: they must not drift.
        let all = [
            Signal::Errors,
            Signal::Latency,
            Signal::Load,
            Signal::Anomaly,
            Signal::Deploy,
            Signal::ConfigChange,
            Signal::NewErrorTemplate,
            Signal::MemoryGrowth,
            Signal::OomKill,
            Signal::Restart,
            Signal::CpuSaturation,
            Signal::PoolExhaustion,
            Signal::SlowQueries,
            Signal::ExternalLatency,
            Signal::RateLimited,
            Signal::PacketLoss,
            Signal::DnsFailure,
            Signal::TlsFailure,
            Signal::DiskFull,
            Signal::NodeFailure,
            Signal::CacheMisses,
            Signal::ConsumerLag,
            Signal::TraceOrigin,
            Signal::Precedent,
        ];
        for signal in all {
            assert_eq!(
                serde_json::to_value(signal).ok(),
                Some(serde_json::Value::from(signal.as_str()))
            );
        }
    }
}
