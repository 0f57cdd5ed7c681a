//! The store handle: connecting, migrating, and the first repositories.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
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
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        if backend == Backend::Sqlite {
            // One connection: SQLite allows one writer, and a second connection waiting for
            // the lock sleeps in SQLite's coarse busy-handler steps (up to 100 ms) — measured
            // as a 54 ms ack p99 with four connections against 2 ms with one. Waiting for the
            // pool instead is fair and prompt. The pragmas are per connection, so they go
            // into the connect options.
            options.max_connections(1).map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
            });
        }
        let db = Database::connect(options).await?;
        Ok(Self {
            db,
            backend,
            url: url.to_owned(),
        })
    }

    /// The connection, for the repositories in this crate.
    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.db.ping().await?)
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
            // own, and pooled connections only ever see the schema before or after.
            let mut options = ConnectOptions::new(self.url.clone());
            options
                .max_connections(1)
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(|opts| {
                    opts.busy_timeout(Duration::from_secs(5)).foreign_keys(true)
                });
            let migrations = Database::connect(options).await?;
            let result = Migrator::up(&migrations, None).await;
            migrations.close().await?;
            result?;
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
            .exec(INSERT_PROCESSED_EVENT, vec![key.into(), now.into()])
            .await?;
        Ok(inserted == 1)
    }
}

impl Store {
    /// Forgets processed event keys older than `before` (deduplication only needs a
    /// horizon, an hour or more); returns how many were removed.
    pub async fn prune_processed(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = self
            .exec(
                "DELETE FROM processed_events WHERE processed_at < ?",
                vec![before.into()],
            )
            .await?;
        Ok(r)
    }
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
}
