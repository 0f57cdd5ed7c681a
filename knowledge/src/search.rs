//! Full-text search over knowledge records, incidents and runbooks: a tantivy index (BM25)
//! in its own directory, derived from the database and never the source of truth.
//!
//! Invariants:
//! - The index holds the latest version of every knowledge record that is neither retracted
//!   nor expired, every incident (title and the suspects of its latest investigation) and
//!   every runbook, each exactly once under a unique key (`record:7`, `incident:3`,
//!   `runbook:12`): re-indexing deletes the key, then adds.
//! - How far it has read the database is kept in a meta file next to it (high-water marks
//!   and a schema version); `refresh` reads only rows past the marks. An index that is
//!   missing, of another schema version, or out of step with the database is rebuilt.
//! - One process writes (it holds tantivy's writer lock; `serve`). Any other process that
//!   opens the same directory meanwhile (`cairn knowledge search` from a terminal) reads
//!   what the writer last committed and never writes.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer,
};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError,
    Term,
};

use crate::store::{Store, StoreError};

/// Bump whenever what is indexed, or how, changes: the index then lives in a new
/// subdirectory (`v2`, …) and is rebuilt from the database; older ones are removed.
const SCHEMA_VERSION: u32 = 1;
/// The meta file, in the directory given to [`SearchIndex::open`], next to `v1/`.
const META_FILE: &str = "cairn-index.json";
/// The writer's indexing memory, split between its threads (tantivy wants ≥ 15 MB each).
const WRITER_MEMORY: usize = 32 * 1024 * 1024;
const TOKENIZER: &str = "cairn";
const TITLE_BOOST: f32 = 2.0;
const NAMES_BOOST: f32 = 1.5;
/// Words of a query that count: a person types a few; a pasted log line should not turn
/// into a thousand-clause query.
const MAX_QUERY_TERMS: usize = 32;
/// Most hits one search returns, whatever `limit` says.
const MAX_LIMIT: usize = 1000;
const TITLE_CHARS: usize = 80;
const EXCERPT_CHARS: usize = 200;

/// What a search hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocType {
    /// A knowledge record (its latest version); the hit's id is the record id.
    Record,
    /// An incident; the hit's id is the incident id.
    Incident,
    /// An imported runbook; the hit's id is the runbook id.
    Runbook,
}

impl DocType {
    const ALL: [DocType; 3] = [DocType::Record, DocType::Incident, DocType::Runbook];

    /// `record`, `incident` or `runbook`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Record => "record",
            DocType::Incident => "incident",
            DocType::Runbook => "runbook",
        }
    }

    fn from_str(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The unique key of the document for `id`, e.g. `runbook:12`.
    fn key(self, id: i64) -> String {
        format!("{}:{id}", self.as_str())
    }
}

impl fmt::Display for DocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub doc_type: DocType,
    /// Record id, incident id or runbook id, after `doc_type`.
    pub id: i64,
    pub title: String,
    /// Plain text from the body around the match, at most 200 characters.
    pub excerpt: String,
    /// BM25 relevance; only comparable within one search.
    pub score: f32,
}

/// Why the search index could not be opened, refreshed or searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index directory could not be created, read or written.
    #[error("search index directory {dir}: {source} (check it exists and is writable)")]
    Directory { dir: String, source: std::io::Error },
    /// tantivy failed on the index's files.
    #[error("search index in {dir}: {source} (deleting that directory makes Cairn rebuild it from the database)")]
    Index { dir: String, source: TantivyError },
    /// The index does not exist yet and another process holds its writer lock.
    #[error("search index in {dir} is not built yet and another process (cairn serve?) holds its writer lock; wait until it has built it, or stop it")]
    Locked { dir: String },
    /// Reading the database failed.
    #[error("reading the database for the search index: {0}")]
    Store(#[from] StoreError),
}

/// How far the index has read the database: the meta file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    schema: u32,
    /// The highest `knowledge_records.id` (a version row) indexed.
    records: Mark,
    /// The highest `incidents.id` indexed.
    incidents: Mark,
    /// The highest `investigations.id` whose incident was re-indexed. Incidents are marked
    /// by their investigations, not `incidents.updated_at`: nothing indexed about an
    /// incident changes with its status, and a new investigation does not touch it.
    investigations: Mark,
    runbooks: RunbookMark,
}

