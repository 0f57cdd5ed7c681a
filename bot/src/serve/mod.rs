//! `cairn serve`: the HTTP front door, the investigation workers and the Slack outbox.
//!
//! A request from Slack is verified on its raw bytes, stored with its job in one
//! transaction, and acknowledged — nothing else happens in the handler. Workers lease jobs
//! from the durable queue in the database and investigate; what they post goes to the
//! outbox, which a sender drains to the Slack Web API once per message, honouring
//! `Retry-After`. A crash at any point leaves the work in the database to resume.
//! With an app token, Slack's events, commands and clicks arrive over Socket Mode instead
//! (`socket.rs`) and go through the same `accept_*` functions as the HTTP handlers.

mod api;
mod interact;
mod metrics;
pub mod pages;
mod socket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use cairn_agents::Incident;
use cairn_connectors::{DataSource, SourceSet, TimeWindow};
use cairn_knowledge::{NewIncident, Store};

use crate::cli::CliError;
use crate::config::{Config, SlackConfig};
use crate::slack;
use metrics::Metrics;

/// Largest body accepted on `/slack/*`, and on `/webhooks/*`.
const SLACK_BODY_LIMIT: usize = 1024 * 1024;
const WEBHOOK_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// How long an inbound event's key is remembered, and how often old keys are pruned.
const DEDUP_HORIZON: chrono::Duration = chrono::Duration::hours(24);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long a worker holds a job before another may take it over.
/// `CAIRN_JOB_LEASE_SECONDS` overrides it (a job of a crashed replica waits this long).
const LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// How long a replica's claim on an outbox message lasts: longer than one Slack call may take
/// ([`SLACK_CALL_TIMEOUT`]), so a claim expires only when its sender died; then the message
/// is sent again after a look in Slack for the copy the dead sender may have posted.
const OUTBOX_CLAIM: chrono::Duration = chrono::Duration::seconds(12);
/// The most one Slack Web API call may take.
const SLACK_CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn lease() -> chrono::Duration {
    std::env::var("CAIRN_JOB_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(LEASE, chrono::Duration::seconds)
}

/// What the handlers and workers share.
pub struct AppState {
    store: Store,
    slack: Option<SlackConfig>,
    pagerduty_secrets: Vec<secrecy::SecretString>,
    alertmanager_token: Option<secrecy::SecretString>,
    api_token: Option<secrecy::SecretString>,
    /// Where pages open their threads (unset: pages are investigated, not posted).
    incident_channel: Option<String>,
    http: reqwest::Client,
    sources: Vec<Arc<dyn DataSource>>,
    /// A replayed bundle's page: mentions are investigated at its time.
    replay: Option<crate::sources::ReplayPage>,
    metrics: Metrics,
    /// Slack's `auth.test` passed (or Slack is off).
    slack_ready: AtomicBool,
    /// In Socket Mode (an app token is set): whether Slack said hello on the open
    /// connection. `None` over HTTP.
    socket_connected: Option<AtomicBool>,
    /// Wakes the workers when a job arrives, the sender when a message is queued.
    jobs: Notify,
    outbox: Notify,
    /// Slack user IDs who may retract any knowledge record.
    admins: Vec<String>,
    /// Cairn's own Slack user ID, from `auth.test`.
    bot_user: std::sync::OnceLock<String>,
    /// Search over records, incidents and runbooks (derived from the database).
    search: Option<cairn_knowledge::SearchIndex>,
    /// Each source's last health check: `None` until checked, then `Ok` or the error.
    source_health: std::sync::Mutex<std::collections::BTreeMap<String, Option<Result<(), String>>>>,
    /// PagerDuty's REST API, when configured: pages are read from it and the summary is
    /// posted back as a note.
    pagerduty: Option<Arc<cairn_connectors::pagerduty::PagerDuty>>,
}

/// How often the sources' health is checked for `/readyz` (a check is one cheap request
/// within the source's own time limit, off the request path).
const SOURCE_CHECK_EVERY: Duration = Duration::from_secs(15);

/// How often the search index catches up with the database (runbook imports by another
/// process show within this).
const SEARCH_REFRESH: Duration = Duration::from_secs(2);

/// Runs `cairn serve` until SIGTERM or Ctrl-C.
pub async fn run(config: &Config) -> Result<(), CliError> {
    let store = Store::connect(config.database_url.as_str())
        .await
        .map_err(|e| CliError::Failed(format!("cannot open the database: {e}")))?;
    let report = store
        .migrate()
        .await
        .map_err(|e| CliError::Failed(format!("migration failed: {e}")))?;
    tracing::info!(%report, "database ready");
    let crate::sources::Built {
        sources,
        replay,
        pagerduty,
    } = crate::sources::build_all(config).await?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let source_health = sources
        .iter()
        .map(|s| (s.name().to_owned(), None))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(SLACK_CALL_TIMEOUT)
        .build()
        .map_err(|e| CliError::Failed(format!("cannot build the HTTP client: {e}")))?;
    let search = crate::knowledge::open_index(&config.data_dir, &store).await?;
    let state = Arc::new(AppState {
        store,
        slack: config.slack.clone(),
        pagerduty_secrets: config.pagerduty_webhook_secrets.clone(),
        alertmanager_token: config.alertmanager_token.clone(),
        api_token: config.api_token.clone(),
        incident_channel: config.incident_channel.clone(),
        http,
        sources,
        replay,
        metrics: Metrics::default(),
        slack_ready: AtomicBool::new(config.slack.is_none()),
        socket_connected: config
            .slack
            .as_ref()
            .and_then(|s| s.app_token.as_ref())
            .map(|_| AtomicBool::new(false)),
        jobs: Notify::new(),
        outbox: Notify::new(),
        admins: config.admins.clone(),
        bot_user: std::sync::OnceLock::new(),
        search: Some(search),
        source_health: std::sync::Mutex::new(source_health),
        pagerduty,
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot listen on {} (CAIRN_LISTEN): {e}",
                config.listen
            ))
        })?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    tracing::info!(%addr, "listening");
    // On stdout too: with CAIRN_LISTEN at port 0 this is how a caller learns the port.
    println!("cairn serve listening on http://{addr}");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(worker(state.clone(), stop_rx.clone()));
    tasks.spawn(sender(state.clone(), stop_rx.clone()));
    tasks.spawn(check_slack(state.clone(), stop_rx.clone()));
    tasks.spawn(refresh_search(state.clone(), stop_rx.clone()));
    tasks.spawn(check_sources(state.clone(), stop_rx.clone()));
    if state.socket_connected.is_some() {
        tasks.spawn(socket::run(state.clone(), stop_rx.clone()));
    }

    let app = router(state.clone());
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| CliError::Failed(format!("the server stopped: {e}")))?;
    // In-flight work finishes or stays leased in the database for the next start.
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(8), drain).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route(
            "/slack/events",
            post(slack_events).layer(DefaultBodyLimit::max(SLACK_BODY_LIMIT)),
        )
        .route(
            "/webhooks/pagerduty",
            post(pages::pagerduty).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .route(
            "/webhooks/alertmanager",
            post(pages::alertmanager).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .route(
            "/webhooks/grafana",
            post(pages::alertmanager).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .route(
            "/slack/commands",
            post(interact::commands).layer(DefaultBodyLimit::max(SLACK_BODY_LIMIT)),
        )
        .route(
            "/slack/interactions",
            post(interact::interactions).layer(DefaultBodyLimit::max(SLACK_BODY_LIMIT)),
        )
        .route("/api/incidents", get(api::incidents))
        .route("/api/incidents/{id}", get(api::incident))
        .route("/api/knowledge", get(api::knowledge))
        .route("/api/runbooks", get(api::runbooks))
        .with_state(state)
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let db = st.store.ping().await.is_ok();
    let migrated = st
        .store
        .pending_migrations()
        .await
        .is_ok_and(|p| p.is_empty());
    let slack = st.slack_ready.load(Ordering::Relaxed);
    // Sources are reported, not required: with Prometheus down Cairn still takes pages and
    // says in the thread what it could not read, so readiness does not depend on them.
    let sources: serde_json::Map<String, Value> = st
        .source_health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(name, health)| {
            let shown = match health {
                None => json!({"reachable": null, "status": "not checked yet"}),
                Some(Ok(())) => json!({"reachable": true, "status": "ok"}),
                Some(Err(e)) => json!({"reachable": false, "status": e}),
            };
            (name.clone(), shown)
        })
        .collect();
    let mut body =
        json!({"database": db, "migrations": migrated, "slack": slack, "sources": sources});
    // Reported, not required (like sources): with the socket down, pages still arrive over
    // HTTP and are investigated; the socket reconnects by itself.
    if let Some(connected) = &st.socket_connected {
        body["socket_mode"] = json!(connected.load(Ordering::Relaxed));
    }
    let code = if db && migrated && slack {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    let queued = st
        .store
        .count_jobs(cairn_knowledge::JobState::Queued)
        .await
        .unwrap_or(0);
    let mut text = st.metrics.render();
    let dead = st.store.count_dead_outbox().await.unwrap_or(0);
    text.push_str(&format!(
        "# TYPE cairn_queue_depth gauge\ncairn_queue_depth {queued}\n# TYPE cairn_outbox_dead gauge\ncairn_outbox_dead {dead}\n"
    ));
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Lowers the calling thread's CPU priority (nice 10): the front door's threads win the
/// CPU whenever both want it, and an idle machine still gives the investigation all of it.
/// Linux only, where the nice value is per thread (elsewhere it would slow the process).
fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `who = 0` is the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
    }
}

/// The nice value of investigation threads (0 is normal, 19 the lowest).
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: libc::c_int = 10;

/// `POST /slack/events`: verify, store with its job, acknowledge.
async fn slack_events(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let response = handle_slack_event(&st, &headers, &body).await;
    st.metrics.observe(
        "slack_events",
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn handle_slack_event(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(slack) = &st.slack else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(secret) = &slack.signing_secret else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let verdict = slack::signature::verify(
        secret.expose_secret().as_bytes(),
        header(headers, "x-slack-request-timestamp"),
        header(headers, "x-slack-signature"),
        body,
        Utc::now().timestamp(),
    );
    if let Err(refusal) = verdict {
        tracing::warn!(%refusal, "refused a Slack request");
        return (StatusCode::UNAUTHORIZED, refusal.to_string()).into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    accept_event(st, &event).await.into_response()
}

/// What Cairn answers Slack about an inbound request once it is dealt with, whichever way
/// it came: an HTTP response, or a Socket Mode acknowledgement.
pub(crate) enum Ack {
    /// Stored with its job, or deliberately ignored.
    Done,
    /// Dealt with, and this is the immediate answer (a slash command's ephemeral text).
    Answer(Value),
    /// Malformed: sending it again would not help.
    Malformed(&'static str),
    /// Not stored (the database failed): left unacknowledged so Slack delivers it again.
    Unavailable,
}

impl Ack {
    /// The HTTP status this answer is sent with (also the metric's status label).
    fn status(&self) -> StatusCode {
        match self {
            Ack::Done | Ack::Answer(_) => StatusCode::OK,
            Ack::Malformed(_) => StatusCode::BAD_REQUEST,
            Ack::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Ack {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Ack::Answer(body) => (status, Json(body)).into_response(),
            Ack::Malformed(why) => (status, why).into_response(),
            Ack::Done | Ack::Unavailable => status.into_response(),
        }
    }
}

/// An Events API body (verified, or from the Socket Mode connection): a mention or a thread
/// reply is stored with its job, deduplicated by `event_id`; everything else is ignored.
async fn accept_event(st: &AppState, event: &Value) -> Ack {
    match event["type"].as_str() {
        Some("url_verification") => match event["challenge"].as_str() {
            Some(challenge) => Ack::Answer(json!({"challenge": challenge})),
            None => Ack::Malformed("url_verification without a challenge"),
        },
        Some("event_callback") => {
            let inner = &event["event"];
            let (Some(event_id), Some(kind)) = (event["event_id"].as_str(), inner["type"].as_str())
            else {
                return Ack::Malformed("event_callback without event_id or event.type");
            };
            // Bots (Cairn included) and edited/joined/… messages start nothing.
            let own = st.bot_user.get().map(String::as_str);
            let user = inner["user"].as_str().unwrap_or("");
            if !matches!(kind, "app_mention" | "message")
                || inner.get("bot_id").is_some_and(|b| !b.is_null())
                || inner.get("subtype").is_some_and(|s| !s.is_null())
                || own.is_some_and(|o| o == user)
            {
                return Ack::Done;
            }
            let (Some(channel), Some(ts)) = (inner["channel"].as_str(), inner["ts"].as_str())
            else {
                return Ack::Malformed("message without channel or ts");
            };
            let text = inner["text"].as_str().unwrap_or("");
            let thread_ts = inner["thread_ts"].as_str();
            let job = if kind == "app_mention" {
                "investigate"
            } else {
                // Only replies inside threads matter here; a message that mentions Cairn
                // arrives again as `app_mention`, which handles it.
                let reply = thread_ts.is_some_and(|t| t != ts);
                let mentions_cairn = own.is_some_and(|o| text.contains(&format!("<@{o}>")));
                if !reply || mentions_cairn {
                    return Ack::Done;
                }
                "reply"
            };
            let payload = json!({
                "event_id": event_id,
                "channel": channel,
                "ts": ts,
                "thread_ts": thread_ts.unwrap_or(ts),
                "text": text,
                "user": user,
            });
            match st
                .store
                .accept_inbound(&format!("slack:{event_id}"), job, payload, Utc::now())
                .await
            {
                Ok(true) => {
                    st.jobs.notify_one();
                    Ack::Done
                }
                Ok(false) => Ack::Done,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a Slack event");
                    // Not acknowledged: Slack retries, nothing is lost.
                    Ack::Unavailable
                }
            }
        }
        _ => Ack::Done,
    }
}

/// Takes jobs from the durable queue until told to stop.
async fn worker(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let owner = format!("worker-{}", std::process::id());
    let lease = lease();
    let mut pruned = Instant::now() - PRUNE_EVERY;
    loop {
        // Keys of processed events are kept a day (Slack retries within an hour).
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            if let Ok(n) = st.store.prune_processed(Utc::now() - DEDUP_HORIZON).await {
                tracing::debug!(pruned = n, "old event keys pruned");
            }
        }
        while !*stop.borrow() {
            let job = match st.store.lease_job(&owner, Utc::now(), lease).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot lease a job");
                    break;
                }
            };
            let result = match job.kind.as_str() {
                "investigate" => investigate_mention(&st, &job.payload).await,
                "reply" => thread_reply(&st, &job.payload).await,
                "command" => slow_command(&st, &job.payload).await,
                "page" => handle_page(&st, &job.payload).await,
                "pagerduty_note" => post_pagerduty_note(&st, &job.payload).await,
                other => Err(format!("unknown job kind `{other}`")),
            };
            match result {
                Ok(()) => {
                    let _ = st.store.complete_job(job.id, &owner).await;
                }
                Err(e) => {
                    tracing::error!(job = job.id, error = %e, "job failed");
                    let _ = st.store.fail_job(job.id, &owner, &e, Utc::now()).await;
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = st.jobs.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// An engineer's reply in a thread: recorded as knowledge when it is an incident's thread
/// and the reply speaks about the cause. `true` when a record was made.
async fn capture_in_thread(
    st: &AppState,
    payload: &Value,
    mentioned: bool,
) -> Result<bool, String> {
    let (Some(channel), Some(thread_ts), Some(ts)) = (
        payload["channel"].as_str(),
        payload["thread_ts"].as_str(),
        payload["ts"].as_str(),
    ) else {
        return Ok(false);
    };
    if thread_ts == ts {
        return Ok(false);
    }
    let Some(incident) = st
        .store
        .incident_by_thread(channel, thread_ts)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let from = crate::knowledge::Provenance {
        author: payload["user"].as_str().unwrap_or(""),
        channel: Some(channel),
        thread_ts: Some(thread_ts),
    };
    let text = payload["text"].as_str().unwrap_or("");
    // Slack delivers a reply that mentions Cairn twice (message and app_mention): one
    // Slack message yields at most one record.
    let now = Utc::now();
    let Some(read) = crate::knowledge::read_reply(&st.store, text, mentioned).await else {
        return Ok(false);
    };
    if !st
        .store
        .mark_processed(&format!("knowledge:{channel}:{ts}"), now)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(true);
    }
    let record = crate::knowledge::capture_reply(&st.store, &incident, text, read, &from, now)
        .await
        .map_err(|e| e.to_string())?;
    post_recorded(st, &record, channel, thread_ts).await?;
    Ok(true)
}

/// Tells the thread what was recorded, with an Undo button.
async fn post_recorded(
    st: &AppState,
    record: &cairn_knowledge::KnowledgeRecord,
    channel: &str,
    thread_ts: &str,
) -> Result<(), String> {
    let mut message =
        slack::blocks::knowledge_recorded(record, &crate::knowledge::describe(record));
    message["channel"] = json!(channel);
    message["thread_ts"] = json!(thread_ts);
    st.store
        .enqueue_outbox(
            &format!("knowledge:{}:recorded", record.record_id),
            channel,
            message,
            Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())?;
    st.outbox.notify_one();
    Ok(())
}

/// A slash command that outgrew Slack's 3 s: answered at its `response_url` (the only
/// place such an answer may go).
async fn slow_command(st: &AppState, payload: &Value) -> Result<(), String> {
    let url = payload["response_url"]
        .as_str()
        .ok_or("command without response_url")?;
    let service = payload["service"].as_str().unwrap_or("");
    let text = match interact::explain(st, service).await {
        Ok(lines) => lines.join("\n"),
        Err(e) => format!("I could not explain `{service}`: {e}"),
    };
    let body = json!({"response_type": "ephemeral", "text": slack::text::safe(&text, 2900)});
    let response = st
        .http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("response_url: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("response_url: HTTP {}", response.status()))
    }
}

/// A thread reply without a mention: knowledge when it corrects Cairn, else nothing.
async fn thread_reply(st: &AppState, payload: &Value) -> Result<(), String> {
    capture_in_thread(st, payload, false).await.map(|_| ())
}

/// Investigates a mention and queues the thread's messages; a mention inside an incident's
/// thread that corrects Cairn is recorded instead.
async fn investigate_mention(st: &AppState, payload: &Value) -> Result<(), String> {
    if capture_in_thread(st, payload, true).await? {
        return Ok(());
    }
    let text = payload["text"].as_str().unwrap_or("");
    let channel = payload["channel"].as_str().ok_or("job without channel")?;
    let thread_ts = payload["thread_ts"]
        .as_str()
        .ok_or("job without thread_ts")?;
    let event_id = payload["event_id"].as_str().unwrap_or(thread_ts);
    // A question reads as its words without the mention.
    let question: String = text
        .split_whitespace()
        .filter(|w| !w.starts_with("<@"))
        .collect::<Vec<_>>()
        .join(" ");
    let title = if question.is_empty() {
        "Investigation".to_owned()
    } else {
        question.clone()
    };
    let now = Utc::now();
    let incident = match st
        .store
        .open_incident_by_ref("slack", event_id)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(existing) => existing,
        None => st
            .store
            .create_incident(
                &NewIncident {
                    title: title.clone(),
                    source: "slack".into(),
                    source_ref: event_id.into(),
                    channel: Some(channel.into()),
                },
                now,
            )
            .await
            .map_err(|e| e.to_string())?,
    };
    st.store
        .set_incident_thread(incident.id, channel, thread_ts)
        .await
        .map_err(|e| e.to_string())?;

    let set = Arc::new(SourceSet::new(st.sources.clone()));
    let topology = set.topology().await.ok().flatten().unwrap_or_default();
    let entry = topology
        .services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| question.contains(n))
        .max_by_key(|n| n.len())
        .map(str::to_owned);
    let window = TimeWindow {
        start: now - chrono::Duration::hours(1),
        end: now,
    };
    // A replayed bundle answers for its own time: investigate its page.
    let mut case = Incident {
        title: title.clone(),
        onset: now - chrono::Duration::minutes(5),
        window,
        entry_service: entry.clone(),
    };
    if let Some((alert, window)) = &st.replay {
        case = Incident::from_alert(alert, *window);
        case.title = title.clone();
        if entry.is_some() {
            case.entry_service = entry.clone();
        }
    }
    let place = Thread {
        channel: Some(channel.to_owned()),
        target: ("thread_ts", json!(thread_ts)),
    };
    run_and_post(st, set, incident.id, &title, &case, &place)
        .await
        .map(|_| ())
}

/// A page: opens an incident and its thread and investigates, or updates the open incident
/// of the same PagerDuty incident / Alertmanager group.
async fn handle_page(st: &AppState, payload: &Value) -> Result<(), String> {
    let source = payload["source"].as_str().unwrap_or("page");
    let source_ref = payload["source_ref"]
        .as_str()
        .ok_or("page without a reference")?;
    let status = payload["status"].as_str().unwrap_or("triggered");
    let title = payload["title"].as_str().unwrap_or("Page").to_owned();
    let now = Utc::now();
    if let Some(note) = payload["note"].as_str().filter(|n| !n.trim().is_empty()) {
        return record_note(
            st,
            source,
            source_ref,
            note,
            payload["author"].as_str().unwrap_or(source),
        )
        .await;
    }
    if let Some(open) = st
        .store
        .open_incident_by_ref(source, source_ref)
        .await
        .map_err(|e| e.to_string())?
    {
        // A repeat or a change of an incident already being worked: update, no new thread.
        if matches!(status, "acknowledged" | "resolved") {
            st.store
                .set_incident_status(open.id, status, now)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(channel) = open.channel.as_deref() {
                let text = format!("The page is {status}.");
                let message = json!({"channel": channel, "thread_of": open.id, "text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}], "metadata": {"event_type": "cairn_status", "event_payload": {"incident_id": open.id}}});
                st.store
                    .enqueue_outbox(
                        &format!("incident:{}:{status}", open.id),
                        channel,
                        message,
                        now,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                st.outbox.notify_one();
            }
        }
        return Ok(());
    }
    if status != "triggered" {
        return Ok(());
    }
    // A slash command opens its thread where it was typed; a page in the incident channel.
    let channel = payload["channel"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| st.incident_channel.clone());
    let incident = st
        .store
        .create_incident(
            &NewIncident {
                title: title.clone(),
                source: source.into(),
                source_ref: source_ref.into(),
                channel: channel.clone(),
            },
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Some(channel) = &channel {
        let root = slack::blocks::root(incident.id, &title, source, payload["service"].as_str());
        let mut root = root;
        root["channel"] = json!(channel);
        st.store
            .enqueue_outbox(
                &format!("incident:{}:root", incident.id),
                channel,
                root,
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        st.outbox.notify_one();
    }
    let onset = payload["at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(now, |t| t.with_timezone(&Utc));
    let mut entry_service = payload["service"].as_str().map(str::to_owned);
    if let (Some(pagerduty), "pagerduty", None) = (&st.pagerduty, source, &entry_service) {
        // The webhook carries little; the incident's details name its service (asked only
        // when the webhook did not).
        match pagerduty.incident(source_ref).await {
            Ok(details) => entry_service = details.service,
            Err(e) => tracing::warn!(error = %e, "PagerDuty incident details unavailable"),
        }
    }
    let mut case = Incident {
        title: title.clone(),
        onset,
        window: TimeWindow {
            start: onset - chrono::Duration::hours(1),
            end: (onset + chrono::Duration::minutes(15)).min(now.max(onset)),
        },
        entry_service,
    };
    if let Some((alert, window)) = &st.replay {
        case = Incident::from_alert(alert, *window);
        case.title = title.clone();
    }
    let place = Thread {
        channel,
        target: ("thread_of", json!(incident.id)),
    };
    let set = Arc::new(SourceSet::new(st.sources.clone()));
    let finding = run_and_post(st, set, incident.id, &title, &case, &place).await?;
    if source == "pagerduty" && st.pagerduty.is_some() {
        // Posted by its own job, once per incident, after the thread exists (the note links
        // to it); a crash before this line re-runs the page and gets here again.
        let note = json!({
            "incident_id": incident.id,
            "pagerduty_incident": source_ref,
            "text": pages::pagerduty_note(&title, &finding),
        });
        st.store
            .accept_inbound(
                &format!("pagerduty-note:{}", incident.id),
                "pagerduty_note",
                note,
                Utc::now(),
            )
            .await
            .map_err(|e| e.to_string())?;
        st.jobs.notify_one();
    }
    Ok(())
}

/// Posts an investigation's summary to its PagerDuty incident as a note, with a link to the
/// Slack thread; waits (by failing, to be retried) until the thread has been posted.
async fn post_pagerduty_note(st: &AppState, payload: &Value) -> Result<(), String> {
    let Some(pagerduty) = &st.pagerduty else {
        return Ok(());
    };
    let (Some(incident_id), Some(pd_incident), Some(text)) = (
        payload["incident_id"].as_i64(),
        payload["pagerduty_incident"].as_str(),
        payload["text"].as_str(),
    ) else {
        return Err("a PagerDuty note job without its incident or text".into());
    };
    let incident = st
        .store
        .incident(incident_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("incident {incident_id} is gone"))?;
    let link = match (&incident.channel, &incident.thread_ts, &st.slack) {
        (Some(channel), Some(ts), Some(slack)) => {
            let asked = call(
                st,
                slack,
                "chat.getPermalink",
                &json!({"channel": channel, "message_ts": ts}),
            )
            .await;
            Some(
                match asked {
                    Ok(answer) => answer["permalink"].as_str().map(str::to_owned),
                    Err(_) => None,
                }
                .unwrap_or_else(|| {
                    format!("https://slack.com/app_redirect?channel={channel}&message_ts={ts}")
                }),
            )
        }
        (Some(_), None, Some(_)) => return Err("the thread is not posted yet".into()),
        _ => None,
    };
    let content = match link {
        Some(link) => format!("{text}\n\nThread: {link}"),
        None => text.to_owned(),
    };
    pagerduty
        .add_note(pd_incident, &content)
        .await
        .map_err(|e| e.to_string())
}

/// A note on a paged incident (PagerDuty's resolution notes): knowledge about that
/// incident, shown in its thread.
async fn record_note(
    st: &AppState,
    source: &str,
    source_ref: &str,
    note: &str,
    author: &str,
) -> Result<(), String> {
    let Some(incident) = st
        .store
        .incident_by_ref(source, source_ref)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let now = Utc::now();
    let Some(record) = crate::knowledge::capture_note(&st.store, &incident, note, author, now)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if let (Some(channel), Some(thread_ts)) = (&incident.channel, &incident.thread_ts) {
        post_recorded(st, &record, channel, thread_ts).await?;
    }
    Ok(())
}

/// Where a thread's messages go: the channel (none: investigate without posting) and how to
/// reach the thread (`thread_ts` known, or `thread_of` an incident whose root is pending).
struct Thread {
    channel: Option<String>,
    target: (&'static str, Value),
}

impl Thread {
    /// Queues `message` under `key`; nothing when there is no channel.
    async fn queue(&self, st: &AppState, key: String, message: Value) -> Result<(), String> {
        self.queue_all(st, vec![(key, message)]).await
    }

    /// Queues `messages` (key, message) in their order, in one write.
    async fn queue_all(&self, st: &AppState, messages: Vec<(String, Value)>) -> Result<(), String> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        let messages: Vec<(String, Value)> = messages
            .into_iter()
            .map(|(key, mut message)| {
                message["channel"] = json!(channel);
                message[self.target.0] = self.target.1.clone();
                (key, message)
            })
            .collect();
        st.store
            .enqueue_outbox_all(&messages, channel, Utc::now())
            .await
            .map_err(|e| e.to_string())?;
        st.outbox.notify_one();
        Ok(())
    }
}

/// Posts the status message, investigates while editing it as agents report, stores the
/// finding and queues the hypotheses and the summary.
async fn run_and_post(
    st: &AppState,
    set: Arc<SourceSet>,
    incident_id: i64,
    title: &str,
    case: &Incident,
    place: &Thread,
) -> Result<cairn_agents::Finding, String> {
    let status_key = format!("incident:{incident_id}:status");
    place
        .queue(
            st,
            status_key.clone(),
            slack::blocks::status_running(incident_id, title, &[]),
        )
        .await?;
    let edit = |mut message: Value| {
        message["method"] = json!("chat.update");
        message["update_of"] = json!(status_key);
        message
    };
    let started = Utc::now();
    let (sink, mut events) = cairn_agents::ProgressSink::channel();
    // What engineers taught Cairn about past incidents takes part in this one.
    let precedents = crate::knowledge::precedents(&st.store)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "precedents unavailable; investigating without them");
            Vec::new()
        });
    let options = cairn_agents::Options {
        progress: sink,
        precedents: Arc::new(precedents),
        ..cairn_agents::Options::default()
    };
    // The investigation is CPU work: it runs on a thread of its own at a lower priority, so
    // the runtime's workers stay free to acknowledge requests in milliseconds even when
    // every core is busy investigating.
    let owned_set = set.clone();
    let owned_case = case.clone();
    let handle = tokio::runtime::Handle::current();
    let investigation = async move {
        let (done, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("investigation".into())
            .spawn(move || {
                background_priority();
                let _ = done.send(handle.block_on(cairn_agents::investigate_with(
                    &owned_case,
                    owned_set.as_ref(),
                    options,
                )));
            });
        let failed = |reason: String| {
            cairn_agents::InvestigationError::Source(cairn_connectors::SourceError::Unavailable {
                source_name: "investigation".into(),
                reason,
            })
        };
        spawned.map_err(|e| failed(format!("cannot start its thread: {e}")))?;
        result
            .await
            .map_err(|_| failed("its thread ended without an answer".into()))?
    };
    let watcher = async {
        let mut reported: Vec<(String, usize, Option<String>)> = Vec::new();
        let mut posted = false;
        while let Some(event) = events.recv().await {
            match event {
                cairn_agents::Progress::AgentFinished {
                    agent,
                    evidence,
                    error,
                    ..
                } if !posted => {
                    reported.push((agent.to_owned(), evidence, error));
                }
                cairn_agents::Progress::RoundStarted { round: 2 } if !posted => {
                    posted = true;
                    let message =
                        edit(slack::blocks::status_running(incident_id, title, &reported));
                    let _ = place
                        .queue(st, format!("{status_key}:agents"), message)
                        .await;
                }
                _ => {}
            }
        }
    };
    let (finding, ()) = tokio::join!(investigation, watcher);
    let finding = finding.map_err(|e| e.to_string())?;
    st.metrics.investigation(finding.verdict);
    save(st, &set, incident_id, case, &finding, started).await?;
    let runbooks = st.store.runbooks().await.unwrap_or_default();
    let mut messages = vec![(
        format!("{status_key}:final"),
        edit(slack::blocks::status(
            incident_id,
            title,
            &finding,
            &set.unreadable(),
        )),
    )];
    messages.extend(
        slack::blocks::thread(incident_id, &finding, &runbooks)
            .into_iter()
            .map(|(suffix, message)| (format!("incident:{incident_id}:{suffix}"), message)),
    );
    place.queue_all(st, messages).await?;
    Ok(finding)
}

/// Stores a finished investigation's hypotheses.
async fn save(
    st: &AppState,
    set: &SourceSet,
    incident_id: i64,
    case: &Incident,
    finding: &cairn_agents::Finding,
    started: chrono::DateTime<Utc>,
) -> Result<(), String> {
    let hypotheses = crate::findings::stored_hypotheses(finding, slack::blocks::HYPOTHESES);
    let verdict = crate::findings::verdict(finding);
    st.store
        .save_investigation(
            incident_id,
            verdict,
            &hypotheses,
            started,
            Utc::now(),
            &crate::findings::context(case, finding),
        )
        .await
        .map_err(|e| e.to_string())?;
    // The services seen become the catalogue corrections are read against.
    if let Ok(Some(topology)) = set.topology().await {
        let _ = crate::knowledge::sync_catalogue(&st.store, &topology, Utc::now()).await;
    }
    Ok(())
}

/// Drains the outbox to Slack, once per message, honouring rate limits.
async fn sender(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    // A rate-limited method is not called again before its Retry-After; a channel whose
    // message failed sends nothing later until that message's retry (order in a thread).
    let mut method_cooldown: std::collections::HashMap<String, Instant> =
        std::collections::HashMap::new();
    let mut channel_hold: std::collections::HashMap<String, Instant> =
        std::collections::HashMap::new();
    loop {
        if let Some(slack) = &st.slack {
            if let Ok(due) = st.store.due_outbox(Utc::now(), 20).await {
                for message in due {
                    let mut payload = message.payload.clone();
                    let now = Instant::now();
                    if channel_hold
                        .get(&message.channel)
                        .is_some_and(|until| *until > now)
                    {
                        continue;
                    }
                    // A page's replies wait for its root message: they go in its thread.
                    if let Some(incident_id) = payload.get("thread_of").and_then(Value::as_i64) {
                        match st
                            .store
                            .incident(incident_id)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|i| i.thread_ts)
                        {
                            Some(ts) => {
                                payload["thread_ts"] = json!(ts);
                                if let Some(map) = payload.as_object_mut() {
                                    map.remove("thread_of");
                                }
                            }
                            None => {
                                let root = format!("incident:{incident_id}:root");
                                if outbox_dead(&st, &root).await {
                                    bury(
                                        &st,
                                        &message,
                                        "its thread's root message was never posted",
                                    )
                                    .await;
                                }
                                continue;
                            }
                        }
                    }
                    // An edit waits for the message it edits.
                    if let Some(key) = payload
                        .get("update_of")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                    {
                        match st.store.outbox_sent_ts(&key).await.ok().flatten() {
                            Some(ts) => {
                                payload["ts"] = json!(ts);
                                if let Some(map) = payload.as_object_mut() {
                                    map.remove("update_of");
                                    map.remove("thread_ts");
                                }
                            }
                            None => {
                                if outbox_dead(&st, &key).await {
                                    bury(&st, &message, "the message it edits was never posted")
                                        .await;
                                }
                                continue;
                            }
                        }
                    }
                    let method = payload
                        .get("method")
                        .and_then(Value::as_str)
                        .unwrap_or("chat.postMessage")
                        .to_owned();
                    if let Some(map) = payload.as_object_mut() {
                        map.remove("method");
                    }
                    if method_cooldown
                        .get(&method)
                        .is_some_and(|until| *until > now)
                    {
                        continue;
                    }
                    // Only one replica sends it, and only after what its channel sent before.
                    match st
                        .store
                        .claim_outbox(message.id, Utc::now(), OUTBOX_CLAIM)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim an outbox message");
                            continue;
                        }
                    }
                    if method == "chat.postMessage" {
                        // The key travels in the message's metadata, so a send whose outcome
                        // was lost (the process died mid-call) can be found in Slack instead
                        // of being posted twice.
                        if let Some(event) = payload
                            .get_mut("metadata")
                            .and_then(|m| m.get_mut("event_payload"))
                            .and_then(Value::as_object_mut)
                        {
                            event.insert("outbox_key".into(), json!(message.idempotency_key));
                        }
                        if message.in_flight {
                            if let Some(ts) = already_posted(&st, slack, &payload, &message).await {
                                tracing::info!(key = %message.idempotency_key, "found in Slack after a lost send; not posting it again");
                                posted(&st, &message, &payload, &ts).await;
                                continue;
                            }
                        }
                    }
                    match call(&st, slack, &method, &payload).await {
                        Ok(body) => {
                            let ts = body["ts"].as_str().unwrap_or_default().to_owned();
                            posted(&st, &message, &payload, &ts).await;
                        }
                        Err(Retry::Never(why)) => {
                            // Slack will never take it; its channel's later messages go on.
                            let _ = st
                                .store
                                .mark_outbox_failed(message.id, &why, Utc::now(), true)
                                .await;
                            tracing::error!(key = %message.idempotency_key, error = %why, "message given up");
                        }
                        Err(Retry::After(wait, why)) => {
                            let dead = st
                                .store
                                .mark_outbox_failed(message.id, &why, Utc::now() + wait, false)
                                .await
                                .unwrap_or(false);
                            if dead {
                                tracing::error!(key = %message.idempotency_key, error = %why, "message given up after its last attempt");
                                continue;
                            }
                            let until =
                                Instant::now() + wait.to_std().unwrap_or(Duration::from_secs(1));
                            channel_hold.insert(message.channel.clone(), until);
                            if why.contains(": 429") {
                                method_cooldown.insert(method.clone(), until);
                            }
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = st.outbox.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Why a call failed: to be tried again after a while, or never (Slack refuses the
/// message itself).
enum Retry {
    After(chrono::Duration, String),
    Never(String),
}

/// Slack errors about the message itself: sending it again cannot succeed. (Errors about
/// the token or workspace are retried up to the cap: fixing the configuration fixes them.)
const REFUSED_FOR_GOOD: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_arguments",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "metadata_too_large",
    "msg_too_long",
    "no_text",
    "too_many_attachments",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

/// Records `message` as sent with Slack's `ts`; a root message gives its incident a thread.
async fn posted(
    st: &AppState,
    message: &cairn_knowledge::OutboxMessage,
    payload: &Value,
    ts: &str,
) {
    let _ = st.store.mark_outbox_sent(message.id, ts).await;
    if payload["metadata"]["event_type"] == "cairn_incident" {
        if let (Some(id), Some(channel)) = (
            payload["metadata"]["event_payload"]["incident_id"].as_i64(),
            payload["channel"].as_str(),
        ) {
            let _ = st.store.set_incident_thread(id, channel, ts).await;
        }
    }
}

/// The `ts` of `message` when Slack already holds it: read back from the thread it went to
/// (or the channel), matching the outbox key in its metadata. `None` when it is not there
/// or Slack cannot say; then it is sent (a duplicate is better than a lost message).
async fn already_posted(
    st: &AppState,
    slack: &SlackConfig,
    payload: &Value,
    message: &cairn_knowledge::OutboxMessage,
) -> Option<String> {
    let channel = payload["channel"].as_str()?;
    let mut query = vec![
        ("channel", channel.to_owned()),
        ("include_all_metadata", "true".to_owned()),
        ("limit", "200".to_owned()),
    ];
    let method = match payload["thread_ts"].as_str() {
        Some(thread) => {
            query.push(("ts", thread.to_owned()));
            "conversations.replies"
        }
        None => "conversations.history",
    };
    let answer = st
        .http
        .get(format!("{}{method}", slack.api_url))
        .bearer_auth(slack.bot_token.expose_secret())
        .query(&query)
        .send()
        .await
        .ok()?
        .json::<Value>()
        .await
        .ok()?;
    if answer["ok"] != json!(true) {
        tracing::warn!(key = %message.idempotency_key, error = %answer["error"], "cannot look for a lost send; sending again");
        return None;
    }
    answer["messages"]
        .as_array()?
        .iter()
        .find(|m| m["metadata"]["event_payload"]["outbox_key"] == json!(message.idempotency_key))
        .and_then(|m| m["ts"].as_str())
        .map(str::to_owned)
}

/// Whether the outbox message `key` was given up.
async fn outbox_dead(st: &AppState, key: &str) -> bool {
    st.store
        .outbox_dead(cairn_knowledge::OutboxRef::Key(key))
        .await
        .unwrap_or(false)
}

/// Gives up `message` because what it depends on was given up.
async fn bury(st: &AppState, message: &cairn_knowledge::OutboxMessage, why: &str) {
    tracing::error!(key = %message.idempotency_key, reason = why, "message given up");
    let _ = st.store.bury_outbox(message.id, why).await;
}

/// Calls a Slack Web API method; Slack's answer on success.
async fn call(
    st: &AppState,
    slack: &SlackConfig,
    method: &str,
    payload: &Value,
) -> Result<Value, Retry> {
    let url = format!("{}{method}", slack.api_url);
    let response = st
        .http
        .post(&url)
        .bearer_auth(slack.bot_token.expose_secret())
        .json(payload)
        .send()
        .await
        .map_err(|e| Retry::After(chrono::Duration::seconds(2), format!("{method}: {e}")))?;
    let status = response.status();
    if status.as_u16() == 429 {
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(1);
        return Err(Retry::After(
            chrono::Duration::seconds(wait.max(1)),
            format!("{method}: 429, retry after {wait} s"),
        ));
    }
    if !status.is_success() {
        return Err(Retry::After(
            chrono::Duration::seconds(2),
            format!("{method}: HTTP {status}"),
        ));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| Retry::After(chrono::Duration::seconds(2), format!("{method}: {e}")))?;
    if body["ok"] == json!(true) {
        return Ok(body);
    }
    let error = body["error"].as_str().unwrap_or("not ok");
    let why = format!("{method}: {error}");
    if REFUSED_FOR_GOOD.contains(&error) {
        Err(Retry::Never(why))
    } else {
        Err(Retry::After(chrono::Duration::seconds(30), why))
    }
}

/// Keeps the search index in step with the database.
async fn refresh_search(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let Some(index) = st.search.clone() else {
        return;
    };
    loop {
        match index.refresh(&st.store).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(documents = n, "search index refreshed"),
            Err(e) => tracing::warn!(error = %e, "search index refresh failed"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(SEARCH_REFRESH) => {}
        }
    }
}

/// Checks every source now and then, for `/readyz`; a source's check is bounded by its own
/// time limit and breaker, so a dead one costs this task, never a request.
async fn check_sources(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    if st.sources.is_empty() {
        return;
    }
    loop {
        let checks = st.sources.iter().map(|source| async move {
            let outcome = source.check().await.map_err(|e| e.to_string());
            (source.name().to_owned(), outcome)
        });
        let results = futures::future::join_all(checks).await;
        {
            let mut health = st
                .source_health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (name, outcome) in results {
                if let Err(e) = &outcome {
                    tracing::warn!(source = %name, error = %e, "source unreachable");
                }
                health.insert(name, Some(outcome));
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(SOURCE_CHECK_EVERY) => {}
        }
    }
}

/// Calls `auth.test` until it passes; `readyz` stays 503 until then.
async fn check_slack(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let Some(slack) = st.slack.clone() else {
        return;
    };
    loop {
        match call(&st, &slack, "auth.test", &json!({})).await {
            Ok(body) => {
                if let Some(user) = body["user_id"].as_str() {
                    let _ = st.bot_user.set(user.to_owned());
                }
                st.slack_ready.store(true, Ordering::Relaxed);
                tracing::info!("Slack auth.test passed");
                return;
            }
            Err(Retry::After(_, why) | Retry::Never(why)) => {
                tracing::warn!(%why, "Slack auth.test failed; retrying")
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// Investigations yield the CPU to the front door; other threads keep their priority.
    #[test]
    fn investigation_threads_run_at_background_priority() {
        // SAFETY: getpriority only reads its arguments (`who = 0`: the calling thread).
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let inside = std::thread::spawn(move || {
            super::background_priority();
            nice()
        })
        .join()
        .unwrap();
        assert_eq!(inside, before.max(super::BACKGROUND_NICE));
        assert_eq!(
            nice(),
            before,
            "only the investigation's own thread is lowered"
        );
    }
}
