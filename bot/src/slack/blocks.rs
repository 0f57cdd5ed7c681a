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
pub fn status(incident_id: i64, title: &str, finding: &Finding) -> Value {
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
    json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("Cairn · {}", title), MAX_HEADER)}},
            section(&format!("*{verdict}*\n{checked}")),
        ],
        "metadata": metadata("cairn_status", json!({"incident_id": incident_id})),
    })
}

/// One hypothesis: rank, confidence, evidence bullets with numbers, sparkline, buttons.
pub fn hypothesis(incident_id: i64, rank: usize, h: &Hypothesis) -> Value {
    let kind = h.kind.map_or_else(
        || "cause unclear".to_owned(),
        |k| k.to_string().replace('_', " "),
    );
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
pub fn thread(incident_id: i64, finding: &Finding) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if finding.verdict == Verdict::RootCauseFound {
        for (i, h) in finding.ranking.iter().take(HYPOTHESES).enumerate() {
            if i == 0 || h.confidence.get() >= 0.2 {
                out.push((
                    format!("hypothesis:{}", i + 1),
                    hypothesis(incident_id, i + 1, h),
                ));
            }
        }
    }
    out.push(("summary".to_owned(), summary(incident_id, finding)));
    out
}
