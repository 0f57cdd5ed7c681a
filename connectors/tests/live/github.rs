//! GitHub as a change source, against a fake of the GitHub REST API (v3) that answers in
//! the documented shapes: what is asked for (paths, query, credentials) and what comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_connectors::github::{Github, GithubConfig};
use cairn_connectors::http::Resilience;
use cairn_connectors::{Change, ChangeKind, DataSource, EventQuery, SourceError, TimeWindow};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "ghp-test-token-never-shown";
const REPO: &str = "/repos/acme/shop";

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// 10:00–11:00 on 2024-05-01.
fn window() -> TimeWindow {
    TimeWindow::new(t("2024-05-01T10:00:00Z"), t("2024-05-01T11:00:00Z")).unwrap()
}

fn query(service: Option<&str>) -> EventQuery {
    EventQuery {
        window: window(),
        service: service.map(str::to_owned),
    }
}

/// Fast limits, so that retries and timeouts cost milliseconds; the breaker stays out of
/// the way.
fn fast() -> Resilience {
    Resilience {
        timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(1),
        max_retry_after: Duration::from_secs(2),
        breaker_threshold: 100,
        breaker_cooldown: Duration::from_millis(1),
    }
}

/// A monorepo: `checkout` and `payments` by path.
fn monorepo(api_url: &str) -> GithubConfig {
    let mut config = GithubConfig::new("github", "acme/shop", SecretString::from(TOKEN));
    config.api_url = api_url.to_owned();
    config.paths = BTreeMap::from([
        ("checkout".to_owned(), vec!["services/checkout".to_owned()]),
        (
            "payments".to_owned(),
            vec!["services/payments/".to_owned(), "libs/pay".to_owned()],
        ),
    ]);
    config.resilience = fast();
    config
}

/// A repository that is one service, `shop`.
fn single(api_url: &str) -> GithubConfig {
    let mut config = GithubConfig::new("github", "acme/shop", SecretString::from(TOKEN));
    config.api_url = api_url.to_owned();
    config.services = vec!["shop".to_owned()];
    config.resilience = fast();
    config
}

/// Every list empty unless a test mounts something more specific.
async fn empty_lists(server: &MockServer, prefix: &str) {
    Mock::given(method("GET"))
        .and(path_regex(format!(
            "^{prefix}{REPO}/(deployments|releases|pulls|commits)$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .with_priority(100)
        .mount(server)
        .await;
}

fn pull(number: u64, updated: &str, merged: Option<&str>, sha: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/acme/shop/pulls/{number}"),
        "id": 1000 + number,
        "number": number,
        "state": "closed",
        "title": format!("change {number}"),
        "user": {"login": "alice", "id": 1, "type": "User"},
        "body": null,
        "html_url": format!("https://github.com/acme/shop/pull/{number}"),
        "created_at": "2024-04-30T09:00:00Z",
        "updated_at": updated,
        "closed_at": updated,
        "merged_at": merged,
        "merge_commit_sha": sha,
        "head": {"ref": "topic", "sha": "ffff"},
        "base": {"ref": "main", "sha": "eeee"},
    })
}

fn files(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|name| {
                json!({
                    "sha": "bbcd538c8e72b8c175046e27cc8f907076331401",
                    "filename": name,
                    "status": "modified",
                    "additions": 1,
                    "deletions": 1,
                    "changes": 2,
                    "blob_url": "https://github.com/acme/shop/blob/x",
                    "raw_url": "https://github.com/acme/shop/raw/x",
                    "contents_url": "https://api.github.com/repos/acme/shop/contents/x",
                    "patch": "@@ -1 +1 @@"
                })
            })
            .collect(),
    )
}

fn commit(sha: &str, message: &str, date: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/acme/shop/commits/{sha}"),
        "sha": sha,
        "html_url": format!("https://github.com/acme/shop/commit/{sha}"),
        "commit": {
            "message": message,
            "author": {"name": "Bob Builder", "email": "bob@example.com", "date": date},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "date": date},
        },
        "author": {"login": "bob"},
        "committer": {"login": "web-flow"},
        "parents": [{"sha": "0000"}],
    })
}

