//! The PagerDuty REST client, against a fake of PagerDuty's REST API (v2) that answers in
//! the documented shapes: what is sent (path, credentials, `From`, body) and what is read.

use std::time::Duration;

use cairn_connectors::http::Resilience;
use cairn_connectors::pagerduty::{IncidentDetails, PagerDuty, PagerDutyConfig, MAX_NOTE_CHARS};
use cairn_connectors::{DataSource, SourceError};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "y_NbAkKc66ryYTWUXYEu";
const FROM: &str = "oncall@example.com";

fn fast() -> Resilience {
    Resilience {
        timeout: Duration::from_millis(300),
        retries: 1,
        backoff: Duration::from_millis(1),
        max_retry_after: Duration::from_secs(2),
        breaker_threshold: 100,
        breaker_cooldown: Duration::from_millis(1),
    }
}

fn config(server: &MockServer, from: Option<&str>) -> PagerDutyConfig {
    let mut config = PagerDutyConfig::new("pagerduty", SecretString::from(TOKEN));
    config.api_url = server.uri();
    config.from = from.map(str::to_owned);
    config.resilience = fast();
    config
}

/// A call that must finish promptly: a hang fails the test instead of stalling the suite.
async fn promptly<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call hung")
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn header_of<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `GET /incidents/{id}` as PagerDuty documents it.
fn incident() -> Value {
    json!({
        "incident": {
            "id": "PT4KHLK",
            "type": "incident",
            "summary": "[#1234] The server is on fire.",
            "self": "https://api.pagerduty.com/incidents/PT4KHLK",
            "html_url": "https://subdomain.pagerduty.com/incidents/PT4KHLK",
            "incident_number": 1234,
            "title": "The server is on fire.",
            "created_at": "2015-10-06T21:30:42Z",
            "updated_at": "2015-10-06T21:40:23Z",
            "status": "resolved",
            "incident_key": "baf7cf21b1da41b4b0221008339ff357",
            "service": {
                "id": "PIJ90N7",
                "type": "service_reference",
                "summary": "My Mail Service",
                "self": "https://api.pagerduty.com/services/PIJ90N7",
                "html_url": "https://subdomain.pagerduty.com/service-directory/PIJ90N7"
            },
            "assignments": [],
            "last_status_change_at": "2015-10-06T21:38:23Z",
            "urgency": "high",
            "escalation_policy": {
                "id": "PT20YPA",
                "type": "escalation_policy_reference",
                "summary": "Another Escalation Policy"
            },
            "teams": []
        }
    })
}

#[tokio::test]
async fn incident_details_are_read() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/incidents/PT4KHLK"))
        .and(header(
            "authorization",
            format!("Token token={TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(incident()))
        .expect(1)
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, None)).unwrap();
    let details = promptly(pagerduty.incident("PT4KHLK")).await.unwrap();
    assert_eq!(
        details,
        IncidentDetails {
            id: "PT4KHLK".into(),
            number: Some(1234),
            title: "The server is on fire.".into(),
            status: "resolved".into(),
            urgency: Some("high".into()),
            service: Some("My Mail Service".into()),
            created_at: DateTime::parse_from_rfc3339("2015-10-06T21:30:42Z")
                .unwrap()
                .with_timezone(&Utc),
            html_url: Some("https://subdomain.pagerduty.com/incidents/PT4KHLK".into()),
        }
    );
}

#[tokio::test]
async fn a_note_is_posted_as_the_configured_user() {
    let server = MockServer::start().await;
    let content = "Cairn: the likeliest cause is the 10:42 deploy of checkout (abc1234).";
    Mock::given(method("POST"))
        .and(path("/incidents/PT4KHLK/notes"))
        .and(body_json(json!({"note": {"content": content}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "note": {
                "id": "PWL7QXS",
                "user": {"id": "PXPGF42", "type": "user_reference", "summary": "Earline Greenholt"},
                "content": content,
                "created_at": "2015-10-06T21:50:23Z"
            }
        })))
        .expect(1)
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, Some(FROM))).unwrap();
    promptly(pagerduty.add_note("PT4KHLK", content))
        .await
        .unwrap();

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(header_of(request, "from"), Some(FROM));
    assert_eq!(
        header_of(request, "authorization"),
        Some(format!("Token token={TOKEN}").as_str())
    );
    assert_eq!(
        header_of(request, "accept"),
        Some("application/vnd.pagerduty+json;version=2")
    );
    assert_eq!(header_of(request, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn a_note_without_from_is_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, None)).unwrap();
    let error = promptly(pagerduty.add_note("PT4KHLK", "hello"))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("`from`") && text.contains("email"), "{text}");
}

