//! Kubernetes as a source of changes (rollouts, scaling) and infrastructure events (events,
//! container terminations, node conditions), read through the API server with kube.
//!
//! The source is read-only: it only lists ReplicaSets, Events, Pods and Nodes and asks for
//! `/version`. Every list is paged (`limit` + `continue`) and every request goes through the
//! same time limit, retries with backoff and [`CircuitBreaker`] as the HTTP sources, so a dead
//! API server costs an investigation one fast error per query.
//!
//! Services are named the way the cluster names them: by a pod's (or ReplicaSet's) service
//! label ([`KubernetesConfig::service_label`], by default `app.kubernetes.io/name`, then
//! `app`). An event about a pod is attributed through the pod list read in the same query;
//! an object without labels at hand (a pod already gone, a ReplicaSet) is attributed by its
//! name with the ReplicaSet and pod hash suffixes stripped (`checkout-7d9f8c6b5-x2x9q` →
//! `checkout`), when that names a known service.
//!
//! Nodes belong to no service. A node event is reported with no service, for nodes that run a
//! pod this source covers (every node when the source covers all namespaces and services); a
//! query for one service gets the events of the nodes its pods run on, labelled with that
//! service, because a node going bad is what the service's investigation needs to see.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, ObjectList};
use kube::client::AuthError;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use serde::de::DeserializeOwned;

use crate::http::{cause, guarded, CircuitBreaker, Failure, Resilience};
use crate::model::{Change, ChangeKind, EventQuery, EventType, InfraEvent, TimeWindow};
use crate::source::{DataSource, SourceError};

/// Objects asked for per list request (kubectl's page size): large enough that a namespace
/// is a few requests, small enough that one answer stays well under the API server's limits.
pub const PAGE_SIZE: u32 = 500;

/// The most pages one list follows (`PAGE_SIZE` × this objects); a longer list is an error
/// rather than an unbounded walk, and a hostile `continue` cannot keep the source busy.
pub const MAX_PAGES: usize = 200;

/// The annotation the Deployment controller numbers its ReplicaSets with.
const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// The labels that name a service when none is configured, in order of preference.
const DEFAULT_SERVICE_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// How to reach one cluster and what of it this source covers.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// The source's name, for evidence and errors.
    pub name: String,
    /// The kubeconfig file; `None` infers one (`$KUBECONFIG` or `~/.kube/config`, else the
    /// in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None` is the file's current context.
    pub context: Option<String>,
    /// The namespace read; `None` is the context's namespace, else `default`; `*` or `all`
    /// reads every namespace.
    pub namespace: Option<String>,
    /// The label that names a pod's service; `None` reads `app.kubernetes.io/name`, then
    /// `app`.
    pub service_label: Option<String>,
    /// Services this source answers for; empty means any. A query for another service is not
    /// sent.
    pub services: Vec<String>,
    /// Time limit, retries and breaker of every request.
    pub resilience: Resilience,
}

/// Which namespaces the source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespaces {
    One(String),
    All,
}

/// A live Kubernetes cluster, read through its API server.
pub struct Kubernetes {
    name: String,
    client: kube::Client,
    namespaces: Namespaces,
    service_labels: Vec<String>,
    services: BTreeSet<String>,
    resilience: Resilience,
    breaker: CircuitBreaker,
    /// `host:port` of the API server, for errors (never the URL's user info).
    cluster: String,
}

