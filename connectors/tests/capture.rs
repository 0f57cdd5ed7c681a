//! Capture: a window of what a source answers, written as a bundle and read back, must
//! answer every query as the source did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use async_trait::async_trait;
use cairn_connectors::{
    capture, Alert, Bundle, BundleFiles, Change, ChangeKind, DataSource, EventQuery, EventType,
    InfraEvent, LogQuery, LogRecord, Sample, Series, SeriesSelector, ServiceNode, SourceError,
    Span, SpanQuery, SpanStatus, TimeWindow, Topology,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/bundles");

/// The fixture with metrics, logs and traces.
const NEZHA_TT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/bundles/nezha-tt/tt-20230130-134444"
);

/// Every fixture bundle: a directory two levels down holding a `bundle.yaml`.
fn fixture_bundles() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for dataset in std::fs::read_dir(FIXTURES).unwrap().flatten() {
        if let Ok(cases) = std::fs::read_dir(dataset.path()) {
            for case in cases.flatten() {
                if case.path().join("bundle.yaml").is_file() {
                    dirs.push(case.path());
                }
            }
        }
    }
    dirs.sort();
    dirs
}

/// Series with their floats as bits, so that `-0.0` differs from `0.0` and NaN equals NaN.
type ExactSeries = Vec<(String, BTreeMap<String, String>, Vec<(i64, u64)>)>;

fn exact(series: &[Series]) -> ExactSeries {
    series
        .iter()
        .map(|s| {
            let samples = s
                .samples
                .iter()
                .map(|p| (p.ts_ms, p.value.to_bits()))
                .collect();
            (s.metric.clone(), s.labels.clone(), samples)
        })
        .collect()
}

/// What a source answers for a window, with nothing narrowed.
#[derive(Debug, PartialEq)]
struct Answers {
    topology: Option<Topology>,
    series: ExactSeries,
    logs: Vec<LogRecord>,
    spans: Vec<Span>,
    changes: Vec<Change>,
    events: Vec<InfraEvent>,
}

async fn answers(source: &dyn DataSource, window: TimeWindow) -> Answers {
    let events = EventQuery {
        window,
        service: None,
    };
    Answers {
        topology: source.topology().await.unwrap(),
        series: exact(&source.series(&SeriesSelector::all(window)).await.unwrap()),
        logs: logs(source, window, None).await,
        spans: spans(source, window, None).await,
        changes: source.changes(&events).await.unwrap(),
        events: source.events(&events).await.unwrap(),
    }
}

async fn logs(
    source: &dyn DataSource,
    window: TimeWindow,
    service: Option<&str>,
) -> Vec<LogRecord> {
    let query = LogQuery {
        window,
        service: service.map(str::to_owned),
        contains: None,
        limit: usize::MAX,
    };
    source.logs(&query).await.unwrap()
}

async fn spans(source: &dyn DataSource, window: TimeWindow, service: Option<&str>) -> Vec<Span> {
    let query = SpanQuery {
        window,
        service: service.map(str::to_owned),
        trace_id: None,
        limit: usize::MAX,
    };
    source.spans(&query).await.unwrap()
}

/// Asserts both sources answer alike for `window`, query by query, then narrowed to each
/// service.
async fn assert_same_answers(expected: &dyn DataSource, got: &dyn DataSource, window: TimeWindow) {
    let (want, have) = (answers(expected, window).await, answers(got, window).await);
    assert_eq!(have.topology, want.topology, "topology");
    assert_eq!(have.series.len(), want.series.len(), "number of series");
    for (have, want) in have.series.iter().zip(&want.series) {
        assert_eq!(have, want, "series");
    }
    assert_eq!(have.logs, want.logs, "logs");
    assert_eq!(have.spans, want.spans, "spans");
    assert_eq!(have.changes, want.changes, "changes");
    assert_eq!(have.events, want.events, "events");

    let mut services: Vec<String> = want
        .series
        .iter()
        .filter_map(|(_, labels, _)| labels.get("service").cloned())
        .chain(want.logs.iter().map(|l| l.service.clone()))
        .chain(want.spans.iter().map(|s| s.service.clone()))
        .collect();
    services.sort();
    services.dedup();
    for service in services {
        let selector = SeriesSelector {
            service: Some(service.clone()),
            ..SeriesSelector::all(window)
        };
        assert_eq!(
            exact(&got.series(&selector).await.unwrap()),
            exact(&expected.series(&selector).await.unwrap()),
            "series of {service}"
        );
        let service = Some(service.as_str());
        assert_eq!(
            logs(got, window, service).await,
            logs(expected, window, service).await
        );
        assert_eq!(
            spans(got, window, service).await,
            spans(expected, window, service).await
        );
    }
}

