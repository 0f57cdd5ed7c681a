//! The durable job queue and the outbox, in the database so nothing is lost on a crash.
//!
//! A job is claimed with one compare-and-set `UPDATE … WHERE id = (the oldest claimable)
//! AND <still claimable> RETURNING …`:
//! whoever changes the row owns the job, on SQLite and PostgreSQL alike. An expired lease
//! makes the job claimable again (the worker died). Failures retry with exponential backoff
//! until `max_attempts`, then the job is dead-lettered.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use crate::store::{Store, StoreError};

/// A job as a worker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Attempts including the current one.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Dead,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub idempotency_key: String,
    pub channel: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    /// A send was started and its outcome never recorded (the process died mid-call): Slack
    /// may hold the message already, so the sender looks before sending again.
    pub in_flight: bool,
}

/// Adds a queued job: kind, payload, run_at, max_attempts, created_at.
const INSERT_JOB: &str = "INSERT INTO jobs (kind, payload, state, run_at, attempts, max_attempts, created_at) VALUES (?, ?, 'queued', ?, 0, ?, ?) RETURNING id";

/// Attempts before a job is dead-lettered, unless the caller says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// Delay before retry number `attempts` (1-based): 5 s, 10 s, 20 s… capped at 10 minutes.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 8) - 1;
    Duration::seconds((5i64 << exp).min(600))
}

