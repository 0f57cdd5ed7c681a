//! The command line itself: help, version, exit codes, configuration errors.

use crate::{cairn, run, stderr, stdout};

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).arg("--version"));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("cairn {}", env!("CARGO_PKG_VERSION"))
    );

    let out = run(cairn(dir.path()).arg("--help"));
    assert!(out.status.success());
    insta::assert_snapshot!("help", stdout(&out));

    let out = run(cairn(dir.path()).args(["eval", "--help"]));
    assert!(out.status.success());
    insta::assert_snapshot!("eval_help", stdout(&out));
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).arg("frobnicate"));
    assert_eq!(out.status.code(), Some(2));
    let out = run(cairn(dir.path()).arg("eval"));
    assert_eq!(out.status.code(), Some(2), "--bundles is required");
}

#[test]
fn bad_environment_value_exits_2_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path())
        .arg("migrate")
        .env("CAIRN_LISTEN", "not-an-address"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`listen` (CAIRN_LISTEN)") && err.contains("127.0.0.1:3000"),
        "{err}"
    );
}

#[test]
fn bad_file_value_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        "database_url = \"mysql://x\"\n",
    )
    .unwrap();
    let out = run(cairn(dir.path()).arg("migrate"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`database_url`") && err.contains("cairn.toml"),
        "{err}"
    );
}

#[test]
fn missing_explicit_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).args(["--config", "nowhere.toml", "migrate"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nowhere.toml"), "{}", stderr(&out));
}

#[test]
fn config_env_variable_selects_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other.toml"), "listen = \"bad\"\n").unwrap();
    let out = run(cairn(dir.path())
        .arg("migrate")
        .env("CAIRN_CONFIG", "other.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("other.toml"), "{}", stderr(&out));
}

#[test]
fn slack_manifests_are_valid_yaml_with_the_endpoints() {
    for (file, socket) in [
        ("slack-app-manifest.http.yaml", false),
        ("slack-app-manifest.socket-mode.yaml", true),
    ] {
        let text = std::fs::read_to_string(crate::workspace().join("deploy").join(file)).unwrap();
        let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            manifest["settings"]["socket_mode_enabled"].as_bool(),
            Some(socket),
            "{file}"
        );
        assert_eq!(
            manifest["features"]["slash_commands"][0]["command"].as_str(),
            Some("/cairn")
        );
        let scopes = format!("{:?}", manifest["oauth_config"]["scopes"]["bot"]);
        for scope in ["app_mentions:read", "chat:write", "commands"] {
            assert!(scopes.contains(scope), "{file} lacks {scope}");
        }
        if socket {
            // Socket Mode needs no public endpoint: Slack rejects request URLs beside it.
            assert!(
                !text.contains("request_url") && !text.contains("url:"),
                "{file} has a request URL"
            );
        } else {
            for path in ["/slack/events", "/slack/commands", "/slack/interactions"] {
                assert!(text.contains(path), "{file} lacks {path}");
            }
        }
    }
}
