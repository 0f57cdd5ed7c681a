//! GitHub (or GitHub Enterprise Server) as a change source: the deployments, releases,
//! merged pull requests and commits of one repository, as [`Change`]s of the services they
//! touch.
//!
//! Which service a change belongs to comes from [`GithubConfig::paths`]: a changed file
//! under one of a service's path prefixes belongs to that service, so a pull request that
//! touches two services is one change of each. A repository configured with no paths and
//! exactly one service is that service's everywhere. Deployments and releases name no
//! files; they belong to the service their payload, task or tag names, else to the
//! repository's one service. A change that maps to no service is dropped: it tells an
//! investigation nothing it can place.
//!
//! Every list is read newest first over `Link` pages, at most [`GithubConfig::max_pages`]
//! of them, and lists that cannot be bounded by time on the server (pull requests,
//! deployments, releases) stop at the first page that reaches back past the window.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::http::{next_link, Auth, Endpoint, Resilience};
use crate::model::{Change, ChangeKind, EventQuery, TimeWindow};
use crate::source::{DataSource, SourceError};

/// The public GitHub API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Pages read of one list unless configured otherwise (100 items a page).
pub const DEFAULT_MAX_PAGES: usize = 10;

/// GitHub's largest page.
const PER_PAGE: &str = "100";

/// Requests for pull request files (or per-path commits) in flight at once: enough to hide
/// latency, few enough not to trip GitHub's secondary rate limit on concurrent requests.
const READS_AT_ONCE: usize = 4;

/// Characters of a commit sha shown as a version, as GitHub's web pages show them.
const SHORT_SHA: usize = 7;

/// Files of a pull request named in a change's `diff`; the rest are counted.
const FILES_SHOWN: usize = 3;

/// File extensions whose changes are configuration rather than code.
const CONFIG_EXTENSIONS: &[&str] = &["yaml", "yml", "json", "toml", "ini", "properties", "env"];

/// Directories whose contents are configuration whatever their extension.
const CONFIG_DIRS: &[&str] = &["config", "helm"];

/// Files with a configuration extension that declare dependencies: changing them ships
/// different code, so they are a deploy, not a configuration change.
const DEPENDENCY_MANIFESTS: &[&str] = &[
    "cargo.toml",
    "pyproject.toml",
    "package.json",
    "package-lock.json",
    "composer.json",
];

/// How to reach one repository and which of its paths are which service.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The source's name, for evidence and errors.
    pub name: String,
    /// The API's base URL: [`DEFAULT_API_URL`], or `https://<host>/api/v3` for GitHub
    /// Enterprise Server.
    pub api_url: String,
    /// A token that can read the repository (contents, pull requests, deployments).
    pub token: SecretString,
    /// `owner/name`.
    pub repo: String,
    /// Service → path prefixes in the repository that are that service's.
    pub paths: BTreeMap<String, Vec<String>>,
    /// Services this repository holds; with no `paths` and exactly one service, the whole
    /// repository is that service.
    pub services: Vec<String>,
    /// The most pages read of one list.
    pub max_pages: usize,
    /// Time limits, retries and breaker of every request.
    pub resilience: Resilience,
}

impl GithubConfig {
    /// A source named `name` over `repo` (`owner/name`) on github.com, with no service
    /// mapping yet.
    pub fn new(name: &str, repo: &str, token: SecretString) -> Self {
        Self {
            name: name.to_owned(),
            api_url: DEFAULT_API_URL.to_owned(),
            token,
            repo: repo.to_owned(),
            paths: BTreeMap::new(),
            services: Vec::new(),
            max_pages: DEFAULT_MAX_PAGES,
            resilience: Resilience::default(),
        }
    }
}

/// A live GitHub repository as a source of changes.
#[derive(Debug)]
pub struct Github {
    config: GithubConfig,
    endpoint: Endpoint,
    /// `repos/{owner}/{name}`: every request's path starts with it.
    repo_path: String,
    /// `https://github.com/{owner}/{name}`: where people read about a commit.
    html_repo: String,
    services: ServiceMap,
}

