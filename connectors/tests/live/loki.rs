//! The Loki source against a fake Loki speaking the documented `query_range` API: what it
//! asks, how it pages, how it maps lines, and how it fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cairn_connectors::http::{Auth, Resilience};
use cairn_connectors::loki::{Loki, LokiConfig};
use cairn_connectors::{DataSource, LogQuery, LogRecord, SourceError, SourceSet, TimeWindow};
use chrono::DateTime;
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const QUERY_RANGE: &str = "/loki/api/v1/query_range";

/// The window every test asks about: one hour from 2023-11-14T22:13:20Z.
const START_S: i64 = 1_700_000_000;

fn window() -> TimeWindow {
    TimeWindow::new(
        DateTime::from_timestamp(START_S, 0).unwrap(),
        DateTime::from_timestamp(START_S + 3_600, 0).unwrap(),
    )
    .unwrap()
}

/// Epoch nanoseconds `s` seconds into the window.
fn ns(s: i64) -> i64 {
    (START_S + s) * 1_000_000_000
}

/// Quick retries and a breaker that stays closed unless a test wants it.
fn fast() -> Resilience {
    Resilience {
        timeout: Duration::from_secs(5),
        retries: 2,
        backoff: Duration::from_millis(1),
        max_retry_after: Duration::from_secs(1),
        breaker_threshold: 100,
        breaker_cooldown: Duration::from_secs(600),
    }
}

fn config(server: &MockServer) -> LokiConfig {
    let mut config = LokiConfig::new("loki-eu", &server.uri());
    config.resilience = fast();
    config
}

fn query(service: Option<&str>, contains: Option<&str>, limit: usize) -> LogQuery {
    LogQuery {
        window: window(),
        service: service.map(str::to_owned),
        contains: contains.map(str::to_owned),
        limit,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Loki holding fixed lines. It answers `query_range` as Loki does: the lines with
/// `start <= ts < end`, the earliest `limit` of them for `direction=forward`, grouped by
/// stream with each stream's values in time order. It does not evaluate LogQL; the tests
/// assert on the LogQL it received instead.
struct FakeLoki {
    /// `(ts ns, stream labels, line)`, kept sorted by time, then stream, then line.
    lines: Vec<(i64, BTreeMap<String, String>, String)>,
}

/// A line as tests write it: `(ts ns, stream labels, line)`.
type FakeLine<'a> = (i64, &'a [(&'a str, &'a str)], &'a str);

impl FakeLoki {
    fn new(lines: &[FakeLine]) -> Self {
        let mut lines: Vec<_> = lines
            .iter()
            .map(|(ts, stream, line)| (*ts, labels(stream), line.to_string()))
            .collect();
        lines.sort();
        Self { lines }
    }
}

impl Respond for FakeLoki {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let number = |name: &str| params.get(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(start), Some(end), Some(limit)) =
            (number("start"), number("end"), number("limit"))
        else {
            return ResponseTemplate::new(400).set_body_string("invalid start, end or limit");
        };
        if params.get("direction").map(String::as_str) != Some("forward") || limit <= 0 {
            return ResponseTemplate::new(400).set_body_string("unsupported direction or limit");
        }
        let chosen = self
            .lines
            .iter()
            .filter(|(ts, _, _)| start <= *ts && *ts < end)
            .take(limit as usize);
        let mut streams: Vec<(&BTreeMap<String, String>, Vec<serde_json::Value>)> = Vec::new();
        for (ts, stream, line) in chosen {
            let value = json!([ts.to_string(), line]);
            match streams.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, values)) => values.push(value),
                None => streams.push((stream, vec![value])),
            }
        }
        let result: Vec<_> = streams
            .into_iter()
            .map(|(stream, values)| json!({"stream": stream, "values": values}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "streams", "result": result, "stats": {}}
        }))
    }
}

async fn serve(fake: FakeLoki) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(fake)
        .mount(&server)
        .await;
    server
}

/// The query parameters of every request the fake received, in order.
async fn asked(server: &MockServer) -> Vec<HashMap<String, String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.query_pairs().into_owned().collect())
        .collect()
}

fn messages(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.message.as_str()).collect()
}

