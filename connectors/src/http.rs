//! What every live source shares: one HTTP client, time limits, retries with backoff and
//! a per-source circuit breaker.
//!
//! A live source builds one [`Endpoint`] and sends every request through it. The endpoint
//! turns what can go wrong on the wire into a [`SourceError`] that names the source and never
//! the credentials: a request that times out is retried, then reported as
//! [`SourceError::Timeout`]; a 5xx, a 429 or a broken connection is retried with backoff
//! (honouring `Retry-After` up to a cap), then reported as [`SourceError::Unavailable`]; a
//! body that is not what the API documents is [`SourceError::BadData`]. After
//! [`Resilience::breaker_threshold`] failed requests in a row the breaker opens and requests
//! fail at once for [`Resilience::breaker_cooldown`], so a dead source costs an
//! investigation one fast error per query instead of a timeout per query; one request is
//! then let through to probe it.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::source::SourceError;

/// The largest response body read from a source; a larger one is bad data, not a reason to
/// run out of memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The process's one HTTP client for data sources (connection pools are shared; each
/// request carries its own time limit).
pub fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // One TLS stack: rustls with ring. The binary installs it at start; a test or a
            // library user may not have, and installing it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(5))
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
        .clone()
}

/// How hard a source is tried before it is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// The time limit of one request.
    pub timeout: Duration,
    /// Further attempts after a failed one (5xx, 429, broken connections; a timeout is
    /// retried once at most).
    pub retries: u32,
    /// The wait before the first retry; each later one doubles it.
    pub backoff: Duration,
    /// The longest wait honoured from a `Retry-After`; a longer one fails the request.
    pub max_retry_after: Duration,
    /// Failed requests in a row that open the breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker fails requests at once before letting one through.
    pub breaker_cooldown: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// How requests to a source authenticate.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Bearer …`
    Bearer(SecretString),
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: Option<SecretString>,
    },
    /// A header whose whole value is secret (PagerDuty's `Token token=…`).
    Header {
        name: &'static str,
        value: SecretString,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(<redacted>)",
            Auth::Basic { .. } => "Basic(<redacted>)",
            Auth::Header { .. } => "Header(<redacted>)",
        })
    }
}

