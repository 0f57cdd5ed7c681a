//! The shared HTTP endpoint against a fake server: what counts against a source's health,
//! and where a handed-out link may lead.

use std::time::Duration;

use cairn_connectors::http::{Auth, Endpoint, Resilience};
use cairn_connectors::SourceError;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn quick() -> Resilience {
    Resilience {
        timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(1),
        max_retry_after: Duration::from_secs(1),
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn refused_questions_do_not_open_the_breaker_but_outages_do() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such thing"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let endpoint = Endpoint::new("src", &server.uri(), Auth::None, quick());
    for _ in 0..5 {
        let err = endpoint.get("missing", &[]).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 404"), "{err}");
    }
    assert!(!endpoint.breaker_open(), "404s are answers, not an outage");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        5,
        "a 404 is not retried"
    );

    for _ in 0..3 {
        assert!(matches!(
            endpoint.get("down", &[]).await,
            Err(SourceError::Unavailable { .. })
        ));
    }
    assert!(endpoint.breaker_open());
    let before = server.received_requests().await.unwrap().len();
    assert_eq!(before, 5 + 3 * 3, "each 503 was tried three times");
    let err = endpoint.get("missing", &[]).await.unwrap_err();
    assert!(err.to_string().contains("not asking again"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}

#[tokio::test]
async fn a_link_outside_the_base_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let base = format!("{}/api", server.uri());
    let endpoint = Endpoint::new(
        "src",
        &base,
        Auth::Bearer("secret-token".to_owned().into()),
        quick(),
    );
    assert!(endpoint
        .get_absolute(&format!("{base}/page?n=2"))
        .await
        .is_ok());
    assert!(endpoint.get_absolute(&format!("{base}?n=2")).await.is_ok());
    for hostile in [
        format!("{base}evil/page"),
        format!("{}.evil.test/api/page", server.uri()),
        "http://elsewhere.test/api/page".to_owned(),
    ] {
        let err = endpoint.get_absolute(&hostile).await.unwrap_err();
        assert!(
            matches!(err, SourceError::BadData { .. }),
            "{hostile}: {err}"
        );
        assert!(!err.to_string().contains("secret-token"));
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
