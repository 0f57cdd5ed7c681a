//! Capture: what a [`DataSource`] answers for a time window, written as the files of a bundle
//! (format v1), so that an incident seen live becomes a case `cairn eval` can replay.
//!
//! Invariant: the bundle read back answers every query for the window as the source did —
//! the same topology, every series with the same labels and raw samples (floats written in
//! their shortest round-trip form, so bit for bit), the same logs, spans, changes and events
//! in the same order, timestamps to the nanosecond. What the format cannot hold is refused
//! rather than bent (an invalid metric or label name, a span whose duration is not finite).
//! One loss is the format's own: a NaN sample is written as OpenMetrics spells it, but the
//! bundle reader leaves NaN out (there it means "no value").
//!
//! A capture never holds an `expect.yaml`: the answer is added by whoever knows it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::Serialize;

use super::files::KnownFile;
use super::index::Timed;
use super::BundleFiles;
use crate::model::{Alert, EventQuery, LogQuery, Sample, Series, SeriesSelector, SpanQuery};
use crate::model::{TimeWindow, Topology};
use crate::source::{DataSource, SourceError};

/// Everything `source` answers for `window`, as the files of a bundle (bundle.md, format v1).
///
/// `name` and `description` go to `bundle.yaml`, with `origin` as its `source` (`capture`, or
/// where the data came from); `alert`, when given, becomes `alert.json`. A file with nothing
/// to hold is left out. The output is deterministic: series are ordered by metric family,
/// labels and time, records by time. The first error the source returns ends the capture; so
/// does an answer the format cannot carry (an invalid metric or label name, a span whose
/// duration is not a finite number).
pub async fn capture(
    source: &dyn DataSource,
    window: TimeWindow,
    alert: Option<&Alert>,
    name: &str,
    origin: &str,
    description: Option<&str>,
) -> Result<BundleFiles, SourceError> {
    let unwritable = |reason: String| SourceError::BadData {
        source_name: source.name().to_owned(),
        reason,
    };
    let mut files = BundleFiles::new();
    files.insert(
        KnownFile::Manifest.name(),
        manifest(name, origin, window, description).map_err(unwritable)?,
    );
    if let Some(alert) = alert {
        let mut json = serde_json::to_vec_pretty(alert).map_err(|e| unwritable(e.to_string()))?;
        json.push(b'\n');
        files.insert(KnownFile::Alert.name(), json);
    }

    // One kind of answer at a time, each dropped once encoded: a long window's logs and
    // series are never held together, only the bytes written so far.
    if let Some(topology) = source.topology().await? {
        files.insert(
            KnownFile::Topology.name(),
            topology_yaml(&topology).map_err(unwritable)?,
        );
    }

    let series = source.series(&SeriesSelector::all(window)).await?;
    let series_count = series.len();
    if let Some(text) = openmetrics(series, &window).map_err(unwritable)? {
        files.insert(KnownFile::Metrics.name(), text);
    }

    let logs = source
        .logs(&LogQuery {
            window,
            service: None,
            contains: None,
            limit: usize::MAX,
        })
        .await?;
    let log_count = logs.len();
    insert_jsonl(&mut files, KnownFile::Logs, logs, &window).map_err(unwritable)?;

    let spans = source
        .spans(&SpanQuery {
            window,
            service: None,
            trace_id: None,
            limit: usize::MAX,
        })
        .await?;
    // JSON has no NaN or infinity (serde_json would write `null`), and a span the reader
    // cannot parse would make the whole bundle unreadable.
    if let Some(span) = spans
        .iter()
        .find(|s| window.contains(s.ts) && !s.duration_ms.is_finite())
    {
        return Err(unwritable(format!(
            "span `{}` of trace `{}` lasts {} ms, which JSON cannot hold",
            span.span_id, span.trace_id, span.duration_ms
        )));
    }
    let span_count = spans.len();
    insert_jsonl(&mut files, KnownFile::Traces, spans, &window).map_err(unwritable)?;

    let events_in_window = EventQuery {
        window,
        service: None,
    };
    let changes = source.changes(&events_in_window).await?;
    insert_jsonl(&mut files, KnownFile::Changes, changes, &window).map_err(unwritable)?;
    let events = source.events(&events_in_window).await?;
    insert_jsonl(&mut files, KnownFile::Events, events, &window).map_err(unwritable)?;

    tracing::debug!(
        source = source.name(),
        series = series_count,
        logs = log_count,
        spans = span_count,
        "captured a window as a bundle"
    );
    Ok(files)
}

