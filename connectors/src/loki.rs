//! Loki as a log source.
//!
//! A [`LogQuery`] becomes one LogQL query sent to `GET /loki/api/v1/query_range`: a stream
//! selector on the label that names the service ([`LokiConfig::service_label`]) and the
//! configured [`LokiConfig::labels`], and a line filter `|= "…"` for
//! [`LogQuery::contains`]. Lines are read forward in pages of at most
//! [`LokiConfig::max_lines_per_request`] (Loki refuses a larger `limit`); the next page starts
//! at the last timestamp seen, inclusive, because several lines may share it, and the lines
//! already read at that timestamp are dropped.
//!
//! Every line becomes a [`LogRecord`]: the service, level, pod and trace id come from the
//! stream's labels; a line that is a JSON object with a `message` or `msg` gives its message,
//! fills the level and trace id the labels lack, and keeps its other fields as attributes.
//!
//! Invariants: no answer makes it panic; a body that is not Loki's documented shape is
//! [`SourceError::BadData`]; the credentials never appear in `Debug` or in errors (the
//! [`Endpoint`] redacts them).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::http::{Auth, Endpoint, Resilience};
use crate::model::{Attrs, LogQuery, LogRecord};
use crate::selector::{quoted, regex_literal};
use crate::source::{DataSource, SourceError};

/// Loki's own default for `max_entries_limit_per_query`; a larger page is refused.
pub const DEFAULT_MAX_LINES_PER_REQUEST: usize = 5_000;

/// Pages read beyond those the limit needs (lines at a page boundary are read twice, lines
/// without a service are skipped), so that a source that keeps answering cannot keep a
/// query going for ever.
const EXTRA_PAGES: usize = 10;

/// How far back `check` asks for label names: short, so the readiness probe stays cheap on
/// a large Loki.
const CHECK_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

/// How to reach one Loki and which of its logs this source stands for.
#[derive(Debug, Clone)]
pub struct LokiConfig {
    /// The source's name, for evidence and errors.
    pub name: String,
    /// Base URL, e.g. `http://loki:3100` (the API lives under `/loki/api/v1`).
    pub url: String,
    /// How requests authenticate.
    pub auth: Auth,
    /// Services this Loki holds; empty means any. A query for another service is not sent.
    pub services: Vec<String>,
    /// Label matchers added to every query (`cluster = "eu-1"`): the slice of a shared Loki
    /// this source stands for.
    pub labels: BTreeMap<String, String>,
    /// The stream label that names the service in this Loki.
    pub service_label: String,
    /// The most lines asked for in one request (Loki's `max_entries_limit_per_query`).
    pub max_lines_per_request: usize,
    /// Time limit, retries and breaker of every request.
    pub resilience: Resilience,
}

impl LokiConfig {
    /// A source named `name` at `url` with the defaults: every service, label `service`,
    /// pages of 5 000 lines, no credentials.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            auth: Auth::None,
            services: Vec::new(),
            labels: BTreeMap::new(),
            service_label: "service".into(),
            max_lines_per_request: DEFAULT_MAX_LINES_PER_REQUEST,
            resilience: Resilience::default(),
        }
    }
}

/// A live Loki answering log searches.
#[derive(Debug)]
pub struct Loki {
    endpoint: Endpoint,
    config: LokiConfig,
}

impl Loki {
    /// A source over the Loki `config` names; nothing is sent until it is asked.
    pub fn new(config: LokiConfig) -> Self {
        let endpoint = Endpoint::new(
            &config.name,
            &config.url,
            config.auth.clone(),
            config.resilience,
        );
        Self { endpoint, config }
    }

    fn covers(&self, service: &str) -> bool {
        self.config.services.is_empty() || self.config.services.iter().any(|s| s == service)
    }

    /// Label names are written into LogQL unquoted, so one that is not an identifier would
    /// change the query; it is a configuration error, reported before anything is sent.
    fn check_label_names(&self) -> Result<(), SourceError> {
        let names = std::iter::once(&self.config.service_label).chain(self.config.labels.keys());
        for name in names {
            if !is_label_name(name) {
                return Err(SourceError::Unavailable {
                    source_name: self.config.name.clone(),
                    reason: format!("`{name}` is not a LogQL label name; fix the configuration"),
                });
            }
        }
        Ok(())
    }