#[tokio::test]
async fn the_query_carries_service_labels_filter_and_the_window_in_nanoseconds() {
    let server = serve(FakeLoki::new(&[(
        ns(10),
        &[("service", "checkout"), ("cluster", "eu-1")],
        "upstream timeout",
    )]))
    .await;
    let mut config = config(&server);
    config.labels = labels(&[("cluster", "eu-1"), ("namespace", "shop")]);
    config.auth = Auth::Bearer(SecretString::from("loki-token"));
    let loki = Loki::new(config);

    let records = loki
        .logs(&query(Some("checkout"), Some("timeout"), 50))
        .await
        .unwrap();

    assert_eq!(messages(&records), ["upstream timeout"]);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method.as_str(), "GET");
    assert_eq!(requests[0].url.path(), QUERY_RANGE);
    assert_eq!(
        requests[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer loki-token")
    );
    let params = &asked(&server).await[0];
    assert_eq!(
        params["query"],
        r#"{service="checkout",cluster="eu-1",namespace="shop"} |= "timeout""#
    );
    assert_eq!(params["start"], ns(0).to_string());
    // The window is closed and Loki's `end` exclusive: one nanosecond more.
    assert_eq!(params["end"], (ns(3_600) + 1).to_string());
    assert_eq!(params["direction"], "forward");
    assert_eq!(params["limit"], "50");
}

#[tokio::test]
async fn without_service_or_labels_every_stream_of_the_service_label_is_selected() {
    let server = serve(FakeLoki::new(&[])).await;
    let mut custom = config(&server);
    custom.service_label = "app".into();
    Loki::new(custom)
        .logs(&query(None, None, 10))
        .await
        .unwrap();

    let mut labelled = config(&server);
    labelled.labels = labels(&[("cluster", "eu-1")]);
    Loki::new(labelled)
        .logs(&query(None, Some(""), 10))
        .await
        .unwrap();

    // An empty value matches streams without the label too, which Loki refuses alone.
    let mut empty = config(&server);
    empty.labels = labels(&[("cluster", "")]);
    Loki::new(empty).logs(&query(None, None, 10)).await.unwrap();

    let queries: Vec<String> = asked(&server)
        .await
        .into_iter()
        .map(|p| p["query"].clone())
        .collect();
    assert_eq!(
        queries,
        [
            r#"{app=~".+"}"#,
            r#"{cluster="eu-1"}"#,
            r#"{cluster="",service=~".+"}"#
        ]
    );
}

