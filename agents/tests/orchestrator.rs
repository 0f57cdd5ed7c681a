//! The orchestrator: ranking rules, abstention, budgets and the progress stream, on a small
//! in-memory production.

use async_trait::async_trait;
use chrono::Duration;

use cairn_agents::investigation::rank;
use cairn_agents::{
    investigate_with, Budget, Domain, Evidence, Incident, Options, Progress, ProgressSink, Signal,
    Verdict,
};
use cairn_connectors::{
    DataSource, Sample, Series, SeriesSelector, SourceError, TimeWindow, Topology,
};

mod common;

use common::{page_ms, t0, topology};

/// Evidence as the ranking tests build it, with an observed value.
fn evidence(
    service: &str,
    domain: Domain,
    signal: Signal,
    score: f64,
    onset_min: Option<i64>,
) -> Evidence {
    Evidence {
        observed: 1.0,
        ..common::evidence(service, domain, signal, score, onset_min)
    }
}

#[test]
fn a_caller_in_trouble_after_its_dependency_is_a_victim() {
    let ledger = vec![
        evidence("web", Domain::Metrics, Signal::Errors, 0.95, Some(37)),
        evidence("web", Domain::Network, Signal::Errors, 0.8, Some(37)),
        evidence("api", Domain::Metrics, Signal::Errors, 0.9, Some(36)),
        evidence("api", Domain::Logs, Signal::NewErrorTemplate, 0.6, Some(36)),
    ];
    let ranked = rank(&ledger, &topology(), Some("web"), page_ms());
    assert_eq!(ranked[0].service, "api");
    let web = ranked.iter().find(|h| h.service == "web").unwrap();
    assert!(
        !web.contradicting.is_empty(),
        "the victim carries the evidence against it"
    );
    assert!(web.confidence.get() < ranked[0].confidence.get());
}

#[test]
fn a_dependency_that_only_slowed_does_not_explain_a_caller_that_fails() {
    // web fails fast; api, which web calls, got somewhat slower at the same time. Slowness
    // does not turn into web's errors: the failures start in web.
    let ledger = vec![
        evidence("web", Domain::Metrics, Signal::Errors, 0.7, Some(37)),
        evidence("api", Domain::Metrics, Signal::Latency, 0.6, Some(36)),
    ];
    let ranked = rank(&ledger, &topology(), Some("web"), page_ms());
    let web = ranked.iter().find(|h| h.service == "web").unwrap();
    assert!(web.contradicting.is_empty(), "{:?}", web.contradicting);
    assert_eq!(ranked[0].service, "web");

    // Timeouts are slowness logged as errors: a slow dependency explains them.
    let ledger = vec![
        Evidence {
            template: Some("Read timed out calling api (timeout <n> ms)".into()),
            ..evidence("web", Domain::Logs, Signal::NewErrorTemplate, 0.7, Some(37))
        },
        evidence("api", Domain::Metrics, Signal::Latency, 0.6, Some(36)),
    ];
    let ranked = rank(&ledger, &topology(), Some("web"), page_ms());
    let web = ranked.iter().find(|h| h.service == "web").unwrap();
    assert!(!web.contradicting.is_empty(), "timeouts on a slow api");

    // The same caller is a victim when its dependency fails too.
    let ledger = vec![
        evidence("web", Domain::Metrics, Signal::Errors, 0.7, Some(37)),
        evidence("api", Domain::Metrics, Signal::Errors, 0.6, Some(36)),
    ];
    let ranked = rank(&ledger, &topology(), Some("web"), page_ms());
    let web = ranked.iter().find(|h| h.service == "web").unwrap();
    assert!(!web.contradicting.is_empty());
    assert_eq!(ranked[0].service, "api");
}

