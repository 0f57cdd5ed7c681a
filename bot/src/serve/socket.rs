//! Slack Socket Mode: with an app token (`xapp-…`) Slack delivers events, slash commands
//! and button clicks over a WebSocket Cairn opens, instead of signed HTTP requests.
//!
//! Each envelope goes through the same code as its HTTP twin (`accept_event`,
//! `accept_command`, `accept_interaction`) and is acknowledged only after that returned,
//! i.e. after the event is stored with its job; an envelope that could not be stored is
//! left unacknowledged, so Slack delivers it again. Redeliveries (`retry_attempt`) are
//! deduplicated by the same `event_id` key as over HTTP.
//!
//! Why tokio-tungstenite and not slack-morphism: slack-morphism's Socket Mode client (its
//! `hyper` feature) builds on rustls+ring without aws-lc-rs, but it hands callbacks typed
//! models, not Slack's JSON, so sharing the HTTP path would need a second, re-serialised
//! shape; it has no hook for "the socket went down" (`/readyz`); its `hyper` feature forces
//! the OS trust store (rustls-native-certs) beside reqwest's webpki roots; and it added 25
//! crates, slack-morphism alone 82 s of a 2-job dev build, on the binary's critical path.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{accept_event, interact, Ack, AppState, SLACK_BODY_LIMIT};
use crate::config::SlackConfig;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// First wait after a dropped connection or a failed open; doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A ping goes out when nothing was heard for this long; twice that in silence and the
/// connection is taken for dead (a half-open TCP connection never reports an error).
const PING_EVERY: Duration = Duration::from_secs(30);
/// How long opening the connection (TCP, TLS, upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long envelopes in flight get to finish (and be acknowledged) when a connection ends.
const DRAIN: Duration = Duration::from_secs(5);

/// Keeps a Socket Mode connection open until `stop`: opens it, reads envelopes,
/// acknowledges them, and reconnects (at once when Slack asks, with backoff when dropped).
pub(super) async fn run(st: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let Some(slack) = st.slack.clone() else {
        return;
    };
    let Some(app_token) = slack.app_token.clone() else {
        return;
    };
    let tls = match tls_config() {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %e, "Socket Mode off: cannot build the TLS configuration");
            return;
        }
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let opened = tokio::select! {
            _ = stop.changed() => return,
            opened = open(&st, &slack, &app_token, tls.clone()) => opened,
        };
        let end = match opened {
            Ok(socket) => {
                tracing::info!("Socket Mode connected");
                session(&st, socket, &mut stop).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "Socket Mode connection failed");
                End::Dropped { greeted: false }
            }
        };
        set_connected(&st, false);
        match end {
            End::Stop => return,
            End::Reconnect => {
                backoff = MIN_BACKOFF;
                continue;
            }
            End::Dropped { greeted } => {
                if greeted {
                    backoff = MIN_BACKOFF;
                }
            }
        }
        tracing::info!(
            wait_ms = backoff.as_millis() as u64,
            "Socket Mode reconnecting"
        );
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Why a connection ended.
enum End {
    /// Cairn is shutting down.
    Stop,
    /// Slack sent `disconnect`: open a new connection now.
    Reconnect,
    /// The connection broke (or never opened); `greeted` when Slack had said hello on it.
    Dropped { greeted: bool },
}

fn set_connected(st: &AppState, connected: bool) {
    if let Some(flag) = &st.socket_connected {
        flag.store(connected, Ordering::Relaxed);
    }
}

/// TLS for `wss://`: rustls with ring (never aws-lc-rs: mixing providers panics) and
/// Mozilla's roots, the same trust reqwest uses.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `apps.connections.open` with the app token, then the WebSocket to the URL it returns.
async fn open(
    st: &AppState,
    slack: &SlackConfig,
    app_token: &SecretString,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Socket, String> {
    let method = "apps.connections.open";
    let response = st
        .http
        .post(format!("{}{method}", slack.api_url))
        .bearer_auth(app_token.expose_secret())
        .send()
        .await
        .map_err(|e| format!("{method}: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{method}: HTTP {status}"));
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("{method}: {}", e.without_url()))?;
    if body["ok"] != json!(true) {
        return Err(format!(
            "{method}: {}",
            body["error"].as_str().unwrap_or("not ok")
        ));
    }
    let Some(url) = body["url"]
        .as_str()
        .filter(|u| u.starts_with("wss://") || u.starts_with("ws://"))
    else {
        return Err(format!("{method}: no ws(s):// url in the answer"));
    };
    let limits = WebSocketConfig::default()
        .max_message_size(Some(SLACK_BODY_LIMIT))
        .max_frame_size(Some(SLACK_BODY_LIMIT));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(limits),
        true,
        Some(Connector::Rustls(tls)),
    );
    // The URL carries a one-time ticket: it is never logged.
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(format!("cannot open the WebSocket: {e}")),
        Err(_) => Err("the WebSocket did not open in time".to_owned()),
    }
}