fn text(files: &BundleFiles, name: &str) -> String {
    String::from_utf8(files.get(name).unwrap_or_default().to_vec()).unwrap()
}

fn file_names(files: &BundleFiles) -> Vec<&str> {
    files.iter().map(|(name, _)| name).collect()
}

#[tokio::test]
async fn every_fixture_bundle_round_trips() {
    let dirs = fixture_bundles();
    assert!(dirs.len() >= 6, "fixture bundles not found: {dirs:?}");
    for dir in dirs {
        let original = Bundle::open(&dir).unwrap();
        let meta = original.meta().clone();
        let files = capture(
            &original,
            meta.window,
            original.alert(),
            &meta.name,
            "capture",
            meta.description.as_deref(),
        )
        .await
        .unwrap();
        assert!(files.get("expect.yaml").is_none(), "{}", dir.display());
        let captured = Bundle::from_files(&files).unwrap();
        assert_eq!(captured.meta().name, meta.name);
        assert_eq!(captured.meta().source, "capture");
        assert_eq!(captured.meta().window, meta.window);
        assert_eq!(captured.meta().description, meta.description);
        assert_eq!(captured.alert(), original.alert(), "{}", dir.display());
        assert_same_answers(&original, &captured, meta.window).await;
        assert!(captured.counts().samples > 0, "{}", dir.display());
    }
}

#[tokio::test]
async fn a_sub_window_holds_only_what_is_inside_it() {
    let original = Bundle::open(Path::new(NEZHA_TT)).unwrap();
    let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
    let window = TimeWindow::new(
        at("2023-01-30T13:44:30.250Z"),
        at("2023-01-30T13:45:30.500Z"),
    )
    .unwrap();
    let files = capture(&original, window, None, "part", "capture", None)
        .await
        .unwrap();
    let captured = Bundle::from_files(&files).unwrap();
    assert_eq!(captured.meta().window, window);
    assert_same_answers(&original, &captured, window).await;

    // Everything it holds is inside the window, whatever the window asked.
    let everything =
        TimeWindow::new(original.meta().window.start, original.meta().window.end).unwrap();
    let held = answers(&captured, everything).await;
    let counts = captured.counts();
    assert!(
        counts.samples > 0 && counts.logs > 0 && counts.spans > 0,
        "{counts:?}"
    );
    assert!(counts.samples < original.counts().samples);
    assert!(held
        .series
        .iter()
        .flat_map(|(_, _, samples)| samples)
        .all(|&(ts, _)| window.contains_ms(ts)));
    assert!(held.logs.iter().all(|l| window.contains(l.ts)));
    assert!(held.spans.iter().all(|s| window.contains(s.ts)));
    assert_eq!(
        held.series.len(),
        answers(&captured, window).await.series.len()
    );
}

/// An in-memory source that answers everything it holds whatever the window asks (so what a
/// capture keeps is its own doing), or fails one query.
#[derive(Default, Clone)]
struct Fake {
    topology: Option<Topology>,
    series: Vec<Series>,
    logs: Vec<LogRecord>,
    spans: Vec<Span>,
    changes: Vec<Change>,
    events: Vec<InfraEvent>,
    fail_on: Option<Query>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Query {
    Topology,
    Series,
    Logs,
    Spans,
    Changes,
    Events,
}

impl Fake {
    fn answer<T: Clone>(&self, query: Query, items: &[T]) -> Result<Vec<T>, SourceError> {
        if self.fail_on == Some(query) {
            return Err(SourceError::Unavailable {
                source_name: "flaky".to_owned(),
                reason: format!("{query:?}: connection refused"),
            });
        }
        Ok(items.to_vec())
    }
}

#[async_trait]
impl DataSource for Fake {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        let topology: Vec<Topology> = self.topology.clone().into_iter().collect();
        Ok(self.answer(Query::Topology, &topology)?.pop())
    }

