//! The Prometheus source against a fake speaking Prometheus's documented HTTP API (v1): what
//! it asks, how it reads the answers, and what it makes of bad ones. The same source against
//! a real Prometheus is tested end to end in `tests/blackbox/prometheus.rs`.

use std::time::Duration;

use cairn_connectors::prometheus::{Prometheus, PrometheusConfig};
use cairn_connectors::{DataSource, SeriesSelector, SourceError, TimeWindow};
use chrono::{DateTime, Utc};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap()
}

fn config(server: &MockServer) -> PrometheusConfig {
    let mut config = PrometheusConfig::new("prom", &server.uri());
    config.resilience.timeout = Duration::from_millis(300);
    config.resilience.backoff = Duration::from_millis(1);
    config
}

fn matrix(result: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"status": "success", "data": {"resultType": "matrix", "result": result}}),
    )
}

/// The query parameters of the `n`th request the fake received.
async fn params(server: &MockServer, n: usize) -> Vec<(String, String)> {
    let requests = server.received_requests().await.unwrap();
    requests[n]
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_hour_is_read_as_raw_samples_in_cairns_names() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .respond_with(matrix(json!([{
            "metric": {"__name__": "http_server_requests_seconds_count", "app": "checkout", "code": "500"},
            "values": [[1700000000, "1"], [1700000015.5, "NaN"], [1700003600, "+Inf"], [1700003601, "9"]]
        }])))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.service_label = "app".into();
    config.metrics.insert(
        "http_server_requests_seconds_count".into(),
        "http_requests_total".into(),
    );
    let prom = Prometheus::new(config);
    let window = TimeWindow::new(at(1_700_000_000), at(1_700_003_600)).unwrap();
    let series = prom
        .series(&SeriesSelector {
            metric: Some("http_requests_total".into()),
            service: Some("checkout".into()),
            ..SeriesSelector::all(window)
        })
        .await
        .unwrap();
    let sent = params(&server, 0).await;
    assert_eq!(
        param(&sent, "query"),
        r#"{__name__="http_server_requests_seconds_count",app="checkout"}[3600001ms]"#
    );
    assert_eq!(param(&sent, "time"), "1700003600.000");
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].metric, "http_requests_total");
    assert_eq!(series[0].service(), Some("checkout"));
    assert!(!series[0].labels.contains_key("app"));
    let times: Vec<i64> = series[0].samples.iter().map(|s| s.ts_ms).collect();
    assert_eq!(
        times,
        [1_700_000_000_000, 1_700_000_015_500, 1_700_003_600_000],
        "outside the window dropped"
    );
    assert!(series[0].samples[1].value.is_nan());
    assert!(series[0].samples[2].value.is_infinite());
}

#[tokio::test]
async fn a_long_window_is_read_at_a_step_chosen_from_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query_range"))
        .respond_with(matrix(
            json!([{"metric": {"__name__": "up", "service": "a"}, "values": [[1700000000, "1"]]}]),
        ))
        .mount(&server)
        .await;
    let prom = Prometheus::new(config(&server));
    let window = TimeWindow::new(at(1_700_000_000), at(1_700_000_000 + 12 * 3600)).unwrap();
    let series = prom.series(&SeriesSelector::all(window)).await.unwrap();
    assert_eq!(series.len(), 1);
    let sent = params(&server, 0).await;
    assert_eq!(param(&sent, "query"), r#"{__name__=~".+"}"#);
    assert_eq!(
        param(&sent, "step"),
        "44000ms",
        "12 h in at most 1000 points"
    );
    assert_eq!(param(&sent, "start"), "1700000000.000");
}

#[tokio::test]
async fn errors_and_garbage_are_reported_not_panicked_on() {
    let window = TimeWindow::new(at(1_700_000_000), at(1_700_003_600)).unwrap();
    let cases = [
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"status": "error", "errorType": "bad_data", "error": "parse error"}),
            ),
            "parse error",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>proxy</html>"),
            "not the JSON",
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
            ),
            "got a `vector`",
        ),
        (
            matrix(json!([{"metric": {}, "values": [["soon", "1"]]}])),
            "has the time",
        ),
        (
            matrix(json!([{"metric": {}, "values": [[1700000000, "many"]]}])),
            "has the value",
        ),
        (ResponseTemplate::new(503), "HTTP 503"),
    ];
    for (answer, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let prom = Prometheus::new(config(&server));
        let err = prom.series(&SeriesSelector::all(window)).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{err} lacks {expected}");
    }
    // A Prometheus that does not answer in time.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(matrix(json!([])).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let prom = Prometheus::new(config(&server));
    let answer = tokio::time::timeout(
        Duration::from_secs(4),
        prom.series(&SeriesSelector::all(window)),
    )
    .await
    .expect("a slow Prometheus does not hang the query");
    assert!(matches!(answer, Err(SourceError::Timeout { .. })));
}

#[tokio::test]
async fn an_uncovered_service_is_never_asked_for_and_check_reads_labels() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/labels"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "success", "data": ["__name__", "service"]})),
        )
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.services = vec!["checkout".into()];
    let prom = Prometheus::new(config);
    let window = TimeWindow::new(at(1_700_000_000), at(1_700_003_600)).unwrap();
    let other = SeriesSelector {
        service: Some("payments".into()),
        ..SeriesSelector::all(window)
    };
    assert!(prom.series(&other).await.unwrap().is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());
    prom.check().await.unwrap();
}
