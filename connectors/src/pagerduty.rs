//! PagerDuty's REST API (v2): what Cairn reads about a paged incident and the notes it
//! writes back on it.
//!
//! PagerDuty is not a source of production data, so this is a client rather than a query
//! interface; it implements [`DataSource`] only for its name and readiness check, so it is
//! reported and probed like every other configured source.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::{Auth, Endpoint, Resilience};
use crate::source::{DataSource, SourceError};

/// The public PagerDuty REST API.
pub const DEFAULT_API_URL: &str = "https://api.pagerduty.com";

/// The longest note PagerDuty accepts, in characters.
pub const MAX_NOTE_CHARS: usize = 25_000;

/// The media type that selects version 2 of the REST API.
const ACCEPT_V2: &str = "application/vnd.pagerduty+json;version=2";

/// The longest incident id accepted; PagerDuty's are 7 or 14 characters.
const MAX_ID_LEN: usize = 64;

/// How to reach PagerDuty and who Cairn writes as.
#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    /// The source's name, for errors.
    pub name: String,
    /// The API's base URL, [`DEFAULT_API_URL`] unless PagerDuty is reached another way.
    pub api_url: String,
    /// A REST API key (account or user).
    pub token: SecretString,
    /// The email of the PagerDuty user notes are written as: PagerDuty requires it in the
    /// `From` header of writes made with an account key.
    pub from: Option<String>,
    /// Time limits, retries and breaker of every request.
    pub resilience: Resilience,
}

impl PagerDutyConfig {
    /// A source named `name` on the public API, reading only until `from` is set.
    pub fn new(name: &str, token: SecretString) -> Self {
        Self {
            name: name.to_owned(),
            api_url: DEFAULT_API_URL.to_owned(),
            token,
            from: None,
            resilience: Resilience::default(),
        }
    }
}

/// What Cairn knows about a PagerDuty incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentDetails {
    /// PagerDuty's id (`PT4KHLK`).
    pub id: String,
    /// The number people call it by (`#1234`).
    pub number: Option<u64>,
    /// What the incident is about, as the page said it.
    pub title: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// `high` or `low`.
    pub urgency: Option<String>,
    /// The name of the PagerDuty service the incident is on.
    pub service: Option<String>,
    /// When the incident opened.
    pub created_at: DateTime<Utc>,
    /// The incident's page in PagerDuty's web app.
    pub html_url: Option<String>,
}

/// A PagerDuty account, read and written through its REST API.
#[derive(Debug)]
pub struct PagerDuty {
    config: PagerDutyConfig,
    endpoint: Endpoint,
}

impl PagerDuty {
    /// A client for the account `config` names; nothing is sent until it is asked. An
    /// `api_url` that is not HTTP, or a `from` that is not an email, is refused.
    pub fn new(config: PagerDutyConfig) -> Result<Self, SourceError> {
        let refuse = |reason: String| SourceError::Unavailable {
            source_name: config.name.clone(),
            reason,
        };
        if !(config.api_url.starts_with("https://") || config.api_url.starts_with("http://")) {
            return Err(refuse(format!(
                "the API URL `{}` is not an http(s) URL",
                config.api_url
            )));
        }
        if let Some(from) = &config.from {
            if !looks_like_email(from) {
                return Err(refuse(format!(
                    "`from` must be the email of a PagerDuty user, not `{from}`"
                )));
            }
        }
        let auth = Auth::Header {
            name: "Authorization",
            value: SecretString::from(format!("Token token={}", config.token.expose_secret())),
        };
        let endpoint = Endpoint::new(&config.name, &config.api_url, auth, config.resilience)
            .with_headers(vec![("Accept", ACCEPT_V2.to_owned())]);
        Ok(Self { config, endpoint })
    }

    /// The incident `id`: title, status, urgency and service.
    pub async fn incident(&self, id: &str) -> Result<IncidentDetails, SourceError> {
        self.check_id(id)?;
        let reply = self
            .endpoint
            .get(&format!("incidents/{id}"), &[])
            .await
            .map_err(|e| Self::not_found(e, id))?;
        let answer: IncidentAnswer = reply.json(self.name())?;
        let raw = answer.incident;
        let title = raw
            .title
            .or(raw.summary)
            .ok_or_else(|| self.endpoint.bad(format!("incident {id} has no title")))?;
        Ok(IncidentDetails {
            id: raw.id,
            number: raw.incident_number,
            title,
            status: raw.status,
            urgency: raw.urgency,
            service: raw.service.and_then(|s| s.summary),
            created_at: raw.created_at,
            html_url: raw.html_url,
        })
    }

