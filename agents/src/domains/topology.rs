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
            let troubled_deps: Vec<&str> = deps
                .iter()
                .copied()
                .filter(|d| troubled.contains(d))
                .collect();
            if troubled_deps.is_empty() {
                out.push(Evidence {
                    observed: *hops as f64,
                    ..Evidence::new(Domain::Topology, Signal::Anomaly, suspect.clone(), "topology".to_owned(), format!("dependencies of {suspect} with evidence of trouble, on the path from {entry}"), TimeWindow { start: cx.cut(), end: cx.window().end }, 0.35, if *hops == 0 {
                        format!("{suspect} is the paged service and none of its {} dependencies is in trouble", deps.len())
                    } else {
                        format!("{hops} hop(s) below {entry}, and none of its {} dependencies is in trouble: trouble starts here", deps.len())
                    })
                });
            }
        }
        Ok(out)
    }
}