async fn mount_files(server: &MockServer, number: u64, names: &[&str], times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/pulls/{number}/files")))
        .and(query_param("per_page", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(files(names)))
        .expect(times)
        .mount(server)
        .await;
}

/// `(time, service, kind, summary)` of each change, for compact assertions.
fn brief(changes: &[Change]) -> Vec<(String, String, ChangeKind, String)> {
    changes
        .iter()
        .map(|c| {
            (
                c.ts.format("%H:%M").to_string(),
                c.service.clone(),
                c.kind,
                c.summary.clone(),
            )
        })
        .collect()
}

fn row(
    ts: &str,
    service: &str,
    kind: ChangeKind,
    summary: &str,
) -> (String, String, ChangeKind, String) {
    (ts.to_owned(), service.to_owned(), kind, summary.to_owned())
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

/// A call that must finish promptly: a hang fails the test instead of stalling the suite.
async fn promptly<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call hung")
}

#[tokio::test]
async fn merged_pulls_are_read_over_link_pages_until_the_window_is_passed() {
    let server = MockServer::start().await;
    let uri = server.uri();
    empty_lists(&server, "").await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/pulls")))
        .and(query_param("state", "closed"))
        .and(query_param("sort", "updated"))
        .and(query_param("direction", "desc"))
        .and(query_param("per_page", "100"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([
                    pull(5, "2024-05-01T12:00:00Z", Some("2024-05-01T10:45:00Z"), "5555555aaaa"),
                    pull(4, "2024-05-01T10:40:00Z", None, "4444444aaaa"),
                ]))
                .insert_header(
                    "link",
                    format!(
                        r#"<{uri}/repositories/1/pulls?state=closed&page=2>; rel="next", <{uri}/repositories/1/pulls?state=closed&page=9>; rel="last""#
                    )
                    .as_str(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repositories/1/pulls"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([
                    pull(
                        3,
                        "2024-05-01T10:20:00Z",
                        Some("2024-05-01T10:15:00Z"),
                        "3333333aaaa"
                    ),
                    pull(
                        2,
                        "2024-05-01T09:30:00Z",
                        Some("2024-05-01T09:20:00Z"),
                        "2222222aaaa"
                    ),
                ]))
                .insert_header(
                    "link",
                    format!(r#"<{uri}/repositories/1/pulls?state=closed&page=3>; rel="next""#)
                        .as_str(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Page 3 lies wholly before the window: never asked for.
    Mock::given(method("GET"))
        .and(path("/repositories/1/pulls"))
        .and(query_param("page", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(0)
        .mount(&server)
        .await;
    mount_files(&server, 5, &["services/checkout/main.go"], 1).await;
    mount_files(&server, 3, &["services/payments/api.go"], 1).await;
    // Merged before the window; closed without merging: their files are not read.
    mount_files(&server, 2, &["services/payments/old.go"], 0).await;
    mount_files(&server, 4, &["services/payments/no.go"], 0).await;

    let github = Github::new(monorepo(&uri)).unwrap();
    let changes = promptly(github.changes(&query(None))).await.unwrap();

    assert_eq!(
        brief(&changes),
        vec![
            row(
                "10:15",
                "payments",
                ChangeKind::Deploy,
                "merged #3: change 3"
            ),
            row(
                "10:45",
                "checkout",
                ChangeKind::Deploy,
                "merged #5: change 5"
            ),
        ]
    );
    let five = &changes[1];
    assert_eq!(five.version.as_deref(), Some("5555555"));
    assert_eq!(five.author.as_deref(), Some("alice"));
    assert_eq!(
        five.link.as_deref(),
        Some("https://github.com/acme/shop/pull/5")
    );
    assert_eq!(
        five.diff.as_deref(),
        Some("files: services/checkout/main.go")
    );
    for request in requests(&server).await {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            format!("Bearer {TOKEN}"),
            "{}",
            request.url
        );
    }
}

#[tokio::test]
async fn pulls_map_to_every_service_they_touch_and_config_only_ones_are_config() {
    let server = MockServer::start().await;
    empty_lists(&server, "").await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            pull(
                10,
                "2024-05-01T10:55:00Z",
                Some("2024-05-01T10:50:00Z"),
                "aaaaaaa10"
            ),
            pull(
                9,
                "2024-05-01T10:45:00Z",
                Some("2024-05-01T10:40:00Z"),
                "aaaaaaa09"
            ),
            pull(
                8,
                "2024-05-01T10:35:00Z",
                Some("2024-05-01T10:30:00Z"),
                "aaaaaaa08"
            ),
            pull(
                7,
                "2024-05-01T10:25:00Z",
                Some("2024-05-01T10:20:00Z"),
                "aaaaaaa07"
            ),
        ])))
        .mount(&server)
        .await;
    // Two services: a deploy of each.
    mount_files(
        &server,
        7,
        &["services/checkout/main.go", "libs/pay/client.go"],
        2,
    )
    .await;
    // Only configuration of checkout.
    mount_files(
        &server,
        8,
        &[
            "services/checkout/config/app.go",
            "services/checkout/values.yml",
        ],
        2,
    )
    .await;
    // Configuration of payments, code of checkout.
    mount_files(
        &server,
        9,
        &[
            "services/payments/helm/values.yaml",
            "services/checkout/handler.go",
        ],
        2,
    )
    .await;
    // A sibling directory with a longer name and the root belong to nobody.
    mount_files(
        &server,
        10,
        &["services/checkout-v2/main.go", "README.md"],
        2,
    )
    .await;

    let github = Github::new(monorepo(&server.uri())).unwrap();
    let all = promptly(github.changes(&query(None))).await.unwrap();
    assert_eq!(
        brief(&all),
        vec![
            row(
                "10:20",
                "checkout",
                ChangeKind::Deploy,
                "merged #7: change 7"
            ),
            row(
                "10:20",
                "payments",
                ChangeKind::Deploy,
                "merged #7: change 7"
            ),
            row(
                "10:30",
                "checkout",
                ChangeKind::Config,
                "merged #8: change 8"
            ),
            row(
                "10:40",
                "checkout",
                ChangeKind::Deploy,
                "merged #9: change 9"
            ),
            row(
                "10:40",
                "payments",
                ChangeKind::Config,
                "merged #9: change 9"
            ),
        ]
    );
    assert_eq!(
        all[4].diff.as_deref(),
        Some("files: services/payments/helm/values.yaml")
    );

    let payments = promptly(github.changes(&query(Some("payments"))))
        .await
        .unwrap();
    assert_eq!(
        brief(&payments),
        vec![
            row(
                "10:20",
                "payments",
                ChangeKind::Deploy,
                "merged #7: change 7"
            ),
            row(
                "10:40",
                "payments",
                ChangeKind::Config,
                "merged #9: change 9"
            ),
        ]
    );

    // A service the repository does not hold is not asked about at all.
    let before = requests(&server).await.len();
    let nobody = promptly(github.changes(&query(Some("search"))))
        .await
        .unwrap();
    assert!(nobody.is_empty());
    assert_eq!(requests(&server).await.len(), before);
}

#[tokio::test]
async fn deployments_releases_and_commits_become_changes_of_their_services() {
    let server = MockServer::start().await;
    let uri = server.uri();
    // GitHub Enterprise Server: the API under /api/v3, the web pages at the host's root.
    let api = format!("{uri}/api/v3");
    let p = "/api/v3";
    empty_lists(&server, p).await;

    let sha1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
    Mock::given(method("GET"))
        .and(path(format!("{p}{REPO}/deployments")))
        .and(query_param("per_page", "100"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([
                    {
                        "url": "x", "id": 3, "sha": "b".repeat(40), "ref": "release-7",
                        "task": "deploy:checkout", "payload": "{\"region\":\"eu\"}",
                        "environment": "production", "description": null,
                        "creator": {"login": "carol"},
                        "created_at": "2024-05-01T10:20:00Z", "updated_at": "2024-05-01T10:21:00Z",
                        "statuses_url": "x", "repository_url": "x"
                    },
                    {
                        "url": "x", "id": 2, "sha": "c".repeat(40), "ref": "main",
                        "task": "deploy", "payload": {},
                        "environment": "production", "description": "names no service",
                        "creator": {"login": "carol"},
                        "created_at": "2024-05-01T10:15:00Z", "updated_at": "2024-05-01T10:15:00Z",
                        "statuses_url": "x", "repository_url": "x"
                    },
                    {
                        "url": "x", "id": 1, "sha": sha1, "ref": "main",
                        "task": "deploy", "payload": {"service": "payments"},
                        "environment": "production", "description": "Deploy v42",
                        "creator": {"login": "alice"},
                        "created_at": "2024-05-01T10:10:00Z", "updated_at": "2024-05-01T10:11:00Z",
                        "statuses_url": "x", "repository_url": "x"
                    },
                    {
                        "url": "x", "id": 0, "sha": "d".repeat(40), "ref": "main",
                        "task": "deploy", "payload": {"service": "payments"},
                        "environment": "production", "description": "before the window",
                        "creator": null,
                        "created_at": "2024-05-01T09:00:00Z", "updated_at": "2024-05-01T09:00:00Z",
                        "statuses_url": "x", "repository_url": "x"
                    }
                ]))
                .insert_header(
                    "link",
                    format!(r#"<{api}/repositories/1/deployments?page=2>; rel="next""#).as_str(),
                ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{p}/repositories/1/deployments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(0)
        .mount(&server)
        .await;

    Mock::given(method("GET"))
        .and(path(format!("{p}{REPO}/releases")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {
                "id": 3, "tag_name": "v9", "name": "Nobody's", "draft": false, "prerelease": false,
                "html_url": "https://ghe/acme/shop/releases/tag/v9",
                "created_at": "2024-05-01T10:34:00Z", "published_at": "2024-05-01T10:35:00Z",
                "author": {"login": "dave"}
            },
            {
                "id": 2, "tag_name": "checkout-v1.3.0", "name": null, "draft": true, "prerelease": false,
                "html_url": "https://ghe/acme/shop/releases/tag/untagged",
                "created_at": "2024-05-01T10:26:00Z", "published_at": null,
                "author": {"login": "dave"}
            },
            {
                "id": 1, "tag_name": "checkout-v1.2.0", "name": "Spring", "draft": false,
                "prerelease": false,
                "html_url": "https://ghe/acme/shop/releases/tag/checkout-v1.2.0",
                "created_at": "2024-05-01T10:25:00Z", "published_at": "2024-05-01T10:30:00Z",
                "author": {"login": "dave"}
            }
        ])))
        .mount(&server)
        .await;

    let merge_sha = "9".repeat(40);
    Mock::given(method("GET"))
        .and(path(format!("{p}{REPO}/pulls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull(
            11,
            "2024-05-01T10:51:00Z",
            Some("2024-05-01T10:50:00Z"),
            &merge_sha
        )])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{p}{REPO}/pulls/11/files")))
        .respond_with(ResponseTemplate::new(200).set_body_json(files(&["services/checkout/a.go"])))
        .mount(&server)
        .await;

    let commits = |path_param: &'static str, body: Value| {
        Mock::given(method("GET"))
            .and(path(format!("{p}{REPO}/commits")))
            .and(query_param("path", path_param))
            .and(query_param("since", "2024-05-01T10:00:00Z"))
            .and(query_param("until", "2024-05-01T11:00:00Z"))
            .and(query_param("per_page", "100"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(1)
    };
    let shared = commit(
        &"e".repeat(40),
        "Bump the payment client\n\nand more",
        "2024-05-01T10:36:00Z",
    );
    commits(
        "services/checkout",
        json!([
            commit(
                &merge_sha,
                "Merge pull request #11 from acme/topic",
                "2024-05-01T10:50:00Z"
            ),
            commit(
                &"f".repeat(40),
                "Fix the cart timeout\n\nLonger story.",
                "2024-05-01T10:40:00Z"
            ),
        ]),
    )
    .mount(&server)
    .await;
    commits("services/payments", json!([shared.clone()]))
        .mount(&server)
        .await;
    commits("libs/pay", json!([shared])).mount(&server).await;

    let github = Github::new(monorepo(&api)).unwrap();
    let changes = promptly(github.changes(&query(None))).await.unwrap();
    assert_eq!(
        brief(&changes),
        vec![
            row(
                "10:10",
                "payments",
                ChangeKind::Deploy,
                "deploy main to production: Deploy v42"
            ),
            row(
                "10:20",
                "checkout",
                ChangeKind::Deploy,
                "deploy release-7 to production"
            ),
            row(
                "10:30",
                "checkout",
                ChangeKind::Deploy,
                "release checkout-v1.2.0: Spring"
            ),
            row(
                "10:36",
                "payments",
                ChangeKind::Deploy,
                "Bump the payment client"
            ),
            row(
                "10:40",
                "checkout",
                ChangeKind::Deploy,
                "Fix the cart timeout"
            ),
            row(
                "10:50",
                "checkout",
                ChangeKind::Deploy,
                "merged #11: change 11"
            ),
        ]
    );
    let deploy = &changes[0];
    assert_eq!(deploy.version.as_deref(), Some("a1b2c3d"));
    assert_eq!(deploy.author.as_deref(), Some("alice"));
    assert_eq!(
        deploy.link.as_deref(),
        Some(format!("{uri}/acme/shop/commit/{sha1}").as_str())
    );
    let release = &changes[2];
    assert_eq!(release.version.as_deref(), Some("checkout-v1.2.0"));
    assert_eq!(
        release.link.as_deref(),
        Some("https://ghe/acme/shop/releases/tag/checkout-v1.2.0")
    );
    let fix = &changes[4];
    assert_eq!(fix.author.as_deref(), Some("bob"));
    assert_eq!(fix.version.as_deref(), Some("fffffff"));
    assert_eq!(
        fix.link.as_deref(),
        Some(format!("https://github.com/acme/shop/commit/{}", "f".repeat(40)).as_str())
    );
}

#[tokio::test]
async fn a_repository_of_one_service_is_that_service_everywhere() {
    let server = MockServer::start().await;
    empty_lists(&server, "").await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/deployments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "id": 1, "sha": "a".repeat(40), "ref": "v1", "task": "deploy", "payload": {},
            "environment": "production", "description": "", "creator": {"login": "ci"},
            "created_at": "2024-05-01T10:05:00Z"
        }])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/commits")))
        .and(query_param_is_missing("path"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([commit(
            &"b".repeat(40),
            "Tune the pool",
            "2024-05-01T10:07:00Z"
        )])))
        .expect(1)
        .mount(&server)
        .await;

    let github = Github::new(single(&server.uri())).unwrap();
    let changes = promptly(github.changes(&query(Some("shop"))))
        .await
        .unwrap();
    assert_eq!(
        brief(&changes),
        vec![
            row(
                "10:05",
                "shop",
                ChangeKind::Deploy,
                "deploy v1 to production"
            ),
            row("10:07", "shop", ChangeKind::Deploy, "Tune the pool"),
        ]
    );
}

