//! Institutional knowledge as the bot meets it: capture (Confirm/Reject, thread replies,
//! `/cairn learn`, PagerDuty notes), the precedents an investigation starts from, and the
//! answers of `/cairn explain` and `/cairn runbook`. Shared by `serve`, `demo` and `eval`.

use chrono::{DateTime, Utc};
use serde_json::json;

use cairn_agents::correction::{self, Correction};
use cairn_agents::{FaultKind, PastCase, RecordKind};
use cairn_connectors::Topology;
use cairn_knowledge::{Incident, KnowledgeRecord, SearchIndex, ServiceEntry, Store, StoreError};

/// How much a record counts as precedent, by how it was made: an engineer's explicit word
/// counts in full, a note typed into PagerDuty somewhat less.
fn trust(record: &KnowledgeRecord) -> f64 {
    match (record.kind.as_str(), record.origin.as_str()) {
        (_, "pagerduty") => 0.8,
        ("confirmation" | "correction", _) => 1.0,
        _ => 0.8,
    }
}

/// The active records about past incidents, as the precedent agent takes them. Records
/// whose incident left no symptoms to compare with are left out.
pub async fn precedents(store: &Store) -> Result<Vec<PastCase>, StoreError> {
    Ok(store
        .precedents()
        .await?
        .into_iter()
        .filter_map(|p| {
            let fingerprint = p.fingerprint?;
            let kind = p.record.fault_kind().and_then(FaultKind::parse);
            let cause = p.record.services().into_iter().next().map(|s| (s, kind));
            let rejected = p.record.rejected();
            if cause.is_none() && rejected.is_empty() {
                return None;
            }
            Some(PastCase {
                incident_id: p.record.incident_id?,
                record_id: p.record.record_id,
                date: p.incident_created_at,
                title: p.incident_title,
                cause,
                rejected,
                by: p.record.author.clone(),
                record_kind: RecordKind::from_store(&p.record.kind).unwrap_or_default(),
                trust: trust(&p.record),
                fingerprint,
            })
        })
        .collect())
}

/// Adds the services of `topology` to the catalogue (names, kinds, teams, dependencies).
pub async fn sync_catalogue(
    store: &Store,
    topology: &Topology,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let entries: Vec<ServiceEntry> = topology
        .services
        .iter()
        .map(|s| ServiceEntry {
            name: s.name.clone(),
            kind: s.kind.clone(),
            team: s.team.clone(),
            depends_on: s.depends_on.clone(),
        })
        .collect();
    store.upsert_services(&entries, now).await
}

/// When a record should be looked at again: knowledge about systems ages.
pub const REVIEW_AFTER: chrono::Duration = chrono::Duration::days(180);

/// Known service names: the catalogue.
pub async fn catalogue(store: &Store) -> Vec<String> {
    store.service_names().await.unwrap_or_default()
}

fn fields(c: &Correction) -> serde_json::Value {
    json!({
        "services": c.causes,
        "rejected": c.rejected,
        "fault_kind": c.kind.map(FaultKind::as_str),
    })
}

/// Where a record came from in Slack.
#[derive(Debug, Clone, Default)]
pub struct Provenance<'a> {
    pub author: &'a str,
    pub channel: Option<&'a str>,
    pub thread_ts: Option<&'a str>,
}