/// `bundle.yaml`.
fn manifest(
    name: &str,
    origin: &str,
    window: TimeWindow,
    description: Option<&str>,
) -> Result<Vec<u8>, String> {
    #[derive(Serialize)]
    struct Manifest<'a> {
        version: u32,
        name: &'a str,
        source: &'a str,
        window: TimeWindow,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
    }
    let manifest = Manifest {
        version: 1,
        name,
        source: origin,
        window,
        description,
    };
    serde_yaml_ng::to_string(&manifest)
        .map(String::into_bytes)
        .map_err(|e| format!("bundle.yaml: {e}"))
}

/// `topology.yaml`.
fn topology_yaml(topology: &Topology) -> Result<Vec<u8>, String> {
    serde_yaml_ng::to_string(topology)
        .map(String::into_bytes)
        .map_err(|e| format!("topology.yaml: {e}"))
}

/// Adds `file` holding the records inside `window`, one JSON object a line in time order
/// (ties keep the source's order); nothing when none is inside.
fn insert_jsonl<T: Timed + Serialize>(
    files: &mut BundleFiles,
    file: KnownFile,
    mut records: Vec<T>,
    window: &TimeWindow,
) -> Result<(), String> {
    // A source answers within the window and in time order; a capture holds to both even
    // when one does not, since the bundle's window is a promise about its content.
    records.retain(|r| window.contains(r.ts()));
    records.sort_by_key(Timed::ts);
    if records.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    for record in &records {
        serde_json::to_writer(&mut out, record).map_err(|e| format!("{}: {e}", file.name()))?;
        out.push(b'\n');
    }
    files.insert(file.name(), out);
    Ok(())
}

/// The OpenMetrics type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl FamilyType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
        }
    }
}

/// Which sample of a family's metric point a series holds, in the order a point lists them:
/// the value (a gauge, a counter's `_total`, a histogram's `_bucket`s, a summary's
/// quantiles), then `_count`, `_sum` and `_created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Value,
    Count,
    Sum,
    Created,
}

/// The family a metric name belongs to and the part it plays there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    family: String,
    kind: FamilyType,
    role: Role,
}

/// What the series of one metric name carry that decides their family.
#[derive(Debug, Clone, Copy, Default)]
struct NameTraits {
    /// Some series has an `le` label (a histogram bucket).
    le: bool,
    /// Some series has a `quantile` label (a summary quantile).
    quantile: bool,
}