/// A row id with the timestamp that row had, so a database that was replaced (the row is
/// gone, or is another row) is told from one that grew.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Mark {
    id: i64,
    at: Option<DateTime<Utc>>,
}

/// Runbooks change in place: the latest `updated_at` indexed, and which runbooks had
/// exactly that time (one import writes many with the same time, and a refresh may run
/// between two of them; `>` alone would miss the second, `>=` re-index the first forever).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RunbookMark {
    updated_at: Option<DateTime<Utc>>,
    ids: Vec<i64>,
}

#[derive(Clone, Copy)]
struct Fields {
    /// `record:7`: what a re-index deletes.
    key: Field,
    doc_type: Field,
    id: Field,
    title: Field,
    /// The text excerpts come from.
    body: Field,
    /// Services, alerts, tags and fault kinds.
    names: Field,
}

fn schema() -> (Schema, Fields) {
    let text = |stored: bool| {
        let options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let mut b = Schema::builder();
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        doc_type: b.add_text_field("doc_type", STRING | STORED),
        id: b.add_i64_field("id", STORED),
        title: b.add_text_field("title", text(true)),
        body: b.add_text_field("body", text(true)),
        names: b.add_text_field("names", text(false)),
    };
    (b.build(), fields)
}

/// Words split at anything but letters and digits (so `cart-cache` is `cart` and `cache`),
/// lower-cased, accents folded, English stems (`timeouts` finds `timeout`).
fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// One document to (re)index, or to remove when `doc` is `None`.
struct Change {
    key: String,
    doc: Option<TantivyDocument>,
}

struct Inner {
    /// The directory given to `open`, for messages.
    dir: PathBuf,
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// `None` when another process holds the writer lock: this one only reads.
    writer: Option<Writer>,
}

struct Writer {
    /// Serialises refreshes, and holds how far the index has read the database.
    progress: tokio::sync::Mutex<Progress>,
    index_writer: Mutex<IndexWriter>,
}

struct Progress {
    meta: Meta,
    /// Every document was deleted (uncommitted) for a rebuild: the next refresh commits
    /// even when the database is empty.
    rebuilding: bool,
}

/// The full-text index over knowledge records, incidents and runbooks. Cheap to clone;
/// clones share one index.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

