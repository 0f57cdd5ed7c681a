//! Prometheus (and what speaks its HTTP API: Thanos, Mimir, VictoriaMetrics) as a metric
//! source.
//!
//! The agents compute their golden signals (error ratio, rate, latency, saturation) from
//! raw samples, the way they do from a bundle's `metrics.om`, so this source hands them raw
//! samples: a window up to [`PrometheusConfig::raw_limit`] is read with one instant query of
//! a range-vector selector (`{service="checkout"}[3600001ms]`), which returns every stored
//! sample, not points resampled at a step. A longer window is read with `query_range` at a
//! step chosen from the window (at most [`MAX_POINTS`] points a series), because raw
//! samples of days would be more than an investigation can use.
//!
//! A team's names are mapped at the edge: the label that names the service
//! ([`PrometheusConfig::service_label`], e.g. `app` or `job`) comes back as `service`, and
//! metric names listed in [`PrometheusConfig::metrics`] come back under the name Cairn
//! reads (and a query for Cairn's name asks for the team's).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::http::{Auth, Endpoint, Resilience};
use crate::model::{Sample, Series, SeriesSelector, TimeWindow};
use crate::selector::{quoted, regex_literal};
use crate::source::{DataSource, SourceError};

/// The most points a series is read with when the window is too long for raw samples.
pub const MAX_POINTS: i64 = 1_000;

/// How to reach one Prometheus and what it covers.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// The source's name, for evidence and errors.
    pub name: String,
    /// Base URL, e.g. `http://prometheus:9090` (the API lives under `/api/v1`).
    pub url: String,
    pub auth: Auth,
    /// Services this Prometheus holds; empty means any. A query for another service is not
    /// sent.
    pub services: Vec<String>,
    /// Label matchers added to every query (`cluster = "eu-1"`): the slice of a shared
    /// Prometheus this source stands for.
    pub labels: BTreeMap<String, String>,
    /// The label that names the service in this Prometheus.
    pub service_label: String,
    /// Metric names as this Prometheus has them → the names Cairn reads.
    pub metrics: BTreeMap<String, String>,
    /// The longest window read as raw samples.
    pub raw_limit: Duration,
    pub resilience: Resilience,
}

impl PrometheusConfig {
    /// A source named `name` at `url` with the defaults: label `service`, no renames, raw
    /// samples up to 6 hours.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            auth: Auth::None,
            services: Vec::new(),
            labels: BTreeMap::new(),
            service_label: "service".into(),
            metrics: BTreeMap::new(),
            raw_limit: Duration::from_secs(6 * 3600),
            resilience: Resilience::default(),
        }
    }
}

/// A live Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    endpoint: Endpoint,
    config: PrometheusConfig,
    /// Cairn's metric name → this Prometheus's.
    theirs: BTreeMap<String, String>,
}

impl Prometheus {
    /// A source over the Prometheus `config` names; nothing is sent until it is asked.
    pub fn new(config: PrometheusConfig) -> Self {
        let endpoint = Endpoint::new(
            &config.name,
            &config.url,
            config.auth.clone(),
            config.resilience,
        );
        let theirs = config
            .metrics
            .iter()
            .map(|(theirs, ours)| (ours.clone(), theirs.clone()))
            .collect();
        Self {
            endpoint,
            config,
            theirs,
        }
    }