impl Store {
    /// Builds a statement from SQL with `?` placeholders, numbered for PostgreSQL.
    pub(crate) fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db().get_database_backend();
        let sql = if backend == DbBackend::Postgres {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    /// Runs one statement and returns how many rows it changed: the compare-and-set
    /// answer every claim and idempotent insert here relies on.
    pub(crate) async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64, StoreError> {
        self.exec_on(self.db(), sql, values).await
    }

    /// [`Store::exec`] on the inbound queue's connection.
    pub(crate) async fn queue_exec(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64, StoreError> {
        self.exec_on(self.queue(), sql, values).await
    }

    async fn exec_on(
        &self,
        conn: &sea_orm::DatabaseConnection,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64, StoreError> {
        Ok(conn.execute(self.stmt(sql, values)).await?.rows_affected())
    }

    /// Runs `{head} VALUES (…), (…)… {tail}` over `rows` of `N` values each, a thousand rows
    /// to a statement (SQLite binds at most 32 766 values); returns the rows changed. One
    /// write for a batch instead of one per row.
    pub(crate) async fn insert_rows<const N: usize>(
        &self,
        head: &str,
        tail: &str,
        rows: Vec<[Value; N]>,
    ) -> Result<u64, StoreError> {
        const ROWS_PER_STATEMENT: usize = 1000;
        let mut changed = 0;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<[Value; N]> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
            let sql = format!(
                "{head} VALUES {} {tail}",
                crate::records::placeholders(chunk.len(), N)
            );
            changed += self
                .exec(&sql, chunk.into_iter().flatten().collect())
                .await?;
        }
        Ok(changed)
    }

    /// Adds a job to run at `run_at`; returns its id.
    pub async fn enqueue_job(
        &self,
        kind: &str,
        payload: serde_json::Value,
        run_at: DateTime<Utc>,
        max_attempts: i32,
    ) -> Result<i64, StoreError> {
        let row = self
            .queue()
            .query_one(self.stmt(
                INSERT_JOB,
                vec![
                    kind.into(),
                    payload.into(),
                    run_at.into(),
                    max_attempts.into(),
                    run_at.into(),
                ],
            ))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        Ok(row.try_get("", "id")?)
    }

    /// Claims one due job for `owner` until `now + lease_for`; `None` when nothing is due.
    ///
    /// One statement: the oldest claimable job is picked and claimed together, so a worker
    /// holds the queue for one round trip per job (acknowledgements share it). SQLite has
    /// one writer, so the pick cannot be raced; PostgreSQL replicas skip a row another
    /// replica is claiming (`FOR UPDATE SKIP LOCKED`) instead of waiting for it.
    pub async fn lease_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_for: Duration,
    ) -> Result<Option<Job>, StoreError> {
        const CLAIMABLE: &str =
            "((state = 'queued' AND run_at <= ?) OR (state = 'running' AND lease_until < ?))";
        let skip_locked = match self.backend() {
            crate::store::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::store::Backend::Sqlite => "",
        };
        let row = self
            .queue()
            .query_one(self.stmt(
                &format!(
                    "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM jobs WHERE {CLAIMABLE} ORDER BY run_at, id LIMIT 1{skip_locked}) AND {CLAIMABLE} \
                     RETURNING id, kind, payload, attempts, max_attempts"
                ),
                vec![
                    owner.into(),
                    (now + lease_for).into(),
                    now.into(),
                    now.into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?;
        row.map(|row| job_from(&row)).transpose()
    }

    /// Marks a leased job done; `false` if `owner` no longer holds it.
    pub async fn complete_job(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let r = self.queue_exec("UPDATE jobs SET state = 'done', lease_until = NULL WHERE id = ? AND state = 'running' AND lease_owner = ?", vec![id.into(), owner.into()]).await?;
        Ok(r == 1)
    }

    /// Records a failed attempt: retried after [`backoff`], or dead-lettered after the last
    /// attempt. Returns the job's new state, or `None` if `owner` no longer holds it.
    pub async fn fail_job(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JobState>, StoreError> {
        let Some(row) = self
            .queue()
            .query_one(self.stmt("SELECT attempts, max_attempts FROM jobs WHERE id = ? AND state = 'running' AND lease_owner = ?", vec![id.into(), owner.into()]))
            .await?
        else {
            return Ok(None);
        };
        let attempts: i32 = row.try_get("", "attempts")?;
        let max: i32 = row.try_get("", "max_attempts")?;
        let (state, run_at) = if attempts >= max {
            (JobState::Dead, now)
        } else {
            (JobState::Queued, now + backoff(attempts))
        };
        let r = self.queue_exec(
                "UPDATE jobs SET state = ?, run_at = ?, lease_owner = NULL, lease_until = NULL, last_error = ? WHERE id = ? AND state = 'running' AND lease_owner = ?",
                vec![state.as_str().into(), run_at.into(), error.into(), id.into(), owner.into()],
            ).await?;
        Ok((r == 1).then_some(state))
    }

    /// Number of jobs in `state` (queue depth for `Queued`).
    pub async fn count_jobs(&self, state: JobState) -> Result<i64, StoreError> {
        self.count(
            self.queue(),
            "SELECT COUNT(*) AS n FROM jobs WHERE state = ?",
            vec![state.as_str().into()],
        )
        .await
    }

    /// Number of jobs in any state, read in one statement: summing [`Store::count_jobs`]
    /// over the states races a worker moving a job between them (counted twice or never).
    pub async fn count_all_jobs(&self) -> Result<i64, StoreError> {
        self.count(self.queue(), "SELECT COUNT(*) AS n FROM jobs", vec![])
            .await
    }

    /// The `n` a `SELECT COUNT(*) AS n …` answers on `conn`.
    async fn count(
        &self,
        conn: &sea_orm::DatabaseConnection,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<i64, StoreError> {
        let row = conn.query_one(self.stmt(sql, values)).await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Puts a message in the outbox; `false` when one with this key is already there
    /// (sent or not), so a retried producer never posts twice.
    pub async fn enqueue_outbox(
        &self,
        key: &str,
        channel: &str,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let added = self
            .enqueue_outbox_all(&[(key.to_owned(), payload)], channel, now)
            .await?;
        Ok(added == 1)
    }

    /// Puts `messages` (key, payload) for `channel` in the outbox in one write, in their
    /// order (a thread's replies are sent in the order queued); a key already there is
    /// skipped, as in [`Store::enqueue_outbox`]. Returns how many were added.
    pub async fn enqueue_outbox_all(
        &self,
        messages: &[(String, serde_json::Value)],
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let rows = messages
            .iter()
            .map(|(key, payload)| {
                [
                    key.clone().into(),
                    channel.into(),
                    payload.clone().into(),
                    "pending".into(),
                    0i32.into(),
                    now.into(),
                    now.into(),
                ]
            })
            .collect();
        self.insert_rows(
            "INSERT INTO outbox (idempotency_key, channel, payload, state, attempts, next_attempt_at, created_at)",
            "ON CONFLICT (idempotency_key) DO NOTHING",
            rows,
        )
        .await
    }

    /// Accepts an inbound event exactly once: enqueues a `job_kind` job with `payload` under
    /// `event_key`, in one statement (the key is unique on the job, so dedupe and the job are
    /// one atomic write). Returns `false` (and changes nothing) when the key was seen before
    /// — a retry or a replay — here or, from before jobs carried their key, in
    /// `processed_events`.
    pub async fn accept_inbound(
        &self,
        event_key: &str,
        job_kind: &str,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // `WHERE` is also what SQLite needs to read `ON CONFLICT` after a `SELECT`.
        let inserted = self
            .queue()
            .query_one(self.stmt(
                "INSERT INTO jobs (kind, payload, state, run_at, attempts, max_attempts, created_at, event_key) \
                 SELECT ?, ?, 'queued', ?, 0, ?, ?, ? \
                 WHERE NOT EXISTS (SELECT 1 FROM processed_events WHERE event_key = ?) \
                 ON CONFLICT (event_key) DO NOTHING RETURNING id",
                vec![
                    job_kind.into(),
                    payload.into(),
                    now.into(),
                    DEFAULT_MAX_ATTEMPTS.into(),
                    now.into(),
                    event_key.into(),
                    event_key.into(),
                ],
            ))
            .await?;
        Ok(inserted.is_some())
    }

    /// The Slack `ts` a message got, once sent (for editing it later).
    pub async fn outbox_sent_ts(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(
                "SELECT sent_ts FROM outbox WHERE idempotency_key = ? AND state = 'sent'",
                vec![key.into()],
            ))
            .await?;
        Ok(row.and_then(|r| r.try_get::<Option<String>>("", "sent_ts").ok().flatten()))
    }

    /// Pending messages due at `now`, oldest first.
    pub async fn due_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(
                "SELECT id, idempotency_key, channel, payload, attempts, last_error FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                vec![now.into(), i64::from(limit).into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxMessage {
                    id: r.try_get("", "id")?,
                    idempotency_key: r.try_get("", "idempotency_key")?,
                    channel: r.try_get("", "channel")?,
                    payload: r.try_get("", "payload")?,
                    attempts: r.try_get("", "attempts")?,
                    in_flight: r
                        .try_get::<Option<String>>("", "last_error")?
                        .is_some_and(|e| e == IN_FLIGHT),
                })
            })
            .collect()
    }

    /// Claims the message for one send starting at `now`, until `now + lease_for`; `false`
    /// when it is not this caller's to send: another replica claimed it first, it is not due,
    /// or an older message of its channel is still pending (a channel's messages go out in
    /// order, whichever replica sends them). Compare-and-set on `next_attempt_at`, like job
    /// leases: whoever moves it owns the send. A claim whose outcome is never recorded (the
    /// sender died) expires and leaves the message [`OutboxMessage::in_flight`].
    pub async fn claim_outbox(
        &self,
        id: i64,
        now: DateTime<Utc>,
        lease_for: Duration,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .exec(
                "UPDATE outbox SET last_error = ?, next_attempt_at = ? WHERE id = ? AND state = 'pending' AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM outbox older WHERE older.channel = outbox.channel AND older.state = 'pending' AND older.id < outbox.id)",
                vec![IN_FLIGHT.into(), (now + lease_for).into(), id.into(), now.into()],
            )
            .await?;
        Ok(claimed == 1)
    }

    /// Marks a message sent (with the Slack `ts` it got); `false` if it was already sent.
    pub async fn mark_outbox_sent(&self, id: i64, sent_ts: &str) -> Result<bool, StoreError> {
        let r = self
            .exec(
                "UPDATE outbox SET state = 'sent', sent_ts = ? WHERE id = ? AND state = 'pending'",
                vec![sent_ts.into(), id.into()],
            )
            .await?;
        Ok(r == 1)
    }

    /// Records a failed send: retried at `retry_at` (e.g. after `Retry-After`), or
    /// dead-lettered when `permanent` (Slack will never take it: `channel_not_found`,
    /// `invalid_blocks`…) or after [`MAX_OUTBOX_ATTEMPTS`]. Returns whether it is dead.
    pub async fn mark_outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
        permanent: bool,
    ) -> Result<bool, StoreError> {
        // The new state comes back from the update itself; only a message no longer pending
        // (given up or sent by another replica meanwhile) needs a second look.
        let row = self
            .db()
            .query_one(self.stmt(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, state = CASE WHEN ? OR attempts + 1 >= ? THEN 'dead' ELSE state END WHERE id = ? AND state = 'pending' RETURNING state",
                vec![error.into(), retry_at.into(), permanent.into(), MAX_OUTBOX_ATTEMPTS.into(), id.into()],
            ))
            .await?;
        match row {
            Some(row) => Ok(row.try_get::<String>("", "state")? == "dead"),
            None => self.outbox_dead(OutboxRef::Id(id)).await,
        }
    }

    /// Gives up a message that cannot be sent because what it depends on never will be
    /// (the message it edits, the root of its thread); `error` says which.
    pub async fn bury_outbox(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE outbox SET state = 'dead', last_error = ? WHERE id = ? AND state = 'pending'",
            vec![error.into(), id.into()],
        )
        .await?;
        Ok(())
    }

