//! Cairn's simulated production (`shared/spec/scenario.md`): a scenario file describes a
//! service graph, its load and what goes wrong; [`simulate`] runs a deterministic, seeded
//! model of it and writes the telemetry bundle (`shared/spec/bundle.md`) that production
//! would have left behind.
//!
//! Invariants:
//! - Same scenario and seed → byte-identical bundle. All randomness comes from [`rng`]
//!   streams derived from the seed; nothing reads the clock or iterates a hash map.
//! - Nothing from the scenario's name, faults, noise or expect reaches a file the agents
//!   read; only `expect.yaml` carries the answer.
//! - A fault changes the model, never the files directly: its signals are what the model
//!   does with it, propagated along `depends_on`.

mod alert;
mod emit;
mod faults;
mod model;
mod rng;
pub mod scenario;
mod world;

use cairn_connectors::BundleFiles;

pub use scenario::{Expect, Scenario, ScenarioError};

/// Why a scenario could not be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The alert rule never fires in the window, so there is no page to investigate.
    #[error("the alert on {service} ({signal} {direction} {threshold} for {for_}) never fires in the {window} window (the signal peaked at {peak}); lower the threshold, shorten `for`, or strengthen the fault")]
    AlertNeverFires {
        service: String,
        signal: &'static str,
        direction: &'static str,
        threshold: f64,
        for_: String,
        window: String,
        peak: String,
    },
}

/// A simulated incident: the bundle's files and what the user should know.
#[derive(Debug)]
pub struct Simulation {
    /// Every file of the bundle, `expect.yaml` included.
    pub files: BundleFiles,
    /// Parameters a fault kind ignored, unusual targets…
    pub warnings: Vec<String>,
    /// When the page fired, milliseconds since 1970.
    pub alert_ms: i64,
}

/// The window's start for a seed: a weekday-aligned date in 2026, at an hour the seed picks,
/// so different seeds see different parts of the daily swing.
fn window_start_ms(seed: u64) -> i64 {
    const BASE_MS: i64 = 1_769_990_400_000; // 2026-02-02T00:00:00Z
    let day = (seed % 180) as i64;
    let hour = ((seed / 180) % 24) as i64;
    BASE_MS + (day * 24 + hour) * 3_600_000
}

/// The model run over a scenario's window, before anything is written.
struct Run {
    world: world::World,
    active: faults::Active,
    warnings: Vec<String>,
    tl: model::Timeline,
    start_ms: i64,
}

/// Builds the world, resolves the faults and runs the model.
fn run(scenario: &Scenario) -> Run {
    let mut world = world::World::build(scenario);
    let (active, warnings) = faults::Active::resolve(scenario, &world);
    let start_ms = window_start_ms(scenario.seed);
    let start_hour = ((start_ms / 3_600_000) % 24) as f64;
    let mut tl = model::run(scenario, &mut world, &active, start_hour);
    let mut certs = rng::Rng::stream(scenario.seed, "certs", 0);
    tl.cert_expiry = (0..world.services.len())
        .map(|_| (start_ms / 1000) as f64 + certs.range(20.0, 300.0).round() * 86_400.0)
        .collect();
    tl.retry_after_s = 30;
    for r in &active.list {
        match r.fault.kind {
            cairn_connectors::FaultKind::CertExpired => {
                tl.cert_expiry[r.target] = (start_ms / 1000) as f64 + r.start
            }
            cairn_connectors::FaultKind::RateLimited => {
                tl.retry_after_s =
                    faults::number(&r.fault.params, "retry_after_s", 30.0).max(1.0) as u64
            }
            _ => {}
        }
    }
    Run {
        world,
        active,
        warnings,
        tl,
        start_ms,
    }
}

/// Runs `scenario` and returns the bundle it produces.
pub fn simulate(scenario: &Scenario) -> Result<Simulation, SimulateError> {
    let Run {
        world,
        active,
        mut warnings,
        tl,
        start_ms,
    } = run(scenario);
    let rule = &scenario.alert;
    let fired = alert::evaluate(&world, &tl, rule).ok_or_else(|| {
        let peak = (0..tl.steps)
            .map(|k| alert::signal(&world, &tl, rule, k))
            .fold(None, |acc: Option<f64>, v| {
                Some(match acc {
                    None => v,
                    Some(a) if rule.signal == scenario::Signal::Availability => a.min(v),
                    Some(a) => a.max(v),
                })
            })
            .unwrap_or(0.0);
        SimulateError::AlertNeverFires {
            service: rule.service.clone(),
            signal: rule.signal.as_str(),
            direction: if rule.signal == scenario::Signal::Availability {
                "below"
            } else {
                "above"
            },
            threshold: rule.threshold,
            for_: scenario::format_duration(rule.for_s.max(1)),
            window: scenario::format_duration(scenario.duration),
            peak: format!("{peak:.4}"),
        }
    })?;
    warnings.extend(early_page(scenario, fired.step as u64 * scenario.step));
    let cx = emit::Context {
        scenario,
        world: &world,
        tl: &tl,
        active: &active,
        start_ms,
        fired,
    };
    let files = emit::bundle(&cx);
    Ok(Simulation {
        files,
        warnings,
        alert_ms: start_ms + fired.step as i64 * scenario.step as i64 * 1000,
    })
}

/// A rule (not a fixed `alert.at`) that fires before the first fault of a scenario that
/// expects a root cause pages on ordinary behaviour: the page, and the investigation's
/// baseline around it, come long before what the scenario means to test.
fn early_page(scenario: &Scenario, fired_s: u64) -> Option<String> {
    let rule = &scenario.alert;
    if rule.at.is_some() || !matches!(scenario.expect, scenario::Expect::RootCause { .. }) {
        return None;
    }
    let first = scenario.faults.iter().map(|f| f.at).min()?;
    (fired_s < first).then(|| {
        format!(
            "alert: the rule on {} fires at {}, before the first fault starts ({}): it pages on ordinary behaviour, not on the fault; raise the threshold or lengthen `for`",
            rule.service,
            scenario::format_duration(fired_s),
            scenario::format_duration(first)
        )
    })
}

/// A table of the model's state at `offset` seconds into the window: per service its load,
/// capacity use, error share, main cause and latency. For scenario authors tuning a rule.
pub fn explain(scenario: &Scenario, offset: u64) -> String {
    use std::fmt::Write;
    let Run { world, tl, .. } = run(scenario);
    let k = ((offset / scenario.step) as usize).min(tl.steps - 1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>6} {:>7} {:>12} {:>9}",
        "service", "rate/s", "capacity", "cpu", "error", "cause", "mean ms"
    );
    for s in 0..world.services.len() {
        let st = tl.service(k, s);
        let cause = faults::Cause::ALL
            .iter()
            .copied()
            .max_by(|a, b| st.causes[*a as usize].total_cmp(&st.causes[*b as usize]))
            .map(|c| format!("{c:?}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<28} {:>9.1} {:>9.1} {:>6.2} {:>7.4} {:>12} {:>9.1}",
            world.services[s].name,
            st.rate,
            world.services[s].capacity,
            st.cpu,
            st.error,
            cause,
            st.latency_ms
        );
    }
    out
}
