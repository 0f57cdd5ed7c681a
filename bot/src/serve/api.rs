//! `/api/*`: incidents and their hypotheses as JSON, behind `CAIRN_API_TOKEN`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use cairn_knowledge::Incident;

use super::pages::bearer_matches;
use super::AppState;

/// `None` when the request may go on; the refusal otherwise (404 without a token configured,
/// 401 without the right bearer).
fn refuse(st: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &st.api_token else {
        return Some(StatusCode::NOT_FOUND.into_response());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    (!bearer_matches(given, token.expose_secret()))
        .then(|| StatusCode::UNAUTHORIZED.into_response())
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "source": i.source,
        "source_ref": i.source_ref,
        "channel": i.channel,
        "thread_ts": i.thread_ts,
        "created_at": i.created_at.to_rfc3339(),
        "status": i.status,
    })
}

/// `GET /api/incidents`: newest first.
pub async fn incidents(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&st, &headers) {
        return refusal;
    }
    match st.store.list_incidents(200).await {
        Ok(list) => Json(json!({"incidents": list.iter().map(incident_json).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// `GET /api/incidents/{id}`: the incident with its hypotheses by rank.
pub async fn incident(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = refuse(&st, &headers) {
        return refusal;
    }
    let Ok(id) = id.parse::<i64>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let incident = match st.store.incident(id).await {
        Ok(Some(i)) => i,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let hypotheses = st.store.hypotheses(id).await.unwrap_or_default();
    let mut body = incident_json(&incident);
    body["hypotheses"] = hypotheses
        .iter()
        .map(|h| {
            json!({
                "rank": h.rank,
                "service": h.service,
                "kind": h.kind,
                "confidence": h.confidence,
                "status": h.status,
                "evidence": h.evidence.iter().map(|e| json!({"kind": e.kind, "text": e.text, "source": e.source, "link": e.link, "incident_id": e.incident_ref, "record_id": e.record_ref})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(body).into_response()
}

/// `GET /api/knowledge`: every record (its latest version), newest first.
pub async fn knowledge(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&st, &headers) {
        return refusal;
    }
    match st.store.list_knowledge(10_000).await {
        Ok(records) => Json(json!({"records": records.iter().map(|r| json!({
            "id": r.record_id,
            "kind": r.kind,
            "text": r.statement,
            "author": r.author,
            "created_at": r.created_at.to_rfc3339(),
            "incident_id": r.incident_id,
            "source": r.origin,
            "status": r.status,
            "version": r.version,
            "fields": r.fields,
            "scope": r.scope,
            "channel": r.channel,
            "thread_ts": r.thread_ts,
            "review_at": r.review_at.map(|t| t.to_rfc3339()),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// `GET /api/runbooks`: every imported runbook, by title.
pub async fn runbooks(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&st, &headers) {
        return refusal;
    }
    match st.store.runbooks().await {
        Ok(list) => Json(json!({"runbooks": list.iter().map(|r| json!({
            "id": r.id,
            "title": r.title,
            "services": r.services,
            "alerts": r.alerts,
            "tags": r.tags,
            "path": r.path,
            "updated_at": r.updated_at.to_rfc3339(),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
