//! `cairn eval --learn`: does what engineers teach Cairn make the next similar incident
//! right, and leave the others alone?
//!
//! 1. Every case is investigated with no knowledge. Its answer then plays the engineer:
//!    a right top hypothesis is confirmed; a wrong one is rejected and the real cause named
//!    (a correction). Incident, investigation (with its symptom fingerprint) and record go
//!    through the same store and the same code `serve` uses.
//! 2. Each case is investigated again with the knowledge of *the other* cases only: on
//!    unrelated incidents nothing should change (and nothing right may turn wrong).
//! 3. Scenarios only: each is simulated again with another seed (the similar incident) and
//!    investigated without knowledge and then with all of it, its own first run included:
//!    the paired numbers.

use std::sync::Arc;

use chrono::Utc;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::json;

use cairn_agents::{Finding, PastCase};
use cairn_connectors::{Bundle, DataSource};
use cairn_knowledge::{InvestigationContext, KnowledgeRecord, NewIncident, Store};

use super::score::Expected;
use super::Case;
use crate::cli::CliError;

/// The seed offset of a scenario's "similar incident".
pub const RESEED: u64 = 7919;

/// One case of the learning evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct LearnCase {
    pub case: String,
    pub expected: String,
    /// Top service of the first investigation, with no knowledge.
    pub first: Option<String>,
    /// What the engineer recorded: confirmation, correction or none.
    pub recorded: String,
    /// Top service with the knowledge of the other cases only.
    pub with_others: Option<String>,
    /// Scenarios: top service of the similar incident without, then with, all knowledge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired_before: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired_after: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The learning evaluation's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LearnSummary {
    /// Cases with a root cause to learn from.
    pub cases: usize,
    pub first_ac1: f64,
    /// With the other cases' knowledge: AC@1, and how many top answers changed, turned
    /// right or turned wrong.
    pub others_ac1: f64,
    pub others_changed: usize,
    pub others_fixed: usize,
    pub others_broken: usize,
    /// Scenarios: the similar incident's AC@1 without and with the knowledge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired_before_ac1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired_after_ac1: Option<f64>,
    /// Of the paired cases whose first answer was wrong (so a correction was recorded),
    /// how many similar incidents now rank the corrected cause first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected_pairs: Option<(usize, usize)>,
}

/// The learning evaluation's report.
#[derive(Debug, Clone, Serialize)]
pub struct LearnReport {
    pub cases: Vec<LearnCase>,
    pub summary: LearnSummary,
}

struct First {
    case: Case,
    expected: Option<Expected>,
    finding: Result<Finding, CliError>,
    window: Option<cairn_connectors::TimeWindow>,
    title: String,
}

fn top(finding: &Finding) -> Option<String> {
    finding.ranking.first().map(|h| h.service.clone())
}

/// Opens (or simulates, `reseed` added to the scenario's seed) a case's bundle and its answer.
async fn load(case: &Case, reseed: u64) -> Result<(Bundle, Option<Expected>), CliError> {
    match case {
        Case::Bundle(dir) => {
            let bundle = crate::sources::open_bundle(dir.clone()).await?;
            Ok((bundle, None))
        }
        Case::Scenario(path) => {
            let (bundle, text) = super::simulate_scenario(path.clone(), reseed).await?;
            let shown = format!("{} (expect)", path.display());
            let expected = text
                .map(|t| super::score::parse_expected(&t, &shown))
                .transpose()
                .map_err(CliError::Failed)?;
            Ok((bundle, expected))
        }
    }
}

async fn first_run(case: Case, extra: &[Arc<dyn DataSource>]) -> First {
    let loaded = load(&case, 0).await;
    let (finding, expected, window, title) = match loaded {
        Ok((bundle, expected)) => {
            let window = bundle.meta().window;
            let title = bundle.meta().name.clone();
            let finding = super::investigate_opened(bundle, extra, Arc::default()).await;
            (finding, expected, Some(window), title)
        }
        Err(e) => (Err(e), None, None, case.name()),
    };
    // Only now, after the investigation, is a bundle's answer read.
    let expected = match (&case, expected) {
        (Case::Bundle(dir), _) => super::score::read_expected(dir).ok().flatten(),
        (_, e) => e,
    };
    First {
        case,
        expected,
        finding,
        window,
        title,
    }
}

