//! The Kubernetes source against a fake API server on 127.0.0.1 that answers the documented
//! list shapes (`/api/v1/namespaces/{ns}/events`, `…/pods`, `/apis/apps/v1/…/replicasets`,
//! `/api/v1/nodes`, `/version`), reached through a kubeconfig written to a temporary
//! directory with a bearer-token user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_connectors::http::Resilience;
use cairn_connectors::kubernetes::{Kubernetes, KubernetesConfig};
use cairn_connectors::{
    Change, ChangeKind, DataSource, EventQuery, EventType, InfraEvent, SourceError, TimeWindow,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "test-token-8f3a1c";

/// Long enough to never fire unless something hangs.
const NO_HANG: Duration = Duration::from_secs(20);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// The window every query asks about: 10:00–11:00.
fn window() -> TimeWindow {
    TimeWindow::new(at("2024-05-01T10:00:00Z"), at("2024-05-01T11:00:00Z")).unwrap()
}

fn query(service: Option<&str>) -> EventQuery {
    EventQuery {
        window: window(),
        service: service.map(str::to_owned),
    }
}

fn fast() -> Resilience {
    Resilience {
        timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(1),
        max_retry_after: Duration::from_millis(10),
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_secs(60),
    }
}

/// A kubeconfig for the fake: one cluster, one token user, one context whose namespace is
/// `context_namespace`.
fn write_kubeconfig(dir: &Path, server: &str, context_namespace: &str) -> PathBuf {
    let file = dir.join("kubeconfig.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {server}
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: {context_namespace}
current-context: fake
users:
- name: tester
  user:
    token: {TOKEN}
"
        ),
    )
    .unwrap();
    file
}

fn config(kubeconfig: &Path) -> KubernetesConfig {
    KubernetesConfig {
        name: "k8s-test".into(),
        kubeconfig: Some(kubeconfig.to_owned()),
        context: None,
        namespace: None,
        service_label: None,
        services: Vec::new(),
        resilience: fast(),
    }
}

// ---- the cluster's objects, in the API's JSON shapes ----

fn list(kind: &str, api_version: &str, items: Vec<Value>, next: Option<&str>) -> Value {
    let mut metadata = json!({ "resourceVersion": "48213" });
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items })
}

