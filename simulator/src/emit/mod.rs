//! Turns a simulated timeline into the files of a bundle (`shared/spec/bundle.md`).
//!
//! Nothing from the scenario's `name`, `faults`, `noise` or `expect` reaches a file the
//! agents read: the bundle is named after its alert, changes and events describe what
//! production did, and only `expect.yaml` holds the answer.

pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod traces;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use cairn_connectors::{
    Alert, BundleFiles, Change, ChangeKind, EventType, FaultKind, InfraEvent, ServiceNode,
};

use crate::alert::Fired;
use crate::faults::{text, Active, Cause};
use crate::model::Timeline;
use crate::rng::Rng;
use crate::scenario::{Expect, NodeKind, Noise, Scenario, Signal};
use crate::world::World;

/// Milliseconds since 1970 as a UTC time.
pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

const AUTHORS: [&str; 8] = [
    "amara.osei",
    "li.wei",
    "jonas.berg",
    "priya.nair",
    "sam.carter",
    "elena.rossi",
    "diego.alvarez",
    "noor.haddad",
];

/// Everything the emitters need.
pub(crate) struct Context<'a> {
    pub scenario: &'a Scenario,
    pub world: &'a World,
    pub tl: &'a Timeline,
    pub active: &'a Active,
    pub start_ms: i64,
    pub fired: Fired,
}

impl Context<'_> {
    fn step_ms(&self) -> i64 {
        self.tl.step_s as i64 * 1000
    }

    fn pod_name(&self, p: usize, k: usize) -> String {
        let pod = self.tl.pod(k, p);
        let def = &self.world.pods[p];
        if pod.generation == 0 {
            def.name.clone()
        } else {
            metrics::replacement_name(&def.name, pod.generation, self.scenario.seed)
        }
    }
}

/// Writes every file of the bundle.
pub(crate) fn bundle(cx: &Context<'_>) -> BundleFiles {
    let mut files = BundleFiles::new();
    let (name, alert) = alert(cx);
    files.insert("bundle.yaml", manifest(cx, &name));
    files.insert("topology.yaml", topology(cx));
    files.insert(
        "alert.json",
        serde_json::to_vec_pretty(&alert).unwrap_or_default(),
    );

    let ts: Vec<String> = (0..cx.tl.steps)
        .map(|k| {
            let ms = cx.start_ms + k as i64 * cx.step_ms();
            if ms % 1000 == 0 {
                (ms / 1000).to_string()
            } else {
                format!("{:.3}", ms as f64 / 1000.0)
            }
        })
        .collect();
    let mut om = Vec::with_capacity(cx.tl.steps * cx.world.services.len() * 4000);
    {
        let mut ex = metrics::Exposition::new(&mut om, &ts);
        metrics::write(cx.world, cx.tl, cx.scenario.seed, &mut ex);
        ex.eof();
    }
    files.insert("metrics.om", om);

    let changes = changes(cx);
    files.insert("logs.jsonl", logs(cx));
    files.insert("traces.jsonl", traces(cx));
    files.insert("events.jsonl", jsonl(events(cx, &changes).iter()));
    files.insert("changes.jsonl", jsonl(changes.iter()));
    files.insert("expect.yaml", expect(cx.scenario));
    files
}

fn jsonl<'a, T: Serialize + 'a>(records: impl Iterator<Item = &'a T>) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        if serde_json::to_writer(&mut out, record).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

fn manifest(cx: &Context<'_>, name: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Window {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    }
    #[derive(Serialize)]
    struct Manifest<'a> {
        version: u32,
        name: &'a str,
        source: &'a str,
        window: Window,
        description: String,
    }
    let end = cx.start_ms + cx.scenario.duration as i64 * 1000;
    let manifest = Manifest {
        version: 1,
        name,
        source: "simulator",
        window: Window {
            start: at(cx.start_ms),
            end: at(end),
        },
        description: format!(
            "Simulated production of {} services; page at {}",
            cx.world.services.len(),
            at(cx.start_ms + cx.fired.step as i64 * cx.step_ms()).to_rfc3339()
        ),
    };
    serde_yaml_ng::to_string(&manifest)
        .unwrap_or_default()
        .into_bytes()
}

