//! Configuration: a TOML file overridden by `CAIRN_*` environment variables, on defaults.
//!
//! Loading happens in two steps. First both layers are read into [`RawConfig`] (plain
//! optional strings, remembering where each value came from); then [`Config::from_raw`]
//! parses every value into its type. Every failure is one sentence that names the key, where
//! it was set, and what is expected; the binary turns it into exit code 2.
//!
//! Keys in the file are the environment names without `CAIRN_`, in lower case
//! (`CAIRN_DATABASE_URL` ↔ `database_url`), plus `[[sources]]` tables.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// A configuration problem, phrased for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn invalid(key: &Key, origin: Origin, expected: &str, got: &str) -> Self {
        Self(format!(
            "{} {origin} must be {expected}, not `{got}`.",
            key.describe()
        ))
    }
}

/// Every top-level key Cairn reads, with its environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Listen,
    DatabaseUrl,
    SlackBotToken,
    SlackSigningSecret,
    SlackAppToken,
    SlackApiUrl,
    IncidentChannel,
    PagerdutyWebhookSecrets,
    AlertmanagerToken,
    ApiToken,
    Bundle,
    PrometheusUrl,
    LokiUrl,
    GithubToken,
    GithubApiUrl,
    Kubeconfig,
    LlmProvider,
    LlmBaseUrl,
    LlmApiKey,
    LlmModel,
    DataDir,
    Admins,
}

impl Key {
    const ALL: [Key; 22] = [
        Key::Listen,
        Key::DatabaseUrl,
        Key::SlackBotToken,
        Key::SlackSigningSecret,
        Key::SlackAppToken,
        Key::SlackApiUrl,
        Key::IncidentChannel,
        Key::PagerdutyWebhookSecrets,
        Key::AlertmanagerToken,
        Key::ApiToken,
        Key::Bundle,
        Key::PrometheusUrl,
        Key::LokiUrl,
        Key::GithubToken,
        Key::GithubApiUrl,
        Key::Kubeconfig,
        Key::LlmProvider,
        Key::LlmBaseUrl,
        Key::LlmApiKey,
        Key::LlmModel,
        Key::DataDir,
        Key::Admins,
    ];

    /// The key as written in the TOML file.
    fn file_key(self) -> &'static str {
        match self {
            Key::Listen => "listen",
            Key::DatabaseUrl => "database_url",
            Key::SlackBotToken => "slack_bot_token",
            Key::SlackSigningSecret => "slack_signing_secret",
            Key::SlackAppToken => "slack_app_token",
            Key::SlackApiUrl => "slack_api_url",
            Key::IncidentChannel => "incident_channel",
            Key::PagerdutyWebhookSecrets => "pagerduty_webhook_secrets",
            Key::AlertmanagerToken => "alertmanager_token",
            Key::ApiToken => "api_token",
            Key::Bundle => "bundle",
            Key::PrometheusUrl => "prometheus_url",
            Key::LokiUrl => "loki_url",
            Key::GithubToken => "github_token",
            Key::GithubApiUrl => "github_api_url",
            Key::Kubeconfig => "kubeconfig",
            Key::LlmProvider => "llm_provider",
            Key::LlmBaseUrl => "llm_base_url",
            Key::LlmApiKey => "llm_api_key",
            Key::LlmModel => "llm_model",
            Key::DataDir => "data_dir",
            Key::Admins => "admins",
        }
    }

    /// The environment variable that overrides the key.
    fn env_var(self) -> String {
        format!("CAIRN_{}", self.file_key().to_ascii_uppercase())
    }

    fn describe(self) -> String {
        format!("`{}` ({})", self.file_key(), self.env_var())
    }
}

/// Where a value came from, so an error can say where to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Env => f.write_str("in the environment"),
        }
    }
}

/// The file layer as written: top-level values and `[[sources]]`. Unknown keys are errors
/// (checked against [`Key`]): a typo must not pass silently.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(flatten)]
    values: std::collections::BTreeMap<String, toml::Value>,
    #[serde(default)]
    sources: Vec<RawSource>,
}

/// A top-level file value as text: strings as they are, lists (for the comma-separated
/// keys) joined with commas, numbers and booleans printed.
fn file_value_text(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// One `[[sources]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Option<String>,
    name: Option<String>,
    url: Option<String>,
    path: Option<PathBuf>,
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    service_label: Option<String>,
    #[serde(default)]
    metrics: std::collections::BTreeMap<String, String>,
    repo: Option<String>,
    #[serde(default)]
    paths: std::collections::BTreeMap<String, Vec<String>>,
    from: Option<String>,
    context: Option<String>,
    timeout_ms: Option<u64>,
}