fn event(
    name: &str,
    kind: &str,
    object: &str,
    reason: &str,
    message: &str,
    type_: &str,
    times: Value,
) -> Value {
    let mut e = json!({
        "metadata": { "name": name, "namespace": "prod", "uid": format!("uid-{name}") },
        "involvedObject": { "kind": kind, "name": object, "namespace": "prod", "apiVersion": "v1" },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": { "component": "kubelet" },
        "count": 1,
    });
    for (k, v) in times.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn events() -> Vec<Value> {
    vec![
        event(
            "checkout-7d9f8c6b5-x2x9q.17c",
            "Pod",
            "checkout-7d9f8c6b5-x2x9q",
            "BackOff",
            "Back-off restarting failed container checkout in pod checkout-7d9f8c6b5-x2x9q",
            "Warning",
            json!({ "firstTimestamp": "2024-05-01T10:15:00Z", "lastTimestamp": "2024-05-01T10:21:00Z" }),
        ),
        // A new-style event (events.k8s.io) has only `eventTime`; its pod is gone.
        event(
            "payments-5c8f7d9b4-gone1.17d",
            "Pod",
            "payments-5c8f7d9b4-gone1",
            "FailedScheduling",
            "0/3 nodes are available: 3 Insufficient memory.",
            "Warning",
            json!({ "eventTime": "2024-05-01T10:25:00.123456Z", "lastTimestamp": null }),
        ),
        event(
            "checkout.17a",
            "Deployment",
            "checkout",
            "ScalingReplicaSet",
            "Scaled up replica set checkout-7d9f8c6b5 to 3",
            "Normal",
            json!({ "firstTimestamp": "2024-05-01T10:05:00Z", "lastTimestamp": "2024-05-01T10:05:00Z" }),
        ),
        event(
            "checkout-7d9f8c6b5-x2x9q.16f",
            "Pod",
            "checkout-7d9f8c6b5-x2x9q",
            "Unhealthy",
            "Readiness probe failed",
            "Warning",
            json!({ "lastTimestamp": "2024-05-01T09:00:00Z" }),
        ),
        event(
            "worker-xyz.17e",
            "Pod",
            "worker-xyz",
            "Pulled",
            "Successfully pulled image \"busybox\"",
            "Normal",
            json!({ "firstTimestamp": "2024-05-01T10:40:00Z" }),
        ),
    ]
}

fn container_status(name: &str, restarts: i32, terminated: Option<Value>) -> Value {
    let mut s = json!({
        "name": name,
        "image": format!("{name}:1"),
        "imageID": format!("docker.io/library/{name}@sha256:0a1b"),
        "ready": true,
        "restartCount": restarts,
        "started": true,
        "state": { "running": { "startedAt": "2024-05-01T10:20:05Z" } },
        "lastState": {},
    });
    if let Some(t) = terminated {
        s["lastState"] = json!({ "terminated": t });
    }
    s
}

fn pod(name: &str, labels: Value, node: &str, statuses: Vec<Value>) -> Value {
    json!({
        "metadata": { "name": name, "namespace": "prod", "uid": format!("uid-{name}"), "labels": labels },
        "spec": { "nodeName": node, "containers": [{ "name": "main", "image": "main:1" }] },
        "status": { "phase": "Running", "containerStatuses": statuses },
    })
}

fn pods() -> Vec<Value> {
    vec![
        pod(
            "checkout-7d9f8c6b5-x2x9q",
            json!({ "app.kubernetes.io/name": "checkout", "pod-template-hash": "7d9f8c6b5" }),
            "node-a",
            vec![container_status(
                "checkout",
                3,
                Some(json!({
                    "exitCode": 137, "reason": "OOMKilled",
                    "startedAt": "2024-05-01T10:02:00Z", "finishedAt": "2024-05-01T10:20:00Z",
                    "containerID": "containerd://abc"
                })),
            )],
        ),
        pod(
            "payments-5c8f7d9b4-abcde",
            json!({ "app": "payments" }),
            "node-b",
            vec![container_status(
                "payments",
                1,
                Some(json!({
                    "exitCode": 1, "reason": "Error",
                    "finishedAt": "2024-05-01T09:00:00Z"
                })),
            )],
        ),
        pod(
            "worker-xyz",
            json!({}),
            "node-c",
            vec![container_status("worker", 0, None)],
        ),
    ]
}

fn condition(type_: &str, status: &str, since: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": "2024-05-01T10:59:00Z", "lastTransitionTime": since,
    })
}

fn node(name: &str, conditions: Vec<Value>) -> Value {
    json!({
        "metadata": { "name": name, "uid": format!("uid-{name}") },
        "status": { "conditions": conditions },
    })
}

fn nodes() -> Vec<Value> {
    let ready = |since| {
        condition(
            "Ready",
            "True",
            since,
            "KubeletReady",
            "kubelet is posting ready status",
        )
    };
    vec![
        node(
            "node-a",
            vec![condition(
                "Ready",
                "Unknown",
                "2024-05-01T10:30:00Z",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )],
        ),
        node(
            "node-b",
            vec![
                ready("2024-04-01T00:00:00Z"),
                condition(
                    "MemoryPressure",
                    "True",
                    "2024-05-01T10:35:00Z",
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                ),
            ],
        ),
        // Not ready, but before the window.
        node(
            "node-c",
            vec![condition(
                "Ready",
                "False",
                "2024-05-01T08:00:00Z",
                "KubeletNotReady",
                "PLEG is not healthy",
            )],
        ),
        // Not ready in the window, but runs no pod of the namespace.
        node(
            "node-d",
            vec![condition(
                "Ready",
                "False",
                "2024-05-01T10:50:00Z",
                "KubeletNotReady",
                "container runtime is down",
            )],
        ),
    ]
}

