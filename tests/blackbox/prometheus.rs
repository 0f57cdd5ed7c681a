//! Real Prometheus and Alertmanager (Debian's `prometheus` and `prometheus-alertmanager`)
//! against the real binary: a bundle's metrics loaded into Prometheus investigate like the
//! bundle itself, and Alertmanager's own webhook opens one thread per group.
//!
//! The tools must be installed (`.ci/run` installs them). Outside CI a machine without them
//! skips these tests with a message; with `CI` set, their absence fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::serve::{fake_slack, free_port, start, wait_for};
use crate::{cairn, fixtures, run, simulated, stderr};

/// The path of `tool` when it is installed; `None` (after saying so) when it is not and this
/// is not CI.
fn installed(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{tool}` is not installed; CI must install Debian's prometheus and prometheus-alertmanager"
        );
        eprintln!("skipped: `{tool}` is not installed (apt-get install prometheus prometheus-alertmanager)");
    }
    found
}

/// A child process killed when the test ends.
struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 200 (the daemon finished starting), for at most 30 s.
async fn ready(daemon: &mut Daemon, path: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("{} exited while starting: {status}", daemon.url);
        }
        let answer = client.get(format!("{}{path}", daemon.url)).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} did not become ready", daemon.url);
}

/// The bundle's metrics as OpenMetrics text (inflated when stored as `metrics.om.gz`).
fn openmetrics(bundle: &Path) -> Vec<u8> {
    let plain = bundle.join("metrics.om");
    if plain.is_file() {
        return std::fs::read(plain).unwrap();
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(bundle.join("metrics.om.gz")).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

/// Loads `bundle`'s metrics with `promtool tsdb create-blocks-from openmetrics` and serves
/// them from a Prometheus on a free port.
async fn prometheus_over(bundle: &Path, dir: &Path) -> Daemon {
    prometheus_holding(&openmetrics(bundle), dir).await
}

/// A Prometheus on a free port holding the OpenMetrics text `metrics`, its data under `dir`.
async fn prometheus_holding(metrics: &[u8], dir: &Path) -> Daemon {
    let (Some(promtool), Some(prometheus)) = (installed("promtool"), installed("prometheus"))
    else {
        unreachable!("checked by the caller");
    };
    std::fs::create_dir_all(dir).unwrap();
    let om = dir.join("metrics.om");
    std::fs::write(&om, metrics).unwrap();
    let data = dir.join("data");
    let out = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool could not load {}: {}",
        om.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global: {}\nscrape_configs: []\n").unwrap();
    let port = free_port();
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        // The bundles are years old: a default retention would delete them at start.
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    ready(&mut daemon, "/-/ready").await;
    daemon
}

fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        std::fs::copy(entry.path(), to.join(name)).unwrap();
    }
}

/// `cairn eval` over the one bundle in `bundles`, with `config` when given: the ranking as
/// (service, kind, confidence).
fn ranking(dir: &Path, bundles: &Path, config: Option<&Path>) -> Vec<(String, String, f64)> {
    let json = dir.join(format!("eval-{}.json", rand_suffix()));
    let mut cmd = cairn(dir);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let out = run(cmd
        .args(["eval", "--bundles"])
        .arg(bundles)
        .arg("--json")
        .arg(&json));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    report["cases"][0]["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["service"].as_str().unwrap().to_owned(),
                h["kind"].as_str().unwrap_or_default().to_owned(),
                h["confidence"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Requests Prometheus served on `handler`, read from its own metrics.
async fn served(prometheus: &Daemon, handler: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", prometheus.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains(&format!("handler=\"{handler}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_split_across_prometheus_ranks_like_the_whole_bundle() {
    if installed("promtool").is_none() || installed("prometheus").is_none() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // A simulated incident besides the real Nezha and PetShop cases.
    let simulated = simulated(dir.path(), "shop-orders-db-slow-query");
    let cases = [
        fixtures().join("nezha-ob/ob-20220822-052706"),
        fixtures().join("nezha-tt/tt-20230130-134444"),
        fixtures().join("petshop-high_traffic/ps-high-20230412-2218"),
        simulated,
    ];
    let mut metrics_mattered = 0;
    for (i, bundle) in cases.iter().enumerate() {
        let case = dir.path().join(format!("case-{i}"));
        let name = bundle.file_name().unwrap();
        let whole = case.join("whole");
        let split = case.join("split");
        copy_dir(bundle, &whole.join(name), &[]);
        copy_dir(bundle, &split.join(name), &["metrics.om", "metrics.om.gz"]);
        let prometheus = prometheus_over(bundle, &case).await;
        let config = case.join("with-prometheus.toml");
        std::fs::write(
            &config,
            format!(
                "[[sources]]\nkind = \"prometheus\"\nname = \"prom\"\nurl = \"{}\"\n",
                prometheus.url
            ),
        )
        .unwrap();

        let expected = ranking(&case, &whole, None);
        let through_prometheus = ranking(&case, &split, Some(&config));
        let without_metrics = ranking(&case, &split, None);
        assert!(
            !expected.is_empty(),
            "{}: no ranking at all",
            name.display()
        );
        assert_eq!(
            through_prometheus.len(),
            expected.len(),
            "{}: {through_prometheus:?} vs {expected:?}",
            name.display()
        );
        for (got, want) in through_prometheus.iter().zip(&expected) {
            assert_eq!((&got.0, &got.1), (&want.0, &want.1), "{}", name.display());
            assert!(
                (got.2 - want.2).abs() < 1e-9,
                "{}: {got:?} vs {want:?}",
                name.display()
            );
        }
        assert!(
            served(&prometheus, "/api/v1/query").await > 0.0,
            "{}: the investigation never asked Prometheus",
            name.display()
        );
        if without_metrics != expected {
            metrics_mattered += 1;
        }
    }
    // The comparison means something only if the metrics change the outcome somewhere.
    assert!(
        metrics_mattered >= 2,
        "metrics changed only {metrics_mattered} rankings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prometheus_each_covering_some_services_rank_like_the_bundle() {
    if installed("promtool").is_none() || installed("prometheus").is_none() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = fixtures().join("nezha-ob/ob-20220822-052706");
    let name = bundle.file_name().unwrap();
    copy_dir(&bundle, &dir.path().join("whole").join(name), &[]);
    copy_dir(
        &bundle,
        &dir.path().join("split").join(name),
        &["metrics.om", "metrics.om.gz"],
    );
    // Services alternate between two Prometheus (sorted by name); metadata goes to both.
    let text = String::from_utf8(openmetrics(&bundle)).unwrap();
    let service_of = |line: &str| {
        let start = line.find("service=\"")? + "service=\"".len();
        Some(line[start..].split('"').next()?.to_owned())
    };
    let mut services: Vec<String> = text.lines().filter_map(service_of).collect();
    services.sort();
    services.dedup();
    assert!(services.len() >= 4, "{services:?}");
    let half = |i: usize| -> Vec<String> { services.iter().skip(i).step_by(2).cloned().collect() };
    let (east, west) = (half(0), half(1));
    let mut parts = [String::new(), String::new()];
    for line in text.lines().filter(|l| *l != "# EOF") {
        match service_of(line) {
            Some(s) => {
                let part = &mut parts[usize::from(west.contains(&s))];
                part.push_str(line);
                part.push('\n');
            }
            None => {
                for part in &mut parts {
                    part.push_str(line);
                    part.push('\n');
                }
            }
        }
    }
    for part in &mut parts {
        part.push_str("# EOF\n");
    }
    let prom_east = prometheus_holding(parts[0].as_bytes(), &dir.path().join("east")).await;
    let prom_west = prometheus_holding(parts[1].as_bytes(), &dir.path().join("west")).await;
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = dir.path().join("two.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nkind = \"prometheus\"\nname = \"prom-east\"\nurl = \"{}\"\nservices = [{}]\n\n[[sources]]\nkind = \"prometheus\"\nname = \"prom-west\"\nurl = \"{}\"\nservices = [{}]\n",
            prom_east.url,
            list(&east),
            prom_west.url,
            list(&west)
        ),
    )
    .unwrap();
    let expected = ranking(dir.path(), &dir.path().join("whole"), None);
    let through_two = ranking(dir.path(), &dir.path().join("split"), Some(&config));
    assert_eq!(through_two, expected);
    assert!(served(&prom_east, "/api/v1/query").await > 0.0);
    assert!(served(&prom_west, "/api/v1/query").await > 0.0);
}

/// Alertmanager's configuration: every alert to Cairn's webhook with the bearer token,
/// grouped by alertname, sent at once.
fn alertmanager_config(cairn: &str) -> String {
    format!(
        r#"route:
  receiver: cairn
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: cairn
    webhook_configs:
      - url: "{cairn}/webhooks/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: am-token
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_opens_one_thread_per_group() {
    let Some(alertmanager) = installed("prometheus-alertmanager") else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let bundle = simulated(dir.path(), "shop-orders-db-slow-query");
    let (slack, received) = fake_slack().await;
    let env = [
        ("CAIRN_INCIDENT_CHANNEL", "CINC"),
        ("CAIRN_ALERTMANAGER_TOKEN", "am-token"),
        ("CAIRN_API_TOKEN", "api-token"),
    ];
    let server = start(dir.path(), slack, &bundle, &env).await;

    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, alertmanager_config(&server.base)).unwrap();
    let port = free_port();
    let child = Command::new(alertmanager)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("am").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // No cluster: it would listen on every interface.
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut am = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    ready(&mut am, "/-/ready").await;

    let client = reqwest::Client::new();
    let alerts = |n: usize, ends: Option<&str>| {
        let alerts: Vec<Value> = (0..n)
            .map(|i| {
                let mut alert = json!({
                    "labels": {"alertname": "OrdersLatencyHigh", "service": "orders", "pod": format!("orders-{i}"), "severity": "page"},
                    "annotations": {"summary": "orders p99 latency above 2s"},
                });
                if let Some(ends) = ends {
                    alert["endsAt"] = json!(ends);
                }
                alert
            })
            .collect();
        client
            .post(format!("{}/api/v2/alerts", am.url))
            .json(&alerts)
            .send()
    };
    assert!(alerts(50, None).await.unwrap().status().is_success());

    let incidents = || async {
        client
            .get(format!("{}/api/incidents", server.base))
            .bearer_auth("api-token")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let posted = |kind: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, b)| m == "chat.postMessage" && b["metadata"]["event_type"] == kind)
            .count()
    };
    wait_for("Alertmanager's notification to open a thread", || {
        posted("cairn_incident") == 1
    })
    .await;
    // More alerts of the same group, then their resolution: still one incident.
    assert!(alerts(80, None).await.unwrap().status().is_success());
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    assert!(alerts(80, Some(&past)).await.unwrap().status().is_success());
    let mut resolved = false;
    for _ in 0..200 {
        let list = incidents().await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["source"], "alertmanager");
        if list[0]["status"] == "resolved" {
            resolved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resolved, "the resolution never reached Cairn");
    assert_eq!(posted("cairn_incident"), 1, "one thread for one group");
}
