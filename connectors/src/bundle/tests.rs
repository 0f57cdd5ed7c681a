//! Bundle tests on tiny fixtures written to a temporary directory.

use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::files::KnownFile;
use super::*;

const MANIFEST: &str = "\
version: 1
name: checkout-oom
source: test
window:
  start: 2024-01-01T00:00:00Z
  end: 1704067800000
description: a small incident
generator: something newer # unknown fields are ignored
";

const TOPOLOGY: &str = "\
# A header comment, as converters write one.
services:
  - name: frontend
    kind: gateway
    depends_on: [checkout]
    owner: web # unknown
  - name: checkout
    team: payments
    depends_on: [db]
  - name: db
    kind: database
";

const ALERT: &str = r#"{
  "status": "firing",
  "labels": {"alertname": "HighLatency", "service": "frontend"},
  "annotations": {"summary": "frontend is slow"},
  "startsAt": "2024-01-01T00:05:00Z",
  "generatorURL": "http://unknown.example"
}
"#;

/// Times are seconds after 2024-01-01T00:00:00Z (1704067200); the window is 0..=600.
const METRICS: &str = r#"# TYPE cpu gauge
# HELP cpu CPU in cores
cpu{service="checkout",pod="checkout-1"} 0.5 1704067140
cpu{service="checkout",pod="checkout-1"} 0.6 1704067200
cpu{service="checkout",pod="checkout-1"} 0.9 1704067500.5
cpu{service="checkout",pod="checkout-1"} 0.7 1704067800
cpu{service="checkout",pod="checkout-1"} 0.8 1704067860
cpu{service="db",pod="db-0"} 0.1 1704067500
latency_seconds_bucket{service="frontend",le="0.5"} 10 1704067500
latency_seconds_bucket{service="frontend",le="+Inf"} 12 1704067500
latency_seconds_count{service="frontend"} 12 1704067500
# EOF
"#;

/// Deliberately out of time order: answers must come sorted.
const LOGS: &str = r#"{"ts":"2024-01-01T00:05:00Z","service":"checkout","level":"error","message":"OOM: heap exhausted","pod":"checkout-1","attrs":{"gc":"g1"}}
{"ts":1704067230000,"service":"frontend","message":"GET /cart 200","extra":true}

{"ts":"2024-01-01T00:04:00Z","service":"checkout","message":"heap 90%"}
{"ts":"2024-01-01T00:20:00Z","service":"checkout","message":"after the window"}
"#;

const TRACES: &str = r#"{"ts":"2024-01-01T00:05:00Z","trace_id":"t1","span_id":"a","service":"frontend","operation":"GET /cart","duration_ms":900.5,"status":"error"}
{"ts":"2024-01-01T00:05:00.100Z","trace_id":"t1","span_id":"b","parent_span_id":"a","service":"checkout","operation":"load","duration_ms":850,"status":"ok","attrs":{"pod":"checkout-1"}}
{"ts":"2024-01-01T00:01:00Z","trace_id":"t0","span_id":"c","service":"checkout","operation":"load","duration_ms":12}
"#;

const CHANGES: &str = r#"{"ts":"2024-01-01T00:03:00Z","service":"checkout","kind":"deploy","summary":"v2.3.1","version":"2.3.1","author":"ana"}
{"ts":"2024-01-01T00:01:00Z","service":"frontend","kind":"flag","summary":"new cart"}
"#;

const EVENTS: &str = r#"{"ts":"2024-01-01T00:06:00Z","object":"pod/checkout-1","kind":"Pod","reason":"OOMKilled","message":"container killed","type":"Warning","service":"checkout"}
{"ts":"2024-01-01T00:02:00Z","object":"node/n1","reason":"NodeReady","message":"ready","type":"Normal"}
"#;

/// Every known file of the full fixture, plus files the reader must ignore.
fn full_bundle() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("bundle.yaml", MANIFEST.into()),
        ("topology.yaml", TOPOLOGY.into()),
        ("alert.json", ALERT.into()),
        ("metrics.om", METRICS.into()),
        ("logs.jsonl", LOGS.into()),
        ("traces.jsonl", TRACES.into()),
        ("changes.jsonl", CHANGES.into()),
        ("events.jsonl", EVENTS.into()),
        ("README.md", b"not data".to_vec()),
        ("profiles.pprof", vec![0xff, 0x00, 0x13]),
    ]
}