fn replica_set(
    name: &str,
    deployment: Option<&str>,
    revision: &str,
    created: &str,
    labels: Value,
    image: &str,
) -> Value {
    let mut rs = json!({
        "metadata": {
            "name": name, "namespace": "prod", "uid": format!("uid-{name}"),
            "creationTimestamp": created,
            "labels": labels,
            "annotations": { "deployment.kubernetes.io/revision": revision },
        },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "main", "image": image }] },
            },
        },
        "status": { "replicas": 3 },
    });
    if let Some(d) = deployment {
        rs["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": d,
            "uid": format!("uid-{d}"), "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    rs
}

fn replica_sets() -> Vec<Value> {
    vec![
        replica_set(
            "checkout-7d9f8c6b5",
            Some("checkout"),
            "3",
            "2024-05-01T10:04:00Z",
            json!({ "app.kubernetes.io/name": "checkout", "pod-template-hash": "7d9f8c6b5" }),
            "registry.example.com:5000/shop/checkout:1.4.2",
        ),
        replica_set(
            "checkout-6b8d7f5c4",
            Some("checkout"),
            "2",
            "2024-04-30T09:00:00Z",
            json!({ "app.kubernetes.io/name": "checkout", "pod-template-hash": "6b8d7f5c4" }),
            "registry.example.com:5000/shop/checkout:1.4.1",
        ),
        replica_set(
            "payments-5c8f7d9b4",
            Some("payments"),
            "7",
            "2024-05-01T10:45:00Z",
            json!({ "app": "payments", "pod-template-hash": "5c8f7d9b4" }),
            "payments:2.0.0",
        ),
        replica_set(
            "standalone-abc",
            None,
            "1",
            "2024-05-01T10:10:00Z",
            json!({ "app": "standalone" }),
            "standalone:1",
        ),
    ]
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
        "gitVersion": "v1.33.1", "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean", "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64",
    })
}

/// Serves `body` with status 200 at `at` (any query).
async fn serve(server: &MockServer, at: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// The cluster's objects in namespace `ns` (the API paths of `*`: cluster-wide).
async fn serve_namespace(server: &MockServer, ns: &str) {
    let (core, apps) = if ns == "*" {
        ("/api/v1".to_owned(), "/apis/apps/v1".to_owned())
    } else {
        (
            format!("/api/v1/namespaces/{ns}"),
            format!("/apis/apps/v1/namespaces/{ns}"),
        )
    };
    serve(
        server,
        &format!("{core}/events"),
        list("EventList", "v1", events(), None),
    )
    .await;
    serve(
        server,
        &format!("{core}/pods"),
        list("PodList", "v1", pods(), None),
    )
    .await;
    serve(
        server,
        &format!("{apps}/replicasets"),
        list("ReplicaSetList", "apps/v1", replica_sets(), None),
    )
    .await;
}

/// A fake API server with the cluster's objects in `prod`, and a kubeconfig for it whose
/// context namespace is `prod`.
struct Cluster {
    server: MockServer,
    /// Holds the kubeconfig.
    _dir: TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn empty(context_namespace: &str) -> Self {
        let server = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = write_kubeconfig(dir.path(), &server.uri(), context_namespace);
        Self {
            server,
            _dir: dir,
            kubeconfig,
        }
    }

    async fn prod() -> Self {
        let cluster = Self::empty("prod").await;
        serve_namespace(&cluster.server, "prod").await;
        serve(
            &cluster.server,
            "/api/v1/nodes",
            list("NodeList", "v1", nodes(), None),
        )
        .await;
        serve(&cluster.server, "/version", version()).await;
        cluster
    }

    async fn source(&self) -> Kubernetes {
        self.source_with(|_| {}).await
    }

    async fn source_with(&self, change: impl FnOnce(&mut KubernetesConfig)) -> Kubernetes {
        let mut config = config(&self.kubeconfig);
        change(&mut config);
        Kubernetes::connect(config).await.unwrap()
    }

    async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap()
    }

    async fn paths(&self) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect()
    }
}

