//! `cairn simulate`: write the bundle a scenario file produces.

use std::path::Path;

use cairn_simulator::{simulate, Scenario};

use crate::cli::{CliError, SimulateArgs};

/// Runs `cairn simulate`: the whole bundle is built in memory first, so a scenario that
/// fails leaves the output directory untouched.
pub fn run(args: &SimulateArgs) -> Result<(), CliError> {
    let scenario = Scenario::load(&args.scenario).map_err(|e| CliError::Usage(e.to_string()))?;
    let simulation = simulate(&scenario)
        .map_err(|e| CliError::Failed(format!("{}: {e}", args.scenario.display())))?;
    for warning in &simulation.warnings {
        eprintln!("warning: {}: {warning}", args.scenario.display());
    }
    prepare(&args.out)?;
    simulation.files.write_to(&args.out).map_err(|e| {
        CliError::Failed(format!(
            "cannot write the bundle into {}: {e}",
            args.out.display()
        ))
    })?;
    let bytes: usize = simulation.files.iter().map(|(_, c)| c.len()).sum();
    let page = chrono::DateTime::from_timestamp_millis(simulation.alert_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    println!(
        "wrote {} ({} files, {:.1} MB); the page fires at {page}",
        args.out.display(),
        simulation.files.iter().count(),
        bytes as f64 / 1e6
    );
    Ok(())
}

/// Makes `out` ready: created when missing, cleared of an earlier bundle, refused when it
/// holds anything else (so a typo cannot scatter files into a random directory).
pub(crate) fn prepare(out: &Path) -> Result<(), CliError> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(CliError::Usage(format!(
            "--out {} exists and is not a directory.",
            out.display()
        )));
    }
    let entries: Vec<_> = std::fs::read_dir(out)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", out.display())))?
        .flatten()
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let is_bundle = |name: &str| {
        // What a simulation writes: the files a bundle reader knows, and the answer.
        let plain = name.strip_suffix(".gz").unwrap_or(name);
        plain == "expect.yaml" || cairn_connectors::Bundle::file_names().any(|f| f == plain)
    };
    let foreign: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !is_bundle(name))
        .collect();
    if !out.join("bundle.yaml").exists() || !foreign.is_empty() {
        return Err(CliError::Usage(format!(
            "--out {} is not empty and does not hold only a bundle; choose an empty or new directory.",
            out.display()
        )));
    }
    for entry in entries {
        std::fs::remove_file(entry.path()).map_err(|e| {
            CliError::Failed(format!("cannot replace {}: {e}", entry.path().display()))
        })?;
    }
    Ok(())
}