    async fn series(&self, _: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        self.answer(Query::Series, &self.series)
    }

    async fn logs(&self, _: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
        self.answer(Query::Logs, &self.logs)
    }

    async fn spans(&self, _: &SpanQuery) -> Result<Vec<Span>, SourceError> {
        self.answer(Query::Spans, &self.spans)
    }

    async fn changes(&self, _: &EventQuery) -> Result<Vec<Change>, SourceError> {
        self.answer(Query::Changes, &self.changes)
    }

    async fn events(&self, _: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
        self.answer(Query::Events, &self.events)
    }
}

/// 2024-01-01T00:00:00Z in epoch milliseconds; the fake's window is ten minutes from it.
const T0: i64 = 1_704_067_200_000;

fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn fake_window() -> TimeWindow {
    TimeWindow::new(at_ms(T0), at_ms(T0 + 600_000)).unwrap()
}

fn series(metric: &str, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series {
        metric: metric.to_owned(),
        labels: labels
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        samples: samples
            .iter()
            .map(|&(ts_ms, value)| Sample { ts_ms, value })
            .collect(),
    }
}

fn json(value: serde_json::Value) -> cairn_connectors::Attrs {
    match value {
        serde_json::Value::Object(map) => map.into(),
        other => panic!("not an object: {other}"),
    }
}

/// A source with every kind of answer, awkward text, and records just outside the window.
fn full_fake() -> Fake {
    let before = T0 - 1;
    let after = T0 + 600_001;
    Fake {
        topology: Some(Topology {
            services: vec![
                ServiceNode {
                    name: "frontend".into(),
                    kind: Some("gateway".into()),
                    team: Some("web".into()),
                    runtime: None,
                    depends_on: vec!["checkout".into()],
                },
                ServiceNode {
                    name: "checkout: \"v2\"".into(),
                    kind: None,
                    team: None,
                    runtime: Some("jvm".into()),
                    depends_on: vec![],
                },
            ],
        }),
        series: vec![
            series(
                "cpu",
                &[
                    ("service", "checkout"),
                    (
                        "pod",
                        "quote\" back\\slash new\nline tab\t} ,= \u{e9}\u{1f600}",
                    ),
                    ("empty", ""),
                ],
                &[
                    (before, 9.0),
                    (T0, 0.1 + 0.2),
                    (T0 + 1, 1e300),
                    (T0 + 250, 5e-324),
                    (T0 + 999, -0.0),
                    (T0 + 1_000, f64::MAX),
                    (T0 + 2_500, f64::MIN_POSITIVE),
                    (T0 + 3_000, f64::INFINITY),
                    (T0 + 4_000, f64::NEG_INFINITY),
                    (T0 + 5_000, -1.5e-7),
                    (T0 + 6_000, 42.0),
                    (T0 + 600_000, 1e16),
                    (after, 9.0),
                ],
            ),
            series("only_outside", &[("service", "x")], &[(after, 1.0)]),
            series("up", &[], &[(T0 + 10_000, 1.0)]),
        ],
        logs: vec![
            LogRecord {
                ts: at_ms(T0 + 5_000) + Duration::nanoseconds(123_456),
                service: "checkout".into(),
                level: Some("error".into()),
                message: "OOM: \"heap\"\nexhausted \u{1f4a5}".into(),
                pod: Some("checkout-1".into()),
                trace_id: Some("t1".into()),
                attrs: json(serde_json::json!({"gc": "g1", "pause_ms": 12.5, "tags": [1, "a"]})),
            },
            LogRecord {
                ts: at_ms(T0 + 1_000),
                service: "frontend".into(),
                level: None,
                message: "GET /cart 200".into(),
                pod: None,
                trace_id: None,
                attrs: Default::default(),
            },
            LogRecord {
                ts: at_ms(after),
                service: "frontend".into(),
                level: None,
                message: "after the window".into(),
                pod: None,
                trace_id: None,
                attrs: Default::default(),
            },
        ],
        spans: vec![
            Span {
                ts: at_ms(T0 + 5_000),
                trace_id: "t1".into(),
                span_id: "a".into(),
                parent_span_id: None,
                service: "frontend".into(),
                operation: "GET /cart".into(),
                duration_ms: 900.123_456_789,
                status: Some(SpanStatus::Error),
                attrs: Default::default(),
            },
            Span {
                ts: at_ms(T0 + 5_100),
                trace_id: "t1".into(),
                span_id: "b".into(),
                parent_span_id: Some("a".into()),
                service: "checkout".into(),
                operation: "load".into(),
                duration_ms: 0.1 + 0.2,
                status: Some(SpanStatus::Ok),
                attrs: json(serde_json::json!({"pod": "checkout-1"})),
            },
            Span {
                ts: at_ms(before),
                trace_id: "t0".into(),
                span_id: "c".into(),
                parent_span_id: None,
                service: "checkout".into(),
                operation: "load".into(),
                duration_ms: f64::NAN,
                status: None,
                attrs: Default::default(),
            },
        ],
        changes: vec![
            Change {
                ts: at_ms(T0 + 180_000),
                service: "checkout".into(),
                kind: ChangeKind::Deploy,
                summary: "v2.3.1".into(),
                version: Some("2.3.1".into()),
                author: Some("ana".into()),
                diff: Some("- pool: 10\n+ pool: 2\n".into()),
                link: Some("https://example.invalid/pull/7".into()),
            },
            Change {
                ts: at_ms(T0 + 60_000),
                service: "frontend".into(),
                kind: ChangeKind::Flag,
                summary: "new cart".into(),
                version: None,
                author: None,
                diff: None,
                link: None,
            },
        ],
        events: vec![
            InfraEvent {
                ts: at_ms(T0 + 360_000),
                object: "pod/checkout-1".into(),
                kind: Some("Pod".into()),
                reason: "OOMKilled".into(),
                message: "container killed".into(),
                event_type: Some(EventType::Warning),
                service: Some("checkout".into()),
            },
            InfraEvent {
                ts: at_ms(T0 + 120_000),
                object: "node/n1".into(),
                kind: None,
                reason: "NodeReady".into(),
                message: "ready".into(),
                event_type: Some(EventType::Normal),
                service: None,
            },
            InfraEvent {
                ts: at_ms(after),
                object: "node/n2".into(),
                kind: None,
                reason: "NodeNotReady".into(),
                message: "after the window".into(),
                event_type: None,
                service: None,
            },
        ],
        fail_on: None,
    }
}