impl Github {
    /// A source over the repository `config` names; nothing is sent until it is asked. A
    /// `repo` that is not `owner/name` or an `api_url` that is not HTTP is refused.
    pub fn new(config: GithubConfig) -> Result<Self, SourceError> {
        let refuse = |reason: String| SourceError::Unavailable {
            source_name: config.name.clone(),
            reason,
        };
        let Some((owner, name)) = parse_repo(&config.repo) else {
            return Err(refuse(format!(
                "the repository `{}` is not `owner/name` (e.g. `acme/shop`)",
                config.repo
            )));
        };
        if !(config.api_url.starts_with("https://") || config.api_url.starts_with("http://")) {
            return Err(refuse(format!(
                "the API URL `{}` is not an http(s) URL",
                config.api_url
            )));
        }
        let endpoint = Endpoint::new(
            &config.name,
            &config.api_url,
            Auth::Bearer(config.token.clone()),
            config.resilience,
        )
        .with_headers(vec![
            ("Accept", "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version", "2022-11-28".into()),
        ]);
        let repo_path = format!("repos/{owner}/{name}");
        let html_repo = format!("{}/{owner}/{name}", html_base(endpoint.base()));
        let services = ServiceMap::new(&config.paths, &config.services);
        Ok(Self {
            config,
            endpoint,
            repo_path,
            html_repo,
            services,
        })
    }