/// Reads envelopes until the connection ends; each is handled in its own task so a slow
/// slash command does not hold up the others, and acknowledged when its task returns.
async fn session(st: &Arc<AppState>, mut socket: Socket, stop: &mut watch::Receiver<bool>) -> End {
    let mut handlers: JoinSet<Option<String>> = JoinSet::new();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    let mut greeted = false;
    let end = loop {
        tokio::select! {
            _ = stop.changed() => break End::Stop,
            frame = socket.next() => {
                heard = Instant::now();
                match frame {
                    None => break End::Dropped { greeted },
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Socket Mode connection broke");
                        break End::Dropped { greeted };
                    }
                    Some(Ok(Message::Text(text))) => match envelope(text.as_str()) {
                        Envelope::Hello => {
                            greeted = true;
                            set_connected(st, true);
                            tracing::info!("Socket Mode ready");
                        }
                        Envelope::Disconnect(reason) => {
                            tracing::info!(%reason, "Slack asked Cairn to reconnect");
                            break End::Reconnect;
                        }
                        Envelope::Work(work) => {
                            handlers.spawn(handle(st.clone(), work));
                        }
                        Envelope::Skip(Some(id)) => {
                            if send(&mut socket, json!({"envelope_id": id}).to_string()).await.is_err() {
                                break End::Dropped { greeted };
                            }
                        }
                        Envelope::Skip(None) => {}
                    },
                    Some(Ok(Message::Close(_))) => break End::Dropped { greeted },
                    // Pings are answered by tungstenite itself; pongs and binary frames
                    // only show the connection is alive.
                    Some(Ok(_)) => {}
                }
            }
            Some(done) = handlers.join_next() => {
                if let Ok(Some(ack)) = done {
                    if send(&mut socket, ack).await.is_err() {
                        break End::Dropped { greeted };
                    }
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() >= PING_EVERY * 2 {
                    tracing::warn!("Socket Mode connection silent; reconnecting");
                    break End::Dropped { greeted };
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break End::Dropped { greeted };
                }
            }
        }
    };
    // Envelopes in flight finish (they may be storing an event) and are acknowledged on
    // this connection when it still works; an unacknowledged one is redelivered by Slack
    // and processed once.
    let drain = async {
        while let Some(done) = handlers.join_next().await {
            if let Ok(Some(ack)) = done {
                let _ = send(&mut socket, ack).await;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN, drain).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    end
}

async fn send(socket: &mut Socket, text: String) -> Result<(), ()> {
    socket.send(Message::text(text)).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot write to the Socket Mode connection");
    })
}

/// One frame from Slack, read.
#[derive(Debug)]
enum Envelope {
    Hello,
    Disconnect(String),
    Work(Work),
    /// Nothing to do; acknowledged when it has an id (garbage, an unknown type, …).
    Skip(Option<String>),
}

/// An envelope that carries an event, a command or an interaction.
#[derive(Debug)]
struct Work {
    id: String,
    kind: Kind,
    payload: Value,
    /// Whether Slack takes an answer in the acknowledgement (slash commands do).
    answerable: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Event,
    Command,
    Interaction,
}

impl Kind {
    fn route(self) -> &'static str {
        match self {
            Kind::Event => "socket_events_api",
            Kind::Command => "socket_slash_commands",
            Kind::Interaction => "socket_interactive",
        }
    }
}

