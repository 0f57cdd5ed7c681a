//! A finished investigation in the shape storage keeps it (the same for `serve` and `demo`).

use cairn_agents::{Finding, Incident, Verdict};
use cairn_knowledge::{InvestigationContext, StoredEvidence, StoredHypothesis};

/// The verdict's stored name.
pub fn verdict(finding: &Finding) -> &'static str {
    match finding.verdict {
        Verdict::RootCauseFound => "root_cause_found",
        Verdict::NoRootCauseFound => "no_root_cause_found",
    }
}

/// A hypothesis's fault kind as people read it ("network delay"), or "cause unclear".
pub fn kind_label(h: &cairn_agents::Hypothesis) -> String {
    h.kind.map_or_else(
        || "cause unclear".to_owned(),
        |k| k.to_string().replace('_', " "),
    )
}

/// The first `n` hypotheses, ranked from 1, with their supporting evidence.
pub fn stored_hypotheses(finding: &Finding, n: usize) -> Vec<StoredHypothesis> {
    finding
        .ranking
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, h)| StoredHypothesis {
            rank: i as i32 + 1,
            service: h.service.clone(),
            kind: h.kind.map(|k| k.to_string()),
            confidence: h.confidence.get(),
            status: "open".into(),
            evidence: h
                .supporting
                .iter()
                .map(|e| StoredEvidence {
                    kind: e.domain.as_str().into(),
                    text: e.reason.clone(),
                    source: Some(e.source.clone()),
                    link: e.link.clone(),
                    incident_ref: e.incident_ref,
                    record_ref: e.record_ref,
                })
                .collect(),
        })
        .collect()
}

/// The window looked at and the symptoms found, kept so later incidents can be compared
/// with this one and it can be exported as a bundle.
pub fn context(case: &Incident, finding: &Finding) -> InvestigationContext {
    InvestigationContext {
        window_start: Some(case.window.start),
        window_end: Some(case.window.end),
        fingerprint: Some(finding.fingerprint.clone()),
    }
}
