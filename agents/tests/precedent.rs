//! Precedent: what engineers recorded about similar past incidents changes the ranking of a
//! new one; a retracted record (no longer passed) stops counting; an unrelated one changes
//! nothing. Ranking rules on hand-built ledgers, then real incidents from the simulator.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};

use cairn_agents::investigation::rank;
use cairn_agents::{
    fingerprint, investigate_with, recall, Domain, Evidence, FaultKind, Finding, Hypothesis,
    Incident, Options, PastCase, Progress, ProgressSink, RecordKind, Signal, Stance,
    SIMILARITY_THRESHOLD,
};
use cairn_connectors::Bundle;
use cairn_knowledge::Fingerprint;
use cairn_simulator::Scenario;

mod common;

use common::{evidence, page_ms, topology, window};

/// An incident Cairn gets wrong: `api` is loud and first, while `db`, the real cause, shows
/// only slow queries that surface after `api`'s errors. `scale` varies the strengths, as
/// another occurrence of the same trouble would.
fn misread(scale: f64) -> Vec<Evidence> {
    vec![
        evidence(
            "web",
            Domain::Metrics,
            Signal::Errors,
            0.9 * scale,
            Some(37),
        ),
        evidence(
            "api",
            Domain::Metrics,
            Signal::Errors,
            0.95 * scale,
            Some(35),
        ),
        evidence(
            "api",
            Domain::Logs,
            Signal::NewErrorTemplate,
            0.6 * scale,
            Some(35),
        ),
        evidence(
            "api",
            Domain::Traces,
            Signal::TraceOrigin,
            0.7 * scale,
            None,
        ),
        evidence(
            "db",
            Domain::Database,
            Signal::SlowQueries,
            0.45 * scale,
            Some(39),
        ),
    ]
}

/// Engineers' correction of an incident like `misread`: the cause was slow queries in `db`,
/// not `api`.
fn correction(fingerprint: Fingerprint) -> PastCase {
    PastCase {
        incident_id: 12,
        record_id: 34,
        date: Utc.with_ymd_and_hms(2026, 1, 20, 9, 30, 0).unwrap(),
        title: "Checkout 5xx".into(),
        cause: Some(("db".into(), Some(FaultKind::SlowQuery))),
        rejected: vec!["api".into()],
        by: "U123".into(),
        record_kind: RecordKind::Correction,
        trust: 1.0,
        fingerprint,
    }
}

/// The ledger with what `cases` say, as the orchestrator adds it after round 1.
fn with_precedent(ledger: &[Evidence], cases: &[PastCase]) -> Vec<Evidence> {
    let mut all = ledger.to_vec();
    all.extend(recall(&fingerprint(ledger), cases, window()));
    all
}

fn ranked(ledger: &[Evidence]) -> Vec<Hypothesis> {
    rank(ledger, &topology(), Some("web"), page_ms())
}

fn find<'a>(ranking: &'a [Hypothesis], service: &str) -> &'a Hypothesis {
    ranking
        .iter()
        .find(|h| h.service == service)
        .unwrap_or_else(|| panic!("no hypothesis for {service}"))
}

#[test]
fn a_correction_on_a_similar_incident_turns_the_ranking() {
    let present = misread(1.0);
    let before = ranked(&present);
    assert_eq!(before[0].service, "api", "the premise: Cairn is wrong");

    let similar = fingerprint(&misread(0.85));
    let alike = fingerprint(&present).similarity(&similar);
    assert!(alike >= SIMILARITY_THRESHOLD, "{alike}");
    let after = ranked(&with_precedent(&present, &[correction(similar)]));

    let top = &after[0];
    assert_eq!(top.service, "db", "{after:#?}");
    assert_eq!(top.kind, Some(FaultKind::SlowQuery), "the recorded kind");
    let precedent = top
        .supporting
        .iter()
        .find(|e| e.domain == Domain::Precedent)
        .expect("the precedent is shown with the hypothesis");
    assert_eq!(
        (precedent.incident_ref, precedent.record_ref),
        (Some(12), Some(34))
    );
    assert_eq!(
        precedent.reason,
        format!(
            "like incident #12 on 2026-01-20 (\"Checkout 5xx\"), root cause slow_query on db \
             (corrected by @U123); symptoms {:.0}% alike",
            alike * 100.0
        )
    );
    let api = find(&after, "api");
    let against = api
        .contradicting
        .iter()
        .find(|e| e.domain == Domain::Precedent)
        .expect("the rejection is shown against api");
    assert_eq!(against.stance, Stance::Contradicts);
    assert_eq!(
        (against.incident_ref, against.record_ref),
        (Some(12), Some(34))
    );
    assert!(
        against
            .reason
            .starts_with("rejected as the cause of similar incident #12 on 2026-01-20 (\"Checkout 5xx\") by @U123"),
        "{}",
        against.reason
    );
    assert!(
        api.confidence.get() < find(&before, "api").confidence.get(),
        "a rejection lowers confidence"
    );
}