impl std::fmt::Debug for Kubernetes {
    // By hand: the client holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .field("namespaces", &self.namespaces)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl Kubernetes {
    /// Reads the kubeconfig (or the in-cluster account) and builds the client. Nothing is
    /// sent to the cluster yet; [`DataSource::check`] asks it. A kubeconfig that cannot be
    /// read or an unknown context is [`SourceError::Unavailable`] naming the file or context.
    pub async fn connect(config: KubernetesConfig) -> Result<Self, SourceError> {
        // One TLS stack: rustls with ring, as for every other source. Installing it twice is
        // harmless; without it rustls would have to guess.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unavailable = |reason: String| SourceError::Unavailable {
            source_name: config.name.clone(),
            reason,
        };
        let mut kube_config = load(&config).await.map_err(unavailable)?;
        // Retries are ours (with the breaker's count); kube's own would multiply them.
        kube_config.default_retry = false;
        let cluster = match (
            kube_config.cluster_url.host(),
            kube_config.cluster_url.port_u16(),
        ) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => "the API server".to_owned(),
        };
        let namespaces = match config.namespace.as_deref().map(str::trim) {
            None | Some("") if kube_config.default_namespace.trim().is_empty() => {
                Namespaces::One("default".into())
            }
            None | Some("") => Namespaces::One(kube_config.default_namespace.clone()),
            Some("*" | "all") => Namespaces::All,
            Some(ns) => Namespaces::One(ns.to_owned()),
        };
        let client = kube::Client::try_from(kube_config)
            .map_err(|e| unavailable(describe(&cluster, "building the client", &e)))?;
        let service_labels = match config.service_label.as_deref().map(str::trim) {
            Some(label) if !label.is_empty() => vec![label.to_owned()],
            _ => DEFAULT_SERVICE_LABELS.map(str::to_owned).to_vec(),
        };
        Ok(Self {
            breaker: CircuitBreaker::new(&config.name, &config.resilience),
            name: config.name,
            client,
            namespaces,
            service_labels,
            services: config.services.into_iter().collect(),
            resilience: config.resilience,
            cluster,
        })
    }

    /// The namespace read, or `None` for all of them.
    pub fn namespace(&self) -> Option<&str> {
        match &self.namespaces {
            Namespaces::One(ns) => Some(ns),
            Namespaces::All => None,
        }
    }

    /// An API for a namespaced kind over the namespaces this source reads.
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespaces {
            Namespaces::One(ns) => Api::namespaced(self.client.clone(), ns),
            Namespaces::All => Api::all(self.client.clone()),
        }
    }

    /// Every object of a list, page by page.
    async fn list<K>(
        &self,
        what: &'static str,
        api: &Api<K>,
        forbidden: Forbidden,
    ) -> Result<Vec<K>, SourceError>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        let mut restarted = false;
        let mut pages = 0;
        loop {
            if pages == MAX_PAGES {
                return Err(self.unavailable(format!(
                    "listing {what}: more than {} objects; narrow the namespace",
                    MAX_PAGES * PAGE_SIZE as usize
                )));
            }
            pages += 1;
            let mut params = ListParams::default().limit(PAGE_SIZE);
            if let Some(token) = &token {
                params = params.continue_token(token);
            }
            let continuing = token.is_some();
            let page = self
                .call(what, || async {
                    // Answers that are not failures of the source: an expired `continue`
                    // (the list is restarted) and a list this account may not read.
                    match api.list(&params).await {
                        Err(kube::Error::Api(status)) if status.code == 410 && continuing => {
                            Ok(Page::Expired)
                        }
                        Err(kube::Error::Api(status))
                            if status.code == 403 && forbidden == Forbidden::Empty =>
                        {
                            Ok(Page::Forbidden)
                        }
                        Ok(list) => Ok(Page::Items(list)),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            let list: ObjectList<K> = match page {
                Page::Items(list) => list,
                Page::Forbidden => {
                    tracing::debug!(source = %self.name, what, "list forbidden; skipped");
                    return Ok(Vec::new());
                }
                // The snapshot the token pointed into is gone: start over once, on a fresh
                // one, rather than mix two snapshots.
                Page::Expired if !restarted => {
                    restarted = true;
                    items.clear();
                    token = None;
                    continue;
                }
                Page::Expired => {
                    return Err(self.unavailable(format!(
                        "listing {what}: the list changed faster than it could be paged"
                    )))
                }
            };
            items.extend(list.items);
            match list.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(self.bad(format!(
                        "listing {what}: the API server handed out the same continue token twice"
                    )))
                }
                Some(next) => token = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// One request through the breaker, the time limit and retries with backoff.
    async fn call<T, F, Fut>(&self, what: &str, mut request: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        // As for the HTTP sources: a refused question (403, 404, 410) is an answer, not
        // an outage; timeouts, 5xx, 429 and broken connections are.
        let r = self.resilience;
        guarded(
            &self.breaker,
            &self.name,
            r,
            || {
                let sent = request();
                async move {
                    match tokio::time::timeout(r.timeout, sent).await {
                        Ok(Ok(value)) => (Ok(value), None),
                        Err(_) => (Err(Failure::Timeout), None),
                        Ok(Err(e)) => {
                            let (failure, retry_after) = self.classify(what, e);
                            (Err(failure), retry_after)
                        }
                    }
                }
            },
            |wait| {
                self.unavailable(format!(
                    "{what}: rate limited; the API server asks to wait {} s",
                    wait.as_secs()
                ))
            },
        )
        .await
    }

    /// What a kube error means for the query, and how long the API server asked to wait.
    fn classify(&self, what: &str, error: kube::Error) -> (Failure, Option<Duration>) {
        match error {
            kube::Error::Api(status) => {
                let said = if status.message.trim().is_empty() {
                    crate::selector::snippet(&status.reason)
                } else {
                    crate::selector::snippet(&status.message)
                };
                let e = self.unavailable(format!("{what}: HTTP {}{said}", status.code));
                if status.code == 429 || status.code >= 500 {
                    let wait = status
                        .details
                        .as_ref()
                        .map(|d| d.retry_after_seconds)
                        .filter(|s| *s > 0)
                        .map(|s| Duration::from_secs(s.into()));
                    (Failure::Retryable(e), wait)
                } else {
                    (Failure::Final(e), None)
                }
            }
            kube::Error::SerdeError(e) => (
                Failure::Final(self.bad(format!(
                    "{what}: the answer is not the JSON the API documents: {e}"
                ))),
                None,
            ),
            kube::Error::FromUtf8(_) => (
                Failure::Final(self.bad(format!("{what}: the answer is not UTF-8"))),
                None,
            ),
            e @ (kube::Error::HyperError(_)
            | kube::Error::Service(_)
            | kube::Error::ReadEvents(_)) => (
                Failure::Retryable(self.unavailable(format!(
                    "{what}: cannot reach {}: {}",
                    self.cluster,
                    cause(&e)
                ))),
                None,
            ),
            e => (
                Failure::Final(self.unavailable(describe(&self.cluster, what, &e))),
                None,
            ),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> SourceError {
        SourceError::Unavailable {
            source_name: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn bad(&self, reason: impl Into<String>) -> SourceError {
        SourceError::BadData {
            source_name: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Who the answer may be about, or `None` when the query asks for a service this source
    /// does not cover (and nothing needs to be sent).
    fn scope<'a>(&'a self, query: &'a EventQuery) -> Option<Scope<'a>> {
        let service = query.service.as_deref();
        if service.is_some_and(|s| !self.services.is_empty() && !self.services.contains(s)) {
            return None;
        }
        Some(Scope {
            service,
            allowed: &self.services,
        })
    }

    /// The service a labelled object belongs to.
    fn labelled_service(&self, labels: Option<&BTreeMap<String, String>>) -> Option<String> {
        let labels = labels?;
        self.service_labels
            .iter()
            .find_map(|l| labels.get(l))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

#[async_trait]
impl DataSource for Kubernetes {
    fn name(&self) -> &str {
        &self.name
    }

    /// Asks the API server for its version.
    async fn check(&self) -> Result<(), SourceError> {
        let version = self
            .call("asking for the version", || self.client.apiserver_version())
            .await?;
        tracing::debug!(source = %self.name, version = %version.git_version, "API server answers");
        Ok(())
    }

    /// Rollouts (ReplicaSets a Deployment created in the window) and scaling
    /// (`ScalingReplicaSet` events).
    async fn changes(&self, query: &EventQuery) -> Result<Vec<Change>, SourceError> {
        let Some(scope) = self.scope(query) else {
            return Ok(Vec::new());
        };
        let (replica_sets_api, events_api) = (self.api::<ReplicaSet>(), self.api::<Event>());
        let (replica_sets, events) = futures::try_join!(
            self.list("listing replicasets", &replica_sets_api, Forbidden::Fail),
            self.list("listing events", &events_api, Forbidden::Fail),
        )?;
        let mut deployments: HashMap<String, String> = HashMap::new();
        let mut changes = Vec::new();
        for rs in &replica_sets {
            let Some(deployment) = owner(&rs.metadata, "Deployment") else {
                continue;
            };
            let labels = rs.metadata.labels.as_ref().or_else(|| {
                let template = rs.spec.as_ref()?.template.as_ref()?;
                template.metadata.as_ref()?.labels.as_ref()
            });
            let service = self
                .labelled_service(labels)
                .unwrap_or_else(|| deployment.to_owned());
            deployments
                .entry(deployment.to_owned())
                .or_insert_with(|| service.clone());
            let Some(created) = rs
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| utc(&t.0))
            else {
                continue;
            };
            if !query.window.contains(created) || !scope.admits(Some(&service)) {
                continue;
            }
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty());
            let images: Vec<&str> = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|s| {
                    s.containers
                        .iter()
                        .filter_map(|c| c.image.as_deref())
                        .collect()
                })
                .unwrap_or_default();
            let mut summary = format!("rolled out deployment/{deployment}");
            if let Some(revision) = &revision {
                summary.push_str(&format!(" revision {revision}"));
            }
            match images.as_slice() {
                [] => {}
                [image] => summary.push_str(&format!(" (image {image})")),
                images => summary.push_str(&format!(" (images {})", images.join(", "))),
            }
            changes.push(Change {
                ts: created,
                service,
                kind: ChangeKind::Deploy,
                summary,
                version: images.first().and_then(|i| image_version(i)),
                author: None,
                diff: None,
                link: None,
            });
        }
        for event in &events {
            if event.reason.as_deref() != Some("ScalingReplicaSet") {
                continue;
            }
            let Some(ts) = event_time(event).filter(|t| query.window.contains(*t)) else {
                continue;
            };
            let object = &event.involved_object;
            let name = object.name.as_deref().unwrap_or_default();
            let kind = object.kind.as_deref().unwrap_or("Deployment");
            // A Deployment is named after its service more often than not; its ReplicaSets'
            // labels say for sure.
            let service = deployments
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned());
            if !scope.admits(Some(&service)) {
                continue;
            }
            let message = event.message.as_deref().unwrap_or_default().trim();
            changes.push(Change {
                ts,
                service,
                kind: ChangeKind::Scale,
                summary: format!("{}/{name}: {message}", kind.to_lowercase()),
                version: None,
                author: None,
                diff: None,
                link: None,
            });
        }
        changes.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.summary.cmp(&b.summary)));
        Ok(changes)
    }

    /// Events, container terminations (OOMKilled, errors) and node conditions in the window.
    async fn events(&self, query: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
        let Some(scope) = self.scope(query) else {
            return Ok(Vec::new());
        };
        let (events_api, pods_api) = (self.api::<Event>(), self.api::<Pod>());
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        // Nodes are cluster-wide; an account confined to a namespace may not list them, and
        // that must not cost the events it may read.
        let (events, pods, nodes) = futures::try_join!(
            self.list("listing events", &events_api, Forbidden::Fail),
            self.list("listing pods", &pods_api, Forbidden::Fail),
            self.list("listing nodes", &nodes_api, Forbidden::Empty),
        )?;

        let pod_services: HashMap<(&str, &str), Option<String>> = pods
            .iter()
            .filter_map(|p| {
                let name = p.metadata.name.as_deref()?;
                let ns = p.metadata.namespace.as_deref().unwrap_or_default();
                Some((
                    (ns, name),
                    self.labelled_service(p.metadata.labels.as_ref()),
                ))
            })
            .collect();
        let mut known: BTreeSet<String> = self.services.clone();
        known.extend(pod_services.values().flatten().cloned());
        let pod_service = |ns: &str, name: &str| -> Option<String> {
            match pod_services.get(&(ns, name)) {
                Some(Some(service)) => Some(service.clone()),
                _ => service_from_name(name, &known),
            }
        };
        // Nodes this source covers: those running a pod in scope, or all of them when the
        // source covers the whole cluster.
        let whole_cluster = self.namespaces == Namespaces::All && scope.unrestricted();
        let covered_nodes: BTreeSet<&str> = pods
            .iter()
            .filter(|p| {
                let name = p.metadata.name.as_deref().unwrap_or_default();
                let ns = p.metadata.namespace.as_deref().unwrap_or_default();
                scope.admits(pod_service(ns, name).as_deref())
            })
            .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
            .collect();
        let node_covered = |node: &str| whole_cluster || covered_nodes.contains(node);
        let node_service = || query.service.clone();

        let mut out = Vec::new();
        for event in &events {
            let Some(ts) = event_time(event).filter(|t| query.window.contains(*t)) else {
                continue;
            };
            let object = &event.involved_object;
            let kind = object.kind.as_deref().unwrap_or("Unknown");
            let name = object.name.as_deref().unwrap_or_default();
            let service = match kind {
                "Node" if node_covered(name) => node_service(),
                "Node" => continue,
                "Pod" => {
                    let ns = object
                        .namespace
                        .as_deref()
                        .or(event.metadata.namespace.as_deref())
                        .unwrap_or_default();
                    pod_service(ns, name)
                }
                _ => service_from_name(name, &known),
            };
            if kind != "Node" && !scope.admits(service.as_deref()) {
                continue;
            }
            out.push(InfraEvent {
                ts,
                object: format!("{}/{name}", kind.to_lowercase()),
                kind: Some(kind.to_owned()),
                reason: event
                    .reason
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "Unknown".into()),
                message: event
                    .message
                    .as_deref()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                event_type: event_type(event.type_.as_deref()),
                service,
            });
        }

        for pod in &pods {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            let service = pod_service(ns, name);
            if !scope.admits(service.as_deref()) {
                continue;
            }
            let Some(status) = &pod.status else { continue };
            let containers = status
                .init_container_statuses
                .iter()
                .chain(status.container_statuses.iter())
                .flatten();
            for container in containers {
                let Some(terminated) = container
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                else {
                    continue;
                };
                let Some(ts) = terminated
                    .finished_at
                    .as_ref()
                    .and_then(|t| utc(&t.0))
                    .filter(|t| query.window.contains(*t))
                else {
                    continue;
                };
                let reason = terminated
                    .reason
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "Terminated".into());
                let mut message = format!(
                    "container {} terminated ({reason}, exit code {}); restart count {}",
                    container.name, terminated.exit_code, container.restart_count
                );
                if let Some(said) = terminated.message.as_deref().map(crate::selector::snippet) {
                    message.push_str(&said);
                }
                let failed = terminated.exit_code != 0 || reason == "OOMKilled";
                out.push(InfraEvent {
                    ts,
                    object: format!("pod/{name}"),
                    kind: Some("Pod".into()),
                    reason,
                    message,
                    event_type: Some(if failed {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    }),
                    service: service.clone(),
                });
            }
        }

        for node in &nodes {
            let Some(name) = node.metadata.name.as_deref() else {
                continue;
            };
            if !node_covered(name) {
                continue;
            }
            let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
            for condition in conditions.into_iter().flatten() {
                if let Some(event) = node_condition_event(name, condition, &query.window) {
                    out.push(InfraEvent {
                        service: node_service(),
                        ..event
                    });
                }
            }
        }

        out.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.object.cmp(&b.object)));
        Ok(out)
    }
}

