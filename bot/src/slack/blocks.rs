//! The thread's messages as Block Kit, always inside Slack's limits: a status message, one
//! message per hypothesis with its evidence and Confirm/Reject buttons, and a summary. Every
//! message carries `metadata` naming what it is and which incident it belongs to.

use serde_json::{json, Value};

use cairn_agents::{Finding, Hypothesis, Verdict};

use super::text::{safe, truncate};
use crate::render::sparkline;

/// Slack's limits.
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION: usize = 3000;
pub const MAX_HEADER: usize = 150;
pub const MAX_BUTTON: usize = 75;
/// Hypotheses posted per investigation.
pub const HYPOTHESES: usize = 3;

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION)}})
}

fn metadata(event_type: &str, payload: Value) -> Value {
    json!({"event_type": event_type, "event_payload": payload})
}

/// The root message a page posts in the incident channel; the thread hangs off it.
pub fn root(incident_id: i64, title: &str, source: &str, service: Option<&str>) -> Value {
    let title = safe(title, MAX_HEADER);
    let service = service.map_or_else(String::new, |s| format!(" · service {}", safe(s, 100)));
    let text = format!(":rotating_light: {title}");
    json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("🚨 {title}"), MAX_HEADER)}},
            section(&format!("Paged by {}{service}. Cairn is investigating in this thread.", safe(source, 50))),
        ],
        "metadata": metadata("cairn_incident", json!({"incident_id": incident_id})),
    })
}

/// What Cairn recorded from an engineer's words, in the thread: the understanding, the
/// original words, and an Undo button (`knowledge_undo`, value = the record id).
pub fn knowledge_recorded(record: &cairn_knowledge::KnowledgeRecord, understood: &str) -> Value {
    let text = format!(
        "📝 Recorded {} from {} — this will inform similar incidents.\n> {}",
        safe(understood, 500),
        safe(&record.author, 40),
        safe(&record.statement, 1500).replace('\n', "\n> ")
    );
    json!({
        "text": format!("Recorded {}", safe(understood, 500)),
        "blocks": [
            section(&text),
            {"type": "actions", "elements": [
                {"type": "button", "action_id": "knowledge_undo", "text": {"type": "plain_text", "text": "Undo"}, "value": record.record_id.to_string()},
            ]},
        ],
        "metadata": metadata("cairn_knowledge", json!({"incident_id": record.incident_id, "record_id": record.record_id})),
    })
}

/// The status message while agents run: who has reported, with how many findings.
pub fn status_running(
    incident_id: i64,
    title: &str,
    agents: &[(String, usize, Option<String>)],
) -> Value {
    let lines: Vec<String> = agents
        .iter()
        .map(|(name, n, error)| match error {
            Some(e) => format!("✗ {name}: {}", safe(e, 200)),
            None => format!("✓ {name}: {n} finding(s)"),
        })
        .collect();
    let text = if lines.is_empty() {
        "Investigating: agents are surveying changes, metrics, logs, traces, infrastructure, databases, network and precedent…".to_owned()
    } else {
        format!(
            "Investigating — agents reported:\n{}\nTesting the leading hypotheses…",
            lines.join("\n")
        )
    };
    json!({
        "text": "Investigating…",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("Cairn · {title}"), MAX_HEADER)}},
            section(&text),
        ],
        "metadata": metadata("cairn_status", json!({"incident_id": incident_id})),
    })
}

