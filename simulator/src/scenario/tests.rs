use proptest::prelude::*;

use super::*;

const VALID: &str = r#"
version: 1
name: frontend-errors-evening
seed: 42
duration: 90m
step: 15s
topology:
  - {name: frontend, kind: gateway, depends_on: [checkout, catalog]}
  - {name: checkout, kind: service, depends_on: [payments, orders-db, cart-cache]}
  - {name: payments, kind: service, depends_on: [stripe]}
  - {name: stripe, kind: external}
  - {name: orders-db, kind: database}
  - {name: cart-cache, kind: cache}
  - {name: catalog}
load: {rps: 400, diurnal: 0.3}
faults:
  - kind: bad_deploy
    target: checkout
    at: 60m
    params: {version: v2.14.0, error_rate: 0.12, latency_ms: 250}
noise:
  - {kind: deploy, target: catalog, at: 55m}
  - {kind: cpu_saturation, target: frontend, at: 20m, duration: 3m, severity: 0.3}
alert: {service: frontend, signal: error_rate, threshold: 0.02, for: 2m}
expect: {root_cause: {service: checkout, kind: bad_deploy}}
"#;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "s.yaml")
}

/// The error for `VALID` with `from` replaced by `to`.
fn error_after(from: &str, to: &str) -> ScenarioError {
    assert!(VALID.contains(from), "{from}");
    parse(&VALID.replacen(from, to, 1)).expect_err("should be refused")
}

#[test]
fn the_spec_example_parses_with_defaults() {
    let s = parse(VALID).unwrap();
    assert_eq!((s.duration, s.step, s.seed), (5400, 15, 42));
    assert_eq!(
        s.node("catalog").unwrap().kind,
        NodeKind::Service,
        "kind defaults to service"
    );
    assert!(s.node("catalog").unwrap().depends_on.is_empty());
    assert_eq!(
        s.faults[0].duration, None,
        "a fault lasts to the end by default"
    );
    assert_eq!(
        s.faults[0].params.get("version"),
        Some(&Param::Text("v2.14.0".into()))
    );
    assert_eq!(
        s.noise[0],
        Noise::Deploy {
            target: "catalog".into(),
            at: 3300
        }
    );
    let Noise::Fault(blip) = &s.noise[1] else {
        panic!()
    };
    assert_eq!((blip.severity, blip.duration), (0.3, Some(180)));
    assert_eq!(s.alert.for_s, 120);
    assert_eq!(
        s.expect,
        Expect::RootCause {
            service: "checkout".into(),
            kind: Some(FaultKind::BadDeploy)
        }
    );
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let e = error_after("for: 2m}", "for: 2m, thresold: 3}");
    assert_eq!(e.path, "alert.thresold");
    assert!(e.message.contains("unknown key `thresold`"), "{e}");
    let e = error_after("params: {version", "parms: {version");
    assert_eq!(e.path, "faults[0].parms");
    assert!(e.message.contains("did you mean `params`"), "{e}");
    let e = error_after("{name: catalog}", "{name: catalog, depends: [x]}");
    assert_eq!(e.path, "topology[6].depends");
    assert_eq!(
        e.to_string(),
        format!("s.yaml: topology[6].depends: {}", e.message)
    );
}

#[test]
fn required_keys_are_named() {
    let e = error_after("seed: 42\n", "");
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("seed", "required key is missing")
    );
    let e = error_after(
        "expect: {root_cause: {service: checkout, kind: bad_deploy}}",
        "expect: {}",
    );
    assert_eq!(e.path, "expect");
}

#[test]
fn durations_are_integers_with_a_unit() {
    assert_eq!(parse_duration("90m"), Some(5400));
    assert_eq!(parse_duration("2h"), Some(7200));
    assert_eq!(parse_duration("15s"), Some(15));
    for bad in ["1h30m", "1.5h", "0m", "-5m", "m", "90", "90 m", "10d", ""] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
    let e = error_after("duration: 90m", "duration: 1h30m");
    assert_eq!(e.path, "duration");
    assert!(
        e.message.contains("positive integer followed by s, m or h"),
        "{e}"
    );
    let e = error_after("step: 15s", "step: 7s");
    assert!(e.message.contains("must divide"), "{e}");
}

