//! The orchestrator: dispatches the domain agents concurrently within a budget, keeps the
//! shared ledger, and runs rounds — a survey, then tests of the leading hypotheses — until
//! the ranking is stable or the budget is spent. It abstains when nothing beats the noise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use cairn_connectors::{DataSource, SourceError, TimeWindow, Topology};
use cairn_knowledge::Fingerprint;

use crate::budget::{Budget, Metered};
use crate::domains::precedent::{self, PastCase};
use crate::domains::topology::Symptoms;
use crate::domains::{self, Agent, Context, ONSET_LEAD_MS};
use crate::evidence::{Domain, Evidence, Ledger, Signal, Stance};
use crate::hypothesis::{Confidence, FaultKind, Hypothesis, HypothesisStatus};
use crate::incident::Incident;
use crate::progress::{Progress, ProgressSink};

/// A hypothesis at or above this confidence is a claim; below it, Cairn abstains.
pub const CONFIDENCE_THRESHOLD: f64 = 0.5;
/// Suspects examined in the later rounds.
const SUSPECTS: usize = 6;
/// Evidence items kept per hypothesis.
const EVIDENCE_PER_HYPOTHESIS: usize = 6;
/// How much an engineer-confirmed cause on a similar incident adds on top of present
/// evidence (times the precedent's strength): enough to settle a near-tie, not to overturn
/// a clear present answer.
const PRECEDENT_TIE_BREAK: f64 = 0.05;

/// The most a service with nothing but precedent can reach: history alone is a lead to
/// check, not a claim.
const PRECEDENT_ALONE: f64 = 0.4;
/// How much of a rejection's strength comes off a service's confidence (a rejection as
/// strong as it gets halves it).
const REJECTION_WEIGHT: f64 = 0.5;

/// How much stronger a suspect's own cause must be than its dependencies' to stay the
/// suspect when they are in trouble too (scores saturate near 1, so a hair is a tie).
const CLEARLY_STRONGER: f64 = 0.05;

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
    /// Rounds run (1 = the survey only).
    pub rounds: u32,
    /// The symptoms found, from the ledger after the last round ([`precedent::fingerprint`]):
    /// what a later incident is compared with.
    pub fingerprint: Fingerprint,
}

/// How to run an investigation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub budget: Budget,
    pub progress: ProgressSink,
    /// Past incidents and what engineers recorded about them (none by default); those whose
    /// symptoms resemble this incident's weigh in on the ranking.
    pub precedents: Arc<Vec<PastCase>>,
}

/// Investigates `incident` against `sources` with the default budget and no progress stream.
pub async fn investigate(
    incident: &Incident,
    sources: &dyn DataSource,
) -> Result<Finding, InvestigationError> {
    investigate_with(incident, sources, Options::default()).await
}

/// Investigates `incident` against `sources`.
pub async fn investigate_with(
    incident: &Incident,
    sources: &dyn DataSource,
    options: Options,
) -> Result<Finding, InvestigationError> {
    let metered = Metered::new(sources, options.budget);
    let progress = &options.progress;
    let topology = metered.topology().await?.unwrap_or_default();
    let deadline = Instant::now() + metered.time_left();
    let cx = Context {
        incident,
        source: &metered,
        topology,
        cut_ms: incident.onset.timestamp_millis() - ONSET_LEAD_MS,
        deadline,
    };
    let agents = domains::all();
    let ledger = Ledger::default();

    progress.send(Progress::RoundStarted { round: 1 });
    let mut per_agent: BTreeMap<&'static str, usize> = BTreeMap::new();
    run_round(&agents, &cx, &ledger, progress, &mut per_agent, None).await;
    recall_precedents(
        incident.window,
        &options.precedents,
        &ledger,
        progress,
        &mut per_agent,
    );
    let mut ranking = rank(
        &ledger.snapshot(),
        &cx.topology,
        incident.entry_service.as_deref(),
        incident.onset.timestamp_millis(),
    );
    announce(progress, &[], &ranking);

    let mut rounds = 1;
    while rounds <= options.budget.max_rounds && !metered.exhausted() {
        rounds += 1;
        progress.send(Progress::RoundStarted { round: rounds });
        let suspects: Vec<String> = ranking
            .iter()
            .take(SUSPECTS)
            .map(|h| h.service.clone())
            .collect();
        let snapshot = ledger.snapshot();
        let before = ledger.len();
        run_round(
            &agents,
            &cx,
            &ledger,
            progress,
            &mut per_agent,
            Some((&suspects, &snapshot)),
        )
        .await;
        let previous = ranking;
        ranking = rank(
            &ledger.snapshot(),
            &cx.topology,
            incident.entry_service.as_deref(),
            incident.onset.timestamp_millis(),
        );
        announce(progress, &previous, &ranking);
        let top = |r: &[Hypothesis]| {
            r.iter()
                .take(3)
                .map(|h| h.service.clone())
                .collect::<Vec<_>>()
        };
        if ledger.len() == before || top(&previous) == top(&ranking) {
            break;
        }
    }

    let verdict = if ranking
        .first()
        .is_some_and(|h| h.confidence.get() >= CONFIDENCE_THRESHOLD)
    {
        Verdict::RootCauseFound
    } else {
        Verdict::NoRootCauseFound
    };
    let mut checked: Vec<String> = per_agent
        .iter()
        .map(|(agent, n)| format!("{agent}: {n} finding(s)"))
        .collect();
    checked.insert(
        0,
        format!(
            "{} services in the topology; {} queries, {} records read",
            cx.topology.services.len(),
            metered.queries(),
            metered.records()
        ),
    );
    progress.send(Progress::Done {
        verdict,
        queries: metered.queries(),
    });
    Ok(Finding {
        verdict,
        ranking,
        checked,
        queries: metered.queries(),
        rounds,
        fingerprint: precedent::fingerprint(&ledger.snapshot()),
    })
}