fn page() -> Alert {
    Alert {
        status: "firing".into(),
        labels: [("alertname", "HighLatency"), ("service", "frontend")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        annotations: [("summary".to_owned(), "frontend is \"slow\"".to_owned())].into(),
        starts_at: at_ms(T0 + 300_000),
        ends_at: None,
        fingerprint: Some("abc123".into()),
    }
}

/// What the fake answers for its window, kept as a source honouring the window would.
fn fake_inside_window() -> Fake {
    let window = fake_window();
    let mut fake = full_fake();
    for s in &mut fake.series {
        s.samples.retain(|p| window.contains_ms(p.ts_ms));
    }
    fake.series.retain(|s| !s.samples.is_empty());
    fake.logs.retain(|r| window.contains(r.ts));
    fake.logs.sort_by_key(|r| r.ts);
    fake.spans.retain(|r| window.contains(r.ts));
    fake.changes.retain(|r| window.contains(r.ts));
    fake.changes.sort_by_key(|r| r.ts);
    fake.events.retain(|r| window.contains(r.ts));
    fake.events.sort_by_key(|r| r.ts);
    fake
}

#[tokio::test]
async fn every_kind_of_answer_round_trips_and_only_the_window_is_kept() {
    let alert = page();
    let files = capture(
        &full_fake(),
        fake_window(),
        Some(&alert),
        "checkout-oom",
        "capture",
        Some("a test: \"quoted\"\nsecond line"),
    )
    .await
    .unwrap();
    assert_eq!(
        file_names(&files),
        [
            "alert.json",
            "bundle.yaml",
            "changes.jsonl",
            "events.jsonl",
            "logs.jsonl",
            "metrics.om",
            "topology.yaml",
            "traces.jsonl",
        ]
    );
    let captured = Bundle::from_files(&files).unwrap();
    let meta = captured.meta();
    assert_eq!(
        (meta.name.as_str(), meta.source.as_str(), meta.window),
        ("checkout-oom", "capture", fake_window())
    );
    assert_eq!(
        meta.description.as_deref(),
        Some("a test: \"quoted\"\nsecond line")
    );
    assert_eq!(captured.alert(), Some(&alert));

    let mut expected = fake_inside_window();
    // NaN means "no value" to the bundle reader; the capture writes none here, so nothing is
    // lost. Every other float, -0.0 and the infinities included, comes back bit for bit.
    let everything = TimeWindow::new(at_ms(0), at_ms(T0 * 2)).unwrap();
    expected
        .series
        .sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
    let want = answers(&expected, everything).await;
    let have = answers(&captured, everything).await;
    assert_eq!(have, want);
    assert_eq!(
        have.series[0].2.len(),
        11,
        "both ends of the window are inside it"
    );
}

#[tokio::test]
async fn nan_samples_are_written_but_not_read_back() {
    let fake = Fake {
        series: vec![
            series(
                "ratio",
                &[("service", "a")],
                &[(T0, f64::NAN), (T0 + 1_000, 0.5)],
            ),
            series("ratio", &[("service", "b")], &[(T0, f64::NAN)]),
        ],
        ..Fake::default()
    };
    let files = capture(&fake, fake_window(), None, "n", "capture", None)
        .await
        .unwrap();
    assert_eq!(
        text(&files, "metrics.om"),
        concat!(
            "# TYPE ratio gauge\n",
            "ratio{service=\"a\"} NaN 1704067200\n",
            "ratio{service=\"a\"} 0.5 1704067201\n",
            "ratio{service=\"b\"} NaN 1704067200\n",
            "# EOF\n",
        )
    );
    let captured = Bundle::from_files(&files).unwrap();
    assert_eq!(
        exact(
            &captured
                .series(&SeriesSelector::all(fake_window()))
                .await
                .unwrap()
        ),
        exact(&[series("ratio", &[("service", "a")], &[(T0 + 1_000, 0.5)])])
    );
}

#[tokio::test]
async fn families_are_typed_and_a_metric_point_is_written_together() {
    let (t1, t2) = (T0 + 1_000, T0 + 2_000);
    let a = [("service", "a")];
    let bucket = |le: &str, samples: &[(i64, f64)]| {
        series(
            "rpc_seconds_bucket",
            &[("service", "a"), ("le", le)],
            samples,
        )
    };
    let quantile =
        |q: &str, v: f64| series("lat", &[("service", "a"), ("quantile", q)], &[(t1, v)]);
    let fake = Fake {
        // Deliberately out of order: the capture sorts.
        series: vec![
            series("up", &[("service", "b")], &[(t2, 1.0)]),
            series("up", &[("service", "a")], &[(t1, 1.0)]),
            bucket("+Inf", &[(t1, 2.0), (t2, 3.0)]),
            bucket("0.5", &[(t1, 1.0), (t2, 1.0)]),
            bucket("10", &[(t1, 2.0)]),
            series("rpc_seconds_sum", &a, &[(t1, 0.75), (t2, 1.25)]),
            series("rpc_seconds_count", &a, &[(t1, 2.0), (t2, 3.0)]),
            series("jobs_total", &a, &[(t1, 3.0)]),
            series("pg_stat_activity_count", &[("service", "db")], &[(t1, 4.0)]),
            quantile("0.99", 0.9),
            quantile("0.5", 0.1),
            series("lat_sum", &a, &[(t1, 5.0)]),
            series("lat_count", &a, &[(t1, 20.0)]),
        ],
        ..Fake::default()
    };
    let files = capture(&fake, fake_window(), None, "f", "capture", None)
        .await
        .unwrap();
    assert_eq!(
        text(&files, "metrics.om"),
        concat!(
            "# TYPE jobs counter\n",
            "jobs_total{service=\"a\"} 3 1704067201\n",
            "# TYPE lat summary\n",
            "lat{quantile=\"0.5\",service=\"a\"} 0.1 1704067201\n",
            "lat{quantile=\"0.99\",service=\"a\"} 0.9 1704067201\n",
            "lat_count{service=\"a\"} 20 1704067201\n",
            "lat_sum{service=\"a\"} 5 1704067201\n",
            "# TYPE pg_stat_activity_count gauge\n",
            "pg_stat_activity_count{service=\"db\"} 4 1704067201\n",
            "# TYPE rpc_seconds histogram\n",
            "rpc_seconds_bucket{le=\"0.5\",service=\"a\"} 1 1704067201\n",
            "rpc_seconds_bucket{le=\"10\",service=\"a\"} 2 1704067201\n",
            "rpc_seconds_bucket{le=\"+Inf\",service=\"a\"} 2 1704067201\n",
            "rpc_seconds_count{service=\"a\"} 2 1704067201\n",
            "rpc_seconds_sum{service=\"a\"} 0.75 1704067201\n",
            "rpc_seconds_bucket{le=\"0.5\",service=\"a\"} 1 1704067202\n",
            "rpc_seconds_bucket{le=\"+Inf\",service=\"a\"} 3 1704067202\n",
            "rpc_seconds_count{service=\"a\"} 3 1704067202\n",
            "rpc_seconds_sum{service=\"a\"} 1.25 1704067202\n",
            "# TYPE up gauge\n",
            "up{service=\"a\"} 1 1704067201\n",
            "up{service=\"b\"} 1 1704067202\n",
            "# EOF\n",
        )
    );
    let captured = Bundle::from_files(&files).unwrap();
    let mut expected = fake.series.clone();
    expected.sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
    assert_eq!(
        exact(
            &captured
                .series(&SeriesSelector::all(fake_window()))
                .await
                .unwrap()
        ),
        exact(&expected)
    );
}

#[tokio::test]
async fn repeated_series_and_timestamps_merge_as_the_reader_merges_them() {
    let a = [("service", "a")];
    let fake = Fake {
        series: vec![
            series("m", &a, &[(T0 + 2_000, 2.0), (T0, 0.0)]),
            series("m", &a, &[(T0 + 2_000, 3.0), (T0 + 1_000, 1.0)]),
        ],
        ..Fake::default()
    };
    let files = capture(&fake, fake_window(), None, "r", "capture", None)
        .await
        .unwrap();
    assert_eq!(
        text(&files, "metrics.om"),
        "# TYPE m gauge\nm{service=\"a\"} 0 1704067200\nm{service=\"a\"} 1 1704067201\nm{service=\"a\"} 3 1704067202\n# EOF\n"
    );
}

#[tokio::test]
async fn a_failing_source_fails_the_capture() {
    for query in [
        Query::Topology,
        Query::Series,
        Query::Logs,
        Query::Spans,
        Query::Changes,
        Query::Events,
    ] {
        let fake = Fake {
            fail_on: Some(query),
            ..full_fake()
        };
        let err = capture(&fake, fake_window(), None, "x", "capture", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::Unavailable { source_name, reason }
                if source_name == "flaky" && reason.starts_with(&format!("{query:?}:"))),
            "{query:?}: {err}"
        );
    }
}