impl fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.inner.dir)
            .field("read_only", &self.is_read_only())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir` (created if missing). Rebuilds it from the database when the
    /// directory holds no index, an index of another schema version, or one out of step
    /// with the database (it knows rows the database does not have: the database was
    /// replaced); then catches up with [`refresh`](Self::refresh).
    ///
    /// Only one process can write the index. When another process holds it (`serve` runs
    /// with the same data directory), this opens it read-only: searches see what that
    /// process last committed, and `refresh` does nothing and returns 0. If the index does
    /// not exist yet and is locked, this fails with [`SearchError::Locked`].
    ///
    /// `dir` belongs to the index: Cairn keeps the index in a subdirectory per schema
    /// version there and removes the subdirectories of other versions.
    pub async fn open(dir: &Path, store: &Store) -> Result<Self, SearchError> {
        let shown = dir.display().to_string();
        let io = |source| SearchError::Directory {
            dir: shown.clone(),
            source,
        };
        let tantivy = |source| SearchError::Index {
            dir: shown.clone(),
            source,
        };
        let index_dir = dir.join(format!("v{SCHEMA_VERSION}"));
        std::fs::create_dir_all(&index_dir).map_err(io)?;
        let directory = MmapDirectory::open(&index_dir).map_err(|e| tantivy(e.into()))?;
        let existed = Index::exists(&directory).map_err(|e| tantivy(e.into()))?;
        let (schema, fields) = schema();
        let index = if existed {
            Index::open(directory).map_err(tantivy)?
        } else {
            Index::create(directory, schema.clone(), IndexSettings::default()).map_err(tantivy)?
        };
        if index.schema() != schema {
            // Only a build that changed the schema without bumping SCHEMA_VERSION gets here.
            return Err(tantivy(TantivyError::SchemaError(format!(
                "the index in {} has another schema than this build of Cairn",
                index_dir.display()
            ))));
        }
        index.tokenizers().register(TOKENIZER, analyzer());
        let writer = match index.writer::<TantivyDocument>(WRITER_MEMORY) {
            Ok(w) => Some(w),
            Err(TantivyError::LockFailure(..)) if existed => None,
            Err(TantivyError::LockFailure(..)) => return Err(SearchError::Locked { dir: shown }),
            Err(e) => return Err(tantivy(e)),
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy)?;

        let Some(index_writer) = writer else {
            tracing::info!(dir = %shown, "search index is written by another process; opened read-only");
            return Ok(Self {
                inner: Arc::new(Inner {
                    dir: dir.to_owned(),
                    reader,
                    fields,
                    analyzer: analyzer(),
                    writer: None,
                }),
            });
        };
        remove_other_versions(dir);
        let saved = read_meta(dir);
        let stale = match &saved {
            None => Some("no meta file"),
            Some(m) if m.schema != SCHEMA_VERSION => Some("meta file of another schema version"),
            Some(m) => out_of_step(store, m, &reader, fields).await?,
        };
        let (meta, rebuilding) = match (stale, saved) {
            (None, Some(meta)) => (meta, false),
            (reason, _) => {
                tracing::info!(dir = %shown, reason, "rebuilding search index from the database");
                index_writer.delete_all_documents().map_err(tantivy)?;
                let meta = Meta {
                    schema: SCHEMA_VERSION,
                    ..Meta::default()
                };
                (meta, true)
            }
        };
        let this = Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                reader,
                fields,
                analyzer: analyzer(),
                writer: Some(Writer {
                    progress: tokio::sync::Mutex::new(Progress { meta, rebuilding }),
                    index_writer: Mutex::new(index_writer),
                }),
            }),
        };
        this.refresh(store).await?;
        Ok(this)
    }

    /// Brings the index up to date with the database: reads only rows past the marks of the
    /// last refresh (a few small queries when nothing changed), commits, and makes the next
    /// [`search`](Self::search) see the changes. Returns how many documents were added,
    /// replaced or removed. Read-only (another process writes): picks up that process's
    /// latest commit and returns 0.
    ///
    /// Rows a PostgreSQL transaction commits after a later-numbered row was already indexed
    /// can be missed until the next rebuild; Cairn's writes are short, so this is rare.
    pub async fn refresh(&self, store: &Store) -> Result<usize, SearchError> {
        let Some(writer) = &self.inner.writer else {
            self.inner
                .reader
                .reload()
                .map_err(|e| self.inner.error(e))?;
            return Ok(0);
        };
        let mut progress = writer.progress.lock().await;
        let (changes, meta) = changes(store, &progress.meta, self.inner.fields).await?;
        if changes.is_empty() && meta == progress.meta && !progress.rebuilding {
            return Ok(0);
        }
        let n = changes.len();
        let inner = Arc::clone(&self.inner);
        let saved = meta.clone();
        // Indexing and committing (fsync) block: off the async workers.
        tokio::task::spawn_blocking(move || inner.apply(changes, &saved))
            .await
            .map_err(|e| self.inner.error(TantivyError::SystemError(e.to_string())))??;
        progress.meta = meta;
        progress.rebuilding = false;
        tracing::debug!(documents = n, "search index refreshed");
        Ok(n)
    }

    /// Best matches for free text typed by a person, best first; `filter` keeps one type.
    ///
    /// Any input gives results or an empty list, never an error for its content: there is
    /// no query syntax (quotes, colons, `AND`, parentheses are just text). Words are matched
    /// with BM25 over the title (boosted), the body and the names (services, alerts, tags,
    /// fault kinds); a name joined by punctuation (`cart-cache`, `payments_db`) matches its
    /// parts, and more when they stand together. At most 1000 hits.
    pub fn search(
        &self,
        query: &str,
        filter: Option<DocType>,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let limit = limit.min(MAX_LIMIT);
        let Some(text_query) = self.text_query(query) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let f = self.inner.fields;
        let query: Box<dyn Query> = match filter {
            None => text_query,
            Some(t) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, text_query),
                (
                    Occur::Must,
                    Box::new(ConstScoreQuery::new(
                        Box::new(TermQuery::new(
                            Term::from_field_text(f.doc_type, t.as_str()),
                            IndexRecordOption::Basic,
                        )),
                        0.0,
                    )),
                ),
            ])),
        };
        let searcher = self.inner.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit))
            .map_err(|e| self.inner.error(e))?;
        let mut snippets = SnippetGenerator::create(&searcher, &*query, f.body)
            .map_err(|e| self.inner.error(e))?;
        snippets.set_max_num_chars(EXCERPT_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| self.inner.error(e))?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
            };
            let Some(doc_type) = DocType::from_str(text(f.doc_type)) else {
                continue;
            };
            let fragment = snippets.snippet_from_doc(&doc);
            let excerpt = if fragment.fragment().trim().is_empty() {
                // The match was in the title or the names: the body's start says most.
                clip(&plain(text(f.body)), EXCERPT_CHARS)
            } else {
                clip(&plain(fragment.fragment()), EXCERPT_CHARS)
            };
            hits.push(Hit {
                doc_type,
                id: doc
                    .get_first(f.id)
                    .and_then(|v| v.as_i64())
                    .unwrap_or_default(),
                title: text(f.title).to_owned(),
                excerpt,
                score,
            });
        }
        Ok(hits)
    }

    /// How many documents the index holds (as of the last refresh).
    pub fn len(&self) -> u64 {
        self.inner.reader.searcher().num_docs()
    }

    /// True when the index holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when another process writes the index and this one only searches it.
    pub fn is_read_only(&self) -> bool {
        self.inner.writer.is_none()
    }

    /// The query for what a person typed: each distinct word on every field, plus each
    /// joined name as a phrase. `None` when the text holds no word.
    fn text_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let f = self.inner.fields;
        let mut analyzer = self.inner.analyzer.clone();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut phrases = 0;
        for chunk in text.split_whitespace() {
            let mut words = Vec::new();
            analyzer
                .token_stream(chunk)
                .process(&mut |t| words.push(t.text.clone()));
            for word in &words {
                if seen.len() < MAX_QUERY_TERMS && seen.insert(word.clone()) {
                    for (field, boost) in [
                        (f.title, TITLE_BOOST),
                        (f.body, 1.0),
                        (f.names, NAMES_BOOST),
                    ] {
                        let term = TermQuery::new(
                            Term::from_field_text(field, word),
                            IndexRecordOption::WithFreqs,
                        );
                        clauses.push((Occur::Should, boosted(Box::new(term), boost)));
                    }
                }
            }
            if (2..=8).contains(&words.len()) && phrases < MAX_QUERY_TERMS {
                phrases += 1;
                for (field, boost) in [
                    (f.title, TITLE_BOOST),
                    (f.body, 1.0),
                    (f.names, NAMES_BOOST),
                ] {
                    let terms = words
                        .iter()
                        .map(|w| Term::from_field_text(field, w))
                        .collect();
                    clauses.push((
                        Occur::Should,
                        boosted(Box::new(PhraseQuery::new(terms)), boost),
                    ));
                }
            }
        }
        if clauses.is_empty() {
            return None;
        }
        Some(Box::new(BooleanQuery::new(clauses)))
    }
}

fn boosted(query: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    if boost == 1.0 {
        query
    } else {
        Box::new(BoostQuery::new(query, boost))
    }
}

impl Inner {
    fn error(&self, source: TantivyError) -> SearchError {
        SearchError::Index {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    /// Applies `changes`, commits, records `meta` and makes searches see it all. Blocking.
    fn apply(&self, changes: Vec<Change>, meta: &Meta) -> Result<(), SearchError> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let mut index_writer = writer
            .index_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            index_writer.delete_term(Term::from_field_text(self.fields.key, &change.key));
            if let Some(doc) = change.doc {
                index_writer.add_document(doc).map_err(|e| self.error(e))?;
            }
        }
        index_writer.commit().map_err(|e| self.error(e))?;
        // After the commit: a crash in between leaves an older meta, and the next refresh
        // re-indexes a few documents (delete, then add: harmless).
        write_meta(&self.dir, meta)?;
        self.reader.reload().map_err(|e| self.error(e))
    }
}

/// The meta file, or `None` when missing or unreadable (the index is then rebuilt).
fn read_meta(dir: &Path) -> Option<Meta> {
    let bytes = std::fs::read(dir.join(META_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the meta file whole (a new file renamed over the old one).
fn write_meta(dir: &Path, meta: &Meta) -> Result<(), SearchError> {
    let io = |source| SearchError::Directory {
        dir: dir.display().to_string(),
        source,
    };
    let json = serde_json::to_vec_pretty(meta).map_err(|e| io(e.into()))?;
    let part = dir.join(format!("{META_FILE}.part"));
    std::fs::write(&part, json).map_err(io)?;
    std::fs::rename(&part, dir.join(META_FILE)).map_err(io)
}

/// Removes the index subdirectories of other schema versions (`v0`, `v2`…), best effort.
fn remove_other_versions(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = format!("v{SCHEMA_VERSION}");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let versioned = name
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if versioned && name != ours && entry.path().is_dir() {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an old search index");
            }
        }
    }
}

/// Why the index no longer describes this database, if it does not: a row at one of its
/// marks is gone or is another row, or the database has fewer runbooks than the index.
async fn out_of_step(
    store: &Store,
    meta: &Meta,
    reader: &IndexReader,
    f: Fields,
) -> Result<Option<&'static str>, SearchError> {
    let checks = [
        (
            &meta.records,
            "SELECT created_at AS at FROM knowledge_records WHERE id = ?",
            "knowledge records",
        ),
        (
            &meta.incidents,
            "SELECT created_at AS at FROM incidents WHERE id = ?",
            "incidents",
        ),
        (
            &meta.investigations,
            "SELECT started_at AS at FROM investigations WHERE id = ?",
            "investigations",
        ),
    ];
    for (mark, sql, what) in checks {
        if mark.id == 0 {
            continue;
        }
        let row = store
            .db()
            .query_one(store.stmt(sql, vec![mark.id.into()]))
            .await
            .map_err(StoreError::from)?;
        let at: Option<DateTime<Utc>> = row
            .map(|r| r.try_get("", "at"))
            .transpose()
            .map_err(StoreError::from)?;
        if at.is_none() || at != mark.at {
            tracing::debug!(
                table = what,
                id = mark.id,
                "search index mark not in the database"
            );
            return Ok(Some("the index knows rows the database does not have"));
        }
    }
    let row = store
        .db()
        .query_one(store.stmt(
            "SELECT COUNT(*) AS n, MAX(updated_at) AS latest FROM runbooks",
            vec![],
        ))
        .await
        .map_err(StoreError::from)?;
    let (count, latest): (i64, Option<DateTime<Utc>>) = match row {
        Some(r) => (
            r.try_get("", "n").map_err(StoreError::from)?,
            r.try_get("", "latest").map_err(StoreError::from)?,
        ),
        None => (0, None),
    };
    let indexed = reader
        .searcher()
        .search(
            &TermQuery::new(
                Term::from_field_text(f.doc_type, DocType::Runbook.as_str()),
                IndexRecordOption::Basic,
            ),
            &Count,
        )
        .unwrap_or(0);
    if indexed as i64 > count || latest < meta.runbooks.updated_at {
        return Ok(Some("the index knows runbooks the database does not have"));
    }
    Ok(None)
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, StoreError> {
    Ok(row.try_get("", column)?)
}

/// What changed in the database since `since`, as index changes, and the marks after them.
async fn changes(
    store: &Store,
    since: &Meta,
    f: Fields,
) -> Result<(Vec<Change>, Meta), SearchError> {
    let mut out = Vec::new();
    let mut meta = since.clone();

    // Knowledge: rows are versions; a record with any new row has its latest row among the
    // new ones (a new version gets a higher id).
    let rows = store
        .db()
        .query_all(store.stmt(
            "SELECT k.id, k.record_id, k.kind, k.statement, k.fields, k.status, k.created_at FROM knowledge_records k WHERE k.id > ? AND k.version = (SELECT MAX(v.version) FROM knowledge_records v WHERE v.record_id = k.record_id) ORDER BY k.id",
            vec![since.records.id.into()],
        ))
        .await
        .map_err(StoreError::from)?;
    for r in &rows {
        let record_id: i64 = get(r, "record_id")?;
        let status: String = get(r, "status")?;
        let doc = if matches!(status.as_str(), "retracted" | "expired") {
            None
        } else {
            let statement: String = get(r, "statement")?;
            let kind: String = get(r, "kind")?;
            let fields: serde_json::Value = get(r, "fields")?;
            let mut names = vec![kind];
            string_leaves(&fields, &mut names);
            Some(document(
                f,
                DocType::Record,
                record_id,
                &clip(&plain(&statement), TITLE_CHARS),
                &statement,
                &names.join(" "),
            ))
        };
        out.push(Change {
            key: DocType::Record.key(record_id),
            doc,
        });
        meta.records = Mark {
            id: get(r, "id")?,
            at: Some(get(r, "created_at")?),
        };
    }

    // Incidents: new ones, and those with a new investigation (new suspects). The
    // investigation mark is read first and bounds the query, so an investigation saved
    // meanwhile is left for the next refresh rather than skipped.
    let latest = store
        .db()
        .query_one(store.stmt(
            "SELECT id, started_at FROM investigations ORDER BY id DESC LIMIT 1",
            vec![],
        ))
        .await
        .map_err(StoreError::from)?;
    if let Some(r) = latest {
        let id: i64 = get(&r, "id")?;
        if id > since.investigations.id {
            meta.investigations = Mark {
                id,
                at: Some(get(&r, "started_at")?),
            };
        }
    }
    const CHANGED: &str = "i.id > ? OR EXISTS (SELECT 1 FROM investigations v WHERE v.incident_id = i.id AND v.id > ? AND v.id <= ?)";
    let bounds = || {
        vec![
            since.incidents.id.into(),
            since.investigations.id.into(),
            meta.investigations.id.into(),
        ]
    };
    let incidents = store
        .db()
        .query_all(store.stmt(
            &format!(
                "SELECT i.id, i.title, i.created_at FROM incidents i WHERE {CHANGED} ORDER BY i.id"
            ),
            bounds(),
        ))
        .await
        .map_err(StoreError::from)?;
    if !incidents.is_empty() {
        let rows = store
            .db()
            .query_all(store.stmt(
                &format!("SELECT h.incident_id, h.service, h.kind FROM hypotheses h WHERE h.investigation_id = (SELECT MAX(l.id) FROM investigations l WHERE l.incident_id = h.incident_id) AND h.incident_id IN (SELECT i.id FROM incidents i WHERE {CHANGED}) ORDER BY h.incident_id, h.rank"),
                bounds(),
            ))
            .await
            .map_err(StoreError::from)?;
        let mut suspects: BTreeMap<i64, Vec<(String, Option<String>)>> = BTreeMap::new();
        for r in &rows {
            suspects
                .entry(get(r, "incident_id")?)
                .or_default()
                .push((get(r, "service")?, get(r, "kind")?));
        }
        for r in &incidents {
            let id: i64 = get(r, "id")?;
            let title: String = get(r, "title")?;
            let suspects = suspects.remove(&id).unwrap_or_default();
            let mut body = title.clone();
            let mut names = Vec::new();
            if !suspects.is_empty() {
                let listed: Vec<String> = suspects
                    .iter()
                    .map(|(service, kind)| match kind {
                        Some(kind) => format!("{service} ({kind})"),
                        None => service.clone(),
                    })
                    .collect();
                body.push_str(" — suspects: ");
                body.push_str(&listed.join(", "));
                for (service, kind) in suspects {
                    names.push(service);
                    names.extend(kind);
                }
            }
            out.push(Change {
                key: DocType::Incident.key(id),
                doc: Some(document(
                    f,
                    DocType::Incident,
                    id,
                    &title,
                    &body,
                    &names.join(" "),
                )),
            });
            if id > meta.incidents.id {
                meta.incidents = Mark {
                    id,
                    at: Some(get(r, "created_at")?),
                };
            }
        }
    }

    // Runbooks are updated in place: those updated at or after the mark, minus the ones
    // already indexed at exactly the mark.
    let rows = match since.runbooks.updated_at {
        Some(mark) => {
            store
                .db()
                .query_all(store.stmt(
                    "SELECT id, title, services, alerts, tags, body, updated_at FROM runbooks WHERE updated_at >= ? ORDER BY updated_at, id",
                    vec![mark.into()],
                ))
                .await
        }
        None => {
            store
                .db()
                .query_all(store.stmt(
                    "SELECT id, title, services, alerts, tags, body, updated_at FROM runbooks ORDER BY updated_at, id",
                    vec![],
                ))
                .await
        }
    }
    .map_err(StoreError::from)?;
    for r in &rows {
        let id: i64 = get(r, "id")?;
        let updated_at: DateTime<Utc> = get(r, "updated_at")?;
        if Some(updated_at) == since.runbooks.updated_at && since.runbooks.ids.contains(&id) {
            continue;
        }
        let title: String = get(r, "title")?;
        let body: String = get(r, "body")?;
        let mut names = Vec::new();
        for column in ["services", "alerts", "tags"] {
            string_leaves(&get::<serde_json::Value>(r, column)?, &mut names);
        }
        out.push(Change {
            key: DocType::Runbook.key(id),
            doc: Some(document(
                f,
                DocType::Runbook,
                id,
                &title,
                &body,
                &names.join(" "),
            )),
        });
        if Some(updated_at) != meta.runbooks.updated_at {
            meta.runbooks = RunbookMark {
                updated_at: Some(updated_at),
                ids: Vec::new(),
            };
        }
        meta.runbooks.ids.push(id);
    }
    Ok((out, meta))
}

fn document(
    f: Fields,
    doc_type: DocType,
    id: i64,
    title: &str,
    body: &str,
    names: &str,
) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.key, doc_type.key(id));
    doc.add_text(f.doc_type, doc_type.as_str());
    doc.add_i64(f.id, id);
    doc.add_text(f.title, title);
    doc.add_text(f.body, body);
    doc.add_text(f.names, names);
    doc
}

/// Every string inside `value` (the services, fault kind… of a record's fields).
fn string_leaves(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| string_leaves(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| string_leaves(v, out)),
        _ => {}
    }
}

/// Text fit for one line of a chat message: markdown emphasis, headings and code marks
/// dropped, whitespace collapsed.
fn plain(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c| matches!(c, '*' | '#' | '`' | '>')))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` cut to at most `max` characters, at a word boundary when there is one, with `…`.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > cut.len() / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::{analyzer, clip, plain};

    fn tokens(text: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut out = Vec::new();
        a.token_stream(text)
            .process(&mut |t| out.push(t.text.clone()));
        out
    }

    #[test]
    fn service_names_split_and_words_stem() {
        assert_eq!(tokens("cart-cache"), ["cart", "cach"]);
        assert_eq!(
            tokens("Timeouts on payments_api"),
            ["timeout", "on", "payment", "api"]
        );
    }

    #[test]
    fn clipping_counts_characters_and_cuts_at_words() {
        assert_eq!(clip("short", 10), "short");
        let long = "ééé ".repeat(100);
        let c = clip(&long, 200);
        assert!(c.chars().count() <= 200, "{c}");
        assert!(c.ends_with("ééé…"), "{c}");
        assert_eq!(clip(&"x".repeat(300), 200).chars().count(), 200);
    }

    #[test]
    fn plain_drops_markdown_marks() {
        assert_eq!(
            plain("# Steps\n\n*Roll back* the `deploy`"),
            "Steps Roll back the deploy"
        );
    }
}