/// Both layers read but not yet parsed; later layers win.
#[derive(Debug, Default)]
pub struct RawConfig {
    values: std::collections::BTreeMap<Key, (String, Origin)>,
    sources: Vec<RawSource>,
    file: Option<PathBuf>,
}

impl RawConfig {
    /// Reads the file layer from TOML text; `path` is for messages.
    pub fn with_file(mut self, path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |span| {
                text[..span.start.min(text.len())].lines().count().max(1)
            });
            let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigError(format!(
                "{}:{line}: not a valid Cairn configuration: {}.",
                path.display(),
                what.trim_end_matches('.')
            ))
        })?;
        for (name, value) in file.values {
            let key = Key::ALL
                .iter()
                .copied()
                .find(|k| k.file_key() == name)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "{} has an unknown key `{name}`; known keys are {} and [[sources]].",
                        path.display(),
                        Key::ALL.map(Key::file_key).join(", ")
                    ))
                })?;
            let text = file_value_text(value).ok_or_else(|| {
                ConfigError(format!(
                    "{} in {} must be a string (or a list of strings), not a table.",
                    key.describe(),
                    path.display()
                ))
            })?;
            self.values
                .insert(key, (text, Origin::File(path.to_owned())));
        }
        self.sources = file.sources;
        self.file = Some(path.to_owned());
        Ok(self)
    }

    /// Overlays every `CAIRN_*` variable that `lookup` returns.
    pub fn with_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        for key in Key::ALL {
            if let Some(value) = lookup(&key.env_var()) {
                self.values.insert(key, (value, Origin::Env));
            }
        }
        self
    }
}

/// Where Cairn keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    /// The URL to connect with.
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseUrl::Sqlite(u) | DatabaseUrl::Postgres(u) => u,
        }
    }

    /// The SQLite file's path, for SQLite URLs.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let DatabaseUrl::Sqlite(url) = self else {
            return None;
        };
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

/// The kinds of data source Cairn can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Bundle,
    Prometheus,
    Loki,
    Kubernetes,
    Github,
    Pagerduty,
}

impl SourceKind {
    const NAMES: &'static str = "bundle, prometheus, loki, kubernetes, github or pagerduty";

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bundle" => Self::Bundle,
            "prometheus" => Self::Prometheus,
            "loki" => Self::Loki,
            "kubernetes" => Self::Kubernetes,
            "github" => Self::Github,
            "pagerduty" => Self::Pagerduty,
            _ => return None,
        })
    }

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bundle => "bundle",
            Self::Prometheus => "prometheus",
            Self::Loki => "loki",
            Self::Kubernetes => "kubernetes",
            Self::Github => "github",
            Self::Pagerduty => "pagerduty",
        }
    }
}

/// One configured data source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub name: String,
    pub url: Option<String>,
    pub path: Option<PathBuf>,
    pub token: Option<SecretString>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub namespace: Option<String>,
    /// Services this source covers; empty means all.
    pub services: Vec<String>,
    /// Label matchers this source covers.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The label naming the service, where a team's is not `service` (Prometheus, Loki,
    /// Kubernetes).
    pub service_label: Option<String>,
    /// Metric names as the source has them → the names Cairn reads (Prometheus).
    pub metrics: std::collections::BTreeMap<String, String>,
    /// `owner/name` (GitHub).
    pub repo: Option<String>,
    /// Service → path prefixes in the repository (GitHub).
    pub paths: std::collections::BTreeMap<String, Vec<String>>,
    /// The email PagerDuty writes notes as.
    pub from: Option<String>,
    /// The kubeconfig context (Kubernetes).
    pub context: Option<String>,
    /// The time limit of one request to the source.
    pub timeout: Option<std::time::Duration>,
}

impl SourceConfig {
    fn new(kind: SourceKind, name: String) -> Self {
        Self {
            kind,
            name,
            url: None,
            path: None,
            token: None,
            username: None,
            password: None,
            namespace: None,
            services: Vec::new(),
            labels: Default::default(),
            service_label: None,
            metrics: Default::default(),
            repo: None,
            paths: Default::default(),
            from: None,
            context: None,
            timeout: None,
        }
    }
}

