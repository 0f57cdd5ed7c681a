//! Builds the configured data sources (`[[sources]]` and the one-source shortcuts).

use std::sync::Arc;

use cairn_connectors::github::{Github, GithubConfig};
use cairn_connectors::http::{Auth, Resilience};
use cairn_connectors::kubernetes::{Kubernetes, KubernetesConfig};
use cairn_connectors::loki::{Loki, LokiConfig};
use cairn_connectors::pagerduty::{PagerDuty, PagerDutyConfig};
use cairn_connectors::prometheus::{Prometheus, PrometheusConfig};
use cairn_connectors::{Bundle, DataSource};
use secrecy::SecretString;

use crate::cli::CliError;
use crate::config::{Config, SourceConfig, SourceKind};

/// Opens every configured source.
pub async fn build(config: &Config) -> Result<Vec<Arc<dyn DataSource>>, CliError> {
    Ok(build_all(config).await?.sources)
}

/// The page a replayed bundle carries, with the bundle's window.
pub type ReplayPage = (cairn_connectors::Alert, cairn_connectors::TimeWindow);

/// Opens every configured source, and returns the page of the last bundle that has one
/// (a bundle replayed by `serve` answers for its own time).
pub async fn build_with_page(
    config: &Config,
) -> Result<(Vec<Arc<dyn DataSource>>, Option<ReplayPage>), CliError> {
    let built = build_all(config).await?;
    Ok((built.sources, built.replay))
}

/// Everything the configured sources give the bot.
pub struct Built {
    /// What investigations read.
    pub sources: Vec<Arc<dyn DataSource>>,
    /// The page of the last bundle that has one.
    pub replay: Option<ReplayPage>,
    /// PagerDuty's REST API (the last `pagerduty` table), for page details and notes.
    pub pagerduty: Option<Arc<PagerDuty>>,
}

/// Opens every configured source. Nothing is sent to a live source here: one that is down
/// at start is reported by `/readyz` and in threads, and read again when it returns.
pub async fn build_all(config: &Config) -> Result<Built, CliError> {
    let mut built = Built {
        sources: Vec::new(),
        replay: None,
        pagerduty: None,
    };
    for source in &config.sources {
        if source.kind == SourceKind::Pagerduty {
            let pagerduty = pagerduty(source)?;
            built.sources.push(pagerduty.clone());
            built.pagerduty = Some(pagerduty);
            continue;
        }
        let (source, replay) = build_one(source).await?;
        built.sources.push(source);
        built.replay = replay.or(built.replay);
    }
    Ok(built)
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
        SourceKind::Prometheus => {
            let mut prom =
                PrometheusConfig::new(&source.name, source.url.as_deref().unwrap_or_default());
            prom.auth = auth(source);
            prom.services = source.services.clone();
            prom.labels = source.labels.clone();
            if let Some(label) = &source.service_label {
                prom.service_label = label.clone();
            }
            prom.metrics = source.metrics.clone();
            prom.resilience = resilience(source);
            Ok((Arc::new(Prometheus::new(prom)), None))
        }
        SourceKind::Loki => {
            let mut loki = LokiConfig::new(&source.name, source.url.as_deref().unwrap_or_default());
            loki.auth = auth(source);
            loki.services = source.services.clone();
            loki.labels = source.labels.clone();
            if let Some(label) = &source.service_label {
                loki.service_label = label.clone();
            }
            loki.resilience = resilience(source);
            Ok((Arc::new(Loki::new(loki)), None))
        }
        SourceKind::Github => {
            let github = Github::new(GithubConfig {
                name: source.name.clone(),
                api_url: source
                    .url
                    .clone()
                    .unwrap_or_else(|| cairn_connectors::github::DEFAULT_API_URL.into()),
                token: source
                    .token
                    .clone()
                    .unwrap_or_else(|| SecretString::from("")),
                repo: source.repo.clone().unwrap_or_default(),
                paths: source.paths.clone(),
                services: source.services.clone(),
                max_pages: cairn_connectors::github::DEFAULT_MAX_PAGES,
                resilience: resilience(source),
            })
            .map_err(|e| CliError::Usage(format!("{e}; fix that `[[sources]]` table.")))?;
            Ok((Arc::new(github), None))
        }
        SourceKind::Kubernetes => {
            let kubernetes = Kubernetes::connect(KubernetesConfig {
                name: source.name.clone(),
                kubeconfig: source.path.clone(),
                context: source.context.clone(),
                namespace: source.namespace.clone(),
                service_label: source.service_label.clone(),
                services: source.services.clone(),
                resilience: resilience(source),
            })
            .await
            .map_err(|e| CliError::Usage(format!("{e}")))?;
            Ok((Arc::new(kubernetes), None))
        }
        SourceKind::Pagerduty => Ok((pagerduty(source)?, None)),
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

/// PagerDuty's REST API as the table configures it.
fn pagerduty(source: &SourceConfig) -> Result<Arc<PagerDuty>, CliError> {
    let pagerduty = PagerDuty::new(PagerDutyConfig {
        name: source.name.clone(),
        api_url: source
            .url
            .clone()
            .unwrap_or_else(|| cairn_connectors::pagerduty::DEFAULT_API_URL.into()),
        token: source
            .token
            .clone()
            .unwrap_or_else(|| SecretString::from("")),
        from: source.from.clone(),
        resilience: resilience(source),
    })
    .map_err(|e| CliError::Usage(format!("{e}; fix that `[[sources]]` table.")))?;
    Ok(Arc::new(pagerduty))
}

/// The credentials a source table gives: a token is a bearer token, a username basic auth.
fn auth(source: &SourceConfig) -> Auth {
    match (&source.token, &source.username) {
        (Some(token), _) => Auth::Bearer(token.clone()),
        (None, Some(username)) => Auth::Basic {
            username: username.clone(),
            password: source.password.clone(),
        },
        (None, None) => Auth::None,
    }
}

/// The default time limits, retries and breaker, with the table's `timeout_ms`.
fn resilience(source: &SourceConfig) -> Resilience {
    let mut resilience = Resilience::default();
    if let Some(timeout) = source.timeout {
        resilience.timeout = timeout;
    }
    resilience
}
