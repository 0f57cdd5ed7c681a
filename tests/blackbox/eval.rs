//! `cairn eval` over the fixture bundles.

use std::path::Path;

use crate::{cairn, fixtures, run, stderr, stdout};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn eval_fixtures_prints_table_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = run(cairn(dir.path())
        .arg("eval")
        .arg("--bundles")
        .arg(fixtures())
        .arg("--json")
        .arg(&json));
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for needle in [
        "case",
        "AC@1",
        "AC@3",
        "AC@5",
        "Avg@5",
        "ob-20220822-052706",
        "all",
    ] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        assert!(case["case"].is_string());
        assert!(case["elapsed_ms"].is_u64());
        assert!(case["queries"].as_u64().is_some_and(|q| q > 0), "{case}");
        let ranking = case["ranking"].as_array().unwrap();
        assert!(
            !ranking.is_empty(),
            "every fixture has anomalies to rank: {case}"
        );
        for r in ranking {
            assert!(r["service"].is_string() && r["kind"].is_string());
            let c = r["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&c));
        }
    }
    let summary = &report["summary"];
    assert_eq!(summary["cases"], 6);
    assert_eq!(summary["scored"], 4);
    assert_eq!(summary["no_issue_cases"], 2);
    for key in ["AC@1", "AC@3", "AC@5", "Avg@5"] {
        let v = summary[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key}={v}");
    }
}

/// The investigation never sees the answer: two copies of one bundle whose `expect.yaml`
/// names different services (or is garbage) produce the same ranking.
#[test]
fn ranking_does_not_depend_on_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("nezha-ob/ob-20220822-052706");
    let answers = [
        "root_cause:\n  service: frontend\n",
        "root_cause:\n  service: cartservice\n",
        "this: [is not: valid",
    ];
    for (i, answer) in answers.iter().enumerate() {
        let case = dir.path().join(format!("cases/copy-{i}"));
        copy_dir(&source, &case);
        std::fs::write(case.join("expect.yaml"), answer).unwrap();
    }
    let json = dir.path().join("out.json");
    let out = run(cairn(dir.path())
        .args(["eval", "--bundles", "cases", "--json"])
        .arg(&json));
    // The garbage answer is a scoring error (exit 1), not an investigation error.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rankings: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["ranking"])
        .collect();
    assert_eq!(rankings.len(), 3);
    assert!(rankings[0].as_array().is_some_and(|r| !r.is_empty()));
    assert_eq!(rankings[0], rankings[1]);
    assert_eq!(rankings[1], rankings[2]);
    assert!(report["cases"][2]["error"]
        .as_str()
        .unwrap()
        .contains("expect.yaml:"));
}

#[test]
fn malformed_bundle_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("cases/broken");
    copy_dir(
        &fixtures().join("petshop-low_traffic/ps-low-20230419-0216"),
        &case,
    );
    std::fs::remove_file(case.join("metrics.om.gz")).ok();
    std::fs::write(
        case.join("metrics.om"),
        "# TYPE x gauge\nx{service=\"a\"} 1 100\nx{service=\"a\"} oops 160\n# EOF\n",
    )
    .unwrap();
    let out = run(cairn(dir.path()).args(["eval", "--bundles", "cases"]));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("metrics.om:3:"), "{text}");
}

#[test]
fn eval_without_bundles_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).args(["eval", "--bundles", "."]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no bundles"), "{}", stderr(&out));
    let out = run(cairn(dir.path()).args(["eval", "--bundles", "missing"]));
    assert_eq!(out.status.code(), Some(2));
}

/// Learning, measured the way `cairn eval --learn` reports it: a similar incident Cairn
/// gets wrong on its own is right once the first one was settled by an engineer, and the
/// unrelated cases do not move.
#[test]
fn learning_fixes_the_similar_incident_and_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    let root = crate::workspace();
    for (from, to) in [
        ("tests/learning/ride-trips-db-slow-query.yaml", "ride.yaml"),
        ("scenarios/shop-checkout-bad-deploy.yaml", "shop.yaml"),
        ("scenarios/bank-cards-bad-deploy.yaml", "bank.yaml"),
    ] {
        std::fs::copy(root.join(from), cases.join(to)).unwrap();
    }
    let json = dir.path().join("learn.json");
    let out = run(cairn(dir.path())
        .args(["eval", "--learn", "--scenarios"])
        .arg(&cases)
        .arg("--json")
        .arg(&json));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let s = &report["summary"];
    assert_eq!(s["cases"], 3, "{report}");
    assert_eq!(
        s["others_changed"], 0,
        "unrelated knowledge changed nothing: {report}"
    );
    let ride = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "ride")
        .unwrap();
    assert_eq!(ride["recorded"], "confirmation");
    assert_eq!(
        ride["paired_before"], "trips",
        "without knowledge the twin is misread: {ride}"
    );
    assert_eq!(
        ride["paired_after"], "trips-db",
        "with it, the settled cause ranks first: {ride}"
    );
    assert!(
        stdout(&out).contains("without knowledge, 1.00 with it"),
        "{}",
        stdout(&out)
    );
}
