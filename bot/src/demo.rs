//! `cairn demo`: a simulated page, the live investigation, and the incident thread as Slack
//! would show it — offline, on an embedded SQLite file, with no accounts and no model.

use std::io::IsTerminal;

use chrono::Utc;

use cairn_agents::{investigate_with, Finding, Incident, Options, ProgressSink, Verdict};
use cairn_connectors::{Bundle, DataSource};
use cairn_knowledge::{NewIncident, Store};
use cairn_simulator::{simulate, Scenario};

use crate::cli::{CliError, DemoArgs};
use crate::eval::score::Expected;
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

/// A simulated page: its bundle, alert, incident and the answer key (kept for the end).
struct Page {
    bundle: Bundle,
    alert: cairn_connectors::Alert,
    incident: Incident,
    expected: Option<Expected>,
}

/// Simulates `scenario` with `reseed` added to its seed.
async fn page(scenario: &Scenario, reseed: u64) -> Result<Page, CliError> {
    let mut scenario = scenario.clone();
    scenario.seed = scenario.seed.wrapping_add(reseed);
    let simulation = tokio::task::spawn_blocking(move || simulate(&scenario))
        .await
        .map_err(|e| CliError::Failed(format!("the simulation stopped: {e}")))?
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let bundle = Bundle::from_files(&simulation.files)
        .map_err(|e| CliError::Failed(format!("simulated bundle: {e}")))?;
    let alert = bundle
        .alert()
        .cloned()
        .ok_or_else(|| CliError::Failed("the simulated bundle has no page".to_owned()))?;
    let incident = Incident::from_alert(&alert, bundle.meta().window);
    let expected = crate::eval::score::parse_expected(
        &String::from_utf8_lossy(simulation.files.get("expect.yaml").unwrap_or_default()),
        "expect.yaml",
    )
    .ok();
    Ok(Page {
        bundle,
        alert,
        incident,
        expected,
    })
}

fn page_line(alert: &cairn_connectors::Alert) -> String {
    format!(
        "📟 PagerDuty: {} — service {}, triggered {} UTC",
        alert.title(),
        alert.service().unwrap_or("?"),
        alert.starts_at.format("%Y-%m-%d %H:%M:%S")
    )
}

/// Opens the incident, investigates with live progress and what the store has learnt,
/// stores the finding and prints the thread.
async fn investigate_page(
    store: &Store,
    page: &Page,
    source_ref: &str,
    style: Style,
) -> Result<(cairn_knowledge::Incident, Finding), CliError> {
    // The incident opens when the simulated page fires (so the demo reads the same on
    // every run).
    let now = page.alert.starts_at;
    let stored = store
        .create_incident(
            &NewIncident {
                title: page.alert.title().to_owned(),
                source: "pagerduty".to_owned(),
                source_ref: source_ref.to_owned(),
                channel: None,
            },
            now,
        )
        .await
        .map_err(|e| CliError::Failed(format!("cannot store the incident: {e}")))?;
    let precedents = crate::knowledge::precedents(store)
        .await
        .map_err(|e| CliError::Failed(format!("cannot read the knowledge store: {e}")))?;
    let known = if precedents.is_empty() {
        String::new()
    } else {
        format!(
            " with {} knowledge record(s) as precedent",
            precedents.len()
        )
    };
    println!(
        "{}",
        style.dim(&format!(
            "Incident #{} opened; investigating{known}…",
            stored.id
        ))
    );
    let (sink, mut events) = ProgressSink::channel();
    let options = Options {
        progress: sink,
        precedents: std::sync::Arc::new(precedents),
        ..Options::default()
    };
    let investigation = investigate_with(&page.incident, &page.bundle, options);
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
    store
        .save_investigation(
            stored.id,
            crate::findings::verdict(&finding),
            &hypotheses,
            now,
            Utc::now(),
            &crate::findings::context(&page.incident, &finding),
        )
        .await
        .map_err(|e| CliError::Failed(format!("cannot store the investigation: {e}")))?;
    if let Ok(Some(topology)) = page.bundle.topology().await {
        let _ = crate::knowledge::sync_catalogue(store, &topology, now).await;
    }
    println!();
    print!(
        "{}",
        thread(page.alert.title(), &page_line(&page.alert), &finding, style)
    );
    println!();
    Ok((stored, finding))
}

/// "matched" / "not matched" against the answer key.
fn judged(expected: &Expected, finding: &Finding, style: Style) -> String {
    let verdict = match (expected, finding.ranking.first(), finding.verdict) {
        (Expected::RootCause { service, .. }, Some(top), Verdict::RootCauseFound)
            if &top.service == service =>
        {
            style.green("matched")
        }
        (Expected::NoIssue, _, Verdict::NoRootCauseFound) => style.green("matched"),
        _ => style.yellow("not matched"),
    };
    let said = match expected {
        Expected::RootCause { service, kind } => {
            format!("{service} ({})", kind.as_deref().unwrap_or("any kind"))
        }
        Expected::NoIssue => "no issue".to_owned(),
    };
    format!("The simulator's answer key says: {said} — {verdict}.")
}

