//! The search index against a real database: every case runs on a fresh SQLite file and on a
//! fresh PostgreSQL database (when `CAIRN_TEST_POSTGRES_URL` is set; required when CI=true),
//! like the conformance suite.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::Ordering;

use cairn_knowledge::{
    DocType, Hit, InvestigationContext, KnowledgeRecord, NewIncident, SearchError, SearchIndex,
    Store, StoredHypothesis,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::ConnectionTrait;

mod common;

use common::{Db, COUNTER};

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    common::on_sqlite(|db| async {
        db.store.migrate().await.unwrap();
        case(db).await
    })
    .await;
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    common::on_postgres("the search tests", |db| async {
        db.store.migrate().await.unwrap();
        case(db).await
    })
    .await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::on_sqlite(super::$name).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::on_postgres(super::$name).await } )* }
    };
}

on_both!(
    records_incidents_and_runbooks_are_found_by_their_words,
    edits_retractions_and_new_investigations_show_after_refresh,
    runbook_reimport_replaces_its_document,
    runbooks_imported_at_one_instant_across_a_refresh_are_all_found,
    a_deleted_index_is_rebuilt_with_the_same_results,
    a_meta_file_of_another_schema_version_rebuilds,
    an_index_of_another_database_is_rebuilt,
    a_second_process_searches_read_only,
    junk_queries_give_results_or_nothing,
);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

async fn add_record(store: &Store, statement: &str, services: &[&str], at: DateTime<Utc>) -> i64 {
    let draft = KnowledgeRecord::draft(
        "correction",
        statement,
        serde_json::json!({"services": services, "rejected": [], "fault_kind": "cache_failure"}),
        "U1AAA",
        "thread_reply",
    );
    store.add_knowledge(&draft, at).await.unwrap().record_id
}

async fn add_incident(store: &Store, title: &str, suspect: Option<(&str, &str)>) -> i64 {
    let incident = store
        .create_incident(
            &NewIncident {
                title: title.into(),
                source: "pagerduty".into(),
                source_ref: format!("P{}", COUNTER.fetch_add(1, Ordering::SeqCst)),
                channel: None,
            },
            t0(),
        )
        .await
        .unwrap();
    if let Some((service, kind)) = suspect {
        investigate(store, incident.id, service, kind).await;
    }
    incident.id
}

async fn investigate(store: &Store, incident: i64, service: &str, kind: &str) {
    let hypothesis = StoredHypothesis {
        rank: 1,
        service: service.into(),
        kind: Some(kind.into()),
        confidence: 0.8,
        status: "open".into(),
        evidence: vec![],
    };
    store
        .save_investigation(
            incident,
            "root_cause_found",
            &[hypothesis],
            t0(),
            t0(),
            &InvestigationContext::default(),
        )
        .await
        .unwrap();
}

async fn add_runbook(
    store: &Store,
    title: &str,
    path: &str,
    services: &[&str],
    body: &str,
    at: DateTime<Utc>,
) -> i64 {
    let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    store
        .upsert_runbook(
            title,
            path,
            &services,
            &["CheckoutErrorBudgetBurn".to_owned()],
            &["payments".to_owned()],
            body,
            at,
        )
        .await
        .unwrap()
}

/// `(type, id)` of every hit for `query`.
fn found(index: &SearchIndex, query: &str) -> Vec<(DocType, i64)> {
    index
        .search(query, None, 20)
        .unwrap()
        .iter()
        .map(|h| (h.doc_type, h.id))
        .collect()
}

fn index_dir(root: &Path) -> std::path::PathBuf {
    root.join("index")
}