/// Which model, if any, sits behind the deterministic analyst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    None,
    OpenAi,
    Anthropic,
}

/// Slack settings, present when a bot token is configured.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub bot_token: SecretString,
    pub signing_secret: Option<SecretString>,
    pub app_token: Option<SecretString>,
    pub api_url: String,
}

/// The optional model.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub provider: LlmProvider,
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub model: Option<String>,
}

/// Cairn's parsed configuration. Secrets are [`SecretString`]s: `Debug` never shows them.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub slack: Option<SlackConfig>,
    pub incident_channel: Option<String>,
    pub pagerduty_webhook_secrets: Vec<SecretString>,
    pub alertmanager_token: Option<SecretString>,
    pub api_token: Option<SecretString>,
    pub sources: Vec<SourceConfig>,
    pub llm: LlmConfig,
    pub data_dir: PathBuf,
    pub admins: Vec<String>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Settings that are valid but do nothing as given, for the log at start.
    pub warnings: Vec<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const DEFAULT_DATABASE_URL: &str = "sqlite://cairn.db?mode=rwc";
const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api/";

impl Config {
    /// Loads configuration the way the binary does: `explicit` (from `--config` or
    /// `CAIRN_CONFIG`) must exist; otherwise `./cairn.toml` is read when present; then the
    /// process environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = RawConfig::default();
        let path = match explicit {
            Some(p) => Some(p.to_owned()),
            None => Some(PathBuf::from("cairn.toml")).filter(|p| p.is_file()),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError(format!(
                    "cannot read configuration file {}: {e}.",
                    path.display()
                ))
            })?;
            raw = raw.with_file(&path, &text)?;
        }
        Self::from_raw(raw.with_env(|k| std::env::var(k).ok()))
    }

    /// Parses both layers into typed values.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let get = |key: Key| raw.values.get(&key).map(|(v, o)| (v.trim(), o.clone()));
        let text = |key: Key| {
            get(key)
                .map(|(v, _)| v.to_owned())
                .filter(|v| !v.is_empty())
        };
        let secret = |key: Key| text(key).map(SecretString::from);

        let listen = match get(Key::Listen) {
            None => DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses"),
            Some((v, origin)) => v.parse().map_err(|_| {
                ConfigError::invalid(
                    &Key::Listen,
                    origin,
                    "a socket address like 127.0.0.1:3000",
                    v,
                )
            })?,
        };

        let database_url = match get(Key::DatabaseUrl) {
            None => DatabaseUrl::Sqlite(DEFAULT_DATABASE_URL.into()),
            Some((v, origin)) => parse_database_url(v).ok_or_else(|| {
                ConfigError::invalid(
                    &Key::DatabaseUrl,
                    origin,
                    "a URL starting with sqlite:// (e.g. sqlite://cairn.db?mode=rwc) or postgres://",
                    v,
                )
            })?,
        };

        let api_url = match get(Key::SlackApiUrl) {
            None => DEFAULT_SLACK_API_URL.to_owned(),
            Some((v, origin)) => {
                if !is_http_url(v) || !v.ends_with('/') {
                    return Err(ConfigError::invalid(
                        &Key::SlackApiUrl,
                        origin,
                        "an http(s) URL ending in `/` like https://slack.com/api/",
                        v,
                    ));
                }
                v.to_owned()
            }
        };
        let bot_token = prefixed_secret(get(Key::SlackBotToken), Key::SlackBotToken, "xoxb-")?;
        let app_token = prefixed_secret(get(Key::SlackAppToken), Key::SlackAppToken, "xapp-")?;
        let signing_secret = secret(Key::SlackSigningSecret);
        let slack = match bot_token {
            None => {
                if app_token.is_some() {
                    return Err(ConfigError(format!(
                        "{} is set but {} is not; Socket Mode needs the bot token too.",
                        Key::SlackAppToken.describe(),
                        Key::SlackBotToken.describe()
                    )));
                }
                None
            }
            Some(bot_token) => {
                if app_token.is_none() && signing_secret.is_none() {
                    return Err(ConfigError(format!(
                        "{} is required when {} is set and Socket Mode ({}) is not used.",
                        Key::SlackSigningSecret.describe(),
                        Key::SlackBotToken.describe(),
                        Key::SlackAppToken.env_var()
                    )));
                }
                Some(SlackConfig {
                    bot_token,
                    signing_secret,
                    app_token,
                    api_url,
                })
            }
        };

        let incident_channel = match get(Key::IncidentChannel) {
            None => None,
            Some(("", _)) => None,
            Some((v, origin)) => {
                if !is_slack_id(v, &['C', 'G', 'D']) {
                    return Err(ConfigError::invalid(
                        &Key::IncidentChannel,
                        origin,
                        "a Slack channel ID like C0123456789 (not a #name)",
                        v,
                    ));
                }
                Some(v.to_owned())
            }
        };

        let admins = match get(Key::Admins) {
            None => Vec::new(),
            Some((v, origin)) => {
                let ids = split_list(v);
                if let Some(bad) = ids.iter().find(|id| !is_slack_id(id, &['U', 'W'])) {
                    return Err(ConfigError::invalid(
                        &Key::Admins,
                        origin,
                        "a comma-separated list of Slack user IDs like U0123ABCD",
                        bad,
                    ));
                }
                ids
            }
        };

        let llm_provider = match get(Key::LlmProvider) {
            None => LlmProvider::None,
            Some((v, origin)) => match v {
                "none" | "" => LlmProvider::None,
                "openai" => LlmProvider::OpenAi,
                "anthropic" => LlmProvider::Anthropic,
                _ => {
                    return Err(ConfigError::invalid(
                        &Key::LlmProvider,
                        origin,
                        "one of none, openai or anthropic",
                        v,
                    ))
                }
            },
        };
        let llm = LlmConfig {
            provider: llm_provider,
            base_url: url_value(get(Key::LlmBaseUrl), Key::LlmBaseUrl)?,
            api_key: secret(Key::LlmApiKey),
            model: text(Key::LlmModel),
        };

        let sources = resolve_sources(&raw, &get)?;
        let mut warnings = Vec::new();
        if get(Key::GithubToken).is_some_and(|(t, _)| !t.is_empty())
            && !sources.iter().any(|s| s.kind == SourceKind::Github)
        {
            warnings.push(format!(
                "{} is set but no `[[sources]]` table of kind `github` names a `repo`; GitHub is not read.",
                Key::GithubToken.describe()
            ));
        }

        let data_dir = match text(Key::DataDir) {
            Some(dir) => PathBuf::from(dir),
            None => database_url
                .sqlite_path()
                .map(|p| match p.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                    _ => PathBuf::from("."),
                })
                .unwrap_or_else(|| PathBuf::from("./data")),
        };

        Ok(Config {
            listen,
            database_url,
            slack,
            incident_channel,
            pagerduty_webhook_secrets: text(Key::PagerdutyWebhookSecrets)
                .map(|v| split_list(&v).into_iter().map(SecretString::from).collect())
                .unwrap_or_default(),
            alertmanager_token: secret(Key::AlertmanagerToken),
            api_token: secret(Key::ApiToken),
            sources,
            llm,
            data_dir,
            admins,
            file: raw.file.clone(),
            warnings,
        })
    }
}

