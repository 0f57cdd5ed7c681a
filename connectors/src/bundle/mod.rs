//! The telemetry-bundle source: a directory in bundle format v1 (`shared/spec/bundle.md`),
//! streamed once at open into an in-memory index and served through [`DataSource`]; and
//! [`capture`], which writes what any source answers for a window as such a bundle.

mod capture;
mod files;
mod index;
mod openmetrics;
mod records;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;

use async_trait::async_trait;
use serde::Deserialize;

use crate::model::{
    Alert, Change, EventQuery, InfraEvent, LogQuery, LogRecord, Series, SeriesSelector, Span,
    SpanQuery, TimeWindow, Topology,
};
use crate::source::{DataSource, SourceError};
use files::{FileLines, KnownFile, Origin};
use index::{SeriesIndex, SpanIndex, Timed, Timeline};

pub use capture::capture;

/// Why a bundle could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A known file is malformed; `file` is its name on disk, `line` counts from 1.
    #[error("{file}:{line}: {message}")]
    Malformed {
        file: String,
        line: u64,
        message: String,
    },
    /// A known file cannot be opened, or the required `bundle.yaml` is missing.
    #[error("{file}: {message}")]
    Unreadable { file: String, message: String },
    /// Both `FILE` and `FILE.gz` exist, so which one holds the data is unclear.
    #[error("{file}: both {file} and {file}.gz exist; keep one")]
    Ambiguous { file: String },
}

/// What `bundle.yaml` says about a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleMeta {
    /// The bundle's name (usually its case id).
    pub name: String,
    /// Where it came from: simulator, nezha, petshop, capture…
    pub source: String,
    /// The span of time the bundle covers.
    pub window: TimeWindow,
    /// Free text about the bundle, if given.
    pub description: Option<String>,
}

/// How much a bundle holds, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleCounts {
    /// Metric series.
    pub series: usize,
    /// Metric samples over all series.
    pub samples: usize,
    /// Log records.
    pub logs: usize,
    /// Trace spans.
    pub spans: usize,
    /// Deploys and other changes.
    pub changes: usize,
    /// Infrastructure events.
    pub events: usize,
}

/// A bundle's files held in memory, by their name in a bundle directory (`metrics.om`,
/// `logs.jsonl.gz`…): what the simulator produces, written out or read back as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl BundleFiles {
    /// An empty set of files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file `name`.
    pub fn insert(&mut self, name: impl Into<String>, content: Vec<u8>) {
        self.files.insert(name.into(), content);
    }

    /// The content of file `name`, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// Every file, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(n, c)| (n.as_str(), c.as_slice()))
    }

    /// Writes every file into `dir`, creating it if needed.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, content) in &self.files {
            std::fs::write(dir.join(name), content)?;
        }
        Ok(())
    }
}

/// A telemetry bundle, read and indexed once, answering queries as a live source would.
pub struct Bundle {
    name: String,
    path: PathBuf,
    meta: BundleMeta,
    topology: Option<Topology>,
    alert: Option<Alert>,
    metrics: SeriesIndex,
    logs: Timeline<LogRecord>,
    spans: SpanIndex,
    changes: Timeline<Change>,
    events: Timeline<InfraEvent>,
}

impl Bundle {
    /// Reads and indexes the bundle in `dir`. Blocking file I/O: call it off the async runtime.
    ///
    /// Unknown files and fields are ignored; a malformed known file is an error naming the
    /// file and line; `expect.yaml` is never opened.
    pub fn open(dir: &Path) -> Result<Self, BundleError> {
        let mut bundle = Self::read(Origin::Dir(dir))?;
        bundle.path = dir.to_owned();
        Ok(bundle)
    }

    /// Reads and indexes a bundle held in memory, exactly as [`Bundle::open`] reads a
    /// directory holding the same files. Its [`Bundle::path`] is empty.
    pub fn from_files(files: &BundleFiles) -> Result<Self, BundleError> {
        Self::read(Origin::Memory(files))
    }

    fn read(dir: Origin<'_>) -> Result<Self, BundleError> {
        let meta = load(dir, KnownFile::Manifest, read_manifest)?.ok_or_else(|| {
            BundleError::Unreadable {
                file: KnownFile::Manifest.name().to_owned(),
                message: "not found; a bundle is a directory with a bundle.yaml".to_owned(),
            }
        })?;
        // The files are independent and the big ones cost CPU (inflating, JSON, sorting), so
        // they are read and indexed side by side; the scope joins every thread before `open`
        // returns.
        let (topology, alert, metrics, logs, spans, changes, events) = thread::scope(|s| {
            let topology = s.spawn(|| load(dir, KnownFile::Topology, records::read_yaml));
            let alert = s.spawn(|| load(dir, KnownFile::Alert, records::read_json));
            let metrics = s.spawn(|| {
                load(dir, KnownFile::Metrics, openmetrics::read)
                    .map(|series| SeriesIndex::new(series.unwrap_or_default()))
            });
            let logs = s.spawn(|| timeline(load(dir, KnownFile::Logs, records::read_jsonl)));
            let spans = s.spawn(|| {
                load(dir, KnownFile::Traces, records::read_jsonl)
                    .map(|spans| SpanIndex::new(spans.unwrap_or_default()))
            });
            let changes = s.spawn(|| timeline(load(dir, KnownFile::Changes, records::read_jsonl)));
            let events = s.spawn(|| timeline(load(dir, KnownFile::Events, records::read_jsonl)));
            (
                join(topology),
                join(alert),
                join(metrics),
                join(logs),
                join(spans),
                join(changes),
                join(events),
            )
        });
        Ok(Self {
            name: "bundle".to_owned(),
            path: PathBuf::new(),
            meta,
            topology: topology?,
            alert: alert?,
            metrics: metrics?,
            logs: logs?,
            spans: spans?,
            changes: changes?,
            events: events?,
        })
    }