    /// The PromQL series selector for `query`, or `None` when this source does not cover
    /// the service asked for.
    pub fn selector(&self, query: &SeriesSelector) -> Option<String> {
        let covers = |s: &str| {
            self.config.services.is_empty() || self.config.services.iter().any(|c| c == s)
        };
        let mut matchers: Vec<String> = Vec::new();
        if let Some(metric) = &query.metric {
            let name = self.theirs.get(metric).unwrap_or(metric);
            matchers.push(format!("__name__=\"{}\"", quoted(name)));
        }
        match &query.service {
            Some(service) if !covers(service) => return None,
            Some(service) => matchers.push(format!(
                "{}=\"{}\"",
                self.config.service_label,
                quoted(service)
            )),
            None if !self.config.services.is_empty() => {
                let alternatives: Vec<String> = self
                    .config
                    .services
                    .iter()
                    .map(|s| regex_literal(s))
                    .collect();
                matchers.push(format!(
                    "{}=~\"{}\"",
                    self.config.service_label,
                    quoted(&alternatives.join("|"))
                ));
            }
            None => {}
        }
        let configured = self.config.labels.iter();
        let asked = query.labels.iter().map(|(k, v)| (k, v));
        for (label, value) in configured.chain(asked) {
            let label = if label == "service" {
                &self.config.service_label
            } else {
                label
            };
            matchers.push(format!("{label}=\"{}\"", quoted(value)));
        }
        if !matchers.iter().any(|m| !m.ends_with("=\"\"")) {
            // Prometheus refuses a selector that could match every series' empty label.
            matchers.push("__name__=~\".+\"".into());
        }
        Some(format!("{{{}}}", matchers.join(",")))
    }

    /// Turns one answered series into Cairn's vocabulary, keeping the samples in the window.
    fn to_series(&self, raw: RawSeries, window: &TimeWindow) -> Result<Series, SourceError> {
        let mut labels = raw.metric;
        let theirs = labels.remove("__name__").unwrap_or_default();
        let metric = self.config.metrics.get(&theirs).cloned().unwrap_or(theirs);
        if self.config.service_label != "service" {
            if let Some(service) = labels.remove(&self.config.service_label) {
                labels.insert("service".into(), service);
            }
        }
        let mut samples = Vec::with_capacity(raw.values.len());
        for (ts, value) in raw.values {
            let ts_ms = seconds_to_ms(&ts).ok_or_else(|| {
                self.endpoint
                    .bad(format!("a sample of `{metric}` has the time `{ts}`"))
            })?;
            let value = parse_value(&value).ok_or_else(|| {
                self.endpoint
                    .bad(format!("a sample of `{metric}` has the value `{value}`"))
            })?;
            if window.contains_ms(ts_ms) {
                samples.push(Sample { ts_ms, value });
            }
        }
        samples.sort_by_key(|s| s.ts_ms);
        Ok(Series {
            metric,
            labels,
            samples,
        })
    }
}

#[async_trait]
impl DataSource for Prometheus {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn check(&self) -> Result<(), SourceError> {
        let reply = self.endpoint.get("api/v1/labels", &[]).await?;
        let answer: Answer<serde_json::Value> = reply.json(self.name())?;
        answer.data(&self.endpoint).map(|_| ())
    }

    async fn series(&self, query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        let Some(selector) = self.selector(query) else {
            return Ok(Vec::new());
        };
        let window = query.window;
        let span_ms = (window.end - window.start).num_milliseconds().max(0);
        let raw = span_ms as u128 <= self.config.raw_limit.as_millis();
        let reply = if raw {
            // A range selector covers (time - range, time] on Prometheus 3 and
            // [time - range, time] on 2: one millisecond more takes the window's first
            // sample on both; samples outside the window are dropped below.
            let promql = format!("{selector}[{}ms]", span_ms + 1);
            self.endpoint
                .get(
                    "api/v1/query",
                    &[
                        ("query", promql),
                        ("time", ms_to_seconds(window.end.timestamp_millis())),
                    ],
                )
                .await?
        } else {
            let step_ms = ((span_ms / MAX_POINTS).max(1_000) + 999) / 1_000 * 1_000;
            self.endpoint
                .get(
                    "api/v1/query_range",
                    &[
                        ("query", selector),
                        ("start", ms_to_seconds(window.start.timestamp_millis())),
                        ("end", ms_to_seconds(window.end.timestamp_millis())),
                        ("step", format!("{}ms", step_ms)),
                    ],
                )
                .await?
        };
        let answer: Answer<Matrix> = reply.json(self.name())?;
        let matrix = answer.data(&self.endpoint)?;
        if matrix.result_type != "matrix" {
            return Err(self
                .endpoint
                .bad(format!("asked for samples, got a `{}`", matrix.result_type)));
        }
        let mut series = matrix
            .result
            .into_iter()
            .map(|raw| self.to_series(raw, &window))
            .collect::<Result<Vec<_>, _>>()?;
        series.retain(|s| !s.samples.is_empty() && query.matches(&s.metric, &s.labels));
        Ok(series)
    }
}

