//! `cairn eval export INCIDENT_ID --out DIR`: an incident of the team's own history becomes
//! a test case — its window, read from the configured sources, written as a bundle, with
//! `expect.yaml` from the root cause engineers confirmed.

use std::collections::BTreeMap;

use cairn_connectors::{Alert, SourceSet, TimeWindow};
use cairn_knowledge::{Incident, Store};

use crate::cli::{CliError, ExportArgs};
use crate::config::Config;

/// The confirmed answer of an incident: a hypothesis an engineer confirmed, else the
/// latest active correction or root cause recorded for it. `None` when nobody said.
async fn confirmed_cause(
    store: &Store,
    incident: &Incident,
) -> Result<Option<(String, Option<String>)>, CliError> {
    let failed = |e: cairn_knowledge::StoreError| CliError::Failed(format!("database: {e}"));
    let hypotheses = store.hypotheses(incident.id).await.map_err(failed)?;
    if let Some(h) = hypotheses.iter().find(|h| h.status == "confirmed") {
        return Ok(Some((h.service.clone(), h.kind.clone())));
    }
    // The latest word wins: precedents are the active records about past incidents.
    let records = store.precedents().await.map_err(failed)?;
    Ok(records
        .into_iter()
        .rev()
        .map(|p| p.record)
        .filter(|r| r.incident_id == Some(incident.id))
        .find_map(|r| {
            let service = r.services().into_iter().next()?;
            Some((service, r.fault_kind().map(str::to_owned)))
        }))
}

/// Runs `cairn eval export`.
pub async fn run(config: &Config, args: &ExportArgs) -> Result<(), CliError> {
    crate::simulate::prepare(&args.out)?;
    let store = Store::connect(config.database_url.as_str())
        .await
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot open the database (CAIRN_DATABASE_URL): {e}"
            ))
        })?;
    let incident = store
        .incident(args.incident)
        .await
        .map_err(|e| CliError::Failed(format!("database: {e}")))?
        .ok_or_else(|| {
            CliError::Failed(format!(
                "there is no incident #{} in this database (see /api/incidents).",
                args.incident
            ))
        })?;
    let Some((service, kind)) = confirmed_cause(&store, &incident).await? else {
        return Err(CliError::Failed(format!(
            "incident #{} has no confirmed root cause: confirm a hypothesis or record a correction in its thread first.",
            incident.id
        )));
    };
    let context = store
        .investigation_context(incident.id)
        .await
        .map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let (sources, replay) = crate::sources::build_with_page(config).await?;
    if sources.is_empty() {
        return Err(CliError::Usage(
            "no data sources are configured: set CAIRN_BUNDLE, CAIRN_PROMETHEUS_URL or [[sources]] to read the incident's window from.".to_owned(),
        ));
    }
    // The window the investigation looked at; else the replayed page's; else the hour
    // before the incident opened.
    let window = match context
        .as_ref()
        .and_then(|c| c.window_start.zip(c.window_end))
    {
        Some((start, end)) => TimeWindow { start, end },
        None => replay.as_ref().map(|(_, w)| *w).unwrap_or(TimeWindow {
            start: incident.created_at - chrono::Duration::hours(1),
            end: incident.created_at,
        }),
    };
    let alert = replay.map(|(a, _)| a).unwrap_or_else(|| Alert {
        status: "firing".into(),
        labels: BTreeMap::from([("alertname".to_owned(), incident.title.clone())]),
        annotations: BTreeMap::from([("summary".to_owned(), incident.title.clone())]),
        starts_at: incident.created_at,
        ends_at: None,
        fingerprint: Some(incident.source_ref.clone()),
    });
    let set = SourceSet::new(sources);
    let name = format!("incident-{}", incident.id);
    let mut files = cairn_connectors::capture(
        &set,
        window,
        Some(&alert),
        &name,
        "capture",
        Some(&incident.title),
    )
    .await
    .map_err(|e| CliError::Failed(format!("reading the incident's window: {e}")))?;
    let mut expect = format!("root_cause:\n  service: {}\n", yaml_str(&service));
    if let Some(kind) = kind {
        expect.push_str(&format!("  kind: {}\n", yaml_str(&kind)));
    }
    expect.push_str(&format!(
        "notes: {}\n",
        yaml_str(&format!(
            "exported from Cairn incident #{} ({})",
            incident.id, incident.title
        ))
    ));
    files.insert(super::score::EXPECT_FILE, expect.into_bytes());
    files
        .write_to(&args.out)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", args.out.display())))?;
    println!(
        "incident #{} written to {} (root cause {service})",
        incident.id,
        args.out.display()
    );
    Ok(())
}

/// A YAML scalar that stays one string whatever it holds.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}
