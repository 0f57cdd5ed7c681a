//! Precedent: what engineers recorded about past incidents that looked like this one.
//!
//! Every investigation leaves a [`Fingerprint`] of its symptoms ([`fingerprint`]); engineers
//! confirm, correct or reject its hypotheses, and those records, with the fingerprint of
//! the incident they are about, come back as [`PastCase`]s. After the survey the
//! orchestrator compares the present fingerprint with each case ([`recall`]): a case alike
//! enough speaks for the cause engineers recorded and against the services they rejected,
//! in proportion to how alike it is and how far the record is trusted.
//!
//! Unlike the other agents this one reads no source: it reads the ledger of round 1 and what
//! the caller passed in [`crate::Options::precedents`]. A record that was retracted is simply
//! not passed, and stops counting.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use cairn_connectors::TimeWindow;
use cairn_knowledge::Fingerprint;

use crate::evidence::{Domain, Evidence, Signal, Stance};
use crate::hypothesis::FaultKind;
use crate::investigation::is_cause;

/// The step's name in progress events.
pub const NAME: &str = "precedent";

/// Two incidents whose fingerprints are at least this alike count as the same trouble.
///
/// Measured over the scenario library, ten seeds each: the same fault under another seed
/// scores a median 0.83 (95% above 0.57); a different fault on the same topology at most
/// 0.38 (99% below 0.31); different topologies at most 0.13. Node failures are the
/// exception (median 0.24): each seed puts different services on the lost node.
pub const SIMILARITY_THRESHOLD: f64 = 0.45;

/// Findings weaker than this are noise and stay out of a fingerprint.
const FEATURE_FLOOR: f64 = 0.3;
/// What a symptom (errors, latency, a moved series) weighs against a signal that names a
/// cause: victims share their symptoms whatever broke beneath them, so symptoms alone must
/// not make two different faults alike.
const SYMPTOM_WEIGHT: f64 = 0.1;
/// Signals between the two (new log templates, restarts, load, where traces start).
const CLUE_WEIGHT: f64 = 0.3;
/// A new error template, whoever logs it: the words of a fault repeat, but so do a
/// victim's ("connection failure calling X") whatever broke X. These three weights were
/// chosen on the measurements above, for the widest gap between the two kinds of pairs.
const TEMPLATE_WEIGHT: f64 = 0.2;
/// The most a past case can say for a service: history is a lead, never certainty.
pub(crate) const MOST_SAID: f64 = 0.9;

/// The symptoms an investigation found, as a fingerprint, from its ledger.
///
/// Pure (the same ledger gives the same fingerprint) and about the present only: changes,
/// topology inferences and precedent itself are left out, as is anything scored below 0.3.
/// Each finding adds `service|signal` (the signal's snake_case name) at its score, in full
/// when the signal names a cause and less for symptoms a victim would share; a new error
/// template also adds `tmpl:<template>`. Of several findings on one feature the strongest
/// counts.
pub fn fingerprint(evidence: &[Evidence]) -> Fingerprint {
    let mut fp = Fingerprint::default();
    for e in evidence {
        if e.stance != Stance::Supports
            || e.score < FEATURE_FLOOR
            || matches!(
                e.domain,
                Domain::Changes | Domain::Topology | Domain::Precedent
            )
        {
            continue;
        }
        let weight = match e.signal {
            Signal::Errors | Signal::Latency | Signal::Anomaly => SYMPTOM_WEIGHT,
            s if is_cause(s) => 1.0,
            _ => CLUE_WEIGHT,
        };
        fp.add(
            format!("{}|{}", e.service, e.signal.as_str()),
            e.score * weight,
        );
        if let Some(template) = &e.template {
            fp.add(format!("tmpl:{template}"), e.score * TEMPLATE_WEIGHT);
        }
    }
    fp
}

/// How a past incident's cause came to be recorded; it says how to word the precedent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordKind {
    /// An engineer confirmed Cairn's hypothesis.
    Confirmation,
    /// An engineer rejected Cairn's answer and named the cause.
    Correction,
    /// The cause was written down some other way (`/cairn learn`, a resolution note).
    #[default]
    RootCause,
}

impl RecordKind {
    /// The kind from its name in the knowledge store (`confirmation`, `correction`,
    /// `root_cause`).
    pub fn from_store(kind: &str) -> Option<Self> {
        match kind {
            "confirmation" => Some(Self::Confirmation),
            "correction" => Some(Self::Correction),
            "root_cause" => Some(Self::RootCause),
            _ => None,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmed",
            Self::Correction => "corrected",
            Self::RootCause => "recorded",
        }
    }
}

/// A past incident and what engineers recorded about its cause: the material of precedent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PastCase {
    /// The past incident.
    pub incident_id: i64,
    /// The knowledge record this case rests on.
    pub record_id: i64,
    /// When the incident happened.
    pub date: DateTime<Utc>,
    pub title: String,
    /// The cause engineers recorded: service and (if given) fault kind.
    pub cause: Option<(String, Option<FaultKind>)>,
    /// Services engineers said were NOT the cause.
    pub rejected: Vec<String>,
    /// The user id of who recorded it, shown as `@U123` (rendering a mention is the
    /// caller's business).
    pub by: String,
    /// How the cause was recorded.
    pub record_kind: RecordKind,
    /// How much the record is trusted, 0–1 (an explicit confirmation or correction ≈ 1, a
    /// PagerDuty resolution note less).
    pub trust: f64,
    /// The symptoms of the past incident's investigation.
    pub fingerprint: Fingerprint,
}