#[test]
fn a_suspect_stays_a_victim_unless_its_cause_is_clearly_stronger_than_every_dependency_s() {
    // api shows a cause of its own; of its dependencies, db is in more trouble and
    // cache shows a cause as strong as api's. A tie at the top is no reason to keep api.
    let topology = Topology {
        services: vec![
            cairn_connectors::ServiceNode {
                name: "api".into(),
                kind: Some("service".into()),
                team: None,
                runtime: None,
                depends_on: vec!["db".into(), "cache".into()],
            },
            cairn_connectors::ServiceNode {
                name: "db".into(),
                kind: Some("database".into()),
                team: None,
                runtime: None,
                depends_on: vec![],
            },
            cairn_connectors::ServiceNode {
                name: "cache".into(),
                kind: Some("cache".into()),
                team: None,
                runtime: None,
                depends_on: vec![],
            },
        ],
    };
    let ledger = vec![
        evidence(
            "api",
            Domain::Database,
            Signal::PoolExhaustion,
            0.99,
            Some(37),
        ),
        evidence("api", Domain::Metrics, Signal::Errors, 0.99, Some(37)),
        evidence("db", Domain::Metrics, Signal::Latency, 0.99, Some(36)),
        evidence("db", Domain::Logs, Signal::Errors, 0.9, Some(36)),
        evidence(
            "cache",
            Domain::Database,
            Signal::CacheMisses,
            0.97,
            Some(35),
        ),
    ];
    let ranked = rank(&ledger, &topology, Some("api"), page_ms());
    let api = ranked.iter().find(|h| h.service == "api").unwrap();
    assert!(
        api.confidence.get() < 0.6,
        "a 0.99 cause against a 0.97 one is a tie: {}",
        api.confidence.get()
    );
}

#[test]
fn a_change_counts_only_when_trouble_follows_it() {
    let aligned = vec![
        evidence("api", Domain::Changes, Signal::Deploy, 0.8, Some(34)),
        evidence("api", Domain::Metrics, Signal::Errors, 0.9, Some(35)),
        evidence("api", Domain::Logs, Signal::NewErrorTemplate, 0.6, Some(35)),
    ];
    let ranked = rank(&aligned, &topology(), Some("web"), page_ms());
    assert_eq!(ranked[0].kind, Some(cairn_agents::FaultKind::BadDeploy));

    let unrelated = vec![evidence(
        "other",
        Domain::Changes,
        Signal::Deploy,
        0.8,
        Some(34),
    )];
    let ranked = rank(&unrelated, &topology(), Some("web"), page_ms());
    assert!(
        ranked[0].confidence.get() < 0.5,
        "a deploy to a healthy service is no claim: {}",
        ranked[0].confidence
    );
}

#[test]
fn weak_witnesses_do_not_make_a_claim() {
    let ledger = vec![
        evidence("db", Domain::Metrics, Signal::Latency, 0.35, None),
        evidence("db", Domain::Logs, Signal::Latency, 0.3, None),
        evidence("db", Domain::Traces, Signal::TraceOrigin, 0.3, None),
        evidence("db", Domain::Network, Signal::Latency, 0.3, None),
    ];
    let ranked = rank(&ledger, &topology(), Some("web"), page_ms());
    assert!(ranked[0].confidence.get() < 0.5, "{}", ranked[0].confidence);
}

#[test]
fn agreement_across_domains_builds_confidence() {
    let one = rank(
        &[evidence(
            "db",
            Domain::Database,
            Signal::SlowQueries,
            0.8,
            Some(35),
        )],
        &topology(),
        None,
        page_ms(),
    );
    let two = rank(
        &[
            evidence("db", Domain::Database, Signal::SlowQueries, 0.8, Some(35)),
            evidence("db", Domain::Logs, Signal::SlowQueries, 0.7, Some(35)),
        ],
        &topology(),
        None,
        page_ms(),
    );
    assert!(two[0].confidence.get() > one[0].confidence.get());
    assert_eq!(two[0].kind, Some(cairn_agents::FaultKind::SlowQuery));
}

/// A production where `api`'s error counter jumps at minute 35.
struct Production;