    /// Whether the message was given up.
    pub async fn outbox_dead(&self, key: OutboxRef<'_>) -> Result<bool, StoreError> {
        let (sql, value): (&str, Value) = match key {
            OutboxRef::Key(k) => (
                "SELECT 1 AS dead FROM outbox WHERE idempotency_key = ? AND state = 'dead'",
                k.into(),
            ),
            OutboxRef::Id(id) => (
                "SELECT 1 AS dead FROM outbox WHERE id = ? AND state = 'dead'",
                id.into(),
            ),
        };
        Ok(self
            .db()
            .query_one(self.stmt(sql, vec![value]))
            .await?
            .is_some())
    }

    /// Messages given up, for `/metrics`.
    pub async fn count_dead_outbox(&self) -> Result<i64, StoreError> {
        self.count(
            self.db(),
            "SELECT COUNT(*) AS n FROM outbox WHERE state = 'dead'",
            vec![],
        )
        .await
    }
}

/// `last_error` of a message whose send started and whose outcome was never recorded.
const IN_FLIGHT: &str = "in flight";

/// Attempts after which a message that keeps failing is given up: one Slack has refused
/// twelve times (each after its `Retry-After` or a pause) is not going through, and holding
/// it would hold its channel's later messages for ever.
pub const MAX_OUTBOX_ATTEMPTS: i32 = 12;

/// Which outbox message: by idempotency key or by row id.
#[derive(Debug, Clone, Copy)]
pub enum OutboxRef<'a> {
    Key(&'a str),
    Id(i64),
}

fn job_from(row: &QueryResult) -> Result<Job, StoreError> {
    Ok(Job {
        id: row.try_get("", "id")?,
        kind: row.try_get("", "kind")?,
        payload: row.try_get("", "payload")?,
        attempts: row.try_get("", "attempts")?,
        max_attempts: row.try_get("", "max_attempts")?,
    })
}
