//! The investigation: survey the sources, rank suspects, decide whether anything is wrong.

use std::collections::BTreeMap;

use serde::Serialize;

use cairn_connectors::{DataSource, SeriesSelector, SourceError};

use crate::evidence::Evidence;
use crate::hypothesis::{Confidence, Hypothesis};
use crate::incident::Incident;
use crate::metrics::{evidence_for, score_series};

/// A hypothesis at or above this confidence is a claim; below it, Cairn abstains.
pub const CONFIDENCE_THRESHOLD: f64 = 0.5;
/// Anomaly score at which confidence reaches one half (confidence = s / (s + HALF)).
const HALF_CONFIDENCE_SCORE: f64 = 5.0;
/// Evidence items kept per hypothesis.
const EVIDENCE_PER_HYPOTHESIS: usize = 3;

/// Why an investigation could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum InvestigationError {
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// What the investigation concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one hypothesis is above the confidence threshold.
    RootCauseFound,
    /// Nothing beat the noise: Cairn says so rather than guess.
    NoRootCauseFound,
}

/// The outcome: ranked hypotheses (best first, one per service) and what was checked.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub ranking: Vec<Hypothesis>,
    /// What was looked at, in words, so "nothing found" says what "nothing" covers.
    pub checked: Vec<String>,
    /// Queries sent to the sources.
    pub queries: usize,
}

/// Investigates `incident` against `sources`.
pub async fn investigate(incident: &Incident, sources: &dyn DataSource) -> Result<Finding, InvestigationError> {
    let mut queries = 1;
    let topology = sources.topology().await?;
    let services: Vec<Option<String>> = match &topology {
        Some(t) if !t.services.is_empty() => t.services.iter().map(|s| Some(s.name.clone())).collect(),
        _ => vec![None],
    };

    let mut per_service: BTreeMap<String, Vec<Evidence>> = BTreeMap::new();
    let mut series_checked = 0usize;
    for service in &services {
        let selector = SeriesSelector { service: service.clone(), ..SeriesSelector::all(incident.window) };
        queries += 1;
        for series in sources.series(&selector).await? {
            series_checked += 1;
            let Some(name) = series.service() else { continue };
            let Some(anomaly) = score_series(&series.samples, &series.metric, incident) else { continue };
            if anomaly.score <= 0.0 {
                continue;
            }
            let evidence = evidence_for(&series, &anomaly, incident.window, sources.name());
            per_service.entry(name.to_owned()).or_default().push(evidence);
        }
    }

    let mut ranking: Vec<Hypothesis> = per_service
        .into_iter()
        .map(|(service, mut evidence)| {
            evidence.sort_by(|a, b| b.score.total_cmp(&a.score));
            evidence.truncate(EVIDENCE_PER_HYPOTHESIS);
            let score = evidence.first().map_or(0.0, |e| e.score);
            Hypothesis {
                service,
                kind: None,
                confidence: Confidence::new(score / (score + HALF_CONFIDENCE_SCORE)),
                supporting: evidence,
            }
        })
        .collect();
    ranking.sort_by(|a, b| b.confidence.get().total_cmp(&a.confidence.get()).then_with(|| a.service.cmp(&b.service)));

    let verdict = if ranking.first().is_some_and(|h| h.confidence.get() >= CONFIDENCE_THRESHOLD) {
        Verdict::RootCauseFound
    } else {
        Verdict::NoRootCauseFound
    };
    let checked = vec![format!(
        "{series_checked} metric series across {} services against their pre-onset baselines",
        services.iter().flatten().count().max(1)
    )];
    Ok(Finding { verdict, ranking, checked, queries })
}