fn write(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("write fixture");
    }
    dir
}

fn open(files: &[(&str, Vec<u8>)]) -> Bundle {
    let dir = write(files);
    Bundle::open(dir.path()).unwrap_or_else(|e| panic!("fixture must open: {e}"))
}

fn open_err(files: &[(&str, Vec<u8>)]) -> String {
    let dir = write(files);
    Bundle::open(dir.path())
        .expect_err("fixture must be rejected")
        .to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("in-memory write");
    encoder.finish().expect("in-memory gzip")
}

/// Seconds after 2024-01-01T00:00:00Z.
fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_704_067_200 + seconds, 0)
        .single()
        .expect("valid time")
}

fn window(from: i64, to: i64) -> TimeWindow {
    TimeWindow::new(t(from), t(to)).expect("ordered window")
}

/// Everything a bundle answers over a window, for comparing two bundles.
#[derive(Debug, PartialEq)]
struct Answers {
    meta: BundleMeta,
    alert: Option<Alert>,
    counts: BundleCounts,
    topology: Option<Topology>,
    series: Vec<Series>,
    logs: Vec<LogRecord>,
    spans: Vec<Span>,
    changes: Vec<Change>,
    events: Vec<InfraEvent>,
}

async fn answers(bundle: &Bundle, window: TimeWindow) -> Answers {
    let events = EventQuery {
        window,
        service: None,
    };
    Answers {
        meta: bundle.meta().clone(),
        alert: bundle.alert().cloned(),
        counts: bundle.counts(),
        topology: bundle.topology().await.unwrap(),
        series: bundle.series(&SeriesSelector::all(window)).await.unwrap(),
        logs: bundle
            .logs(&LogQuery {
                window,
                service: None,
                contains: None,
                limit: usize::MAX,
            })
            .await
            .unwrap(),
        spans: bundle
            .spans(&SpanQuery {
                window,
                service: None,
                trace_id: None,
                limit: usize::MAX,
            })
            .await
            .unwrap(),
        changes: bundle.changes(&events).await.unwrap(),
        events: bundle.events(&events).await.unwrap(),
    }
}

fn messages(logs: &[LogRecord]) -> Vec<&str> {
    logs.iter().map(|l| l.message.as_str()).collect()
}

#[tokio::test]
async fn reads_every_known_file() {
    let bundle = open(&full_bundle());
    let meta = bundle.meta();
    assert_eq!(
        (meta.name.as_str(), meta.source.as_str()),
        ("checkout-oom", "test")
    );
    assert_eq!(meta.window, window(0, 600));
    assert_eq!(meta.description.as_deref(), Some("a small incident"));
    let alert = bundle.alert().expect("alert.json");
    assert_eq!(
        (alert.service(), alert.title()),
        (Some("frontend"), "frontend is slow")
    );
    assert_eq!(alert.starts_at, t(300));
    let topology = bundle.topology().await.unwrap().expect("topology.yaml");
    assert_eq!(
        topology.service("checkout").and_then(|s| s.team.as_deref()),
        Some("payments")
    );
    assert_eq!(
        topology
            .callers("checkout")
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["frontend"]
    );
    assert_eq!(
        bundle.counts(),
        BundleCounts {
            series: 5,
            samples: 9,
            logs: 4,
            spans: 3,
            changes: 2,
            events: 2
        }
    );
    assert_eq!(bundle.name(), "bundle");
    assert_eq!(bundle.with_name("incident-42").name(), "incident-42");
}

