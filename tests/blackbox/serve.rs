//! `cairn serve` as Slack sees it: the real binary, a fake Slack Web API in-process, signed
//! requests over HTTP, and assertions on what the fake received.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use cairn_bot::slack::signature::sign;

use crate::{cairn, workspace};

pub(crate) const SECRET: &str = "test-signing-secret";
pub(crate) const TOKEN: &str = "xoxb-test-token";

/// What the fake Slack received: (method, authorization header, body).
pub(crate) type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

pub(crate) async fn fake_slack() -> (SocketAddr, Received) {
    fake_slack_with(None).await
}

/// The fake Slack Web API; with `socket_url`, `apps.connections.open` answers with it.
pub(crate) async fn fake_slack_with(socket_url: Option<String>) -> (SocketAddr, Received) {
    serve_fake_slack(socket_url, None).await
}

/// The fake Slack Web API, which records the first `chat.postMessage` whose metadata type
/// is `kind` and then never answers it: a send whose outcome the sender cannot learn.
pub(crate) async fn fake_slack_hanging_on(kind: &str) -> (SocketAddr, Received) {
    serve_fake_slack(None, Some(kind.to_owned())).await
}

#[derive(Clone)]
struct FakeSlack {
    received: Received,
    socket_url: Option<String>,
    hang_on: Arc<Mutex<Option<String>>>,
}

/// The `ts` the fake gave the `i`th call it received (counting from 0).
fn fake_ts(i: usize) -> String {
    format!("1700000100.{:06}", i + 1)
}