/// Runs the learning evaluation over `cases`.
pub async fn evaluate(
    cases: &[Case],
    extra: &[Arc<dyn DataSource>],
    jobs: usize,
) -> Result<LearnReport, CliError> {
    let dir = tempfile_dir()?;
    let store = Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("learn.db").display()
    ))
    .await
    .map_err(|e| CliError::Failed(format!("cannot open the evaluation database: {e}")))?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::Failed(format!("cannot prepare the evaluation database: {e}")))?;

    let progress = super::progress_bar(cases.len() as u64 * 2);
    let mut firsts: Vec<First> = stream::iter(cases.iter().cloned())
        .map(|case| {
            let progress = progress.clone();
            async move {
                let first = first_run(case, extra).await;
                progress.inc(1);
                first
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    firsts.sort_by(|a, b| a.case.cmp(&b.case));

    // The engineer's word on each first run, stored like serve stores it.
    let mut incident_of: Vec<Option<i64>> = Vec::with_capacity(firsts.len());
    let mut recorded: Vec<String> = Vec::with_capacity(firsts.len());
    for f in &firsts {
        let (Ok(finding), Some(window)) = (&f.finding, f.window) else {
            incident_of.push(None);
            recorded.push("none".into());
            continue;
        };
        let (id, what) = teach(&store, f, finding, window).await?;
        incident_of.push(id);
        recorded.push(what);
    }
    let all: Vec<PastCase> = crate::knowledge::precedents(&store)
        .await
        .map_err(|e| CliError::Failed(format!("cannot read the knowledge back: {e}")))?;

    let second: Vec<LearnCase> = stream::iter(firsts.iter().enumerate())
        .map(|(i, f)| {
            let all = &all;
            let progress = progress.clone();
            let own = incident_of[i];
            let recorded = recorded[i].clone();
            async move {
                let result = second_run(f, own, all, recorded, extra).await;
                progress.inc(1);
                result
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    progress.finish_and_clear();
    let mut second = second;
    second.sort_by(|a, b| a.case.cmp(&b.case));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = summarize(&second);
    Ok(LearnReport {
        cases: second,
        summary,
    })
}

/// Stores the incident, its investigation and the engineer's record; returns the incident
/// id and what was recorded.
async fn teach(
    store: &Store,
    f: &First,
    finding: &Finding,
    window: cairn_connectors::TimeWindow,
) -> Result<(Option<i64>, String), CliError> {
    let failed =
        |e: cairn_knowledge::StoreError| CliError::Failed(format!("evaluation database: {e}"));
    let now = Utc::now();
    let incident = store
        .create_incident(
            &NewIncident {
                title: f.title.clone(),
                source: "eval".into(),
                source_ref: f.case.name(),
                channel: None,
            },
            now,
        )
        .await
        .map_err(failed)?;
    let context = InvestigationContext {
        window_start: Some(window.start),
        window_end: Some(window.end),
        fingerprint: Some(finding.fingerprint.clone()),
    };
    let hypotheses = crate::findings::stored_hypotheses(finding, 5);
    store
        .save_investigation(
            incident.id,
            crate::findings::verdict(finding),
            &hypotheses,
            now,
            now,
            &context,
        )
        .await
        .map_err(failed)?;
    let first = top(finding);
    let confident = finding.verdict == cairn_agents::Verdict::RootCauseFound;
    let (kind, statement, fields) = match &f.expected {
        Some(Expected::RootCause { service, kind }) if first.as_deref() == Some(service) => (
            "confirmation",
            format!("{service} was the root cause"),
            json!({"services": [service], "rejected": [], "fault_kind": kind}),
        ),
        Some(Expected::RootCause { service, kind }) => (
            "correction",
            format!(
                "root cause was {} on {service}, not {}",
                kind.as_deref().unwrap_or("a fault"),
                first.as_deref().unwrap_or("what Cairn said")
            ),
            json!({"services": [service], "rejected": first.iter().collect::<Vec<_>>(), "fault_kind": kind}),
        ),
        Some(Expected::NoIssue) if confident => (
            "correction",
            format!("nothing was wrong; not {}", first.as_deref().unwrap_or("")),
            json!({"services": [], "rejected": first.iter().collect::<Vec<_>>(), "fault_kind": null}),
        ),
        _ => return Ok((Some(incident.id), "none".into())),
    };
    let draft = KnowledgeRecord {
        incident_id: Some(incident.id),
        scope: "service".into(),
        ..KnowledgeRecord::draft(kind, statement, fields, "U0EVAL", "eval")
    };
    store.add_knowledge(&draft, now).await.map_err(failed)?;
    Ok((Some(incident.id), kind.into()))
}

async fn second_run(
    f: &First,
    own: Option<i64>,
    all: &[PastCase],
    recorded: String,
    extra: &[Arc<dyn DataSource>],
) -> LearnCase {
    let expected = match &f.expected {
        Some(Expected::RootCause { service, .. }) => service.clone(),
        Some(Expected::NoIssue) => "(no issue)".into(),
        None => "?".into(),
    };
    let mut out = LearnCase {
        case: f.case.name(),
        expected,
        first: f.finding.as_ref().ok().and_then(top),
        recorded,
        with_others: None,
        paired_before: None,
        paired_after: None,
        error: f.finding.as_ref().err().map(ToString::to_string),
    };
    if out.error.is_some() {
        return out;
    }
    let others: Vec<PastCase> = all
        .iter()
        .filter(|p| Some(p.incident_id) != own)
        .cloned()
        .collect();
    match load(&f.case, 0).await {
        Ok((bundle, _)) => match super::investigate_opened(bundle, extra, Arc::new(others)).await {
            Ok(finding) => out.with_others = top(&finding),
            Err(e) => out.error = Some(e.to_string()),
        },
        Err(e) => out.error = Some(e.to_string()),
    }
    if matches!(f.case, Case::Scenario(_)) {
        for (with, slot) in [
            (false, &mut out.paired_before),
            (true, &mut out.paired_after),
        ] {
            let knowledge = if with { all.to_vec() } else { Vec::new() };
            match load(&f.case, RESEED).await {
                Ok((bundle, _)) => {
                    match super::investigate_opened(bundle, extra, Arc::new(knowledge)).await {
                        Ok(finding) => *slot = Some(top(&finding)),
                        Err(e) => out.error = Some(e.to_string()),
                    }
                }
                Err(e) => out.error = Some(e.to_string()),
            }
        }
    }
    out
}

fn summarize(cases: &[LearnCase]) -> LearnSummary {
    let scored: Vec<&LearnCase> = cases
        .iter()
        .filter(|c| c.error.is_none() && c.expected != "?" && c.expected != "(no issue)")
        .collect();
    let n = scored.len();
    let ratio = |hits: usize| if n == 0 { 0.0 } else { hits as f64 / n as f64 };
    let right = |top: &Option<String>, c: &LearnCase| top.as_deref() == Some(c.expected.as_str());
    let mut s = LearnSummary {
        cases: n,
        first_ac1: ratio(scored.iter().filter(|c| right(&c.first, c)).count()),
        others_ac1: ratio(scored.iter().filter(|c| right(&c.with_others, c)).count()),
        ..LearnSummary::default()
    };
    for c in &scored {
        if c.with_others != c.first {
            s.others_changed += 1;
            match (right(&c.first, c), right(&c.with_others, c)) {
                (false, true) => s.others_fixed += 1,
                (true, false) => s.others_broken += 1,
                _ => {}
            }
        }
    }
    let paired: Vec<&&LearnCase> = scored.iter().filter(|c| c.paired_after.is_some()).collect();
    if !paired.is_empty() {
        let m = paired.len() as f64;
        let hit = |slot: &Option<Option<String>>, c: &LearnCase| {
            slot.as_ref().is_some_and(|t| right(t, c))
        };
        s.paired_before_ac1 =
            Some(paired.iter().filter(|c| hit(&c.paired_before, c)).count() as f64 / m);
        s.paired_after_ac1 =
            Some(paired.iter().filter(|c| hit(&c.paired_after, c)).count() as f64 / m);
        let corrected: Vec<&&&LearnCase> = paired
            .iter()
            .filter(|c| c.recorded == "correction")
            .collect();
        s.corrected_pairs = Some((
            corrected.iter().filter(|c| hit(&c.paired_after, c)).count(),
            corrected.len(),
        ));
    }
    s
}

/// The table and the figures, as text.
pub fn render(report: &LearnReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let width = report
        .cases
        .iter()
        .map(|c| c.case.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let show = |t: &Option<String>| t.clone().unwrap_or_else(|| "–".into());
    let _ = writeln!(
        out,
        "{:width$}  {:16}  {:16}  {:12}  {:16}  {:16}  {:16}",
        "case", "expected", "first", "recorded", "others' know.", "similar before", "similar after"
    );
    for c in &report.cases {
        let _ = writeln!(
            out,
            "{:width$}  {:16}  {:16}  {:12}  {:16}  {:16}  {:16}{}",
            c.case,
            c.expected,
            show(&c.first),
            c.recorded,
            show(&c.with_others),
            c.paired_before.as_ref().map_or("".into(), show),
            c.paired_after.as_ref().map_or("".into(), show),
            c.error
                .as_ref()
                .map_or(String::new(), |e| format!("  error: {e}")),
        );
    }
    let s = &report.summary;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} cases. First run AC@1 {:.2}. With the other cases' knowledge: AC@1 {:.2}; top answer changed in {} ({} fixed, {} broken).",
        s.cases, s.first_ac1, s.others_ac1, s.others_changed, s.others_fixed, s.others_broken
    );
    if let (Some(before), Some(after)) = (s.paired_before_ac1, s.paired_after_ac1) {
        let _ = writeln!(
            out,
            "Similar incidents (reseeded +{RESEED}): AC@1 {before:.2} without knowledge, {after:.2} with it."
        );
    }
    if let Some((fixed, of)) = s.corrected_pairs {
        let _ = writeln!(
            out,
            "Corrected pairs: {fixed} of {of} similar incidents rank the corrected cause first."
        );
    }
    out
}

/// A fresh private directory for the evaluation's database.
fn tempfile_dir() -> Result<std::path::PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!(
        "cairn-learn-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}