/// The family of every metric name, by the OpenMetrics suffix conventions (a source answers
/// with bare series; the types are inferred): `X_bucket{le}` with `X_count`/`X_sum` is
/// histogram `X`; `X_total` is counter `X`; `X_sum` with `X_count` (and `X{quantile}`) is
/// summary `X`; anything else is a gauge of its own name. Where two families would share a
/// name, the ones made of suffixed series are split into gauges, so that no `# TYPE` is
/// declared twice.
fn classify<'a>(names: &BTreeMap<&'a str, NameTraits>) -> BTreeMap<&'a str, Member> {
    let base = |name: &'a str, suffix: &str| name.strip_suffix(suffix).filter(|b| !b.is_empty());
    let histograms: BTreeSet<&str> = names
        .iter()
        .filter(|(_, traits)| traits.le)
        .filter_map(|(name, _)| base(name, "_bucket"))
        .collect();
    let summaries: BTreeSet<&str> = names
        .keys()
        .filter_map(|name| base(name, "_sum"))
        .filter(|b| names.contains_key(format!("{b}_count").as_str()) && !histograms.contains(b))
        .collect();
    let counters: BTreeSet<&str> = names.keys().filter_map(|n| base(n, "_total")).collect();

    let member = |family: &str, kind, role| Member {
        family: family.to_owned(),
        kind,
        role,
    };
    let mut members: BTreeMap<&str, Member> = names
        .iter()
        .map(|(&name, traits)| {
            if let Some(b) = base(name, "_bucket").filter(|b| histograms.contains(b)) {
                return (name, member(b, FamilyType::Histogram, Role::Value));
            }
            for (suffix, role) in [
                ("_count", Role::Count),
                ("_sum", Role::Sum),
                ("_created", Role::Created),
            ] {
                if let Some(b) = base(name, suffix) {
                    if histograms.contains(b) {
                        return (name, member(b, FamilyType::Histogram, role));
                    }
                    if summaries.contains(b) {
                        return (name, member(b, FamilyType::Summary, role));
                    }
                }
            }
            if let Some(b) = base(name, "_total") {
                return (name, member(b, FamilyType::Counter, Role::Value));
            }
            if let Some(b) = base(name, "_created").filter(|b| counters.contains(b)) {
                return (name, member(b, FamilyType::Counter, Role::Created));
            }
            if traits.quantile && summaries.contains(name) {
                return (name, member(name, FamilyType::Summary, Role::Value));
            }
            (name, member(name, FamilyType::Gauge, Role::Value))
        })
        .collect();

    // Two gauges never share a name, so every clash involves a suffixed family; each round
    // splits at least one, so this ends.
    loop {
        let mut kinds: BTreeMap<&str, BTreeSet<FamilyType>> = BTreeMap::new();
        for m in members.values() {
            kinds.entry(&m.family).or_default().insert(m.kind);
        }
        let clashing: BTreeSet<(String, FamilyType)> = kinds
            .iter()
            .filter(|(_, kinds)| kinds.len() > 1)
            .flat_map(|(family, kinds)| kinds.iter().map(|&k| (family.to_string(), k)))
            .filter(|(_, kind)| *kind != FamilyType::Gauge)
            .collect();
        if clashing.is_empty() {
            return members;
        }
        for (name, m) in &mut members {
            if clashing.contains(&(m.family.clone(), m.kind)) {
                *m = member(name, FamilyType::Gauge, Role::Value);
            }
        }
    }
}

/// One series as written: its line prefix, its place in a metric point, its samples.
struct Line<'a> {
    role: Role,
    /// The bucket bound or quantile, to order a point's values (`+Inf` last).
    bound: Option<f64>,
    /// `name{labels}`, exactly as every sample line of the series starts.
    text: String,
    samples: &'a [Sample],
}

/// One metric of a family: its series that together make metric points (a histogram's
/// buckets, count and sum, say), keyed by the labels they share.
type Metrics<'a> = BTreeMap<Vec<(&'a str, &'a str)>, Vec<Line<'a>>>;