    /// The LogQL for `query`, or `None` when this source does not cover the service asked
    /// for.
    fn logql(&self, query: &LogQuery) -> Option<String> {
        let label = &self.config.service_label;
        let mut matchers: Vec<String> = Vec::new();
        // Loki refuses a selector whose every matcher also matches an absent label.
        let mut selective = false;
        match &query.service {
            Some(service) if !self.covers(service) => return None,
            Some(service) => {
                selective |= !service.is_empty();
                matchers.push(format!("{label}=\"{}\"", quoted(service)));
            }
            None if !self.config.services.is_empty() => {
                let alternatives: Vec<String> = self
                    .config
                    .services
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| regex_literal(s))
                    .collect();
                if !alternatives.is_empty() {
                    selective = true;
                    matchers.push(format!("{label}=~\"{}\"", quoted(&alternatives.join("|"))));
                }
            }
            None => {}
        }
        for (name, value) in &self.config.labels {
            selective |= !value.is_empty();
            matchers.push(format!("{name}=\"{}\"", quoted(value)));
        }
        if !selective {
            matchers.push(format!("{label}=~\".+\""));
        }
        let mut logql = format!("{{{}}}", matchers.join(","));
        if let Some(needle) = query.contains.as_deref().filter(|n| !n.is_empty()) {
            let _ = write!(logql, " |= \"{}\"", quoted(needle));
        }
        Some(logql)
    }

    /// One page: the lines in `[start, end)` (nanoseconds), the earliest `limit` of them, in
    /// time order.
    async fn page(
        &self,
        logql: &str,
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Line>, SourceError> {
        let reply = self
            .endpoint
            .get(
                "loki/api/v1/query_range",
                &[
                    ("query", logql.to_owned()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("limit", limit.to_string()),
                    ("direction", "forward".to_owned()),
                ],
            )
            .await?;
        let answer: Answer<Streams> = reply.json(self.name())?;
        let streams = answer.data(&self.endpoint)?;
        if streams.result_type != "streams" {
            return Err(self.endpoint.bad(format!(
                "asked for log lines, got a `{}`",
                streams.result_type
            )));
        }
        let mut lines = Vec::new();
        for stream in streams.result {
            let labels = Arc::new(stream.stream);
            for Entry(ts, line) in stream.values {
                let ts_ns = ts.parse::<i64>().map_err(|_| {
                    self.endpoint
                        .bad(format!("a log line has the time `{}`", clip(&ts)))
                })?;
                lines.push(Line {
                    ts_ns,
                    labels: labels.clone(),
                    line,
                });
            }
        }
        // Ties between streams have no order in Loki's answer; the stream labels give them
        // one, so the same lines always come back in the same order. The sort is stable, so a
        // stream's own lines at one timestamp keep the order Loki gave them.
        lines.sort_by(|x, y| {
            x.ts_ns
                .cmp(&y.ts_ns)
                .then_with(|| match Arc::ptr_eq(&x.labels, &y.labels) {
                    true => std::cmp::Ordering::Equal,
                    false => x.labels.cmp(&y.labels),
                })
        });
        Ok(lines)
    }

    /// One line in Cairn's vocabulary; `None` when nothing names its service.
    fn to_record(&self, line: &Line, queried: Option<&str>) -> Option<LogRecord> {
        let labels = &*line.labels;
        let label = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| labels.get(*n))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let service =
            label(&[&self.config.service_label]).or_else(|| queried.map(str::to_owned))?;
        // Loki writes `detected_level="unknown"` when it could not tell; that is no level.
        let level = label(&["level", "detected_level", "severity"]).filter(|l| l != "unknown");
        let trace_id = label(&["trace_id", "traceID"]);
        let mut record = LogRecord {
            ts: DateTime::from_timestamp_nanos(line.ts_ns),
            service,
            level,
            message: String::new(),
            pod: label(&["pod"]),
            trace_id,
            attrs: Attrs::new(),
        };
        match structured(&line.line) {
            Some(mut fields) => {
                record.message = take_text(&mut fields, &["message", "msg"]).unwrap_or_default();
                if record.level.is_none() {
                    record.level =
                        take_text(&mut fields, &["level", "severity"]).filter(|l| !l.is_empty());
                }
                if record.trace_id.is_none() {
                    record.trace_id = take_text(&mut fields, &["trace_id", "traceID", "traceId"])
                        .filter(|t| !t.is_empty());
                }
                record.attrs = fields.into();
            }
            None => record.message = line.line.clone(),
        }
        Some(record)
    }
}