/// The precedent step, between round 1 and the first ranking: the symptoms surveyed so far
/// against the past cases. What the alike ones recorded joins the ledger, so a recalled cause
/// is examined in the later rounds like any other suspect.
fn recall_precedents(
    window: TimeWindow,
    cases: &[PastCase],
    ledger: &Ledger,
    progress: &ProgressSink,
    per_agent: &mut BTreeMap<&'static str, usize>,
) {
    let started = Instant::now();
    progress.send(Progress::AgentStarted {
        agent: precedent::NAME,
    });
    let found = precedent::recall(&precedent::fingerprint(&ledger.snapshot()), cases, window);
    report(progress, precedent::NAME, &found, started.elapsed(), None);
    *per_agent.entry(precedent::NAME).or_default() += found.len();
    ledger.record(found);
}

/// Runs every agent at once (survey, or examine when `examine` is given), each within the
/// time left, and records what they find.
async fn run_round(
    agents: &[Box<dyn Agent>],
    cx: &Context<'_>,
    ledger: &Ledger,
    progress: &ProgressSink,
    per_agent: &mut BTreeMap<&'static str, usize>,
    examine: Option<(&[String], &[Evidence])>,
) {
    let time_left = cx_time_left(cx);
    let runs = agents.iter().map(|agent| async move {
        let started = Instant::now();
        if examine.is_none() {
            progress.send(Progress::AgentStarted {
                agent: agent.name(),
            });
        }
        let work = async {
            match examine {
                None => agent.survey(cx).await,
                Some((suspects, evidence)) => agent.examine(cx, suspects, evidence).await,
            }
        };
        let result = match tokio::time::timeout(time_left, work).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("ran out of time".to_owned()),
        };
        (agent.name(), started.elapsed(), result)
    });
    for (name, elapsed, result) in join_all(runs).await {
        let (found, error) = match result {
            Ok(found) => (found, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        if examine.is_none() || !found.is_empty() {
            report(progress, name, &found, elapsed, error);
        }
        *per_agent.entry(name).or_default() += found.len();
        ledger.record(found);
    }
}

/// Reports what an agent found (the clear findings, up to five) and that it finished.
fn report(
    progress: &ProgressSink,
    agent: &'static str,
    found: &[Evidence],
    elapsed: Duration,
    error: Option<String>,
) {
    for e in found.iter().filter(|e| e.score >= 0.3).take(5) {
        progress.send(Progress::EvidenceFound {
            agent,
            service: e.service.clone(),
            reason: e.reason.clone(),
        });
    }
    progress.send(Progress::AgentFinished {
        agent,
        evidence: found.len(),
        elapsed_ms: elapsed.as_millis() as u64,
        error,
    });
}

fn cx_time_left(cx: &Context<'_>) -> Duration {
    cx.deadline.saturating_duration_since(Instant::now())
}

/// Reports new and changed hypotheses.
fn announce(progress: &ProgressSink, previous: &[Hypothesis], current: &[Hypothesis]) {
    for h in current.iter().take(5) {
        match previous.iter().find(|p| p.service == h.service) {
            None => progress.send(Progress::HypothesisRaised {
                service: h.service.clone(),
                kind: h.kind,
                confidence: h.confidence.get(),
            }),
            Some(p)
                if (p.confidence.get() - h.confidence.get()).abs() > 0.02 || p.kind != h.kind =>
            {
                progress.send(Progress::HypothesisUpdated {
                    service: h.service.clone(),
                    kind: h.kind,
                    confidence: h.confidence.get(),
                    why: h
                        .contradicting
                        .first()
                        .map_or_else(|| "more evidence".to_owned(), |e| e.reason.clone()),
                })
            }
            Some(_) => {}
        }
    }
}

/// Signals that name a cause in the service itself, as opposed to symptoms it may inherit.
pub(crate) fn is_cause(signal: Signal) -> bool {
    !matches!(
        signal,
        Signal::Errors
            | Signal::Latency
            | Signal::Anomaly
            | Signal::NewErrorTemplate
            | Signal::Restart
            | Signal::Load
            | Signal::Deploy
            | Signal::ConfigChange
            | Signal::TraceOrigin
    )
}

/// The fault kind the strongest cause signal names.
fn kind_of(evidence: &[&Evidence], change_aligned: bool, load_origin: bool) -> Option<FaultKind> {
    let mut best: Option<(f64, FaultKind)> = None;
    let mut consider = |score: f64, kind: FaultKind| {
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, kind));
        }
    };
    for e in evidence {
        let kind = match e.signal {
            Signal::Deploy if change_aligned => Some(FaultKind::BadDeploy),
            Signal::ConfigChange if change_aligned => Some(FaultKind::ConfigChange),
            Signal::OomKill | Signal::MemoryGrowth => Some(FaultKind::MemoryLeak),
            Signal::CpuSaturation => Some(FaultKind::CpuSaturation),
            Signal::PoolExhaustion => Some(FaultKind::DbPoolExhaustion),
            Signal::SlowQueries => Some(FaultKind::SlowQuery),
            Signal::ExternalLatency => Some(FaultKind::DependencyLatency),
            Signal::PacketLoss => Some(FaultKind::NetworkLoss),
            Signal::DnsFailure => Some(FaultKind::DnsFailure),
            Signal::TlsFailure => Some(FaultKind::CertExpired),
            Signal::DiskFull => Some(FaultKind::DiskFull),
            Signal::NodeFailure => Some(FaultKind::NodeFailure),
            Signal::CacheMisses => Some(FaultKind::CacheFailure),
            Signal::RateLimited => Some(FaultKind::RateLimited),
            Signal::ConsumerLag => Some(FaultKind::QueueBacklog),
            Signal::Load if load_origin => Some(FaultKind::TrafficSpike),
            // What engineers recorded for a similar incident.
            Signal::Precedent => e.names_kind,
            _ => None,
        };
        if let Some(kind) = kind {
            // A change that lines up with the trouble outranks what it caused; memory
            // growth and CPU seen only as generic metric moves are weaker than named causes.
            let weight = match (e.signal, e.domain) {
                (Signal::Deploy | Signal::ConfigChange, _) => 1.3,
                (Signal::MemoryGrowth | Signal::CpuSaturation, Domain::Metrics) => 0.5,
                (Signal::OomKill, Domain::Logs) => 0.7,
                // A lost node explains the throttling and errors of what ran on it.
                (Signal::NodeFailure, _) => 1.5,
                _ => 1.0,
            };
            consider(e.score * weight, kind);
        }
    }
    best.map(|(_, k)| k)
}