/// What the past cases alike to the present say, as evidence: for the cause each recorded
/// (score similarity × trust, at most 0.9, naming the recorded kind) and against each
/// service it rejected (score similarity × trust, [`Stance::Contradicts`]).
///
/// Only cases at least [`SIMILARITY_THRESHOLD`] alike speak, and of several speaking for (or
/// against) one service only the strongest counts: three similar incidents are one lesson,
/// not three. `window` is the present investigation's.
pub fn recall(present: &Fingerprint, cases: &[PastCase], window: TimeWindow) -> Vec<Evidence> {
    let mut strongest: BTreeMap<(&str, Stance), (f64, f64, &PastCase)> = BTreeMap::new();
    for case in cases {
        let similarity = present.similarity(&case.fingerprint);
        if similarity < SIMILARITY_THRESHOLD {
            continue;
        }
        let trust = if case.trust.is_finite() {
            case.trust.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let strength = similarity * trust;
        if strength <= 0.0 {
            continue;
        }
        let cause = case.cause.as_ref().map(|(s, _)| s.as_str());
        let claims = cause.map(|s| (s, Stance::Supports)).into_iter().chain(
            case.rejected
                .iter()
                .map(String::as_str)
                .filter(|s| Some(*s) != cause)
                .map(|s| (s, Stance::Contradicts)),
        );
        for key in claims {
            let slot = strongest.entry(key).or_insert((0.0, 0.0, case));
            if strength > slot.0 {
                *slot = (strength, similarity, case);
            }
        }
    }
    strongest
        .into_iter()
        .map(|((service, stance), (strength, similarity, case))| {
            let alike = (similarity * 100.0).round();
            let (score, kind, reason) = match stance {
                Stance::Supports => {
                    let kind = case.cause.as_ref().and_then(|(_, k)| *k);
                    let what = kind.map_or_else(
                        || format!("root cause in {service}"),
                        |k| format!("root cause {k} on {service}"),
                    );
                    (
                        strength.min(MOST_SAID),
                        kind,
                        format!(
                            "like incident {}, {what} ({}{}); symptoms {alike}% alike",
                            Recalled(case),
                            case.record_kind.verb(),
                            by(&case.by)
                        ),
                    )
                }
                Stance::Contradicts => (
                    strength,
                    None,
                    format!(
                        "rejected as the cause of similar incident {}{}; symptoms {alike}% alike",
                        Recalled(case),
                        by(&case.by)
                    ),
                ),
            };
            Evidence {
                observed: similarity,
                baseline: SIMILARITY_THRESHOLD,
                stance,
                incident_ref: Some(case.incident_id),
                record_ref: Some(case.record_id),
                names_kind: kind,
                ..Evidence::new(
                    Domain::Precedent,
                    Signal::Precedent,
                    service,
                    "knowledge",
                    "past incidents whose symptoms resemble this one's, and what engineers recorded about them",
                    window,
                    score,
                    reason,
                )
            }
        })
        .collect()
}

/// A past incident as a reason names it: `#12 on 2026-11-20 ("Checkout 5xx")`.
struct Recalled<'a>(&'a PastCase);

impl fmt::Display for Recalled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let case = self.0;
        write!(
            f,
            "#{} on {}",
            case.incident_id,
            case.date.format("%Y-%m-%d")
        )?;
        // One line, whatever the title holds.
        let title = case.title.split_whitespace().collect::<Vec<_>>().join(" ");
        if !title.is_empty() {
            let short: String = title.chars().take(80).collect();
            let more = if short.len() < title.len() { "…" } else { "" };
            write!(f, " (\"{short}{more}\")")?;
        }
        Ok(())
    }
}

/// ` by @U123` for a Slack user id, however it was written; nothing when unknown. Plain
/// text: rendering it as a mention is the caller's business.
fn by(user: &str) -> String {
    let id = user
        .trim()
        .trim_start_matches('<')
        .trim_start_matches('@')
        .trim_end_matches('>');
    if id.is_empty() {
        String::new()
    } else {
        format!(" by @{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_plain_text_however_it_was_written() {
        assert_eq!(by("U123"), " by @U123");
        assert_eq!(by("<@U123>"), " by @U123");
        assert_eq!(by("@U123"), " by @U123");
        assert_eq!(by("  "), "");
    }

    #[test]
    fn a_past_incident_is_named_on_one_short_line() {
        let case = PastCase {
            incident_id: 12,
            date: DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            title: format!("Checkout\n5xx {}", "x".repeat(100)),
            ..PastCase::default()
        };
        let named = Recalled(&case).to_string();
        assert!(
            named.starts_with("#12 on 2026-11-18 (\"Checkout 5xx xxx"),
            "{named}"
        );
        assert!(named.ends_with("…\")") && !named.contains('\n'), "{named}");
        let untitled = PastCase {
            title: String::new(),
            ..case
        };
        assert_eq!(Recalled(&untitled).to_string(), "#12 on 2026-11-18");
    }
}
