//! The simulated production's fixed shape: services with their seeded traits (latency,
//! capacity, replicas, runtime), the call edges between them, pods and the nodes they run on.

use crate::rng::Rng;
use crate::scenario::{NodeKind, Scenario};

/// What a service runs on, which decides its runtime metrics and log style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    Jvm,
    Go,
    Python,
    Node,
    Postgres,
    Redis,
    Kafka,
    /// Outside the cluster: seen only through probes and its callers.
    Remote,
}

impl Runtime {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Runtime::Jvm => "jvm",
            Runtime::Go => "go",
            Runtime::Python => "python",
            Runtime::Node => "node",
            Runtime::Postgres => "postgres",
            Runtime::Redis => "redis",
            Runtime::Kafka => "kafka",
            Runtime::Remote => "saas",
        }
    }
}

/// How a caller uses a dependency, which decides how trouble travels along the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EdgeKind {
    /// A synchronous request: latency and errors come back to the caller.
    Call,
    /// A cache lookup: a miss or a failure falls back to the caller's database.
    Cache,
    /// Queries through a connection pool.
    Database,
    /// Publishing to a queue: fast, unless the queue is down.
    Produce,
    /// Consuming from a queue: the consumer's work is what the queue hands it.
    Consume,
}

/// A dependency edge.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    /// Calls per request of the caller (a gateway's routing share, a query count…).
    pub calls: f64,
    pub timeout_ms: f64,
    /// Retries on failure (0 or 1).
    pub retries: f64,
    /// Connection pool size, for database edges.
    pub pool_size: f64,
}

/// A service and its seeded traits.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub name: String,
    pub kind: NodeKind,
    pub runtime: Runtime,
    pub team: String,
    pub version: (u32, u32, u32),
    /// Median own latency (ms) at baseline utilisation.
    pub base_latency_ms: f64,
    /// Spread of the latency distribution (log-normal sigma).
    pub sigma: f64,
    /// Own error ratio at baseline.
    pub base_error: f64,
    /// Requests per second at which its CPU reaches the limit (set after the baseline pass).
    pub capacity: f64,
    /// CPU limit per pod, in cores.
    pub cpu_limit: f64,
    pub mem_limit_mb: f64,
    pub mem_base_mb: f64,
    pub disk_gb: f64,
    pub disk_base: f64,
    /// Cache hit ratio at baseline, for caches.
    pub hit_ratio: f64,
    /// Share of load entering here from outside (gateways, and services nothing calls).
    pub entry_share: f64,
    /// Edges to its dependencies.
    pub deps: Vec<usize>,
    /// Edges from its callers.
    pub callers: Vec<usize>,
    pub pods: Vec<usize>,
    /// The route names its HTTP server reports.
    pub routes: Vec<String>,
}

/// A pod of a service, placed on a node.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub service: usize,
    pub name: String,
    pub node: usize,
}

/// The whole simulated production.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub services: Vec<Service>,
    pub edges: Vec<Edge>,
    pub pods: Vec<Pod>,
    pub nodes: Vec<String>,
    /// Service indices with every caller before its callees.
    pub order: Vec<usize>,
}

const TEAMS: [&str; 6] = ["core", "payments", "platform", "growth", "data", "edge"];