    /// The same bundle answering under `name` (for evidence and errors) instead of `bundle`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// What `bundle.yaml` says: name, source, window, description.
    pub fn meta(&self) -> &BundleMeta {
        &self.meta
    }

    /// The page that opened the incident, when the bundle has `alert.json`.
    pub fn alert(&self) -> Option<&Alert> {
        self.alert.as_ref()
    }

    /// The names of the files a bundle reader knows (plain; each may also be `.gz`).
    /// `expect.yaml` is not among them: no reader opens it.
    pub fn file_names() -> impl Iterator<Item = &'static str> {
        KnownFile::ALL.into_iter().map(KnownFile::name)
    }

    /// The directory the bundle was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many series, samples, logs, spans, changes and events the bundle holds.
    pub fn counts(&self) -> BundleCounts {
        BundleCounts {
            series: self.metrics.len(),
            samples: self.metrics.samples(),
            logs: self.logs.len(),
            spans: self.spans.len(),
            changes: self.changes.len(),
            events: self.events.len(),
        }
    }
}

/// Shows what the bundle is, not the millions of records it may hold.
impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl DataSource for Bundle {
    fn name(&self) -> &str {
        &self.name
    }

    async fn topology(&self) -> Result<Option<Topology>, SourceError> {
        Ok(self.topology.clone())
    }

    async fn series(&self, query: &SeriesSelector) -> Result<Vec<Series>, SourceError> {
        Ok(self.metrics.select(query))
    }

    async fn logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, SourceError> {
        let contains = query.contains.as_deref();
        Ok(self
            .logs
            .select(&query.window, query.service.as_deref())
            .filter(|r| contains.is_none_or(|text| r.message.contains(text)))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn spans(&self, query: &SpanQuery) -> Result<Vec<Span>, SourceError> {
        let service = query.service.as_deref();
        Ok(self
            .spans
            .select(&query.window, service, query.trace_id.as_deref())
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn changes(&self, query: &EventQuery) -> Result<Vec<Change>, SourceError> {
        Ok(self
            .changes
            .select(&query.window, query.service.as_deref())
            .cloned()
            .collect())
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<InfraEvent>, SourceError> {
        Ok(self
            .events
            .select(&query.window, query.service.as_deref())
            .cloned()
            .collect())
    }
}

/// Reads `file` with `read` when the bundle has it.
fn load<'a, T>(
    dir: Origin<'a>,
    file: KnownFile,
    read: impl FnOnce(&mut FileLines<'a>) -> Result<T, BundleError>,
) -> Result<Option<T>, BundleError> {
    match files::locate(dir, file)? {
        Some(found) => read(&mut found.open()?).map(Some),
        None => Ok(None),
    }
}

/// Indexes the records of a file the bundle may not have.
fn timeline<T: Timed>(
    records: Result<Option<Vec<T>>, BundleError>,
) -> Result<Timeline<T>, BundleError> {
    records.map(|records| Timeline::new(records.unwrap_or_default()))
}

/// Joins a reader thread; a panic there (a bug, never input) carries on in the caller.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `bundle.yaml` as written.
#[derive(Deserialize)]
struct Manifest {
    version: u64,
    name: String,
    source: String,
    window: TimeWindow,
    #[serde(default)]
    description: Option<String>,
}

/// Reads `bundle.yaml`: format version 1 and a window that does not end before it starts.
fn read_manifest(lines: &mut FileLines<'_>) -> Result<BundleMeta, BundleError> {
    let text = lines.read_to_string()?;
    let manifest: Manifest = records::parse_yaml(&text, lines)?;
    if manifest.version != 1 {
        return Err(lines.malformed(
            top_level_line(&text, "version"),
            format!(
                "bundle format version {} is not supported; this reader knows version 1",
                manifest.version
            ),
        ));
    }
    let window = TimeWindow::new(manifest.window.start, manifest.window.end).ok_or_else(|| {
        lines.malformed(
            top_level_line(&text, "window"),
            "the window ends before it starts",
        )
    })?;
    Ok(BundleMeta {
        name: manifest.name,
        source: manifest.source,
        window,
        description: manifest.description,
    })
}

/// The line of a top-level `key:` in a YAML document, to place errors found after parsing
/// (serde_yaml_ng places them at the start of the enclosing mapping); 1 for flow style.
fn top_level_line(text: &str, key: &str) -> u64 {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(1, |i| i as u64 + 1)
}