fn topology(cx: &Context<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Node<'a> {
        #[serde(flatten)]
        node: ServiceNode,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        consumes: &'a [String],
    }
    #[derive(Serialize)]
    struct File<'a> {
        services: Vec<Node<'a>>,
    }
    let services = cx
        .scenario
        .topology
        .iter()
        .zip(&cx.world.services)
        .map(|(node, s)| Node {
            node: ServiceNode {
                name: node.name.clone(),
                kind: Some(node.kind.as_str().to_owned()),
                team: Some(s.team.clone()),
                runtime: Some(s.runtime.as_str().to_owned()),
                depends_on: node.depends_on.clone(),
            },
            consumes: &node.consumes,
        })
        .collect();
    serde_yaml_ng::to_string(&File { services })
        .unwrap_or_default()
        .into_bytes()
}

fn alert(cx: &Context<'_>) -> (String, Alert) {
    let rule = &cx.scenario.alert;
    let (alertname, what, unit) = match rule.signal {
        Signal::ErrorRate => ("HighErrorRate", "error rate", "ratio"),
        Signal::LatencyP99 => ("HighLatencyP99", "p99 latency", "ms"),
        Signal::Saturation => ("CPUSaturation", "CPU saturation", "ratio"),
        Signal::Availability => ("LowAvailability", "availability", "ratio"),
        Signal::ConsumerLag => ("ConsumerLagHigh", "consumer lag", "messages"),
    };
    let show = |v: f64| match unit {
        "ratio" => format!("{:.1}%", v * 100.0),
        "ms" => format!("{v:.0} ms"),
        _ => format!("{v:.0} messages"),
    };
    let direction = if rule.signal == Signal::Availability {
        "below"
    } else {
        "above"
    };
    let fired_ms = cx.start_ms + cx.fired.step as i64 * cx.step_ms();
    let starts = at(fired_ms);
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), alertname.to_owned());
    labels.insert("service".to_owned(), rule.service.clone());
    labels.insert("severity".to_owned(), "critical".to_owned());
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_owned(),
        format!(
            "{} {what} {direction} {} for {}",
            rule.service,
            show(rule.threshold),
            crate::scenario::format_duration(rule.for_s.max(1))
        ),
    );
    annotations.insert(
        "description".to_owned(),
        format!(
            "{what} of {} is {} (threshold {})",
            rule.service,
            show(cx.fired.value),
            show(rule.threshold)
        ),
    );
    let mut rng = Rng::stream(cx.scenario.seed, "fingerprint", 0);
    let alert = Alert {
        status: "firing".to_owned(),
        labels,
        annotations,
        starts_at: starts,
        ends_at: None,
        fingerprint: Some(rng.hex(16)),
    };
    let kebab: String = alertname
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let lower = c.to_ascii_lowercase();
            let dash = i > 0
                && c.is_ascii_uppercase()
                && !alertname.as_bytes()[i - 1].is_ascii_uppercase();
            dash.then_some('-')
                .into_iter()
                .chain(std::iter::once(lower))
        })
        .collect();
    let name = format!("{kebab}-{}-{}", rule.service, starts.format("%Y%m%d-%H%M"));
    (name, alert)
}

fn expect(scenario: &Scenario) -> Vec<u8> {
    let text = match &scenario.expect {
        Expect::NoIssue => "no_issue: true\n".to_owned(),
        Expect::RootCause { service, kind } => match kind {
            Some(kind) => format!("root_cause:\n  service: {service}\n  kind: {kind}\n"),
            None => format!("root_cause:\n  service: {service}\n"),
        },
    };
    text.into_bytes()
}

fn bump(version: (u32, u32, u32), rng: &mut Rng) -> String {
    if rng.chance(0.7) {
        format!("v{}.{}.{}", version.0, version.1, version.2 + 1)
    } else {
        format!("v{}.{}.0", version.0, version.1 + 1)
    }
}