/// The `[[sources]]` tables plus the one-source shortcuts (`CAIRN_BUNDLE`,
/// `CAIRN_PROMETHEUS_URL`, …), each checked for what its kind needs.
fn resolve_sources<'a>(
    raw: &'a RawConfig,
    get: &dyn Fn(Key) -> Option<(&'a str, Origin)>,
) -> Result<Vec<SourceConfig>, ConfigError> {
    let where_ = raw
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the configuration".into());
    let mut sources = Vec::new();
    let mut names = BTreeSet::new();
    for (i, s) in raw.sources.iter().enumerate() {
        let at = format!("`sources[{i}]` in {where_}");
        let kind_text = s.kind.as_deref().ok_or_else(|| {
            ConfigError(format!(
                "{at} has no `kind`; expected {}.",
                SourceKind::NAMES
            ))
        })?;
        let kind = SourceKind::parse(kind_text).ok_or_else(|| {
            ConfigError(format!(
                "{at} has kind `{kind_text}`; expected {}.",
                SourceKind::NAMES
            ))
        })?;
        let name = s.name.clone().unwrap_or_else(|| kind.as_str().to_owned());
        let mut source = SourceConfig {
            url: s.url.clone(),
            path: s.path.clone(),
            token: s.token.clone().map(SecretString::from),
            username: s.username.clone(),
            password: s.password.clone().map(SecretString::from),
            namespace: s.namespace.clone(),
            services: s.services.clone(),
            labels: s.labels.clone(),
            service_label: s.service_label.clone(),
            metrics: s.metrics.clone(),
            repo: s.repo.clone(),
            paths: s.paths.clone(),
            from: s.from.clone(),
            context: s.context.clone(),
            timeout: s.timeout_ms.map(std::time::Duration::from_millis),
            ..SourceConfig::new(kind, name)
        };
        if kind == SourceKind::Github {
            // The shortcuts hold the credential and API of every GitHub table that has none.
            if source.token.is_none() {
                source.token = get(Key::GithubToken)
                    .filter(|(t, _)| !t.is_empty())
                    .map(|(t, _)| SecretString::from(t.to_owned()));
            }
            if source.url.is_none() {
                source.url = get(Key::GithubApiUrl).map(|(u, _)| u.to_owned());
            }
        }
        if source.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError(format!(
                "{at} has `timeout_ms = 0`; give a time limit in milliseconds above 0."
            )));
        }
        check_source(&source, &at)?;
        if !names.insert(source.name.clone()) {
            return Err(ConfigError(format!(
                "{at} is named `{}` like an earlier source; give each source its own `name`.",
                source.name
            )));
        }
        sources.push(source);
    }

    let shortcut = |key: Key, kind: SourceKind| -> Result<Option<SourceConfig>, ConfigError> {
        let Some((value, origin)) = get(key) else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(None);
        }
        let mut source = SourceConfig::new(kind, kind.as_str().to_owned());
        match kind {
            SourceKind::Bundle | SourceKind::Kubernetes => source.path = Some(PathBuf::from(value)),
            _ => {
                if !is_http_url(value) {
                    return Err(ConfigError::invalid(&key, origin, "an http(s) URL", value));
                }
                source.url = Some(value.to_owned());
            }
        }
        Ok(Some(source))
    };
    for (key, kind) in [
        (Key::Bundle, SourceKind::Bundle),
        (Key::PrometheusUrl, SourceKind::Prometheus),
        (Key::LokiUrl, SourceKind::Loki),
        (Key::Kubeconfig, SourceKind::Kubernetes),
    ] {
        if let Some(source) = shortcut(key, kind)? {
            if names.insert(source.name.clone()) {
                sources.push(source);
            }
        }
    }
    if let Some((url, origin)) = get(Key::GithubApiUrl) {
        if !is_http_url(url) {
            return Err(ConfigError::invalid(
                &Key::GithubApiUrl,
                origin,
                "an http(s) URL",
                url,
            ));
        }
    }
    Ok(sources)
}

