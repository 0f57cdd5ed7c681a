//! Search at scale: 100 000 knowledge records in a SQLite database, the index built from it,
//! then 500 varied queries timed one by one. Prints the numbers; no time is asserted.
//!
//! `cargo bench -p cairn-knowledge --bench search` (target: p95 ≤ 20 ms per query).

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_knowledge::{DocType, SearchIndex, Store};
use chrono::{TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

const RECORDS: usize = 100_000;
const QUERIES: usize = 500;

const SERVICES: &[&str] = &[
    "checkout",
    "cart-cache",
    "payments-db",
    "ledger",
    "search-api",
    "auth",
    "edge-proxy",
    "inventory",
    "orders",
    "kafka",
    "redis",
    "postgres-primary",
    "postgres-replica",
    "frontend",
    "recommendations",
    "shipping",
    "notifications",
    "billing",
    "fraud-scoring",
    "image-resizer",
    "session-store",
    "api-gateway",
    "dns",
    "ingress-nginx",
    "rabbitmq",
    "elasticsearch",
    "user-profile",
    "catalog",
    "pricing",
    "tax-service",
    "warehouse-sync",
    "email-sender",
];
const FAULTS: &[&str] = &[
    "timeout",
    "latency",
    "eviction",
    "oom",
    "deadlock",
    "saturation",
    "5xx",
    "retry storm",
    "connection pool exhausted",
    "disk full",
    "certificate expired",
    "dns resolution failure",
    "memory leak",
    "cpu throttling",
    "replication lag",
    "thundering herd",
    "cache stampede",
    "bad deploy",
    "config drift",
    "rate limiting",
    "packet loss",
    "split brain",
    "gc pauses",
    "slow query",
    "lock contention",
    "queue backlog",
    "crash loop",
    "node drain",
];
const KINDS: &[&str] = &[
    "correction",
    "confirmation",
    "root_cause",
    "fact",
    "runbook_link",
];
const TEMPLATES: &[&str] = &[
    "{s} showed {f} after the {w} {w} change; rolling back {s2} fixed it",
    "It was not {s2}: {s} had {f} because of {w} {w}",
    "When {s} reports {f}, check {s2} first, the {w} usually {w}",
    "{f} on {s} during the {w} window is expected; page only if {s2} {w} too",
    "Root cause: {f} in {s} triggered by {w} {w} {w} on {s2}",
    "Confirmed {s} as the culprit; {f} lined up with the {w} deploy of {s2}",
    "The {w} job on {s} causes {f} every {w}; {s2} retries make it worse",
    "Scale {s} before the {w} sale, otherwise {f} spreads to {s2} and {w}",
];

/// xorshift64*: deterministic, so every run indexes the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    /// Skewed towards the front, like word frequencies in real text.
    fn zipf<'a>(&mut self, items: &'a [String]) -> &'a str {
        let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        &items[((r * r * r) * items.len() as f64) as usize]
    }
}

/// A few thousand made-up words (syllable pairs and triples) for the rest of the vocabulary.
fn lexicon(rng: &mut Rng) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mer", "tan", "vi", "sul", "pre", "dor", "gen", "fa", "rix", "mon", "tel",
        "quo", "bra", "nim", "ser", "ad", "ul", "pon", "ti", "ves", "cor", "dal",
    ];
    let mut words: Vec<String> = (0..4000)
        .map(|i| {
            let n = 2 + i % 2;
            (0..n).map(|_| rng.pick(SYLLABLES)).collect()
        })
        .collect();
    words.sort();
    words.dedup();
    // Keep the skew independent of the sort.
    for i in (1..words.len()).rev() {
        let j = rng.below(i + 1);
        words.swap(i, j);
    }
    words
}

fn statement(rng: &mut Rng, words: &[String]) -> (String, &'static str, &'static str) {
    let service = rng.pick(SERVICES);
    let fault = rng.pick(FAULTS);
    let mut text = rng.pick(TEMPLATES).to_owned();
    text = text.replacen("{s}", service, 1);
    text = text.replacen("{s2}", rng.pick(SERVICES), 1);
    text = text.replacen("{f}", fault, 1);
    while text.contains("{w}") {
        let w = rng.zipf(words).to_owned();
        text = text.replacen("{w}", &w, 1);
    }
    (text, service, fault)
}