/// The simulated engineer's word on the first thread: a Confirm click when Cairn was
/// right, a correcting reply when it was not. Recorded by the same code `serve` uses.
async fn engineer(
    store: &Store,
    incident: &cairn_knowledge::Incident,
    expected: &Expected,
    finding: &Finding,
    style: Style,
) -> Result<Option<cairn_knowledge::KnowledgeRecord>, CliError> {
    let failed = |e: cairn_knowledge::StoreError| CliError::Failed(format!("knowledge store: {e}"));
    let from = crate::knowledge::Provenance {
        author: ENGINEER,
        channel: Some("C0DEMO"),
        thread_ts: Some("1700000000.000100"),
    };
    let now = Utc::now();
    let top = finding.ranking.first().map(|h| h.service.as_str());
    let record = match expected {
        Expected::RootCause { service, .. } if top == Some(service.as_str()) => {
            println!(
                "{}",
                style.bold(&format!(
                    "{ENGINEER} clicks ✅ Confirm on hypothesis #1 ({service})."
                ))
            );
            store
                .decide_hypothesis(incident.id, 1, "confirmed", ENGINEER, now)
                .await
                .map_err(failed)?;
            crate::knowledge::record_decision(store, incident, 1, true, &from, now)
                .await
                .map_err(failed)?
        }
        Expected::RootCause { service, kind } => {
            let words = format!(
                "<@U0CAIRN> root cause was {} on {service}{}",
                kind.as_deref()
                    .map_or("a fault".to_owned(), |k| k.replace('_', " ")),
                top.map_or(String::new(), |t| format!(", not {t}"))
            );
            println!(
                "{}",
                style.bold(&format!("{ENGINEER} replies in the thread: “{words}”"))
            );
            match crate::knowledge::read_reply(store, &words, true).await {
                Some(read) => Some(
                    crate::knowledge::capture_reply(store, incident, &words, read, &from, now)
                        .await
                        .map_err(failed)?,
                ),
                None => None,
            }
        }
        Expected::NoIssue => None,
    };
    if let Some(r) = &record {
        println!(
            "📝 Cairn: recorded {} from {} — this will inform similar incidents.",
            crate::knowledge::describe(r),
            r.author
        );
    }
    Ok(record)
}

/// Who plays the engineer in the demo.
const ENGINEER: &str = "U0ENGINEER";

/// Runs the demo, printing to stdout.
pub async fn run(args: &DemoArgs) -> Result<(), CliError> {
    let style = if args.plain || !std::io::stdout().is_terminal() {
        Style::Plain
    } else {
        Style::Colour
    };
    let (name, text) = scenario_text(args.scenario.as_deref().unwrap_or(DEFAULT_SCENARIO))?;
    let scenario = Scenario::parse(&text, &name).map_err(|e| CliError::Usage(e.to_string()))?;
    let first = page(&scenario, 0).await?;
    let services = first
        .bundle
        .topology()
        .await
        .ok()
        .flatten()
        .map_or(0, |t| t.services.len());

    println!("{}", style.bold("Cairn demo"));
    println!("{}", style.dim(&format!("Simulated production: {services} services (scenario {name}). No accounts, no network, no model.")));
    println!();
    println!("{}", page_line(&first.alert));

    // Incidents and knowledge go into an embedded SQLite file, as `serve` would store them.
    let db = std::env::temp_dir().join(format!("cairn-demo-{}.db", std::process::id()));
    let result = async {
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", db.display()))
            .await
            .map_err(|e| CliError::Failed(format!("cannot open the demo database: {e}")))?;
        store
            .migrate()
            .await
            .map_err(|e| CliError::Failed(format!("cannot prepare the demo database: {e}")))?;
        let (stored, finding) = investigate_page(&store, &first, "P0DEMO1", style).await?;
        let Some(expected) = &first.expected else {
            return Ok(());
        };
        println!("{}", style.dim(&judged(expected, &finding, style)));
        println!();
        let Some(record) = engineer(&store, &stored, expected, &finding, style).await? else {
            println!("{}", style.dim("Nothing to correct: no knowledge recorded, no second page."));
            return Ok(());
        };
        println!();
        let second = page(&scenario, crate::eval::learn::RESEED).await?;
        println!(
            "{}",
            style.bold("Days later, a similar page (the same production, another seed):")
        );
        println!("{}", page_line(&second.alert));
        let (_, again) = investigate_page(&store, &second, "P0DEMO2", style).await?;
        let used = again
            .ranking
            .iter()
            .flat_map(|h| h.supporting.iter())
            .any(|e| e.record_ref == Some(record.record_id));
        if let Some(expected) = &second.expected {
            println!("{}", style.dim(&judged(expected, &again, style)));
        }
        println!(
            "{}",
            style.dim(&if used {
                format!("Knowledge record #{} was used as precedent. Retract it with `/cairn forget {}`; it then stops counting.", record.record_id, record.record_id)
            } else {
                format!("Knowledge record #{} did not apply: the new incident's symptoms were not alike enough.", record.record_id)
            })
        );
        drop(store);
        Ok(())
    }
    .await;
    for suffix in ["", "-wal", "-shm", "-queue", "-queue-wal", "-queue-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    result
}