async fn changes(source: &Kubernetes, q: &EventQuery) -> Result<Vec<Change>, SourceError> {
    tokio::time::timeout(NO_HANG, source.changes(q))
        .await
        .expect("changes() hung")
}

async fn infra(source: &Kubernetes, q: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
    tokio::time::timeout(NO_HANG, source.events(q))
        .await
        .expect("events() hung")
}

fn objects(events: &[InfraEvent]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| (e.object.as_str(), e.reason.as_str()))
        .collect()
}

// ---- changes ----

#[tokio::test]
async fn a_rollout_is_a_deploy_change_with_its_image_tag() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    let changes = changes(&source, &query(None)).await.unwrap();

    let deploys: Vec<&Change> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Deploy)
        .collect();
    assert_eq!(deploys.len(), 2, "{changes:#?}");
    assert_eq!(
        *deploys[0],
        Change {
            ts: at("2024-05-01T10:04:00Z"),
            service: "checkout".into(),
            kind: ChangeKind::Deploy,
            summary: "rolled out deployment/checkout revision 3 (image registry.example.com:5000/shop/checkout:1.4.2)".into(),
            version: Some("1.4.2".into()),
            author: None,
            diff: None,
            link: None,
        }
    );
    assert_eq!(deploys[1].service, "payments");
    assert_eq!(deploys[1].version.as_deref(), Some("2.0.0"));
    assert!(deploys[1].summary.contains("revision 7"));
    // In time order; the old ReplicaSet and the one no Deployment owns are not rollouts.
    assert!(changes.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert!(!changes
        .iter()
        .any(|c| c.summary.contains("standalone") || c.summary.contains("1.4.1")));

    // Read-only, and authenticated with the kubeconfig's token.
    for request in cluster.requests().await {
        assert_eq!(request.method.as_str(), "GET");
        assert_eq!(
            request
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            format!("Bearer {TOKEN}")
        );
    }
}

#[tokio::test]
async fn scaling_a_replica_set_is_a_scale_change() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    let changes = changes(&source, &query(None)).await.unwrap();

    let scales: Vec<&Change> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Scale)
        .collect();
    assert_eq!(scales.len(), 1, "{changes:#?}");
    assert_eq!(scales[0].ts, at("2024-05-01T10:05:00Z"));
    assert_eq!(scales[0].service, "checkout");
    assert_eq!(
        scales[0].summary,
        "deployment/checkout: Scaled up replica set checkout-7d9f8c6b5 to 3"
    );
}

// ---- events ----

#[tokio::test]
async fn an_oomkilled_container_is_an_infra_event_of_its_pod() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    let events = infra(&source, &query(None)).await.unwrap();

    let oom: Vec<&InfraEvent> = events.iter().filter(|e| e.reason == "OOMKilled").collect();
    assert_eq!(oom.len(), 1, "{events:#?}");
    let oom = oom[0];
    assert_eq!(oom.ts, at("2024-05-01T10:20:00Z"));
    assert_eq!(oom.object, "pod/checkout-7d9f8c6b5-x2x9q");
    assert_eq!(oom.kind.as_deref(), Some("Pod"));
    assert_eq!(oom.service.as_deref(), Some("checkout"));
    assert_eq!(oom.event_type, Some(EventType::Warning));
    assert!(
        oom.message.contains("container checkout"),
        "{}",
        oom.message
    );
    assert!(oom.message.contains("restart count 3"), "{}", oom.message);
    assert!(oom.message.contains("exit code 137"), "{}", oom.message);
    // The payments container's termination lies before the window.
    assert!(!events.iter().any(|e| e.reason == "Error"));
}

