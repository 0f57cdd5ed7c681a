//! Slash commands and button clicks from Slack: verified like events, answered within the
//! 3-second window (commands with an ephemeral body), work queued for the workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use cairn_knowledge::Forget;

use super::{Ack, AppState};
use crate::knowledge::Provenance;
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

fn ephemeral(text: &str) -> Ack {
    Ack::Answer(json!({"response_type": "ephemeral", "text": text}))
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
    accept_command(st, &form).await.into_response()
}

/// A `/cairn` command's fields (the verified form, or the Socket Mode payload): answered
/// now when that is quick, else stored with its job and answered later.
pub(super) async fn accept_command(st: &AppState, form: &HashMap<String, String>) -> Ack {
    let text = form.get("text").map(String::as_str).unwrap_or("");
    let user = form.get("user_id").map(String::as_str).unwrap_or("");
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
                .map(|i| {
                    format!(
                        "• #{} {} ({}, {})",
                        i.id,
                        safe(&i.title, 200),
                        i.source,
                        i.status
                    )
                })
                .collect();
            if open.is_empty() {
                ephemeral("No open incidents.")
            } else {
                ephemeral(&format!("Open incidents:\n{}", open.join("\n")))
            }
        }
        SlashCommand::Investigate { text } => {
            let question = text.join(" ");
            let (Some(channel), Some(trigger)) = (form.get("channel_id"), form.get("trigger_id"))
            else {
                return Ack::Malformed("command without channel_id or trigger_id");
            };
            let payload = json!({"source": "slack", "source_ref": trigger, "status": "triggered", "title": question, "channel": channel, "question": true});
            match st
                .store
                .accept_inbound(
                    &format!("slack:command:{trigger}"),
                    "page",
                    payload,
                    Utc::now(),
                )
                .await
            {
                Ok(_) => {
                    st.jobs.notify_one();
                    ephemeral(&format!(
                        "Investigating “{}” — a thread opens in this channel.",
                        safe(&question, 500)
                    ))
                }
                Err(_) => Ack::Unavailable,
            }
        }
        SlashCommand::Learn { text } => {
            let text = text.join(" ");
            let from = Provenance {
                author: user,
                channel: form.get("channel_id").map(String::as_str),
                thread_ts: None,
            };
            match crate::knowledge::learn(&st.store, &text, &from, Utc::now()).await {
                Ok(record) => ephemeral(&format!(
                    "Recorded {}. Undo with `/cairn forget {}`.",
                    safe(&crate::knowledge::describe(&record), 500),
                    record.record_id
                )),
                Err(_) => Ack::Unavailable,
            }
        }
        SlashCommand::Forget { id } => {
            let Ok(id) = id.join(" ").trim().trim_start_matches('#').parse::<i64>() else {
                return ephemeral("Usage: `/cairn forget ID` — the record's number, as `/cairn learn` or the thread showed it.");
            };
            match st.store.forget(id, user, &st.admins, Utc::now()).await {
                Ok(outcome) => ephemeral(&forget_answer(id, &outcome)),
                Err(_) => Ack::Unavailable,
            }
        }
        SlashCommand::Runbook { query } => {
            let query = query.join(" ");
            if query.trim().is_empty() {
                return ephemeral(
                    "Usage: `/cairn runbook QUERY`, e.g. `/cairn runbook checkout 5xx`.",
                );
            }
            let Some(index) = &st.search else {
                return ephemeral("Search is not available on this instance.");
            };
            let runbooks = st.store.runbooks().await.unwrap_or_default();
            let lines = crate::knowledge::runbook_answer(index, &runbooks, &query);
            ephemeral(&safe(&lines.join("\n"), 2900))
        }
        SlashCommand::Search { query } => {
            let query = query.join(" ");
            let Some(index) = &st.search else {
                return ephemeral("Search is not available on this instance.");
            };
            let hits = index.search(&query, None, 8).unwrap_or_default();
            if hits.is_empty() {
                return ephemeral(&safe(&format!("Nothing matches “{query}”."), 500));
            }
            let lines: Vec<String> = hits
                .iter()
                .map(|h| {
                    format!(
                        "• {} #{} *{}* — {}",
                        h.doc_type.as_str(),
                        h.id,
                        h.title,
                        h.excerpt
                    )
                })
                .collect();
            ephemeral(&safe(&lines.join("\n"), 2900))
        }
        SlashCommand::Explain { service } => {
            let service = service.join(" ").trim().to_owned();
            if service.is_empty() {
                return ephemeral("Usage: `/cairn explain SERVICE`.");
            }
            let answer = tokio::time::timeout(COMMAND_BUDGET, explain(st, &service)).await;
            match answer {
                Ok(Ok(lines)) => ephemeral(&safe(&lines.join("\n"), 2900)),
                Ok(Err(e)) => {
                    ephemeral(&safe(&format!("I could not explain `{service}`: {e}"), 500))
                }
                Err(_) => {
                    // Slower than Slack's 3 s: finish in a job and answer at `response_url`.
                    let Some(url) = form.get("response_url") else {
                        return ephemeral("That took too long; try again in a moment.");
                    };
                    let key = format!(
                        "slack:command:{}",
                        form.get("trigger_id").map_or("", String::as_str)
                    );
                    let payload =
                        json!({"command": "explain", "service": service, "response_url": url});
                    match st
                        .store
                        .accept_inbound(&key, "command", payload, Utc::now())
                        .await
                    {
                        Ok(_) => {
                            st.jobs.notify_one();
                            ephemeral(&format!(
                                "Looking into `{}`; the answer follows here.",
                                safe(&service, 100)
                            ))
                        }
                        Err(_) => Ack::Unavailable,
                    }
                }
            }
        }
    }
}