/// Deploys and configuration changes: the faults that are changes, harmless noise deploys
/// and the background of routine releases every production has.
fn changes(cx: &Context<'_>) -> Vec<Change> {
    let mut rng = Rng::stream(cx.scenario.seed, "changes", 0);
    let mut out = Vec::new();
    let deploy = |rng: &mut Rng, s: usize, ts: i64, version: Option<String>| {
        let service = &cx.world.services[s];
        let version = version.unwrap_or_else(|| bump(service.version, rng));
        let sha = rng.hex(7);
        Change {
            ts: at(ts),
            service: service.name.clone(),
            kind: ChangeKind::Deploy,
            summary: format!("Deploy {} {version} ({sha})", service.name),
            version: Some(version),
            author: Some((*rng.pick(&AUTHORS)).to_owned()),
            diff: None,
            link: None,
        }
    };
    for r in &cx.active.list {
        let ts = cx.start_ms + r.start as i64 * 1000;
        match r.fault.kind {
            FaultKind::BadDeploy => out.push(deploy(
                &mut rng,
                r.target,
                ts,
                text(&r.fault.params, "version"),
            )),
            FaultKind::ConfigChange => {
                let service = &cx.world.services[r.target].name;
                let (kind, summary, diff) = match text(&r.fault.params, "flag") {
                    Some(flag) => (
                        ChangeKind::Flag,
                        format!("Enable feature flag {flag} for {service}"),
                        format!("{flag}: false -> true"),
                    ),
                    None => {
                        let key = text(&r.fault.params, "key")
                            .unwrap_or_else(|| "http.client.timeout_ms".to_owned());
                        let value =
                            text(&r.fault.params, "value").unwrap_or_else(|| "50".to_owned());
                        (
                            ChangeKind::Config,
                            format!("Update {service} config: {key}={value}"),
                            format!("{key}: 2000 -> {value}"),
                        )
                    }
                };
                out.push(Change {
                    ts: at(ts),
                    service: service.clone(),
                    kind,
                    summary,
                    version: None,
                    author: Some((*rng.pick(&AUTHORS)).to_owned()),
                    diff: Some(diff),
                    link: None,
                });
            }
            _ => {}
        }
    }
    for noise in &cx.scenario.noise {
        if let Noise::Deploy { target, at: offset } = noise {
            let s = cx.world.service(target);
            out.push(deploy(
                &mut rng,
                s,
                cx.start_ms + *offset as i64 * 1000,
                None,
            ));
        }
    }
    // Routine releases: about one per twenty services per hour, at any time.
    let hours = cx.scenario.duration as f64 / 3600.0;
    let deployable: Vec<usize> = (0..cx.world.services.len())
        .filter(|&s| {
            matches!(
                cx.world.services[s].kind,
                NodeKind::Service | NodeKind::Gateway
            )
        })
        .collect();
    let count = rng.poisson(deployable.len() as f64 * hours / 20.0);
    for _ in 0..count {
        if deployable.is_empty() {
            break;
        }
        let s = *rng.pick(&deployable);
        let ts = cx.start_ms + (rng.unit() * cx.scenario.duration as f64 * 1000.0) as i64;
        out.push(deploy(&mut rng, s, ts, None));
    }
    out.sort_by(|a, b| (a.ts, &a.service).cmp(&(b.ts, &b.service)));
    out
}

fn event(
    ts: i64,
    object: String,
    kind: &str,
    reason: &str,
    message: String,
    warning: bool,
    service: &str,
) -> InfraEvent {
    InfraEvent {
        ts: at(ts),
        object,
        kind: Some(kind.to_owned()),
        reason: reason.to_owned(),
        message,
        event_type: Some(if warning {
            EventType::Warning
        } else {
            EventType::Normal
        }),
        service: Some(service.to_owned()),
    }
}