#[tokio::test]
async fn pagination_stops_at_max_pages() {
    let server = MockServer::start().await;
    let uri = server.uri();
    empty_lists(&server, "").await;
    let endless = ResponseTemplate::new(200)
        .set_body_json(json!([commit(
            &"c".repeat(40),
            "again",
            "2024-05-01T10:30:00Z"
        )]))
        .insert_header(
            "link",
            format!(r#"<{uri}/repositories/1/commits?page=2>; rel="next""#).as_str(),
        );
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/commits")))
        .respond_with(endless.clone())
        .expect(1)
        .mount(&server)
        .await;
    // The next page points to itself for ever.
    Mock::given(method("GET"))
        .and(path("/repositories/1/commits"))
        .respond_with(endless)
        .expect(2)
        .mount(&server)
        .await;

    let mut config = single(&uri);
    config.max_pages = 3;
    let github = Github::new(config).unwrap();
    let changes = promptly(github.changes(&query(None))).await.unwrap();
    // The same commit on every page is one change.
    assert_eq!(
        brief(&changes),
        vec![row("10:30", "shop", ChangeKind::Deploy, "again")]
    );
}

#[tokio::test]
async fn a_rate_limit_that_has_already_reset_is_retried() {
    let server = MockServer::start().await;
    let now = Utc::now().timestamp();
    Mock::given(method("GET"))
        .and(path(REPO))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", now.to_string().as_str())
                .set_body_json(json!({
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(REPO))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 1, "full_name": "acme/shop"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let github = Github::new(monorepo(&server.uri())).unwrap();
    promptly(github.check()).await.unwrap();
}

#[tokio::test]
async fn a_rate_limit_resetting_far_ahead_fails_at_once() {
    let server = MockServer::start().await;
    let in_an_hour = Utc::now().timestamp() + 3600;
    Mock::given(method("GET"))
        .and(path(REPO))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", in_an_hour.to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let github = Github::new(monorepo(&server.uri())).unwrap();
    let error = promptly(github.check()).await.unwrap_err();
    assert!(
        matches!(&error, SourceError::Unavailable { reason, .. } if reason.contains("rate limited")),
        "{error}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .expect(3)
        .mount(&server)
        .await;

    let github = Github::new(monorepo(&server.uri())).unwrap();
    let error = promptly(github.check()).await.unwrap_err();
    assert!(matches!(error, SourceError::Unavailable { .. }), "{error}");
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let server = MockServer::start().await;
    empty_lists(&server, "").await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO}/pulls")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;

    let mut config = monorepo(&server.uri());
    config.resilience.retries = 1;
    let github = Github::new(config).unwrap();
    let error = promptly(github.changes(&query(None))).await.unwrap_err();
    assert!(matches!(error, SourceError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn garbage_answers_are_bad_data() {
    let pull_with = |merged_at: Value| {
        let mut p = pull(
            1,
            "2024-05-01T10:30:00Z",
            Some("2024-05-01T10:30:00Z"),
            "abc",
        );
        p["merged_at"] = merged_at;
        json!([p])
    };
    let bodies: Vec<(&str, ResponseTemplate)> = vec![
        (
            "html",
            ResponseTemplate::new(200).set_body_string("<html>hi</html>"),
        ),
        (
            "an object",
            ResponseTemplate::new(200).set_body_json(json!({"message": "hi"})),
        ),
        (
            "a bad time",
            ResponseTemplate::new(200).set_body_json(pull_with(json!("yesterday"))),
        ),
        ("a number title", {
            let mut p = pull(1, "2024-05-01T10:30:00Z", None, "abc");
            p["title"] = json!(12);
            ResponseTemplate::new(200).set_body_json(json!([p]))
        }),
        (
            "invalid UTF-8",
            ResponseTemplate::new(200).set_body_bytes(vec![b'[', 0xff, 0xfe, b']']),
        ),
        (
            "a foreign next page",
            ResponseTemplate::new(200)
                .set_body_json(json!([pull(1, "2024-05-01T10:30:00Z", None, "abc")]))
                .insert_header("link", r#"<https://evil.example/steal?page=2>; rel="next""#),
        ),
    ];
    for (what, body) in bodies {
        let server = MockServer::start().await;
        empty_lists(&server, "").await;
        Mock::given(method("GET"))
            .and(path(format!("{REPO}/pulls")))
            .respond_with(body)
            .mount(&server)
            .await;
        let github = Github::new(monorepo(&server.uri())).unwrap();
        let error = promptly(github.changes(&query(None))).await.unwrap_err();
        assert!(
            matches!(error, SourceError::BadData { .. }),
            "{what}: {error}"
        );
    }

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(REPO))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let github = Github::new(monorepo(&server.uri())).unwrap();
    let error = promptly(github.check()).await.unwrap_err();
    assert!(matches!(error, SourceError::BadData { .. }), "{error}");
}

#[tokio::test]
async fn the_token_never_shows() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest"
        })))
        .mount(&server)
        .await;
    let config = monorepo(&server.uri());
    assert!(!format!("{config:?}").contains(TOKEN));
    let github = Github::new(config).unwrap();
    assert!(!format!("{github:?}").contains(TOKEN));
    let error = promptly(github.check()).await.unwrap_err();
    assert!(!error.to_string().contains(TOKEN), "{error}");
    assert!(!format!("{error:?}").contains(TOKEN), "{error:?}");
    let error = promptly(github.changes(&query(None))).await.unwrap_err();
    assert!(!error.to_string().contains(TOKEN), "{error}");
}

#[test]
fn a_repository_that_is_not_owner_slash_name_is_refused() {
    for repo in [
        "acme",
        "acme/",
        "/shop",
        "acme/shop/extra",
        "acme/sh op",
        "",
    ] {
        let mut config = monorepo("https://api.github.com");
        config.repo = repo.to_owned();
        let error = Github::new(config).unwrap_err();
        assert!(error.to_string().contains("owner/name"), "{repo}: {error}");
    }
    let mut config = monorepo("ftp://example.com");
    config.repo = "acme/shop".into();
    assert!(Github::new(config).is_err());
}
