//! The store handle: connecting, migrating, and the first repositories.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one Cairn can use.
    #[error("database URL `{0}` is not sqlite:// or postgres://")]
    BadUrl(String),
    /// The database answered with an error or could not be reached.
    #[error("{0}")]
    Database(#[from] sea_orm::DbErr),
}

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, in order.
    pub applied: Vec<String>,
    /// Migrations in the schema after the call.
    pub total: usize,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(f, "database is up to date ({} migrations)", self.total)
        } else {
            write!(
                f,
                "applied {} migrations ({}); {} in total",
                self.applied.len(),
                self.applied.join(", "),
                self.total
            )
        }
    }
}

/// A cheap, cloneable handle on Cairn's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// The inbound queue: jobs and the keys of processed events. On SQLite it is a file of
    /// its own beside the main one ([`queue_url`]) with its own connection and write lock, so
    /// acknowledging an event never waits behind an investigation's or the outbox's writes.
    /// On PostgreSQL it is the same pool.
    queue: DatabaseConnection,
    backend: Backend,
    /// Kept (never shown: it may hold a password) to open the migration connection.
    url: String,
}

/// Records an event key once: key, processed_at. No conflict target: the key's unique
/// index is the only constraint that can conflict.
const INSERT_PROCESSED_EVENT: &str =
    "INSERT INTO processed_events (event_key, processed_at) VALUES (?, ?) ON CONFLICT DO NOTHING";

