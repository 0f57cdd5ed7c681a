//! What sources answer with: the vocabulary shared by every data source and the agents.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A closed time interval `[start, end]`; every query is bounded by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub start: DateTime<Utc>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub end: DateTime<Utc>,
}

impl TimeWindow {
    /// Builds a window; `None` when `end` is before `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// Whether `t` lies inside the window (both ends included).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t <= self.end
    }

    /// Whether the epoch-millisecond time `ms` lies inside the window.
    pub fn contains_ms(&self, ms: i64) -> bool {
        self.start.timestamp_millis() <= ms && ms <= self.end.timestamp_millis()
    }
}

/// The service graph: who calls whom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub services: Vec<ServiceNode>,
}

impl Topology {
    /// The node called `name`, if the graph has one.
    pub fn service(&self, name: &str) -> Option<&ServiceNode> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Services that list `name` in their `depends_on` (its callers).
    pub fn callers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ServiceNode> + 'a {
        self.services
            .iter()
            .filter(move |s| s.depends_on.iter().any(|d| d == name))
    }
}

/// One service in the topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceNode {
    pub name: String,
    /// Free text: service, database, cache, queue, gateway, external…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Callees of this service.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// A page, in Alertmanager's webhook alert shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub starts_at: DateTime<Utc>,
    #[serde(
        default,
        deserialize_with = "crate::time::deserialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl Alert {
    /// The service the page names, if any.
    pub fn service(&self) -> Option<&str> {
        self.labels.get("service").map(String::as_str)
    }

    /// The page title: `annotations.summary`, else `labels.alertname`.
    pub fn title(&self) -> &str {
        self.annotations
            .get("summary")
            .or_else(|| self.labels.get("alertname"))
            .map(String::as_str)
            .unwrap_or("alert")
    }
}

/// Which metric series a range query asks for. Every field narrows; none set means all.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSelector {
    pub window: TimeWindow,
    /// Metric name (exact).
    pub metric: Option<String>,
    /// Value of the `service` label.
    pub service: Option<String>,
    /// Further label equality matchers.
    pub labels: Vec<(String, String)>,
}

impl SeriesSelector {
    /// Everything in `window`.
    pub fn all(window: TimeWindow) -> Self {
        Self {
            window,
            metric: None,
            service: None,
            labels: Vec::new(),
        }
    }

    /// Whether a series with this name and these labels is selected.
    pub fn matches(&self, metric: &str, labels: &BTreeMap<String, String>) -> bool {
        self.metric.as_deref().is_none_or(|m| m == metric)
            && self
                .service
                .as_deref()
                .is_none_or(|s| labels.get("service").map(String::as_str) == Some(s))
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

/// One sample: epoch milliseconds and a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub ts_ms: i64,
    pub value: f64,
}

/// A metric series: name, labels (the `service` label among them) and raw samples in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Series {
    /// The `service` label.
    pub fn service(&self) -> Option<&str> {
        self.labels.get("service").map(String::as_str)
    }
}

/// A log search.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    pub window: TimeWindow,
    pub service: Option<String>,
    /// Case-sensitive substring the message must contain.
    pub contains: Option<String>,
    /// At most this many records (the earliest first).
    pub limit: usize,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ts: DateTime<Utc>,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Attrs::is_empty")]
    pub attrs: Attrs,
}

/// A record's other fields, sorted by name. A short list, not a map: most records carry
/// one or two, and a one-entry `BTreeMap` allocates a whole node (~600 bytes) — paid by
/// every span of a bundle held in memory. Reads and writes as a JSON object; a name given
/// twice keeps its last value, as `serde_json` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attrs(Vec<(String, serde_json::Value)>);

impl Attrs {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.find(name).ok().map(|at| &self.0[at].1)
    }

    /// Sets field `name`; returns the value it replaced.
    pub fn insert(&mut self, name: String, value: serde_json::Value) -> Option<serde_json::Value> {
        match self.find(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (name, value));
                None
            }
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The fields, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }
}

impl FromIterator<(String, serde_json::Value)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (String, serde_json::Value)>>(fields: I) -> Self {
        let mut attrs = Self::new();
        for (name, value) in fields {
            attrs.insert(name, value);
        }
        attrs.0.shrink_to_fit();
        attrs
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Attrs {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        map.into_iter().collect()
    }
}

impl Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Attrs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Attrs, A::Error> {
                let mut attrs = Attrs::new();
                while let Some((name, value)) = map.next_entry::<String, serde_json::Value>()? {
                    attrs.insert(name, value);
                }
                attrs.0.shrink_to_fit();
                Ok(attrs)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A span search.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanQuery {
    pub window: TimeWindow,
    pub service: Option<String>,
    pub trace_id: Option<String>,
    /// At most this many spans (the earliest first).
    pub limit: usize,
}

/// Outcome of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    Ok,
    Error,
}

/// One span of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ts: DateTime<Utc>,
    pub trace_id: String,
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub service: String,
    pub operation: String,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SpanStatus>,
    #[serde(default, skip_serializing_if = "Attrs::is_empty")]
    pub attrs: Attrs,
}

/// Changes and infrastructure events in a window, optionally for one service.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub window: TimeWindow,
    pub service: Option<String>,
}

/// What kind of change a [`Change`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Deploy,
    Config,
    Flag,
    Scale,
    Infra,
}

/// A deploy or other change to production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ts: DateTime<Utc>,
    pub service: String,
    pub kind: ChangeKind,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Where to read more (a commit or pull request), when the source knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Normal or Warning, as Kubernetes classifies events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// An infrastructure event (Kubernetes-style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraEvent {
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ts: DateTime<Utc>,
    /// The object it is about, e.g. `pod/checkout-7d9f-abc`.
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub reason: String,
    pub message: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

#[cfg(test)]
mod attrs_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attrs_read_and_write_as_an_object_sorted_with_the_last_duplicate_kept() {
        let attrs: Attrs =
            serde_json::from_str(r#"{"pod": "a-1", "gc": {"pause_ms": 3}, "pod": "a-2"}"#).unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs.get("pod"), Some(&json!("a-2")));
        assert_eq!(attrs.get("peer.service"), None);
        assert_eq!(
            serde_json::to_string(&attrs).unwrap(),
            r#"{"gc":{"pause_ms":3},"pod":"a-2"}"#
        );
        // The same as the map it replaces, in and out.
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"z": 1, "a": [true]}"#).unwrap();
        let from_map = Attrs::from(map.clone());
        assert_eq!(
            serde_json::to_value(&from_map).unwrap(),
            serde_json::Value::Object(map)
        );
        assert!(serde_json::from_str::<Attrs>("[1]").is_err());
    }

    #[test]
    fn insert_replaces_and_keeps_names_in_order() {
        let mut attrs = Attrs::new();
        assert!(attrs.is_empty());
        assert_eq!(attrs.insert("b".into(), json!(1)), None);
        assert_eq!(attrs.insert("a".into(), json!(2)), None);
        assert_eq!(attrs.insert("b".into(), json!(3)), Some(json!(1)));
        let names: Vec<&str> = attrs.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["a", "b"]);
        // A record without fields writes none.
        let line = LogRecord {
            ts: DateTime::from_timestamp(0, 0).unwrap(),
            service: "s".into(),
            level: None,
            message: "m".into(),
            pod: None,
            trace_id: None,
            attrs: Attrs::new(),
        };
        assert!(!serde_json::to_string(&line).unwrap().contains("attrs"));
    }
}