/// Turns the ledger into ranked hypotheses, one per service.
///
/// Per service, each domain contributes its strongest item and domains combine as
/// independent witnesses (noisy-or), so one weak signal stays weak and agreement across
/// domains builds confidence. Then the tests of the later rounds: a change counts only when
/// the service it touched is in trouble; a service whose dependency is in trouble that
/// started no later is a likely victim; traffic is blamed on where it enters.
///
/// Precedent is one more domain: the cause engineers recorded for a similar incident is a
/// witness, but alone (nothing in the present on that service) it reaches only a moderate
/// confidence, and it does not change who is whose victim. A service engineers rejected for
/// a similar incident loses confidence in proportion to the rejection's strength, and ranks
/// below a service confirmed for an incident at least as similar that shows trouble now.
pub fn rank(
    evidence: &[Evidence],
    topology: &Topology,
    entry: Option<&str>,
    page_ms: i64,
) -> Vec<Hypothesis> {
    let mut by_service: BTreeMap<&str, Vec<&Evidence>> = BTreeMap::new();
    // Rejections for similar incidents, the strongest per service.
    let mut rejections: BTreeMap<&str, &Evidence> = BTreeMap::new();
    for e in evidence.iter().filter(|e| e.score > 0.0) {
        match e.stance {
            Stance::Supports => by_service.entry(e.service.as_str()).or_default().push(e),
            Stance::Contradicts => {
                let strongest = rejections.entry(e.service.as_str()).or_insert(e);
                if e.score > strongest.score {
                    *strongest = e;
                }
            }
        }
    }
    let callers_of =
        |s: &str| -> Vec<String> { topology.callers(s).map(|n| n.name.clone()).collect() };
    let has_load = |s: &str| {
        by_service.get(s).is_some_and(|ev| {
            ev.iter()
                .any(|e| e.signal == Signal::Load && e.score >= 0.3)
        })
    };

    struct Assessed<'a> {
        service: &'a str,
        score: f64,
        /// The score from the present alone (without precedent).
        present: f64,
        /// The strongest precedent for it.
        confirmed: f64,
        cause: f64,
        onset: Option<i64>,
        change_aligned: bool,
        load_origin: bool,
        evidence: Vec<&'a Evidence>,
    }
    let mut assessed: Vec<Assessed<'_>> = Vec::new();
    for (&service, items) in &by_service {
        let trouble = items
            .iter()
            .filter(|e| {
                !matches!(
                    e.domain,
                    Domain::Changes | Domain::Topology | Domain::Precedent
                )
            })
            .map(|e| e.score)
            .fold(0.0, f64::max);
        let onset = items
            .iter()
            .filter(|e| e.domain != Domain::Changes)
            .filter_map(|e| e.onset_ms)
            .min();
        // Does a change line up: the service is in trouble, and not since long before it.
        let change_at = items
            .iter()
            .filter(|e| e.domain == Domain::Changes)
            .filter_map(|e| e.onset_ms)
            .max();
        // A bad change shows within minutes; trouble that began long after it is something else.
        let trouble_onset = onset.unwrap_or(page_ms);
        let change_aligned = trouble >= 0.3
            && change_at.is_some_and(|c| {
                trouble_onset >= c - 3 * 60_000 && trouble_onset <= c + 8 * 60_000
            });
        let load_origin = has_load(service) && !callers_of(service).iter().any(|c| has_load(c));
        let mut best: BTreeMap<Domain, f64> = BTreeMap::new();
        for e in items {
            let mut score = e.score;
            if e.domain == Domain::Changes && !change_aligned {
                score *= 0.2;
            }
            if e.signal == Signal::Load && !load_origin {
                score *= 0.3;
            }
            let weight = if e.domain == Domain::Topology {
                0.6
            } else {
                1.0
            };
            let slot = best.entry(e.domain).or_default();
            *slot = slot.max(score * weight);
        }
        let confirmed = best.get(&Domain::Precedent).copied().unwrap_or(0.0);
        let mut present_best = best.clone();
        present_best.remove(&Domain::Precedent);
        let present = combine_witnesses(&present_best);
        let mut score = combine_witnesses(&best);
        if present_best.is_empty() {
            score = score.min(PRECEDENT_ALONE);
        }
        let cause = items
            .iter()
            .filter(|e| {
                e.domain != Domain::Precedent
                    && (is_cause(e.signal)
                        || (e.domain == Domain::Changes && change_aligned)
                        || (e.signal == Signal::Load && load_origin))
            })
            .map(|e| e.score)
            .fold(0.0, f64::max);
        assessed.push(Assessed {
            service,
            score,
            present,
            confirmed,
            cause,
            onset,
            change_aligned,
            load_origin,
            evidence: items.clone(),
        });
    }

    // Victims: a dependency (up to three hops down) in as much trouble, no later. Trouble
    // is the present's: history does not make anyone a victim.
    let scores: BTreeMap<&str, (f64, f64, Option<i64>)> = assessed
        .iter()
        .map(|a| (a.service, (a.present, a.cause, a.onset)))
        .collect();
    let symptoms: BTreeMap<&str, Symptoms> = assessed
        .iter()
        .map(|a| {
            (
                a.service,
                Symptoms::of(a.evidence.iter().copied(), a.service),
            )
        })
        .collect();
    let mut hypotheses = Vec::new();
    let mut causes = Vec::new();
    let mut standing: Vec<Standing> = Vec::new();
    for a in &assessed {
        let mut score = a.score;
        let mut contradicting = Vec::new();
        let mut frontier: Vec<(&str, usize)> = topology
            .service(a.service)
            .map(|n| n.depends_on.iter().map(|d| (d.as_str(), 1)).collect())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut worst: Option<(&str, f64)> = None;
        // The strongest cause of its own among the dependencies that could explain it.
        let mut deps_cause: f64 = 0.0;
        while let Some((dep, hops)) = frontier.pop() {
            if !seen.insert(dep) {
                continue;
            }
            if let Some(&(dep_score, dep_cause, dep_onset)) = scores.get(dep) {
                // Onset order decides, unless the dependency has a strong cause of its own and
                // the suspect none (a backlog or a leak builds up slowly; its onset shows late).
                let earlier = match (dep_onset, a.onset) {
                    (Some(d), Some(s)) => d <= s + 2 * 60_000,
                    _ => true,
                } || dep_cause >= 0.8 && a.cause < 0.5;
                let explains = (dep_score >= 0.6 * a.present
                    || dep_cause >= 0.5 && dep_cause >= a.cause)
                    && symptoms[dep].could_explain(&symptoms[a.service]);
                if earlier && explains {
                    deps_cause = deps_cause.max(dep_cause);
                    if worst.is_none_or(|(_, w)| dep_score > w) {
                        worst = Some((dep, dep_score));
                    }
                }
            }
            if hops < 3 {
                if let Some(n) = topology.service(dep) {
                    frontier.extend(n.depends_on.iter().map(|d| (d.as_str(), hops + 1)));
                }
            }
        }
        if let Some((dep, dep_score)) = worst {
            if !(a.load_origin && a.cause >= 0.5) {
                let factor = if a.cause >= 0.5 && a.cause > deps_cause + CLEARLY_STRONGER {
                    0.85
                } else {
                    0.45
                };
                score *= factor;
                contradicting.push(Evidence {
                    observed: dep_score,
                    baseline: a.present,
                    ..Evidence::new(Domain::Topology, Signal::Anomaly, a.service.to_owned(), "topology".to_owned(), format!("dependencies of {} in trouble", a.service), a.evidence[0].window, 1.0 - factor, format!("its dependency {dep} is in trouble too, and no later: {} may be a victim", a.service))
                });
            }
        }
        // A cache that stopped absorbing reads explains the load on what sits beside it.
        if !by_service
            .get(a.service)
            .is_some_and(|ev| ev.iter().any(|e| e.signal == Signal::CacheMisses))
        {
            let siblings: BTreeSet<String> = topology
                .callers(a.service)
                .flat_map(|c| c.depends_on.iter().cloned())
                .filter(|s| s != a.service)
                .collect();
            let cache = siblings.iter().find(|sib| {
                by_service.get(sib.as_str()).is_some_and(|ev| {
                    ev.iter()
                        .any(|e| e.signal == Signal::CacheMisses && e.score >= 0.5)
                })
            });
            if let Some(cache) = cache {
                score *= 0.45;
                contradicting.push(Evidence::new(Domain::Topology, Signal::CacheMisses, a.service.to_owned(), "topology".to_owned(), format!("caches beside {}", a.service), a.evidence[0].window, 0.55, format!("{cache}, used by the same callers, stopped absorbing reads: {} takes the load", a.service)));
            }
        }
        // A node that only stands for the way into something else (a load balancer, a client
        // with no dependencies of its own) is rarely the cause of what lies behind it.
        if let Some(node) = topology.service(a.service) {
            if node.depends_on.is_empty()
                && matches!(node.kind.as_deref(), Some("gateway" | "client"))
                && !a.load_origin
            {
                score *= 0.9;
            }
        }
        // Nearer the paged service is likelier to explain the page (a tie-breaker).
        if let (Some(entry), false) = (entry, topology.services.is_empty()) {
            if let Some(hops) = crate::domains::topology::downstream(topology, entry).get(a.service)
            {
                score *= 1.0 - 0.02 * (*hops as f64).min(5.0);
            }
        }
        // The paged service gets a little credit for being paged only when it has causes of its own.
        if entry == Some(a.service) && a.cause >= 0.5 {
            score = (score * 1.05).min(1.0);
        }
        // Engineers rejected it as the cause of a similar incident.
        let rejected = rejections.get(a.service).map_or(0.0, |r| r.score.min(1.0));
        if let Some(r) = rejections.get(a.service) {
            score *= 1.0 - REJECTION_WEIGHT * rejected;
            contradicting.push((*r).clone());
        }
        let mut supporting: Vec<Evidence> = a.evidence.iter().map(|e| (*e).clone()).collect();
        supporting.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then_with(|| x.domain.cmp(&y.domain))
        });
        // Keep the strongest, but at least one per domain, and always what engineers recorded.
        let mut kept: Vec<Evidence> = Vec::new();
        for e in &supporting {
            let new_domain = !kept.iter().any(|k| k.domain == e.domain);
            if kept.len() < EVIDENCE_PER_HYPOTHESIS && (kept.len() < 3 || new_domain)
                || e.domain == Domain::Precedent && new_domain
            {
                kept.push(e.clone());
            }
        }
        let kind = kind_of(&a.evidence, a.change_aligned, a.load_origin);
        // The evidence that names the kind leads.
        if let Some(i) = kept
            .iter()
            .position(|e| kind.is_some() && kind_of(&[e], a.change_aligned, a.load_origin) == kind)
        {
            let lead = kept.remove(i);
            kept.insert(0, lead);
        }
        // Present trouble plus the engineers' word on a similar incident: the word settles
        // near-ties the present alone cannot (the clear-witness cap and the distance from
        // the page would otherwise leave it no room to count). Applied last, so it is not
        // scaled away.
        if a.confirmed > 0.0 && a.present > 0.0 {
            // Never lowers a score that is already higher.
            score = score.max((score + PRECEDENT_TIE_BREAK * a.confirmed).min(0.995));
        }
        hypotheses.push(Hypothesis {
            service: a.service.to_owned(),
            kind,
            confidence: Confidence::new(score),
            supporting: kept,
            contradicting,
            status: HypothesisStatus::Open,
        });
        causes.push(a.cause);
        standing.push(Standing {
            confirmed: a.confirmed,
            rejected,
            present: a.evidence.iter().any(|e| e.domain != Domain::Precedent),
        });
    }
    // An engineer's correction holds: a service rejected for a similar incident ranks below
    // one confirmed for an incident at least as similar that shows trouble now. (A service
    // more rejected than confirmed never counts as confirmed, so nothing capped here caps
    // another.)
    let caps: Vec<Option<f64>> = standing
        .iter()
        .map(|r| {
            if !r.is_rejected() {
                return None;
            }
            standing
                .iter()
                .zip(&hypotheses)
                .filter(|(c, _)| {
                    c.present
                        && c.is_confirmed()
                        && c.confirmed + 1e-9 >= r.rejected.min(precedent::MOST_SAID)
                })
                .map(|(_, h)| h.confidence.get() - 0.02)
                .reduce(f64::min)
        })
        .collect();
    for (h, cap) in hypotheses.iter_mut().zip(caps) {
        if let Some(cap) = cap.filter(|c| *c < h.confidence.get()) {
            h.confidence = Confidence::new(cap);
        }
    }
    // Ties (confidence saturates) go to the service with the stronger cause of its own.
    let mut order: Vec<usize> = (0..hypotheses.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&hypotheses[i], &hypotheses[j]);
        let key = |h: &Hypothesis| (h.confidence.get() * 100.0).round();
        key(b)
            .total_cmp(&key(a))
            .then_with(|| causes[j].total_cmp(&causes[i]))
            .then_with(|| b.confidence.get().total_cmp(&a.confidence.get()))
            .then_with(|| a.service.cmp(&b.service))
    });
    // A page whose own service shows nothing beyond noise cannot carry a confident cause:
    // whatever moved elsewhere did not move what was paged.
    if let Some(entry) = entry {
        let paged = by_service.get(entry).map_or(0.0, |ev| {
            ev.iter()
                .filter(|e| {
                    !matches!(
                        e.domain,
                        Domain::Changes | Domain::Topology | Domain::Precedent
                    )
                })
                .map(|e| e.score)
                .fold(0.0, f64::max)
        });
        if paged < 0.3 && topology.service(entry).is_some() {
            for h in &mut hypotheses {
                if h.confidence.get() >= CONFIDENCE_THRESHOLD {
                    h.confidence = Confidence::new(CONFIDENCE_THRESHOLD - 0.01);
                }
            }
        }
    }
    let standing: Vec<Standing> = order.iter().map(|&i| standing[i]).collect();
    let mut slots: Vec<Option<Hypothesis>> = hypotheses.into_iter().map(Some).collect();
    let mut hypotheses: Vec<Hypothesis> =
        order.into_iter().filter_map(|i| slots[i].take()).collect();
    // A failed node takes several services down at once; of those, the one engineers
    // confirmed for a similar incident, else the one nearest the paged service, is the one
    // the page is about (never one they rejected).
    if let (Some(entry), Some(top)) = (entry, hypotheses.first()) {
        if top.kind == Some(FaultKind::NodeFailure) {
            let reach = crate::domains::topology::downstream(topology, entry);
            let lost: Vec<usize> = (0..hypotheses.len())
                .filter(|&i| {
                    !standing[i].is_rejected()
                        && hypotheses[i]
                            .supporting
                            .iter()
                            .any(|e| e.signal == Signal::NodeFailure)
                })
                .collect();
            let confirmed = lost
                .iter()
                .copied()
                .filter(|&i| standing[i].is_confirmed())
                .max_by(|&i, &j| {
                    standing[i]
                        .confirmed
                        .total_cmp(&standing[j].confirmed)
                        .then(j.cmp(&i))
                });
            // The paged service itself only when nothing else it calls lost pods nearby.
            let hops = |i: usize| {
                reach
                    .get(&hypotheses[i].service)
                    .copied()
                    .unwrap_or(usize::MAX)
            };
            let below = lost
                .iter()
                .copied()
                .filter(|&i| (1..=2).contains(&hops(i)))
                .min_by_key(|&i| (hops(i), i));
            let best = confirmed
                .or(below)
                .or_else(|| lost.iter().copied().min_by_key(|&i| (hops(i), i)));
            if let Some(best) = best.filter(|&b| b != 0) {
                let mut chosen = hypotheses.remove(best);
                chosen.kind = Some(FaultKind::NodeFailure);
                chosen.confidence =
                    Confidence::new(chosen.confidence.get().max(hypotheses[0].confidence.get()));
                // What made it look like a victim no longer holds; what engineers said does.
                chosen
                    .contradicting
                    .retain(|e| e.domain == Domain::Precedent);
                hypotheses.insert(0, chosen);
            }
        }
    }
    hypotheses
}