    /// Every item of a list, read over its `Link` pages until there is no next page,
    /// [`GithubConfig::max_pages`] were read, or `more` says a page reached far enough.
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        more: impl Fn(&[T]) -> bool,
    ) -> Result<Vec<T>, SourceError> {
        let max_pages = self.config.max_pages.max(1);
        let mut reply = self.endpoint.get(path, query).await?;
        let mut items = Vec::new();
        let mut pages = 1;
        loop {
            let page: Vec<T> = reply.json(self.name())?;
            let go_on = !page.is_empty() && more(&page);
            items.extend(page);
            let Some(next) = reply.header("link").and_then(next_link) else {
                break;
            };
            if !go_on {
                break;
            }
            if pages >= max_pages {
                tracing::warn!(
                    source = %self.config.name,
                    path,
                    pages,
                    "more pages than max_pages; the rest are not read"
                );
                break;
            }
            reply = self.endpoint.get_absolute(&next).await?;
            pages += 1;
        }
        Ok(items)
    }

    /// Deployments created in the window (the list is newest first).
    async fn deployments(&self, window: &TimeWindow) -> Result<Vec<Deployment>, SourceError> {
        let path = format!("{}/deployments", self.repo_path);
        let start = window.start;
        let mut deployments = self
            .list(
                &path,
                &[("per_page", PER_PAGE.into())],
                |page: &[Deployment]| page.iter().all(|d| d.created_at >= start),
            )
            .await?;
        deployments.retain(|d| window.contains(d.created_at));
        Ok(deployments)
    }

    /// Releases published in the window. The list is ordered by creation, newest first; a
    /// draft created long before the window and published inside it may sit past the page
    /// where reading stops, which is the price of not reading every release ever made.
    async fn releases(&self, window: &TimeWindow) -> Result<Vec<Release>, SourceError> {
        let path = format!("{}/releases", self.repo_path);
        let start = window.start;
        let mut releases = self
            .list(
                &path,
                &[("per_page", PER_PAGE.into())],
                |page: &[Release]| page.iter().all(|r| r.created_at >= start),
            )
            .await?;
        releases.retain(|r| r.published_at.is_some_and(|t| window.contains(t)));
        Ok(releases)
    }

    /// Pull requests merged in the window, with the files each touched.
    async fn merged_pulls(
        &self,
        window: &TimeWindow,
    ) -> Result<Vec<(Pull, Vec<PullFile>)>, SourceError> {
        let path = format!("{}/pulls", self.repo_path);
        let query = [
            ("state", "closed".to_owned()),
            ("sort", "updated".to_owned()),
            ("direction", "desc".to_owned()),
            ("per_page", PER_PAGE.to_owned()),
        ];
        let start = window.start;
        // Merging updates a pull request, so once the list (newest update first) reaches
        // one updated before the window, no later page holds a merge inside it.
        let pulls = self
            .list(&path, &query, |page: &[Pull]| {
                page.iter().all(|p| p.updated_at >= start)
            })
            .await?;
        let merged = pulls
            .into_iter()
            .filter(|p| p.merged_at.is_some_and(|t| window.contains(t)));
        futures::stream::iter(merged)
            .map(|pull| async move {
                let path = format!("{}/pulls/{}/files", self.repo_path, pull.number);
                let files = self
                    .list(
                        &path,
                        &[("per_page", PER_PAGE.into())],
                        |_: &[PullFile]| true,
                    )
                    .await?;
                Ok::<_, SourceError>((pull, files))
            })
            .buffered(READS_AT_ONCE)
            .try_collect()
            .await
    }

    /// Commits in the window under the paths of the services asked about, each with the
    /// services whose paths it was listed for.
    async fn commits(
        &self,
        window: &TimeWindow,
        service: Option<&str>,
    ) -> Result<Vec<(Vec<String>, Commit)>, SourceError> {
        let path = format!("{}/commits", self.repo_path);
        let since = window.start.to_rfc3339_opts(SecondsFormat::Secs, true);
        let until = ceil_to_second(window.end).to_rfc3339_opts(SecondsFormat::Secs, true);
        let asked = |s: &str| service.is_none_or(|want| want == s);
        // One request per distinct prefix, however many services share it.
        // (Owned keys: a borrowed one would tie the futures below to a lifetime the
        // `Send` bound of the trait method cannot name.)
        let mut prefixes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(whole) = &self.services.whole_repo {
            if asked(whole) {
                prefixes
                    .entry(String::new())
                    .or_default()
                    .push(whole.clone());
            }
        }
        for (prefix, owner) in &self.services.prefixes {
            if asked(owner) {
                prefixes
                    .entry(prefix.clone())
                    .or_default()
                    .push(owner.clone());
            }
        }
        let lists = futures::stream::iter(prefixes)
            .map(|(prefix, services)| {
                let mut query = vec![
                    ("since", since.clone()),
                    ("until", until.clone()),
                    ("per_page", PER_PAGE.to_owned()),
                ];
                if !prefix.is_empty() {
                    query.push(("path", prefix));
                }
                let path = &path;
                async move {
                    let commits = self.list(path, &query, |_: &[Commit]| true).await?;
                    Ok::<_, SourceError>((services, commits))
                }
            })
            .buffered(READS_AT_ONCE)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(lists
            .into_iter()
            .flat_map(|(services, commits)| commits.into_iter().map(move |c| (services.clone(), c)))
            .collect())
    }

    /// A deployment as a change of the service it names, or of the repository's one service.
    fn deployment_change(&self, d: Deployment) -> Option<Change> {
        let named = payload_service(&d.payload)
            .into_iter()
            .chain(d.task.as_deref().map(task_service))
            .find(|s| self.services.known.contains(*s))
            .map(str::to_owned);
        let service = named.or_else(|| self.services.whole_repo.clone())?;
        let short = short_sha(&d.sha);
        let mut summary = format!(
            "deploy {}",
            if d.git_ref.is_empty() {
                &short
            } else {
                &d.git_ref
            }
        );
        if let Some(env) = d.environment.as_deref().filter(|e| !e.is_empty()) {
            summary.push_str(&format!(" to {env}"));
        }
        if let Some(text) = d
            .description
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            summary.push_str(&format!(": {text}"));
        }
        Some(Change {
            ts: d.created_at,
            service,
            kind: ChangeKind::Deploy,
            summary,
            version: if short.is_empty() {
                Some(d.git_ref).filter(|r| !r.is_empty())
            } else {
                Some(short)
            },
            author: d.creator.map(|u| u.login),
            diff: None,
            link: self.commit_link(&d.sha),
        })
    }

    /// A published release as a deploy of the service its tag names (`checkout-v1.2.0`,
    /// `checkout/v1.2.0`, `checkout@1.2.0`), or of the repository's one service.
    fn release_change(&self, r: Release) -> Option<Change> {
        let ts = r.published_at?;
        let service = self
            .services
            .of_tag(&r.tag_name)
            .or_else(|| self.services.whole_repo.clone())?;
        let summary = match r.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => format!("release {}: {name}", r.tag_name),
            None => format!("release {}", r.tag_name),
        };
        Some(Change {
            ts,
            service,
            kind: ChangeKind::Deploy,
            summary,
            version: Some(r.tag_name),
            author: r.author.map(|u| u.login),
            diff: None,
            link: Some(r.html_url),
        })
    }

    /// One change per service a merged pull request touched: a configuration change when
    /// every file of that service it touched is configuration, else a deploy.
    fn pull_changes(&self, pull: &Pull, files: &[PullFile]) -> Vec<Change> {
        let Some(merged_at) = pull.merged_at else {
            return Vec::new();
        };
        let mut touched: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for file in files {
            // A rename moves a file out of one place and into another: both are touched.
            for name in
                std::iter::once(file.filename.as_str()).chain(file.previous_filename.as_deref())
            {
                for service in self.services.of_file(name) {
                    touched.entry(service.to_owned()).or_default().insert(name);
                }
            }
        }
        if touched.is_empty() {
            if let Some(whole) = &self.services.whole_repo {
                // A pull request GitHub lists no files for still merged into the service.
                touched.insert(whole.clone(), BTreeSet::new());
            }
        }
        touched
            .into_iter()
            .map(|(service, names)| {
                let config_only = !names.is_empty() && names.iter().all(|n| is_config(n));
                Change {
                    ts: merged_at,
                    service,
                    kind: if config_only {
                        ChangeKind::Config
                    } else {
                        ChangeKind::Deploy
                    },
                    summary: format!("merged #{}: {}", pull.number, pull.title.trim()),
                    version: pull
                        .merge_commit_sha
                        .as_deref()
                        .map(short_sha)
                        .filter(|s| !s.is_empty()),
                    author: pull.user.as_ref().map(|u| u.login.clone()),
                    diff: files_line(&names),
                    link: Some(pull.html_url.clone()),
                }
            })
            .collect()
    }

    /// A commit as a deploy of each service it was listed for.
    fn commit_changes(&self, services: Vec<String>, c: Commit) -> Result<Vec<Change>, SourceError> {
        let ts = c
            .commit
            .committer
            .as_ref()
            .and_then(|s| s.date)
            .or_else(|| c.commit.author.as_ref().and_then(|s| s.date))
            .ok_or_else(|| self.endpoint.bad(format!("commit {} has no date", c.sha)))?;
        let summary = c
            .commit
            .message
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let author = c
            .author
            .map(|u| u.login)
            .or_else(|| c.commit.author.and_then(|s| s.name));
        let version = Some(short_sha(&c.sha)).filter(|s| !s.is_empty());
        Ok(services
            .into_iter()
            .map(|service| Change {
                ts,
                service,
                kind: ChangeKind::Deploy,
                summary: summary.clone(),
                version: version.clone(),
                author: author.clone(),
                diff: None,
                link: Some(c.html_url.clone()),
            })
            .collect())
    }

    /// The web page of a commit; `None` when the sha is not one (a hostile answer cannot
    /// make a link point elsewhere).
    fn commit_link(&self, sha: &str) -> Option<String> {
        (!sha.is_empty() && sha.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| format!("{}/commit/{sha}", self.html_repo))
    }
}

