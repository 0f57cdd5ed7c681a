//! Pages in: PagerDuty V3 webhooks (signed with any of several secrets) and Alertmanager /
//! Grafana webhooks (bearer), each stored with its job before the 202.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ring::hmac;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::AppState;
use crate::slack::signature::{hex, unhex};

/// Whether `X-PagerDuty-Signature` (comma-separated `v1=<hex>` values) holds a signature of
/// `body` by any of `secrets`. Compared in constant time.
pub fn pagerduty_signed(header: Option<&str>, body: &[u8], secrets: &[&[u8]]) -> bool {
    let Some(header) = header else { return false };
    let given: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(unhex)
        .collect();
    secrets.iter().any(|secret| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        given
            .iter()
            .any(|sig| hmac::verify(&key, body, sig).is_ok())
    })
}

/// Hex HMAC-SHA256 of `body` with `secret`, as PagerDuty signs (`v1=` + this).
pub fn pagerduty_sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex(hmac::sign(&key, body).as_ref())
}

/// Compares a bearer token in constant time (by comparing MACs of both).
pub fn bearer_matches(given: &str, expected: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"cairn bearer comparison");
    let tag = hmac::sign(&key, expected.as_bytes());
    hmac::verify(&key, given.as_bytes(), tag.as_ref()).is_ok()
}

fn accepted(st: &AppState, route: &'static str, started: Instant, status: StatusCode) -> Response {
    st.metrics
        .observe(route, status.as_u16(), started.elapsed());
    status.into_response()
}

/// `POST /webhooks/pagerduty`.
pub async fn pagerduty(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let route = "pagerduty";
    if st.pagerduty_secrets.is_empty() {
        return accepted(&st, route, started, StatusCode::NOT_FOUND);
    }
    let secrets: Vec<&[u8]> = st
        .pagerduty_secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    let header = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok());
    if !pagerduty_signed(header, &body, &secrets) {
        return accepted(&st, route, started, StatusCode::UNAUTHORIZED);
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return accepted(&st, route, started, StatusCode::BAD_REQUEST);
    };
    let event = &message["event"];
    let kind = event["event_type"].as_str().unwrap_or("");
    let status = match kind {
        "incident.triggered" => "triggered",
        "incident.acknowledged" => "acknowledged",
        "incident.resolved" => "resolved",
        "incident.annotated" => "annotated",
        _ => return accepted(&st, route, started, StatusCode::OK),
    };
    let data = &event["data"];
    // A note (`incident.annotated`) names its incident inside; the others are the incident.
    let (Some(event_id), Some(incident_ref)) = (
        event["id"]
            .as_str()
            .or_else(|| headers.get("x-webhook-id").and_then(|v| v.to_str().ok())),
        data["incident"]["id"].as_str().or(data["id"].as_str()),
    ) else {
        return accepted(&st, route, started, StatusCode::BAD_REQUEST);
    };
    let payload = json!({
        "source": "pagerduty",
        "source_ref": incident_ref,
        "status": status,
        "title": data["title"].as_str().unwrap_or("PagerDuty incident"),
        "service": data["service"]["summary"].as_str(),
        "at": event["occurred_at"].as_str(),
        "note": (status == "annotated").then(|| data["content"].as_str()).flatten(),
        "author": event["agent"]["id"].as_str(),
    });
    store(
        &st,
        route,
        started,
        &format!("pagerduty:{event_id}"),
        payload,
    )
    .await
}

/// `POST /webhooks/alertmanager` and `/webhooks/grafana` (the same group shape).
pub async fn alertmanager(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let route = "alertmanager";
    let Some(token) = &st.alertmanager_token else {
        return accepted(&st, route, started, StatusCode::NOT_FOUND);
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bearer_matches(given, token.expose_secret()) {
        return accepted(&st, route, started, StatusCode::UNAUTHORIZED);
    }
    let Ok(group) = serde_json::from_slice::<Value>(&body) else {
        return accepted(&st, route, started, StatusCode::BAD_REQUEST);
    };
    let Some(group_key) = group["groupKey"].as_str() else {
        return accepted(&st, route, started, StatusCode::BAD_REQUEST);
    };
    let alerts = group["alerts"].as_array().cloned().unwrap_or_default();
    let first = alerts.first().cloned().unwrap_or(Value::Null);
    let labels = |key: &str| {
        group["commonLabels"][key]
            .as_str()
            .or_else(|| first["labels"][key].as_str())
            .map(str::to_owned)
    };
    let title = group["commonAnnotations"]["summary"]
        .as_str()
        .or_else(|| first["annotations"]["summary"].as_str())
        .map(str::to_owned)
        .or_else(|| labels("alertname"))
        .unwrap_or_else(|| "Alert".to_owned());
    let status = if group["status"] == "resolved" {
        "resolved"
    } else {
        "triggered"
    };
    let payload = json!({
        "source": "alertmanager",
        "source_ref": group_key,
        "status": status,
        "title": title,
        "service": labels("service"),
        "at": first["startsAt"].as_str(),
        "alerts": alerts.len(),
    });
    // Alertmanager repeats a group's notification; each is a fact to apply, keyed by content.
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let key = hex(&digest.as_ref()[..16]);
    store(&st, route, started, &format!("alertmanager:{key}"), payload).await
}

async fn store(
    st: &AppState,
    route: &'static str,
    started: Instant,
    key: &str,
    payload: Value,
) -> Response {
    match st
        .store
        .accept_inbound(key, "page", payload, Utc::now())
        .await
    {
        Ok(new) => {
            if new {
                st.jobs.notify_one();
            }
            accepted(st, route, started, StatusCode::ACCEPTED)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store a page");
            accepted(st, route, started, StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_signature_by_any_secret_passes() {
        let body = br#"{"event":{}}"#;
        let new = pagerduty_sign(b"new", body);
        let header = format!("v1=deadbeef, v1={new}");
        assert!(pagerduty_signed(Some(&header), body, &[b"old", b"new"]));
        assert!(!pagerduty_signed(Some(&header), body, &[b"old"]));
        assert!(!pagerduty_signed(Some("v1=zz"), body, &[b"new"]));
        assert!(!pagerduty_signed(None, body, &[b"new"]));
    }
}

/// The note Cairn leaves on a PagerDuty incident: the verdict and the leading hypotheses
/// with the evidence that backs each, in plain text (PagerDuty shows notes verbatim).
pub fn pagerduty_note(title: &str, finding: &cairn_agents::Finding) -> String {
    let mut note = match finding.verdict {
        cairn_agents::Verdict::RootCauseFound => format!("Cairn investigated \"{title}\"."),
        cairn_agents::Verdict::NoRootCauseFound => {
            format!("Cairn investigated \"{title}\": no root cause found; nothing beat the noise.")
        }
    };
    if finding.verdict == cairn_agents::Verdict::RootCauseFound {
        for (rank, h) in finding.ranking.iter().take(3).enumerate() {
            let kind = crate::findings::kind_label(h);
            note.push_str(&format!(
                "\n#{} {} — {kind} ({})",
                rank + 1,
                h.service,
                h.confidence
            ));
            for e in h.supporting.iter().take(2) {
                note.push_str(&format!("\n  • {}", e.reason));
            }
        }
    }
    note
}