#[tokio::test]
async fn node_conditions_in_the_window_are_warnings_without_a_service() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    let events = infra(&source, &query(None)).await.unwrap();

    let node_events: Vec<&InfraEvent> = events
        .iter()
        .filter(|e| e.object.starts_with("node/"))
        .collect();
    assert_eq!(
        objects(&node_events.iter().map(|e| (*e).clone()).collect::<Vec<_>>()),
        [
            ("node/node-a", "NodeNotReady"),
            ("node/node-b", "NodeHasInsufficientMemory")
        ],
        "node-c changed before the window; node-d runs nothing of this namespace"
    );
    let not_ready = node_events[0];
    assert_eq!(not_ready.ts, at("2024-05-01T10:30:00Z"));
    assert_eq!(not_ready.kind.as_deref(), Some("Node"));
    assert_eq!(not_ready.event_type, Some(EventType::Warning));
    assert_eq!(not_ready.service, None);
    assert!(not_ready
        .message
        .contains("Kubelet stopped posting node status."));
    assert!(node_events[1].message.contains("MemoryPressure is True"));
}

#[tokio::test]
async fn events_are_mapped_with_their_service_in_time_order() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    let events = infra(&source, &query(None)).await.unwrap();

    assert_eq!(
        objects(&events),
        [
            ("deployment/checkout", "ScalingReplicaSet"),
            ("pod/checkout-7d9f8c6b5-x2x9q", "OOMKilled"),
            ("pod/checkout-7d9f8c6b5-x2x9q", "BackOff"),
            ("pod/payments-5c8f7d9b4-gone1", "FailedScheduling"),
            ("node/node-a", "NodeNotReady"),
            ("node/node-b", "NodeHasInsufficientMemory"),
            ("pod/worker-xyz", "Pulled"),
        ],
        "the readiness failure at 09:00 lies before the window"
    );
    let back_off = &events[2];
    assert_eq!(
        *back_off,
        InfraEvent {
            ts: at("2024-05-01T10:21:00Z"),
            object: "pod/checkout-7d9f8c6b5-x2x9q".into(),
            kind: Some("Pod".into()),
            reason: "BackOff".into(),
            message:
                "Back-off restarting failed container checkout in pod checkout-7d9f8c6b5-x2x9q"
                    .into(),
            event_type: Some(EventType::Warning),
            service: Some("checkout".into()),
        }
    );
    // The pod is gone: its service comes from its name, without the hashes.
    let scheduling = &events[3];
    assert_eq!(scheduling.ts, at("2024-05-01T10:25:00.123456Z"));
    assert_eq!(scheduling.service.as_deref(), Some("payments"));
    assert_eq!(scheduling.event_type, Some(EventType::Warning));
    // The Deployment is named after its service; an unlabelled pod has none.
    assert_eq!(events[0].service.as_deref(), Some("checkout"));
    assert_eq!(events[0].event_type, Some(EventType::Normal));
    assert_eq!(events[6].service, None);
}

// ---- scope: namespace, pages, services ----

#[tokio::test]
async fn requests_go_to_the_configured_namespace_only() {
    // The context says `staging`; the source is configured for `prod`.
    let cluster = Cluster::empty("staging").await;
    serve_namespace(&cluster.server, "prod").await;
    serve_namespace(&cluster.server, "staging").await;
    serve(
        &cluster.server,
        "/api/v1/nodes",
        list("NodeList", "v1", nodes(), None),
    )
    .await;
    let source = cluster
        .source_with(|c| c.namespace = Some("prod".into()))
        .await;
    assert_eq!(source.namespace(), Some("prod"));

    assert!(!changes(&source, &query(None)).await.unwrap().is_empty());
    assert!(!infra(&source, &query(None)).await.unwrap().is_empty());

    let mut paths = cluster.paths().await;
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/prod/events",
            "/api/v1/namespaces/prod/pods",
            "/api/v1/nodes",
            "/apis/apps/v1/namespaces/prod/replicasets",
        ]
    );
}