#[test]
fn a_retracted_record_no_longer_counts() {
    let present = misread(1.0);
    let before = ranked(&present);
    let corrected = ranked(&with_precedent(
        &present,
        &[correction(fingerprint(&misread(0.85)))],
    ));
    assert_ne!(corrected, before);
    // Retracting the record means the caller stops passing it.
    assert_eq!(ranked(&with_precedent(&present, &[])), before);
}

#[test]
fn an_unrelated_past_incident_changes_nothing() {
    let present = misread(1.0);
    let elsewhere = fingerprint(&[
        evidence("billing", Domain::Metrics, Signal::Errors, 0.9, Some(10)),
        evidence(
            "ledger-db",
            Domain::Infrastructure,
            Signal::DiskFull,
            0.9,
            Some(8),
        ),
    ]);
    let case = correction(elsewhere);
    assert!(recall(
        &fingerprint(&present),
        std::slice::from_ref(&case),
        window()
    )
    .is_empty());
    assert_eq!(ranked(&with_precedent(&present, &[case])), ranked(&present));
}

#[test]
fn precedent_alone_raises_a_lead_not_a_claim() {
    let present = misread(1.0);
    let case = PastCase {
        cause: Some(("other".into(), None)),
        rejected: Vec::new(),
        ..correction(fingerprint(&present))
    };
    let after = ranked(&with_precedent(&present, &[case]));
    let other = find(&after, "other");
    assert!(
        other.confidence.get() > 0.0 && other.confidence.get() <= 0.4,
        "{}",
        other.confidence
    );
    assert_eq!(after[0].service, "api", "the present still leads");
    assert!(other.supporting[0]
        .reason
        .contains("root cause in other (corrected by @U123)"));
}

#[test]
fn of_several_similar_incidents_the_strongest_counts_not_the_sum() {
    let present = misread(1.0);
    let strong = correction(fingerprint(&present));
    let weaker = PastCase {
        incident_id: 7,
        record_id: 8,
        trust: 0.6,
        ..strong.clone()
    };
    let fp = fingerprint(&present);
    let both = recall(&fp, &[weaker.clone(), strong.clone()], window());
    assert_eq!(both, recall(&fp, &[strong], window()));
    assert!(both.iter().all(|e| e.record_ref == Some(34)));
    // A record trusted less says less.
    let db = |cases: &[PastCase]| {
        find(&ranked(&with_precedent(&present, cases)), "db")
            .confidence
            .get()
    };
    assert!(db(&[weaker]) < db(&[correction(fp)]));
}

#[test]
fn of_the_services_a_lost_node_took_down_the_rejected_one_is_not_blamed() {
    // Both lost pods; by default the one nearest the page is blamed.
    let lost_node = vec![
        evidence("web", Domain::Metrics, Signal::Errors, 0.9, Some(36)),
        evidence(
            "api",
            Domain::Infrastructure,
            Signal::NodeFailure,
            0.85,
            Some(35),
        ),
        evidence("api", Domain::Metrics, Signal::Errors, 0.9, Some(35)),
        evidence(
            "db",
            Domain::Infrastructure,
            Signal::NodeFailure,
            0.85,
            Some(35),
        ),
        evidence("db", Domain::Logs, Signal::Errors, 0.6, Some(35)),
    ];
    let before = ranked(&lost_node);
    assert_eq!(
        (before[0].service.as_str(), before[0].kind),
        ("api", Some(FaultKind::NodeFailure))
    );
    let case = PastCase {
        cause: Some(("db".into(), Some(FaultKind::NodeFailure))),
        ..correction(fingerprint(&lost_node))
    };
    let after = ranked(&with_precedent(&lost_node, &[case]));
    assert_eq!(
        (after[0].service.as_str(), after[0].kind),
        ("db", Some(FaultKind::NodeFailure)),
        "{after:#?}"
    );
    assert!(find(&after, "api").confidence < after[0].confidence);
}

