//! Repositories for incidents, alerts, the service catalogue, knowledge records and runbooks.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};

use crate::store::{Store, StoreError};

/// An incident as the rest of Cairn sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    /// pagerduty, alertmanager, grafana or slack.
    pub source: String,
    /// PagerDuty incident id, Alertmanager groupKey or Slack event_id.
    pub source_ref: String,
    pub channel: Option<String>,
    pub thread_ts: Option<String>,
    /// open, acknowledged or resolved.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// What a new incident starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub title: String,
    pub source: String,
    pub source_ref: String,
    pub channel: Option<String>,
}

/// A knowledge record, one version of it.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeRecord {
    /// Stable id of the record across versions.
    pub record_id: i64,
    pub version: i32,
    /// correction, confirmation, root_cause, fact or runbook_link.
    pub kind: String,
    pub statement: String,
    /// Structured fields (services, fault kind, symptom fingerprint).
    pub fields: serde_json::Value,
    /// Slack user id of the author.
    pub author: String,
    pub incident_id: Option<i64>,
    /// How it was captured: slack_button, thread_reply, slash_learn, pagerduty…
    pub origin: String,
    /// service, team or global.
    pub scope: String,
    /// active, retracted or expired.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// A runbook as imported.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    pub id: i64,
    pub title: String,
    pub path: String,
    pub services: Vec<String>,
    pub alerts: Vec<String>,
    pub tags: Vec<String>,
    pub body: String,
    pub updated_at: DateTime<Utc>,
}

fn incident_from(r: &QueryResult) -> Result<Incident, StoreError> {
    Ok(Incident {
        id: r.try_get("", "id")?,
        title: r.try_get("", "title")?,
        source: r.try_get("", "source")?,
        source_ref: r.try_get("", "source_ref")?,
        channel: r.try_get("", "channel")?,
        thread_ts: r.try_get("", "thread_ts")?,
        status: r.try_get("", "status")?,
        created_at: r.try_get("", "created_at")?,
    })
}

fn record_from(r: &QueryResult) -> Result<KnowledgeRecord, StoreError> {
    Ok(KnowledgeRecord {
        record_id: r.try_get("", "record_id")?,
        version: r.try_get("", "version")?,
        kind: r.try_get("", "kind")?,
        statement: r.try_get("", "statement")?,
        fields: r.try_get("", "fields")?,
        author: r.try_get("", "author")?,
        incident_id: r.try_get("", "incident_id")?,
        origin: r.try_get("", "origin")?,
        scope: r.try_get("", "scope")?,
        status: r.try_get("", "status")?,
        created_at: r.try_get("", "created_at")?,
    })
}

fn strings(v: serde_json::Value) -> Vec<String> {
    serde_json::from_value(v).unwrap_or_default()
}

const INCIDENT_COLUMNS: &str =
    "id, title, source, source_ref, channel, thread_ts, status, created_at";
const RECORD_COLUMNS: &str = "record_id, version, kind, statement, fields, author, incident_id, origin, scope, status, created_at";