#[tokio::test]
async fn answers_a_bundle_cannot_hold_are_refused() {
    let window = fake_window();
    let unwritable = [
        Fake {
            series: vec![series("http.requests", &[], &[(T0, 1.0)])],
            ..Fake::default()
        },
        Fake {
            series: vec![series("m", &[("bad-label", "x")], &[(T0, 1.0)])],
            ..Fake::default()
        },
        Fake {
            spans: vec![Span {
                duration_ms: f64::INFINITY,
                ts: at_ms(T0),
                ..full_fake().spans[0].clone()
            }],
            ..Fake::default()
        },
    ];
    for fake in unwritable {
        let err = capture(&fake, window, None, "x", "capture", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::BadData { source_name, .. } if source_name == "flaky"),
            "{err}"
        );
    }
    // A NaN-long span outside the window is not the capture's to refuse: it is left out.
    let outside = Fake {
        spans: full_fake().spans,
        ..Fake::default()
    };
    let files = capture(&outside, window, None, "x", "capture", None)
        .await
        .unwrap();
    assert_eq!(text(&files, "traces.jsonl").lines().count(), 2);
}

#[tokio::test]
async fn files_with_nothing_to_hold_are_left_out() {
    let nothing = capture(
        &Fake::default(),
        fake_window(),
        None,
        "empty",
        "capture",
        None,
    )
    .await
    .unwrap();
    assert_eq!(file_names(&nothing), ["bundle.yaml"]);
    let bundle = Bundle::from_files(&nothing).unwrap();
    assert_eq!(bundle.counts(), Default::default());
    assert_eq!(bundle.meta().description, None);
    assert_eq!(
        text(&nothing, "bundle.yaml"),
        "version: 1\nname: empty\nsource: capture\nwindow:\n  start: 2024-01-01T00:00:00Z\n  end: 2024-01-01T00:10:00Z\n"
    );

    let outside = Fake {
        series: vec![series("m", &[], &[(T0 - 1, 1.0)])],
        logs: full_fake().logs.split_off(2),
        ..Fake::default()
    };
    let files = capture(&outside, fake_window(), None, "x", "capture", None)
        .await
        .unwrap();
    assert_eq!(file_names(&files), ["bundle.yaml"]);
}