/// A Confirm or Reject click on the hypothesis at `rank`: a confirmation naming its service
/// and kind as the cause, or a correction naming it as not the cause.
pub async fn record_decision(
    store: &Store,
    incident: &Incident,
    rank: i32,
    confirmed: bool,
    from: &Provenance<'_>,
    now: DateTime<Utc>,
) -> Result<Option<KnowledgeRecord>, StoreError> {
    let hypotheses = store.hypotheses(incident.id).await?;
    let Some(h) = hypotheses.iter().find(|h| h.rank == rank) else {
        return Ok(None);
    };
    let kind = h.kind.as_deref().unwrap_or("unknown fault");
    let (record_kind, statement, fields) = if confirmed {
        (
            "confirmation",
            format!(
                "{kind} on {} was the root cause of incident #{} ({})",
                h.service, incident.id, incident.title
            ),
            json!({"services": [h.service], "rejected": [], "fault_kind": h.kind}),
        )
    } else {
        (
            "correction",
            format!(
                "{} was not the root cause of incident #{} ({})",
                h.service, incident.id, incident.title
            ),
            json!({"services": [], "rejected": [h.service], "fault_kind": null}),
        )
    };
    let draft = KnowledgeRecord {
        incident_id: Some(incident.id),
        channel: from.channel.map(str::to_owned),
        thread_ts: from.thread_ts.map(str::to_owned),
        scope: "service".into(),
        review_at: Some(now + REVIEW_AFTER),
        ..KnowledgeRecord::draft(record_kind, statement, fields, from.author, "slack_button")
    };
    store.add_knowledge(&draft, now).await.map(Some)
}

/// What an engineer's reply in an incident's thread says, read against the catalogue;
/// `None` when it is not worth recording: chatter (no service, no kind), words that neither
/// speak about the cause nor address Cairn, or a question to Cairn (that is investigated).
pub async fn read_reply(store: &Store, text: &str, mentioned: bool) -> Option<Correction> {
    let read = correction::parse(text, &catalogue(store).await);
    (!read.is_empty() && (read.about_cause || mentioned) && !is_question(text)).then_some(read)
}

/// Does `text` ask rather than tell ("why is checkout slow?", "is it the db")?
fn is_question(text: &str) -> bool {
    let first = text
        .split_whitespace()
        .find(|w| !w.starts_with("<@"))
        .map(str::to_lowercase)
        .unwrap_or_default();
    text.trim_end().ends_with('?')
        || matches!(
            first.as_str(),
            "why"
                | "what"
                | "how"
                | "is"
                | "are"
                | "can"
                | "could"
                | "does"
                | "did"
                | "when"
                | "where"
                | "which"
                | "who"
                | "investigate"
                | "check"
                | "look"
        )
}

/// Records an engineer's reply, already read by [`read_reply`]. The statement keeps the
/// original words; the fields hold what was understood.
pub async fn capture_reply(
    store: &Store,
    incident: &Incident,
    text: &str,
    mut read: Correction,
    from: &Provenance<'_>,
    now: DateTime<Utc>,
) -> Result<KnowledgeRecord, StoreError> {
    let hypotheses = store.hypotheses(incident.id).await?;
    // A named cause without a kind takes the kind Cairn found for that service.
    if read.kind.is_none() {
        if let Some(cause) = read.causes.first() {
            read.kind = hypotheses
                .iter()
                .find(|h| &h.service == cause)
                .and_then(|h| h.kind.as_deref())
                .and_then(FaultKind::parse);
        }
    }
    let top = hypotheses.first().map(|h| h.service.as_str());
    let kind = if read.rejected.is_empty() && read.causes.first().map(String::as_str) == top {
        "confirmation"
    } else {
        "correction"
    };
    let draft = KnowledgeRecord {
        incident_id: Some(incident.id),
        channel: from.channel.map(str::to_owned),
        thread_ts: from.thread_ts.map(str::to_owned),
        scope: if read.causes.is_empty() {
            "global"
        } else {
            "service"
        }
        .into(),
        review_at: Some(now + REVIEW_AFTER),
        ..KnowledgeRecord::draft(
            kind,
            text.trim(),
            fields(&read),
            from.author,
            "thread_reply",
        )
    };
    store.add_knowledge(&draft, now).await
}