impl Store {
    /// Opens an incident.
    pub async fn create_incident(
        &self,
        new: &NewIncident,
        now: DateTime<Utc>,
    ) -> Result<Incident, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(
                &format!("INSERT INTO incidents (title, source, source_ref, channel, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?) RETURNING {INCIDENT_COLUMNS}"),
                vec![new.title.clone().into(), new.source.clone().into(), new.source_ref.clone().into(), new.channel.clone().into(), now.into(), now.into()],
            ))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        incident_from(&row)
    }

    /// The incident with `id`.
    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?"),
                vec![id.into()],
            ))
            .await?;
        row.as_ref().map(incident_from).transpose()
    }

    /// The newest incident from `source` with `source_ref` that is not resolved (one open
    /// incident per Alertmanager groupKey or PagerDuty incident).
    pub async fn open_incident_by_ref(
        &self,
        source: &str,
        source_ref: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE source = ? AND source_ref = ? AND status <> 'resolved' ORDER BY id DESC LIMIT 1"),
                vec![source.into(), source_ref.into()],
            ))
            .await?;
        row.as_ref().map(incident_from).transpose()
    }

    /// Incidents, newest first.
    pub async fn list_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY id DESC LIMIT ?"),
                vec![i64::from(limit).into()],
            ))
            .await?;
        rows.iter().map(incident_from).collect()
    }

    /// Sets an incident's status (open, acknowledged, resolved).
    pub async fn set_incident_status(
        &self,
        id: i64,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let r = self
            .exec(
                "UPDATE incidents SET status = ?, updated_at = ? WHERE id = ?",
                vec![status.into(), now.into(), id.into()],
            )
            .await?;
        Ok(r == 1)
    }

    /// Records where the incident's Slack thread lives.
    pub async fn set_incident_thread(
        &self,
        id: i64,
        channel: &str,
        thread_ts: &str,
    ) -> Result<bool, StoreError> {
        let r = self
            .exec(
                "UPDATE incidents SET channel = ?, thread_ts = ? WHERE id = ?",
                vec![channel.into(), thread_ts.into(), id.into()],
            )
            .await?;
        Ok(r == 1)
    }

    /// Stores a raw inbound alert unless one with `dedupe_key` exists; `true` when stored.
    pub async fn record_alert(
        &self,
        dedupe_key: &str,
        source: &str,
        payload: serde_json::Value,
        incident_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let r = self.exec(
                "INSERT INTO alerts (dedupe_key, incident_id, source, payload, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                vec![dedupe_key.into(), incident_id.into(), source.into(), payload.into(), now.into()],
            ).await?;
        Ok(r == 1)
    }

    /// Adds or updates a service in the catalogue.
    pub async fn upsert_service(
        &self,
        name: &str,
        kind: Option<&str>,
        team: Option<&str>,
        depends_on: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let deps = serde_json::json!(depends_on);
        self.exec(
                "INSERT INTO services (name, kind, team, depends_on, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, team = excluded.team, depends_on = excluded.depends_on, updated_at = excluded.updated_at",
                vec![name.into(), kind.map(str::to_owned).into(), team.map(str::to_owned).into(), deps.into(), now.into()],
            ).await?;
        Ok(())
    }

    /// Service names in the catalogue, sorted.
    pub async fn service_names(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt("SELECT name FROM services ORDER BY name", vec![]))
            .await?;
        rows.iter().map(|r| Ok(r.try_get("", "name")?)).collect()
    }

    /// Adds a new knowledge record (version 1) and returns it.
    pub async fn add_knowledge(
        &self,
        draft: &KnowledgeRecord,
        now: DateTime<Utc>,
    ) -> Result<KnowledgeRecord, StoreError> {
        // A record's id is the row id of its first version, so ids never collide.
        let row = self
            .db()
            .query_one(self.stmt(
                "INSERT INTO knowledge_records (record_id, version, kind, statement, fields, author, incident_id, origin, scope, status, created_at) VALUES (0, 1, ?, ?, ?, ?, ?, ?, ?, 'active', ?) RETURNING id",
                vec![draft.kind.clone().into(), draft.statement.clone().into(), draft.fields.clone().into(), draft.author.clone().into(), draft.incident_id.into(), draft.origin.clone().into(), draft.scope.clone().into(), now.into()],
            ))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        let id: i64 = row.try_get("", "id")?;
        self.exec(
            "UPDATE knowledge_records SET record_id = ? WHERE id = ?",
            vec![id.into(), id.into()],
        )
        .await?;
        self.knowledge(id).await?.ok_or_else(|| {
            StoreError::Database(sea_orm::DbErr::RecordNotFound(format!(
                "knowledge record {id}"
            )))
        })
    }

    /// The latest version of a record.
    pub async fn knowledge(&self, record_id: i64) -> Result<Option<KnowledgeRecord>, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(&format!("SELECT {RECORD_COLUMNS} FROM knowledge_records WHERE record_id = ? ORDER BY version DESC LIMIT 1"), vec![record_id.into()]))
            .await?;
        row.as_ref().map(record_from).transpose()
    }

    /// Every version of a record, oldest first.
    pub async fn knowledge_history(
        &self,
        record_id: i64,
    ) -> Result<Vec<KnowledgeRecord>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(&format!("SELECT {RECORD_COLUMNS} FROM knowledge_records WHERE record_id = ? ORDER BY version"), vec![record_id.into()]))
            .await?;
        rows.iter().map(record_from).collect()
    }

    /// Writes a new version of a record with `statement` and `status` changed (an edit or a
    /// retraction); earlier versions stay. `None` when the record does not exist.
    pub async fn revise_knowledge(
        &self,
        record_id: i64,
        statement: Option<&str>,
        status: Option<&str>,
        author: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KnowledgeRecord>, StoreError> {
        let Some(current) = self.knowledge(record_id).await? else {
            return Ok(None);
        };
        self.exec(
                "INSERT INTO knowledge_records (record_id, version, kind, statement, fields, author, incident_id, origin, scope, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    record_id.into(),
                    (current.version + 1).into(),
                    current.kind.into(),
                    statement.map_or(current.statement, str::to_owned).into(),
                    current.fields.into(),
                    author.into(),
                    current.incident_id.into(),
                    current.origin.into(),
                    current.scope.into(),
                    status.map_or(current.status, str::to_owned).into(),
                    now.into(),
                ],
            ).await?;
        self.knowledge(record_id).await
    }

    /// Imports a runbook: the same path, or else the same title, updates it in place.
    pub async fn upsert_runbook(
        &self,
        title: &str,
        path: &str,
        services: &[String],
        alerts: &[String],
        tags: &[String],
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let existing = self
            .db()
            .query_one(self.stmt("SELECT id FROM runbooks WHERE path = ? OR title = ? ORDER BY CASE WHEN path = ? THEN 0 ELSE 1 END LIMIT 1", vec![path.into(), title.into(), path.into()]))
            .await?;
        let values = |extra: Vec<sea_orm::Value>| {
            let mut v: Vec<sea_orm::Value> = vec![
                title.into(),
                path.into(),
                serde_json::json!(services).into(),
                serde_json::json!(alerts).into(),
                serde_json::json!(tags).into(),
                body.into(),
                now.into(),
            ];
            v.extend(extra);
            v
        };
        if let Some(row) = existing {
            let id: i64 = row.try_get("", "id")?;
            self.exec("UPDATE runbooks SET title = ?, path = ?, services = ?, alerts = ?, tags = ?, body = ?, updated_at = ? WHERE id = ?", values(vec![id.into()])).await?;
            return Ok(id);
        }
        let row = self
            .db()
            .query_one(self.stmt("INSERT INTO runbooks (title, path, services, alerts, tags, body, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id", values(vec![])))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        Ok(row.try_get("", "id")?)
    }

    /// Every runbook, by title.
    pub async fn runbooks(&self) -> Result<Vec<Runbook>, StoreError> {
        let rows = self.db().query_all(self.stmt("SELECT id, title, path, services, alerts, tags, body, updated_at FROM runbooks ORDER BY title", vec![])).await?;
        rows.iter()
            .map(|r| {
                Ok(Runbook {
                    id: r.try_get("", "id")?,
                    title: r.try_get("", "title")?,
                    path: r.try_get("", "path")?,
                    services: strings(r.try_get("", "services")?),
                    alerts: strings(r.try_get("", "alerts")?),
                    tags: strings(r.try_get("", "tags")?),
                    body: r.try_get("", "body")?,
                    updated_at: r.try_get("", "updated_at")?,
                })
            })
            .collect()
    }
}