/// A successful answer: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON of type `T`; anything else is [`SourceError::BadData`] naming `source`.
    pub fn json<T: DeserializeOwned>(&self, source: &str) -> Result<T, SourceError> {
        serde_json::from_slice(&self.body).map_err(|e| SourceError::BadData {
            source_name: source.to_owned(),
            reason: format!("the answer is not the JSON the API documents: {e}"),
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A per-source circuit breaker: after `threshold` failed requests in a row it fails
/// requests at once for `cooldown`, then lets one through to probe. Sources that do not
/// speak through an [`Endpoint`] (the Kubernetes client) use it directly.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    failures_in_a_row: u32,
    open_until: Option<Instant>,
}

impl CircuitBreaker {
    /// A closed breaker for the source `name`.
    pub fn new(name: &str, resilience: &Resilience) -> Self {
        Self {
            name: name.to_owned(),
            threshold: resilience.breaker_threshold.max(1),
            cooldown: resilience.breaker_cooldown,
            state: Mutex::new(BreakerState::default()),
        }
    }

    /// `Err` at once while open; after the cooldown one request is let through, and its
    /// failure reopens the breaker.
    pub fn admit(&self) -> Result<(), SourceError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.open_until {
            Some(until) if Instant::now() < until => Err(SourceError::Unavailable {
                source_name: self.name.clone(),
                reason: format!(
                    "{} requests in a row failed; not asking again for {} s",
                    state.failures_in_a_row,
                    until.saturating_duration_since(Instant::now()).as_secs() + 1
                ),
            }),
            Some(_) => {
                state.open_until = None;
                state.failures_in_a_row = self.threshold - 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts one request: `healthy` when the source answered, whatever it said.
    pub fn record(&self, healthy: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if healthy {
            state.failures_in_a_row = 0;
            return;
        }
        state.failures_in_a_row += 1;
        if state.failures_in_a_row >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
            tracing::warn!(source = %self.name, "circuit breaker open");
        }
    }

    /// Whether the breaker is open now.
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open_until.is_some_and(|t| Instant::now() < t)
    }
}

/// One live source's way to its API: base URL, credentials, limits and breaker.
#[derive(Debug)]
pub struct Endpoint {
    name: String,
    base: String,
    auth: Auth,
    resilience: Resilience,
    breaker: CircuitBreaker,
    client: reqwest::Client,
    /// Sent with every request (an API's `Accept` and version headers).
    headers: Vec<(&'static str, String)>,
}

impl Endpoint {
    /// An endpoint for the source `name` at `base` (a trailing `/` is optional).
    pub fn new(name: &str, base: &str, auth: Auth, resilience: Resilience) -> Self {
        Self {
            name: name.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            auth,
            resilience,
            breaker: CircuitBreaker::new(name, &resilience),
            client: client(),
            headers: Vec::new(),
        }
    }

    /// The same endpoint sending `headers` with every request.
    pub fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Self {
        self.headers = headers;
        self
    }

    /// The source's name, for errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET base + path` with `query` parameters.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply, SourceError> {
        self.send(Method::GET, &self.url(path), query, &[], None)
            .await
    }

    /// `GET` of an absolute URL the API handed out (a `Link: rel="next"`); it must lie under
    /// the base URL (the base itself, or it followed by `/` or `?`), so a hostile answer
    /// cannot send the credentials elsewhere.
    pub async fn get_absolute(&self, url: &str) -> Result<Reply, SourceError> {
        let under_base = url
            .strip_prefix(&self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        if !under_base {
            return Err(self.bad(format!(
                "the API pointed to a page outside {}; not followed",
                self.base
            )));
        }
        self.send(Method::GET, url, &[], &[], None).await
    }

    /// `POST base + path` with a JSON body and extra headers.
    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        body: &serde_json::Value,
    ) -> Result<Reply, SourceError> {
        self.send(Method::POST, &self.url(path), &[], headers, Some(body))
            .await
    }

    /// Bad data from this source.
    pub fn bad(&self, reason: impl Into<String>) -> SourceError {
        SourceError::BadData {
            source_name: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> SourceError {
        SourceError::Unavailable {
            source_name: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Sends with retries, through the breaker.
    async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        headers: &[(&'static str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, SourceError> {
        guarded(
            &self.breaker,
            &self.name,
            self.resilience,
            || self.attempt(&method, url, query, headers, body),
            |wait| {
                self.unavailable(format!(
                    "rate limited; the source asks to wait {} s",
                    wait.as_secs()
                ))
            },
        )
        .await
    }

    /// One request; a failure says whether another attempt may help, and how long the
    /// source asked to wait.
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, String)],
        headers: &[(&'static str, String)],
        body: Option<&serde_json::Value>,
    ) -> (Result<Reply, Failure>, Option<Duration>) {
        let mut request = self
            .client
            .request(method.clone(), url)
            .timeout(self.resilience.timeout)
            .query(query);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::Basic { username, password } => {
                request.basic_auth(username, password.as_ref().map(|p| p.expose_secret()))
            }
            Auth::Header { name, value } => match HeaderValue::from_str(value.expose_secret()) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    request.header(*name, v)
                }
                Err(_) => {
                    return (
                        Err(Failure::Final(self.unavailable(
                            "the configured credential is not a valid header value",
                        ))),
                        None,
                    )
                }
            },
        };
        for (name, value) in self.headers.iter().chain(headers) {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return (Err(Failure::Timeout), None),
            // The error text of reqwest carries the URL, never the credentials (they live
            // in headers); strip the URL anyway so a token in a query string cannot leak.
            Err(e) => {
                return (
                    Err(Failure::Retryable(self.unavailable(format!(
                        "cannot reach {}: {}",
                        self.base,
                        cause(&e)
                    )))),
                    None,
                )
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = retry_after(&headers);
        let body = match read_body(response).await {
            Ok(body) => body,
            Err(BodyError::Timeout) => return (Err(Failure::Timeout), None),
            Err(BodyError::TooLarge) => {
                return (
                    Err(Failure::Final(self.bad(format!(
                        "the answer is larger than {} MiB",
                        MAX_BODY_BYTES / (1024 * 1024)
                    )))),
                    None,
                )
            }
            Err(BodyError::Broken(e)) => {
                return (
                    Err(Failure::Retryable(
                        self.unavailable(format!("the answer broke off: {e}")),
                    )),
                    None,
                )
            }
        };
        if status.is_success() {
            return (
                Ok(Reply {
                    status,
                    headers,
                    body,
                }),
                None,
            );
        }
        let said = crate::selector::snippet(&String::from_utf8_lossy(&body));
        let error = self.unavailable(format!("HTTP {status}{said}"));
        // GitHub's primary rate limit answers 403 with `x-ratelimit-remaining: 0`.
        let rate_limited = status == StatusCode::FORBIDDEN
            && headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0");
        let retryable =
            status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || rate_limited;
        if retryable {
            (Err(Failure::Retryable(error)), retry_after)
        } else {
            (Err(Failure::Final(error)), None)
        }
    }

    /// Whether the breaker is open now (for readiness reports).
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }
}

/// Why one attempt of a request failed, and whether another attempt may help.
pub(crate) enum Failure {
    Timeout,
    Retryable(SourceError),
    Final(SourceError),
}

impl Failure {
    /// Whether `outcome` shows the source healthy, for its breaker: timeouts, 5xx, 429 and
    /// broken connections (what `retry` retries) are outages; a refused question (400,
    /// 401, 404…) or an answer that is not what was asked for is an answer.
    fn healthy<T>(outcome: &Result<T, Failure>) -> bool {
        !matches!(outcome, Err(Failure::Timeout | Failure::Retryable(_)))
    }

    fn into_error(self, source_name: &str) -> SourceError {
        match self {
            Failure::Timeout => SourceError::Timeout {
                source_name: source_name.to_owned(),
            },
            Failure::Retryable(e) | Failure::Final(e) => e,
        }
    }
}

/// A request to a live source, its way through the source's `breaker` and [`retry`]: asked
/// not at all while the breaker is open, and counted against the source only for outages
/// ([`Failure::healthy`]).
pub(crate) async fn guarded<T, F, Fut>(
    breaker: &CircuitBreaker,
    source_name: &str,
    r: Resilience,
    attempt: F,
    too_long: impl Fn(Duration) -> SourceError,
) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Result<T, Failure>, Option<Duration>)>,
{
    breaker.admit()?;
    let outcome = retry(source_name, r, attempt, too_long).await;
    breaker.record(Failure::healthy(&outcome));
    outcome.map_err(|failure| failure.into_error(source_name))
}

/// The retry policy of every live source: `attempt` again after a retryable failure, up to
/// `r.retries` times, waiting what the source asked (`Retry-After`) or an exponential
/// backoff; a timeout is retried once only (a source that let the limit pass twice will not
/// answer a third time; the investigation is better off without it), and a source that asks
/// to wait longer than `r.max_retry_after` gets `too_long(wait)` at once.
async fn retry<T, F, Fut>(
    source_name: &str,
    r: Resilience,
    mut attempt: F,
    too_long: impl Fn(Duration) -> SourceError,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Result<T, Failure>, Option<Duration>)>,
{
    let mut tries = 0;
    loop {
        let (result, retry_after) = attempt().await;
        let retryable = match &result {
            Ok(_) | Err(Failure::Final(_)) => false,
            Err(Failure::Retryable(_)) => true,
            Err(Failure::Timeout) => tries == 0,
        };
        if !retryable || tries >= r.retries {
            return result;
        }
        let wait = match retry_after {
            Some(wait) if wait > r.max_retry_after => return Err(Failure::Final(too_long(wait))),
            Some(wait) => wait,
            None => r.backoff.saturating_mul(1 << tries.min(16)),
        };
        tracing::debug!(source = %source_name, attempt = tries, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
        tries += 1;
    }
}

enum BodyError {
    Timeout,
    TooLarge,
    Broken(String),
}

/// How long the source asks to wait: `Retry-After` in seconds, else the time until
/// `x-ratelimit-reset` (epoch seconds) when `x-ratelimit-remaining` is 0.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = text(RETRY_AFTER.as_str()).and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if text("x-ratelimit-remaining") == Some("0") {
        let reset = text("x-ratelimit-reset")?.parse::<u64>().ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now)));
    }
    None
}

/// Reads at most [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(BodyError::Timeout),
            Err(e) => return Err(BodyError::Broken(cause(&e))),
        }
    }
}

/// The innermost cause of a reqwest error, without the URL reqwest prefixes.
/// The innermost cause of `e` (the useful part: "connection refused", not "error sending
/// request"), or "connection failed" when it says nothing.
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    if text.is_empty() {
        "connection failed".into()
    } else {
        text
    }
}

/// The `rel="next"` URL of an RFC 8288 `Link` header (GitHub's pagination).
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim();
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        (is_next && url.starts_with('<') && url.ends_with('>'))
            .then(|| url[1..url.len() - 1].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_reads_githubs_header() {
        let link = r#"<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let auth = Auth::Bearer(SecretString::from("sk-secret-value"));
        let endpoint = Endpoint::new("prom", "http://127.0.0.1:1", auth, Resilience::default());
        assert!(!format!("{endpoint:?}").contains("sk-secret-value"));
    }
}