/// What engineers said about a service for similar incidents, beside what the present shows.
#[derive(Debug, Clone, Copy)]
struct Standing {
    /// The strongest precedent naming it the cause (0 when none).
    confirmed: f64,
    /// The strongest rejection of it (0 when none).
    rejected: f64,
    /// Whether the present investigation found anything on it.
    present: bool,
}

impl Standing {
    fn is_confirmed(self) -> bool {
        self.confirmed > self.rejected
    }

    fn is_rejected(self) -> bool {
        self.rejected > self.confirmed
    }
}

/// Combines the strongest score of each domain into one (noisy-or with diminishing weights,
/// a discount for a lone witness, capped near the clearest witness).
fn combine_witnesses(best: &BTreeMap<Domain, f64>) -> f64 {
    // Witnesses are not fully independent (one blip shows in several domains): the
    // strongest counts in full, the next less, the rest little.
    let mut ordered: Vec<f64> = best.values().copied().collect();
    ordered.sort_by(|a, b| b.total_cmp(a));
    let weights = [1.0, 0.8, 0.5, 0.3];
    let mut score = 1.0
        - ordered.iter().enumerate().fold(1.0, |acc, (i, s)| {
            acc * (1.0 - s.clamp(0.0, 0.99) * weights[i.min(3)])
        });
    let witnesses = best
        .iter()
        .filter(|(d, s)| **d != Domain::Topology && **s >= 0.25)
        .count();
    if witnesses <= 1 {
        score *= 0.75;
    }
    // Weak signals, however many, do not make a claim: one witness must be clear.
    let strongest = best
        .iter()
        .filter(|(d, _)| **d != Domain::Topology)
        .map(|(_, s)| *s)
        .fold(0.0, f64::max);
    score.min(strongest + 0.1)
}