fn check_source(source: &SourceConfig, at: &str) -> Result<(), ConfigError> {
    let need = |what: &str| {
        ConfigError(format!(
            "{at} (kind `{}`) needs `{what}`.",
            source.kind.as_str()
        ))
    };
    match source.kind {
        SourceKind::Bundle => {
            source.path.as_ref().ok_or_else(|| need("path"))?;
        }
        SourceKind::Prometheus | SourceKind::Loki => {
            let url = source.url.as_deref().ok_or_else(|| need("url"))?;
            if !is_http_url(url) {
                return Err(ConfigError(format!(
                    "{at} has url `{url}`; expected an http(s) URL."
                )));
            }
        }
        SourceKind::Github => {
            source
                .token
                .as_ref()
                .ok_or_else(|| need("token (or CAIRN_GITHUB_TOKEN)"))?;
            let repo = source
                .repo
                .as_deref()
                .ok_or_else(|| need("repo = \"owner/name\""))?;
            if cairn_connectors::github::parse_repo(repo).is_none() {
                return Err(ConfigError(format!(
                    "{at} has repo `{repo}`; expected `owner/name`."
                )));
            }
        }
        SourceKind::Pagerduty => {
            source.token.as_ref().ok_or_else(|| need("token"))?;
        }
        SourceKind::Kubernetes => {}
    }
    if let Some(url) = source.url.as_deref() {
        if !is_http_url(url) {
            return Err(ConfigError(format!(
                "{at} has url `{url}`; expected an http(s) URL."
            )));
        }
    }
    Ok(())
}

