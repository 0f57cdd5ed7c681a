//! Black-box tests: run the real `cairn` binary the way users and CI do.

mod cli;
mod engine;
mod eval;
mod knowledge;
mod migrate;
mod prometheus;
mod serve;
mod simulate;
mod socket;
mod sources;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (fixtures live there).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bot/ has a parent")
        .to_owned()
}

/// The fixture bundles shipped in the repository.
pub fn fixtures() -> PathBuf {
    workspace().join("fixtures/bundles")
}

/// A `cairn` command in an empty working directory with no `CAIRN_*` variables inherited,
/// so neither a stray `cairn.toml` nor the developer's environment changes the outcome.
pub fn cairn(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CAIRN_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `cmd` and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the cairn binary runs")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the bundle of the library scenario `name` (e.g. `shop-orders-db-slow-query`) under
/// `dir` and returns its path.
pub fn simulated(dir: &Path, name: &str) -> PathBuf {
    let bundle = dir.join(name);
    let out = run(cairn(dir)
        .args(["simulate", "--scenario"])
        .arg(workspace().join(format!("scenarios/{name}.yaml")))
        .arg("--out")
        .arg(&bundle));
    assert!(out.status.success(), "{}", stderr(&out));
    bundle
}

/// Sends `body` to `base`'s PagerDuty webhook, signed with `secret` as PagerDuty signs.
pub async fn send_pagerduty(base: &str, secret: &str, body: String) -> reqwest::Response {
    let sig = format!(
        "v1={}",
        cairn_bot::serve::pages::pagerduty_sign(secret.as_bytes(), body.as_bytes())
    );
    reqwest::Client::new()
        .post(format!("{base}/webhooks/pagerduty"))
        .header("x-pagerduty-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap()
}