#[tokio::test]
async fn a_source_covering_some_services_asks_only_for_them() {
    let server = serve(FakeLoki::new(&[(ns(1), &[("service", "c")], "hello")])).await;
    let mut config = config(&server);
    config.services = vec!["a.b".into(), "c".into()];
    let loki = Loki::new(config);

    let other = loki.logs(&query(Some("d"), None, 10)).await.unwrap();
    assert!(other.is_empty());
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "no request for a service the source does not cover"
    );

    let covered = loki.logs(&query(Some("c"), None, 10)).await.unwrap();
    assert_eq!(messages(&covered), ["hello"]);
    loki.logs(&query(None, None, 10)).await.unwrap();
    let queries: Vec<String> = asked(&server)
        .await
        .into_iter()
        .map(|p| p["query"].clone())
        .collect();
    assert_eq!(queries, [r#"{service="c"}"#, r#"{service=~"a\\.b|c"}"#]);
}

#[tokio::test]
async fn label_values_and_line_filters_are_escaped() {
    let weird = "we\"ird\\svc";
    let server = serve(FakeLoki::new(&[(
        ns(5),
        &[("service", weird), ("env", "a\nb")],
        r#"say "hi" C:\tmp"#,
    )]))
    .await;
    let mut config = config(&server);
    config.labels = labels(&[("env", "a\nb")]);
    let loki = Loki::new(config);

    let records = loki
        .logs(&query(Some(weird), Some(r#"say "hi" C:\tmp"#), 10))
        .await
        .unwrap();

    assert_eq!(records.len(), 1);
    assert_eq!(records[0].service, weird);
    assert_eq!(
        asked(&server).await[0]["query"],
        r#"{service="we\"ird\\svc",env="a\nb"} |= "say \"hi\" C:\\tmp""#
    );
}

#[tokio::test]
async fn a_label_name_that_is_not_logql_is_refused_before_asking() {
    let server = serve(FakeLoki::new(&[])).await;
    let mut config = config(&server);
    config.labels = labels(&[("env\"} or {x", "y")]);
    let loki = Loki::new(config);

    let err = loki.logs(&query(None, None, 10)).await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
    let err = loki.check().await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Two streams whose lines share timestamps across page boundaries when read four at a time:
/// pages [1 2 3 4a] [4a 4a' 4b 5] [5 6a 6b].
fn interleaved() -> FakeLoki {
    let a: &[(&str, &str)] = &[("service", "api"), ("pod", "api-a")];
    let b: &[(&str, &str)] = &[("service", "api"), ("pod", "api-b")];
    FakeLoki::new(&[
        (ns(1), a, "a1"),
        (ns(2), a, "a2"),
        (ns(3), b, "b3"),
        (ns(4), a, "a4"),
        (ns(4), a, "a4-again"),
        (ns(4), b, "b4"),
        (ns(5), b, "b5"),
        (ns(6), a, "a6"),
        (ns(6), b, "b6"),
    ])
}

#[tokio::test]
async fn pages_restart_at_the_last_timestamp_and_drop_lines_read_twice() {
    let server = serve(interleaved()).await;
    let mut config = config(&server);
    config.max_lines_per_request = 4;
    let loki = Loki::new(config);

    let records = loki.logs(&query(Some("api"), None, 100)).await.unwrap();

    assert_eq!(
        messages(&records),
        ["a1", "a2", "b3", "a4", "a4-again", "b4", "b5", "a6", "b6"]
    );
    assert!(records.windows(2).all(|w| w[0].ts <= w[1].ts));
    let pages = asked(&server).await;
    let starts: Vec<&str> = pages.iter().map(|p| p["start"].as_str()).collect();
    assert_eq!(
        starts,
        [ns(0).to_string(), ns(4).to_string(), ns(5).to_string()]
    );
    let limits: Vec<&str> = pages.iter().map(|p| p["limit"].as_str()).collect();
    assert_eq!(limits, ["4", "4", "4"]);
}

#[tokio::test]
async fn the_limit_is_respected_across_pages() {
    let server = serve(interleaved()).await;
    let mut config = config(&server);
    config.max_lines_per_request = 4;
    let loki = Loki::new(config);

    let records = loki.logs(&query(None, None, 5)).await.unwrap();
    assert_eq!(messages(&records), ["a1", "a2", "b3", "a4", "a4-again"]);
    // The second page asks for the one line still wanted plus the one read again.
    let limits: Vec<String> = asked(&server)
        .await
        .into_iter()
        .map(|p| p["limit"].clone())
        .collect();
    assert_eq!(limits, ["4", "2"]);

    let records = loki.logs(&query(None, None, 3)).await.unwrap();
    assert_eq!(messages(&records), ["a1", "a2", "b3"]);
    assert_eq!(
        asked(&server).await.len(),
        3,
        "a limit under a page is one request"
    );

    assert!(loki.logs(&query(None, None, 0)).await.unwrap().is_empty());
    assert_eq!(asked(&server).await.len(), 3, "a limit of 0 asks nothing");
}

#[tokio::test]
async fn more_lines_at_one_timestamp_than_a_page_holds_do_not_stall_paging() {
    let s: &[(&str, &str)] = &[("service", "api")];
    let server = serve(FakeLoki::new(&[
        (ns(1), s, "same-1"),
        (ns(1), s, "same-2"),
        (ns(1), s, "same-3"),
        (ns(1), s, "same-4"),
        (ns(2), s, "after"),
    ]))
    .await;
    let mut config = config(&server);
    config.max_lines_per_request = 2;
    let loki = Loki::new(config);

    let records = tokio::time::timeout(Duration::from_secs(30), loki.logs(&query(None, None, 100)))
        .await
        .expect("paging ends")
        .unwrap();

    // The third and fourth line of that nanosecond cannot be reached two at a time; paging
    // moves past it instead of asking for the same page for ever.
    assert_eq!(messages(&records), ["same-1", "same-2", "after"]);
    let starts: Vec<String> = asked(&server)
        .await
        .into_iter()
        .map(|p| p["start"].clone())
        .collect();
    assert_eq!(starts, [ns(0), ns(1), ns(1) + 1].map(|n| n.to_string()));
}

#[tokio::test]
async fn a_source_answering_the_same_page_whatever_is_asked_does_not_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "streams", "result": [
                {"stream": {"service": "api"}, "values": [
                    [ns(1).to_string(), "one"], [ns(2).to_string(), "two"]
                ]}
            ]}
        })))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.max_lines_per_request = 2;
    let loki = Loki::new(config);

    let records = tokio::time::timeout(Duration::from_secs(30), loki.logs(&query(None, None, 100)))
        .await
        .expect("paging ends")
        .unwrap();

    assert_eq!(messages(&records), ["one", "two"]);
    assert!(asked(&server).await.len() <= 3);
}