#[test]
fn fingerprints_weigh_causes_over_the_symptoms_victims_share() {
    let fp = fingerprint(&[
        evidence("api", Domain::Metrics, Signal::Errors, 0.9, None),
        evidence("db", Domain::Database, Signal::SlowQueries, 0.9, None),
        evidence("db", Domain::Changes, Signal::Deploy, 0.9, None),
        evidence("api", Domain::Metrics, Signal::Latency, 0.2, None),
        Evidence {
            template: Some("timeout calling <*>".into()),
            ..evidence("api", Domain::Logs, Signal::NewErrorTemplate, 0.6, None)
        },
    ]);
    let keys: Vec<&str> = fp.features.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "api|errors",
            "api|new_error_template",
            "db|slow_queries",
            "tmpl:timeout calling <*>"
        ],
        "changes and weak findings stay out"
    );
    assert!(fp.features["db|slow_queries"] > 2.0 * fp.features["api|errors"]);
    // Same victims, another cause beneath them: not the same incident.
    let other_cause = fingerprint(&[
        evidence("api", Domain::Metrics, Signal::Errors, 0.9, None),
        evidence("db", Domain::Infrastructure, Signal::DiskFull, 0.9, None),
    ]);
    assert!(fp.similarity(&other_cause) < SIMILARITY_THRESHOLD);
}

// Real incidents: scenarios of the library, simulated and investigated as `cairn eval` does.

fn scenario(name: &str, seed_offset: u64) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.yaml"));
    let mut scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    scenario.seed += seed_offset;
    scenario
}

/// Simulates `scenario`, investigates its page with `precedents`, and returns the finding
/// with the progress events.
async fn investigate_scenario(
    scenario: &Scenario,
    precedents: Vec<PastCase>,
) -> (Finding, Vec<Progress>) {
    let simulation = cairn_simulator::simulate(scenario).expect("the scenario pages");
    let bundle = Bundle::from_files(&simulation.files).expect("the bundle reads");
    let alert = bundle.alert().expect("a page").clone();
    let incident = Incident::from_alert(&alert, bundle.meta().window);
    let (progress, mut rx) = ProgressSink::channel();
    let finding = investigate_with(
        &incident,
        &bundle,
        Options {
            progress,
            precedents: Arc::new(precedents),
            ..Options::default()
        },
    )
    .await
    .expect("the investigation runs");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (finding, events)
}

#[tokio::test]
async fn similar_incidents_are_alike_and_other_faults_are_not() {
    let (loss, _) =
        investigate_scenario(&scenario("marketplace-inventory-network-loss", 0), vec![]).await;
    let (loss_again, _) = investigate_scenario(
        &scenario("marketplace-inventory-network-loss", 7919),
        vec![],
    )
    .await;
    let (deploy, _) =
        investigate_scenario(&scenario("marketplace-pricing-bad-deploy", 0), vec![]).await;
    let (elsewhere, _) =
        investigate_scenario(&scenario("saas-session-cache-failure", 0), vec![]).await;
    let same = loss.fingerprint.similarity(&loss_again.fingerprint);
    let same_topology = loss.fingerprint.similarity(&deploy.fingerprint);
    let other_topology = loss.fingerprint.similarity(&elsewhere.fingerprint);
    assert!(
        same >= SIMILARITY_THRESHOLD,
        "same fault, another seed: {same}"
    );
    assert!(
        same_topology < SIMILARITY_THRESHOLD,
        "same topology, another fault: {same_topology}"
    );
    assert!(other_topology < SIMILARITY_THRESHOLD, "{other_topology}");
    assert!(
        loss.fingerprint
            .features
            .keys()
            .any(|k| k.starts_with("inventory|")),
        "{:?}",
        loss.fingerprint
    );
}

/// A seed at which Cairn blames `trips` for slow statements in `trips-db` beneath it.
const MISREAD_SEED: u64 = 8 * 7919;