async fn records_incidents_and_runbooks_are_found_by_their_words(db: Db) {
    let store = &db.store;
    let record = add_record(
        store,
        "Evictions on cart-cache made checkout slow; it was not the database",
        &["cart-cache"],
        t0(),
    )
    .await;
    let incident = add_incident(
        store,
        "Checkout latency above SLO",
        Some(("payments-db", "connection_pool")),
    )
    .await;
    let runbook = add_runbook(
        store,
        "Payment gateway timeouts",
        "runbooks/gateway.md",
        &["checkout"],
        "# Steps\n\nFail over to the **secondary** acquirer, then page the vendor.",
        t0(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(&index_dir(dir.path()), store)
        .await
        .unwrap();
    assert!(!index.is_read_only());
    assert_eq!(index.len(), 3);

    // A record by its statement, and by its service, whole or in part.
    assert_eq!(found(&index, "evictions"), [(DocType::Record, record)]);
    assert_eq!(found(&index, "cart-cache"), [(DocType::Record, record)]);
    assert_eq!(found(&index, "cart"), [(DocType::Record, record)]);
    // An incident by its title and by its suspects.
    assert_eq!(found(&index, "latency"), [(DocType::Incident, incident)]);
    assert_eq!(
        found(&index, "connection_pool"),
        [(DocType::Incident, incident)]
    );
    // `payments` is also a runbook's tag; the whole name ranks the incident first.
    assert_eq!(
        found(&index, "payments-db"),
        [(DocType::Incident, incident), (DocType::Runbook, runbook)]
    );
    // A runbook by its title, body, services, alerts and tags; stems match.
    assert_eq!(found(&index, "timeout"), [(DocType::Runbook, runbook)]);
    assert_eq!(found(&index, "acquirer"), [(DocType::Runbook, runbook)]);
    assert_eq!(
        found(&index, "CheckoutErrorBudgetBurn"),
        [(DocType::Runbook, runbook)]
    );
    // `checkout` is in all three: the filter keeps one type.
    assert_eq!(found(&index, "checkout").len(), 3);
    let runbooks = index
        .search("checkout", Some(DocType::Runbook), 10)
        .unwrap();
    assert_eq!(runbooks.len(), 1);
    assert_eq!(
        (runbooks[0].doc_type, runbooks[0].id),
        (DocType::Runbook, runbook)
    );
    assert!(runbooks[0].score > 0.0);

    // What a person sees: the title, and plain text around the match.
    let hit: Hit = index.search("acquirer", None, 1).unwrap().remove(0);
    assert_eq!(hit.title, "Payment gateway timeouts");
    assert!(
        hit.excerpt.contains("secondary acquirer"),
        "{}",
        hit.excerpt
    );
    assert!(
        !hit.excerpt.contains('*') && !hit.excerpt.contains('#'),
        "{}",
        hit.excerpt
    );
    let hit = index.search("evictions", None, 1).unwrap().remove(0);
    assert_eq!(
        hit.title,
        "Evictions on cart-cache made checkout slow; it was not the database"
    );
    assert_eq!(
        serde_json::to_value(&hit).unwrap()["doc_type"],
        serde_json::json!("record")
    );
    // A title word ranks the runbook that has it in its title above one with it in the body.
    let other = add_runbook(
        store,
        "Restarting the cache",
        "runbooks/cache.md",
        &[],
        "Unlike gateway timeouts, this is quick.",
        t0() + Duration::seconds(1),
    )
    .await;
    index.refresh(store).await.unwrap();
    assert_eq!(
        found(&index, "timeouts"),
        [(DocType::Runbook, runbook), (DocType::Runbook, other)]
    );
}

async fn edits_retractions_and_new_investigations_show_after_refresh(db: Db) {
    let store = &db.store;
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(&index_dir(dir.path()), store)
        .await
        .unwrap();
    assert!(index.is_empty());
    assert_eq!(index.refresh(store).await.unwrap(), 0, "nothing changed");

    let kept = add_record(
        store,
        "The ledger replica lags during backups",
        &["ledger"],
        t0(),
    )
    .await;
    let edited = add_record(
        store,
        "Disk pressure on the search nodes",
        &["search"],
        t0(),
    )
    .await;
    let retracted = add_record(
        store,
        "Rabbitmq queues back up on Fridays",
        &["rabbitmq"],
        t0(),
    )
    .await;
    let expired = add_record(
        store,
        "Certificates rotate every ninety days",
        &["edge"],
        t0(),
    )
    .await;
    let incident = add_incident(store, "Orders failing", None).await;
    assert_eq!(index.refresh(store).await.unwrap(), 5);
    assert_eq!(index.refresh(store).await.unwrap(), 0, "nothing changed");
    assert_eq!(found(&index, "rabbitmq"), [(DocType::Record, retracted)]);
    assert!(found(&index, "inventory").is_empty());

    store
        .revise_knowledge(
            edited,
            Some("Inode exhaustion on the search nodes"),
            None,
            "U2BBB",
            t0(),
        )
        .await
        .unwrap();
    store
        .revise_knowledge(retracted, None, Some("retracted"), "U1AAA", t0())
        .await
        .unwrap();
    store
        .revise_knowledge(expired, None, Some("expired"), "U1AAA", t0())
        .await
        .unwrap();
    investigate(store, incident, "inventory", "deploy_regression").await;
    assert_eq!(index.refresh(store).await.unwrap(), 4);
    assert_eq!(index.refresh(store).await.unwrap(), 0, "nothing changed");

    assert_eq!(
        found(&index, "inode"),
        [(DocType::Record, edited)],
        "the new words, once"
    );
    assert!(found(&index, "pressure").is_empty(), "not the old ones");
    assert!(found(&index, "rabbitmq").is_empty(), "retracted");
    assert!(found(&index, "certificates").is_empty(), "expired");
    assert_eq!(found(&index, "ledger"), [(DocType::Record, kept)]);
    assert_eq!(found(&index, "inventory"), [(DocType::Incident, incident)]);
    assert_eq!(index.len(), 3);
}

async fn runbook_reimport_replaces_its_document(db: Db) {
    let store = &db.store;
    let id = add_runbook(
        store,
        "Kafka consumer lag",
        "runbooks/kafka.md",
        &["orders"],
        "Restart the zookeeper ensemble.",
        t0(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(&index_dir(dir.path()), store)
        .await
        .unwrap();
    assert_eq!(found(&index, "zookeeper"), [(DocType::Runbook, id)]);

    let again = add_runbook(
        store,
        "Kafka consumer lag",
        "runbooks/kafka.md",
        &["orders"],
        "Scale the consumer group out.",
        t0() + Duration::minutes(5),
    )
    .await;
    assert_eq!(again, id, "same path, same runbook");
    assert_eq!(index.refresh(store).await.unwrap(), 1);
    assert_eq!(index.refresh(store).await.unwrap(), 0, "nothing changed");
    assert_eq!(found(&index, "scale"), [(DocType::Runbook, id)]);
    assert!(found(&index, "zookeeper").is_empty());
    assert_eq!(
        found(&index, "kafka"),
        [(DocType::Runbook, id)],
        "exactly one hit"
    );
    assert_eq!(index.len(), 1);
}

async fn runbooks_imported_at_one_instant_across_a_refresh_are_all_found(db: Db) {
    // One import stamps every runbook with the same time; serve may refresh between two.
    let store = &db.store;
    let first = add_runbook(
        store,
        "Redis failover",
        "runbooks/redis.md",
        &[],
        "Promote the replica.",
        t0(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(&index_dir(dir.path()), store)
        .await
        .unwrap();
    let second = add_runbook(
        store,
        "Postgres vacuum",
        "runbooks/vacuum.md",
        &[],
        "Run vacuum analyze.",
        t0(),
    )
    .await;
    assert_eq!(index.refresh(store).await.unwrap(), 1);
    assert_eq!(index.refresh(store).await.unwrap(), 0);
    assert_eq!(found(&index, "redis"), [(DocType::Runbook, first)]);
    assert_eq!(found(&index, "vacuum"), [(DocType::Runbook, second)]);
}

/// Every hit of a few queries, for comparing two indexes.
fn results(index: &SearchIndex) -> Vec<Vec<(DocType, i64, String, String)>> {
    ["checkout", "cache", "payments-db", "timeouts", "ledger lag"]
        .iter()
        .map(|q| {
            index
                .search(q, None, 20)
                .unwrap()
                .into_iter()
                .map(|h| (h.doc_type, h.id, h.title, h.excerpt))
                .collect()
        })
        .collect()
}

async fn seed(store: &Store) {
    add_record(
        store,
        "cart-cache evictions slow checkout",
        &["cart-cache"],
        t0(),
    )
    .await;
    let edited = add_record(store, "ledger lag during backups", &["ledger"], t0()).await;
    store
        .revise_knowledge(
            edited,
            Some("ledger replica lag during nightly backups"),
            None,
            "U1AAA",
            t0(),
        )
        .await
        .unwrap();
    add_incident(
        store,
        "Checkout errors",
        Some(("payments-db", "connection_pool")),
    )
    .await;
    add_runbook(
        store,
        "Gateway timeouts",
        "runbooks/gw.md",
        &["checkout"],
        "Fail over the cache.",
        t0(),
    )
    .await;
}

async fn a_deleted_index_is_rebuilt_with_the_same_results(db: Db) {
    let store = &db.store;
    seed(store).await;
    let dir = tempfile::tempdir().unwrap();
    let path = index_dir(dir.path());
    let index = SearchIndex::open(&path, store).await.unwrap();
    let before = results(&index);
    assert!(before.iter().all(|hits| !hits.is_empty()), "{before:?}");
    drop(index);

    std::fs::remove_dir_all(&path).unwrap();
    let index = SearchIndex::open(&path, store).await.unwrap();
    assert_eq!(results(&index), before);
    assert_eq!(index.len(), 4);
}

/// Rewrites the meta file's `schema` field.
fn set_meta_schema(dir: &Path, schema: u32) {
    let meta_path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a meta file next to the index");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert!(meta["schema"].is_u64(), "{meta}");
    meta["schema"] = schema.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

async fn a_meta_file_of_another_schema_version_rebuilds(db: Db) {
    let store = &db.store;
    seed(store).await;
    let dir = tempfile::tempdir().unwrap();
    let path = index_dir(dir.path());
    let index = SearchIndex::open(&path, store).await.unwrap();
    assert_eq!(found(&index, "evictions").len(), 1);
    drop(index);

    // A change no refresh notices (rows are never updated in place like this; a rebuild reads
    // everything): it shows whether an open rebuilt.
    let raw = sea_orm::Database::connect(db.url.as_str()).await.unwrap();
    raw.execute_unprepared(
        "UPDATE knowledge_records SET status = 'retracted' WHERE statement LIKE 'cart-cache%'",
    )
    .await
    .unwrap();
    raw.close().await.unwrap();
    let index = SearchIndex::open(&path, store).await.unwrap();
    assert_eq!(found(&index, "evictions").len(), 1, "in step: no rebuild");
    drop(index);

    set_meta_schema(&path, 999);
    let index = SearchIndex::open(&path, store).await.unwrap();
    assert!(found(&index, "evictions").is_empty(), "rebuilt");
    assert_eq!(index.len(), 3);
}

async fn an_index_of_another_database_is_rebuilt(db: Db) {
    let store = &db.store;
    seed(store).await;
    let dir = tempfile::tempdir().unwrap();
    let path = index_dir(dir.path());
    let index = SearchIndex::open(&path, store).await.unwrap();
    assert!(!found(&index, "evictions").is_empty());
    drop(index);

    // The database was replaced: by an empty one…
    let other = tempfile::tempdir().unwrap();
    let connect = |name: &str| format!("sqlite://{}?mode=rwc", other.path().join(name).display());
    let empty = Store::connect(&connect("empty.db")).await.unwrap();
    empty.migrate().await.unwrap();
    let index = SearchIndex::open(&path, &empty).await.unwrap();
    assert!(index.is_empty());
    assert!(found(&index, "checkout").is_empty());
    drop(index);

    // …and, after indexing that, by one with more rows than the first.
    let bigger = Store::connect(&connect("bigger.db")).await.unwrap();
    bigger.migrate().await.unwrap();
    let later = t0() + Duration::days(30);
    let mut ids = Vec::new();
    for statement in [
        "dns resolver flaps",
        "ntp drift on workers",
        "kernel upgrade broke iptables",
        "quota exceeded on registry",
        "tls handshake failures",
    ] {
        ids.push(add_record(&bigger, statement, &["edge"], later).await);
    }
    let index = SearchIndex::open(&path, &bigger).await.unwrap();
    assert!(found(&index, "evictions").is_empty());
    assert!(found(&index, "checkout").is_empty());
    assert_eq!(found(&index, "ntp"), [(DocType::Record, ids[1])]);
    assert_eq!(index.len(), 5);
}

async fn a_second_process_searches_read_only(db: Db) {
    let store = &db.store;
    seed(store).await;
    let dir = tempfile::tempdir().unwrap();
    let path = index_dir(dir.path());
    let writer = SearchIndex::open(&path, store).await.unwrap();
    // tantivy's writer lock is a file lock: a second open in this process contends for it
    // exactly like `cairn knowledge search` run beside `serve`.
    let reader = SearchIndex::open(&path, store).await.unwrap();
    assert!(reader.is_read_only());
    assert_eq!(results(&reader), results(&writer));

    let id = add_record(
        store,
        "memcached slab rebalancing stalls",
        &["memcached"],
        t0(),
    )
    .await;
    assert_eq!(
        reader.refresh(store).await.unwrap(),
        0,
        "read-only refresh writes nothing"
    );
    assert!(found(&reader, "memcached").is_empty());
    assert_eq!(writer.refresh(store).await.unwrap(), 1);
    reader.refresh(store).await.unwrap();
    assert_eq!(
        found(&reader, "memcached"),
        [(DocType::Record, id)],
        "sees the writer's commits"
    );
    drop(reader);

    // With no index there is nothing to read: a clear error, not an empty index.
    let subdir = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    std::fs::remove_file(subdir.join("meta.json")).unwrap();
    let err = SearchIndex::open(&path, store).await.unwrap_err();
    assert!(matches!(err, SearchError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("lock"),
        "{message}"
    );
}

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// About `bytes` of text from all over Unicode, NULs and query syntax included.
fn junk(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes {
        let c = match rng.next() % 6 {
            0 => char::from(b"\0\"():*^~[]{}+-!\\/ \t\n"[(rng.next() % 20) as usize]),
            1 => char::from(b'a' + (rng.next() % 26) as u8),
            2 => char::from_u32(0x300 + (rng.next() % 0x70) as u32).unwrap(), // combining marks
            _ => loop {
                if let Some(c) = char::from_u32((rng.next() % 0x11_0000) as u32) {
                    break c;
                }
            },
        };
        s.push(c);
    }
    s
}

async fn junk_queries_give_results_or_nothing(db: Db) {
    let store = &db.store;
    seed(store).await;
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(&index_dir(dir.path()), store)
        .await
        .unwrap();
    for query in [
        "",
        " ",
        "\"",
        "\"checkout",
        "(",
        ")",
        "((checkout",
        "title:",
        "title:checkout",
        "AND OR",
        "NOT",
        "*",
        "checkout^",
        "checkout~2",
        "[a TO z]",
        "-checkout",
        "+",
        ":",
        "\0",
        "🔥🔥",
        "checkout AND",
        "doc_type:runbook",
        "cart-cache)",
        "\\",
        "'; DROP TABLE runbooks; --",
    ] {
        for filter in [None, Some(DocType::Runbook)] {
            let hits = index
                .search(query, filter, 10)
                .unwrap_or_else(|e| panic!("{query:?}: {e}"));
            assert!(hits.len() <= 10);
            assert!(hits.iter().all(|h| h.excerpt.chars().count() <= 200));
        }
    }
    assert!(index.search("", None, 10).unwrap().is_empty());
    assert!(
        !index.search("(checkout", None, 10).unwrap().is_empty(),
        "syntax is just text"
    );
    assert!(index.search("checkout", None, 0).unwrap().is_empty());
    assert!(index.search("checkout", None, usize::MAX).unwrap().len() <= 1000);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for size in [10, 100, 1_000, 10_000, 10_000] {
        let query = junk(&mut rng, size);
        index.search(&query, None, 10).unwrap();
        index
            .search(&format!("checkout {query}"), Some(DocType::Record), 10)
            .unwrap();
    }

    // Arbitrary strings, shrunk to the smallest failing one if any fails.
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 512,
        failure_persistence: None,
        ..Default::default()
    });
    runner
        .run(&proptest::prelude::any::<String>(), |query| {
            let hits = index
                .search(&query, None, 5)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert!(hits.len() <= 5);
            Ok(())
        })
        .unwrap();
}
