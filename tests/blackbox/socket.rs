//! `cairn serve` in Slack Socket Mode: the real binary, the fake Slack Web API answering
//! `apps.connections.open` with the address of a WebSocket server this test plays Slack on.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::serve::{fake_slack_with, mention, start_with, wait_for, Received};
use crate::simulated;

const APP_TOKEN: &str = "xapp-1-A0TEST-1-secret";

type Conn = WebSocketStream<TcpStream>;

/// Waits for Cairn to connect to the fake Socket Mode server.
async fn accept(listener: &TcpListener) -> Conn {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("Cairn connects to the Socket Mode URL")
        .unwrap();
    tokio_tungstenite::accept_async(stream).await.unwrap()
}

async fn send(conn: &mut Conn, envelope: Value) {
    conn.send(Message::text(envelope.to_string()))
        .await
        .unwrap();
}

/// Reads frames until the acknowledgement of `envelope_id`; other frames are kept.
async fn ack_of(conn: &mut Conn, envelope_id: &str, seen: &mut Vec<Message>) -> Value {
    let read = async {
        loop {
            let frame = conn.next().await.expect("the connection stays").unwrap();
            if let Message::Text(text) = &frame {
                let ack: Value = serde_json::from_str(text.as_str()).unwrap();
                if ack["envelope_id"] == envelope_id {
                    return ack;
                }
            }
            seen.push(frame);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| panic!("no acknowledgement of {envelope_id}"))
}

fn events_api(envelope_id: &str, body: &str, retry: u64) -> Value {
    json!({
        "type": "events_api",
        "envelope_id": envelope_id,
        "accepts_response_payload": false,
        "retry_attempt": retry,
        "retry_reason": if retry > 0 { "timeout" } else { "" },
        "payload": serde_json::from_str::<Value>(body).unwrap(),
    })
}

fn opens(received: &Received) -> usize {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| m == "apps.connections.open")
        .count()
}

/// Messages posted in the thread under `thread_ts` whose metadata is `kind`.
fn posted(received: &Received, thread_ts: &str, kind: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, b)| {
            m == "chat.postMessage"
                && b["thread_ts"] == thread_ts
                && b["metadata"]["event_type"] == kind
        })
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// Jobs in the bot's database, in any state (the bot keeps running; SQLite is in WAL mode).
/// One count: the worker moves jobs between states while the test reads.
async fn jobs(db: &str) -> i64 {
    let store = cairn_knowledge::Store::connect(db).await.unwrap();
    store.count_all_jobs().await.unwrap()
}