/// Reads a text frame; never fails: what cannot be read is logged and skipped.
fn envelope(text: &str) -> Envelope {
    let Ok(mut frame) = serde_json::from_str::<Value>(text) else {
        tracing::warn!(bytes = text.len(), "Socket Mode frame is not JSON; skipped");
        return Envelope::Skip(None);
    };
    let id = frame["envelope_id"].as_str().map(str::to_owned);
    let kind = match frame["type"].as_str() {
        Some("hello") => return Envelope::Hello,
        Some("disconnect") => {
            return Envelope::Disconnect(frame["reason"].as_str().unwrap_or("").to_owned())
        }
        Some("events_api") => Kind::Event,
        Some("slash_commands") => Kind::Command,
        Some("interactive") => Kind::Interaction,
        other => {
            tracing::warn!(
                kind = other.unwrap_or("none"),
                "unhandled Socket Mode envelope; skipped"
            );
            return Envelope::Skip(id);
        }
    };
    let Some(id) = id else {
        tracing::warn!(kind = ?kind, "Socket Mode envelope without envelope_id; skipped");
        return Envelope::Skip(None);
    };
    if let Some(attempt) = frame["retry_attempt"].as_u64().filter(|a| *a > 0) {
        tracing::info!(
            envelope_id = %id,
            attempt,
            reason = frame["retry_reason"].as_str().unwrap_or(""),
            "Slack redelivered an envelope"
        );
    }
    Envelope::Work(Work {
        answerable: frame["accepts_response_payload"] != json!(false),
        payload: frame["payload"].take(),
        id,
        kind,
    })
}

/// Runs an envelope through the HTTP path's code; the acknowledgement frame to send, or
/// none when it could not be stored (Slack then delivers it again).
async fn handle(st: Arc<AppState>, work: Work) -> Option<String> {
    let started = Instant::now();
    let ack = match work.kind {
        Kind::Event if work.payload.is_object() => accept_event(&st, &work.payload).await,
        Kind::Command => match command_form(&work.payload) {
            Some(form) => interact::accept_command(&st, &form).await,
            None => Ack::Malformed("slash command payload is not an object"),
        },
        Kind::Interaction if work.payload.is_object() => {
            interact::accept_interaction(&st, &work.payload).await
        }
        _ => Ack::Malformed("envelope payload is not an object"),
    };
    st.metrics
        .observe(work.kind.route(), ack.status().as_u16(), started.elapsed());
    let mut frame = json!({"envelope_id": work.id});
    match ack {
        Ack::Unavailable => {
            tracing::error!(envelope_id = %work.id, "envelope not stored; left for Slack to redeliver");
            return None;
        }
        Ack::Malformed(why) => {
            tracing::warn!(envelope_id = %work.id, %why, "malformed Socket Mode envelope; acknowledged and skipped");
        }
        Ack::Answer(body) if work.answerable => frame["payload"] = body,
        Ack::Answer(_) | Ack::Done => {}
    }
    Some(frame.to_string())
}

/// A slash command's Socket Mode payload as the form fields the HTTP path reads.
fn command_form(payload: &Value) -> Option<HashMap<String, String>> {
    let fields = payload.as_object()?;
    Some(
        fields
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Some((k.clone(), v.to_string())),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_read_without_panicking() {
        assert!(matches!(envelope("{\"type\":\"hello\"}"), Envelope::Hello));
        assert!(matches!(
            envelope("{\"type\":\"disconnect\",\"reason\":\"refresh_requested\"}"),
            Envelope::Disconnect(r) if r == "refresh_requested"
        ));
        assert!(matches!(envelope("not json"), Envelope::Skip(None)));
        assert!(matches!(envelope("[1,2]"), Envelope::Skip(None)));
        assert!(matches!(
            envelope("{\"type\":\"events_api\"}"),
            Envelope::Skip(None)
        ));
        assert!(matches!(
            envelope("{\"type\":\"something_new\",\"envelope_id\":\"e1\"}"),
            Envelope::Skip(Some(id)) if id == "e1"
        ));
        let Envelope::Work(work) = envelope(
            "{\"type\":\"slash_commands\",\"envelope_id\":\"e2\",\"accepts_response_payload\":true,\"payload\":{\"text\":\"help\"}}",
        ) else {
            panic!("a slash command is work");
        };
        assert_eq!(work.id, "e2");
        assert!(work.answerable);
        assert!(matches!(work.kind, Kind::Command));
        let Envelope::Work(work) = envelope(
            "{\"type\":\"events_api\",\"envelope_id\":\"e3\",\"accepts_response_payload\":false,\"retry_attempt\":1,\"payload\":{}}",
        ) else {
            panic!("an event is work");
        };
        assert!(!work.answerable);
    }

    #[test]
    fn command_payload_becomes_form_fields() {
        let form = command_form(
            &json!({"text": "help", "user_id": "U1", "is_enterprise_install": false, "x": null}),
        )
        .unwrap();
        assert_eq!(form["text"], "help");
        assert_eq!(form["is_enterprise_install"], "false");
        assert!(!form.contains_key("x"));
        assert!(command_form(&json!("help")).is_none());
    }

    #[test]
    fn tls_config_builds_on_ring() {
        assert!(tls_config().is_ok());
    }
}
