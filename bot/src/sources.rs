//! Builds the configured data sources (`[[sources]]` and the one-source shortcuts).

use std::sync::Arc;

use cairn_connectors::{Bundle, DataSource};

use crate::cli::CliError;
use crate::config::{Config, SourceConfig, SourceKind};

/// Opens every configured source; a kind this build cannot read yet is an error naming it.
pub async fn build(config: &Config) -> Result<Vec<Arc<dyn DataSource>>, CliError> {
    Ok(build_with_page(config).await?.0)
}

/// The page a replayed bundle carries, with the bundle's window.
pub type ReplayPage = (cairn_connectors::Alert, cairn_connectors::TimeWindow);

/// Opens every configured source, and returns the page of the last bundle that has one
/// (a bundle replayed by `serve` answers for its own time).
pub async fn build_with_page(
    config: &Config,
) -> Result<(Vec<Arc<dyn DataSource>>, Option<ReplayPage>), CliError> {
    let mut built: Vec<Arc<dyn DataSource>> = Vec::new();
    let mut page = None;
    for source in &config.sources {
        let (source, replay) = build_one(source).await?;
        built.push(source);
        page = replay.or(page);
    }
    Ok((built, page))
}

async fn build_one(
    source: &SourceConfig,
) -> Result<(Arc<dyn DataSource>, Option<ReplayPage>), CliError> {
    match source.kind {
        SourceKind::Bundle => {
            let path = source.path.clone().unwrap_or_default();
            let name = source.name.clone();
            let bundle = open_bundle(path).await?;
            let page = bundle.alert().map(|a| (a.clone(), bundle.meta().window));
            Ok((Arc::new(bundle.with_name(name)), page))
        }
        kind => Err(CliError::Usage(format!(
            "source `{}` has kind `{}`, which this version of Cairn cannot read yet; remove it or use a bundle.",
            source.name,
            kind.as_str()
        ))),
    }
}

/// Opens a bundle off the async runtime (reading it is blocking, streaming file I/O).
pub async fn open_bundle(path: std::path::PathBuf) -> Result<Bundle, CliError> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || Bundle::open(&path))
        .await
        .map_err(|e| CliError::Failed(format!("reading bundle {shown} stopped: {e}")))?
        .map_err(|e| CliError::Failed(format!("bundle {shown}: {e}")))
}