/// Who an answer may be about: the query's service and the services the source covers.
struct Scope<'a> {
    service: Option<&'a str>,
    allowed: &'a BTreeSet<String>,
}

impl Scope<'_> {
    /// Whether an item of `service` (or of none) belongs in the answer. An item of no known
    /// service belongs only where nothing narrows the answer.
    fn admits(&self, service: Option<&str>) -> bool {
        match service {
            None => self.unrestricted(),
            Some(s) => {
                self.service.is_none_or(|q| q == s)
                    && (self.allowed.is_empty() || self.allowed.contains(s))
            }
        }
    }

    fn unrestricted(&self) -> bool {
        self.service.is_none() && self.allowed.is_empty()
    }
}

/// Whether a 403 on a list fails the query or reads as an empty list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forbidden {
    Fail,
    Empty,
}

/// One answer to a list request.
enum Page<K: Clone> {
    Items(ObjectList<K>),
    /// 410 Gone on a `continue`: the snapshot expired.
    Expired,
    /// 403 on a list that may be skipped.
    Forbidden,
}

/// Reads the kubeconfig (or the in-cluster account) the configuration names; the error says
/// what to fix and never quotes the file's contents (it holds credentials).
async fn load(config: &KubernetesConfig) -> Result<kube::Config, String> {
    let options = KubeConfigOptions {
        context: config.context.clone(),
        cluster: None,
        user: None,
    };
    let context = config.context.as_deref();
    match &config.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| kubeconfig_error(&e, &path.display().to_string(), context))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| kubeconfig_error(&e, &path.display().to_string(), context))
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| kubeconfig_error(&e, &default_kubeconfig(), context)),
        None => kube::Config::infer().await.map_err(|e| {
            // Inference tries the kubeconfig, then the in-cluster account; when a kubeconfig
            // exists but is broken, that is what needs fixing.
            let kubeconfig =
                std::error::Error::source(&e).and_then(|s| s.downcast_ref::<KubeconfigError>());
            match kubeconfig {
                None | Some(KubeconfigError::FindPath) => None,
                Some(KubeconfigError::ReadConfig(io, _))
                    if io.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Some(broken) => Some(kubeconfig_error(broken, &default_kubeconfig(), None)),
            }
            .unwrap_or_else(|| {
                format!(
                    "no kubeconfig at {} and not running in a cluster; set `kubeconfig`",
                    default_kubeconfig()
                )
            })
        }),
    }
}