#[tokio::test]
async fn a_capture_is_deterministic() {
    let mut shuffled = full_fake();
    shuffled.series.reverse();
    shuffled.logs.reverse();
    shuffled.changes.reverse();
    shuffled.events.reverse();
    let first = capture(&full_fake(), fake_window(), None, "d", "capture", None)
        .await
        .unwrap();
    let second = capture(&shuffled, fake_window(), None, "d", "capture", None)
        .await
        .unwrap();
    assert_eq!(first, second);
    for name in ["logs.jsonl", "changes.jsonl", "events.jsonl"] {
        let times: Vec<DateTime<Utc>> = text(&first, name)
            .lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                record["ts"].as_str().unwrap().parse().unwrap()
            })
            .collect();
        assert!(times.is_sorted(), "{name} is in time order");
    }
}

#[tokio::test]
async fn a_written_capture_opens_like_the_one_in_memory() {
    let files = capture(
        &full_fake(),
        fake_window(),
        Some(&page()),
        "w",
        "capture",
        None,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("case");
    files.write_to(&out).unwrap();
    let opened = Bundle::open(&out).unwrap();
    let in_memory = Bundle::from_files(&files).unwrap();
    assert_eq!(opened.meta(), in_memory.meta());
    assert_eq!(opened.alert(), in_memory.alert());
    assert_same_answers(&in_memory, &opened, fake_window()).await;
}

/// `promtool`, or `None` when it is missing. In CI it must be there (the Debian package
/// `prometheus` provides it), so a missing promtool fails instead of skipping.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var("CI").is_err(),
        "promtool is not installed; CI must install the `prometheus` package"
    );
    eprintln!("skipping: promtool not installed (apt-get install prometheus)");
    None
}

