//! The in-memory index a bundle builds once at open, so every query is a binary search.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::{DateTime, Utc};

use super::openmetrics::{decode_labels, RawSample};
use crate::model::{
    Change, InfraEvent, LogRecord, Sample, Series, SeriesSelector, Span, TimeWindow,
};

/// Collects samples into series while the metrics file streams by.
#[derive(Default)]
pub(crate) struct SeriesBuilder {
    /// Series text as written (`name{a="1"}`) → position in `series`: the allocation-free
    /// fast path, since a series' lines repeat the same text.
    by_text: HashMap<String, usize>,
    /// Decoded name and labels → position, so `{a="1",b="2"}` and `{b="2",a="1"}` are one series.
    by_key: HashMap<(String, BTreeMap<String, String>), usize>,
    series: Vec<Series>,
    /// The series text of the previous sample line (a buffer reused across runs).
    run_text: String,
    /// Position of that series; `None` before the first sample.
    run_at: Option<usize>,
}

impl SeriesBuilder {
    /// Adds one sample and makes its series the current run.
    pub(crate) fn add(&mut self, sample: &RawSample<'_>) -> Result<(), String> {
        let at = match self.by_text.get(sample.series) {
            Some(&at) => at,
            None => {
                let key = (sample.name.to_owned(), decode_labels(sample.labels)?);
                let at = match self.by_key.get(&key) {
                    Some(&at) => at,
                    None => {
                        let at = self.series.len();
                        let (metric, labels) = key.clone();
                        self.series.push(Series {
                            metric,
                            labels,
                            samples: Vec::new(),
                        });
                        self.by_key.insert(key, at);
                        at
                    }
                };
                self.by_text.insert(sample.series.to_owned(), at);
                at
            }
        };
        self.run_text.clear();
        self.run_text.push_str(sample.series);
        self.run_at = Some(at);
        self.push(at, sample.value, sample.ts_ms);
        Ok(())
    }

    /// What follows the series text when `line` continues the current run of one series.
    pub(crate) fn continues_run<'l>(&self, line: &'l str) -> Option<&'l str> {
        self.run_at?;
        line.strip_prefix(self.run_text.as_str())
            .filter(|rest| rest.starts_with([' ', '\t']))
    }

    /// Adds a sample to the series of the current run.
    pub(crate) fn push_to_run(&mut self, value: f64, ts_ms: i64) {
        if let Some(at) = self.run_at {
            self.push(at, value, ts_ms);
        }
    }

    /// Appends a sample to series `at`. A NaN value is left out of the index: it means "no
    /// value" in the sources bundles are made from, and it would poison every statistic.
    fn push(&mut self, at: usize, value: f64, ts_ms: i64) {
        if value.is_nan() {
            return;
        }
        if let Some(series) = self.series.get_mut(at) {
            series.samples.push(Sample { ts_ms, value });
        }
    }

    /// Series ordered by name then labels, each with samples in time order. When one
    /// timestamp repeats, the value written last wins, as a re-scrape would overwrite it.
    /// Series left without samples (all NaN) are dropped.
    pub(crate) fn finish(self) -> Vec<Series> {
        let mut series = self.series;
        series.retain(|s| !s.samples.is_empty());
        for s in &mut series {
            s.samples.sort_by_key(|p| p.ts_ms);
            s.samples.dedup_by(|later, kept| {
                let same = later.ts_ms == kept.ts_ms;
                if same {
                    *kept = *later;
                }
                same
            });
        }
        series.sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
        series
    }
}

/// Metric series, ordered by name then labels, samples in time order.
#[derive(Default)]
pub(crate) struct SeriesIndex {
    series: Vec<Series>,
    samples: usize,
}

impl SeriesIndex {
    /// Indexes series as [`SeriesBuilder::finish`] leaves them.
    pub(crate) fn new(series: Vec<Series>) -> Self {
        let samples = series.iter().map(|s| s.samples.len()).sum();
        Self { series, samples }
    }

    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// Number of samples over all series.
    pub(crate) fn samples(&self) -> usize {
        self.samples
    }

    /// Selected series with their samples inside the window; series with none there are left out.
    pub(crate) fn select(&self, selector: &SeriesSelector) -> Vec<Series> {
        let candidates = match selector.metric.as_deref() {
            Some(metric) => {
                let start = self.series.partition_point(|s| s.metric.as_str() < metric);
                let end = self.series.partition_point(|s| s.metric.as_str() <= metric);
                &self.series[start..end]
            }
            None => &self.series[..],
        };
        let (from, to) = (
            selector.window.start.timestamp_millis(),
            selector.window.end.timestamp_millis(),
        );
        candidates
            .iter()
            .filter(|s| selector.matches(&s.metric, &s.labels))
            .filter_map(|s| {
                let start = s.samples.partition_point(|p| p.ts_ms < from);
                let end = s.samples.partition_point(|p| p.ts_ms <= to);
                (start < end).then(|| Series {
                    metric: s.metric.clone(),
                    labels: s.labels.clone(),
                    samples: s.samples[start..end].to_vec(),
                })
            })
            .collect()
    }
}