#[async_trait]
impl DataSource for Github {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn check(&self) -> Result<(), SourceError> {
        // Reading the repository proves the URL, the token and its access at once.
        let reply = self.endpoint.get(&self.repo_path, &[]).await?;
        let _: RepoInfo = reply.json(self.name())?;
        Ok(())
    }

    async fn changes(&self, query: &EventQuery) -> Result<Vec<Change>, SourceError> {
        let service = query.service.as_deref();
        if service.is_some_and(|s| !self.services.known.contains(s)) {
            return Ok(Vec::new());
        }
        let window = query.window;
        let (deployments, releases, pulls, commits) = futures::try_join!(
            self.deployments(&window),
            self.releases(&window),
            self.merged_pulls(&window),
            self.commits(&window, service),
        )?;
        // A merge commit is the pull request already listed; report it once, as the pull
        // request, which says more.
        let merged: HashSet<&str> = pulls
            .iter()
            .filter_map(|(p, _)| p.merge_commit_sha.as_deref())
            .collect();
        let mut changes: Vec<Change> = Vec::new();
        changes.extend(
            deployments
                .into_iter()
                .filter_map(|d| self.deployment_change(d)),
        );
        changes.extend(releases.into_iter().filter_map(|r| self.release_change(r)));
        for (pull, files) in &pulls {
            changes.extend(self.pull_changes(pull, files));
        }
        for (services, commit) in commits {
            if merged.contains(commit.sha.as_str()) {
                continue;
            }
            changes.extend(self.commit_changes(services, commit)?);
        }
        changes.retain(|c| window.contains(c.ts) && service.is_none_or(|s| c.service == s));
        // The same commit is listed once for each of a service's prefixes it touches.
        changes.sort_by(|a, b| {
            (a.ts, &a.service, &a.summary, &a.version, &a.link)
                .cmp(&(b.ts, &b.service, &b.summary, &b.version, &b.link))
        });
        changes.dedup();
        tracing::debug!(source = %self.config.name, changes = changes.len(), "changes read");
        Ok(changes)
    }
}

