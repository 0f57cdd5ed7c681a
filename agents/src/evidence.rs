//! Evidence: one observation from one query, with the numbers that make it matter, and the
//! shared ledger every agent writes to.

use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use cairn_connectors::TimeWindow;

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
}

impl Evidence {
    /// Evidence with the required parts; observed and baseline 0, no onset, link or trend
    /// (set them with struct update syntax).
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