/// `/cairn learn TEXT`: a fact for the team, with whatever services and kind it names.
pub async fn learn(
    store: &Store,
    text: &str,
    from: &Provenance<'_>,
    now: DateTime<Utc>,
) -> Result<KnowledgeRecord, StoreError> {
    let catalogue = catalogue(store).await;
    let read = correction::parse(text, &catalogue);
    let scope = if read.causes.is_empty() && read.rejected.is_empty() {
        "global"
    } else {
        "service"
    };
    let draft = KnowledgeRecord {
        channel: from.channel.map(str::to_owned),
        scope: scope.into(),
        review_at: Some(now + REVIEW_AFTER),
        ..KnowledgeRecord::draft(
            "fact",
            text.trim(),
            fields(&read),
            from.author,
            "slash_learn",
        )
    };
    store.add_knowledge(&draft, now).await
}

/// A PagerDuty note on an incident (resolution notes): a root cause when it names one.
pub async fn capture_note(
    store: &Store,
    incident: &Incident,
    text: &str,
    author: &str,
    now: DateTime<Utc>,
) -> Result<Option<KnowledgeRecord>, StoreError> {
    let catalogue = catalogue(store).await;
    let read = correction::parse(text, &catalogue);
    if text.trim().is_empty() {
        return Ok(None);
    }
    let kind = if read.causes.is_empty() {
        "fact"
    } else {
        "root_cause"
    };
    let draft = KnowledgeRecord {
        incident_id: Some(incident.id),
        scope: "service".into(),
        review_at: Some(now + REVIEW_AFTER),
        ..KnowledgeRecord::draft(kind, text.trim(), fields(&read), author, "pagerduty")
    };
    store.add_knowledge(&draft, now).await.map(Some)
}

/// One line saying what a record holds: `correction #12: cause cart-cache (cache_failure);
/// not checkout`.
pub fn describe(record: &KnowledgeRecord) -> String {
    let mut parts = Vec::new();
    let causes = record.services();
    if !causes.is_empty() {
        let kind = record
            .fault_kind()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        parts.push(format!("cause {}{kind}", causes.join(", ")));
    } else if let Some(kind) = record.fault_kind() {
        parts.push(format!("kind {kind}"));
    }
    let rejected = record.rejected();
    if !rejected.is_empty() {
        parts.push(format!("not {}", rejected.join(", ")));
    }
    let understood = if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    };
    format!("{} #{}{understood}", record.kind, record.record_id)
}