/// Which services a path, tag or name belongs to.
#[derive(Debug)]
struct ServiceMap {
    /// Path prefix (no leading or trailing `/`; empty is the whole repository) → service.
    prefixes: Vec<(String, String)>,
    /// The one service the whole repository is, when no paths are configured.
    whole_repo: Option<String>,
    /// Every configured service.
    known: BTreeSet<String>,
}

impl ServiceMap {
    fn new(paths: &BTreeMap<String, Vec<String>>, services: &[String]) -> Self {
        let prefixes = paths
            .iter()
            .flat_map(|(service, prefixes)| {
                prefixes
                    .iter()
                    .map(move |p| (p.trim_matches('/').to_owned(), service.clone()))
            })
            .collect();
        let whole_repo = match services {
            [only] if paths.is_empty() => Some(only.clone()),
            _ => None,
        };
        let known = paths.keys().chain(services).cloned().collect();
        Self {
            prefixes,
            whole_repo,
            known,
        }
    }

    /// The services a file of the repository belongs to.
    fn of_file<'a>(&'a self, file: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let file = file.trim_start_matches('/');
        let by_path = self
            .prefixes
            .iter()
            .filter(move |(prefix, _)| under(file, prefix))
            .map(|(_, service)| service.as_str());
        self.whole_repo.as_deref().into_iter().chain(by_path)
    }

    /// The configured service a release tag is named after, the longest name first so that
    /// `checkout-api-v2` is `checkout-api`'s, not `checkout`'s.
    fn of_tag(&self, tag: &str) -> Option<String> {
        let mut names: Vec<&String> = self.known.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        names
            .into_iter()
            .find(|name| {
                tag.strip_prefix(name.as_str()).is_some_and(|rest| {
                    rest.starts_with('/') || rest.starts_with('@') || rest.starts_with("-v")
                })
            })
            .cloned()
    }
}

