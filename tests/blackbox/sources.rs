//! Live sources through `cairn serve`: a source that is down is reported in the thread and
//! by `/readyz`, and the investigation goes on with the rest.

use std::time::Duration;

use serde_json::{json, Value};

use crate::serve::{ask, fake_slack, free_port, posted_count, start, wait_for};
use crate::simulated;

/// A TCP server that accepts connections and never answers: a source that hangs.
fn silent_server() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_hanging_sources_are_reported_and_the_investigation_goes_on() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = simulated(dir.path(), "shop-orders-db-slow-query");
    let (_hanging, hanging_port) = silent_server();
    let config = dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[sources]]
kind = "prometheus"
name = "prom-dead"
url = "http://127.0.0.1:{}"

[[sources]]
kind = "loki"
name = "loki-hanging"
url = "http://127.0.0.1:{hanging_port}"
timeout_ms = 300
"#,
            // Nothing listens on a port just released.
            free_port()
        ),
    )
    .unwrap();
    let (slack, received) = fake_slack().await;
    let server = start(
        dir.path(),
        slack,
        &bundle,
        &[("CAIRN_API_TOKEN", "api-token")],
    )
    .await;
    let client = reqwest::Client::new();

    ask(&client, &server.base, "Ev1", "1700000000.000100").await;

    let finals = || {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, b)| {
                m == "chat.update" && b.to_string().contains("Investigation finished")
            })
            .map(|(_, _, b)| b.clone())
            .collect::<Vec<Value>>()
    };
    wait_for("the final status", || !finals().is_empty()).await;
    let status = finals()[0].to_string();
    assert!(
        status.contains("Investigated without these sources"),
        "{status}"
    );
    assert!(status.contains("prom-dead could not answer"), "{status}");
    assert!(status.contains("loki-hanging could not answer"), "{status}");
    assert!(status.contains("timed out"), "{status}");
    // The bundle still carried the investigation: hypotheses were posted (they follow the
    // status in the outbox's order).
    let hypotheses = || posted_count(&received, "cairn_hypothesis");
    wait_for("a hypothesis", || hypotheses() > 0).await;

    // Readiness reports the sources without depending on them.
    let mut ready = Value::Null;
    for _ in 0..100 {
        let answer = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        ready = answer.json().await.unwrap();
        if ready["sources"]["prom-dead"]["reachable"] == json!(false)
            && ready["sources"]["loki-hanging"]["reachable"] == json!(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready["sources"]["prom-dead"]["reachable"], false, "{ready}");
    assert_eq!(
        ready["sources"]["loki-hanging"]["reachable"], false,
        "{ready}"
    );
    assert_eq!(ready["sources"]["bundle"]["reachable"], true, "{ready}");
}

/// What the fake PagerDuty REST API received: (method and path, `From`, authorization, body).
type PdReceived = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, Value)>>>;

/// PagerDuty's REST API as documented (v2): incident details, notes, abilities.
async fn fake_pagerduty() -> (std::net::SocketAddr, PdReceived) {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    let received: PdReceived = Default::default();
    fn header(headers: &HeaderMap, name: &str) -> String {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
    async fn incident(
        State(received): State<PdReceived>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> Json<Value> {
        received.lock().unwrap().push((
            format!("GET /incidents/{id}"),
            header(&headers, "from"),
            header(&headers, "authorization"),
            Value::Null,
        ));
        Json(json!({"incident": {
            "id": id, "incident_number": 42, "title": "Orders latency", "status": "triggered",
            "urgency": "high", "created_at": "2026-05-24T16:48:00Z",
            "html_url": "https://acme.pagerduty.test/incidents/PABC123",
            "service": {"id": "PSVC", "type": "service_reference", "summary": "orders"}
        }}))
    }
    async fn note(
        State(received): State<PdReceived>,
        Path(id): Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        received.lock().unwrap().push((
            format!("POST /incidents/{id}/notes"),
            header(&headers, "from"),
            header(&headers, "authorization"),
            body.clone(),
        ));
        (
            StatusCode::CREATED,
            Json(
                json!({"note": {"id": "PNOTE1", "content": body["note"]["content"], "created_at": "2026-05-24T16:50:00Z"}}),
            ),
        )
    }
    let app = Router::new()
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/notes", post(note))
        .route(
            "/abilities",
            get(|| async { Json(json!({"abilities": ["teams"]})) }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_page_is_read_from_pagerduty_and_answered_with_a_note() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = simulated(dir.path(), "shop-orders-db-slow-query");
    let (pd, pd_received) = fake_pagerduty().await;
    std::fs::write(
        dir.path().join("cairn.toml"),
        format!(
            "[[sources]]\nkind = \"pagerduty\"\nurl = \"http://{pd}\"\ntoken = \"pd-rest-secret\"\nfrom = \"cairn@acme.test\"\n"
        ),
    )
    .unwrap();
    let (slack, received) = fake_slack().await;
    let env = [
        ("CAIRN_INCIDENT_CHANNEL", "CINC"),
        ("CAIRN_PAGERDUTY_WEBHOOK_SECRETS", "pd-hook-secret"),
    ];
    let server = start(dir.path(), slack, &bundle, &env).await;
    let body = json!({"event": {"id": "E1", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "2026-05-24T16:48:00Z", "data": {"id": "PABC123", "type": "incident", "title": "Orders latency"}}}).to_string();
    let answer = crate::send_pagerduty(&server.base, "pd-hook-secret", body).await;
    assert_eq!(answer.status(), 202);

    let notes = || {
        pd_received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.0 == "POST /incidents/PABC123/notes")
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_for("the note on the PagerDuty incident", || !notes().is_empty()).await;
    let (_, from, auth, note) = notes().remove(0);
    assert_eq!(from, "cairn@acme.test");
    assert_eq!(auth, "Token token=pd-rest-secret");
    let content = note["note"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Cairn investigated \"Orders latency\""),
        "{content}"
    );
    assert!(content.contains("#1 "), "{content}");
    assert!(
        content.contains("Thread: https://slack.com/app_redirect?channel=CINC&message_ts="),
        "{content}"
    );
    // The details were read for the page, and the thread was opened once.
    assert!(pd_received
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.0 == "GET /incidents/PABC123"));
    let roots = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, b)| {
            m == "chat.postMessage" && b["metadata"]["event_type"] == "cairn_incident"
        })
        .count();
    assert_eq!(roots, 1);
    // The secret never reached Slack.
    assert!(!received
        .lock()
        .unwrap()
        .iter()
        .any(|(_, _, b)| b.to_string().contains("pd-rest-secret")));

    // A webhook that names its service needs no details: PagerDuty is not asked.
    let body = json!({"event": {"id": "E2", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "2026-05-24T16:50:00Z", "data": {"id": "PDEF456", "type": "incident", "title": "Cart errors", "service": {"summary": "cart"}}}}).to_string();
    let answer = crate::send_pagerduty(&server.base, "pd-hook-secret", body).await;
    assert_eq!(answer.status(), 202);
    let asked = |path: &str| pd_received.lock().unwrap().iter().any(|r| r.0 == path);
    wait_for("the note on the second incident", || {
        asked("POST /incidents/PDEF456/notes")
    })
    .await;
    assert!(!asked("GET /incidents/PDEF456"));
}
