//! The two databases every storage test runs on: a fresh SQLite file, and a fresh
//! PostgreSQL database when `CAIRN_TEST_POSTGRES_URL` is set. With `CI=true` that variable is
//! required: the PostgreSQL half may fail, never silently skip.

// Each suite compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_knowledge::{Backend, Store};
use chrono::Utc;
use sea_orm::ConnectionTrait;

/// Unique names within one test process (databases, references).
pub static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database, not migrated; `url` for the cases that change rows behind the store's
/// back.
pub struct Db {
    pub store: Store,
    pub url: String,
}

/// Runs `case` on a fresh SQLite file.
pub async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cairn.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    case(Db { store, url }).await;
}

/// Runs `case` on a fresh PostgreSQL database, dropped afterwards; `suite` names the tests
/// in the message that refuses to skip them in CI.
pub async fn on_postgres<F, Fut>(suite: &str, case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(admin_url) = std::env::var("CAIRN_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CAIRN_TEST_POSTGRES_URL must be set in CI: the PostgreSQL half of {suite} may not be skipped"
        );
        eprintln!("note: CAIRN_TEST_POSTGRES_URL unset; PostgreSQL case not run");
        return;
    };
    let name = format!(
        "cairn_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        Utc::now().timestamp_subsec_nanos()
    );
    let admin = sea_orm::Database::connect(admin_url.as_str())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    case(Db { store, url }).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
}