/// Kubernetes events: rollouts for deploys, OOM kills and restarts, node failures and
/// rescheduling, readiness failures under overload, autoscaling.
fn events(cx: &Context<'_>, changes: &[Change]) -> Vec<InfraEvent> {
    let mut rng = Rng::stream(cx.scenario.seed, "events", 0);
    let mut out = Vec::new();
    let step_ms = cx.step_ms();
    for change in changes.iter().filter(|c| c.kind == ChangeKind::Deploy) {
        let hash = rng.hex(9);
        let ts = change.ts.timestamp_millis();
        let name = &change.service;
        out.push(event(
            ts + 2000,
            format!("deployment/{name}"),
            "Deployment",
            "ScalingReplicaSet",
            format!("Scaled up replica set {name}-{hash} to 1"),
            false,
            name,
        ));
        out.push(event(
            ts + 35_000,
            format!("deployment/{name}"),
            "Deployment",
            "ScalingReplicaSet",
            format!("Scaled down replica set {name}-{} to 0", rng.hex(9)),
            false,
            name,
        ));
    }
    for &(k, p) in &cx.tl.oom_kills {
        let s = cx.world.pods[p].service;
        let name = &cx.world.services[s].name;
        let pod = cx.pod_name(p, k);
        let ts = cx.start_ms + k as i64 * step_ms;
        let limit = cx.world.services[s].mem_limit_mb as u64;
        out.push(event(ts, format!("pod/{pod}"), "Pod", "OOMKilled", format!("Container {name} in pod {pod} exceeded its memory limit ({limit}Mi) and was killed"), true, name));
        out.push(event(
            ts + 1000,
            format!("pod/{pod}"),
            "Pod",
            "BackOff",
            format!("Back-off restarting failed container {name} in pod {pod}"),
            true,
            name,
        ));
        out.push(event(
            ts + 20_000,
            format!("pod/{pod}"),
            "Pod",
            "Started",
            format!("Started container {name}"),
            false,
            name,
        ));
    }
    for &(k, node) in &cx.tl.node_down {
        let ts = cx.start_ms + k as i64 * step_ms;
        let node_name = &cx.world.nodes[node];
        out.push(InfraEvent {
            ts: at(ts),
            object: format!("node/{node_name}"),
            kind: Some("Node".to_owned()),
            reason: "NodeNotReady".to_owned(),
            message: format!("Node {node_name} status is now: NodeNotReady"),
            event_type: Some(EventType::Warning),
            service: None,
        });
        for p in 0..cx.world.pods.len() {
            if cx.tl.pod(k, p).node == node {
                let s = cx.world.pods[p].service;
                let name = &cx.world.services[s].name;
                let pod = cx.pod_name(p, k);
                out.push(event(
                    ts + 5000,
                    format!("pod/{pod}"),
                    "Pod",
                    "NodeNotReady",
                    "Node is not ready".to_owned(),
                    true,
                    name,
                ));
                out.push(event(
                    ts + 40_000,
                    format!("pod/{pod}"),
                    "Pod",
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod prod/{pod}"),
                    false,
                    name,
                ));
            }
        }
    }
    for &(k, p, to) in &cx.tl.rescheduled {
        let s = cx.world.pods[p].service;
        let name = &cx.world.services[s].name;
        let pod = cx.pod_name(p, k);
        let ts = cx.start_ms + k as i64 * step_ms;
        out.push(event(
            ts,
            format!("pod/{pod}"),
            "Pod",
            "Scheduled",
            format!("Successfully assigned prod/{pod} to {}", cx.world.nodes[to]),
            false,
            name,
        ));
        out.push(event(
            ts + 12_000,
            format!("pod/{pod}"),
            "Pod",
            "Started",
            format!("Started container {name}"),
            false,
            name,
        ));
    }
    // Readiness probes fail while a service sheds load or loses pods; HPA reacts to load.
    let mut last_probe: Vec<Option<i64>> = vec![None; cx.world.services.len()];
    let mut scaled = vec![false; cx.world.services.len()];
    for k in 0..cx.tl.steps {
        let ts = cx.start_ms + k as i64 * step_ms;
        for s in 0..cx.world.services.len() {
            let service = &cx.world.services[s];
            if !matches!(service.kind, NodeKind::Service | NodeKind::Gateway) {
                continue;
            }
            let st = cx.tl.service(k, s);
            let overload = st.causes[Cause::Overload as usize];
            if overload > 0.05 && last_probe[s].is_none_or(|last| ts - last >= 60_000) {
                last_probe[s] = Some(ts);
                if let Some(&p) = service.pods.first() {
                    let pod = cx.pod_name(p, k);
                    out.push(event(
                        ts + 3000,
                        format!("pod/{pod}"),
                        "Pod",
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503".to_owned(),
                        true,
                        &service.name,
                    ));
                }
            }
            if st.cpu > 0.8 && !scaled[s] {
                scaled[s] = true;
                let from = service.pods.len();
                out.push(event(ts + 15_000, format!("horizontalpodautoscaler/{}", service.name), "HorizontalPodAutoscaler", "SuccessfulRescale", format!("New size: {}; reason: cpu resource utilization (percentage of request) above target", from * 2), false, &service.name));
            }
        }
    }
    // Routine background: image pulls and the odd probe hiccup on healthy pods.
    let minutes = cx.scenario.duration as f64 / 60.0;
    for _ in 0..rng.poisson(minutes / 15.0) {
        let p = rng.below(cx.world.pods.len().max(1));
        if cx.world.pods.is_empty() {
            break;
        }
        let s = cx.world.pods[p].service;
        let ts = cx.start_ms + (rng.unit() * cx.scenario.duration as f64 * 1000.0) as i64;
        let pod = cx.world.pods[p].name.clone();
        let name = &cx.world.services[s].name;
        out.push(event(ts, format!("pod/{pod}"), "Pod", "Unhealthy", "Liveness probe failed: Get \"http://10.0.0.1:8080/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned(), true, name));
    }
    out.sort_by(|a, b| (a.ts, &a.object, &a.reason).cmp(&(b.ts, &b.object, &b.reason)));
    out
}

fn logs(cx: &Context<'_>) -> Vec<u8> {
    let pod_names = |p: usize, k: usize| cx.pod_name(p, k);
    let mut writer = logs::Writer {
        world: cx.world,
        tl: cx.tl,
        start_ms: cx.start_ms,
        rng: Rng::stream(cx.scenario.seed, "logs", 0),
        lines: Vec::new(),
        pod_names: &pod_names,
    };
    let mut out = Vec::new();
    let restarts: Vec<(usize, usize, bool)> = cx
        .tl
        .oom_kills
        .iter()
        .map(|&(k, p)| (k, p, true))
        .chain(cx.tl.rescheduled.iter().map(|&(k, p, _)| (k, p, false)))
        .collect();
    for k in 0..cx.tl.steps {
        writer.lines.clear();
        writer.step(k);
        for &(rk, p, oom) in &restarts {
            if rk == k {
                writer.restart(k, p, oom);
            }
        }
        writer.lines.sort_by_key(|l| (l.ts_ms, l.service));
        for line in writer.lines.drain(..) {
            let record = cairn_connectors::LogRecord {
                ts: at(line.ts_ms),
                service: cx.world.services[line.service].name.clone(),
                level: Some(line.level.to_owned()),
                message: line.message,
                pod: line.pod,
                trace_id: None,
                attrs: line.attrs.into(),
            };
            if serde_json::to_writer(&mut out, &record).is_ok() {
                out.push(b'\n');
            }
        }
    }
    out
}

fn traces(cx: &Context<'_>) -> Vec<u8> {
    let mut tracer = traces::Tracer {
        world: cx.world,
        tl: cx.tl,
        start_ms: cx.start_ms,
        rng: Rng::stream(cx.scenario.seed, "traces", 0),
        spans: Vec::new(),
    };
    let mut out = Vec::new();
    for k in 0..cx.tl.steps {
        tracer.spans.clear();
        tracer.step(k);
        tracer.spans.sort_by_key(|(ts, _)| *ts);
        for (_, span) in tracer.spans.drain(..) {
            if serde_json::to_writer(&mut out, &span).is_ok() {
                out.push(b'\n');
            }
        }
    }
    out
}