/// Loads `metrics` into a fresh TSDB with promtool and dumps it back: one
/// `{labels} value ts_ms` line per sample.
fn load_into_prometheus(promtool: &str, metrics: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.om");
    std::fs::write(&file, metrics).unwrap();
    let tsdb = dir.path().join("tsdb");
    let loaded = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "promtool refused the metrics: {}{}",
        String::from_utf8_lossy(&loaded.stdout),
        String::from_utf8_lossy(&loaded.stderr)
    );
    // Some promtool versions dump only a TSDB that has a write-ahead log directory.
    std::fs::create_dir_all(tsdb.join("wal")).unwrap();
    let dumped = Command::new(promtool)
        .args(["tsdb", "dump"])
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        dumped.status.success(),
        "promtool could not dump: {}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    String::from_utf8(dumped.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn prometheus_loads_every_sample_of_a_capture_at_its_millisecond() {
    let Some(promtool) = promtool() else { return };
    let nezha = Bundle::open(Path::new(NEZHA_TT)).unwrap();
    let fake = full_fake();
    let sources: [(&dyn DataSource, TimeWindow); 2] =
        [(&nezha, nezha.meta().window), (&fake, fake_window())];
    for (source, window) in sources {
        let files = capture(source, window, None, "p", "capture", None)
            .await
            .unwrap();
        let dumped = load_into_prometheus(promtool, files.get("metrics.om").unwrap());
        let mut loaded: Vec<i64> = dumped
            .iter()
            .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        let captured = Bundle::from_files(&files).unwrap();
        let mut written: Vec<i64> = captured
            .series(&SeriesSelector::all(window))
            .await
            .unwrap()
            .iter()
            .flat_map(|s| s.samples.iter().map(|p| p.ts_ms))
            .collect();
        loaded.sort_unstable();
        written.sort_unstable();
        assert_eq!(loaded, written);
    }
}