#[tokio::test]
async fn answers_are_bounded_by_the_window_and_in_time_order() {
    let bundle = open(&full_bundle());
    let all = answers(&bundle, window(0, 600)).await;
    let cpu = all
        .series
        .iter()
        .find(|s| s.metric == "cpu" && s.service() == Some("checkout"))
        .expect("cpu");
    // Both ends are inside; the samples before and after the window are not.
    let points: Vec<(i64, f64)> = cpu.samples.iter().map(|s| (s.ts_ms, s.value)).collect();
    assert_eq!(
        points,
        [
            (t(0).timestamp_millis(), 0.6),
            (t(300).timestamp_millis() + 500, 0.9),
            (t(600).timestamp_millis(), 0.7)
        ]
    );
    assert_eq!(
        messages(&all.logs),
        ["GET /cart 200", "heap 90%", "OOM: heap exhausted"]
    );
    assert_eq!(
        all.spans
            .iter()
            .map(|s| s.span_id.as_str())
            .collect::<Vec<_>>(),
        ["c", "a", "b"]
    );
    assert_eq!(
        all.changes
            .iter()
            .map(|c| c.summary.as_str())
            .collect::<Vec<_>>(),
        ["new cart", "v2.3.1"]
    );
    assert_eq!(
        all.events
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        ["NodeReady", "OOMKilled"]
    );

    let narrow = answers(&bundle, window(240, 300)).await;
    assert_eq!(messages(&narrow.logs), ["heap 90%", "OOM: heap exhausted"]);
    assert_eq!(
        narrow
            .spans
            .iter()
            .map(|s| s.span_id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert!(narrow.changes.is_empty() && narrow.events.is_empty());
    let services: Vec<Option<&str>> = narrow.series.iter().map(Series::service).collect();
    assert_eq!(
        services,
        [
            Some("db"),
            Some("frontend"),
            Some("frontend"),
            Some("frontend")
        ],
        "checkout's next sample is at 300.5 s"
    );
    assert!(
        answers(&bundle, window(301, 599)).await.series.is_empty(),
        "series without samples in the window are left out"
    );

    let later = answers(&bundle, window(1200, 1200)).await;
    assert_eq!(
        messages(&later.logs),
        ["after the window"],
        "the query window rules, not the bundle's"
    );
}

#[tokio::test]
async fn selectors_match_metric_service_and_labels() {
    let bundle = open(&full_bundle());
    let select =
        |metric: Option<&str>, service: Option<&str>, labels: &[(&str, &str)]| SeriesSelector {
            window: window(0, 600),
            metric: metric.map(str::to_owned),
            service: service.map(str::to_owned),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
    let names = |series: Vec<Series>| -> Vec<String> {
        series
            .iter()
            .map(|s| format!("{}{:?}", s.metric, s.labels.values().collect::<Vec<_>>()))
            .collect()
    };
    assert_eq!(
        names(
            bundle
                .series(&select(Some("cpu"), None, &[]))
                .await
                .unwrap()
        ),
        [r#"cpu["checkout-1", "checkout"]"#, r#"cpu["db-0", "db"]"#]
    );
    assert_eq!(
        names(bundle.series(&select(None, Some("db"), &[])).await.unwrap()),
        [r#"cpu["db-0", "db"]"#]
    );
    assert_eq!(
        names(
            bundle
                .series(&select(
                    Some("latency_seconds_bucket"),
                    Some("frontend"),
                    &[("le", "+Inf")]
                ))
                .await
                .unwrap()
        ),
        [r#"latency_seconds_bucket["+Inf", "frontend"]"#]
    );
    assert!(
        bundle
            .series(&select(Some("latency_seconds"), None, &[]))
            .await
            .unwrap()
            .is_empty(),
        "names are exact"
    );
    assert!(bundle
        .series(&select(None, Some("nobody"), &[]))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn log_and_span_queries_filter_and_limit() {
    let bundle = open(&full_bundle());
    let logs = |service: Option<&str>, contains: Option<&str>, limit| LogQuery {
        window: window(0, 600),
        service: service.map(str::to_owned),
        contains: contains.map(str::to_owned),
        limit,
    };
    assert_eq!(
        messages(
            &bundle
                .logs(&logs(Some("checkout"), None, 10))
                .await
                .unwrap()
        ),
        ["heap 90%", "OOM: heap exhausted"]
    );
    assert_eq!(
        messages(&bundle.logs(&logs(None, Some("heap"), 10)).await.unwrap()),
        ["heap 90%", "OOM: heap exhausted"]
    );
    assert_eq!(
        messages(&bundle.logs(&logs(None, Some("Heap"), 10)).await.unwrap()),
        Vec::<&str>::new()
    );
    assert_eq!(
        messages(&bundle.logs(&logs(None, None, 1)).await.unwrap()),
        ["GET /cart 200"],
        "earliest first"
    );
    assert!(bundle
        .logs(&logs(Some("nobody"), None, 10))
        .await
        .unwrap()
        .is_empty());

    let spans = |service: Option<&str>, trace: Option<&str>| SpanQuery {
        window: window(0, 600),
        service: service.map(str::to_owned),
        trace_id: trace.map(str::to_owned),
        limit: 10,
    };
    let ids = |spans: Vec<Span>| spans.into_iter().map(|s| s.span_id).collect::<Vec<_>>();
    assert_eq!(
        ids(bundle.spans(&spans(None, Some("t1"))).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        ids(bundle
            .spans(&spans(Some("checkout"), Some("t1")))
            .await
            .unwrap()),
        ["b"]
    );
    assert_eq!(
        ids(bundle.spans(&spans(Some("checkout"), None)).await.unwrap()),
        ["c", "b"]
    );
    assert!(bundle
        .spans(&spans(None, Some("t9")))
        .await
        .unwrap()
        .is_empty());

    let checkout = EventQuery {
        window: window(0, 600),
        service: Some("checkout".to_owned()),
    };
    assert_eq!(bundle.changes(&checkout).await.unwrap().len(), 1);
    assert_eq!(
        bundle.events(&checkout).await.unwrap()[0].reason,
        "OOMKilled"
    );
}

#[tokio::test]
async fn gzipped_files_read_like_plain_ones() {
    let plain = open(&full_bundle());
    let gzipped: Vec<(String, Vec<u8>)> = full_bundle()
        .into_iter()
        .map(|(name, bytes)| match name {
            // `cat a.gz b.gz` is one valid gzip file with two members; the reader takes both.
            "logs.jsonl" => {
                let (head, tail) = bytes.split_at(bytes.len() / 2);
                (format!("{name}.gz"), [gzip(head), gzip(tail)].concat())
            }
            _ => (format!("{name}.gz"), gzip(&bytes)),
        })
        .collect();
    let named: Vec<(&str, Vec<u8>)> = gzipped
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let gz = open(&named);
    assert_eq!(
        answers(&gz, window(-3600, 3600)).await,
        answers(&plain, window(-3600, 3600)).await
    );
    assert_eq!(gz.counts(), plain.counts());
}

#[tokio::test]
async fn a_bundle_with_only_its_manifest_answers_nothing() {
    let bundle = open(&[("bundle.yaml", MANIFEST.into())]);
    let all = answers(&bundle, window(-3600, 3600)).await;
    assert_eq!((all.topology, all.alert), (None, None));
    assert_eq!(all.counts, BundleCounts::default());
}

#[test]
fn no_known_file_is_the_answer() {
    assert!(KnownFile::ALL
        .iter()
        .all(|f| !f.name().starts_with("expect")));
}

#[tokio::test]
async fn a_garbage_expect_yaml_changes_nothing() {
    let clean = open(&full_bundle());
    let mut with_answer = full_bundle();
    with_answer.push(("expect.yaml", b"root_cause: [unclosed\n\xff\xfe".to_vec()));
    with_answer.push(("expect.yaml.gz", b"not gzip at all".to_vec()));
    let dir = write(&with_answer);
    let answered = Bundle::open(dir.path()).expect("expect.yaml is never opened");
    assert_eq!(
        answers(&answered, window(-3600, 3600)).await,
        answers(&clean, window(-3600, 3600)).await
    );

    // Unreadable, not just malformed: a directory where the file would be.
    let dir = write(&full_bundle());
    std::fs::create_dir(dir.path().join("expect.yaml")).expect("mkdir");
    let unreadable = Bundle::open(dir.path()).expect("expect.yaml is never opened");
    assert_eq!(
        answers(&unreadable, window(-3600, 3600)).await,
        answers(&clean, window(-3600, 3600)).await
    );
}

#[test]
fn plain_and_gzipped_copies_of_one_file_are_refused() {
    let mut files = full_bundle();
    files.push(("metrics.om.gz", gzip(METRICS.as_bytes())));
    assert_eq!(
        open_err(&files),
        "metrics.om: both metrics.om and metrics.om.gz exist; keep one"
    );
}

#[test]
fn a_missing_manifest_is_refused() {
    assert_eq!(
        open_err(&[]),
        "bundle.yaml: not found; a bundle is a directory with a bundle.yaml"
    );
    assert_eq!(
        Bundle::open(Path::new("/nonexistent/bundle"))
            .expect_err("no directory")
            .to_string(),
        "bundle.yaml: not found; a bundle is a directory with a bundle.yaml"
    );
}

/// Replaces one file of the full fixture (or adds it) and returns the error.
fn error_with(name: &'static str, content: &[u8]) -> String {
    let mut files: Vec<(&str, Vec<u8>)> = full_bundle()
        .into_iter()
        .filter(|(n, _)| *n != name)
        .collect();
    if let Some(plain) = name.strip_suffix(".gz") {
        files.retain(|(n, _)| *n != plain);
    }
    files.push((name, content.to_vec()));
    open_err(&files)
}

#[test]
fn malformed_files_are_named_with_their_line() {
    let manifest_v2 = MANIFEST.replace("version: 1", "version: 2");
    let backwards = MANIFEST.replace("end: 1704067800000", "end: 2023-12-31T00:00:00Z");
    let no_name = MANIFEST.replace("name: checkout-oom\n", "");
    let cases: Vec<(&'static str, Vec<u8>, &str)> = vec![
        (
            "bundle.yaml",
            manifest_v2.into(),
            "bundle.yaml:1: bundle format version 2 is not supported; this reader knows version 1",
        ),
        ("bundle.yaml", backwards.into(), "bundle.yaml:4: the window ends before it starts"),
        ("bundle.yaml", no_name.into(), "bundle.yaml:1: missing field `name` (column 1)"),
        ("bundle.yaml", b"".to_vec(), "bundle.yaml:1: missing field `version` (column 1)"),
        (
            "topology.yaml",
            b"# header\nservices:\n  - name: a\n    depends_on: b\n".to_vec(),
            "topology.yaml:4: services[0].depends_on: invalid type: string \"b\", expected a sequence (column 17)",
        ),
        ("alert.json", b"{\n  \"status\": \"firing\",\n  \"labels\": {}\n}\n".to_vec(), "alert.json:4: missing field `startsAt` (column 1)"),
        (
            "metrics.om",
            b"# TYPE m gauge\nm 1 1\nm{a=\"x\"} abc 2\n".to_vec(),
            "metrics.om:3: expected a sample value, found \"abc\"",
        ),
        ("metrics.om.gz", gzip(b"m 1 1\nm 2\n"), "metrics.om.gz:2: sample has no timestamp; bundle metrics need `value ts_seconds`"),
        ("metrics.om", b"m 1 1\n# EOF\nm 2 2\n".to_vec(), "metrics.om:3: content after `# EOF` (line 2)"),
        (
            "logs.jsonl",
            b"{\"ts\":1,\"service\":\"a\",\"message\":\"ok\"}\n{\"ts\":1,\"service\":\"a\"}\n".to_vec(),
            "logs.jsonl:2: missing field `message` (column 22)",
        ),
        ("logs.jsonl.gz", b"plain text, not gzip".to_vec(), "logs.jsonl.gz:1: cannot read: invalid gzip header"),
        (
            "traces.jsonl",
            b"{\"ts\":1,\"trace_id\":\"t\",\"span_id\":\"s\",\"service\":\"a\",\"operation\":\"o\",\"duration_ms\":\"slow\"}\n".to_vec(),
            "traces.jsonl:1: invalid type: string \"slow\", expected f64 (column 87)",
        ),
        (
            "changes.jsonl",
            b"\n{\"ts\":1,\"service\":\"a\",\"kind\":\"rollback\",\"summary\":\"s\"}\n".to_vec(),
            "changes.jsonl:2: unknown variant `rollback`, expected one of `deploy`, `config`, `flag`, `scale`, `infra` (column 39)",
        ),
        ("events.jsonl", b"{\"ts\":1,\"object\":\"pod/a\"\n".to_vec(), "events.jsonl:1: EOF while parsing an object (column 24)"),
    ];
    let wrong: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, content, expected)| {
            let got = error_with(name, &content);
            (got != expected).then(|| format!("{name}: got {got:?}, expected {expected:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