#[tokio::test]
async fn without_a_namespace_the_contexts_is_read() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    assert_eq!(source.namespace(), Some("prod"));
    infra(&source, &query(None)).await.unwrap();
    assert!(cluster
        .paths()
        .await
        .iter()
        .all(|p| p.starts_with("/api/v1/namespaces/prod/") || p == "/api/v1/nodes"));
}

#[tokio::test]
async fn all_namespaces_are_read_cluster_wide() {
    let cluster = Cluster::empty("prod").await;
    serve_namespace(&cluster.server, "*").await;
    serve(
        &cluster.server,
        "/api/v1/nodes",
        list("NodeList", "v1", nodes(), None),
    )
    .await;
    let source = cluster
        .source_with(|c| c.namespace = Some("all".into()))
        .await;
    assert_eq!(source.namespace(), None);

    let events = infra(&source, &query(None)).await.unwrap();
    // The whole cluster is covered, so every node is.
    assert!(objects(&events).contains(&("node/node-d", "NodeNotReady")));
    let mut paths = cluster.paths().await;
    paths.sort();
    paths.dedup();
    assert_eq!(paths, ["/api/v1/events", "/api/v1/nodes", "/api/v1/pods"]);
}

#[tokio::test]
async fn lists_follow_continue_tokens() {
    let cluster = Cluster::empty("prod").await;
    let all = events();
    let at_path = "/api/v1/namespaces/prod/events";
    Mock::given(method("GET"))
        .and(path(at_path))
        .and(query_param_is_missing("continue"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(
            "EventList",
            "v1",
            all[..2].to_vec(),
            Some("page-2-token"),
        )))
        .expect(1)
        .mount(&cluster.server)
        .await;
    Mock::given(method("GET"))
        .and(path(at_path))
        .and(query_param("continue", "page-2-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(
            "EventList",
            "v1",
            all[2..].to_vec(),
            None,
        )))
        .expect(1)
        .mount(&cluster.server)
        .await;
    serve(
        &cluster.server,
        "/api/v1/namespaces/prod/pods",
        list("PodList", "v1", pods(), None),
    )
    .await;
    serve(
        &cluster.server,
        "/api/v1/nodes",
        list("NodeList", "v1", vec![], None),
    )
    .await;
    let source = cluster.source().await;

    let events = infra(&source, &query(None)).await.unwrap();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    // From the first page and from the second.
    assert!(reasons.contains(&"BackOff"), "{reasons:?}");
    assert!(reasons.contains(&"FailedScheduling"), "{reasons:?}");
    assert!(reasons.contains(&"ScalingReplicaSet"), "{reasons:?}");
    assert!(reasons.contains(&"Pulled"), "{reasons:?}");
    // Every list asks for a bounded page.
    for request in cluster.requests().await {
        assert!(
            request
                .url
                .query_pairs()
                .any(|(k, v)| k == "limit" && v == "500"),
            "{}",
            request.url
        );
    }
    cluster.server.verify().await;
}

#[tokio::test]
async fn a_query_for_one_service_answers_only_for_it() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;

    let events = infra(&source, &query(Some("checkout"))).await.unwrap();
    assert_eq!(
        objects(&events),
        [
            ("deployment/checkout", "ScalingReplicaSet"),
            ("pod/checkout-7d9f8c6b5-x2x9q", "OOMKilled"),
            ("pod/checkout-7d9f8c6b5-x2x9q", "BackOff"),
            ("node/node-a", "NodeNotReady"),
        ],
        "node-a runs the checkout pod"
    );
    assert!(events
        .iter()
        .all(|e| e.service.as_deref() == Some("checkout")));

    let changes = changes(&source, &query(Some("checkout"))).await.unwrap();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(changes.iter().all(|c| c.service == "checkout"));
}

