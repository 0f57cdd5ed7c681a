//! The investigation engine judged the way the issue asks, through the binary: the scenario
//! library ranked, kinds named, false alarms abstained, every claim backed by two domains;
//! and `cairn demo`'s plain output as users see it.

use crate::{cairn, run, stderr, stdout, workspace};

#[test]
fn the_scenario_library_is_investigated_to_target() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = run(cairn(dir.path())
        .args(["eval", "--scenarios"])
        .arg(workspace().join("scenarios"))
        .arg("--json")
        .arg(&json));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let (mut faults, mut top1, mut kinds, mut false_alarms, mut abstained) = (0, 0, 0, 0, 0);
    for case in report["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let top = &case["ranking"][0];
        match &case["expected"] {
            serde_json::Value::String(s) if s == "no_issue" => {
                false_alarms += 1;
                if case["verdict"] == "no_root_cause_found" {
                    abstained += 1;
                }
            }
            expected => {
                faults += 1;
                if case["hit"] == 1 {
                    top1 += 1;
                    if top["kind"] == expected["root_cause"]["kind"] {
                        kinds += 1;
                    }
                }
                let evidence = top["evidence"].as_array().map_or(0, Vec::len);
                let domains = top["domains"].as_array().map_or(0, Vec::len);
                assert!(
                    evidence >= 2 && domains >= 2,
                    "{name}: top hypothesis cites {evidence} items from {domains} domains"
                );
            }
        }
    }
    let ac1 = top1 as f64 / faults as f64;
    assert!(ac1 >= 0.95, "AC@1 {ac1:.2} over {faults} faults");
    assert!(
        kinds as f64 >= 0.85 * top1 as f64,
        "kind right in {kinds} of {top1}"
    );
    assert_eq!(abstained, false_alarms, "every false alarm abstains");
}

#[test]
fn demo_plain_output() {
    let dir = tempfile::tempdir().unwrap();
    // Its throwaway database goes to the temporary directory.
    let tmp = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path())
        .env("TMPDIR", tmp.path())
        .args(["demo", "--plain"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\u{1b}'), "no colour codes in plain output");
    insta::assert_snapshot!(text);
    for left in [dir.path(), tmp.path()] {
        let files: Vec<_> = std::fs::read_dir(left)
            .unwrap()
            .map(|f| f.unwrap().file_name())
            .collect();
        assert!(
            files.is_empty(),
            "the demo leaves nothing behind: {files:?}"
        );
    }
}

#[test]
fn demo_names_unknown_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).args(["demo", "--scenario", "no-such-thing"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no scenario `no-such-thing`"),
        "{}",
        stderr(&out)
    );
}