impl World {
    /// Builds the world a scenario describes, its traits drawn from the scenario's seed.
    pub(crate) fn build(scenario: &Scenario) -> Self {
        let seed = scenario.seed;
        let index = |name: &str| {
            scenario
                .topology
                .iter()
                .position(|n| n.name == name)
                .expect("validated: every name is declared")
        };
        let mut services: Vec<Service> = scenario
            .topology
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let mut rng = Rng::stream(seed, "service", i as u64);
                let runtime = match node.kind {
                    NodeKind::Database => Runtime::Postgres,
                    NodeKind::Cache => Runtime::Redis,
                    NodeKind::Queue => Runtime::Kafka,
                    NodeKind::External => Runtime::Remote,
                    NodeKind::Gateway => *rng.pick(&[Runtime::Go, Runtime::Jvm]),
                    NodeKind::Service => *rng.pick(&[
                        Runtime::Jvm,
                        Runtime::Jvm,
                        Runtime::Go,
                        Runtime::Go,
                        Runtime::Python,
                        Runtime::Node,
                    ]),
                };
                let (latency, error) = match node.kind {
                    NodeKind::Gateway => (rng.range(3.0, 8.0), rng.range(0.0003, 0.001)),
                    NodeKind::Service => (rng.range(12.0, 45.0), rng.range(0.0005, 0.002)),
                    NodeKind::Database => (rng.range(1.5, 5.0), rng.range(0.00005, 0.0002)),
                    NodeKind::Cache => (rng.range(0.3, 1.0), rng.range(0.00001, 0.0001)),
                    NodeKind::Queue => (rng.range(1.0, 3.0), rng.range(0.00001, 0.0001)),
                    NodeKind::External => (rng.range(60.0, 160.0), rng.range(0.0005, 0.002)),
                };
                let mem_limit_mb = match runtime {
                    Runtime::Jvm => *rng.pick(&[1024.0, 2048.0]),
                    Runtime::Postgres => 4096.0,
                    Runtime::Kafka => 4096.0,
                    Runtime::Redis => 2048.0,
                    _ => *rng.pick(&[512.0, 1024.0]),
                };
                let replicas = match node.kind {
                    NodeKind::Gateway => 3,
                    NodeKind::Service => 2 + rng.below(2),
                    NodeKind::Database | NodeKind::Cache => 1,
                    NodeKind::Queue => 3,
                    NodeKind::External => 0,
                };
                let routes = routes_for(&node.name, node.kind, &mut rng);
                Service {
                    name: node.name.clone(),
                    kind: node.kind,
                    runtime,
                    team: TEAMS[rng.below(TEAMS.len())].to_owned(),
                    version: (
                        1 + rng.below(3) as u32,
                        rng.below(30) as u32,
                        rng.below(10) as u32,
                    ),
                    base_latency_ms: latency,
                    sigma: rng.range(0.35, 0.55),
                    base_error: error,
                    capacity: 0.0,
                    cpu_limit: *rng.pick(&[0.5, 1.0, 2.0]),
                    mem_limit_mb,
                    mem_base_mb: mem_limit_mb * rng.range(0.35, 0.55),
                    disk_gb: *rng.pick(&[10.0, 20.0, 50.0, 100.0]),
                    disk_base: rng.range(0.25, 0.6),
                    hit_ratio: rng.range(0.86, 0.95),
                    entry_share: 0.0,
                    deps: Vec::new(),
                    callers: Vec::new(),
                    pods: (0..replicas).collect(),
                    routes,
                }
            })
            .collect();

        let mut edges = Vec::new();
        for (i, node) in scenario.topology.iter().enumerate() {
            let mut rng = Rng::stream(seed, "edges", i as u64);
            let routed: Vec<usize> = node
                .depends_on
                .iter()
                .map(|d| index(d))
                .filter(|&d| {
                    matches!(
                        scenario.topology[d].kind,
                        NodeKind::Service | NodeKind::Gateway
                    )
                })
                .collect();
            // A gateway routes each request to one backend; the shares sum to one.
            let weights: Vec<f64> = routed.iter().map(|_| rng.range(0.5, 1.5)).collect();
            let total: f64 = weights.iter().sum();
            for dep in &node.depends_on {
                let to = index(dep);
                let to_kind = scenario.topology[to].kind;
                let kind = match to_kind {
                    NodeKind::Cache => EdgeKind::Cache,
                    NodeKind::Database => EdgeKind::Database,
                    NodeKind::Queue if node.consumes.contains(dep) => EdgeKind::Consume,
                    NodeKind::Queue => EdgeKind::Produce,
                    _ => EdgeKind::Call,
                };
                let calls = match (node.kind, kind) {
                    (NodeKind::Gateway, EdgeKind::Call) if routed.contains(&to) => {
                        weights[routed.iter().position(|&r| r == to).unwrap_or(0)] / total
                    }
                    (_, EdgeKind::Database) => rng.range(1.0, 3.0).round(),
                    (_, EdgeKind::Cache) => rng.range(1.0, 2.0).round(),
                    (_, EdgeKind::Consume) => 1.0,
                    _ => rng.range(0.5, 1.0),
                };
                let timeout_ms = match (node.kind, to_kind) {
                    (NodeKind::Gateway, _) => 10_000.0,
                    (_, NodeKind::External) => *rng.pick(&[2000.0, 3000.0, 5000.0]),
                    (_, NodeKind::Cache) => 250.0,
                    _ => *rng.pick(&[1000.0, 2000.0, 3000.0]),
                };
                let retries = if node.kind == NodeKind::Gateway || kind == EdgeKind::Consume {
                    0.0
                } else {
                    1.0
                };
                edges.push(Edge {
                    from: i,
                    to,
                    kind,
                    calls,
                    timeout_ms,
                    retries,
                    pool_size: *rng.pick(&[10.0, 20.0, 30.0]),
                });
            }
        }
        for (e, edge) in edges.iter().enumerate() {
            services[edge.from].deps.push(e);
            services[edge.to].callers.push(e);
        }

        // Load enters through the gateways; services nothing calls (schedulers, consumers)
        // carry a small load of their own.
        let gateways = services
            .iter()
            .filter(|s| s.kind == NodeKind::Gateway)
            .count();
        for s in &mut services {
            let callable = !matches!(
                s.kind,
                NodeKind::Database | NodeKind::Cache | NodeKind::Queue | NodeKind::External
            );
            s.entry_share = if s.kind == NodeKind::Gateway {
                1.0 / gateways as f64
            } else if gateways == 0 && s.callers.is_empty() && callable {
                1.0
            } else if s.callers.is_empty() && callable {
                0.02
            } else {
                0.0
            };
        }
        if gateways == 0 {
            let roots = services
                .iter()
                .filter(|s| s.entry_share == 1.0)
                .count()
                .max(1);
            for s in &mut services {
                if s.entry_share == 1.0 {
                    s.entry_share = 1.0 / roots as f64;
                }
            }
        }

        // Pods: names like a Deployment's (`checkout-7d9f8c6b5-x2kqp`) or a StatefulSet's
        // (`orders-db-0`), spread over a handful of nodes.
        let node_count = (services.len() / 4).clamp(3, 12);
        let nodes: Vec<String> = (0..node_count).map(|n| format!("node-{}", n + 1)).collect();
        let mut pods = Vec::new();
        for (i, s) in services.iter_mut().enumerate() {
            let mut rng = Rng::stream(seed, "pods", i as u64);
            let stateful = matches!(
                s.kind,
                NodeKind::Database | NodeKind::Cache | NodeKind::Queue
            );
            let template = rng.hex(9);
            let first_node = rng.below(node_count);
            let replicas = s.pods.len();
            s.pods.clear();
            for r in 0..replicas {
                let name = if stateful {
                    format!("{}-{r}", s.name)
                } else {
                    format!("{}-{template}-{}", s.name, pod_suffix(&mut rng))
                };
                s.pods.push(pods.len());
                pods.push(Pod {
                    service: i,
                    name,
                    node: (first_node + r) % node_count,
                });
            }
        }
        let order = callers_first(&services, &edges);
        World {
            services,
            edges,
            pods,
            nodes,
            order,
        }
    }

    /// The index of the service called `name`.
    pub(crate) fn service(&self, name: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.name == name)
            .expect("validated: every name is declared")
    }

    /// Services that run in the cluster (everything but externals).
    pub(crate) fn in_cluster(&self, s: usize) -> bool {
        self.services[s].kind != NodeKind::External
    }
}