/// A hypothesis as stored: rank within its incident, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHypothesis {
    pub rank: i32,
    pub service: String,
    pub kind: Option<String>,
    pub confidence: f64,
    /// open, confirmed or rejected.
    pub status: String,
    pub evidence: Vec<StoredEvidence>,
}

/// One evidence item behind a stored hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvidence {
    pub kind: String,
    pub text: String,
    pub source: Option<String>,
    pub link: Option<String>,
    pub incident_ref: Option<i64>,
    pub record_ref: Option<i64>,
}

impl Store {
    /// Stores one finished investigation of `incident_id` with its ranked hypotheses;
    /// returns the investigation id. All or nothing.
    pub async fn save_investigation(
        &self,
        incident_id: i64,
        verdict: &str,
        hypotheses: &[StoredHypothesis],
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        use sea_orm::TransactionTrait;
        let txn = self.db().begin().await?;
        let row = txn
            .query_one(self.stmt(
                "INSERT INTO investigations (incident_id, status, verdict, started_at, finished_at) VALUES (?, 'finished', ?, ?, ?) RETURNING id",
                vec![incident_id.into(), verdict.into(), started.into(), finished.into()],
            ))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        let investigation: i64 = row.try_get("", "id")?;
        for h in hypotheses {
            let row = txn
                .query_one(self.stmt(
                    "INSERT INTO hypotheses (investigation_id, incident_id, rank, service, kind, confidence, status) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    vec![investigation.into(), incident_id.into(), h.rank.into(), h.service.clone().into(), h.kind.clone().into(), h.confidence.into(), h.status.clone().into()],
                ))
                .await?
                .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
            let hypothesis: i64 = row.try_get("", "id")?;
            for e in &h.evidence {
                txn.execute(self.stmt(
                    "INSERT INTO evidence (hypothesis_id, kind, text, source, link, incident_ref, record_ref) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    vec![hypothesis.into(), e.kind.clone().into(), e.text.clone().into(), e.source.clone().into(), e.link.clone().into(), e.incident_ref.into(), e.record_ref.into()],
                ))
                .await?;
            }
        }
        txn.commit().await?;
        Ok(investigation)
    }

