//! The one query interface every data source implements.

use async_trait::async_trait;

use crate::model::{
    Change, EventQuery, InfraEvent, LogQuery, LogRecord, Series, SeriesSelector, Span, SpanQuery,
    Topology,
};

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached or answered with an error.
    #[error("source `{source_name}` is unavailable: {reason}")]
    Unavailable { source_name: String, reason: String },
    /// The source's data is malformed.
    #[error("source `{source_name}` returned bad data: {reason}")]
    BadData { source_name: String, reason: String },
    /// The query exceeded the source's time limit.
    #[error("source `{source_name}` timed out")]
    Timeout { source_name: String },
}

/// A source of production data, bounded by time windows.
///
/// A source answers what it can; a query it has nothing for returns an empty answer, not an
/// error (a bundle without logs has no logs; a Prometheus has no spans). Answers come in
/// time order. Implementations must be cheap to call concurrently.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// The configured name of this source (`bundle`, `prom-eu`, …), for evidence and errors.
    fn name(&self) -> &str;

    /// Whether the source can be reached and answers, asked by readiness checks: one cheap
    /// request, through the same time limit and breaker as queries. Sources that are files
    /// on disk are always ready.
    async fn check(&self) -> Result<(), SourceError> {
        Ok(())
    }

    /// The service graph, when the source knows it.
    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        Ok(None)
    }

    /// Metric range query: raw samples of every selected series inside the window.
    async fn series(&self, _query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        Ok(Vec::new())
    }

    /// Log search.
    async fn logs(&self, _query: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
        Ok(Vec::new())
    }

    /// Spans.
    async fn spans(&self, _query: &SpanQuery) -> Result<Vec<Span>, SourceError> {
        Ok(Vec::new())
    }

    /// Deploys, config changes, flags, scaling.
    async fn changes(&self, _query: &EventQuery) -> Result<Vec<Change>, SourceError> {
        Ok(Vec::new())
    }

    /// Infrastructure events (restarts, OOMKilled, evictions, node conditions).
    async fn events(&self, _query: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
        Ok(Vec::new())
    }
}