/// `metrics.om`: every sample inside `window` as OpenMetrics text with timestamps, or `None`
/// when there is none.
///
/// Families are ordered by name, each under its `# TYPE` line; a family's metrics by their
/// labels; and the series of one metric are interleaved per timestamp (all buckets, count and
/// sum of a histogram at t, then at the next t), as OpenMetrics groups a metric point.
/// Series the source repeats are merged; a repeated timestamp keeps the value given last, as
/// the reader does.
fn openmetrics(series: Vec<Series>, window: &TimeWindow) -> Result<Option<Vec<u8>>, String> {
    let mut by_key: BTreeMap<(String, BTreeMap<String, String>), Vec<Sample>> = BTreeMap::new();
    for s in series {
        check_names(&s)?;
        let mut samples = s.samples;
        samples.retain(|p| window.contains_ms(p.ts_ms));
        if !samples.is_empty() {
            by_key
                .entry((s.metric, s.labels))
                .or_default()
                .append(&mut samples);
        }
    }
    if by_key.is_empty() {
        return Ok(None);
    }
    let mut total = 0;
    for samples in by_key.values_mut() {
        samples.sort_by_key(|p| p.ts_ms);
        samples.dedup_by(|later, kept| {
            let same = later.ts_ms == kept.ts_ms;
            if same {
                *kept = *later;
            }
            same
        });
        total += samples.len();
    }

    let mut names: BTreeMap<&str, NameTraits> = BTreeMap::new();
    for (metric, labels) in by_key.keys() {
        let traits = names.entry(metric).or_default();
        traits.le |= labels.contains_key("le");
        traits.quantile |= labels.contains_key("quantile");
    }
    let members = classify(&names);

    let mut families: BTreeMap<&str, (FamilyType, Metrics<'_>)> = BTreeMap::new();
    for ((metric, labels), samples) in &by_key {
        let Some(member) = members.get(metric.as_str()) else {
            continue;
        };
        // The label that tells a point's values apart is not part of the metric's identity.
        let point_label = match (member.kind, member.role) {
            (FamilyType::Histogram, Role::Value) => Some("le"),
            (FamilyType::Summary, Role::Value) => Some("quantile"),
            _ => None,
        };
        let shared: Vec<(&str, &str)> = labels
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != point_label)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bound = point_label
            .and_then(|l| labels.get(l))
            .and_then(|b| b.trim().parse::<f64>().ok());
        let (_, metrics) = families
            .entry(member.family.as_str())
            .or_insert_with(|| (member.kind, BTreeMap::new()));
        metrics.entry(shared).or_default().push(Line {
            role: member.role,
            bound,
            text: series_text(metric, labels),
            samples,
        });
    }

    // About 60 bytes a sample line; a guess that saves most reallocations of a big file.
    let mut out = Vec::with_capacity(total.saturating_mul(60));
    for (family, (kind, metrics)) in &mut families {
        write_text(
            &mut out,
            format_args!("# TYPE {family} {}\n", kind.as_str()),
        );
        for lines in metrics.values_mut() {
            // Point order; a value without a readable bound after those with one.
            lines.sort_by(|a, b| {
                (a.role, a.bound.is_none())
                    .cmp(&(b.role, b.bound.is_none()))
                    .then_with(|| a.bound.unwrap_or(0.0).total_cmp(&b.bound.unwrap_or(0.0)))
                    .then_with(|| a.text.cmp(&b.text))
            });
            write_points(&mut out, lines);
        }
    }
    out.extend_from_slice(b"# EOF\n");
    Ok(Some(out))
}

/// Writes the series of one metric, interleaved by timestamp: at each time any of them has a
/// sample, every one that has one, in point order.
fn write_points(out: &mut Vec<u8>, lines: &[Line<'_>]) {
    let mut next = vec![0usize; lines.len()];
    loop {
        let at = lines
            .iter()
            .zip(&next)
            .filter_map(|(line, &i)| line.samples.get(i).map(|p| p.ts_ms))
            .min();
        let Some(at) = at else { return };
        for (line, i) in lines.iter().zip(next.iter_mut()) {
            if let Some(sample) = line.samples.get(*i).filter(|p| p.ts_ms == at) {
                out.extend_from_slice(line.text.as_bytes());
                out.push(b' ');
                write_value(out, sample.value);
                out.push(b' ');
                write_seconds(out, sample.ts_ms);
                out.push(b'\n');
                *i += 1;
            }
        }
    }
}

/// Writing into a `Vec` cannot fail; this says so once.
fn write_text(out: &mut Vec<u8>, text: std::fmt::Arguments<'_>) {
    let _infallible = out.write_fmt(text);
}

/// `name{a="1",b="2"}` (labels in name order, values escaped), or `name` without labels.
fn series_text(metric: &str, labels: &BTreeMap<String, String>) -> String {
    let mut text = String::with_capacity(metric.len() + 16 * labels.len());
    text.push_str(metric);
    if labels.is_empty() {
        return text;
    }
    text.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '"' => text.push_str("\\\""),
                '\n' => text.push_str("\\n"),
                c => text.push(c),
            }
        }
        text.push('"');
    }
    text.push('}');
    text
}