/// Where kube looks for a kubeconfig when none is configured, for errors.
fn default_kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "~/.kube/config".into())
}

/// A kubeconfig error in words that name the file and context.
fn kubeconfig_error(error: &KubeconfigError, file: &str, context: Option<&str>) -> String {
    match error {
        KubeconfigError::ReadConfig(e, path) => {
            format!("cannot read kubeconfig {}: {e}", Path::new(path).display())
        }
        // The parser's message may quote the offending line, which may hold a token.
        KubeconfigError::Parse(e) => match e.location() {
            Some(at) => format!("kubeconfig {file} is not valid YAML (line {})", at.line()),
            None => format!("kubeconfig {file} is not valid YAML"),
        },
        KubeconfigError::LoadContext(name) => {
            format!("context `{name}` is not in kubeconfig {file}")
        }
        KubeconfigError::CurrentContextNotSet => match context {
            Some(name) => format!("context `{name}` is not in kubeconfig {file}"),
            None => format!("kubeconfig {file} has no current-context; set `context`"),
        },
        KubeconfigError::LoadClusterOfContext(name) => format!(
            "the cluster of context `{}` is not in kubeconfig {file}",
            context.unwrap_or(name)
        ),
        KubeconfigError::MissingClusterUrl => {
            format!("the cluster in kubeconfig {file} has no server URL")
        }
        other => format!("kubeconfig {file}: {other}"),
    }
}