#[async_trait]
impl DataSource for Production {
    fn name(&self) -> &str {
        "fake"
    }
    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        Ok(Some(topology()))
    }
    async fn series(&self, query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        let counter = |service: &str, code: &str, per_min: &dyn Fn(i64) -> f64| {
            let mut total = 0.0;
            let samples = (0..60)
                .map(|m| {
                    total += per_min(m);
                    Sample {
                        ts_ms: (t0() + Duration::minutes(m)).timestamp_millis(),
                        value: total,
                    }
                })
                .collect();
            Series {
                metric: "http_requests_total".into(),
                labels: [
                    ("service".to_string(), service.to_string()),
                    ("code".to_string(), code.to_string()),
                ]
                .into(),
                samples,
            }
        };
        let all = vec![
            counter("api", "200", &|m| 6000.0 + 50.0 * ((m * 7) % 5) as f64),
            counter("api", "500", &|m| {
                if m >= 35 {
                    1200.0
                } else {
                    6.0 + (m % 3) as f64
                }
            }),
            counter("web", "200", &|m| 6000.0 + 40.0 * ((m * 3) % 4) as f64),
            counter("web", "500", &|m| {
                if m >= 35 {
                    1100.0
                } else {
                    5.0 + (m % 2) as f64
                }
            }),
        ];
        Ok(all
            .into_iter()
            .filter(|s| query.matches(&s.metric, &s.labels))
            .collect())
    }
}

fn incident() -> Incident {
    Incident {
        title: "web errors".into(),
        onset: t0() + Duration::minutes(38),
        window: TimeWindow {
            start: t0(),
            end: t0() + Duration::minutes(59),
        },
        entry_service: Some("web".into()),
    }
}

#[tokio::test]
async fn agents_run_and_report_progress_in_order() {
    let (sink, mut rx) = ProgressSink::channel();
    let finding = investigate_with(
        &incident(),
        &Production,
        Options {
            progress: sink,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(finding.ranking[0].service, "api");
    assert_eq!(finding.verdict, Verdict::RootCauseFound);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let started = events
        .iter()
        .filter(|e| matches!(e, Progress::AgentStarted { .. }))
        .count();
    let finished = events
        .iter()
        .filter(|e| matches!(e, Progress::AgentFinished { .. }))
        .count();
    assert_eq!(started, 9, "every domain agent runs in round 1");
    assert!(finished >= 9);
    assert!(matches!(
        events.first(),
        Some(Progress::RoundStarted { round: 1 })
    ));
    assert!(matches!(events.last(), Some(Progress::Done { .. })));
}

#[tokio::test]
async fn a_spent_budget_stops_queries_without_failing_the_investigation() {
    let budget = Budget {
        max_queries: 3,
        ..Budget::default()
    };
    let (sink, mut rx) = ProgressSink::channel();
    let finding = investigate_with(
        &incident(),
        &Production,
        Options {
            budget,
            progress: sink,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert!(finding.queries <= 3, "{} queries", finding.queries);
    let mut refused = 0;
    while let Ok(e) = rx.try_recv() {
        if let Progress::AgentFinished { error: Some(e), .. } = e {
            assert!(e.contains("budget"), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 0, "agents past the budget say so");
}

#[test]
fn a_page_whose_own_service_shows_nothing_gets_no_confident_cause() {
    let ledger = vec![
        evidence("db", Domain::Database, Signal::SlowQueries, 0.9, Some(35)),
        evidence("db", Domain::Logs, Signal::SlowQueries, 0.8, Some(35)),
    ];
    let quiet_page = rank(&ledger, &topology(), Some("web"), page_ms());
    assert!(
        quiet_page[0].confidence.get() < 0.5,
        "{}",
        quiet_page[0].confidence
    );
    let mut loud = ledger.clone();
    loud.push(evidence(
        "web",
        Domain::Metrics,
        Signal::Latency,
        0.8,
        Some(36),
    ));
    let loud_page = rank(&loud, &topology(), Some("web"), page_ms());
    assert_eq!(loud_page[0].service, "db");
    assert!(loud_page[0].confidence.get() >= 0.5);
}