/// The status message: what was investigated and how it ended.
///
/// `unreadable` names the sources that failed (one line each): the investigation went on
/// without them, and the thread must say what it could not see.
pub fn status(incident_id: i64, title: &str, finding: &Finding, unreadable: &[String]) -> Value {
    let verdict = match finding.verdict {
        Verdict::RootCauseFound => "Investigation finished: ranked hypotheses below.",
        Verdict::NoRootCauseFound => {
            "Investigation finished: no root cause found — nothing beat the noise."
        }
    };
    let checked = finding
        .checked
        .iter()
        .map(|c| format!("• {}", safe(c, 300)))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!("{verdict} ({})", safe(title, 200));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("Cairn · {}", title), MAX_HEADER)}}),
        section(&format!("*{verdict}*\n{checked}")),
    ];
    if !unreadable.is_empty() {
        let lines = unreadable
            .iter()
            .take(5)
            .map(|u| format!("• {}", safe(u, 400)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(section(&format!(
            ":warning: *Investigated without these sources:*\n{lines}"
        )));
    }
    json!({
        "text": text,
        "blocks": blocks,
        "metadata": metadata("cairn_status", json!({"incident_id": incident_id})),
    })
}

/// One hypothesis: rank, confidence, evidence bullets with numbers, sparkline, the
/// runbooks of its service, buttons.
pub fn hypothesis(
    incident_id: i64,
    rank: usize,
    h: &Hypothesis,
    runbooks: &[cairn_knowledge::Runbook],
) -> Value {
    let kind = crate::findings::kind_label(h);
    let head = format!(
        "*#{rank} {}* — {kind} ({})",
        safe(&h.service, 200),
        h.confidence
    );
    let mut blocks = vec![section(&head)];
    for e in h.supporting.iter().take(6) {
        let mut line = format!("• [{}] {}", e.domain.as_str(), safe(&e.reason, 600));
        if !e.trend.is_empty() {
            line.push_str(&format!("\n`{}`", sparkline(&e.trend)));
        }
        if let Some(link) = &e.link {
            line.push_str(&format!("\n{}", safe(link, 300)));
        }
        line.push_str(&format!("\n_{}_", safe(&e.query, 400)));
        blocks.push(section(&line));
    }
    for e in h.contradicting.iter().take(2) {
        blocks.push(section(&format!("✗ {}", safe(&e.reason, 600))));
    }
    let books: Vec<String> = runbooks
        .iter()
        .filter(|r| r.services.iter().any(|s| s == &h.service))
        .take(2)
        .map(|r| {
            format!(
                "📖 Runbook: *{}* ({})",
                safe(&r.title, 200),
                safe(&r.path, 300)
            )
        })
        .collect();
    if !books.is_empty() {
        blocks.push(section(&books.join("\n")));
    }
    let value = format!("{incident_id}:{rank}");
    blocks.push(json!({"type": "actions", "elements": [
        {"type": "button", "action_id": "hypothesis_confirm", "style": "primary", "text": {"type": "plain_text", "text": truncate("Confirm", MAX_BUTTON)}, "value": value},
        {"type": "button", "action_id": "hypothesis_reject", "style": "danger", "text": {"type": "plain_text", "text": truncate("Reject", MAX_BUTTON)}, "value": value},
    ]}));
    blocks.truncate(MAX_BLOCKS);
    json!({
        "text": format!("#{rank} {} — {kind} ({})", safe(&h.service, 200), h.confidence),
        "blocks": blocks,
        "metadata": metadata("cairn_hypothesis", json!({"incident_id": incident_id, "rank": rank, "service": h.service, "confidence": h.confidence.get()})),
    })
}

/// The summary: the verdict in one line.
pub fn summary(incident_id: i64, finding: &Finding) -> Value {
    let text = match (finding.verdict, finding.ranking.first()) {
        (Verdict::RootCauseFound, Some(top)) => format!(
            "Most likely: {} on {} ({}), from {} evidence. Confirm or reject above; corrections in this thread are recorded.",
            top.kind.map_or_else(|| "a fault".to_owned(), |k| k.to_string().replace('_', " ")),
            safe(&top.service, 200),
            top.confidence,
            top.domains().iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
        ),
        _ => "No root cause found. Cairn checked the sources above and found nothing beyond noise.".to_owned(),
    };
    json!({
        "text": text,
        "blocks": [section(&text)],
        "metadata": metadata("cairn_summary", json!({"incident_id": incident_id})),
    })
}

/// The messages posted after the investigation (the status message is edited, not posted),
/// in posting order, each with its idempotency key suffix.
pub fn thread(
    incident_id: i64,
    finding: &Finding,
    runbooks: &[cairn_knowledge::Runbook],
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if finding.verdict == Verdict::RootCauseFound {
        for (i, h) in finding.ranking.iter().take(HYPOTHESES).enumerate() {
            if i == 0 || h.confidence.get() >= 0.2 {
                out.push((
                    format!("hypothesis:{}", i + 1),
                    hypothesis(incident_id, i + 1, h, runbooks),
                ));
            }
        }
    }
    out.push(("summary".to_owned(), summary(incident_id, finding)));
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::Value;

    use cairn_agents::{
        Confidence, Domain, Evidence, FaultKind, Hypothesis, HypothesisStatus, Signal,
    };
    use cairn_connectors::TimeWindow;
    use cairn_knowledge::{KnowledgeRecord, Runbook};

    use super::*;

    fn window() -> TimeWindow {
        TimeWindow {
            start: Utc.with_ymd_and_hms(2026, 3, 16, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 3, 16, 1, 0, 0).unwrap(),
        }
    }

    fn within_limits(message: &Value) {
        let blocks = message["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        for b in blocks {
            if b["type"] == "section" {
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= MAX_SECTION);
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                if e["type"] == "button" {
                    assert!(e["text"]["text"].as_str().unwrap().chars().count() <= MAX_BUTTON);
                }
            }
        }
    }

    #[test]
    fn a_hypothesis_with_precedent_and_a_runbook() {
        let mut precedent = Evidence::new(
            Domain::Precedent,
            Signal::Precedent,
            "orders-db",
            "knowledge",
            "past incidents whose symptoms resemble this one's",
            window(),
            0.81,
            "like incident #12 on 2026-03-10 (\"Checkout <!channel> 5xx\"), root cause db_pool_exhaustion on orders-db (corrected by @U2); symptoms 90% alike",
        );
        precedent.incident_ref = Some(12);
        precedent.record_ref = Some(7);
        let metrics = Evidence {
            observed: 40.0,
            baseline: 0.0,
            trend: vec![0.0, 0.0, 1.0, 5.0, 9.0, 10.0],
            ..Evidence::new(
                Domain::Database,
                Signal::PoolExhaustion,
                "orders-db",
                "bundle",
                "hikaricp_connections_pending{service=\"checkout\"}",
                window(),
                0.9,
                "40 threads waiting for a connection (baseline 0)",
            )
        };
        let h = Hypothesis {
            service: "orders-db".into(),
            kind: Some(FaultKind::DbPoolExhaustion),
            confidence: Confidence::new(0.93),
            supporting: vec![precedent, metrics],
            contradicting: vec![],
            status: HypothesisStatus::Open,
        };
        let runbooks = vec![Runbook {
            id: 1,
            title: "DB pool exhausted".into(),
            path: "runbooks/db-pool.md".into(),
            services: vec!["orders-db".into()],
            alerts: vec![],
            tags: vec![],
            body: "Raise the pool".into(),
            updated_at: window().start,
        }];
        let message = hypothesis(3, 1, &h, &runbooks);
        within_limits(&message);
        let text = message.to_string();
        assert!(!text.contains("<!channel>"), "data cannot ping: {text}");
        insta::assert_snapshot!(serde_json::to_string_pretty(&message).unwrap());
    }

    #[test]
    fn a_status_that_names_the_sources_it_could_not_read() {
        let finding = Finding {
            verdict: Verdict::NoRootCauseFound,
            ranking: Vec::new(),
            checked: vec!["12 services in the topology; 40 queries, 900 records read".into()],
            queries: 40,
            rounds: 1,
            fingerprint: Default::default(),
        };
        let unreadable = [
            "prom-eu could not answer 12 queries (series): source `prom-eu` timed out".to_owned(),
            "loki could not answer 1 query (logs): source `loki` is unavailable: HTTP 500 <!here>"
                .to_owned(),
        ];
        let message = status(7, "checkout 5xx", &finding, &unreadable);
        within_limits(&message);
        assert!(!message.to_string().contains("<!here>"));
        insta::assert_snapshot!(serde_json::to_string_pretty(&message).unwrap());
    }

    #[test]
    fn what_was_recorded_with_its_undo_button() {
        let record = KnowledgeRecord {
            record_id: 7,
            incident_id: Some(3),
            ..KnowledgeRecord::draft(
                "correction",
                "root cause was the connection pool on orders-db, not checkout <@U999>",
                serde_json::json!({"services": ["orders-db"], "rejected": ["checkout"], "fault_kind": "db_pool_exhaustion"}),
                "U2",
                "thread_reply",
            )
        };
        let message = knowledge_recorded(
            &record,
            "correction #7: cause orders-db (db_pool_exhaustion); not checkout",
        );
        within_limits(&message);
        assert!(!message.to_string().contains("<@U999>"));
        insta::assert_snapshot!(serde_json::to_string_pretty(&message).unwrap());
    }
}