/// A kube error that is neither an API answer nor a broken connection, in words that carry no
/// credential: an exec plugin's output and a parser's quote of a token are left out.
fn describe(cluster: &str, what: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Auth(auth) => {
            let why = match auth {
                AuthError::AuthExecRun { cmd, out } => {
                    format!("the exec plugin `{cmd}` failed ({})", out.status)
                }
                AuthError::AuthExecParse(_)
                | AuthError::ParseTokenKey(_)
                | AuthError::AuthExec(_) => "the exec plugin's answer could not be read".to_owned(),
                other @ (AuthError::ReadTokenFile(..)
                | AuthError::AuthExecStart(_)
                | AuthError::MissingCommand
                | AuthError::ExecPluginFailed
                | AuthError::ExecMissingClusterInfo
                | AuthError::UnrefreshableTokenResponse
                | AuthError::InvalidBasicAuth(_)
                | AuthError::InvalidBearerToken(_)
                | AuthError::NoValidNativeRootCA(_)) => other.to_string(),
                _ => "the credentials could not be used".to_owned(),
            };
            format!("{what}: cannot authenticate to {cluster}: {why}")
        }
        kube::Error::InferKubeconfig(e) => {
            format!("{what}: {}", kubeconfig_error(e, "the kubeconfig", None))
        }
        other => format!("{what}: {cluster}: {}", cause(other)),
    }
}