/// A record that happened at a time, maybe in a service.
pub(crate) trait Timed {
    /// When it happened.
    fn ts(&self) -> DateTime<Utc>;
    /// The service it belongs to, if it names one.
    fn service(&self) -> Option<&str>;
}

impl Timed for LogRecord {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

impl Timed for Span {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

impl Timed for Change {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn service(&self) -> Option<&str> {
        Some(&self.service)
    }
}

impl Timed for InfraEvent {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }
}

/// Records in time order (ties keep file order), with per-service position lists.
pub(crate) struct Timeline<T> {
    items: Vec<T>,
    by_service: HashMap<String, Vec<usize>>,
}

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            by_service: HashMap::new(),
        }
    }
}

impl<T: Timed> Timeline<T> {
    /// Sorts the records by time and indexes them by service.
    pub(crate) fn new(mut items: Vec<T>) -> Self {
        items.sort_by_key(Timed::ts);
        let by_service = positions_by(&items, |item| item.service());
        Self { items, by_service }
    }

    /// All records, in time order.
    pub(crate) fn items(&self) -> &[T] {
        &self.items
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Records inside `window`, of `service` when given, in time order.
    pub(crate) fn select<'a>(
        &'a self,
        window: &TimeWindow,
        service: Option<&str>,
    ) -> Selection<'a, T> {
        match service {
            None => Selection::All(self.items[self.window_range(window)].iter()),
            Some(service) => self.select_positions(
                self.by_service.get(service).map_or(&[][..], Vec::as_slice),
                window,
            ),
        }
    }

    /// Records at `positions` (ascending, so in time order) that fall inside `window`.
    fn select_positions<'a>(
        &'a self,
        positions: &'a [usize],
        window: &TimeWindow,
    ) -> Selection<'a, T> {
        let ts = |p: &usize| self.items.get(*p).map(Timed::ts);
        let start = positions.partition_point(|p| ts(p).is_some_and(|t| t < window.start));
        let end = positions.partition_point(|p| ts(p).is_some_and(|t| t <= window.end));
        let positions = positions.get(start..end).unwrap_or(&[]);
        Selection::Positions {
            items: &self.items,
            positions: positions.iter(),
        }
    }

    fn window_range(&self, window: &TimeWindow) -> Range<usize> {
        let start = self.items.partition_point(|i| i.ts() < window.start);
        let end = self.items.partition_point(|i| i.ts() <= window.end);
        start..end.max(start)
    }
}

/// Spans in time order, findable by service and by trace.
#[derive(Default)]
pub(crate) struct SpanIndex {
    timeline: Timeline<Span>,
    by_trace: HashMap<String, Vec<usize>>,
}

impl SpanIndex {
    /// Sorts the spans by time and indexes them by service and trace.
    pub(crate) fn new(spans: Vec<Span>) -> Self {
        let timeline = Timeline::new(spans);
        let by_trace = positions_by(timeline.items(), |s| Some(&s.trace_id));
        Self { timeline, by_trace }
    }

    /// Number of spans.
    pub(crate) fn len(&self) -> usize {
        self.timeline.len()
    }

    /// Spans inside `window`, narrowed to a service and a trace when given, in time order.
    pub(crate) fn select<'a>(
        &'a self,
        window: &TimeWindow,
        service: Option<&'a str>,
        trace: Option<&str>,
    ) -> impl Iterator<Item = &'a Span> + 'a {
        let selection = match trace {
            Some(trace) => {
                let positions = self.by_trace.get(trace).map_or(&[][..], Vec::as_slice);
                self.timeline.select_positions(positions, window)
            }
            None => self.timeline.select(window, service),
        };
        selection.filter(move |s| service.is_none_or(|want| s.service == want))
    }
}

/// Positions of `items` grouped by a key, each list ascending.
fn positions_by<T>(items: &[T], key: impl Fn(&T) -> Option<&str>) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (at, item) in items.iter().enumerate() {
        if let Some(key) = key(item) {
            match map.get_mut(key) {
                Some(list) => list.push(at),
                None => {
                    map.insert(key.to_owned(), vec![at]);
                }
            }
        }
    }
    map
}

/// A lazily walked query answer: a window slice, or a window of a position list.
pub(crate) enum Selection<'a, T> {
    All(std::slice::Iter<'a, T>),
    Positions {
        items: &'a [T],
        positions: std::slice::Iter<'a, usize>,
    },
}

impl<'a, T> Iterator for Selection<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        match self {
            Self::All(items) => items.next(),
            Self::Positions { items, positions } => positions.next().and_then(|&p| items.get(p)),
        }
    }
}
