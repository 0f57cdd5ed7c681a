//! Budgets: how much an investigation may ask of the sources — queries, records read, time —
//! enforced by a metering wrapper every agent queries through.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use cairn_connectors::{
    Change, DataSource, EventQuery, InfraEvent, LogQuery, LogRecord, Series, SeriesSelector,
    SourceError, Span, SpanQuery, Topology,
};

/// Limits for one investigation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Queries to the sources.
    pub max_queries: usize,
    /// Records read (samples, log lines, spans, events), a proxy for bytes.
    pub max_records: usize,
    /// Wall time for the whole investigation.
    pub max_time: Duration,
    /// Rounds after the survey.
    pub max_rounds: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_queries: 5_000,
            max_records: 50_000_000,
            max_time: Duration::from_secs(60),
            max_rounds: 3,
        }
    }
}

/// A source that counts what is asked of it and refuses once the budget is spent or the
/// investigation is cancelled.
pub struct Metered<'a> {
    inner: &'a dyn DataSource,
    budget: Budget,
    started: Instant,
    queries: AtomicUsize,
    records: AtomicUsize,
    cancelled: AtomicBool,
}

impl<'a> Metered<'a> {
    pub fn new(inner: &'a dyn DataSource, budget: Budget) -> Self {
        Self {
            inner,
            budget,
            started: Instant::now(),
            queries: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    /// Queries sent so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    /// Records read so far.
    pub fn records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// Time left before the deadline.
    pub fn time_left(&self) -> Duration {
        self.budget.max_time.saturating_sub(self.started.elapsed())
    }

    /// Stops every further query (agents still running get an error and wind down).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the budget or a cancellation stops further work.
    pub fn exhausted(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            || self.queries() >= self.budget.max_queries
            || self.records() >= self.budget.max_records
            || self.time_left().is_zero()
    }

    fn admit(&self) -> Result<(), SourceError> {
        if self.exhausted() {
            return Err(SourceError::Unavailable {
                source_name: self.inner.name().to_owned(),
                reason: "the investigation's budget is spent".to_owned(),
            });
        }
        self.queries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Runs one query, cut off at the investigation's deadline: a source that hangs past
    /// its own time limits (or has none) cannot hold the investigation beyond its budget.
    async fn bounded<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        tokio::time::timeout(self.time_left(), query)
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::Timeout {
                    source_name: self.inner.name().to_owned(),
                })
            })
    }

    fn count(&self, records: usize) {
        self.records.fetch_add(records, Ordering::Relaxed);
    }
}

#[async_trait]
impl DataSource for Metered<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        self.admit()?;
        self.bounded(self.inner.topology()).await
    }

    async fn series(&self, query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        self.admit()?;
        let answer = self.bounded(self.inner.series(query)).await?;
        self.count(answer.iter().map(|s| s.samples.len()).sum());
        Ok(answer)
    }

    async fn logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
        self.admit()?;
        let answer = self.bounded(self.inner.logs(query)).await?;
        self.count(answer.len());
        Ok(answer)
    }

    async fn spans(&self, query: &SpanQuery) -> Result<Vec<Span>, SourceError> {
        self.admit()?;
        let answer = self.bounded(self.inner.spans(query)).await?;
        self.count(answer.len());
        Ok(answer)
    }

    async fn changes(&self, query: &EventQuery) -> Result<Vec<Change>, SourceError> {
        self.admit()?;
        let answer = self.bounded(self.inner.changes(query)).await?;
        self.count(answer.len());
        Ok(answer)
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
        self.admit()?;
        let answer = self.bounded(self.inner.events(query)).await?;
        self.count(answer.len());
        Ok(answer)
    }
}