/// `/cairn explain SERVICE`: what it depends on and who calls it, owners, recent changes,
/// past incidents and their causes, runbooks and knowledge records. Plain text lines
/// (the caller escapes them for Slack).
pub async fn explain(
    store: &Store,
    topology: &Topology,
    changes: &[cairn_connectors::Change],
    service: &str,
) -> Result<Vec<String>, StoreError> {
    let catalogue = store.services().await?;
    let node = topology.service(service);
    let entry = catalogue.iter().find(|s| s.name == service);
    if node.is_none() && entry.is_none() {
        let mut known: Vec<&str> = catalogue.iter().map(|s| s.name.as_str()).collect();
        known.extend(topology.services.iter().map(|s| s.name.as_str()));
        known.sort_unstable();
        known.dedup();
        let near: Vec<&str> = known
            .iter()
            .copied()
            .filter(|k| k.contains(service) || service.contains(k))
            .take(5)
            .collect();
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(" Did you mean {}?", near.join(", "))
        };
        return Ok(vec![format!(
            "I don't know a service called `{service}`.{hint}"
        )]);
    }
    let depends_on: Vec<String> = node
        .map(|n| n.depends_on.clone())
        .or_else(|| entry.map(|e| e.depends_on.clone()))
        .unwrap_or_default();
    let mut callers: Vec<String> = topology.callers(service).map(|n| n.name.clone()).collect();
    for s in &catalogue {
        if s.depends_on.iter().any(|d| d == service) && !callers.contains(&s.name) {
            callers.push(s.name.clone());
        }
    }
    callers.sort();
    let list = |v: &[String]| {
        if v.is_empty() {
            "nothing known".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = vec![format!("*{service}*")];
    let kind = node
        .and_then(|n| n.kind.clone())
        .or_else(|| entry.and_then(|e| e.kind.clone()));
    let team = node
        .and_then(|n| n.team.clone())
        .or_else(|| entry.and_then(|e| e.team.clone()));
    out.push(format!(
        "Kind: {} · Owners: {}",
        kind.as_deref().unwrap_or("unknown"),
        team.as_deref().unwrap_or("unknown")
    ));
    out.push(format!("Depends on: {}", list(&depends_on)));
    out.push(format!("Called by: {}", list(&callers)));
    let mine: Vec<&cairn_connectors::Change> =
        changes.iter().filter(|c| c.service == service).collect();
    if mine.is_empty() {
        out.push("Recent changes: none seen".to_owned());
    } else {
        out.push("Recent changes:".to_owned());
        for c in mine.iter().rev().take(5) {
            out.push(format!("• {} {}", c.ts.format("%Y-%m-%d %H:%M"), c.summary));
        }
    }
    let past = store.incidents_for_service(service, 5).await?;
    if past.is_empty() {
        out.push("Past incidents: none".to_owned());
    } else {
        out.push("Past incidents:".to_owned());
        for p in &past {
            out.push(format!(
                "• #{} {} ({}): {} {}",
                p.incident.id,
                p.incident.title,
                p.incident.created_at.format("%Y-%m-%d"),
                p.kind.as_deref().unwrap_or("cause unknown"),
                if p.status == "confirmed" {
                    "— confirmed"
                } else {
                    "— Cairn's leading hypothesis"
                }
            ));
        }
    }
    let runbooks: Vec<_> = store
        .runbooks()
        .await?
        .into_iter()
        .filter(|r| r.services.iter().any(|s| s == service))
        .collect();
    if !runbooks.is_empty() {
        out.push("Runbooks:".to_owned());
        for r in runbooks.iter().take(5) {
            out.push(format!("• {} ({})", r.title, r.path));
        }
    }
    let records: Vec<KnowledgeRecord> = store
        .list_knowledge(500)
        .await?
        .into_iter()
        .filter(|r| r.status == "active")
        .filter(|r| {
            r.services()
                .iter()
                .chain(r.rejected().iter())
                .any(|s| s == service)
        })
        .take(5)
        .collect();
    if !records.is_empty() {
        out.push("Knowledge:".to_owned());
        for r in &records {
            out.push(format!("• #{} {} — {}", r.record_id, r.kind, r.statement));
        }
    }
    Ok(out)
}

/// `/cairn runbook QUERY`: the best matching runbooks, title, excerpt and where it lives.
pub fn runbook_answer(
    index: &SearchIndex,
    store_runbooks: &[cairn_knowledge::Runbook],
    query: &str,
) -> Vec<String> {
    let hits = index
        .search(query, Some(cairn_knowledge::DocType::Runbook), 3)
        .unwrap_or_default();
    if hits.is_empty() {
        return vec![format!("No runbook matches “{query}”.")];
    }
    hits.iter()
        .map(|h| {
            let path = store_runbooks
                .iter()
                .find(|r| r.id == h.id)
                .map(|r| r.path.as_str())
                .unwrap_or("");
            format!("• *{}* — {} ({path})", h.title, h.excerpt)
        })
        .collect()
}

/// Opens (or rebuilds) the search index under the data directory.
pub async fn open_index(
    data_dir: &std::path::Path,
    store: &Store,
) -> Result<SearchIndex, crate::cli::CliError> {
    let dir = data_dir.join("index");
    SearchIndex::open(&dir, store).await.map_err(|e| {
        crate::cli::CliError::Failed(format!(
            "cannot open the search index in {} (CAIRN_DATA_DIR): {e}",
            dir.display()
        ))
    })
}