/// A pod name's random suffix: five characters from Kubernetes' alphabet.
pub(crate) fn pod_suffix(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())] as char)
        .collect()
}

fn routes_for(name: &str, kind: NodeKind, rng: &mut Rng) -> Vec<String> {
    let stem = name
        .trim_end_matches("-service")
        .trim_end_matches("-svc")
        .trim_end_matches("-api");
    match kind {
        NodeKind::Gateway => vec!["/api/*".to_owned(), "/healthz".to_owned()],
        NodeKind::Service => {
            let id = *rng.pick(&["id", "uuid", "key"]);
            vec![
                format!("/api/v1/{stem}"),
                format!("/api/v1/{stem}/{{{id}}}"),
                format!("/internal/{stem}/sync"),
            ]
        }
        _ => Vec::new(),
    }
}

/// Kahn's algorithm over the dependency edges: callers come before what they call.
fn callers_first(services: &[Service], edges: &[Edge]) -> Vec<usize> {
    let mut indegree: Vec<usize> = services.iter().map(|s| s.callers.len()).collect();
    let mut ready: Vec<usize> = (0..services.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(services.len());
    while let Some(i) = ready.first().copied() {
        ready.remove(0);
        order.push(i);
        for &e in &services[i].deps {
            let to = edges[e].to;
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push(to);
            }
        }
    }
    order
}