#[tokio::test]
async fn a_source_restricted_to_services_answers_only_for_them() {
    let cluster = Cluster::prod().await;
    let source = cluster
        .source_with(|c| c.services = vec!["payments".into()])
        .await;

    let events = infra(&source, &query(None)).await.unwrap();
    assert_eq!(
        objects(&events),
        [
            ("pod/payments-5c8f7d9b4-gone1", "FailedScheduling"),
            ("node/node-b", "NodeHasInsufficientMemory"),
        ]
    );
    let changes = changes(&source, &query(None)).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0].service, "payments");

    // A query for a service it does not cover is not sent.
    let asked = cluster.requests().await.len();
    assert!(infra(&source, &query(Some("checkout")))
        .await
        .unwrap()
        .is_empty());
    assert!(changes_of(&source, "checkout").await.is_empty());
    assert_eq!(cluster.requests().await.len(), asked);
}

async fn changes_of(source: &Kubernetes, service: &str) -> Vec<Change> {
    changes(source, &query(Some(service))).await.unwrap()
}

#[tokio::test]
async fn a_configured_service_label_names_services() {
    let cluster = Cluster::prod().await;
    let source = cluster
        .source_with(|c| c.service_label = Some("pod-template-hash".into()))
        .await;
    let events = infra(&source, &query(Some("7d9f8c6b5"))).await.unwrap();
    assert!(objects(&events).contains(&("pod/checkout-7d9f8c6b5-x2x9q", "OOMKilled")));
    // `app` is not read when another label is configured.
    assert!(infra(&source, &query(Some("payments")))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn nodes_the_account_may_not_list_do_not_fail_events() {
    let cluster = Cluster::empty("prod").await;
    serve_namespace(&cluster.server, "prod").await;
    Mock::given(method("GET"))
        .and(path("/api/v1/nodes"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "nodes is forbidden: User \"system:serviceaccount:prod:cairn\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
            "reason": "Forbidden", "details": { "kind": "nodes" }, "code": 403
        })))
        .mount(&cluster.server)
        .await;
    let source = cluster.source().await;
    let events = infra(&source, &query(None)).await.unwrap();
    assert!(objects(&events).contains(&("pod/checkout-7d9f8c6b5-x2x9q", "OOMKilled")));
    assert!(!events.iter().any(|e| e.object.starts_with("node/")));
}

// ---- failures ----

#[tokio::test]
async fn check_reads_the_api_server_version() {
    let cluster = Cluster::prod().await;
    let source = cluster.source().await;
    tokio::time::timeout(NO_HANG, source.check())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cluster.paths().await, ["/version"]);
}

#[tokio::test]
async fn a_500_storm_is_unavailable_then_the_breaker_fails_fast() {
    let cluster = Cluster::empty("prod").await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500
        })))
        .mount(&cluster.server)
        .await;
    let source = cluster.source().await;

    for _ in 0..2 {
        let error = tokio::time::timeout(NO_HANG, source.check())
            .await
            .unwrap()
            .unwrap_err();
        let SourceError::Unavailable {
            source_name,
            reason,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(source_name, "k8s-test");
        assert!(reason.contains("500"), "{reason}");
        assert!(reason.contains("etcdserver: request timed out"), "{reason}");
        assert!(!error.to_string().contains(TOKEN));
    }
    // Each query tried once and retried twice.
    assert_eq!(cluster.requests().await.len(), 6);

    // Two failed queries in a row opened the breaker: no request is sent any more.
    let error = infra(&source, &query(None)).await.unwrap_err();
    assert!(
        matches!(error, SourceError::Unavailable { .. }),
        "{error:?}"
    );
    let error = tokio::time::timeout(NO_HANG, source.check())
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.to_string().contains("not asking again"), "{error}");
    assert_eq!(cluster.requests().await.len(), 6);
}