async fn readyz(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_events_commands_buttons_and_reconnects() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = simulated(dir.path(), "shop-checkout-bad-deploy");
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_url = format!("ws://{}/link/?ticket=t1", ws.local_addr().unwrap());
    let (slack, received) = fake_slack_with(Some(ws_url)).await;
    // Socket Mode: an app token and no signing secret.
    let server = start_with(
        dir.path(),
        slack,
        &bundle,
        &[("CAIRN_SLACK_APP_TOKEN", APP_TOKEN)],
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cairn.db").display()
    );
    let mut seen = Vec::new();

    let mut conn = accept(&ws).await;
    {
        let all = received.lock().unwrap();
        let open = all
            .iter()
            .find(|(m, _, _)| m == "apps.connections.open")
            .expect("apps.connections.open was called");
        assert_eq!(
            open.1,
            format!("Bearer {APP_TOKEN}"),
            "the app token opens it"
        );
    }
    assert_eq!(readyz(&client, &server.base).await["socket_mode"], false);
    send(&mut conn, json!({"type": "hello", "num_connections": 1})).await;
    let mut connected = false;
    for _ in 0..200 {
        let ready = readyz(&client, &server.base).await;
        if ready["socket_mode"] == true && ready["slack"] == true {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(connected, "/readyz shows the socket connected after hello");
    // Over Socket Mode there is no signing secret: the HTTP Slack endpoints are off.
    let r = client
        .post(format!("{}/slack/events", server.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A mention: acknowledged with its envelope_id, and its thread posted like over HTTP.
    let ts1 = "1700000000.000100";
    let body = mention("EvS1", ts1, "<@UCAIRN> why is checkout failing?", json!({}));
    send(&mut conn, events_api("env-1", &body, 0)).await;
    let ack = ack_of(&mut conn, "env-1", &mut seen).await;
    assert_eq!(ack, json!({"envelope_id": "env-1"}));
    // Slack redelivers it (as after a missed acknowledgement): acknowledged, stored once.
    send(&mut conn, events_api("env-1-retry", &body, 1)).await;
    ack_of(&mut conn, "env-1-retry", &mut seen).await;
    // Both are acknowledged only once stored, so the count is final here.
    assert_eq!(
        jobs(&db).await,
        1,
        "the redelivered event made no second job"
    );
    wait_for("the mention's summary", || {
        !posted(&received, ts1, "cairn_summary").is_empty()
    })
    .await;

    // `/cairn help`: answered in the acknowledgement, as the HTTP path answers in its body.
    send(
        &mut conn,
        json!({
            "type": "slash_commands",
            "envelope_id": "env-help",
            "accepts_response_payload": true,
            "payload": {
                "command": "/cairn", "text": "help", "channel_id": "CQ", "user_id": "U7",
                "trigger_id": "T1", "response_url": "http://127.0.0.1:9/unused",
            },
        }),
    )
    .await;
    let ack = ack_of(&mut conn, "env-help", &mut seen).await;
    assert_eq!(ack["payload"]["response_type"], "ephemeral");
    assert!(
        ack["payload"]["text"]
            .as_str()
            .unwrap()
            .contains("/cairn investigate"),
        "{ack}"
    );

    // A Confirm click on the top hypothesis: acknowledged, and the message edited.
    let top = posted(&received, ts1, "cairn_hypothesis")
        .into_iter()
        .find(|b| b["metadata"]["event_payload"]["rank"] == 1)
        .expect("a ranked hypothesis");
    let incident = top["metadata"]["event_payload"]["incident_id"]
        .as_i64()
        .unwrap();
    send(
        &mut conn,
        json!({
            "type": "interactive",
            "envelope_id": "env-click",
            "accepts_response_payload": false,
            "payload": {
                "type": "block_actions",
                "user": {"id": "U7"},
                "container": {"channel_id": "C1", "message_ts": "1700000100.000009"},
                "message": {"text": "Hypothesis", "thread_ts": ts1, "blocks": top["blocks"]},
                "actions": [{"action_id": "hypothesis_confirm", "value": format!("{incident}:1")}],
            },
        }),
    )
    .await;
    ack_of(&mut conn, "env-click", &mut seen).await;
    wait_for("the clicked message edited", || {
        received.lock().unwrap().iter().any(|(m, _, b)| {
            m == "chat.update"
                && b["ts"] == "1700000100.000009"
                && b.to_string().contains("Confirmed by U7")
        })
    })
    .await;

    // Garbage, a malformed envelope and a ping: no crash, the connection stays.
    conn.send(Message::text("not json {")).await.unwrap();
    send(&mut conn, json!({"type": "events_api", "payload": {}})).await;
    send(
        &mut conn,
        json!({"type": "events_api", "envelope_id": "env-bad", "payload": "nope"}),
    )
    .await;
    ack_of(&mut conn, "env-bad", &mut seen).await;
    send(
        &mut conn,
        json!({"type": "events_api", "envelope_id": "env-half", "payload": {"type": "event_callback", "event": {"type": "app_mention"}}}),
    )
    .await;
    ack_of(&mut conn, "env-half", &mut seen).await;
    send(
        &mut conn,
        json!({"type": "brand_new_type", "envelope_id": "env-new"}),
    )
    .await;
    ack_of(&mut conn, "env-new", &mut seen).await;
    conn.send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    let pong = async {
        loop {
            if let Message::Pong(p) = conn.next().await.expect("the connection stays").unwrap() {
                return p;
            }
        }
    };
    let pong = tokio::time::timeout(Duration::from_secs(30), pong)
        .await
        .expect("the ping is answered");
    assert_eq!(pong.as_ref(), b"still there?".as_slice());
    assert_eq!(opens(&received), 1, "one connection so far");

    // Slack asks for a reconnect: a new URL is opened and the new connection works.
    send(
        &mut conn,
        json!({"type": "disconnect", "reason": "refresh_requested"}),
    )
    .await;
    let mut conn = accept(&ws).await;
    assert_eq!(opens(&received), 2);
    send(&mut conn, json!({"type": "hello"})).await;
    let ts2 = "1700000000.000200";
    let body = mention("EvS2", ts2, "<@UCAIRN> is checkout ok?", json!({}));
    send(&mut conn, events_api("env-2", &body, 0)).await;
    ack_of(&mut conn, "env-2", &mut seen).await;
    assert_eq!(jobs(&db).await, 2);
    // Jobs run in arrival order: once the second mention is done, a duplicate of the
    // first would have run too.
    wait_for("the second mention's summary", || {
        !posted(&received, ts2, "cairn_summary").is_empty()
    })
    .await;
    assert_eq!(
        posted(&received, ts1, "cairn_status").len(),
        1,
        "the redelivered event was processed once"
    );
    assert_eq!(posted(&received, ts1, "cairn_summary").len(), 1);

    // The server drops the connection: Cairn opens a new one by itself.
    drop(conn);
    let mut conn = accept(&ws).await;
    assert_eq!(opens(&received), 3);
    assert_eq!(
        readyz(&client, &server.base).await["socket_mode"],
        false,
        "not connected until Slack says hello"
    );
    send(&mut conn, json!({"type": "hello"})).await;
    send(
        &mut conn,
        json!({"type": "slash_commands", "envelope_id": "env-after", "accepts_response_payload": true,
               "payload": {"text": "status", "user_id": "U7", "channel_id": "CQ", "trigger_id": "T9"}}),
    )
    .await;
    let ack = ack_of(&mut conn, "env-after", &mut seen).await;
    assert_eq!(ack["payload"]["response_type"], "ephemeral");
}