/// How long a slash command may work before it answers later at `response_url`.
const COMMAND_BUDGET: std::time::Duration = std::time::Duration::from_millis(2500);

/// `/cairn explain SERVICE` as lines: the catalogue, the sources' topology and changes of
/// the last week, and what the store remembers.
pub(super) async fn explain(st: &AppState, service: &str) -> Result<Vec<String>, String> {
    use cairn_connectors::DataSource;
    let set = cairn_connectors::SourceSet::new(st.sources.clone());
    let topology = set.topology().await.ok().flatten().unwrap_or_default();
    let end = st.replay.as_ref().map_or_else(Utc::now, |(_, w)| w.end);
    let window = cairn_connectors::TimeWindow {
        start: end - chrono::Duration::days(7),
        end,
    };
    let changes = set
        .changes(&cairn_connectors::EventQuery {
            window,
            service: Some(service.to_owned()),
        })
        .await
        .unwrap_or_default();
    crate::knowledge::explain(&st.store, &topology, &changes, service)
        .await
        .map_err(|e| e.to_string())
}

fn forget_answer(id: i64, outcome: &Forget) -> String {
    match outcome {
        Forget::Retracted(r) => format!(
            "Retracted record #{id} ({}). It no longer counts; its history is kept.",
            safe(&crate::knowledge::describe(r), 300)
        ),
        Forget::AlreadyRetracted(_) => format!("Record #{id} was already retracted."),
        Forget::Refused { author } => format!(
            "Only the author ({}) or an admin (CAIRN_ADMINS) can retract record #{id}; nothing changed.",
            safe(author, 40)
        ),
        Forget::NotFound => format!("There is no knowledge record #{id}."),
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
    accept_interaction(st, &payload).await.into_response()
}

/// An interaction payload (verified, or from the Socket Mode connection): Confirm/Reject
/// and Undo are recorded and their messages edited through the outbox.
pub(super) async fn accept_interaction(st: &AppState, payload: &Value) -> Ack {
    if payload["type"] != "block_actions" {
        return Ack::Done;
    }
    let user = payload["user"]["id"].as_str().unwrap_or("");
    let channel = payload["container"]["channel_id"]
        .as_str()
        .or(payload["channel"]["id"].as_str());
    let message_ts = payload["container"]["message_ts"].as_str();
    let thread_ts = payload["message"]["thread_ts"].as_str().or(message_ts);
    for action in payload["actions"].as_array().into_iter().flatten() {
        let status = match action["action_id"].as_str() {
            Some("hypothesis_confirm") => "confirmed",
            Some("hypothesis_reject") => "rejected",
            Some("knowledge_undo") => {
                let Some(id) = action["value"].as_str().and_then(|v| v.parse::<i64>().ok()) else {
                    return Ack::Malformed("undo value is not a record id");
                };
                let outcome = match st.store.forget(id, user, &st.admins, Utc::now()).await {
                    Ok(o) => o,
                    Err(_) => return Ack::Unavailable,
                };
                if let Some(channel) = channel {
                    let answer = forget_answer(id, &outcome);
                    let message = match (&outcome, message_ts) {
                        (Forget::Retracted(_), Some(ts)) => {
                            let mut blocks = without_buttons(payload);
                            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("↩️ Undone by {}", safe(user, 40))}]}));
                            json!({"method": "chat.update", "channel": channel, "ts": ts, "text": answer, "blocks": blocks})
                        }
                        _ => {
                            json!({"method": "chat.postEphemeral", "channel": channel, "user": user, "text": answer})
                        }
                    };
                    let key = format!("undo:{id}:{user}:{}", message_ts.unwrap_or(""));
                    let _ = st
                        .store
                        .enqueue_outbox(&key, channel, message, Utc::now())
                        .await;
                    st.outbox.notify_one();
                }
                continue;
            }
            _ => continue,
        };
        let Some((incident, rank)) = action["value"]
            .as_str()
            .and_then(|v| v.split_once(':'))
            .and_then(|(i, r)| Some((i.parse::<i64>().ok()?, r.parse::<i32>().ok()?)))
        else {
            return Ack::Malformed("button value is not incident:rank");
        };
        let now = Utc::now();
        if st
            .store
            .decide_hypothesis(incident, rank, status, user, now)
            .await
            .is_err()
        {
            return Ack::Unavailable;
        }
        // The decision is knowledge: who said which service was (not) the cause, when.
        let key = format!(
            "decision:{incident}:{rank}:{status}:{user}:{}",
            message_ts.unwrap_or("")
        );
        let mut recorded = None;
        if let Ok(true) = st
            .store
            .mark_processed(&format!("knowledge:{key}"), now)
            .await
        {
            if let Ok(Some(found)) = st.store.incident(incident).await {
                let from = Provenance {
                    author: user,
                    channel,
                    thread_ts,
                };
                recorded = crate::knowledge::record_decision(
                    &st.store,
                    &found,
                    rank,
                    status == "confirmed",
                    &from,
                    now,
                )
                .await
                .ok()
                .flatten();
            }
        }
        // Show the decision on the message: its blocks without the buttons, plus who decided.
        let (Some(channel), Some(ts)) = (channel, message_ts) else {
            continue;
        };
        let mut blocks = without_buttons(payload);
        let who = safe(user, 40);
        let noted = recorded.map_or_else(String::new, |r| {
            format!(" · recorded as {}", crate::knowledge::describe(&r))
        });
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("{} by {who}{}", if status == "confirmed" { "✅ Confirmed" } else { "❌ Rejected" }, safe(&noted, 300))}]}));
        let update = json!({"method": "chat.update", "channel": channel, "ts": ts, "text": payload["message"]["text"].as_str().unwrap_or("Hypothesis"), "blocks": blocks});
        let _ = st
            .store
            .enqueue_outbox(&key, channel, update, Utc::now())
            .await;
        st.outbox.notify_one();
    }
    Ack::Done
}

/// The clicked message's blocks without its buttons.
fn without_buttons(payload: &Value) -> Vec<Value> {
    payload["message"]["blocks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b["type"] != "actions")
        .collect()
}
