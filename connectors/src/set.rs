//! Several data sources answering as one.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;

use crate::model::{
    Change, EventQuery, InfraEvent, LogQuery, LogRecord, Series, SeriesSelector, ServiceNode, Span,
    SpanQuery, Topology,
};
use crate::source::{DataSource, SourceError};

/// Failures kept for [`SourceSet::failures`]; a long-lived set over a source that stays down
/// must not grow without bound.
const MAX_FAILURES_KEPT: usize = 256;

/// One query a source failed to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFailure {
    /// The failing source's name.
    pub source: String,
    /// Which query failed: `topology`, `series`, `logs`, `spans`, `changes` or `events`.
    pub query: &'static str,
    /// The source's error, as text.
    pub error_text: String,
}

/// Several sources as one: every query goes to each source at once and the answers merge.
///
/// A source that fails is skipped and its failure recorded; only when every source fails
/// does the query fail.
pub struct SourceSet {
    sources: Vec<Arc<dyn DataSource>>,
    failures: Mutex<Vec<SourceFailure>>,
    /// The merged topology, read once: a set lives for one investigation, which sees one
    /// map of the system however many of its steps ask (a failed read is not kept).
    topology: tokio::sync::OnceCell<Option<Topology>>,
}

impl SourceSet {
    /// Combines `sources`; an empty set answers every query with nothing.
    pub fn new(sources: Vec<Arc<dyn DataSource>>) -> Self {
        Self {
            sources,
            failures: Mutex::new(Vec::new()),
            topology: tokio::sync::OnceCell::new(),
        }
    }

    /// The combined sources, in the order given.
    pub fn sources(&self) -> &[Arc<dyn DataSource>] {
        &self.sources
    }

    /// The failures recorded so far, oldest first (the first 256 are kept).
    pub fn failures(&self) -> Vec<SourceFailure> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One line per source that failed, for people: which source, how many queries of
    /// which kinds, and its first error (`prom-eu could not answer 4 queries (series): …`).
    pub fn unreadable(&self) -> Vec<String> {
        let failures = self.failures();
        let mut by_source: Vec<(&str, Vec<&SourceFailure>)> = Vec::new();
        for f in &failures {
            match by_source.iter_mut().find(|(name, _)| *name == f.source) {
                Some((_, list)) => list.push(f),
                None => by_source.push((&f.source, vec![f])),
            }
        }
        by_source
            .into_iter()
            .map(|(name, list)| {
                let mut queries: Vec<&str> = list.iter().map(|f| f.query).collect();
                queries.sort_unstable();
                queries.dedup();
                let n = list.len();
                format!(
                    "{name} could not answer {n} quer{} ({}): {}",
                    if n == 1 { "y" } else { "ies" },
                    queries.join(", "),
                    list[0].error_text
                )
            })
            .collect()
    }

    /// Keeps the answers of the sources that answered, in source order, and records the rest.
    fn settle<T>(
        &self,
        query: &'static str,
        answers: Vec<Result<T, SourceError>>,
    ) -> Result<Vec<T>, SourceError> {
        let mut answered = Vec::with_capacity(answers.len());
        let mut failed = Vec::new();
        for (source, answer) in self.sources.iter().zip(answers) {
            match answer {
                Ok(answer) => answered.push(answer),
                Err(e) => {
                    tracing::warn!(
                        source = source.name(),
                        query,
                        error = %e,
                        "source failed; answering without it"
                    );
                    failed.push(SourceFailure {
                        source: source.name().to_owned(),
                        query,
                        error_text: e.to_string(),
                    });
                }
            }
        }
        if answered.is_empty() && !failed.is_empty() {
            let reasons: Vec<&str> = failed.iter().map(|f| f.error_text.as_str()).collect();
            let reason = format!("every source failed: {}", reasons.join("; "));
            self.record(failed);
            return Err(SourceError::Unavailable {
                source_name: self.name().to_owned(),
                reason,
            });
        }
        self.record(failed);
        Ok(answered)
    }

    fn record(&self, failed: Vec<SourceFailure>) {
        let mut kept = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_FAILURES_KEPT.saturating_sub(kept.len());
        kept.extend(failed.into_iter().take(room));
    }
}