async fn seed(url: &str, rng: &mut Rng, words: &[String]) -> Duration {
    let started = Instant::now();
    let db = sea_orm::Database::connect(url).await.expect("connect");
    let txn = db.begin().await.expect("begin");
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    // Written straight into the table (one transaction, multi-row INSERTs): going through
    // `Store::add_knowledge` a row at a time would time SQLite, not search. Version 1 of
    // every record has `id = record_id`, as `add_knowledge` leaves it; a few records then get
    // an edit (version 2) or are retracted, as in a real database.
    let mut rows: Vec<(i64, i64, i32, String, serde_json::Value, &str)> = Vec::new();
    for id in 1..=RECORDS as i64 {
        let (text, service, fault) = statement(rng, words);
        let fields =
            serde_json::json!({"services": [service], "rejected": [], "fault_kind": fault});
        rows.push((id, id, 1, text, fields, "active"));
    }
    let mut next = RECORDS as i64 + 1;
    let mut edited = std::collections::HashSet::new();
    for _ in 0..RECORDS / 20 {
        let record = 1 + rng.below(RECORDS) as i64;
        if !edited.insert(record) {
            continue;
        }
        let (text, service, fault) = statement(rng, words);
        let fields =
            serde_json::json!({"services": [service], "rejected": [], "fault_kind": fault});
        let status = if rng.below(3) == 0 {
            "retracted"
        } else {
            "active"
        };
        rows.push((next, record, 2, text, fields, status));
        next += 1;
    }
    for chunk in rows.chunks(500) {
        let mut sql = String::from("INSERT INTO knowledge_records (id, record_id, version, kind, statement, fields, author, origin, scope, status, created_at) VALUES ");
        let mut values: Vec<sea_orm::Value> = Vec::new();
        for (i, (id, record, version, text, fields, status)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?, ?, ?, ?, 'U1AAA', 'thread_reply', 'global', ?, ?)");
            values.extend([
                (*id).into(),
                (*record).into(),
                (*version).into(),
                KINDS[(*id as usize) % KINDS.len()].into(),
                text.clone().into(),
                fields.clone().into(),
                (*status).into(),
                (at + chrono::Duration::seconds(*id)).into(),
            ]);
        }
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await
        .expect("insert");
    }
    txn.commit().await.expect("commit");
    db.close().await.expect("close");
    started.elapsed()
}

fn queries(rng: &mut Rng, words: &[String]) -> Vec<(String, Option<DocType>)> {
    (0..QUERIES)
        .map(|i| {
            let query = match i % 10 {
                0 | 1 => rng.pick(SERVICES).to_owned(),
                2 => rng.pick(FAULTS).to_owned(),
                3 | 4 => format!("{} {}", rng.pick(SERVICES), rng.pick(FAULTS)),
                5 => format!(
                    "{} {} {}",
                    rng.pick(SERVICES),
                    rng.zipf(words),
                    rng.pick(FAULTS)
                ),
                6 => rng.zipf(words).to_owned(),
                7 => statement(rng, words).0,
                8 => format!("why is {} slow after the deploy", rng.pick(SERVICES)),
                _ => format!("\"{}\" title: ({} AND", rng.pick(SERVICES), rng.zipf(words)),
            };
            let filter = (i % 7 == 0).then_some(DocType::Record);
            (query, filter)
        })
        .collect()
}

fn size_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => size_on_disk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", tmp.path().join("cairn.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        let words = lexicon(&mut rng);
        let seeded = seed(&url, &mut rng, &words).await;
        println!("database: {RECORDS} records (+ edits and retractions) written in {:.0} ms", ms(seeded));

        let dir = tmp.path().join("index");
        let started = Instant::now();
        let index = SearchIndex::open(&dir, &store).await.expect("open");
        let built = started.elapsed();
        println!(
            "build: {} documents indexed in {:.0} ms; index size on disk {:.1} MB",
            index.len(),
            ms(built),
            size_on_disk(&dir) as f64 / 1e6
        );

        // The first open after the build runs while tantivy still merges the build's segments
        // in the background; the second is what a restart costs.
        let mut reopens = Vec::new();
        let mut index = index;
        for _ in 0..2 {
            drop(index);
            let started = Instant::now();
            index = SearchIndex::open(&dir, &store).await.expect("reopen");
            reopens.push(format!("{:.1} ms", ms(started.elapsed())));
        }
        println!("reopen (in step, no rebuild): {}", reopens.join(", then "));
        let mut refreshes = Vec::new();
        for _ in 0..21 {
            let started = Instant::now();
            let n = index.refresh(&store).await.expect("refresh");
            assert_eq!(n, 0, "nothing is new");
            refreshes.push(started.elapsed());
        }
        refreshes.sort();
        println!("refresh with nothing new: median {:.2} ms of {}", ms(refreshes[10]), refreshes.len());

        let queries = queries(&mut rng, &words);
        let mut times = Vec::with_capacity(queries.len());
        let mut hits = 0;
        for (query, filter) in &queries {
            let started = Instant::now();
            hits += index.search(query, *filter, 10).expect("search").len();
            times.push(started.elapsed());
        }
        times.sort();
        let at = |p: f64| ms(times[((times.len() as f64 * p).ceil() as usize).min(times.len()) - 1]);
        println!(
            "{} queries (limit 10, with excerpts), {hits} hits: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            times.len(),
            at(0.50),
            at(0.95),
            at(0.99),
            ms(times[times.len() - 1]),
        );
    });
}