fn prefixed_secret(
    value: Option<(&str, Origin)>,
    key: Key,
    prefix: &str,
) -> Result<Option<SecretString>, ConfigError> {
    match value {
        None => Ok(None),
        Some(("", _)) => Ok(None),
        Some((v, origin)) if !v.starts_with(prefix) => Err(ConfigError(format!(
            "{} {origin} must be a token starting with `{prefix}` (the value is not shown).",
            key.describe()
        ))),
        Some((v, _)) => Ok(Some(SecretString::from(v.to_owned()))),
    }
}

fn url_value(value: Option<(&str, Origin)>, key: Key) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(("", _)) => Ok(None),
        Some((v, origin)) if !is_http_url(v) => {
            Err(ConfigError::invalid(&key, origin, "an http(s) URL", v))
        }
        Some((v, _)) => Ok(Some(v.to_owned())),
    }
}

fn parse_database_url(v: &str) -> Option<DatabaseUrl> {
    if v.starts_with("sqlite:") && v.len() > "sqlite:".len() {
        Some(DatabaseUrl::Sqlite(v.to_owned()))
    } else if (v.starts_with("postgres://") || v.starts_with("postgresql://")) && v.len() > 13 {
        Some(DatabaseUrl::Postgres(v.to_owned()))
    } else {
        None
    }
}

