//! Slash commands and button clicks from Slack: verified like events, answered within the
//! 3-second window (commands with an ephemeral body), work queued for the workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::AppState;
use crate::slack::command::SlashCommand;
use crate::slack::text::safe;

/// Verifies a Slack request; the refusal to send when it fails.
fn verified(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    let Some(secret) = st.slack.as_ref().and_then(|s| s.signing_secret.as_ref()) else {
        return Err(StatusCode::NOT_FOUND.into_response());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::slack::signature::verify(
        secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        Utc::now().timestamp(),
    )
    .map_err(|refusal| (StatusCode::UNAUTHORIZED, refusal.to_string()).into_response())
}

fn ephemeral(text: &str) -> Response {
    Json(json!({"response_type": "ephemeral", "text": text})).into_response()
}

/// `POST /slack/commands`.
pub async fn commands(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let response = command(&st, &headers, &body).await;
    st.metrics.observe(
        "slack_commands",
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn command(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(refusal) = verified(st, headers, body) {
        return refusal;
    }
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(body) else {
        return (StatusCode::BAD_REQUEST, "body is not a form").into_response();
    };
    let text = form.get("text").map(String::as_str).unwrap_or("");
    let parsed = match SlashCommand::parse(text) {
        Ok(c) => c,
        Err(message) => return ephemeral(&safe(&message, 2000)),
    };
    match parsed {
        SlashCommand::Help => ephemeral(&SlashCommand::help()),
        SlashCommand::Status => {
            let open: Vec<String> = st
                .store
                .list_incidents(50)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i.status != "resolved")
                .map(|i| format!("• #{} {} ({}, {})", i.id, safe(&i.title, 200), i.source, i.status))
                .collect();
            if open.is_empty() {
                ephemeral("No open incidents.")
            } else {
                ephemeral(&format!("Open incidents:\n{}", open.join("\n")))
            }
        }
        SlashCommand::Investigate { text } => {
            let question = text.join(" ");
            let (Some(channel), Some(trigger)) = (form.get("channel_id"), form.get("trigger_id")) else {
                return (StatusCode::BAD_REQUEST, "command without channel_id or trigger_id").into_response();
            };
            let payload = json!({"source": "slack", "source_ref": trigger, "status": "triggered", "title": question, "channel": channel, "question": true});
            match st.store.accept_inbound(&format!("slack:command:{trigger}"), "page", payload, Utc::now()).await {
                Ok(_) => {
                    st.jobs.notify_one();
                    ephemeral(&format!("Investigating “{}” — a thread opens in this channel.", safe(&question, 500)))
                }
                Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        SlashCommand::Runbook { .. } | SlashCommand::Explain { .. } | SlashCommand::Learn { .. } | SlashCommand::Forget { .. } => {
            ephemeral("That command arrives with Cairn's knowledge store; it is not available in this version.")
        }
    }
}

/// `POST /slack/interactions`: Confirm/Reject on a hypothesis.
pub async fn interactions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let response = interaction(&st, &headers, &body).await;
    st.metrics.observe(
        "slack_interactions",
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn interaction(st: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(refusal) = verified(st, headers, body) {
        return refusal;
    }
    let Some(payload) = serde_urlencoded::from_bytes::<HashMap<String, String>>(body)
        .ok()
        .and_then(|f| {
            f.get("payload")
                .and_then(|p| serde_json::from_str::<Value>(p).ok())
        })
    else {
        return (StatusCode::BAD_REQUEST, "no payload").into_response();
    };
    if payload["type"] != "block_actions" {
        return StatusCode::OK.into_response();
    }
    let user = payload["user"]["id"].as_str().unwrap_or("");
    for action in payload["actions"].as_array().into_iter().flatten() {
        let status = match action["action_id"].as_str() {
            Some("hypothesis_confirm") => "confirmed",
            Some("hypothesis_reject") => "rejected",
            _ => continue,
        };
        let Some((incident, rank)) = action["value"]
            .as_str()
            .and_then(|v| v.split_once(':'))
            .and_then(|(i, r)| Some((i.parse::<i64>().ok()?, r.parse::<i32>().ok()?)))
        else {
            return (StatusCode::BAD_REQUEST, "button value is not incident:rank").into_response();
        };
        if st
            .store
            .decide_hypothesis(incident, rank, status, user, Utc::now())
            .await
            .is_err()
        {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        // Show the decision on the message: its blocks without the buttons, plus who decided.
        let (Some(channel), Some(ts)) = (
            payload["container"]["channel_id"]
                .as_str()
                .or(payload["channel"]["id"].as_str()),
            payload["container"]["message_ts"].as_str(),
        ) else {
            continue;
        };
        let mut blocks: Vec<Value> = payload["message"]["blocks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b["type"] != "actions")
            .collect();
        let who = safe(user, 40);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("{} by <@{who}>", if status == "confirmed" { "✅ Confirmed" } else { "❌ Rejected" })}]}));
        let update = json!({"method": "chat.update", "channel": channel, "ts": ts, "text": payload["message"]["text"].as_str().unwrap_or("Hypothesis"), "blocks": blocks});
        let key = format!("decision:{incident}:{rank}:{status}:{user}:{ts}");
        let _ = st
            .store
            .enqueue_outbox(&key, channel, update, Utc::now())
            .await;
        st.outbox.notify_one();
    }
    StatusCode::OK.into_response()
}