#[async_trait]
impl DataSource for SourceSet {
    fn name(&self) -> &str {
        "sources"
    }

    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        self.topology
            .get_or_try_init(|| async {
                let answers = join_all(self.sources.iter().map(|s| s.topology())).await;
                Ok(merge_topologies(self.settle("topology", answers)?))
            })
            .await
            .cloned()
    }

    async fn series(&self, query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        let answers = join_all(self.sources.iter().map(|s| s.series(query))).await;
        Ok(merge_series(self.settle("series", answers)?))
    }

    async fn logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
        let answers = join_all(self.sources.iter().map(|s| s.logs(query))).await;
        Ok(merge_in_time(
            self.settle("logs", answers)?,
            |r| r.ts,
            Some(query.limit),
        ))
    }

    async fn spans(&self, query: &SpanQuery) -> Result<Vec<Span>, SourceError> {
        let answers = join_all(self.sources.iter().map(|s| s.spans(query))).await;
        Ok(merge_in_time(
            self.settle("spans", answers)?,
            |s| s.ts,
            Some(query.limit),
        ))
    }

    async fn changes(&self, query: &EventQuery) -> Result<Vec<Change>, SourceError> {
        let answers = join_all(self.sources.iter().map(|s| s.changes(query))).await;
        Ok(merge_in_time(
            self.settle("changes", answers)?,
            |c| c.ts,
            None,
        ))
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
        let answers = join_all(self.sources.iter().map(|s| s.events(query))).await;
        Ok(merge_in_time(
            self.settle("events", answers)?,
            |e| e.ts,
            None,
        ))
    }
}

/// The union of the services; one named twice gets both dependency lists and the first
/// known kind, team and runtime. `None` when no source knows a topology.
fn merge_topologies(answers: Vec<Option<Topology>>) -> Option<Topology> {
    let topologies: Vec<Topology> = answers.into_iter().flatten().collect();
    if topologies.is_empty() {
        return None;
    }
    let mut services: Vec<ServiceNode> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for service in topologies.into_iter().flat_map(|t| t.services) {
        match at.get(&service.name).and_then(|&i| services.get_mut(i)) {
            Some(merged) => {
                merged.kind = merged.kind.take().or(service.kind);
                merged.team = merged.team.take().or(service.team);
                merged.runtime = merged.runtime.take().or(service.runtime);
                for callee in service.depends_on {
                    if !merged.depends_on.contains(&callee) {
                        merged.depends_on.push(callee);
                    }
                }
            }
            None => {
                at.insert(service.name.clone(), services.len());
                services.push(service);
            }
        }
    }
    Some(Topology { services })
}