/// Engineers' correction of an earlier occurrence of that trouble.
fn trips_correction(fingerprint: Fingerprint) -> PastCase {
    PastCase {
        incident_id: 41,
        record_id: 97,
        date: Utc.with_ymd_and_hms(2026, 1, 20, 9, 30, 0).unwrap(),
        title: "Rider API latency".into(),
        cause: Some(("trips-db".into(), Some(FaultKind::SlowQuery))),
        rejected: vec!["trips".into()],
        by: "U123".into(),
        record_kind: RecordKind::Correction,
        trust: 1.0,
        fingerprint,
    }
}

#[tokio::test]
async fn a_correction_of_a_similar_incident_fixes_the_next_investigation() {
    let present = scenario("ride-trips-db-slow-query", MISREAD_SEED);
    let (wrong, _) = investigate_scenario(&present, vec![]).await;
    assert_eq!(
        wrong.ranking[0].service, "trips",
        "the premise: Cairn is wrong"
    );
    // The same fault on another day (another seed), which engineers settled.
    let (earlier, _) = investigate_scenario(&scenario("ride-trips-db-slow-query", 0), vec![]).await;
    let alike = wrong.fingerprint.similarity(&earlier.fingerprint);
    assert!(alike >= SIMILARITY_THRESHOLD, "{alike}");

    let (learned, events) =
        investigate_scenario(&present, vec![trips_correction(earlier.fingerprint)]).await;
    let top = &learned.ranking[0];
    assert_eq!(top.service, "trips-db", "{:#?}", learned.ranking);
    assert_eq!(top.kind, Some(FaultKind::SlowQuery));
    let precedent = top
        .supporting
        .iter()
        .find(|e| e.domain == Domain::Precedent)
        .expect("the precedent is shown");
    assert_eq!(
        (precedent.incident_ref, precedent.record_ref),
        (Some(41), Some(97))
    );
    assert!(
        precedent.reason.starts_with(
            "like incident #41 on 2026-01-20 (\"Rider API latency\"), root cause slow_query on trips-db (corrected by @U123); symptoms"
        ),
        "{}",
        precedent.reason
    );
    let trips = learned
        .ranking
        .iter()
        .find(|h| h.service == "trips")
        .expect("trips is still a hypothesis");
    assert!(trips
        .contradicting
        .iter()
        .any(|e| e.stance == Stance::Contradicts && e.record_ref == Some(97)));
    // The step reports like every agent.
    let of_precedent = |e: &Progress| match e {
        Progress::AgentStarted { agent }
        | Progress::AgentFinished { agent, .. }
        | Progress::EvidenceFound { agent, .. } => *agent == "precedent",
        _ => false,
    };
    let reported: Vec<&Progress> = events.iter().filter(|e| of_precedent(e)).collect();
    assert!(matches!(
        reported.first(),
        Some(Progress::AgentStarted { .. })
    ));
    assert!(reported.iter().any(|e| matches!(
        e,
        Progress::EvidenceFound { service, .. } if service == "trips-db"
    )));
    assert!(matches!(
        reported.last(),
        Some(Progress::AgentFinished {
            evidence: 2,
            error: None,
            ..
        })
    ));
    assert!(learned
        .checked
        .iter()
        .any(|c| c == "precedent: 2 finding(s)"));
}

#[tokio::test]
async fn without_the_record_or_with_an_unrelated_one_nothing_changes() {
    let present = scenario("ride-trips-db-slow-query", MISREAD_SEED);
    let (alone, _) = investigate_scenario(&present, vec![]).await;
    // Another fault on the same topology, settled by engineers.
    let (other, _) =
        investigate_scenario(&scenario("ride-location-cache-failure", 0), vec![]).await;
    let alike = alone.fingerprint.similarity(&other.fingerprint);
    assert!(alike < SIMILARITY_THRESHOLD, "{alike}");
    let unrelated = PastCase {
        cause: Some(("location-cache".into(), Some(FaultKind::CacheFailure))),
        rejected: vec!["trips-db".into()],
        ..trips_correction(other.fingerprint)
    };
    let (with_unrelated, events) = investigate_scenario(&present, vec![unrelated]).await;
    assert_eq!(with_unrelated.ranking, alone.ranking);
    assert_eq!(with_unrelated.fingerprint, alone.fingerprint);
    assert!(events.iter().any(|e| matches!(
        e,
        Progress::AgentFinished {
            agent: "precedent",
            evidence: 0,
            ..
        }
    )));
}
