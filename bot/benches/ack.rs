//! Benchmark (not a test): acknowledgement latency of `cairn serve` for signed Slack events
//! at a steady rate, with each event durably stored (with its job) before the answer; time
//! from a page to the first thread reply and the first hypothesis; idle memory.
//! `cargo bench -p cairn-bot --bench ack` (add `-- RATE SECONDS` to change 500/s for 10 s).
//! The database is a fresh SQLite file unless `CAIRN_BENCH_DATABASE_URL` names another
//! (an empty PostgreSQL database, say); `CAIRN_BENCH_BUNDLE` replaces the Nezha bundle.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

const SECRET: &str = "bench-secret";

type Seen = Arc<Mutex<Vec<(Instant, Value)>>>;

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts `cairn serve` in `dir` (its database there unless `database` names one), with
/// `bundle` as its telemetry; returns the process and its base URL.
async fn serve(
    dir: &std::path::Path,
    slack: std::net::SocketAddr,
    bundle: Option<&std::path::Path>,
    database: Option<String>,
) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.arg("serve")
        .current_dir(dir)
        .env("CAIRN_LISTEN", "127.0.0.1:0")
        .env(
            "CAIRN_DATABASE_URL",
            database
                .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("bench.db").display())),
        )
        .env("CAIRN_SLACK_BOT_TOKEN", "xoxb-bench")
        .env("CAIRN_SLACK_SIGNING_SECRET", SECRET)
        .env("CAIRN_SLACK_API_URL", format!("http://{slack}/api/"))
        .env("CAIRN_INCIDENT_CHANNEL", "CBENCH")
        .env("CAIRN_PAGERDUTY_WEBHOOK_SECRETS", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(bundle) = bundle {
        cmd.env("CAIRN_BUNDLE", bundle);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    (child, line.trim().rsplit(' ').next().unwrap().to_owned())
}

/// What the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// `@cairn` mentions: each starts an investigation.
    Mentions,
    /// Replies in a thread: each stored with a light job (is it an incident's thread?).
    Replies,
    /// The same replies signed with the wrong secret: read, verified and refused (401),
    /// nothing stored. The floor of this machine, the HTTP stack and the load generator.
    Refused,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Mentions => "mentions (each starts an investigation)",
            Load::Replies => "thread replies (light jobs)",
            Load::Refused => "replies refused at the signature (nothing stored: the floor)",
        }
    }

    fn event(self, i: u64) -> Value {
        match self {
            Load::Mentions => {
                json!({"type": "event_callback", "event_id": format!("EvB{i}"), "event": {"type": "app_mention", "user": "U1", "text": "<@U0> ping", "ts": format!("1700000000.{i:06}"), "channel": "CB"}})
            }
            Load::Replies | Load::Refused => {
                json!({"type": "event_callback", "event_id": format!("EvR{i}"), "event": {"type": "message", "user": "U1", "text": "looks like the cache", "ts": format!("1700000500.{i:06}"), "thread_ts": "1700000400.000001", "channel": "CB"}})
            }
        }
    }
}