#[tokio::test]
async fn json_lines_become_structured_records() {
    let server = serve(FakeLoki::new(&[
        (
            ns(1),
            &[("service", "api"), ("pod", "api-1"), ("level", "error")],
            r#"{"message":"boom","level":"warn","trace_id":"t1","user":"u7","latency_ms":12}"#,
        ),
        (
            ns(2),
            &[
                ("service", "api"),
                ("detected_level", "info"),
                ("traceID", "t2"),
            ],
            r#"{"msg":"ok","traceId":"t3","code":200}"#,
        ),
        (
            ns(3),
            &[("service", "api")],
            r#"{"msg":"hi","severity":"debug"}"#,
        ),
        (ns(4), &[("service", "api")], r#"{"no":"message here"}"#),
        (ns(5), &[("service", "api")], r#"{"message":5}"#),
        (ns(6), &[("service", "api")], r#"{broken"#),
        (
            ns(7),
            &[("service", "api"), ("severity", "warning")],
            "plain text line",
        ),
    ]))
    .await;
    let loki = Loki::new(config(&server));

    let records = loki.logs(&query(None, None, 100)).await.unwrap();

    let expected = json!([
        {"ts": (START_S + 1) * 1000, "service": "api", "level": "error", "message": "boom",
         "pod": "api-1", "trace_id": "t1", "attrs": {"level": "warn", "user": "u7", "latency_ms": 12}},
        {"ts": (START_S + 2) * 1000, "service": "api", "level": "info", "message": "ok",
         "trace_id": "t2", "attrs": {"traceId": "t3", "code": 200}},
        {"ts": (START_S + 3) * 1000, "service": "api", "level": "debug", "message": "hi"},
        {"ts": (START_S + 4) * 1000, "service": "api", "message": r#"{"no":"message here"}"#},
        {"ts": (START_S + 5) * 1000, "service": "api", "message": r#"{"message":5}"#},
        {"ts": (START_S + 6) * 1000, "service": "api", "message": "{broken"},
        {"ts": (START_S + 7) * 1000, "service": "api", "level": "warning", "message": "plain text line"},
    ]);
    let expected: Vec<LogRecord> = serde_json::from_value(expected).unwrap();
    assert_eq!(records, expected);

    // `contains` is about the message, as in a bundle: text only in an attribute is no match.
    let boom = loki.logs(&query(None, Some("boom"), 100)).await.unwrap();
    assert_eq!(messages(&boom), ["boom"]);
    assert!(loki
        .logs(&query(None, Some("u7"), 100))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_service_comes_from_the_stream_label_else_from_the_query() {
    let server = serve(FakeLoki::new(&[
        (ns(1), &[("app", "cart")], "labelled"),
        (ns(2), &[("job", "x")], "unlabelled"),
    ]))
    .await;
    let mut config = config(&server);
    config.service_label = "app".into();
    let loki = Loki::new(config);

    let any = loki.logs(&query(None, None, 10)).await.unwrap();
    assert_eq!(
        messages(&any),
        ["labelled"],
        "a line naming no service is skipped"
    );
    assert_eq!(any[0].service, "cart");

    let asked_for = loki.logs(&query(Some("cart"), None, 10)).await.unwrap();
    let services: Vec<&str> = asked_for.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(services, ["cart", "cart"]);
}

#[tokio::test]
async fn a_rate_limited_request_is_retried_after_the_wait_loki_asks_for() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(FakeLoki::new(&[(
            ns(1),
            &[("service", "api")],
            "after the wait",
        )]))
        .mount(&server)
        .await;
    let loki = Loki::new(config(&server));

    let records = loki.logs(&query(None, None, 10)).await.unwrap();

    assert_eq!(messages(&records), ["after the wait"]);
    assert_eq!(asked(&server).await.len(), 2);
}

#[tokio::test]
async fn a_500_storm_is_unavailable_and_then_the_breaker_fails_fast() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.resilience.breaker_threshold = 1;
    let loki = Loki::new(config);

    let err = loki.logs(&query(None, None, 10)).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Unavailable { source_name, .. } if source_name == "loki-eu"),
        "{err:?}"
    );
    assert_eq!(asked(&server).await.len(), 3, "one request and two retries");

    let err = loki.logs(&query(None, None, 10)).await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        asked(&server).await.len(),
        3,
        "the open breaker sends nothing"
    );
}

#[tokio::test]
async fn an_answer_slower_than_the_time_limit_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(FakeLoki::new(&[]).respond_slowly())
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.resilience.timeout = Duration::from_millis(200);
    config.resilience.retries = 1;
    let loki = Loki::new(config);

    let outcome = tokio::time::timeout(Duration::from_secs(30), loki.logs(&query(None, None, 10)))
        .await
        .expect("the time limit ends the request");

    assert!(
        matches!(&outcome, Err(SourceError::Timeout { source_name }) if source_name == "loki-eu"),
        "{outcome:?}"
    );
}

/// A fake that answers correctly, but only after far longer than any test's time limit.
struct Slow(FakeLoki);

impl FakeLoki {
    fn respond_slowly(self) -> Slow {
        Slow(self)
    }
}

impl Respond for Slow {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(Duration::from_secs(60))
    }
}