/// A sample value as OpenMetrics spells it, in the shortest form that parses back to the
/// same float: `NaN`, `+Inf`, `-Inf`, plain decimals, or an exponent for very large and very
/// small magnitudes (where plain digits would run to hundreds).
fn write_value(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if value == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else if value != 0.0 && !(1e-4..1e16).contains(&value.abs()) {
        write_text(out, format_args!("{value:e}"));
    } else {
        write_text(out, format_args!("{value}"));
    }
}

/// Epoch milliseconds as seconds, exactly: `1700000000`, `1700000000.25`, `-0.001`.
///
/// Cairn's reader rounds seconds × 1000 to the millisecond, so every millisecond comes back.
/// Prometheus truncates instead; for times from 2005 on the decimal still lands on its
/// millisecond (checked by the promtool test), for older ones it may load 1 ms early.
fn write_seconds(out: &mut Vec<u8>, ts_ms: i64) {
    let sign = if ts_ms < 0 { "-" } else { "" };
    let (whole, frac) = (ts_ms.unsigned_abs() / 1000, ts_ms.unsigned_abs() % 1000);
    if frac == 0 {
        write_text(out, format_args!("{sign}{whole}"));
    } else if frac % 100 == 0 {
        write_text(out, format_args!("{sign}{whole}.{}", frac / 100));
    } else if frac % 10 == 0 {
        write_text(out, format_args!("{sign}{whole}.{:02}", frac / 10));
    } else {
        write_text(out, format_args!("{sign}{whole}.{frac:03}"));
    }
}