/// A Kubernetes timestamp as a chrono one (microseconds are all the API carries).
fn utc(t: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.as_microsecond())
}

/// When an event happened: its last occurrence, else the time of a new-style event, else its
/// first occurrence.
fn event_time(event: &Event) -> Option<DateTime<Utc>> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| &t.0)
        .or(event.event_time.as_ref().map(|t| &t.0))
        .or(event.first_timestamp.as_ref().map(|t| &t.0))
        .and_then(utc)
}

fn event_type(text: Option<&str>) -> Option<EventType> {
    match text? {
        "Normal" => Some(EventType::Normal),
        "Warning" => Some(EventType::Warning),
        _ => None,
    }
}

/// The name of the controlling owner of `kind`, if any.
fn owner<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller.unwrap_or(true))
        .map(|o| o.name.as_str())
}

/// The version an image reference runs: its tag, else its digest, else `latest` (what
/// Kubernetes pulls for an untagged image).
fn image_version(image: &str) -> Option<String> {
    let image = image.trim();
    if image.is_empty() {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A `:` before the last `/` is a registry port, not a tag.
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.rsplit_once(':'), digest) {
        (Some((_, tag)), _) if !tag.is_empty() => Some(tag.to_owned()),
        (_, Some(digest)) if !digest.is_empty() => Some(digest.to_owned()),
        _ => Some("latest".to_owned()),
    }
}