    /// Adds a note to the incident `id`, as the user [`PagerDutyConfig::from`] names; a
    /// note longer than PagerDuty takes is cut short with an ellipsis.
    pub async fn add_note(&self, id: &str, content: &str) -> Result<(), SourceError> {
        let Some(from) = &self.config.from else {
            return Err(SourceError::Unavailable {
                source_name: self.config.name.clone(),
                reason: "posting notes needs `from`, the email of a PagerDuty user, in the \
                         source's configuration"
                    .into(),
            });
        };
        self.check_id(id)?;
        let body = serde_json::json!({ "note": { "content": truncate_note(content) } });
        let headers = [("From", from.clone())];
        self.endpoint
            .post_json(&format!("incidents/{id}/notes"), &headers, &body)
            .await
            .map_err(|e| Self::not_found(e, id))?;
        // The note is written once PagerDuty says so; what it echoes back adds nothing.
        Ok(())
    }

    /// Refuses what cannot be a PagerDuty id before it becomes part of a URL path.
    fn check_id(&self, id: &str) -> Result<(), SourceError> {
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(self
                .endpoint
                .bad(format!("`{id}` is not a PagerDuty incident id")));
        }
        Ok(())
    }

    /// Says which incident is missing when PagerDuty answers 404, rather than calling
    /// PagerDuty unavailable.
    fn not_found(error: SourceError, id: &str) -> SourceError {
        match error {
            // The endpoint reports a refused request as `HTTP <status>…`; 404 here means
            // the incident (not the API) is missing, or the key cannot see it.
            SourceError::Unavailable {
                source_name,
                reason,
            } if reason.starts_with("HTTP 404") => SourceError::Unavailable {
                source_name,
                reason: format!(
                    "there is no incident `{id}`, or the API key cannot see it ({reason})"
                ),
            },
            other => other,
        }
    }
}

#[async_trait]
impl DataSource for PagerDuty {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn check(&self) -> Result<(), SourceError> {
        // Any REST API key may list the account's abilities; it proves URL and key.
        let reply = self.endpoint.get("abilities", &[]).await?;
        let _: Abilities = reply.json(self.name())?;
        Ok(())
    }
}

/// Whether `text` could be an email address: one `@` with something on each side, and
/// nothing that would break a header.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && text.chars().all(|c| c.is_ascii_graphic())
        }
        None => false,
    }
}

/// `content` cut to [`MAX_NOTE_CHARS`] characters, ending in `…` when cut.
fn truncate_note(content: &str) -> std::borrow::Cow<'_, str> {
    match content.char_indices().nth(MAX_NOTE_CHARS) {
        None => content.into(),
        Some(_) => {
            // The ellipsis takes the last character's place; `nth` gives a char boundary.
            let end = content
                .char_indices()
                .nth(MAX_NOTE_CHARS - 1)
                .map_or(content.len(), |(i, _)| i);
            format!("{}…", &content[..end]).into()
        }
    }
}

/// `GET /incidents/{id}`.
#[derive(Deserialize)]
struct IncidentAnswer {
    incident: RawIncident,
}

#[derive(Deserialize)]
struct RawIncident {
    id: String,
    #[serde(default)]
    incident_number: Option<u64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    status: String,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    service: Option<ServiceReference>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    created_at: DateTime<Utc>,
    #[serde(default)]
    html_url: Option<String>,
}

/// A reference to a PagerDuty service; `summary` is its name.
#[derive(Deserialize)]
struct ServiceReference {
    #[serde(default)]
    summary: Option<String>,
}

/// `GET /abilities`: only proves the answer is PagerDuty's.
#[derive(Deserialize)]
struct Abilities {
    #[serde(rename = "abilities")]
    _abilities: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_notes_are_kept_whole() {
        assert_eq!(truncate_note("hello"), "hello");
        let exact = "é".repeat(MAX_NOTE_CHARS);
        assert_eq!(truncate_note(&exact), exact.as_str());
    }

    #[test]
    fn long_notes_end_in_an_ellipsis_on_a_char_boundary() {
        let long = "é".repeat(MAX_NOTE_CHARS + 1);
        let cut = truncate_note(&long);
        assert_eq!(cut.chars().count(), MAX_NOTE_CHARS);
        assert!(cut.ends_with('…'));
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn emails_are_recognised() {
        assert!(looks_like_email("oncall@example.com"));
        for bad in [
            "",
            "oncall",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@b\r\nX: y",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