async fn serve_fake_slack(
    socket_url: Option<String>,
    hang_on: Option<String>,
) -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    async fn method(
        State(fake): State<FakeSlack>,
        Path(name): Path<String>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let gone = value["channel"] == "CGONE";
        let hang = {
            let mut hang_on = fake.hang_on.lock().unwrap();
            let hit = name == "chat.postMessage"
                && hang_on
                    .as_deref()
                    .is_some_and(|kind| value["metadata"]["event_type"] == kind);
            if hit {
                *hang_on = None;
            }
            hit
        };
        let ts = {
            let mut all = fake.received.lock().unwrap();
            all.push((name.clone(), auth, value));
            fake_ts(all.len() - 1)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        Json(match name.as_str() {
            "auth.test" => json!({"ok": true, "user_id": "UCAIRN", "team": "test"}),
            "apps.connections.open" => match &fake.socket_url {
                Some(url) => json!({"ok": true, "url": url}),
                None => json!({"ok": false, "error": "not_allowed_token_type"}),
            },
            // Slack's answer for a channel the bot cannot post in: never going to work.
            _ if gone => json!({"ok": false, "error": "channel_not_found"}),
            _ => json!({"ok": true, "ts": ts, "channel": "C1"}),
        })
    }
    /// `conversations.history` / `conversations.replies`: what was posted there, with
    /// metadata, as Slack keeps it.
    async fn read(
        State(fake): State<FakeSlack>,
        Path(name): Path<String>,
        axum::extract::Query(query): axum::extract::Query<
            std::collections::HashMap<String, String>,
        >,
    ) -> Json<Value> {
        let mut all = fake.received.lock().unwrap();
        all.push((name.clone(), String::new(), json!(query)));
        let channel = query.get("channel").cloned().unwrap_or_default();
        let thread = query.get("ts").cloned();
        let messages: Vec<Value> = all
            .iter()
            .enumerate()
            .filter(|(_, (m, _, b))| m == "chat.postMessage" && b["channel"] == json!(channel))
            .filter(|(i, (_, _, b))| match (&thread, name.as_str()) {
                (Some(t), "conversations.replies") => {
                    b["thread_ts"] == json!(t) || fake_ts(*i) == *t
                }
                _ => true,
            })
            .map(|(i, (_, _, b))| json!({"ts": fake_ts(i), "text": b["text"], "metadata": b["metadata"]}))
            .collect();
        Json(json!({"ok": true, "messages": messages}))
    }
    let fake = FakeSlack {
        received: received.clone(),
        socket_url,
        hang_on: Arc::new(Mutex::new(hang_on)),
    };
    let app = Router::new()
        .route("/api/{name}", post(method).get(read))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairn serve` against the fake Slack, serving `bundle`, and waits until it answers.
pub(crate) async fn start(
    dir: &std::path::Path,
    slack: SocketAddr,
    bundle: &std::path::Path,
    env: &[(&str, &str)],
) -> Server {
    start_with(
        dir,
        slack,
        bundle,
        &[("CAIRN_SLACK_SIGNING_SECRET", SECRET)],
        env,
    )
    .await
}

/// `start` with only the given Slack settings besides the bot token (Socket Mode: the app
/// token and no signing secret).
pub(crate) async fn start_with(
    dir: &std::path::Path,
    slack: SocketAddr,
    bundle: &std::path::Path,
    slack_env: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Server {
    let mut cmd = cairn(dir);
    cmd.arg("serve")
        .env("CAIRN_LISTEN", "127.0.0.1:0")
        .env(
            "CAIRN_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("cairn.db").display()),
        )
        .env("CAIRN_SLACK_BOT_TOKEN", TOKEN)
        .env("CAIRN_SLACK_API_URL", format!("http://{slack}/api/"))
        .env("CAIRN_BUNDLE", bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in slack_env.iter().chain(env) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // The server says where it listens (port 0: the OS picked one, so tests never collide).
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "unexpected first line: {line}"
    );
    let server = Server { child, base };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cairn serve did not start");
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn signed(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    ts: i64,
) -> reqwest::RequestBuilder {
    let sig = format!(
        "v0={}",
        sign(SECRET.as_bytes(), &ts.to_string(), body.as_bytes())
    );
    client
        .post(url)
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

pub(crate) fn mention(event_id: &str, ts: &str, text: &str, extra: Value) -> String {
    let mut event =
        json!({"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C1"});
    if let (Some(e), Some(x)) = (event.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    json!({"type": "event_callback", "event_id": event_id, "event": event}).to_string()
}

/// Posts a signed `@cairn why are orders slow?` mention as event `event_id` at `ts` and
/// checks it was acknowledged.
pub(crate) async fn ask(client: &reqwest::Client, base: &str, event_id: &str, ts: &str) {
    let body = mention(event_id, ts, "<@UCAIRN> why are orders slow?", json!({}));
    let answer = signed(
        client,
        &format!("{base}/slack/events"),
        &body,
        chrono::Utc::now().timestamp(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
}

/// How many `chat.postMessage` calls of metadata type `kind` the fake Slack received.
pub(crate) fn posted_count(received: &Received, kind: &str) -> usize {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, b)| m == "chat.postMessage" && b["metadata"]["event_type"] == kind)
        .count()
}

pub(crate) async fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_for_within(what, Duration::from_secs(20), done).await
}

pub(crate) async fn wait_for_within(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    for _ in 0..limit.as_millis() / 100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_become_threads_and_bad_requests_change_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-checkout-bad-deploy");

    // Hostile log lines from the failing service: a mass mention, a credential, unicode
    // junk. They surface as evidence; none of it may reach Slack as written.
    let logs = bundle.join("logs.jsonl");
    let mut text = std::fs::read_to_string(&logs).unwrap();
    let alert: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("alert.json")).unwrap()).unwrap();
    let onset = chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    for i in 0..60 {
        let ts = (onset + chrono::Duration::seconds(10 * i)).to_rfc3339();
        let message = format!("<!channel> payment key AKIAIOSFODNN7EXAMPLE rejected \u{202e}evil\u{200b} <@U999> order {i}");
        let line = json!({"ts": ts, "service": "checkout", "level": "error", "message": message});
        text.push_str(&format!("{line}\n"));
    }
    std::fs::write(&logs, text).unwrap();

    let (slack, received) = fake_slack().await;
    let port = free_port();
    let child = cairn(dir.path())
        .arg("serve")
        .env("CAIRN_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "CAIRN_DATABASE_URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("cairn.db").display()
            ),
        )
        .env("CAIRN_SLACK_BOT_TOKEN", TOKEN)
        .env("CAIRN_SLACK_SIGNING_SECRET", SECRET)
        .env("CAIRN_SLACK_API_URL", format!("http://{slack}/api/"))
        .env("CAIRN_BUNDLE", &bundle)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", server.base)).send();
    for _ in 0..100 {
        if get("/healthz").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let events = format!("{}/slack/events", server.base);
    let now = chrono::Utc::now().timestamp();

    // url_verification.
    let body = json!({"type": "url_verification", "challenge": "abc123"}).to_string();
    let r = signed(&client, &events, &body, now).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["challenge"], "abc123");

    // Bad, missing and stale signatures; a body changed after signing.
    let body = mention("EvBad", "1700000000.000200", "<@UCAIRN> hi", json!({}));
    let r = client
        .post(&events)
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", "v0=00")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        client
            .post(&events)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        signed(&client, &events, &body, now - 400)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let sig = format!(
        "v0={}",
        sign(SECRET.as_bytes(), &now.to_string(), body.as_bytes())
    );
    let reserialised =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let r = client
        .post(&events)
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", sig)
        .body(reserialised)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Oversized and malformed bodies; the server stays healthy.
    let huge = "x".repeat(2 * 1024 * 1024);
    // Its own client: the server answers 413 without reading the rest and closes that
    // connection, which a pooled client could otherwise try to reuse.
    let r = signed(&reqwest::Client::new(), &events, &huge, now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        signed(&client, &events, "{not json", now)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(get("/healthz").await.unwrap().status(), 200);

    // Unicode junk in an event (RTL override, zero-width, NUL, a lone surrogate): no crash.
    let junk = r#"{"type":"event_callback","event_id":"EvJunk","event":{"type":"app_mention","user":"U1","text":"<@UCAIRN> \u202e\u200b\u0000 \ud800 why","ts":"1700000000.000900","channel":"C1"}}"#;
    let r = signed(&client, &events, junk, now).send().await.unwrap();
    assert!(r.status() == 200 || r.status() == 400, "{}", r.status());
    assert_eq!(get("/healthz").await.unwrap().status(), 200);

    // A bot's message and an unknown event type start nothing.
    let bot = mention(
        "EvBot",
        "1700000000.000300",
        "<@UCAIRN> hi",
        json!({"bot_id": "B1"}),
    );
    assert_eq!(
        signed(&client, &events, &bot, now)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let other = json!({"type": "event_callback", "event_id": "EvOther", "event": {"type": "reaction_added"}}).to_string();
    assert_eq!(
        signed(&client, &events, &other, now)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A mention, delivered three times (Slack retries): one thread.
    let body = mention(
        "Ev1",
        "1700000000.000100",
        "<@UCAIRN> why is checkout failing?",
        json!({}),
    );
    for _ in 0..3 {
        let r = signed(&client, &events, &body, now).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let posted = |kind: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, b)| m == "chat.postMessage" && b["metadata"]["event_type"] == kind)
            .count()
    };
    wait_for("the thread's summary", || posted("cairn_summary") >= 1).await;
    // Give a duplicate the chance to show up, then count.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        posted("cairn_status"),
        1,
        "one status message for one event"
    );
    assert_eq!(posted("cairn_summary"), 1);
    assert!(posted("cairn_hypothesis") >= 1);
    let all = received.lock().unwrap().clone();
    for (method, auth, body) in &all {
        assert_eq!(auth, &format!("Bearer {TOKEN}"), "{method}");
        if method == "chat.postMessage" {
            assert_eq!(
                body["thread_ts"], "1700000000.000100",
                "replies go into the mention's thread"
            );
            assert_eq!(body["channel"], "C1");
            let blocks = body["blocks"].as_array().unwrap();
            assert!(blocks.len() <= 50);
        }
    }
    // The status message was posted once and edited as the agents reported and at the end.
    let status_ts = all
        .iter()
        .position(|(m, _, b)| {
            m == "chat.postMessage" && b["metadata"]["event_type"] == "cairn_status"
        })
        .unwrap();
    let edits: Vec<&Value> = all
        .iter()
        .filter(|(m, _, b)| m == "chat.update" && b["metadata"]["event_type"] == "cairn_status")
        .map(|(_, _, b)| b)
        .collect();
    assert!(edits.len() >= 2, "{} edits", edits.len());
    assert!(
        edits
            .iter()
            .all(|b| b["ts"] == format!("1700000100.{:06}", status_ts + 1)),
        "edits target the status message"
    );
    assert!(edits.last().unwrap()["text"]
        .as_str()
        .unwrap()
        .starts_with("Investigation finished"));
    let everything = serde_json::to_string(&all).unwrap();
    assert!(
        !everything.contains("AKIA")
            && !everything.contains("<!channel>")
            && !everything.contains("<@U999>"),
        "hostile text reached Slack"
    );
    assert!(!everything.contains('\u{202e}') && !everything.contains('\u{200b}'));
    assert!(
        everything.contains("[redacted]") && everything.contains("&lt;!channel&gt;"),
        "the hostile line was reported, made safe"
    );
    let top = all
        .iter()
        .find(|(_, _, b)| {
            b["metadata"]["event_type"] == "cairn_hypothesis"
                && b["metadata"]["event_payload"]["rank"] == 1
        })
        .unwrap();
    assert_eq!(top.2["metadata"]["event_payload"]["service"], "checkout");
    let buttons = &top.2["blocks"].as_array().unwrap().last().unwrap()["elements"];
    assert_eq!(buttons[0]["action_id"], "hypothesis_confirm");
    assert!(buttons[0]["value"].as_str().unwrap().ends_with(":1"));
    assert!(all.iter().any(|(m, _, _)| m == "auth.test"));

    // Ready once Slack's auth.test passed; metrics count what happened.
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("cairn_http_requests_total{route=\"slack_events\",status=\"401\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_investigations_total{outcome=\"root_cause_found\"} 1"),
        "{metrics}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_open_one_thread_each_and_updates_stay_in_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-orders-db-slow-query");
    let (slack, received) = fake_slack().await;
    let env = [
        ("CAIRN_INCIDENT_CHANNEL", "CINC"),
        ("CAIRN_PAGERDUTY_WEBHOOK_SECRETS", "old-secret,new-secret"),
        ("CAIRN_ALERTMANAGER_TOKEN", "am-token"),
        ("CAIRN_API_TOKEN", "api-token"),
    ];
    let server = start(dir.path(), slack, &bundle, &env).await;
    let client = reqwest::Client::new();
    let pd = format!("{}/webhooks/pagerduty", server.base);
    let page = |id: &str, kind: &str| {
        json!({"event": {"id": id, "event_type": kind, "resource_type": "incident", "occurred_at": "2026-05-24T16:48:00Z", "data": {"id": "PABC123", "type": "incident", "title": "Storefront latency <!channel>", "service": {"summary": "storefront"}}}}).to_string()
    };
    let send_pd = |body: String, secret: &str| {
        let sig = format!(
            "v1={}",
            cairn_bot::serve::pages::pagerduty_sign(secret.as_bytes(), body.as_bytes())
        );
        client
            .post(&pd)
            .header("x-pagerduty-signature", sig)
            .body(body)
            .send()
    };
    assert_eq!(
        send_pd(page("E1", "incident.triggered"), "wrong")
            .await
            .unwrap()
            .status(),
        401
    );
    for _ in 0..3 {
        // Signed with the rotated-in secret; delivered three times.
        assert_eq!(
            send_pd(page("E1", "incident.triggered"), "new-secret")
                .await
                .unwrap()
                .status(),
            202
        );
    }
    assert_eq!(
        send_pd(page("E2", "incident.priority_updated"), "old-secret")
            .await
            .unwrap()
            .status(),
        200
    );
    let posted = |kind: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, b)| m == "chat.postMessage" && b["metadata"]["event_type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_for("the page's summary", || !posted("cairn_summary").is_empty()).await;
    let roots = posted("cairn_incident");
    assert_eq!(roots.len(), 1, "one thread for one page");
    assert_eq!(roots[0].2["channel"], "CINC");
    let root_text = roots[0].2.to_string();
    assert!(
        !root_text.contains("<!channel>") && root_text.contains("&lt;!channel&gt;"),
        "{root_text}"
    );
    let root_ts = "1700000100.000002"; // auth.test was the first call
    for (_, _, b) in posted("cairn_hypothesis")
        .iter()
        .chain(posted("cairn_status").iter())
    {
        assert_eq!(b["thread_ts"], root_ts, "replies go under the root");
    }
    assert_eq!(
        posted("cairn_hypothesis")[0].2["metadata"]["event_payload"]["service"],
        "orders-db"
    );
    assert_eq!(
        send_pd(page("E3", "incident.resolved"), "old-secret")
            .await
            .unwrap()
            .status(),
        202
    );
    wait_for("the resolution in the thread", || {
        posted("cairn_status")
            .iter()
            .any(|(_, _, b)| b["text"] == "The page is resolved.")
    })
    .await;
    assert_eq!(posted("cairn_incident").len(), 1);

    // Alertmanager: a group of 1000 alerts is one incident; repeats update it.
    let am = format!("{}/webhooks/alertmanager", server.base);
    let group = |status: &str, n: usize| {
        let alerts: Vec<Value> = (0..n).map(|i| json!({"status": status, "labels": {"alertname": "HighLatency", "service": "storefront", "instance": format!("i{i}")}, "annotations": {"summary": "storefront slow"}, "startsAt": "2026-05-24T16:48:00Z", "fingerprint": format!("{i:016x}")})).collect();
        json!({"version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "status": status, "receiver": "cairn", "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {"alertname": "HighLatency"}, "commonAnnotations": {}, "alerts": alerts}).to_string()
    };
    let r = client
        .post(&am)
        .bearer_auth("nope")
        .body(group("firing", 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(&am)
        .bearer_auth("am-token")
        .body(group("firing", 1000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the group's root", || posted("cairn_incident").len() == 2).await;
    let r = client
        .post(&am)
        .bearer_auth("am-token")
        .body(group("firing", 1001))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = client
        .post(&am)
        .bearer_auth("am-token")
        .body(group("resolved", 1001))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the group's resolution", || {
        posted("cairn_status")
            .iter()
            .filter(|(_, _, b)| b["text"] == "The page is resolved.")
            .count()
            == 2
    })
    .await;
    assert_eq!(
        posted("cairn_incident").len(),
        2,
        "repeats and resolutions open no new thread"
    );
    // The API: bearer required; incidents newest first; hypotheses by rank with evidence.
    let api = format!("{}/api/incidents", server.base);
    assert_eq!(client.get(&api).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&api)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let list: Value = client
        .get(&api)
        .bearer_auth("api-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incidents = list["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0]["source"], "alertmanager");
    assert_eq!(incidents[1]["source_ref"], "PABC123");
    assert_eq!(incidents[1]["status"], "resolved");
    let id = incidents[1]["id"].as_i64().unwrap();
    let one: Value = client
        .get(format!("{api}/{id}"))
        .bearer_auth("api-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["hypotheses"][0]["rank"], 1);
    assert_eq!(one["hypotheses"][0]["service"], "orders-db");
    assert!(!one["hypotheses"][0]["evidence"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        client
            .get(format!("{api}/999"))
            .bearer_auth("api-token")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    drop(server);
}

pub(crate) fn signed_form(
    client: &reqwest::Client,
    url: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    let ts = chrono::Utc::now().timestamp();
    let sig = format!(
        "v0={}",
        sign(SECRET.as_bytes(), &ts.to_string(), body.as_bytes())
    );
    client
        .post(url)
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_and_buttons() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-checkout-bad-deploy");
    let (slack, received) = fake_slack().await;
    let server = start(
        dir.path(),
        slack,
        &bundle,
        &[("CAIRN_API_TOKEN", "api-token")],
    )
    .await;
    let client = reqwest::Client::new();
    let commands = format!("{}/slack/commands", server.base);
    let form = |text: &str, trigger: &str| {
        serde_urlencoded::to_string([
            ("command", "/cairn"),
            ("text", text),
            ("channel_id", "CQ"),
            ("user_id", "U7"),
            ("trigger_id", trigger),
            ("response_url", "http://127.0.0.1:9/unused"),
        ])
        .unwrap()
    };

    let help: Value = signed_form(&client, &commands, &form("help", "T1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(help["response_type"], "ephemeral");
    assert!(help["text"]
        .as_str()
        .unwrap()
        .contains("/cairn investigate"));
    let unknown: Value = signed_form(&client, &commands, &form("deploy <!here>", "T2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        unknown["text"].as_str().unwrap().contains("&lt;!here&gt;"),
        "{unknown}"
    );
    assert_eq!(
        client
            .post(&commands)
            .body(form("help", "T3"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let started: Value = signed_form(
        &client,
        &commands,
        &form("investigate why is checkout failing?", "T4"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        started["text"]
            .as_str()
            .unwrap()
            .starts_with("Investigating"),
        "{started}"
    );
    let posted = |kind: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, b)| m == "chat.postMessage" && b["metadata"]["event_type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_for("the command's thread", || {
        !posted("cairn_summary").is_empty()
    })
    .await;
    assert_eq!(
        posted("cairn_incident")[0].2["channel"],
        "CQ",
        "the thread opens where the command was typed"
    );
    let status: Value = signed_form(&client, &commands, &form("status", "T5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status["text"]
            .as_str()
            .unwrap()
            .contains("why is checkout failing?"),
        "{status}"
    );

    // Confirm the first hypothesis: recorded, and the message shows who decided.
    let top = posted("cairn_hypothesis")
        .into_iter()
        .find(|(_, _, b)| b["metadata"]["event_payload"]["rank"] == 1)
        .unwrap()
        .2;
    let value = top["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let click = json!({"type": "block_actions", "user": {"id": "U7"}, "container": {"channel_id": "CQ", "message_ts": "1700000100.000009"}, "message": {"text": top["text"], "blocks": top["blocks"]}, "actions": [{"action_id": "hypothesis_confirm", "value": value}]});
    let body = serde_urlencoded::to_string([("payload", click.to_string())]).unwrap();
    let r = signed_form(
        &client,
        &format!("{}/slack/interactions", server.base),
        &body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the message update", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|(m, _, b)| m == "chat.update" && b["ts"] == "1700000100.000009")
    })
    .await;
    let update = received
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _, b)| m == "chat.update" && b["ts"] == "1700000100.000009")
        .unwrap()
        .2
        .clone();
    assert_eq!(update["ts"], "1700000100.000009");
    let text = update.to_string();
    assert!(
        text.contains("Confirmed by U7") && !text.contains("hypothesis_confirm"),
        "{text}"
    );
    let incident = value.split(':').next().unwrap();
    let one: Value = client
        .get(format!("{}/api/incidents/{incident}", server.base))
        .bearer_auth("api-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["hypotheses"][0]["status"], "confirmed");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_and_500_storms_are_ridden_out_without_duplicates() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-checkout-bad-deploy");

    // Slack answers 429 (Retry-After: 1), 500, 500, 429 to the first posts, then accepts.
    type Log = Arc<Mutex<Vec<(std::time::Instant, u16, Value)>>>;
    let log: Log = Arc::default();
    async fn handler(
        State(log): State<Log>,
        Path(name): Path<String>,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut all = log.lock().unwrap();
        if name == "auth.test" {
            return Json(json!({"ok": true, "user_id": "UCAIRN"})).into_response();
        }
        let posts = all.len();
        let status = [429u16, 500, 500, 429].get(posts).copied().unwrap_or(200);
        all.push((std::time::Instant::now(), status, value));
        match status {
            429 => (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "",
            )
                .into_response(),
            500 => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            _ => Json(json!({"ok": true, "ts": format!("1700000200.{posts:06}")})).into_response(),
        }
    }
    let app = Router::new()
        .route("/api/{name}", post(handler))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = start(dir.path(), slack, &bundle, &[]).await;
    let client = reqwest::Client::new();
    let body = mention(
        "EvStorm",
        "1700000000.000500",
        "<@UCAIRN> checkout?",
        json!({}),
    );
    let r = signed(
        &client,
        &format!("{}/slack/events", server.base),
        &body,
        chrono::Utc::now().timestamp(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let delivered = |kind: &str| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(_, s, b)| {
                *s == 200 && b["metadata"]["event_type"] == kind && b["ts"].is_null()
            })
            .count()
    };
    wait_for("the summary through the storm", || {
        delivered("cairn_summary") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(delivered("cairn_status"), 1, "each message delivered once");
    assert_eq!(delivered("cairn_summary"), 1);
    let log = log.lock().unwrap().clone();
    // After each 429 the next call came at least Retry-After later.
    for pair in log.windows(2) {
        if pair[0].1 == 429 {
            assert!(
                pair[1].0.duration_since(pair[0].0) >= Duration::from_millis(950),
                "Retry-After not honoured"
            );
        }
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_slack_answers_and_sigterm_exits_cleanly() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // A Slack that refuses the token.
    async fn refuse() -> Json<Value> {
        Json(json!({"ok": false, "error": "invalid_auth"}))
    }
    let app = Router::new().route("/api/{name}", post(refuse));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let bundle = workspace().join("fixtures/bundles/nezha-ob/ob-20220822-052706");
    let mut server = start(dir.path(), slack, &bundle, &[]).await;
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "auth.test failed: not ready");
    assert_eq!(ready.json::<Value>().await.unwrap()["slack"], false);
    assert_eq!(
        client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        std::mem::forget(server);
        status
    })
    .await
    .unwrap();
    assert!(status.success(), "SIGTERM ends with exit 0: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_finishes_the_work_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-checkout-bad-deploy");
    let (slack, received) = fake_slack().await;
    let env = [("CAIRN_JOB_LEASE_SECONDS", "2")];
    let mut server = start(dir.path(), slack, &bundle, &env).await;
    let client = reqwest::Client::new();
    let events = format!("{}/slack/events", server.base);
    let body = mention(
        "EvKill",
        "1700000000.000700",
        "<@UCAIRN> what broke?",
        json!({}),
    );
    let r = signed(&client, &events, &body, chrono::Utc::now().timestamp())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "acknowledged: the event is stored");
    // kill -9 at once: the job may be queued, leased or half done.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = start(dir.path(), slack, &bundle, &env).await;
    let posted = |kind: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, b)| m == "chat.postMessage" && b["metadata"]["event_type"] == kind)
            .count()
    };
    wait_for("the thread after the restart", || {
        posted("cairn_summary") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(posted("cairn_status"), 1, "nothing lost, nothing twice");
    assert_eq!(posted("cairn_summary"), 1);
    // Slack retrying the same event after the restart changes nothing.
    let r = signed(
        &client,
        &format!("{}/slack/events", server.base),
        &body,
        chrono::Utc::now().timestamp(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(posted("cairn_status"), 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_slack_refuses_for_good_is_given_up_and_the_rest_go_on() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-orders-db-slow-query");
    let (slack, received) = fake_slack().await;
    let env = [
        ("CAIRN_INCIDENT_CHANNEL", "CGONE"),
        ("CAIRN_ALERTMANAGER_TOKEN", "am-token"),
    ];
    let server = start(dir.path(), slack, &bundle, &env).await;
    let client = reqwest::Client::new();
    let page = json!({"version": "4", "groupKey": "{}:{alertname=\"OrdersSlow\"}", "status": "firing", "receiver": "cairn", "groupLabels": {"alertname": "OrdersSlow"}, "commonLabels": {}, "commonAnnotations": {}, "alerts": [{"status": "firing", "labels": {"alertname": "OrdersSlow", "service": "orders"}, "annotations": {}, "startsAt": "2026-05-24T16:48:00Z"}]}).to_string();
    let answer = client
        .post(format!("{}/webhooks/alertmanager", server.base))
        .bearer_auth("am-token")
        .body(page)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let dead = || async {
        let text = client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("cairn_outbox_dead "))
            .and_then(|n| n.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    // The root is refused for good; the thread's messages, which wait for it, follow it.
    let mut given_up = 0;
    for _ in 0..200 {
        given_up = dead().await;
        if given_up >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(given_up >= 3, "only {given_up} messages given up");
    // Another channel is not held up by it.
    ask(&client, &server.base, "Ev9", "1700000000.000900").await;
    let summaries = || posted_count(&received, "cairn_summary");
    wait_for("the mention's summary", || summaries() == 1).await;
    let tries_in_gone = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, b)| b["channel"] == "CGONE")
        .count();
    assert_eq!(
        tries_in_gone, 1,
        "the refused root was sent once and nothing after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_was_lost_in_a_crash_is_not_posted_twice() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-orders-db-slow-query");
    // Slack takes the summary but its answer never arrives; Cairn dies meanwhile.
    let (slack, received) = fake_slack_hanging_on("cairn_summary").await;
    let mut server = start(dir.path(), slack, &bundle, &[]).await;
    let client = reqwest::Client::new();
    ask(&client, &server.base, "EvLost1", "1700000000.000801").await;
    let summaries = || posted_count(&received, "cairn_summary");
    wait_for("the summary to reach Slack", || summaries() == 1).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // After the restart the summary is found in the thread, not posted again; a second
    // question (sent after it in the outbox's order) proves the sender got past it.
    let server = start(dir.path(), slack, &bundle, &[]).await;
    ask(&client, &server.base, "EvLost2", "1700000000.000802").await;
    // The dead sender's claim on the summary expires first (12 s).
    wait_for_within(
        "the second question's summary",
        Duration::from_secs(45),
        || summaries() == 2,
    )
    .await;
    let looked = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| m == "conversations.replies")
        .count();
    assert!(looked >= 1, "the lost send was looked for in its thread");
    let summaries_per_thread: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, b)| {
            m == "chat.postMessage" && b["metadata"]["event_type"] == "cairn_summary"
        })
        .map(|(_, _, b)| b["thread_ts"].clone())
        .collect();
    assert_eq!(summaries_per_thread.len(), 2);
    assert_ne!(
        summaries_per_thread[0], summaries_per_thread[1],
        "one summary per thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_post_every_message_once_and_in_order() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bundle = crate::simulated(one.path(), "shop-orders-db-slow-query");
    let (slack, received) = fake_slack().await;
    let database = format!(
        "sqlite://{}?mode=rwc",
        one.path().join("shared.db").display()
    );
    let env = [("CAIRN_DATABASE_URL", database.as_str())];
    let replicas = [
        start(one.path(), slack, &bundle, &env).await,
        start(two.path(), slack, &bundle, &env).await,
    ];
    let client = reqwest::Client::new();
    // Each question arrives at one replica; either may investigate it and send its posts.
    const QUESTIONS: usize = 6;
    for i in 0..QUESTIONS {
        let base = &replicas[i % 2].base;
        ask(
            &client,
            base,
            &format!("EvRep{i}"),
            &format!("1700000000.0009{i:02}"),
        )
        .await;
    }
    let summaries = || posted_count(&received, "cairn_summary");
    wait_for("every question's summary", || summaries() == QUESTIONS).await;
    // Time for a second sender to repeat something, if it were going to.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let posts: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| m == "chat.postMessage")
        .map(|(_, _, b)| b.clone())
        .collect();
    let mut keys: Vec<String> = posts
        .iter()
        .map(|b| {
            b["metadata"]["event_payload"]["outbox_key"]
                .as_str()
                .unwrap_or_else(|| panic!("a post without its outbox key: {b}"))
                .to_owned()
        })
        .collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "a message was posted twice");
    assert_eq!(summaries(), QUESTIONS);
    // In each thread the summary comes after the hypotheses.
    for thread in posts.iter().filter_map(|b| b["thread_ts"].as_str()) {
        let kinds: Vec<&str> = posts
            .iter()
            .filter(|b| b["thread_ts"] == thread)
            .filter_map(|b| b["metadata"]["event_type"].as_str())
            .collect();
        if let Some(summary) = kinds.iter().position(|k| *k == "cairn_summary") {
            assert!(
                kinds[summary..].iter().all(|k| *k == "cairn_summary"),
                "out of order in thread {thread}: {kinds:?}"
            );
        }
    }
}