#[tokio::test]
async fn refused_questions_are_answers_and_never_open_the_breaker() {
    let cluster = Cluster::empty("prod").await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404
        })))
        .mount(&cluster.server)
        .await;
    let source = cluster.source().await;
    // Twice the breaker's threshold, each refused at once and never retried, and each
    // still sent: the API server is up, it said no.
    for asked in 1..=4 {
        let error = tokio::time::timeout(NO_HANG, source.check())
            .await
            .unwrap()
            .unwrap_err();
        assert!(error.to_string().contains("404"), "{error}");
        assert!(!error.to_string().contains("not asking again"), "{error}");
        assert_eq!(cluster.requests().await.len(), asked);
    }
}

#[tokio::test]
async fn an_unreachable_api_server_is_unavailable() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"), "prod");
    let source = Kubernetes::connect(config(&kubeconfig)).await.unwrap();
    let error = infra(&source, &query(None)).await.unwrap_err();
    let SourceError::Unavailable { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        reason.contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{reason}"
    );
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_slow_api_server_times_out_promptly() {
    let cluster = Cluster::empty("prod").await;
    Mock::given(method("GET"))
        .and(path("/version"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(version())
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&cluster.server)
        .await;
    let source = cluster.source().await;
    let error = tokio::time::timeout(NO_HANG, source.check())
        .await
        .expect("the time limit did not fire")
        .unwrap_err();
    assert!(
        matches!(&error, SourceError::Timeout { source_name } if source_name == "k8s-test"),
        "{error:?}"
    );
    // A timeout is retried once, not `retries` times.
    assert_eq!(cluster.requests().await.len(), 2);
}

#[tokio::test]
async fn a_garbage_body_is_bad_data() {
    let cluster = Cluster::empty("prod").await;
    Mock::given(method("GET"))
        .and(path("/apis/apps/v1/namespaces/prod/replicasets"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("<html>proxy says hi</html>", "text/html"),
        )
        .mount(&cluster.server)
        .await;
    // Valid JSON, but not an event list.
    serve(
        &cluster.server,
        "/api/v1/namespaces/prod/events",
        json!({ "kind": "EventList", "items": [{ "involvedObject": 42 }] }),
    )
    .await;
    serve(
        &cluster.server,
        "/api/v1/namespaces/prod/pods",
        list("PodList", "v1", pods(), None),
    )
    .await;
    serve(
        &cluster.server,
        "/api/v1/nodes",
        list("NodeList", "v1", nodes(), None),
    )
    .await;
    let source = cluster.source().await;

    let error = changes(&source, &query(None)).await.unwrap_err();
    assert!(matches!(error, SourceError::BadData { .. }), "{error:?}");
    let error = infra(&source, &query(None)).await.unwrap_err();
    let SourceError::BadData {
        source_name,
        reason,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(source_name, "k8s-test");
    assert!(reason.contains("listing events"), "{reason}");
}

#[tokio::test]
async fn a_missing_kubeconfig_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig.yaml");
    let error = Kubernetes::connect(config(&missing)).await.unwrap_err();
    let SourceError::Unavailable {
        source_name,
        reason,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(source_name, "k8s-test");
    assert!(reason.contains(&missing.display().to_string()), "{reason}");
}

#[tokio::test]
async fn an_unknown_context_is_a_clear_error() {
    let cluster = Cluster::empty("prod").await;
    let error = Kubernetes::connect(KubernetesConfig {
        context: Some("prod-eu-west".into()),
        ..config(&cluster.kubeconfig)
    })
    .await
    .unwrap_err();
    let reason = error.to_string();
    assert!(reason.contains("`prod-eu-west`"), "{reason}");
    assert!(reason.contains("kubeconfig.yaml"), "{reason}");
    assert!(cluster.requests().await.is_empty());
}

#[tokio::test]
async fn a_malformed_kubeconfig_is_named_but_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        format!("users:\n- name: tester\n  user: {{ token: {TOKEN}\n  : ]]\n"),
    )
    .unwrap();
    let error = Kubernetes::connect(config(&file)).await.unwrap_err();
    let reason = error.to_string();
    assert!(reason.contains("broken.yaml"), "{reason}");
    assert!(!reason.contains(TOKEN), "{reason}");
}
