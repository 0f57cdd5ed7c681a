//! The scenario library in `scenarios/` and the simulator's determinism.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cairn_connectors::FaultKind;
use cairn_simulator::scenario::{Expect, Noise, Scenario};
use cairn_simulator::simulate;

fn library() -> Vec<(PathBuf, Scenario)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            (path, scenario)
        })
        .collect()
}

/// Shortest number of `depends_on` hops from `from` down to `to`.
fn hops(s: &Scenario, from: &str, to: &str) -> Option<usize> {
    let mut frontier = vec![from.to_owned()];
    let mut seen = BTreeSet::new();
    for depth in 0..=s.topology.len() {
        if frontier.iter().any(|n| n == to) {
            return Some(depth);
        }
        let next: Vec<String> = frontier
            .iter()
            .filter(|n| seen.insert((*n).clone()))
            .flat_map(|n| {
                s.node(n)
                    .map(|node| node.depends_on.clone())
                    .unwrap_or_default()
            })
            .collect();
        frontier = next;
    }
    None
}

#[test]
fn every_scenario_parses_simulates_and_pages() {
    for (path, scenario) in library() {
        let stem = path.file_stem().unwrap().to_string_lossy();
        assert_eq!(
            stem,
            scenario.name,
            "{}: file stem and name differ",
            path.display()
        );
        let simulation = simulate(&scenario).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            simulation.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            simulation.warnings
        );
        let alert = simulation.files.get("alert.json").expect("alert");
        let text = String::from_utf8_lossy(alert);
        // The bundle never names the scenario, its faults or its answer outside expect.yaml.
        for (name, content) in simulation.files.iter() {
            if name != "expect.yaml" {
                let content = String::from_utf8_lossy(content);
                assert!(
                    !content.contains(&scenario.name),
                    "{}: {name} names the scenario",
                    path.display()
                );
            }
        }
        assert!(text.contains("\"firing\""));
    }
}

#[test]
fn the_library_covers_every_kind_false_alarms_red_herrings_and_sizes() {
    let library = library();
    assert!(library.len() >= 48, "{} scenarios", library.len());
    let mut topologies: BTreeMap<FaultKind, BTreeSet<Vec<String>>> = BTreeMap::new();
    let (mut false_alarms, mut red_herrings) = (0, 0);
    let mut sizes = BTreeSet::new();
    for (_, s) in &library {
        sizes.insert(s.topology.len());
        let shape: Vec<String> = s.topology.iter().map(|n| n.name.clone()).collect();
        for fault in &s.faults {
            topologies
                .entry(fault.kind)
                .or_default()
                .insert(shape.clone());
        }
        match &s.expect {
            Expect::NoIssue => {
                assert!(
                    s.faults.is_empty(),
                    "{}: a false alarm has no faults",
                    s.name
                );
                false_alarms += 1;
            }
            Expect::RootCause { service, .. } => {
                let onset = s.faults.iter().map(|f| f.at).min().unwrap_or(0);
                let decoy_deploy = s.noise.iter().any(|n| matches!(n, Noise::Deploy { target, at } if target != service && *at <= onset && onset - at <= 15 * 60));
                let far_alert = hops(s, &s.alert.service, service).is_some_and(|h| h >= 2);
                if decoy_deploy || far_alert {
                    red_herrings += 1;
                }
            }
        }
    }
    for kind in FaultKind::ALL {
        let n = topologies.get(&kind).map_or(0, BTreeSet::len);
        assert!(n >= 2, "{kind} appears on {n} topologies");
    }
    assert!(false_alarms >= 6, "{false_alarms} false alarms");
    assert!(red_herrings >= 8, "{red_herrings} with red herrings");
    assert!(
        *sizes.first().unwrap() <= 5 && *sizes.last().unwrap() >= 35,
        "sizes {sizes:?}"
    );
}

#[test]
fn same_seed_same_bytes_other_seed_other_noise() {
    let (_, scenario) = library()
        .into_iter()
        .find(|(_, s)| s.name == "shop-checkout-bad-deploy")
        .expect("scenario");
    let a = simulate(&scenario).unwrap().files;
    let b = simulate(&scenario).unwrap().files;
    assert_eq!(a, b, "same scenario and seed must give identical bytes");
    let mut reseeded = scenario.clone();
    reseeded.seed += 1;
    let c = simulate(&reseeded).unwrap().files;
    for file in ["metrics.om", "logs.jsonl", "traces.jsonl"] {
        assert_ne!(
            a.get(file),
            c.get(file),
            "{file} should change with the seed"
        );
    }
    assert_eq!(a.get("expect.yaml"), c.get("expect.yaml"));
}
