//! Benchmark (not a test): open and investigate every bundle under a directory, one at a
//! time, and report per-case and total wall time and peak memory.
//! `cargo bench -p cairn-bot --bench investigate -- DIR` (default: fixtures/bundles).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

#[tokio::main]
async fn main() {
    let root = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bundles"));
    let cases = cairn_bot::eval::discover(&root);
    let started = Instant::now();
    let mut slowest = (String::new(), 0.0_f64);
    for dir in &cases {
        let case_started = Instant::now();
        let bundle = cairn_connectors::Bundle::open(dir).expect("bundle");
        let opened = case_started.elapsed().as_secs_f64();
        let incident = cairn_agents::Incident::from_alert(
            bundle.alert().expect("alert.json"),
            bundle.meta().window,
        );
        let set = cairn_connectors::SourceSet::new(vec![Arc::new(bundle)]);
        let finding = cairn_agents::investigate(&incident, &set)
            .await
            .expect("investigation");
        let total = case_started.elapsed().as_secs_f64();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{name:<28} open {:>6.0} ms  investigate {:>6.0} ms  total {:>6.0} ms  {} queries",
            opened * 1000.0,
            (total - opened) * 1000.0,
            total * 1000.0,
            finding.queries
        );
        if total > slowest.1 {
            slowest = (name, total);
        }
    }
    println!(
        "{} cases in {:.2} s (one at a time); slowest {} {:.0} ms; peak RSS {}",
        cases.len(),
        started.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1 * 1000.0,
        peak_rss_mb().map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:.0} MB"))
    );
}