#[tokio::test]
async fn bodies_that_are_not_lokis_documented_shape_are_bad_data() {
    let server = MockServer::start().await;
    let loki = Loki::new(config(&server));
    let line = |ts: serde_json::Value| {
        json!({"status": "success", "data": {"resultType": "streams", "result": [
            {"stream": {"service": "api"}, "values": [[ts, "line"]]}
        ]}})
        .to_string()
    };
    let bodies = [
        "".to_owned(),
        "<html>gateway</html>".to_owned(),
        "null".to_owned(),
        "[]".to_owned(),
        r#"{"status":"error","errorType":"bad_data","error":"parse error at line 1"}"#.to_owned(),
        r#"{"status":"success"}"#.to_owned(),
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.to_owned(),
        r#"{"status":"success","data":{"resultType":"streams"}}"#.to_owned(),
        r#"{"status":"success","data":{"resultType":"streams","result":{}}}"#.to_owned(),
        r#"{"status":"success","data":{"resultType":"streams","result":[{"values":[]}]}}"#
            .to_owned(),
        r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{"a":1},"values":[]}]}}"#
            .to_owned(),
        r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1"]]}]}}"#
            .to_owned(),
        line(json!("yesterday")),
        line(json!(1700000000)),
        line(json!("99999999999999999999999")),
    ];
    for body in bodies {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path(QUERY_RANGE))
            .respond_with(ResponseTemplate::new(200).set_body_string(body.clone()))
            .mount(&server)
            .await;
        let outcome = loki.logs(&query(None, None, 10)).await;
        assert!(
            matches!(&outcome, Err(SourceError::BadData { source_name, .. }) if source_name == "loki-eu"),
            "{body}: {outcome:?}"
        );
    }
    // The third element Loki 3 may add (structured metadata) is not a wrong shape.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(QUERY_RANGE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success", "data": {"resultType": "streams", "result": [
                {"stream": {"service": "api"}, "values": [[ns(1).to_string(), "line", {"k": "v"}]]}
            ]}
        })))
        .mount(&server)
        .await;
    let records = loki.logs(&query(None, None, 10)).await.unwrap();
    assert_eq!(messages(&records), ["line"]);
}

#[tokio::test]
async fn check_asks_loki_for_label_names_in_a_short_window() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/loki/api/v1/labels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success", "data": ["service", "pod"]
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.resilience.retries = 0;
    let loki = Loki::new(config);

    loki.check().await.unwrap();
    let params = &asked(&server).await[0];
    let bound = |name: &str| params[name].parse::<i64>().unwrap();
    assert!(
        bound("end") - bound("start") <= 3_600 * 1_000_000_000,
        "{params:?}"
    );

    Mock::given(method("GET"))
        .and(path("/loki/api/v1/labels"))
        .respond_with(ResponseTemplate::new(200).set_body_string("Loki is up"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let err = loki.check().await.unwrap_err();
    assert!(matches!(err, SourceError::BadData { .. }), "{err:?}");

    Mock::given(method("GET"))
        .and(path("/loki/api/v1/labels"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = loki.check().await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn credentials_stay_out_of_debug_and_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("no org id"))
        .mount(&server)
        .await;
    let secret = "sk-loki-very-secret";
    let mut config = config(&server);
    config.auth = Auth::Basic {
        username: "tenant".into(),
        password: Some(SecretString::from(secret)),
    };
    assert!(!format!("{config:?}").contains(secret));
    let loki = Loki::new(config);
    assert!(!format!("{loki:?}").contains(secret));

    let err = loki.logs(&query(None, None, 10)).await.unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));
    assert_eq!(asked(&server).await.len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn logs_arrive_from_a_set_whose_other_source_fails() {
    let good = serve(FakeLoki::new(&[
        (ns(1), &[("service", "api")], "first"),
        (ns(2), &[("service", "api")], "second"),
    ]))
    .await;
    let down = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let mut down_config = LokiConfig::new("loki-down", &down.uri());
    down_config.resilience = Resilience {
        retries: 0,
        ..fast()
    };
    let set = SourceSet::new(vec![
        Arc::new(Loki::new(down_config)),
        Arc::new(Loki::new(config(&good))),
    ]);

    let records = set.logs(&query(None, None, 10)).await.unwrap();

    assert_eq!(messages(&records), ["first", "second"]);
    let failures = set.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].source, "loki-down");
    assert_eq!(failures[0].query, "logs");
}