#[async_trait]
impl DataSource for Loki {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn check(&self) -> Result<(), SourceError> {
        self.check_label_names()?;
        let end = Utc::now();
        let start = end - CHECK_WINDOW;
        let reply = self
            .endpoint
            .get(
                "loki/api/v1/labels",
                &[
                    ("start", nanos(start).to_string()),
                    ("end", nanos(end).to_string()),
                ],
            )
            .await?;
        let answer: Answer<Vec<String>> = reply.json(self.name())?;
        answer.data(&self.endpoint).map(|_| ())
    }

    async fn logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
        let Some(logql) = self.logql(query) else {
            return Ok(Vec::new());
        };
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        self.check_label_names()?;
        let page_size = self.config.max_lines_per_request.max(1);
        let max_pages = query.limit.div_ceil(page_size).saturating_add(EXTRA_PAGES);
        let first = nanos(query.window.start);
        let last = nanos(query.window.end);
        // The window is closed; Loki's `end` is exclusive.
        let end = last.saturating_add(1);
        let needle = query.contains.as_deref().unwrap_or("");
        let queried = query.service.as_deref();

        let mut records: Vec<LogRecord> = Vec::new();
        let mut start = first;
        // The latest timestamp read and the lines read at it: the next page starts there and
        // reads them again.
        let mut boundary: Option<i64> = None;
        let mut at_boundary: HashSet<(Arc<BTreeMap<String, String>>, String)> = HashSet::new();
        for pages in 1.. {
            let remaining = query.limit - records.len();
            let ask = remaining.saturating_add(at_boundary.len()).min(page_size);
            let page = self.page(&logql, start, end, ask).await?;
            let full = page.len() >= ask;
            let stuck_on_start = page.last().is_some_and(|l| l.ts_ns == start);
            let mut progress = false;
            for line in page {
                // Loki answers only inside what was asked; anything else is not trusted.
                if line.ts_ns < start || line.ts_ns > last {
                    continue;
                }
                let key = (line.labels.clone(), line.line.clone());
                if boundary == Some(line.ts_ns) {
                    if !at_boundary.insert(key) {
                        continue;
                    }
                } else {
                    boundary = Some(line.ts_ns);
                    at_boundary.clear();
                    at_boundary.insert(key);
                }
                progress = true;
                let Some(record) = self.to_record(&line, queried) else {
                    continue;
                };
                if record.message.contains(needle) {
                    records.push(record);
                    if records.len() >= query.limit {
                        break;
                    }
                }
            }
            if records.len() >= query.limit || !full {
                break;
            }
            if pages >= max_pages {
                tracing::warn!(source = %self.config.name, pages, "stopped paging; answering with the lines read");
                break;
            }
            match (progress, boundary) {
                (true, Some(ts)) => start = ts,
                // A full page of lines already read, all at the page's start: more lines share
                // this nanosecond than a page holds. Move past it rather than ask again.
                (false, _) if stuck_on_start && start < last => {
                    tracing::warn!(source = %self.config.name, ts = start, "more lines at one timestamp than a page holds; some skipped");
                    start += 1;
                    boundary = None;
                    at_boundary.clear();
                }
                // Nothing new and no way forward: the source is not moving; stop.
                _ => break,
            }
        }
        // Pages come in time order, but a stable sort keeps the answer ordered whatever the
        // source did.
        records.sort_by_key(|r| r.ts);
        records.truncate(query.limit);
        Ok(records)
    }
}

/// One line read, with its stream's labels (shared by the stream's lines).
struct Line {
    ts_ns: i64,
    labels: Arc<BTreeMap<String, String>>,
    line: String,
}