/// Whether `file` lies under `prefix` as a path: `svc/a` holds `svc/a/x`, not `svc/ab/x`.
fn under(file: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || file
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a changed file is configuration rather than code.
fn is_config(file: &str) -> bool {
    let mut parts = file.rsplit('/');
    let base = parts.next().unwrap_or(file).to_ascii_lowercase();
    if parts.any(|dir| CONFIG_DIRS.contains(&dir.to_ascii_lowercase().as_str())) {
        return true;
    }
    if DEPENDENCY_MANIFESTS.contains(&base.as_str()) {
        return false;
    }
    // `.env` has no stem; `prod.env` and `app.yaml` have extensions.
    let extension = base.rsplit_once('.').map_or("", |(_, ext)| ext);
    CONFIG_EXTENSIONS.contains(&extension)
}

/// `acme/shop` → (`acme`, `shop`); `None` for anything that is not one owner and one name
/// of the characters GitHub allows.
pub fn parse_repo(repo: &str) -> Option<(&str, &str)> {
    let (owner, name) = repo.trim().split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (valid(owner) && valid(name)).then_some((owner, name))
}

/// The web address that goes with an API address: `https://api.github.com` →
/// `https://github.com`, `https://ghe.example.com/api/v3` → `https://ghe.example.com`.
fn html_base(api: &str) -> String {
    let api = api.trim_end_matches('/');
    if let Some(host) = api.strip_suffix("/api/v3") {
        return host.to_owned();
    }
    match api.split_once("://") {
        Some((scheme, rest)) if rest.starts_with("api.") => {
            format!("{scheme}://{}", &rest["api.".len()..])
        }
        _ => api.to_owned(),
    }
}

/// The first characters of a sha, as GitHub shows it.
fn short_sha(sha: &str) -> String {
    sha.chars().take(SHORT_SHA).collect()
}

/// `t` rounded up to a whole second, so that `until` never cuts the window short.
fn ceil_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos() == 0 {
        return t;
    }
    DateTime::from_timestamp(t.timestamp().saturating_add(1), 0).unwrap_or(t)
}

/// The service a deployment payload names: `{"service": "checkout"}`, as an object or as
/// the JSON text GitHub also allows a payload to be.
fn payload_service(payload: &serde_json::Value) -> Option<&str> {
    match payload {
        serde_json::Value::Object(map) => map.get("service").and_then(|s| s.as_str()),
        // A payload sent as JSON text was parsed when it was read; anything else names
        // nothing.
        _ => None,
    }
}

/// The service a deployment task names: `checkout` or `deploy:checkout`.
fn task_service(task: &str) -> &str {
    task.strip_prefix("deploy:").unwrap_or(task)
}

/// `files: a, b, c and 2 more`, for a change's `diff`.
fn files_line(names: &BTreeSet<&str>) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let shown: Vec<&str> = names.iter().take(FILES_SHOWN).copied().collect();
    let rest = names.len().saturating_sub(FILES_SHOWN);
    Some(if rest == 0 {
        format!("files: {}", shown.join(", "))
    } else {
        format!("files: {} and {rest} more", shown.join(", "))
    })
}

/// `GET /repos/{owner}/{repo}`: only proves the answer is a repository.
#[derive(Deserialize)]
struct RepoInfo {
    #[serde(rename = "full_name")]
    _full_name: String,
}

/// A GitHub account, as lists name authors.
#[derive(Debug, Deserialize)]
struct User {
    login: String,
}

/// One item of `GET /repos/{owner}/{repo}/deployments`.
#[derive(Debug, Deserialize)]
struct Deployment {
    #[serde(default)]
    sha: String,
    #[serde(default, rename = "ref")]
    git_ref: String,
    #[serde(default)]
    task: Option<String>,
    #[serde(default, deserialize_with = "payload")]
    payload: serde_json::Value,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    creator: Option<User>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    created_at: DateTime<Utc>,
}

/// A deployment payload is an object or the JSON text of one; both become the object.
fn payload<'de, D: serde::Deserializer<'de>>(de: D) -> Result<serde_json::Value, D::Error> {
    let value = serde_json::Value::deserialize(de)?;
    Ok(match value {
        serde_json::Value::String(text) => {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        }
        other => other,
    })
}