fn is_http_url(v: &str) -> bool {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

fn is_slack_id(v: &str, prefixes: &[char]) -> bool {
    let mut chars = v.chars();
    chars.next().is_some_and(|c| prefixes.contains(&c))
        && v.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::default();
        if let Some(text) = file {
            raw = raw.with_file(Path::new("cairn.toml"), text)?;
        }
        Config::from_raw(raw.with_env(env(vars)))
    }

    fn err(file: Option<&str>, vars: &[(&str, &str)]) -> String {
        load(file, vars)
            .expect_err("configuration should be rejected")
            .to_string()
    }

    #[test]
    fn defaults_need_no_file_and_no_environment() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            c.database_url,
            DatabaseUrl::Sqlite("sqlite://cairn.db?mode=rwc".into())
        );
        assert!(c.slack.is_none());
        assert!(c.sources.is_empty());
        assert!(c.pagerduty_webhook_secrets.is_empty());
        assert_eq!(c.llm.provider, LlmProvider::None);
        assert_eq!(c.data_dir, PathBuf::from("."));
        assert!(c.admins.is_empty());
    }

    #[test]
    fn environment_overrides_file() {
        let file = "listen = \"0.0.0.0:8080\"\ndatabase_url = \"sqlite://from-file.db\"\n";
        let c = load(Some(file), &[("CAIRN_LISTEN", "127.0.0.1:9999")]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.database_url.as_str(), "sqlite://from-file.db");
    }

    #[test]
    fn file_overrides_defaults() {
        let c = load(
            Some("data_dir = \"/var/lib/cairn\"\nadmins = [\"U1AAA\", \"U2BBB\"]\n"),
            &[],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cairn"));
        assert_eq!(c.admins, vec!["U1AAA", "U2BBB"]);
    }

    #[test]
    fn data_dir_follows_the_sqlite_file_else_data() {
        let c = load(
            None,
            &[(
                "CAIRN_DATABASE_URL",
                "sqlite:///srv/cairn/state.db?mode=rwc",
            )],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/cairn"));
        let c = load(None, &[("CAIRN_DATABASE_URL", "postgres://cairn@db/cairn")]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn comma_separated_lists() {
        let c = load(
            None,
            &[
                ("CAIRN_PAGERDUTY_WEBHOOK_SECRETS", "old, new"),
                ("CAIRN_ADMINS", "U1AAA,W2BBB"),
            ],
        )
        .unwrap();
        let secrets: Vec<&str> = c
            .pagerduty_webhook_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, vec!["old", "new"]);
        assert_eq!(c.admins, vec!["U1AAA", "W2BBB"]);
    }

    #[test]
    fn secrets_never_print() {
        let c = load(
            Some("[[sources]]\nkind = \"github\"\nname = \"gh\"\nrepo = \"acme/shop\"\ntoken = \"ghp_hunter2\"\n"),
            &[
                ("CAIRN_SLACK_BOT_TOKEN", "xoxb-topsecret"),
                ("CAIRN_SLACK_SIGNING_SECRET", "sig-topsecret"),
                ("CAIRN_API_TOKEN", "api-topsecret"),
                ("CAIRN_LLM_API_KEY", "sk-topsecret"),
                ("CAIRN_ALERTMANAGER_TOKEN", "am-topsecret"),
                ("CAIRN_PAGERDUTY_WEBHOOK_SECRETS", "pd-topsecret"),
            ],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert_eq!(c.slack.unwrap().bot_token.expose_secret(), "xoxb-topsecret");
    }

    #[test]
    fn several_sources_of_one_kind() {
        let file = r#"
[[sources]]
kind = "prometheus"
name = "prom-eu"
url = "http://prom-eu:9090"
services = ["checkout"]

[[sources]]
kind = "prometheus"
name = "prom-us"
url = "http://prom-us:9090"
labels = { region = "us" }
"#;
        let c = load(Some(file), &[("CAIRN_BUNDLE", "fixtures/x")]).unwrap();
        let names: Vec<&str> = c.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["prom-eu", "prom-us", "bundle"]);
        assert_eq!(c.sources[0].services, vec!["checkout"]);
        assert_eq!(
            c.sources[1].labels.get("region").map(String::as_str),
            Some("us")
        );
        assert_eq!(c.sources[2].path, Some(PathBuf::from("fixtures/x")));
    }

    #[test]
    fn live_source_tables_carry_what_each_kind_needs() {
        let file = r#"
[[sources]]
kind = "prometheus"
name = "prom"
url = "http://prom:9090"
service_label = "app"
metrics = { http_server_requests_seconds_count = "http_requests_total" }
timeout_ms = 1500

[[sources]]
kind = "github"
name = "shop"
repo = "acme/shop"
paths = { checkout = ["services/checkout", "charts/checkout"] }

[[sources]]
kind = "kubernetes"
name = "eu-1"
path = "/etc/cairn/kubeconfig"
context = "eu-1"
namespace = "shop"

[[sources]]
kind = "pagerduty"
token = "pd-rest-token"
from = "oncall@acme.test"
"#;
        let c = load(Some(file), &[("CAIRN_GITHUB_TOKEN", "ghp_fromenv")]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let prom = &c.sources[0];
        assert_eq!(prom.service_label.as_deref(), Some("app"));
        assert_eq!(
            prom.metrics
                .get("http_server_requests_seconds_count")
                .map(String::as_str),
            Some("http_requests_total")
        );
        assert_eq!(prom.timeout, Some(std::time::Duration::from_millis(1500)));
        let github = &c.sources[1];
        assert!(
            github.token.is_some(),
            "the shortcut's token fills the table"
        );
        assert_eq!(github.repo.as_deref(), Some("acme/shop"));
        assert_eq!(github.paths["checkout"].len(), 2);
        assert_eq!(c.sources[2].context.as_deref(), Some("eu-1"));
        assert_eq!(c.sources[3].from.as_deref(), Some("oncall@acme.test"));
        assert!(!format!("{c:?}").contains("ghp_fromenv"));

        let alone = load(None, &[("CAIRN_GITHUB_TOKEN", "ghp_x")]).unwrap();
        assert!(alone.sources.is_empty());
        assert!(
            alone.warnings[0].contains("names a `repo`"),
            "{:?}",
            alone.warnings
        );
    }

    #[test]
    fn each_bad_value_names_its_key_and_expectation() {
        let cases: &[(Option<&str>, &[(&str, &str)], &[&str])] = &[
            (None, &[("CAIRN_LISTEN", "nope")], &["`listen` (CAIRN_LISTEN)", "socket address", "`nope`"]),
            (Some("listen = \"nope\""), &[], &["`listen`", "in cairn.toml", "socket address"]),
            (None, &[("CAIRN_DATABASE_URL", "mysql://x")], &["`database_url`", "sqlite://", "postgres://"]),
            (None, &[("CAIRN_SLACK_BOT_TOKEN", "abc")], &["`slack_bot_token`", "`xoxb-`", "not shown"]),
            (None, &[("CAIRN_SLACK_BOT_TOKEN", "xoxb-1")], &["`slack_signing_secret`", "required"]),
            (None, &[("CAIRN_SLACK_APP_TOKEN", "xapp-1")], &["`slack_bot_token`", "Socket Mode"]),
            (None, &[("CAIRN_SLACK_API_URL", "http://fake/api")], &["`slack_api_url`", "ending in `/`"]),
            (None, &[("CAIRN_INCIDENT_CHANNEL", "#incidents")], &["`incident_channel`", "channel ID"]),
            (None, &[("CAIRN_ADMINS", "U1AAA,bob")], &["`admins`", "user IDs", "`bob`"]),
            (None, &[("CAIRN_LLM_PROVIDER", "gpt")], &["`llm_provider`", "none, openai or anthropic"]),
            (None, &[("CAIRN_LLM_BASE_URL", "localhost:8080")], &["`llm_base_url`", "http(s) URL"]),
            (None, &[("CAIRN_PROMETHEUS_URL", "prom:9090")], &["`prometheus_url`", "http(s) URL"]),
            (None, &[("CAIRN_GITHUB_API_URL", "ftp://x")], &["`github_api_url`", "http(s) URL"]),
            (Some("lisen = \"x\""), &[], &["unknown key `lisen`", "listen"]),
            (Some("listen = ["), &[], &["cairn.toml:1:", "not a valid Cairn configuration"]),
            (Some("listen = \"127.0.0.1:1\"\nlisten = \"x\""), &[], &["cairn.toml:", "duplicate key `listen`"]),
            (Some("[slack]\ntoken = \"x\""), &[], &["unknown key `slack`"]),
            (Some("[[sources]]\nname = \"a\""), &[], &["`sources[0]`", "no `kind`"]),
            (Some("[[sources]]\nkind = \"github\"\ntoken = \"t\""), &[], &["`sources[0]`", "needs `repo"]),
            (Some("[[sources]]\nkind = \"github\"\nrepo = \"acme\"\ntoken = \"t\""), &[], &["repo `acme`", "owner/name"]),
            (Some("[[sources]]\nkind = \"github\"\nrepo = \"a/b\""), &[], &["needs `token (or CAIRN_GITHUB_TOKEN)`"]),
            (Some("[[sources]]\nkind = \"prometheus\"\nurl = \"http://p\"\ntimeout_ms = 0"), &[], &["timeout_ms = 0"]),
            (Some("[[sources]]\nkind = \"datadog\""), &[], &["`sources[0]`", "`datadog`", "prometheus"]),
            (Some("[[sources]]\nkind = \"prometheus\""), &[], &["`sources[0]`", "needs `url`"]),
            (Some("[[sources]]\nkind = \"bundle\""), &[], &["needs `path`"]),
            (Some("[[sources]]\nkind = \"loki\"\nurl = \"loki\""), &[], &["http(s) URL"]),
            (Some("[[sources]]\nkind = \"bundle\"\npath = \"a\"\n[[sources]]\nkind = \"bundle\"\npath = \"b\""), &[], &["`sources[1]`", "named `bundle`"]),
            (Some("[[sources]]\nkind = \"bundle\"\npath = \"a\"\nurll = \"x\""), &[], &["unknown field `urll`"]),
        ];
        for (file, vars, needles) in cases {
            let message = err(*file, vars);
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "{message:?} should mention {needle:?}"
                );
            }
            assert!(message.ends_with('.'), "one sentence: {message:?}");
            assert_eq!(message.lines().count(), 1, "one line: {message:?}");
        }
    }

    #[test]
    fn socket_mode_needs_no_signing_secret() {
        // Over Socket Mode nothing arrives by HTTP from Slack, so there is nothing to verify.
        let c = load(
            None,
            &[
                ("CAIRN_SLACK_BOT_TOKEN", "xoxb-1"),
                ("CAIRN_SLACK_APP_TOKEN", "xapp-1-A1-2-abc"),
            ],
        )
        .unwrap();
        let slack = c.slack.unwrap();
        assert!(slack.signing_secret.is_none());
        assert_eq!(
            slack.app_token.as_ref().map(|t| t.expose_secret()),
            Some("xapp-1-A1-2-abc")
        );
        let message = err(
            None,
            &[
                ("CAIRN_SLACK_BOT_TOKEN", "xoxb-1"),
                ("CAIRN_SLACK_APP_TOKEN", "xoxb-2"),
            ],
        );
        assert!(
            message.contains("`slack_app_token`") && message.contains("`xapp-`"),
            "{message}"
        );
    }

    #[test]
    fn bad_token_is_not_echoed() {
        let message = err(None, &[("CAIRN_SLACK_BOT_TOKEN", "sekrit-value")]);
        assert!(!message.contains("sekrit"), "{message}");
    }
}