    /// The hypotheses of an incident's latest investigation, by rank.
    pub async fn hypotheses(&self, incident_id: i64) -> Result<Vec<StoredHypothesis>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(
                "SELECT id, rank, service, kind, confidence, status FROM hypotheses WHERE investigation_id = (SELECT MAX(id) FROM investigations WHERE incident_id = ?) ORDER BY rank",
                vec![incident_id.into()],
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("", "id")?;
            let evidence = self
                .db()
                .query_all(self.stmt("SELECT kind, text, source, link, incident_ref, record_ref FROM evidence WHERE hypothesis_id = ? ORDER BY id", vec![id.into()]))
                .await?
                .iter()
                .map(|e| {
                    Ok(StoredEvidence {
                        kind: e.try_get("", "kind")?,
                        text: e.try_get("", "text")?,
                        source: e.try_get("", "source")?,
                        link: e.try_get("", "link")?,
                        incident_ref: e.try_get("", "incident_ref")?,
                        record_ref: e.try_get("", "record_ref")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(StoredHypothesis {
                rank: r.try_get("", "rank")?,
                service: r.try_get("", "service")?,
                kind: r.try_get("", "kind")?,
                confidence: r.try_get("", "confidence")?,
                status: r.try_get("", "status")?,
                evidence,
            });
        }
        Ok(out)
    }

    /// Records an engineer's decision on the hypothesis at `rank` of an incident's latest
    /// investigation (confirmed or rejected), with who decided and when.
    pub async fn decide_hypothesis(
        &self,
        incident_id: i64,
        rank: i32,
        status: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let r = self.exec(
                "UPDATE hypotheses SET status = ?, decided_by = ?, decided_at = ? WHERE rank = ? AND investigation_id = (SELECT MAX(id) FROM investigations WHERE incident_id = ?)",
                vec![status.into(), by.into(), now.into(), rank.into(), incident_id.into()],
            ).await?;
        Ok(r == 1)
    }
}