/// One item of `GET /repos/{owner}/{repo}/releases`.
#[derive(Debug, Deserialize)]
struct Release {
    tag_name: String,
    #[serde(default)]
    name: Option<String>,
    html_url: String,
    #[serde(deserialize_with = "crate::time::deserialize")]
    created_at: DateTime<Utc>,
    /// `null` for a draft.
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    published_at: Option<DateTime<Utc>>,
    #[serde(default)]
    author: Option<User>,
}

/// One item of `GET /repos/{owner}/{repo}/pulls`.
#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    title: String,
    html_url: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    updated_at: DateTime<Utc>,
    /// `null` for a pull request closed without merging.
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
}

/// One item of `GET /repos/{owner}/{repo}/pulls/{number}/files`.
#[derive(Debug, Deserialize)]
struct PullFile {
    filename: String,
    /// Set when the file was renamed.
    #[serde(default)]
    previous_filename: Option<String>,
}

/// One item of `GET /repos/{owner}/{repo}/commits`.
#[derive(Debug, Deserialize)]
struct Commit {
    sha: String,
    html_url: String,
    commit: CommitDetail,
    /// The GitHub account of the author; `null` when the email matches none.
    #[serde(default)]
    author: Option<User>,
}

/// The git commit inside a commit item.
#[derive(Debug, Deserialize)]
struct CommitDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    author: Option<Signature>,
    #[serde(default)]
    committer: Option<Signature>,
}

/// A git author or committer line.
#[derive(Debug, Deserialize)]
struct Signature {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    date: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_addresses_follow_the_api_address() {
        assert_eq!(html_base("https://api.github.com"), "https://github.com");
        assert_eq!(html_base("https://api.github.com/"), "https://github.com");
        assert_eq!(
            html_base("https://ghe.example.com/api/v3"),
            "https://ghe.example.com"
        );
        assert_eq!(html_base("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn repositories_are_owner_and_name() {
        assert_eq!(parse_repo("acme/shop"), Some(("acme", "shop")));
        assert_eq!(parse_repo("a-b/c_d.e"), Some(("a-b", "c_d.e")));
        for bad in [
            "acme",
            "acme/",
            "/shop",
            "acme/shop/x",
            "acme/sh op",
            "../x",
            "a/..",
            "",
        ] {
            assert_eq!(parse_repo(bad), None, "{bad}");
        }
    }

    #[test]
    fn configuration_is_told_from_code() {
        for config in [
            "services/checkout/app.yaml",
            "x/settings.YML",
            "a/b.json",
            "svc/.env",
            "svc/prod.env",
            "svc/app.properties",
            "svc/config/flags.go",
            "deploy/helm/checkout/templates/deployment.tpl",
        ] {
            assert!(is_config(config), "{config}");
        }
        for code in [
            "services/checkout/main.go",
            "svc/Cargo.toml",
            "web/package.json",
            "Makefile",
            "svc/configs.rs",
        ] {
            assert!(!is_config(code), "{code}");
        }
    }

    #[test]
    fn prefixes_hold_whole_path_segments() {
        assert!(under("svc/a/x.go", "svc/a"));
        assert!(under("svc/a", "svc/a"));
        assert!(!under("svc/ab/x.go", "svc/a"));
        assert!(under("anything", ""));
    }

    #[test]
    fn tags_name_the_longest_matching_service() {
        let map = ServiceMap::new(
            &BTreeMap::new(),
            &["checkout".to_owned(), "checkout-api".to_owned()],
        );
        assert_eq!(
            map.of_tag("checkout-api-v2.0.0").as_deref(),
            Some("checkout-api")
        );
        assert_eq!(map.of_tag("checkout-v1").as_deref(), Some("checkout"));
        assert_eq!(map.of_tag("checkout/v1").as_deref(), Some("checkout"));
        assert_eq!(map.of_tag("checkout@1.0").as_deref(), Some("checkout"));
        assert_eq!(map.of_tag("v1.0.0"), None);
        assert_eq!(map.of_tag("checkoutv1"), None);
    }
}