#[tokio::test]
async fn a_missing_incident_is_named_in_the_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/incidents/PNOPE00"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"message": "Not Found", "code": 2100}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, None)).unwrap();
    let error = promptly(pagerduty.incident("PNOPE00")).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("no incident `PNOPE00`"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn a_long_note_is_cut_on_a_character_boundary() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/incidents/PT4KHLK/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"note": {}})))
        .expect(1)
        .mount(&server)
        .await;

    // Two bytes a character, so a cut by bytes would split one.
    let long = "é".repeat(MAX_NOTE_CHARS + 500);
    let pagerduty = PagerDuty::new(config(&server, Some(FROM))).unwrap();
    promptly(pagerduty.add_note("PT4KHLK", &long))
        .await
        .unwrap();

    let sent = requests(&server).await;
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    let content = body["note"]["content"].as_str().unwrap();
    assert_eq!(content.chars().count(), MAX_NOTE_CHARS);
    assert!(content.ends_with('…'));
    assert!(long.starts_with(content.trim_end_matches('…')));
}

#[tokio::test]
async fn check_reads_abilities() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/abilities"))
        .and(header(
            "authorization",
            format!("Token token={TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "abilities": ["sso", "advanced_reports", "teams", "read_only_users"]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, None)).unwrap();
    promptly(pagerduty.check()).await.unwrap();
}

#[tokio::test]
async fn garbage_answers_are_bad_data() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/abilities"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>login</html>"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/incidents/PT4KHLK"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "incident": {"id": "PT4KHLK", "status": "triggered", "title": "x", "created_at": "soon"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/incidents/PNOTITL"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "incident": {"id": "PNOTITL", "status": "triggered", "created_at": "2015-10-06T21:30:42Z"}
        })))
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, None)).unwrap();
    for error in [
        promptly(pagerduty.check()).await.unwrap_err(),
        promptly(pagerduty.incident("PT4KHLK")).await.unwrap_err(),
        promptly(pagerduty.incident("PNOTITL")).await.unwrap_err(),
    ] {
        assert!(matches!(error, SourceError::BadData { .. }), "{error}");
    }
}

#[tokio::test]
async fn an_id_that_is_not_one_is_never_sent() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(incident()))
        .expect(0)
        .mount(&server)
        .await;

    let pagerduty = PagerDuty::new(config(&server, Some(FROM))).unwrap();
    for id in ["", "../abilities", "PT4KHLK?x=1", "PT4 KHLK"] {
        assert!(promptly(pagerduty.incident(id)).await.is_err(), "{id}");
        assert!(promptly(pagerduty.add_note(id, "x")).await.is_err(), "{id}");
    }
}

#[tokio::test]
async fn server_errors_are_unavailable_and_never_show_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .expect(2)
        .mount(&server)
        .await;

    let config = config(&server, Some(FROM));
    assert!(!format!("{config:?}").contains(TOKEN));
    let pagerduty = PagerDuty::new(config).unwrap();
    assert!(!format!("{pagerduty:?}").contains(TOKEN));
    let error = promptly(pagerduty.check()).await.unwrap_err();
    assert!(matches!(error, SourceError::Unavailable { .. }), "{error}");
    assert!(!error.to_string().contains(TOKEN));
    assert!(!format!("{error:?}").contains(TOKEN));
}

#[test]
fn a_from_that_is_not_an_email_is_refused() {
    let mut config = PagerDutyConfig::new("pagerduty", SecretString::from(TOKEN));
    config.from = Some("on call".into());
    let error = PagerDuty::new(config).unwrap_err();
    assert!(error.to_string().contains("email"), "{error}");
}
