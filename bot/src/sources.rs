//! Builds the configured data sources (`[[sources]]` and the one-source shortcuts).

use std::sync::Arc;

use cairn_connectors::{Bundle, DataSource};

use crate::cli::CliError;
use crate::config::{Config, SourceConfig, SourceKind};

/// Opens every configured source; a kind this build cannot read yet is an error naming it.
pub async fn build(config: &Config) -> Result<Vec<Arc<dyn DataSource>>, CliError> {
    let mut built: Vec<Arc<dyn DataSource>> = Vec::new();
    for source in &config.sources {
        built.push(build_one(source).await?);
    }
    Ok(built)
}

async fn build_one(source: &SourceConfig) -> Result<Arc<dyn DataSource>, CliError> {
    match source.kind {
        SourceKind::Bundle => {
            let path = source.path.clone().unwrap_or_default();
            let name = source.name.clone();
            let bundle = open_bundle(path).await?;
            Ok(Arc::new(bundle.with_name(name)))
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