/// Series from every source; one (metric, labels) served twice becomes one series whose
/// samples merge by time, the first source's value winning at an equal timestamp.
fn merge_series(answers: Vec<Vec<Series>>) -> Vec<Series> {
    let mut merged: Vec<Series> = Vec::new();
    let mut at: HashMap<(String, BTreeMap<String, String>), usize> = HashMap::new();
    for series in answers.into_iter().flatten() {
        match at.entry((series.metric.clone(), series.labels.clone())) {
            Entry::Occupied(i) => {
                if let Some(into) = merged.get_mut(*i.get()) {
                    into.samples.extend(series.samples);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(merged.len());
                merged.push(series);
            }
        }
    }
    for series in &mut merged {
        // Stable, so among equal timestamps the first source's sample comes first and stays.
        series.samples.sort_by_key(|s| s.ts_ms);
        series.samples.dedup_by_key(|s| s.ts_ms);
    }
    merged.sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
    merged
}

/// Records from every source in time order (ties in source order), cut to `limit`.
fn merge_in_time<T>(
    answers: Vec<Vec<T>>,
    ts: impl Fn(&T) -> DateTime<Utc>,
    limit: Option<usize>,
) -> Vec<T> {
    let mut all: Vec<T> = answers.into_iter().flatten().collect();
    all.sort_by_key(|r| ts(r));
    if let Some(limit) = limit {
        all.truncate(limit);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::model::{Sample, TimeWindow};
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("valid time")
    }

    fn window() -> TimeWindow {
        TimeWindow::new(at(0), at(100)).expect("ordered")
    }

    /// A source that answers from fixed data, or fails every query.
    struct Fixed {
        name: &'static str,
        fail: bool,
        series: Vec<Series>,
        topology: Option<Topology>,
        logs: Vec<LogRecord>,
        topology_reads: std::sync::atomic::AtomicUsize,
    }

    impl Fixed {
        fn new(name: &'static str) -> Self {
            Self {
                name,
                fail: false,
                series: Vec::new(),
                topology: None,
                logs: Vec::new(),
                topology_reads: Default::default(),
            }
        }

        fn topology_reads(&self) -> usize {
            self.topology_reads
                .load(std::sync::atomic::Ordering::Relaxed)
        }

        fn check(&self) -> Result<(), SourceError> {
            match self.fail {
                true => Err(SourceError::Unavailable {
                    source_name: self.name.to_owned(),
                    reason: "down".to_owned(),
                }),
                false => Ok(()),
            }
        }
    }

    #[async_trait]
    impl DataSource for Fixed {
        fn name(&self) -> &str {
            self.name
        }
        async fn topology(&self) -> Result<Option<Topology>, SourceError> {
            self.topology_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.check().map(|()| self.topology.clone())
        }
        async fn series(&self, _: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
            self.check().map(|()| self.series.clone())
        }
        async fn logs(&self, q: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
            self.check()
                .map(|()| self.logs.iter().take(q.limit).cloned().collect())
        }
    }

    fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
        Series {
            metric: "m".to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: points
                .iter()
                .map(|&(ts_ms, value)| Sample { ts_ms, value })
                .collect(),
        }
    }

    fn log(ts: i64, message: &str) -> LogRecord {
        serde_json::from_value(
            serde_json::json!({"ts": ts * 1000, "service": "a", "message": message}),
        )
        .expect("valid log")
    }

    fn node(name: &str, kind: Option<&str>, depends_on: &[&str]) -> ServiceNode {
        ServiceNode {
            name: name.to_owned(),
            kind: kind.map(str::to_owned),
            team: None,
            runtime: None,
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn same_series_from_two_sources_merge_by_time() {
        let mut a = Fixed::new("a");
        a.series = vec![
            series(&[("service", "x")], &[(1, 1.0), (3, 3.0)]),
            series(&[("service", "y")], &[(1, 9.0)]),
        ];
        let mut b = Fixed::new("b");
        b.series = vec![series(&[("service", "x")], &[(2, 2.0), (3, 30.0)])];
        let set = SourceSet::new(vec![Arc::new(a), Arc::new(b)]);
        let merged = set.series(&SeriesSelector::all(window())).await.unwrap();
        assert_eq!(
            merged,
            vec![
                series(&[("service", "x")], &[(1, 1.0), (2, 2.0), (3, 3.0)]),
                series(&[("service", "y")], &[(1, 9.0)])
            ]
        );
    }

    #[tokio::test]
    async fn topologies_union_and_fill_gaps() {
        let mut a = Fixed::new("a");
        a.topology = Some(Topology {
            services: vec![
                node("api", None, &["db"]),
                node("db", Some("database"), &[]),
            ],
        });
        let mut b = Fixed::new("b");
        b.topology = Some(Topology {
            services: vec![
                node("api", Some("service"), &["cache", "db"]),
                node("cache", None, &[]),
            ],
        });
        let set = SourceSet::new(vec![Arc::new(a), Arc::new(b), Arc::new(Fixed::new("none"))]);
        let merged = set.topology().await.unwrap().expect("two sources know one");
        assert_eq!(
            merged.services,
            vec![
                node("api", Some("service"), &["db", "cache"]),
                node("db", Some("database"), &[]),
                node("cache", None, &[])
            ]
        );
        let unknown = SourceSet::new(vec![Arc::new(Fixed::new("none"))]);
        assert_eq!(unknown.topology().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_set_reads_the_topology_once_but_retries_a_failed_read() {
        let mut known = Fixed::new("k");
        known.topology = Some(Topology {
            services: vec![node("api", None, &[])],
        });
        let known = Arc::new(known);
        let set = SourceSet::new(vec![known.clone()]);
        for _ in 0..3 {
            assert_eq!(set.topology().await.unwrap().unwrap().services.len(), 1);
        }
        assert_eq!(known.topology_reads(), 1);

        let mut down = Fixed::new("d");
        down.fail = true;
        let down = Arc::new(down);
        let set = SourceSet::new(vec![down.clone()]);
        assert!(set.topology().await.is_err());
        assert!(set.topology().await.is_err());
        assert_eq!(down.topology_reads(), 2, "a failure is not remembered");
    }

    #[tokio::test]
    async fn logs_merge_in_time_order_within_the_limit() {
        let mut a = Fixed::new("a");
        a.logs = vec![log(1, "a1"), log(4, "a4")];
        let mut b = Fixed::new("b");
        b.logs = vec![log(2, "b2"), log(3, "b3")];
        let set = SourceSet::new(vec![Arc::new(a), Arc::new(b)]);
        let query = LogQuery {
            window: window(),
            service: None,
            contains: None,
            limit: 3,
        };
        let messages: Vec<String> = set
            .logs(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(messages, ["a1", "b2", "b3"]);
    }

    #[tokio::test]
    async fn a_failing_source_is_skipped_and_recorded() {
        let mut ok = Fixed::new("ok");
        ok.series = vec![series(&[], &[(1, 1.0)])];
        let mut down = Fixed::new("down");
        down.fail = true;
        let set = SourceSet::new(vec![Arc::new(down), Arc::new(ok)]);
        assert_eq!(
            set.series(&SeriesSelector::all(window()))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            set.failures(),
            vec![SourceFailure {
                source: "down".to_owned(),
                query: "series",
                error_text: "source `down` is unavailable: down".to_owned(),
            }]
        );
        let _ = set
            .logs(&LogQuery {
                window: window(),
                service: None,
                contains: None,
                limit: 10,
            })
            .await;
        let _ = set.series(&SeriesSelector::all(window())).await;
        assert_eq!(
            set.unreadable(),
            ["down could not answer 3 queries (logs, series): source `down` is unavailable: down"]
        );
    }

    #[tokio::test]
    async fn every_source_failing_is_an_error() {
        let mut down = Fixed::new("down");
        down.fail = true;
        let set = SourceSet::new(vec![Arc::new(down)]);
        let err = set.topology().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "source `sources` is unavailable: every source failed: source `down` is unavailable: down"
        );
        assert_eq!(set.failures().len(), 1);
        let empty = SourceSet::new(Vec::new());
        assert!(empty
            .series(&SeriesSelector::all(window()))
            .await
            .unwrap()
            .is_empty());
    }

    /// Writes a bundle from `(file name, content)` pairs.
    fn write_bundle(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write fixture");
        }
        dir
    }

    #[tokio::test]
    async fn a_bundle_split_in_two_answers_like_the_whole() {
        let manifest = "version: 1\nname: split\nsource: test\nwindow: {start: 0, end: 100000}\n";
        let metrics =
            "m{service=\"a\"} 1 10\nm{service=\"a\"} 2 20\nm{service=\"b\"} 3 30\n# EOF\n";
        let topology = "services:\n  - {name: a, depends_on: [b]}\n  - {name: b}\n";
        let logs = "{\"ts\":20000,\"service\":\"a\",\"message\":\"late\"}\n{\"ts\":10000,\"service\":\"b\",\"message\":\"early\"}\n";
        let traces = "{\"ts\":15000,\"trace_id\":\"t\",\"span_id\":\"s\",\"service\":\"a\",\"operation\":\"GET\",\"duration_ms\":5}\n";
        let changes = "{\"ts\":5000,\"service\":\"b\",\"kind\":\"deploy\",\"summary\":\"v2\"}\n";
        let events = "{\"ts\":6000,\"object\":\"pod/b-1\",\"reason\":\"OOMKilled\",\"message\":\"killed\",\"service\":\"b\"}\n";
        let rest = [
            ("bundle.yaml", manifest),
            ("topology.yaml", topology),
            ("logs.jsonl", logs),
            ("traces.jsonl", traces),
            ("changes.jsonl", changes),
            ("events.jsonl", events),
        ];
        let whole_dir = write_bundle(&[rest.as_slice(), &[("metrics.om", metrics)]].concat());
        let metrics_dir = write_bundle(&[("bundle.yaml", manifest), ("metrics.om", metrics)]);
        let rest_dir = write_bundle(&rest);

        let whole = Bundle::open(whole_dir.path()).unwrap();
        let split = SourceSet::new(vec![
            Arc::new(Bundle::open(metrics_dir.path()).unwrap()),
            Arc::new(Bundle::open(rest_dir.path()).unwrap()),
        ]);
        let w = window();
        let events = EventQuery {
            window: w,
            service: None,
        };
        let logs = LogQuery {
            window: w,
            service: None,
            contains: None,
            limit: 10,
        };
        let spans = SpanQuery {
            window: w,
            service: None,
            trace_id: None,
            limit: 10,
        };
        assert_eq!(
            split.topology().await.unwrap(),
            whole.topology().await.unwrap()
        );
        assert_eq!(
            split.series(&SeriesSelector::all(w)).await.unwrap(),
            whole.series(&SeriesSelector::all(w)).await.unwrap()
        );
        assert_eq!(
            split.logs(&logs).await.unwrap(),
            whole.logs(&logs).await.unwrap()
        );
        assert_eq!(
            split.spans(&spans).await.unwrap(),
            whole.spans(&spans).await.unwrap()
        );
        assert_eq!(
            split.changes(&events).await.unwrap(),
            whole.changes(&events).await.unwrap()
        );
        assert_eq!(
            split.events(&events).await.unwrap(),
            whole.events(&events).await.unwrap()
        );
        assert_eq!(
            whole.series(&SeriesSelector::all(w)).await.unwrap().len(),
            2,
            "the comparison is not vacuous"
        );
        assert!(split.failures().is_empty());
    }
}