#[test]
fn times_lie_inside_the_window() {
    let e = error_after("at: 60m\n", "at: 95m\n");
    assert_eq!(e.path, "faults[0].at");
    let e = error_after("duration: 3m, severity", "duration: 80m, severity");
    assert_eq!(e.path, "noise[1].duration");
    assert!(e.message.contains("ends after"), "{e}");
}

#[test]
fn names_must_be_declared() {
    for (from, to, path) in [
        (
            "depends_on: [stripe]",
            "depends_on: [strype]",
            "topology[2].depends_on[0]",
        ),
        ("target: checkout", "target: checkuot", "faults[0].target"),
        (
            "{kind: deploy, target: catalog",
            "{kind: deploy, target: catalogue",
            "noise[0].target",
        ),
        (
            "alert: {service: frontend",
            "alert: {service: front",
            "alert.service",
        ),
        (
            "root_cause: {service: checkout",
            "root_cause: {service: chk",
            "expect.root_cause.service",
        ),
    ] {
        let e = error_after(from, to);
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains("not declared in topology"), "{e}");
    }
}

#[test]
fn dependency_cycles_are_refused() {
    let e = error_after(
        "{name: stripe, kind: external}",
        "{name: stripe, kind: external, depends_on: [checkout]}",
    );
    assert_eq!(e.path, "topology");
    assert!(
        e.message.contains("cycle")
            && e.message
                .contains("checkout → payments → stripe → checkout"),
        "{e}"
    );
    let e = error_after("{name: catalog}", "{name: catalog, depends_on: [catalog]}");
    assert!(e.message.contains("depends on itself"), "{e}");
}

#[test]
fn kinds_signals_and_values_are_checked() {
    assert!(error_after("kind: bad_deploy", "kind: bad-deploy")
        .message
        .contains("unknown fault kind"));
    assert!(error_after("signal: error_rate", "signal: errors")
        .message
        .contains("unknown signal"));
    assert!(error_after("threshold: 0.02", "threshold: 2")
        .message
        .contains("ratio"));
    assert!(error_after("severity: 0.3", "severity: 3")
        .message
        .contains("from 0 to 1"));
    assert!(error_after("diurnal: 0.3", "diurnal: 1.3")
        .message
        .contains("from 0 to 1"));
    assert!(error_after(
        "{kind: deploy, target: catalog, at: 55m}",
        "{kind: deploy, target: catalog, at: 55m, severity: 0.2}"
    )
    .message
    .contains("neither"));
    assert!(error_after("version: 1\n", "version: 2\n")
        .message
        .contains("not supported"));
    assert!(error_after("error_rate: 0.12", "error_rate: [1]")
        .message
        .contains("scalars"));
    let e = error_after(
        "{name: cart-cache, kind: cache}",
        "{name: cart-cache, kind: cache, consumes: [orders-db]}",
    );
    assert!(e.message.contains("not a queue"), "{e}");
}

#[test]
fn no_issue_and_forced_alerts_parse() {
    let text = VALID
        .replacen(
            "expect: {root_cause: {service: checkout, kind: bad_deploy}}",
            "expect: {no_issue: true}",
            1,
        )
        .replacen("for: 2m}", "for: 2m, at: 40m}", 1);
    let s = parse(&text).unwrap();
    assert_eq!(s.expect, Expect::NoIssue);
    assert_eq!(s.alert.at, Some(2400));
}

#[test]
fn broken_yaml_names_the_line() {
    let e = parse("version: 1\nname: [\n").unwrap_err();
    assert!(
        e.message.contains("line") && e.message.contains("not valid YAML"),
        "{e}"
    );
}

proptest! {
    #[test]
    fn durations_round_trip(n in 1u64..100_000, unit in prop::sample::select(vec!['s', 'm', 'h'])) {
        let text = format!("{n}{unit}");
        let seconds = parse_duration(&text).unwrap();
        prop_assert_eq!(parse_duration(&format_duration(seconds)), Some(seconds));
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = parse(&text);
        let _ = parse_duration(&text);
    }
}