/// Loki's answer envelope (the Prometheus one).
#[derive(Debug, Deserialize)]
struct Answer<T> {
    status: String,
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl<T> Answer<T> {
    fn data(self, endpoint: &Endpoint) -> Result<T, SourceError> {
        if self.status != "success" {
            return Err(endpoint.bad(format!(
                "the answer has status `{}` ({}): {}",
                clip(&self.status),
                clip(self.error_type.as_deref().unwrap_or("no error type")),
                clip(self.error.as_deref().unwrap_or("no reason given"))
            )));
        }
        self.data
            .ok_or_else(|| endpoint.bad("a successful answer without `data`"))
    }
}

/// The `data` of a log query.
#[derive(Debug, Deserialize)]
struct Streams {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Stream>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    stream: BTreeMap<String, String>,
    values: Vec<Entry>,
}

/// `["<ns>", "<line>"]`; Loki 3 may add a third element (structured metadata), which is
/// ignored.
#[derive(Debug)]
struct Entry(String, String);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a [\"<nanoseconds>\", \"<line>\"] pair")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                use serde::de::Error;
                let ts: String = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let line: String = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Entry(ts, line))
            }
        }
        de.deserialize_seq(EntryVisitor)
    }
}

/// The fields of a line that is a JSON object carrying a text `message` or `msg`.
fn structured(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    // Most lines are not JSON; do not pay for a failed parse on them.
    if !line.trim_start().starts_with('{') {
        return None;
    }
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    ["message", "msg"]
        .iter()
        .any(|k| fields.get(*k).is_some_and(serde_json::Value::is_string))
        .then_some(fields)
}

/// Removes and returns the first of `keys` whose value is text; a value of another type
/// stays among the attributes.
fn take_text(
    fields: &mut serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Option<String> {
    let key = keys
        .iter()
        .find(|k| fields.get(**k).is_some_and(serde_json::Value::is_string))?;
    match fields.remove(*key) {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    }
}

/// Epoch nanoseconds, clamped to what Loki takes (a non-negative `i64`).
fn nanos(t: DateTime<Utc>) -> i64 {
    let ns = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    i64::try_from(ns.max(0)).unwrap_or(i64::MAX)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the label names LogQL reads unquoted.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// At most 100 characters of text from the source, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loki() -> Loki {
        Loki::new(LokiConfig::new("loki", "http://127.0.0.1:9"))
    }

    fn line(labels: &[(&str, &str)], text: &str) -> Line {
        Line {
            ts_ns: 1_700_000_000_123_456_789,
            labels: Arc::new(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            line: text.to_owned(),
        }
    }

    #[test]
    fn strings_are_escaped_for_logql() {
        assert_eq!(quoted(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(quoted("x\ny\u{1}"), "x\\ny\\u0001");
        assert_eq!(regex_literal("a.b|c"), r"a\.b\|c");
        assert!(is_label_name("_app9"));
        assert!(!is_label_name("9app"));
        assert!(!is_label_name("a\"}"));
        assert!(!is_label_name(""));
    }

    #[test]
    fn times_convert_to_nanoseconds_without_overflow() {
        let t = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        assert_eq!(nanos(t), 1_700_000_000_000_000_005);
        assert_eq!(nanos(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(nanos(DateTime::<Utc>::MIN_UTC), 0);
    }

    #[test]
    fn a_detected_level_of_unknown_is_no_level() {
        let record = loki()
            .to_record(
                &line(
                    &[("detected_level", "unknown")],
                    r#"{"msg":"m","level":"warn"}"#,
                ),
                Some("a"),
            )
            .unwrap();
        assert_eq!(record.level.as_deref(), Some("warn"));
        assert_eq!(record.service, "a");
    }

    proptest! {
        #[test]
        fn no_line_makes_mapping_panic(text in ".*", json in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..6)) {
            let object = serde_json::to_string(&json).unwrap();
            for text in [text.as_str(), object.as_str()] {
                let record = loki().to_record(&line(&[("service", "s")], text), None).unwrap();
                prop_assert_eq!(record.service, "s");
            }
        }
    }
}
