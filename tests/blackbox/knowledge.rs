//! Institutional knowledge through Slack, as engineers make it: thread replies that correct
//! Cairn, Confirm/Reject, `/cairn learn`, `/cairn forget` and Undo, PagerDuty notes, runbooks
//! imported while serve runs, `/cairn explain`, the search index rebuilt from the database,
//! and an incident exported as a test case. The real binary, a fake Slack, HTTP only.

use std::time::Duration;

use serde_json::{json, Value};

use crate::serve::{fake_slack, mention, signed, signed_form, start, wait_for, Received};
use crate::{cairn, run, stderr, stdout};

const API: &str = "api-token";

fn posted(received: &Received, method: &str, event_type: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, b)| m == method && b["metadata"]["event_type"] == event_type)
        .map(|(_, _, b)| b.clone())
        .collect()
}

fn calls(received: &Received, method: &str) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _, _)| m == method)
        .map(|(_, _, b)| b.clone())
        .collect()
}

async fn records(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let body: Value = client
        .get(format!("{base}/api/knowledge"))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["records"].as_array().cloned().unwrap_or_default()
}

fn reply(
    event_id: &str,
    user: &str,
    ts: &str,
    thread_ts: &str,
    text: &str,
    extra: Value,
) -> String {
    let mut event = json!({"type": "message", "user": user, "text": text, "ts": ts, "thread_ts": thread_ts, "channel": "C1"});
    if let (Some(e), Some(x)) = (event.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    json!({"type": "event_callback", "event_id": event_id, "event": event}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineers_teach_cairn_through_slack_and_it_keeps_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::simulated(dir.path(), "shop-checkout-bad-deploy");
    let (slack, received) = fake_slack().await;
    let env = [
        ("CAIRN_API_TOKEN", API),
        ("CAIRN_ADMINS", "UADMIN"),
        ("CAIRN_PAGERDUTY_WEBHOOK_SECRETS", "pd-secret"),
    ];
    let server = start(dir.path(), slack, &bundle, &env).await;
    let client = reqwest::Client::new();
    let events = format!("{}/slack/events", server.base);
    let now = || chrono::Utc::now().timestamp();
    let send = |body: String| {
        let client = client.clone();
        let events = events.clone();
        async move {
            let status = signed(&client, &events, &body, now())
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };

    // A question opens an incident thread under the mention.
    let root = "1700000000.000100";
    send(mention(
        "Ev1",
        root,
        "<@UCAIRN> why is storefront failing?",
        json!({}),
    ))
    .await;
    wait_for("the investigation's summary", || {
        !posted(&received, "chat.postMessage", "cairn_summary").is_empty()
    })
    .await;
    assert!(records(&client, &server.base).await.is_empty());
    let incidents = posted(&received, "chat.postMessage", "cairn_summary");
    let incident_id = incidents[0]["metadata"]["event_payload"]["incident_id"]
        .as_i64()
        .unwrap();

    // Chatter in the thread and other bots' messages are not knowledge.
    send(reply(
        "Ev2",
        "U2",
        "1700000000.000150",
        root,
        "looking into it, dashboards soon",
        json!({}),
    ))
    .await;
    send(reply(
        "Ev3",
        "U2",
        "1700000000.000160",
        root,
        "root cause was payments",
        json!({"bot_id": "B1"}),
    ))
    .await;

    // A correction: recorded with who, where and which incident, answered in the thread.
    let words = "root cause was the connection pool on orders-db, not checkout";
    send(reply(
        "Ev4",
        "U2",
        "1700000000.000200",
        root,
        words,
        json!({}),
    ))
    .await;
    // Slack delivers a reply that mentions Cairn twice; and retries: still one record.
    send(mention(
        "Ev5",
        "1700000000.000200",
        words,
        json!({"thread_ts": root}),
    ))
    .await;
    send(reply(
        "Ev4",
        "U2",
        "1700000000.000200",
        root,
        words,
        json!({}),
    ))
    .await;
    wait_for("the recorded answer", || {
        !posted(&received, "chat.postMessage", "cairn_knowledge").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let recorded = posted(&received, "chat.postMessage", "cairn_knowledge");
    assert_eq!(
        recorded.len(),
        1,
        "one Slack message, one record: {recorded:?}"
    );
    assert_eq!(recorded[0]["thread_ts"], root);
    let text = recorded[0].to_string();
    assert!(
        text.contains("cause orders-db (db_pool_exhaustion)") && text.contains("not checkout"),
        "{text}"
    );
    assert!(text.contains("knowledge_undo"), "an Undo button: {text}");
    assert_eq!(
        posted(&received, "chat.postMessage", "cairn_incident").len()
            + posted(&received, "chat.postMessage", "cairn_summary").len(),
        1,
        "the correcting mention started no second investigation"
    );
    let all = records(&client, &server.base).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let correction = &all[0];
    assert_eq!(
        (
            correction["kind"].as_str(),
            correction["author"].as_str(),
            correction["incident_id"].as_i64(),
            correction["source"].as_str(),
            correction["status"].as_str(),
            correction["text"].as_str()
        ),
        (
            Some("correction"),
            Some("U2"),
            Some(incident_id),
            Some("thread_reply"),
            Some("active"),
            Some(words)
        )
    );
    assert!(
        correction["review_at"].is_string(),
        "knowledge ages: {correction}"
    );
    let record_id = correction["id"].as_i64().unwrap();

    // Undo: refused to someone else (told privately), done for the author.
    let interactions = format!("{}/slack/interactions", server.base);
    let undo = |user: &str| {
        let click = json!({"type": "block_actions", "user": {"id": user}, "container": {"channel_id": "C1", "message_ts": "1700000100.000099"}, "message": {"text": "Recorded", "thread_ts": root, "blocks": recorded[0]["blocks"]}, "actions": [{"action_id": "knowledge_undo", "value": record_id.to_string()}]});
        serde_urlencoded::to_string([("payload", click.to_string())]).unwrap()
    };
    let r = signed_form(&client, &interactions, &undo("U9"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the refusal", || {
        !calls(&received, "chat.postEphemeral").is_empty()
    })
    .await;
    let refusal = calls(&received, "chat.postEphemeral")[0].to_string();
    assert!(
        refusal.contains("Only the author (U2)") && refusal.contains("\"user\":\"U9\""),
        "{refusal}"
    );
    assert_eq!(
        records(&client, &server.base).await[0]["status"],
        "active",
        "a refusal changes nothing"
    );
    let r = signed_form(&client, &interactions, &undo("U2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        records(&client, &server.base).await[0]["status"],
        "retracted"
    );
    wait_for("the undone message", || {
        calls(&received, "chat.update")
            .iter()
            .any(|b| b.to_string().contains("Undone by U2"))
    })
    .await;

    // /cairn learn, then /cairn forget: only the author or an admin.
    let commands = format!("{}/slack/commands", server.base);
    let form = |text: &str, user: &str| {
        serde_urlencoded::to_string([
            ("command", "/cairn"),
            ("text", text),
            ("channel_id", "C1"),
            ("user_id", user),
            ("trigger_id", "T1"),
            ("response_url", "http://127.0.0.1:9/unused"),
        ])
        .unwrap()
    };
    let command = |text: &str, user: &str| {
        let body = form(text, user);
        let client = client.clone();
        let commands = commands.clone();
        async move {
            let v: Value = signed_form(&client, &commands, &body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["text"].as_str().unwrap_or_default().to_owned()
        }
    };
    let learned = command(
        "learn cart-cache evicts hot keys under load <!channel>",
        "U7",
    )
    .await;
    assert!(learned.starts_with("Recorded fact #"), "{learned}");
    assert!(!learned.contains("<!channel>"), "{learned}");
    let fact = records(&client, &server.base).await[0].clone();
    assert_eq!(
        (
            fact["kind"].as_str(),
            fact["author"].as_str(),
            fact["source"].as_str()
        ),
        (Some("fact"), Some("U7"), Some("slash_learn"))
    );
    let fact_id = fact["id"].as_i64().unwrap();
    let refused = command(&format!("forget {fact_id}"), "U8").await;
    assert!(
        refused.contains("Only the author (U7) or an admin"),
        "{refused}"
    );
    assert_eq!(records(&client, &server.base).await[0]["status"], "active");
    let done = command(&format!("forget {fact_id}"), "UADMIN").await;
    assert!(
        done.starts_with(&format!("Retracted record #{fact_id}")),
        "{done}"
    );
    assert!(command("forget 999999", "UADMIN")
        .await
        .contains("no knowledge record #999999"));
    assert!(command("forget soon", "U7").await.starts_with("Usage"));

    // Confirm on a hypothesis is knowledge too.
    let top = posted(&received, "chat.postMessage", "cairn_hypothesis")
        .into_iter()
        .find(|b| b["metadata"]["event_payload"]["rank"] == 1)
        .unwrap();
    let click = json!({"type": "block_actions", "user": {"id": "U3"}, "container": {"channel_id": "C1", "message_ts": "1700000100.000005"}, "message": {"text": top["text"], "thread_ts": root, "blocks": top["blocks"]}, "actions": [{"action_id": "hypothesis_confirm", "value": format!("{incident_id}:1")}]});
    let body = serde_urlencoded::to_string([("payload", click.to_string())]).unwrap();
    assert_eq!(
        signed_form(&client, &interactions, &body)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let confirmation = records(&client, &server.base).await[0].clone();
    assert_eq!(
        (
            confirmation["kind"].as_str(),
            confirmation["author"].as_str(),
            confirmation["source"].as_str(),
            confirmation["incident_id"].as_i64()
        ),
        (
            Some("confirmation"),
            Some("U3"),
            Some("slack_button"),
            Some(incident_id)
        )
    );

    // A PagerDuty resolution note on a paged incident becomes its root cause.
    let send_pd = |body: String| crate::send_pagerduty(&server.base, "pd-secret", body);
    let trigger = json!({"event": {"id": "E1", "event_type": "incident.triggered", "occurred_at": "2026-05-24T16:48:00Z", "data": {"id": "PXYZ", "type": "incident", "title": "Checkout errors", "service": {"summary": "storefront"}}}});
    assert_eq!(send_pd(trigger.to_string()).await.status(), 202);
    let note = json!({"event": {"id": "E2", "event_type": "incident.annotated", "occurred_at": "2026-05-24T17:30:00Z", "agent": {"id": "PUSER1", "type": "user_reference"}, "data": {"incident": {"id": "PXYZ", "type": "incident_reference"}, "content": "Resolved: root cause was a bad deploy of checkout v2.14.0, rolled back", "type": "incident_note"}}});
    assert_eq!(send_pd(note.to_string()).await.status(), 202);
    let mut from_pd = None;
    for _ in 0..100 {
        from_pd = records(&client, &server.base)
            .await
            .into_iter()
            .find(|r| r["source"] == "pagerduty");
        if from_pd.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let from_pd = from_pd.expect("the note became a record");
    assert_eq!(
        (from_pd["kind"].as_str(), from_pd["author"].as_str()),
        (Some("root_cause"), Some("PUSER1"))
    );

    // Runbooks imported by another process while serve runs: found within 5 s.
    let books = dir.path().join("runbooks");
    std::fs::create_dir_all(&books).unwrap();
    std::fs::write(books.join("checkout.md"), "---\ntitle: Checkout failing orders\nservices: [checkout]\nalerts: [StorefrontErrors]\ntags: [payments]\n---\nRoll back the last checkout release, then check the payment provider.\n").unwrap();
    let import = run(cairn(dir.path())
        .args(["runbooks", "import"])
        .arg(&books)
        .env(
            "CAIRN_DATABASE_URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("cairn.db").display()
            ),
        ));
    assert!(import.status.success(), "{}", stderr(&import));
    assert!(stdout(&import).contains("1 added"), "{}", stdout(&import));
    let again = run(cairn(dir.path())
        .args(["runbooks", "import"])
        .arg(&books)
        .env(
            "CAIRN_DATABASE_URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("cairn.db").display()
            ),
        ));
    assert!(
        stdout(&again).contains("0 added, 0 updated, 1 unchanged"),
        "{}",
        stdout(&again)
    );
    let listed: Value = client
        .get(format!("{}/api/runbooks", server.base))
        .bearer_auth(API)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["runbooks"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["runbooks"][0]["services"], json!(["checkout"]));
    let mut found = String::new();
    for _ in 0..50 {
        found = command("runbook checkout release", "U7").await;
        if found.contains("Checkout failing orders") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found.contains("Checkout failing orders") && found.contains("Roll back"),
        "{found}"
    );

    // Onboarding: what checkout depends on and who calls it, its past incidents, knowledge.
    let explained = command("explain checkout", "U7").await;
    for part in [
        "Depends on: payments, orders-db, cart-cache",
        "Called by: storefront",
        "Runbooks:",
        "Checkout failing orders",
    ] {
        assert!(explained.contains(part), "missing {part}: {explained}");
    }
    assert!(command("explain nosuch", "U7")
        .await
        .contains("I don't know a service called"));

    // Knowledge survives a restart: it lives in the database.
    let before = records(&client, &server.base).await;
    drop(server);
    let server = start(dir.path(), slack, &bundle, &env).await;
    assert_eq!(records(&client, &server.base).await, before);
    drop(server);

    // The index is derived: deleted, it is rebuilt from the database on the next search.
    let index = dir.path().join("index");
    assert!(index.is_dir(), "the index lives in the data directory");
    std::fs::remove_dir_all(&index).unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cairn.db").display()
    );
    let search = run(cairn(dir.path())
        .args(["knowledge", "search", "checkout", "release"])
        .env("CAIRN_DATABASE_URL", &db));
    assert!(search.status.success(), "{}", stderr(&search));
    let lines = stdout(&search);
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("runbook\t") && l.ends_with("\tCheckout failing orders")),
        "{lines}"
    );
    assert!(index.is_dir(), "rebuilt");
    let json_out = run(cairn(dir.path())
        .args(["knowledge", "search", "--json", "orders-db"])
        .env("CAIRN_DATABASE_URL", &db));
    let parsed: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert!(
        parsed["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != record_id || r["type"] != "record"),
        "a retracted record is not found: {parsed}"
    );

    // The incident, confirmed, becomes a test case that scores.
    let case = dir.path().join("exported");
    let export = run(cairn(dir.path())
        .args(["eval", "export", &incident_id.to_string(), "--out"])
        .arg(&case)
        .env("CAIRN_DATABASE_URL", &db)
        .env("CAIRN_BUNDLE", &bundle));
    assert!(export.status.success(), "{}", stderr(&export));
    let expect = std::fs::read_to_string(case.join("expect.yaml")).unwrap();
    let top_service = top["metadata"]["event_payload"]["service"]
        .as_str()
        .unwrap();
    assert!(
        expect.contains(&format!("service: \"{top_service}\"")),
        "{expect}"
    );
    let scored = run(cairn(dir.path()).args(["eval", "--bundles"]).arg(&case));
    assert!(scored.status.success(), "{}", stderr(&scored));
    let table = stdout(&scored);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("all") && l.split_whitespace().nth(2) == Some("1.00")),
        "the exported case scores AC@1 1.00: {table}"
    );
    let none = run(cairn(dir.path())
        .args(["eval", "export", "424242", "--out"])
        .arg(dir.path().join("nothing"))
        .env("CAIRN_DATABASE_URL", &db)
        .env("CAIRN_BUNDLE", &bundle));
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("no incident #424242"),
        "{}",
        stderr(&none)
    );
}
