//! Benchmark (not a test): simulate a 40-service, 2-hour scenario at a 15 s step and report
//! wall time and peak memory. Run with `cargo bench -p cairn-simulator`.
//!
//! Peak memory is the process's high-water mark (`VmHWM`), so it includes the bundle held
//! in memory, as `cairn simulate` holds it before writing.

use std::path::Path;
use std::time::Instant;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/forty-services.yaml");
    let scenario = cairn_simulator::Scenario::load(&path).expect("benchmark scenario");
    let runs = 5;
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let simulation = cairn_simulator::simulate(&scenario).expect("simulates");
        times.push(started.elapsed().as_secs_f64());
        bytes = simulation.files.iter().map(|(_, c)| c.len()).sum::<usize>();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "simulate {} services, {} s window at {} s: median {:.3} s, min {:.3} s, max {:.3} s over {runs} runs; bundle {:.1} MB; peak RSS {}",
        scenario.topology.len(),
        scenario.duration,
        scenario.step,
        times[runs / 2],
        times[0],
        times[runs - 1],
        bytes as f64 / 1e6,
        peak_rss_mb().map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:.0} MB")),
    );
}