/// Prometheus's answer envelope.
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
            return Err(SourceError::Unavailable {
                source_name: endpoint.name().to_owned(),
                reason: format!(
                    "the query failed ({}): {}",
                    self.error_type.as_deref().unwrap_or("error"),
                    self.error.as_deref().unwrap_or("no reason given")
                ),
            });
        }
        self.data
            .ok_or_else(|| endpoint.bad("a successful answer without `data`"))
    }
}

#[derive(Debug, Deserialize)]
struct Matrix {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<RawSeries>,
}

#[derive(Debug, Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(serde_json::Value, String)>,
}

/// Prometheus times are seconds as a JSON number with up to millisecond precision.
fn seconds_to_ms(ts: &serde_json::Value) -> Option<i64> {
    let text = match ts {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole: i64 = whole.parse().ok()?;
    let mut digits: String = fraction.chars().take(3).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 3 {
        digits.push('0');
    }
    let millis: i64 = digits.parse().ok()?;
    whole
        .checked_mul(1_000)?
        .checked_add(if whole < 0 { -millis } else { millis })
}

/// Epoch milliseconds as the seconds Prometheus takes (`1700000000.123`).
fn ms_to_seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1_000), ms.rem_euclid(1_000))
}

/// Sample values are strings: numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn window() -> TimeWindow {
        TimeWindow {
            start: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            end: DateTime::from_timestamp(1_700_003_600, 0).unwrap(),
        }
    }

    #[test]
    fn times_convert_without_float_error() {
        assert_eq!(
            seconds_to_ms(&serde_json::json!(1700000000.123)),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            seconds_to_ms(&serde_json::json!(1700000000)),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            seconds_to_ms(&serde_json::json!(1700000000.1)),
            Some(1_700_000_000_100)
        );
        assert_eq!(seconds_to_ms(&serde_json::json!("x")), None);
        assert_eq!(seconds_to_ms(&serde_json::json!(null)), None);
        assert_eq!(ms_to_seconds(1_700_000_000_007), "1700000000.007");
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert!(parse_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_value("1e3"), Some(1000.0));
        assert_eq!(parse_value("oops"), None);
    }

    #[test]
    fn selectors_are_built_and_escaped() {
        let mut config = PrometheusConfig::new("prom", "http://127.0.0.1:9");
        config.service_label = "app".into();
        config.labels.insert("cluster".into(), "eu\"1".into());
        config.metrics.insert(
            "http_server_requests_seconds_count".into(),
            "http_requests_total".into(),
        );
        let prom = Prometheus::new(config);
        let query = SeriesSelector {
            metric: Some("http_requests_total".into()),
            service: Some("check\\out".into()),
            ..SeriesSelector::all(window())
        };
        assert_eq!(
            prom.selector(&query).unwrap(),
            r#"{__name__="http_server_requests_seconds_count",app="check\\out",cluster="eu\"1"}"#
        );
        let everything = Prometheus::new(PrometheusConfig::new("p", "http://127.0.0.1:9"));
        assert_eq!(
            everything.selector(&SeriesSelector::all(window())).unwrap(),
            r#"{__name__=~".+"}"#
        );
    }

    #[test]
    fn a_source_covering_some_services_asks_only_for_them() {
        let mut config = PrometheusConfig::new("prom", "http://127.0.0.1:9");
        config.services = vec!["a.b".into(), "c".into()];
        let prom = Prometheus::new(config);
        let other = SeriesSelector {
            service: Some("d".into()),
            ..SeriesSelector::all(window())
        };
        assert_eq!(prom.selector(&other), None);
        assert_eq!(
            prom.selector(&SeriesSelector::all(window())).unwrap(),
            r#"{service=~"a\\.b|c"}"#
        );
    }
}
