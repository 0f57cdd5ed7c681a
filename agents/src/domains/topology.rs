//! Topology localisation: from the alerting service along dependencies, which suspects are
//! origins and which are victims — by whether a dependency of theirs is in trouble too and
//! whose trouble started first.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use async_trait::async_trait;

use cairn_connectors::{SourceError, TimeWindow, Topology};

use super::{Agent, Context};
use crate::evidence::{Domain, Evidence, Signal};

pub struct TopologyAgent;

/// Services reachable from `from` along `depends_on`, with their hop count.
pub fn downstream(topology: &Topology, from: &str) -> BTreeMap<String, usize> {
    let mut hops = BTreeMap::new();
    let mut queue = VecDeque::from([(from.to_owned(), 0)]);
    while let Some((name, depth)) = queue.pop_front() {
        if hops.contains_key(&name) {
            continue;
        }
        hops.insert(name.clone(), depth);
        if let Some(node) = topology.service(&name) {
            for dep in &node.depends_on {
                queue.push_back((dep.clone(), depth + 1));
            }
        }
    }
    hops
}

/// What a service's present trouble looks like, from the ledger: how strongly it fails, how
/// strongly it is slow, and how strong a cause of its own it shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Symptoms {
    pub errors: f64,
    pub slow: f64,
    pub cause: f64,
}

/// The least a symptom scores to count as trouble.
const TROUBLE: f64 = 0.3;

impl Symptoms {
    /// The symptoms `evidence` shows for `service` (present domains only).
    pub fn of<'a>(evidence: impl IntoIterator<Item = &'a Evidence>, service: &str) -> Self {
        let mut s = Self::default();
        for e in evidence {
            if e.service != service
                || matches!(
                    e.domain,
                    Domain::Topology | Domain::Changes | Domain::Precedent
                )
            {
                continue;
            }
            match e.signal {
                // A timeout is slowness that surfaced as an error.
                Signal::NewErrorTemplate
                    if e.template.as_deref().is_some_and(super::logs::is_timeout) =>
                {
                    s.slow = s.slow.max(e.score)
                }
                Signal::Errors | Signal::NewErrorTemplate => s.errors = s.errors.max(e.score),
                Signal::Latency => s.slow = s.slow.max(e.score),
                signal if crate::investigation::is_cause(signal) => s.cause = s.cause.max(e.score),
                _ => {}
            }
        }
        s
    }

    /// Whether the trouble is mostly failures rather than slowness.
    pub fn error_led(&self) -> bool {
        self.errors >= TROUBLE && self.errors > self.slow + 0.1
    }

    /// Whether trouble like this in a dependency can explain `caller`'s: slowness passes up
    /// as slowness, failures and causes as either. A dependency that only got slower does not
    /// explain a caller that fails while staying fast.
    pub fn could_explain(&self, caller: &Symptoms) -> bool {
        if caller.error_led() {
            self.errors >= TROUBLE || self.cause >= 0.5
        } else {
            true
        }
    }
}

#[async_trait]
impl Agent for TopologyAgent {
    fn name(&self) -> &'static str {
        "topology"
    }

    async fn survey(&self, _cx: &Context<'_>) -> Result<Vec<Evidence>, SourceError> {
        // Localisation needs what the others found: it runs in the later rounds.
        Ok(Vec::new())
    }

    async fn examine(
        &self,
        cx: &Context<'_>,
        suspects: &[String],
        ledger: &[Evidence],
    ) -> Result<Vec<Evidence>, SourceError> {
        let Some(entry) = cx.incident.entry_service.as_deref() else {
            return Ok(Vec::new());
        };
        if cx.topology.services.is_empty() {
            return Ok(Vec::new());
        }
        let reach = downstream(&cx.topology, entry);
        let troubled: BTreeSet<&str> = ledger
            .iter()
            .filter(|e| e.score >= 0.3)
            .map(|e| e.service.as_str())
            .collect();
        let mut out = Vec::new();
        for suspect in suspects {
            let Some(hops) = reach.get(suspect) else {
                continue;
            };
            let own = ledger
                .iter()
                .filter(|e| {
                    &e.service == suspect && !matches!(e.domain, Domain::Topology | Domain::Changes)
                })
                .map(|e| e.score)
                .fold(0.0, f64::max);
            if own < 0.5 {
                continue;
            }
            let deps: Vec<&str> = cx
                .topology
                .service(suspect)
                .map(|n| n.depends_on.iter().map(String::as_str).collect())
                .unwrap_or_default();
            let symptoms = Symptoms::of(ledger, suspect);
            let troubled_deps: Vec<&str> = deps
                .iter()
                .copied()
                .filter(|d| {
                    troubled.contains(d) && Symptoms::of(ledger, d).could_explain(&symptoms)
                })
                .collect();
            if troubled_deps.is_empty() {
                out.push(Evidence {
                    observed: *hops as f64,
                    ..Evidence::new(Domain::Topology, Signal::Anomaly, suspect.clone(), "topology".to_owned(), format!("dependencies of {suspect} with evidence of trouble, on the path from {entry}"), TimeWindow { start: cx.cut(), end: cx.window().end }, 0.35, if *hops == 0 {
                        format!("{suspect} is the paged service and none of its {} dependencies is in trouble that explains its own", deps.len())
                    } else {
                        format!("{hops} hop(s) below {entry}, and none of its {} dependencies is in trouble that explains its own: trouble starts here", deps.len())
                    })
                });
            }
        }
        Ok(out)
    }
}