/// The known service an object's name stands for, trying the name itself, then without its
/// last one or two `-` segments (the pod suffix and the ReplicaSet's pod-template hash). No
/// more: `checkout-api` must not become `checkout`.
fn service_from_name(name: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut candidate = name;
    for _ in 0..3 {
        if known.contains(candidate) {
            return Some(candidate.to_owned());
        }
        candidate = candidate.rsplit_once('-')?.0;
    }
    None
}

/// The event a node condition stands for, when it changed inside the window: `Ready` not
/// true, or a pressure condition true. Reasons are the kubelet's own for the same events.
fn node_condition_event(
    node: &str,
    condition: &k8s_openapi::api::core::v1::NodeCondition,
    window: &TimeWindow,
) -> Option<InfraEvent> {
    let ts = condition
        .last_transition_time
        .as_ref()
        .and_then(|t| utc(&t.0))
        .filter(|t| window.contains(*t))?;
    let reason = match (condition.type_.as_str(), condition.status.as_str()) {
        ("Ready", "True") => return None,
        ("Ready", _) => "NodeNotReady",
        ("MemoryPressure", "True") => "NodeHasInsufficientMemory",
        ("DiskPressure", "True") => "NodeHasDiskPressure",
        ("PIDPressure", "True") => "NodeHasInsufficientPID",
        _ => return None,
    };
    let mut message = format!(
        "node {node}: condition {} is {}",
        condition.type_, condition.status
    );
    if let Some(why) = condition.reason.as_deref().filter(|r| !r.is_empty()) {
        message.push_str(&format!(" ({why})"));
    }
    if let Some(said) = condition.message.as_deref().map(crate::selector::snippet) {
        message.push_str(&said);
    }
    Some(InfraEvent {
        ts,
        object: format!("node/{node}"),
        kind: Some("Node".into()),
        reason: reason.into(),
        message,
        event_type: Some(EventType::Warning),
        service: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_versions() {
        assert_eq!(image_version("checkout:1.4.2").as_deref(), Some("1.4.2"));
        assert_eq!(
            image_version("registry:5000/team/checkout:v2").as_deref(),
            Some("v2")
        );
        assert_eq!(
            image_version("registry:5000/team/checkout").as_deref(),
            Some("latest")
        );
        assert_eq!(
            image_version("checkout@sha256:abc").as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(
            image_version("checkout:1.2@sha256:abc").as_deref(),
            Some("1.2")
        );
        assert_eq!(image_version("  "), None);
    }

    #[test]
    fn names_lose_at_most_two_hash_suffixes() {
        let known: BTreeSet<String> = ["checkout", "checkout-api"].map(String::from).into();
        let of = |n: &str| service_from_name(n, &known);
        assert_eq!(of("checkout-7d9f8c6b5-x2x9q").as_deref(), Some("checkout"));
        assert_eq!(of("checkout-7d9f8c6b5").as_deref(), Some("checkout"));
        assert_eq!(
            of("checkout-api-7d9f8c6b5-x2x9q").as_deref(),
            Some("checkout-api")
        );
        assert_eq!(of("checkout-api-x-y-z"), None);
        assert_eq!(of("payments-7d9f8c6b5-x2x9q"), None);
        assert_eq!(of(""), None);
    }
}