impl Store {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` creates the file; or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };
        let db = Database::connect(pool_options(url, backend)).await?;
        let queue = match backend {
            Backend::Sqlite => Database::connect(pool_options(&queue_url(url), backend)).await?,
            Backend::Postgres => db.clone(),
        };
        Ok(Self {
            db,
            queue,
            backend,
            url: url.to_owned(),
        })
    }

    /// The connection, for the repositories in this crate.
    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The inbound queue's connection (jobs, processed event keys).
    pub(crate) fn queue(&self) -> &DatabaseConnection {
        &self.queue
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database (and the queue, where it is apart) answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        if self.backend == Backend::Sqlite {
            self.queue.ping().await?;
        }
        Ok(())
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let pending: Vec<String> = Migrator::get_pending_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        if self.backend == Backend::Sqlite {
            // SQLite resolves `ON CONFLICT (column)` against the schema a connection loaded,
            // and does not reload it when that fails. A pooled connection that loaded the
            // schema between a migration's CREATE TABLE and its CREATE INDEX would refuse
            // every upsert on that table. So the migrations run on a connection of their
            // own, and pooled connections only ever see the schema before or after. Both
            // files get the whole schema (each uses its part), so one migrator serves both.
            migrate_sqlite(&self.url).await?;
            migrate_sqlite(&queue_url(&self.url)).await?;
            self.adopt_queue().await?;
        } else {
            Migrator::up(&self.db, None).await?;
        }
        Ok(MigrationReport {
            applied: pending,
            total: Migrator::migrations().len(),
        })
    }

    /// Names of migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_pending_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// Records that the inbound event `key` was processed; `true` the first time only,
    /// also under concurrency and across restarts (the key is unique in the table).
    pub async fn mark_processed(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let inserted = self
            .queue_exec(INSERT_PROCESSED_EVENT, vec![key.into(), now.into()])
            .await?;
        Ok(inserted == 1)
    }
}

impl Store {
    /// Forgets processed event keys older than `before` (deduplication only needs a
    /// horizon, an hour or more); returns how many were removed.
    pub async fn prune_processed(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = self
            .queue_exec(
                "DELETE FROM processed_events WHERE processed_at < ?",
                vec![before.into()],
            )
            .await?;
        Ok(r)
    }
}

impl Store {
    /// Moves what a SQLite database from before the queue had its own file still holds in
    /// its queue tables (jobs not yet done, event keys) into the queue file, so nothing
    /// accepted before an upgrade is lost or accepted twice. Idempotent: rows already moved
    /// are skipped, and an interrupted move is finished by the next start.
    async fn adopt_queue(&self) -> Result<(), StoreError> {
        let Some(main) = sqlite_file(&self.url) else {
            return Ok(());
        };
        let q = self.queue();
        let run = |sql: String| async move { q.execute_unprepared(&sql).await.map(|_| ()) };
        let main = main.replace('\'', "''");
        run(format!("ATTACH DATABASE '{main}' AS old")).await?;
        // Both files were built by the same migrations, so the columns line up.
        let moved = async {
            run("BEGIN IMMEDIATE".into()).await?;
            run("INSERT OR IGNORE INTO main.jobs SELECT * FROM old.jobs".into()).await?;
            run(
                "INSERT OR IGNORE INTO main.processed_events SELECT * FROM old.processed_events"
                    .into(),
            )
            .await?;
            // In the same transaction, so another process still writing the old file (a
            // replica not yet upgraded) waits instead of adding a row between the copy and
            // the delete. In WAL mode SQLite commits each file on its own, this connection's
            // main file (the queue) first: a crash in between leaves copies the next start
            // skips, never a deletion without its copy.
            run("DELETE FROM old.jobs".into()).await?;
            run("DELETE FROM old.processed_events".into()).await?;
            run("COMMIT".into()).await
        }
        .await;
        if moved.is_err() {
            let _ = run("ROLLBACK".into()).await;
        }
        run("DETACH DATABASE old".into()).await?;
        Ok(moved?)
    }
}

/// Options for a pool on `url`.
fn pool_options(url: &str, backend: Backend) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    if backend == Backend::Sqlite {
        // One connection per file: SQLite allows one writer, and a second connection
        // waiting for the lock sleeps in SQLite's coarse busy-handler steps (up to 100 ms) —
        // measured as a 54 ms ack p99 with four connections against 2 ms with one. Waiting
        // for the pool instead is fair and prompt. The pragmas are per connection, so they
        // go into the connect options.
        options.max_connections(1).map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    }
    options
}

/// Applies every pending migration to the SQLite database at `url` on a connection of its own.
async fn migrate_sqlite(url: &str) -> Result<(), StoreError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| opts.busy_timeout(Duration::from_secs(5)).foreign_keys(true));
    let migrations = Database::connect(options).await?;
    let result = Migrator::up(&migrations, None).await;
    migrations.close().await?;
    Ok(result?)
}

/// The file a SQLite URL names; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (!path.is_empty() && path != ":memory:" && !query.contains("mode=memory"))
        .then(|| path.to_owned())
}

/// The URL of the queue file beside a SQLite database: `sqlite://cairn.db?mode=rwc` →
/// `sqlite://cairn.db-queue?mode=rwc` (created when missing: it is Cairn's own). An
/// in-memory database gets an in-memory queue.
pub fn queue_url(url: &str) -> String {
    let Some(file) = sqlite_file(url) else {
        return url.to_owned();
    };
    let query: Vec<&str> = url
        .split_once('?')
        .map(|(_, q)| q.split('&').filter(|p| !p.starts_with("mode=")).collect())
        .unwrap_or_default();
    let mut out = format!("sqlite://{file}-queue?mode=rwc");
    for param in query.iter().filter(|p| !p.is_empty()) {
        out.push('&');
        out.push_str(param);
    }
    out
}

/// The URL with any password replaced, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("mysql://u:pw@h/db"),
            "mysql://u:[redacted]@h/db"
        );
        assert_eq!(super::redact_url("mysql://h/db"), "mysql://h/db");
    }

    #[test]
    fn the_queue_file_sits_beside_the_database() {
        use super::queue_url;
        assert_eq!(
            queue_url("sqlite://data/cairn.db?mode=rwc"),
            "sqlite://data/cairn.db-queue?mode=rwc"
        );
        assert_eq!(
            queue_url("sqlite:cairn.db?mode=rw&cache=shared"),
            "sqlite://cairn.db-queue?mode=rwc&cache=shared"
        );
        assert_eq!(queue_url("sqlite::memory:"), "sqlite::memory:");
    }

    /// A database from before the queue had its own file: what it had accepted and not yet
    /// run is run after the upgrade, and a key it had seen is still refused.
    #[tokio::test]
    async fn an_upgrade_moves_the_old_queue_into_its_file() {
        use chrono::{Duration, Utc};
        use sea_orm::{ConnectionTrait, Database};

        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("cairn.db").display()
        );
        let store = super::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let now = Utc::now();
        // The old layout: the rows in the main file.
        let main = Database::connect(&url).await.unwrap();
        main.execute_unprepared(&format!(
            "INSERT INTO jobs (kind, payload, state, run_at, attempts, max_attempts, created_at, event_key)              VALUES ('mention', '{{}}', 'queued', '{now}', 0, 5, '{now}', 'slack:EvOld')"
        ))
        .await
        .unwrap();
        main.execute_unprepared(&format!(
            "INSERT INTO processed_events (event_key, processed_at) VALUES ('slack:EvKey', '{now}')"
        ))
        .await
        .unwrap();
        assert_eq!(store.count_jobs(crate::JobState::Queued).await.unwrap(), 0);

        // Twice: the second start finds nothing left to move and changes nothing.
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        let job = store
            .lease_job("w", now + Duration::seconds(1), Duration::seconds(30))
            .await
            .unwrap()
            .expect("the old queued job is claimable");
        assert_eq!(job.kind, "mention");
        assert!(store
            .lease_job("w", now + Duration::seconds(1), Duration::seconds(30))
            .await
            .unwrap()
            .is_none());
        for key in ["slack:EvOld", "slack:EvKey"] {
            assert!(
                !store
                    .accept_inbound(key, "mention", serde_json::json!({}), now)
                    .await
                    .unwrap(),
                "{key} was seen before the upgrade"
            );
        }
        let left = main
            .query_one(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM processed_events) AS n",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            left.try_get::<i64>("", "n").unwrap(),
            0,
            "moved, not copied"
        );
        assert!(dir.path().join("cairn.db-queue").exists());
    }
}
