//! `cairn demo`: a simulated page, the live investigation, and the incident thread as Slack
//! would show it — offline, on an embedded SQLite file, with no accounts and no model.

use std::io::IsTerminal;

use chrono::Utc;

use cairn_agents::{investigate_with, Incident, Options, ProgressSink, Verdict};
use cairn_connectors::{Bundle, DataSource};
use cairn_knowledge::{NewIncident, Store};
use cairn_simulator::{simulate, Scenario};

use crate::cli::{CliError, DemoArgs};
use crate::render::{progress_line, thread, Style};

include!(concat!(env!("OUT_DIR"), "/scenarios.rs"));

/// The scenario the demo runs when none is named.
pub const DEFAULT_SCENARIO: &str = "shop-checkout-bad-deploy";

/// The scenario named `name` (a library name, or a path to a file), as (name, text).
fn scenario_text(name: &str) -> Result<(String, String), CliError> {
    if let Some((n, text)) = SCENARIOS.iter().find(|(n, _)| *n == name) {
        return Ok(((*n).to_owned(), (*text).to_owned()));
    }
    let path = std::path::Path::new(name);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {name}: {e}")))?;
        return Ok((name.to_owned(), text));
    }
    let some: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).take(6).collect();
    Err(CliError::Usage(format!(
        "no scenario `{name}`: give a scenario file or one of the {} built-in names (e.g. {}).",
        SCENARIOS.len(),
        some.join(", ")
    )))
}

/// Runs the demo, printing to stdout.
pub async fn run(args: &DemoArgs) -> Result<(), CliError> {
    let style = if args.plain || !std::io::stdout().is_terminal() {
        Style::Plain
    } else {
        Style::Colour
    };
    let (name, text) = scenario_text(args.scenario.as_deref().unwrap_or(DEFAULT_SCENARIO))?;
    let scenario = Scenario::parse(&text, &name).map_err(|e| CliError::Usage(e.to_string()))?;
    let simulated = tokio::task::spawn_blocking(move || simulate(&scenario))
        .await
        .map_err(|e| CliError::Failed(format!("the simulation stopped: {e}")))?
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let simulation = simulated;
    let bundle = Bundle::from_files(&simulation.files)
        .map_err(|e| CliError::Failed(format!("simulated bundle: {e}")))?;
    let alert = bundle
        .alert()
        .cloned()
        .ok_or_else(|| CliError::Failed("the simulated bundle has no page".to_owned()))?;
    let incident = Incident::from_alert(&alert, bundle.meta().window);
    let services = bundle
        .topology()
        .await
        .ok()
        .flatten()
        .map_or(0, |t| t.services.len());

    println!("{}", style.bold("Cairn demo"));
    println!("{}", style.dim(&format!("Simulated production: {services} services (scenario {name}). No accounts, no network, no model.")));
    println!();
    let page = format!(
        "📟 PagerDuty: {} — service {}, triggered {} UTC",
        alert.title(),
        alert.service().unwrap_or("?"),
        alert.starts_at.format("%Y-%m-%d %H:%M:%S")
    );
    println!("{page}");

    // The incident goes into an embedded SQLite file, as `serve` would store it.
    let db = std::env::temp_dir().join(format!("cairn-demo-{}.db", std::process::id()));
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .map_err(|e| CliError::Failed(format!("cannot open the demo database: {e}")))?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::Failed(format!("cannot prepare the demo database: {e}")))?;
    let now = Utc::now();
    let stored = store
        .create_incident(
            &NewIncident {
                title: alert.title().to_owned(),
                source: "pagerduty".to_owned(),
                source_ref: alert.fingerprint.clone().unwrap_or_else(|| name.clone()),
                channel: None,
            },
            now,
        )
        .await
        .map_err(|e| CliError::Failed(format!("cannot store the incident: {e}")))?;
    println!(
        "{}",
        style.dim(&format!("Incident #{} opened; investigating…", stored.id))
    );

    let (sink, mut events) = ProgressSink::channel();
    let options = Options {
        progress: sink,
        ..Options::default()
    };
    let investigation = investigate_with(&incident, &bundle, options);
    let printer = async {
        while let Some(event) = events.recv().await {
            if let Some(line) = progress_line(&event, style) {
                println!("{line}");
            }
        }
    };
    let (finding, ()) = tokio::join!(investigation, printer);
    let finding = finding.map_err(|e| CliError::Failed(e.to_string()))?;

    let hypotheses = crate::findings::stored_hypotheses(&finding, 5);
    let verdict = crate::findings::verdict(&finding);
    store
        .save_investigation(stored.id, verdict, &hypotheses, now, Utc::now())
        .await
        .map_err(|e| CliError::Failed(format!("cannot store the investigation: {e}")))?;

    println!();
    print!("{}", thread(alert.title(), &page, &finding, style));
    println!();
    let answer = crate::eval::score::parse_expected(
        &String::from_utf8_lossy(simulation.files.get("expect.yaml").unwrap_or_default()),
        "expect.yaml",
    );
    if let Ok(expected) = answer {
        let verdict = match (&expected, finding.ranking.first(), finding.verdict) {
            (
                crate::eval::score::Expected::RootCause { service, .. },
                Some(top),
                Verdict::RootCauseFound,
            ) if &top.service == service => style.green("matched"),
            (crate::eval::score::Expected::NoIssue, _, Verdict::NoRootCauseFound) => {
                style.green("matched")
            }
            _ => style.yellow("not matched"),
        };
        let said = match &expected {
            crate::eval::score::Expected::RootCause { service, kind } => {
                format!("{service} ({})", kind.as_deref().unwrap_or("any kind"))
            }
            crate::eval::score::Expected::NoIssue => "no issue".to_owned(),
        };
        println!(
            "{}",
            style.dim(&format!(
                "The simulator's answer key says: {said} — {verdict}."
            ))
        );
    }
    println!(
        "{}",
        style.dim("Next, in Slack: an engineer confirms or corrects a hypothesis; the correction becomes a knowledge record and the next similar page uses it (arrives with the knowledge store).")
    );
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(())
}