/// The server's cumulative ack histogram: (upper bound in seconds, count), `+Inf` last.
async fn server_buckets(client: &reqwest::Client, base: &str) -> Vec<(f64, f64)> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("cairn_ack_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, n.parse().ok()?))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rate: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);

    // A fake Slack Web API that records what arrives and when.
    let seen: Seen = Arc::default();
    async fn api(
        State(seen): State<Seen>,
        Path(name): Path<String>,
        body: axum::body::Bytes,
    ) -> Json<Value> {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut all = seen.lock().unwrap();
        all.push((Instant::now(), value));
        let ts = format!("1700000300.{:06}", all.len());
        Json(if name == "auth.test" {
            json!({"ok": true, "user_id": "U0"})
        } else {
            json!({"ok": true, "ts": ts})
        })
    }
    let app = Router::new()
        .route("/api/{name}", post(api))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let bundle = std::env::var_os("CAIRN_BENCH_BUNDLE").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/bundles/nezha-ob/ob-20220822-052706")
        },
        std::path::PathBuf::from,
    );
    // The bot with no telemetry loaded (live sources are read per investigation) …
    let bare_dir = tempfile::tempdir().unwrap();
    let (mut bare, _) = serve(bare_dir.path(), slack, None, None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bare_kb = rss_kb(bare.id()).unwrap_or(0);
    let _ = bare.kill();
    // … and the one measured, which holds a dev bundle in memory as its telemetry.
    let database = std::env::var("CAIRN_BENCH_DATABASE_URL").ok();
    let (mut child, base) = serve(dir.path(), slack, Some(&bundle), database).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb = rss_kb(child.id()).unwrap_or(0);

    // Page → first reply (the root message) and → first hypothesis.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let page = json!({"event": {"id": "Pbench", "event_type": "incident.triggered", "occurred_at": "2022-08-22T05:28:00Z", "data": {"id": "PB1", "title": "frontend latency", "service": {"summary": "frontend"}}}}).to_string();
    let sig = format!(
        "v1={}",
        cairn_bot::serve::pages::pagerduty_sign(SECRET.as_bytes(), page.as_bytes())
    );
    let paged = Instant::now();
    let r = client
        .post(format!("{base}/webhooks/pagerduty"))
        .header("x-pagerduty-signature", sig)
        .body(page)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let first = |kind: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .find(|(_, v)| v["metadata"]["event_type"] == kind)
            .map(|(t, _)| t.duration_since(paged))
    };
    let mut waited = 0;
    while first("cairn_hypothesis").is_none() && waited < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let first_reply = first("cairn_incident");
    let first_hypothesis = first("cairn_hypothesis");

    // Signed events at a steady rate: thread replies, stored with their job like any event
    // but light to handle; then mentions, each of which starts an investigation (the
    // worker's computing and writing compete with the acknowledgements).
    // Refused again last: the mentions' investigations are still running (a backlog of
    // thousands), so it is the floor under the same CPU pressure, without the database.
    for load in [Load::Refused, Load::Replies, Load::Mentions, Load::Refused] {
        let before = server_buckets(&client, &base).await;
        let total = rate * seconds;
        let interval = Duration::from_micros(1_000_000 / rate);
        let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        let start = Instant::now();
        for i in 0..total {
            let due = start + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let client = client.clone();
            let url = format!("{base}/slack/events");
            let latencies = latencies.clone();
            tasks.spawn(async move {
                let body = load.event(i).to_string();
                let ts = chrono::Utc::now().timestamp().to_string();
                let secret = if load == Load::Refused {
                    "not-the-secret"
                } else {
                    SECRET
                };
                let sig = format!(
                    "v0={}",
                    cairn_bot::slack::signature::sign(secret.as_bytes(), &ts, body.as_bytes())
                );
                let sent = Instant::now();
                let r = client
                    .post(url)
                    .header("x-slack-request-timestamp", ts)
                    .header("x-slack-signature", sig)
                    .body(body)
                    .send()
                    .await;
                let took = sent.elapsed().as_secs_f64() * 1000.0;
                let expected = if load == Load::Refused { 401 } else { 200 };
                if r.is_ok_and(|r| r.status() == expected) {
                    latencies.lock().unwrap().push(took);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let mut l = latencies.lock().unwrap().clone();
        l.sort_by(f64::total_cmp);
        println!(
            "ack latency over {} signed {} at {rate}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} answered as expected)",
            total,
            load.name(),
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or(0.0),
            l.len()
        );
        // The server's own view (its ack histogram, from receipt to answer): what the
        // client adds beyond it is the load generator, the loopback and the scheduler.
        let after = server_buckets(&client, &base).await;
        let n = after.last().map_or(0.0, |b| b.1) - before.last().map_or(0.0, |b| b.1);
        let within: Vec<String> = after
            .iter()
            .zip(&before)
            .filter(|((le, _), _)| [0.001, 0.002, 0.005].contains(le))
            .map(|((le, a), (_, b))| {
                format!("{:.2}% ≤ {} ms", 100.0 * (a - b) / n.max(1.0), le * 1000.0)
            })
            .collect();
        println!("  server-side: {}", within.join(", "));
    }
    let busy_kb = rss_kb(child.id()).unwrap_or(0);
    println!(
        "page → first thread reply {}; → first hypothesis {}",
        first_reply.map_or_else(|| "none".to_owned(), |d| format!("{} ms", d.as_millis())),
        first_hypothesis.map_or_else(|| "none".to_owned(), |d| format!("{} ms", d.as_millis()))
    );
    println!(
        "RSS: idle {:.1} MB with no telemetry loaded, {:.1} MB holding the bundle; after the load {:.1} MB",
        bare_kb as f64 / 1024.0,
        idle_kb as f64 / 1024.0,
        busy_kb as f64 / 1024.0
    );
    let _ = child.kill();
}