/// The names of a series must be OpenMetrics names, or the bundle could not be read back.
fn check_names(series: &Series) -> Result<(), String> {
    let valid = |name: &str, first: fn(u8) -> bool, rest: fn(u8) -> bool| {
        name.as_bytes()
            .split_first()
            .is_some_and(|(&b, tail)| first(b) && tail.iter().all(|&b| rest(b)))
    };
    let metric_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let metric_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':';
    let label_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let label_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    if !valid(&series.metric, metric_start, metric_char) {
        return Err(format!(
            "metric name {:?} is not an OpenMetrics name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            series.metric
        ));
    }
    if let Some(label) = series
        .labels
        .keys()
        .find(|l| !valid(l, label_start, label_char))
    {
        return Err(format!(
            "label name {label:?} of metric `{}` is not an OpenMetrics name ([a-zA-Z_][a-zA-Z0-9_]*)",
            series.metric
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value_text(v: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn seconds_text(ms: i64) -> String {
        let mut out = Vec::new();
        write_seconds(&mut out, ms);
        String::from_utf8(out).unwrap()
    }

    fn classified(
        names: &[(&'static str, bool, bool)],
    ) -> Vec<(&'static str, String, &'static str, Role)> {
        let names: BTreeMap<&str, NameTraits> = names
            .iter()
            .map(|&(n, le, quantile)| (n, NameTraits { le, quantile }))
            .collect();
        classify(&names)
            .into_iter()
            .map(|(n, m)| (n, m.family, m.kind.as_str(), m.role))
            .collect()
    }

    #[test]
    fn values_are_spelled_as_openmetrics_spells_them() {
        assert_eq!(value_text(1.0), "1");
        assert_eq!(value_text(-2.5), "-2.5");
        assert_eq!(value_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(value_text(1e300), "1e300");
        assert_eq!(value_text(1.5e-7), "1.5e-7");
        assert_eq!(value_text(5e-324), "5e-324");
        assert_eq!(value_text(f64::NAN), "NaN");
        assert_eq!(value_text(f64::INFINITY), "+Inf");
        assert_eq!(value_text(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value_text(-0.0), "-0");
    }

    #[test]
    fn timestamps_are_seconds_without_trailing_zeros() {
        assert_eq!(seconds_text(1_700_000_000_000), "1700000000");
        assert_eq!(seconds_text(1_700_000_000_500), "1700000000.5");
        assert_eq!(seconds_text(1_700_000_000_250), "1700000000.25");
        assert_eq!(seconds_text(1_700_000_000_001), "1700000000.001");
        assert_eq!(seconds_text(-1), "-0.001");
        assert_eq!(seconds_text(0), "0");
    }

    #[test]
    fn families_follow_the_suffix_conventions() {
        assert_eq!(
            classified(&[
                ("http_seconds_bucket", true, false),
                ("http_seconds_count", false, false),
                ("http_seconds_sum", false, false),
                ("requests_total", false, false),
                ("requests_created", false, false),
                ("rpc_seconds", false, true),
                ("rpc_seconds_count", false, false),
                ("rpc_seconds_sum", false, false),
                ("pg_stat_activity_count", false, false),
                ("queue_bucket", false, false),
                ("up", false, false),
            ]),
            vec![
                (
                    "http_seconds_bucket",
                    "http_seconds".into(),
                    "histogram",
                    Role::Value
                ),
                (
                    "http_seconds_count",
                    "http_seconds".into(),
                    "histogram",
                    Role::Count
                ),
                (
                    "http_seconds_sum",
                    "http_seconds".into(),
                    "histogram",
                    Role::Sum
                ),
                (
                    "pg_stat_activity_count",
                    "pg_stat_activity_count".into(),
                    "gauge",
                    Role::Value
                ),
                ("queue_bucket", "queue_bucket".into(), "gauge", Role::Value),
                (
                    "requests_created",
                    "requests".into(),
                    "counter",
                    Role::Created
                ),
                ("requests_total", "requests".into(), "counter", Role::Value),
                ("rpc_seconds", "rpc_seconds".into(), "summary", Role::Value),
                (
                    "rpc_seconds_count",
                    "rpc_seconds".into(),
                    "summary",
                    Role::Count
                ),
                (
                    "rpc_seconds_sum",
                    "rpc_seconds".into(),
                    "summary",
                    Role::Sum
                ),
                ("up", "up".into(), "gauge", Role::Value),
            ]
        );
    }

    #[test]
    fn clashing_families_split_into_gauges() {
        // Gauge `jobs` and counter `jobs` (from `jobs_total`) cannot both be declared; the
        // counter gives way, and then so does counter `jobs_total` (from `jobs_total_total`).
        // A bare `_total` has no family name to strip down to.
        assert_eq!(
            classified(&[
                ("jobs", false, false),
                ("jobs_total", false, false),
                ("jobs_total_total", false, false),
                ("_total", false, false),
            ]),
            vec![
                ("_total", "_total".into(), "gauge", Role::Value),
                ("jobs", "jobs".into(), "gauge", Role::Value),
                ("jobs_total", "jobs_total".into(), "gauge", Role::Value),
                (
                    "jobs_total_total",
                    "jobs_total_total".into(),
                    "gauge",
                    Role::Value
                ),
            ]
        );
    }

    proptest! {
        #[test]
        fn every_float_reads_back_bit_for_bit(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            let text = value_text(v);
            let back: f64 = text.parse().unwrap();
            if v.is_nan() {
                prop_assert!(back.is_nan());
            } else {
                prop_assert_eq!(back.to_bits(), v.to_bits(), "{} -> {}", v, text);
            }
        }

        #[test]
        // Years 1 to 9999, as RFC 3339 has them: the reader's seconds × 1000, rounded, gives
        // back the very millisecond.
        fn every_millisecond_reads_back(ms in -62_135_596_800_000i64..253_402_300_800_000) {
            let seconds: f64 = seconds_text(ms).parse().unwrap();
            prop_assert_eq!((seconds * 1000.0).round() as i64, ms);
        }
    }
}
