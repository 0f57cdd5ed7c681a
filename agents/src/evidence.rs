//! Evidence: one observation from one query, with the numbers that make it matter.

use serde::Serialize;

use cairn_connectors::TimeWindow;

/// Which specialist found a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

/// One observation: what was seen, where, compared to what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub domain: Domain,
    /// The data source that answered.
    pub source: String,
    /// The query that produced it, in words a reader can rerun.
    pub query: String,
    /// When the observation holds.
    pub window: TimeWindow,
    pub observed: f64,
    pub baseline: f64,
    /// Strength in units of baseline noise (robust z); larger is stranger.
    pub score: f64,
    /// One line a person reads.
    pub reason: String,
}
