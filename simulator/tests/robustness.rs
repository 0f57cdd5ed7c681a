//! Scenarios nobody here wrote: random topologies, any fault kind on any target, noise —
//! the simulator never panics and its bundle always reads back.

use cairn_connectors::{Bundle, FaultKind};
use cairn_simulator::{simulate, Scenario};
use proptest::prelude::*;

const KINDS: [&str; 6] = [
    "gateway", "service", "database", "cache", "queue", "external",
];

fn scenario(
    kinds: &[usize],
    edges: &[(usize, usize)],
    fault: usize,
    target: usize,
    noise: usize,
    seed: u64,
    step: u64,
) -> String {
    let n = kinds.len();
    let mut topology = String::new();
    for (i, kind) in kinds.iter().enumerate() {
        // Edges only from lower to higher index: no cycles.
        let deps: Vec<String> = edges
            .iter()
            .filter(|(a, b)| *a % n == i && *b % n > i)
            .map(|(_, b)| format!("s{}", b % n))
            .collect();
        let mut deps: Vec<String> = deps
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let consumes: Vec<String> = deps
            .iter()
            .filter(|d| kinds[d[1..].parse::<usize>().unwrap()] == 4)
            .take(1)
            .cloned()
            .collect();
        deps.sort();
        topology.push_str(&format!(
            "  - {{name: s{i}, kind: {}, depends_on: [{}], consumes: [{}]}}\n",
            KINDS[*kind],
            deps.join(", "),
            consumes.join(", ")
        ));
    }
    let fault = FaultKind::ALL[fault % 16];
    let noise_kind = FaultKind::ALL[noise % 16];
    format!(
        "version: 1\nname: random\nseed: {seed}\nduration: 40m\nstep: {step}s\ntopology:\n{topology}load: {{rps: 120, diurnal: 0.4}}\nfaults:\n  - {{kind: {fault}, target: s{}, at: 20m}}\nnoise:\n  - {{kind: {noise_kind}, target: s{}, at: 10m, duration: 3m, severity: 0.3}}\n  - {{kind: deploy, target: s0, at: 18m}}\nalert: {{service: s0, signal: error_rate, threshold: 0.05, for: 1m, at: 22m}}\nexpect: {{root_cause: {{service: s{}, kind: {fault}}}}}\n",
        target % n,
        (target + 1) % n,
        target % n
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_scenario_simulates_and_reads_back(
        kinds in proptest::collection::vec(0usize..6, 1..9),
        edges in proptest::collection::vec((0usize..9, 0usize..9), 0..14),
        fault in 0usize..16,
        target in 0usize..9,
        noise in 0usize..16,
        seed in any::<u64>(),
        step in prop::sample::select(vec![10u64, 15, 30, 60]),
    ) {
        let text = scenario(&kinds, &edges, fault, target, noise, seed, step);
        let parsed = Scenario::parse(&text, "random.yaml");
        prop_assert!(parsed.is_ok(), "{:?}\n{text}", parsed.err());
        let simulation = simulate(&parsed.unwrap());
        prop_assert!(simulation.is_ok(), "{:?}\n{text}", simulation.err());
        let files = simulation.unwrap().files;
        let bundle = Bundle::from_files(&files);
        prop_assert!(bundle.is_ok(), "{:?}\n{text}", bundle.err());
    }
}
