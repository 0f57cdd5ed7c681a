//! `cairn simulate` and `cairn eval --scenarios`, driven through the binary; the metrics it
//! writes are loaded into a real Prometheus TSDB with `promtool`.

use std::process::Command;

use crate::{cairn, run, stderr, stdout, workspace};

fn scenario(name: &str) -> std::path::PathBuf {
    workspace().join("scenarios").join(format!("{name}.yaml"))
}

#[test]
fn simulate_writes_a_bundle_the_reader_accepts_and_refuses_foreign_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    let result = run(cairn(dir.path())
        .args(["simulate", "--scenario"])
        .arg(scenario("shop-checkout-bad-deploy"))
        .arg("--out")
        .arg(&out));
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stdout(&result).contains("the page fires at"),
        "{}",
        stdout(&result)
    );
    for file in [
        "bundle.yaml",
        "topology.yaml",
        "alert.json",
        "metrics.om",
        "logs.jsonl",
        "traces.jsonl",
        "changes.jsonl",
        "events.jsonl",
        "expect.yaml",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let bundle = cairn_connectors::Bundle::open(&out).expect("the bundle reader accepts it");
    assert!(bundle.counts().series > 100 && bundle.counts().logs > 1000);

    // Simulating again over the same bundle replaces it; a directory holding anything else
    // is refused and left alone.
    let again = run(cairn(dir.path())
        .args(["simulate", "--scenario"])
        .arg(scenario("shop-checkout-bad-deploy"))
        .arg("--out")
        .arg(&out));
    assert!(again.status.success(), "{}", stderr(&again));
    let foreign = dir.path().join("notes");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("todo.txt"), "keep me").unwrap();
    let refused = run(cairn(dir.path())
        .args(["simulate", "--scenario"])
        .arg(scenario("shop-checkout-bad-deploy"))
        .arg("--out")
        .arg(&foreign));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not empty"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("todo.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn simulate_names_bad_scenarios_and_silent_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(scenario("shop-checkout-bad-deploy"))
        .unwrap()
        .replacen("duration:", "duraton:", 1);
    std::fs::write(&bad, text).unwrap();
    let out = run(cairn(dir.path())
        .args(["simulate", "--scenario"])
        .arg(&bad)
        .args(["--out", "x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("bad.yaml: duraton: unknown key `duraton` (did you mean `duration`?)"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("x").exists(),
        "nothing is written for a bad scenario"
    );

    let quiet = dir.path().join("quiet.yaml");
    let text = std::fs::read_to_string(scenario("shop-checkout-bad-deploy"))
        .unwrap()
        .replacen("threshold: 0.02", "threshold: 0.9", 1);
    std::fs::write(&quiet, text).unwrap();
    let out = run(cairn(dir.path())
        .args(["simulate", "--scenario"])
        .arg(&quiet)
        .args(["--out", "x"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the alert on storefront (error_rate above 0.9 for 2m) never fires"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn eval_scenarios_simulates_in_memory_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    for name in ["shop-checkout-bad-deploy", "shop-false-alarm-latency-rule"] {
        std::fs::copy(scenario(name), scenarios.join(format!("{name}.yaml"))).unwrap();
    }
    let json = dir.path().join("report.json");
    let out = run(cairn(dir.path())
        .args(["eval", "--scenarios"])
        .arg(&scenarios)
        .arg("--json")
        .arg(&json));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cases: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case"].as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        ["shop-checkout-bad-deploy", "shop-false-alarm-latency-rule"]
    );
    assert_eq!(
        report["cases"][0]["expected"]["root_cause"]["service"],
        "checkout"
    );
    assert_eq!(report["summary"]["no_issue_cases"], 1);
    // Nothing was written next to the scenarios: they were simulated in memory.
    assert_eq!(std::fs::read_dir(&scenarios).unwrap().count(), 2);
}

#[test]
fn eval_takes_exactly_one_of_bundles_or_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).arg("eval"));
    assert_eq!(out.status.code(), Some(2));
    let out = run(cairn(dir.path()).args(["eval", "--bundles", ".", "--scenarios", "."]));
    assert_eq!(out.status.code(), Some(2));
}

/// `promtool`, or why it is missing. In CI it must be there (the Debian package
/// `prometheus` provides it), so a missing promtool fails instead of skipping.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var("CI").is_err(),
        "promtool is not installed; CI must install the `prometheus` package"
    );
    eprintln!("skipping: promtool not installed (apt-get install prometheus)");
    None
}

#[test]
fn prometheus_loads_the_simulated_metrics() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let result = run(cairn(dir.path())
        .args(["simulate", "--scenario"])
        .arg(scenario("payments-kafka-ledger-queue-backlog"))
        .arg("--out")
        .arg(&bundle));
    assert!(result.status.success(), "{}", stderr(&result));
    let tsdb = dir.path().join("tsdb");
    let loaded = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(bundle.join("metrics.om"))
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "promtool refused the metrics: {}{}",
        String::from_utf8_lossy(&loaded.stdout),
        String::from_utf8_lossy(&loaded.stderr)
    );
    let blocks = std::fs::read_dir(&tsdb)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").is_file())
        .count();
    assert!(blocks >= 1, "no TSDB block written");
}
