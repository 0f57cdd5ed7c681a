//! Repositories for incidents, alerts, the service catalogue, knowledge records and runbooks.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};

use crate::fingerprint::Fingerprint;
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
    /// Slack user id of who wrote the record (its first version).
    pub author: String,
    /// Slack user id of who wrote this version (the author, or whoever edited or retracted).
    pub revised_by: String,
    pub incident_id: Option<i64>,
    /// How it was captured: slack_button, thread_reply, slash_learn, pagerduty…
    pub origin: String,
    /// The Slack channel and thread it was captured in, when it came from Slack.
    pub channel: Option<String>,
    pub thread_ts: Option<String>,
    /// service, team or global.
    pub scope: String,
    /// active, retracted or expired.
    pub status: String,
    /// When someone should check it still holds.
    pub review_at: Option<DateTime<Utc>>,
    /// When this version was written.
    pub created_at: DateTime<Utc>,
}

impl KnowledgeRecord {
    /// A draft for [`Store::add_knowledge`]: version 1, active, no channel or review date.
    pub fn draft(
        kind: &str,
        statement: impl Into<String>,
        fields: serde_json::Value,
        author: impl Into<String>,
        origin: &str,
    ) -> Self {
        Self {
            record_id: 0,
            version: 1,
            kind: kind.to_owned(),
            statement: statement.into(),
            fields,
            revised_by: String::new(),
            author: author.into(),
            incident_id: None,
            origin: origin.to_owned(),
            channel: None,
            thread_ts: None,
            scope: "global".to_owned(),
            status: "active".to_owned(),
            review_at: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Services named in the structured fields (`services`).
    pub fn services(&self) -> Vec<String> {
        strings(self.fields.get("services").cloned().unwrap_or_default())
    }

    /// Services the record says were not the cause (`rejected`).
    pub fn rejected(&self) -> Vec<String> {
        strings(self.fields.get("rejected").cloned().unwrap_or_default())
    }

    /// The fault kind named in the structured fields (`fault_kind`).
    pub fn fault_kind(&self) -> Option<&str> {
        self.fields.get("fault_kind").and_then(|v| v.as_str())
    }
}

/// What `/cairn forget` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Forget {
    /// The record is retracted now (a new version; the earlier ones stay).
    Retracted(KnowledgeRecord),
    /// It was retracted already; nothing changed.
    AlreadyRetracted(KnowledgeRecord),
    /// Only the author or an admin may retract it; nothing changed.
    Refused {
        author: String,
    },
    NotFound,
}

/// A knowledge record about a past incident, with what that incident looked like: the
/// material of precedent.
#[derive(Debug, Clone, PartialEq)]
pub struct Precedent {
    pub record: KnowledgeRecord,
    pub incident_title: String,
    pub incident_created_at: DateTime<Utc>,
    /// The symptoms of the incident's latest investigation, when it recorded them.
    pub fingerprint: Option<Fingerprint>,
}

/// What an investigation looked at and found, beyond its hypotheses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvestigationContext {
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub fingerprint: Option<Fingerprint>,
}

/// A service in the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    pub name: String,
    pub kind: Option<String>,
    pub team: Option<String>,
    pub depends_on: Vec<String>,
}

/// A past incident in which a service was the leading or confirmed suspect.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceIncident {
    pub incident: Incident,
    pub rank: i32,
    pub kind: Option<String>,
    /// open, confirmed or rejected.
    pub status: String,
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
        revised_by: r.try_get("", "revised_by")?,
        incident_id: r.try_get("", "incident_id")?,
        origin: r.try_get("", "origin")?,
        channel: r.try_get("", "channel")?,
        thread_ts: r.try_get("", "thread_ts")?,
        scope: r.try_get("", "scope")?,
        status: r.try_get("", "status")?,
        review_at: r.try_get("", "review_at")?,
        created_at: r.try_get("", "created_at")?,
    })
}

fn strings(v: serde_json::Value) -> Vec<String> {
    serde_json::from_value(v).unwrap_or_default()
}

const INCIDENT_COLUMNS: &str =
    "id, title, source, source_ref, channel, thread_ts, status, created_at";
/// `author` is who wrote the record (version 1); `revised_by` who wrote this version.
const RECORD_COLUMNS: &str = "record_id, version, kind, statement, fields, (SELECT f.author FROM knowledge_records f WHERE f.record_id = knowledge_records.record_id AND f.version = 1) AS author, author AS revised_by, incident_id, origin, channel, thread_ts, scope, status, review_at, created_at";
/// The latest version of each record only.
const LATEST: &str = "version = (SELECT MAX(v.version) FROM knowledge_records v WHERE v.record_id = knowledge_records.record_id)";
const INSERT_RECORD: &str = "INSERT INTO knowledge_records (record_id, version, kind, statement, fields, author, incident_id, origin, channel, thread_ts, scope, status, review_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

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

    /// The newest incident from `source` with `source_ref`, whatever its status (a note may
    /// arrive after the page resolved).
    pub async fn incident_by_ref(
        &self,
        source: &str,
        source_ref: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.newest_incident(
            "source = ? AND source_ref = ?",
            vec![source.into(), source_ref.into()],
        )
        .await
    }

    /// The incident whose Slack thread is `thread_ts` in `channel`, if any.
    pub async fn incident_by_thread(
        &self,
        channel: &str,
        thread_ts: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.newest_incident(
            "channel = ? AND thread_ts = ?",
            vec![channel.into(), thread_ts.into()],
        )
        .await
    }

    /// The newest incident from `source` with `source_ref` that is not resolved (one open
    /// incident per Alertmanager groupKey or PagerDuty incident).
    pub async fn open_incident_by_ref(
        &self,
        source: &str,
        source_ref: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.newest_incident(
            "source = ? AND source_ref = ? AND status <> 'resolved'",
            vec![source.into(), source_ref.into()],
        )
        .await
    }

    /// The newest incident matching `condition` (SQL over the incidents' columns).
    async fn newest_incident(
        &self,
        condition: &str,
        values: Vec<sea_orm::Value>,
    ) -> Result<Option<Incident>, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {condition} ORDER BY id DESC LIMIT 1"),
                values,
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

    /// Adds or updates one service in the catalogue.
    pub async fn upsert_service(
        &self,
        name: &str,
        kind: Option<&str>,
        team: Option<&str>,
        depends_on: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let entry = ServiceEntry {
            name: name.to_owned(),
            kind: kind.map(str::to_owned),
            team: team.map(str::to_owned),
            depends_on: depends_on.to_vec(),
        };
        self.upsert_services(std::slice::from_ref(&entry), now)
            .await
    }

    /// Adds or updates `services` in the catalogue, a thousand to a statement (one write,
    /// not one per service: the catalogue is synced after every investigation). A name
    /// given twice keeps its last entry.
    pub async fn upsert_services(
        &self,
        services: &[ServiceEntry],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut last = std::collections::BTreeMap::new();
        for s in services {
            last.insert(s.name.as_str(), s);
        }
        let rows = last
            .into_values()
            .map(|s| {
                [
                    s.name.clone().into(),
                    s.kind.clone().into(),
                    s.team.clone().into(),
                    serde_json::json!(s.depends_on).into(),
                    now.into(),
                ]
            })
            .collect();
        self.insert_rows(
            "INSERT INTO services (name, kind, team, depends_on, updated_at)",
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, team = excluded.team, depends_on = excluded.depends_on, updated_at = excluded.updated_at",
            rows,
        )
        .await?;
        Ok(())
    }

    /// Every service in the catalogue, by name.
    pub async fn services(&self) -> Result<Vec<ServiceEntry>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(
                "SELECT name, kind, team, depends_on FROM services ORDER BY name",
                vec![],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ServiceEntry {
                    name: r.try_get("", "name")?,
                    kind: r.try_get("", "kind")?,
                    team: r.try_get("", "team")?,
                    depends_on: strings(r.try_get("", "depends_on")?),
                })
            })
            .collect()
    }

    /// Service names in the catalogue, sorted.
    pub async fn service_names(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt("SELECT name FROM services ORDER BY name", vec![]))
            .await?;
        rows.iter().map(|r| Ok(r.try_get("", "name")?)).collect()
    }

    /// Adds a new knowledge record (version 1, active) and returns it.
    pub async fn add_knowledge(
        &self,
        draft: &KnowledgeRecord,
        now: DateTime<Utc>,
    ) -> Result<KnowledgeRecord, StoreError> {
        use sea_orm::TransactionTrait;
        // A record's id is the row id of its first version, so ids never collide.
        let txn = self.db().begin().await?;
        let row = txn
            .query_one(self.stmt(
                &format!("{INSERT_RECORD} RETURNING id"),
                vec![
                    0i64.into(),
                    1i32.into(),
                    draft.kind.clone().into(),
                    draft.statement.clone().into(),
                    draft.fields.clone().into(),
                    draft.author.clone().into(),
                    draft.incident_id.into(),
                    draft.origin.clone().into(),
                    draft.channel.clone().into(),
                    draft.thread_ts.clone().into(),
                    draft.scope.clone().into(),
                    "active".into(),
                    draft.review_at.into(),
                    now.into(),
                ],
            ))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        let id: i64 = row.try_get("", "id")?;
        txn.execute(self.stmt(
            "UPDATE knowledge_records SET record_id = ? WHERE id = ?",
            vec![id.into(), id.into()],
        ))
        .await?;
        txn.commit().await?;
        self.knowledge(id).await?.ok_or_else(|| {
            StoreError::Database(sea_orm::DbErr::RecordNotFound(format!(
                "knowledge record {id}"
            )))
        })
    }

    /// The latest version of every record, newest record first.
    pub async fn list_knowledge(&self, limit: u32) -> Result<Vec<KnowledgeRecord>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(
                &format!("SELECT {RECORD_COLUMNS} FROM knowledge_records WHERE {LATEST} ORDER BY record_id DESC LIMIT ?"),
                vec![i64::from(limit).into()],
            ))
            .await?;
        rows.iter().map(record_from).collect()
    }

    /// Retracts a record for its author or an admin; anyone else is refused and nothing
    /// changes. The retraction is a new version: nothing is ever deleted.
    pub async fn forget(
        &self,
        record_id: i64,
        by: &str,
        admins: &[String],
        now: DateTime<Utc>,
    ) -> Result<Forget, StoreError> {
        let Some(current) = self.knowledge(record_id).await? else {
            return Ok(Forget::NotFound);
        };
        // The author is whoever wrote version 1; later editors do not inherit the right.
        let author = current.author.clone();
        if by != author && !admins.iter().any(|a| a == by) {
            return Ok(Forget::Refused { author });
        }
        if current.status == "retracted" {
            return Ok(Forget::AlreadyRetracted(current));
        }
        match self
            .revise_knowledge(record_id, None, Some("retracted"), by, now)
            .await?
        {
            Some(record) => Ok(Forget::Retracted(record)),
            None => Ok(Forget::NotFound),
        }
    }

    /// Active records about past incidents (corrections, confirmations, root causes), each
    /// with its incident's title, date and symptom fingerprint.
    pub async fn precedents(&self) -> Result<Vec<Precedent>, StoreError> {
        let rows = self
            .db()
            .query_all(self.stmt(
                &format!("SELECT {RECORD_COLUMNS}, (SELECT title FROM incidents WHERE incidents.id = knowledge_records.incident_id) AS incident_title, (SELECT created_at FROM incidents WHERE incidents.id = knowledge_records.incident_id) AS incident_created_at, (SELECT fingerprint FROM investigations WHERE investigations.incident_id = knowledge_records.incident_id ORDER BY investigations.id DESC LIMIT 1) AS incident_fingerprint FROM knowledge_records WHERE {LATEST} AND status = 'active' AND incident_id IS NOT NULL AND kind IN ('correction', 'confirmation', 'root_cause') ORDER BY record_id"),
                vec![],
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let title: Option<String> = r.try_get("", "incident_title")?;
            let created: Option<DateTime<Utc>> = r.try_get("", "incident_created_at")?;
            let (Some(incident_title), Some(incident_created_at)) = (title, created) else {
                continue;
            };
            let fingerprint: Option<serde_json::Value> = r.try_get("", "incident_fingerprint")?;
            out.push(Precedent {
                record: record_from(r)?,
                incident_title,
                incident_created_at,
                fingerprint: fingerprint.and_then(|v| serde_json::from_value(v).ok()),
            });
        }
        Ok(out)
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
            INSERT_RECORD,
            vec![
                record_id.into(),
                (current.version + 1).into(),
                current.kind.into(),
                statement.map_or(current.statement, str::to_owned).into(),
                current.fields.into(),
                author.into(),
                current.incident_id.into(),
                current.origin.into(),
                current.channel.into(),
                current.thread_ts.into(),
                current.scope.into(),
                status.map_or(current.status, str::to_owned).into(),
                current.review_at.into(),
                now.into(),
            ],
        )
        .await?;
        self.knowledge(record_id).await
    }

    /// Imports a runbook: the same path, or else the same title, updates it in place.
    // Every argument is one runbook field; a struct would only restate them.
    #[allow(clippy::too_many_arguments)]
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
        context: &InvestigationContext,
    ) -> Result<i64, StoreError> {
        use sea_orm::TransactionTrait;
        let txn = self.db().begin().await?;
        let fingerprint = context
            .fingerprint
            .as_ref()
            .map(|f| serde_json::to_value(f).unwrap_or_default());
        let row = txn
            .query_one(self.stmt(
                "INSERT INTO investigations (incident_id, status, verdict, started_at, finished_at, window_start, window_end, fingerprint) VALUES (?, 'finished', ?, ?, ?, ?, ?, ?) RETURNING id",
                vec![incident_id.into(), verdict.into(), started.into(), finished.into(), context.window_start.into(), context.window_end.into(), fingerprint.into()],
            ))
            .await?
            .ok_or_else(|| StoreError::Database(sea_orm::DbErr::RecordNotInserted))?;
        let investigation: i64 = row.try_get("", "id")?;
        // Three statements whatever the number of hypotheses and evidence: the transaction
        // holds SQLite's one connection, which the acknowledgement of every inbound event
        // waits for.
        if !hypotheses.is_empty() {
            let mut values = Vec::with_capacity(hypotheses.len() * 7);
            for h in hypotheses {
                values.extend([
                    investigation.into(),
                    incident_id.into(),
                    h.rank.into(),
                    h.service.clone().into(),
                    h.kind.clone().into(),
                    h.confidence.into(),
                    h.status.clone().into(),
                ]);
            }
            let rows = txn
                .query_all(self.stmt(
                    &format!(
                        "INSERT INTO hypotheses (investigation_id, incident_id, rank, service, kind, confidence, status) VALUES {} RETURNING id, rank",
                        placeholders(hypotheses.len(), 7)
                    ),
                    values,
                ))
                .await?;
            let mut id_of_rank = std::collections::HashMap::new();
            for r in rows {
                let rank: i32 = r.try_get("", "rank")?;
                let id: i64 = r.try_get("", "id")?;
                id_of_rank.insert(rank, id);
            }
            let evidence: Vec<(i64, &StoredEvidence)> = hypotheses
                .iter()
                .filter_map(|h| id_of_rank.get(&h.rank).map(|id| (*id, h)))
                .flat_map(|(id, h)| h.evidence.iter().map(move |e| (id, e)))
                .collect();
            if !evidence.is_empty() {
                let mut values = Vec::with_capacity(evidence.len() * 7);
                for (hypothesis, e) in &evidence {
                    values.extend([
                        (*hypothesis).into(),
                        e.kind.clone().into(),
                        e.text.clone().into(),
                        e.source.clone().into(),
                        e.link.clone().into(),
                        e.incident_ref.into(),
                        e.record_ref.into(),
                    ]);
                }
                txn.execute(self.stmt(
                    &format!(
                        "INSERT INTO evidence (hypothesis_id, kind, text, source, link, incident_ref, record_ref) VALUES {}",
                        placeholders(evidence.len(), 7)
                    ),
                    values,
                ))
                .await?;
            }
        }
        txn.commit().await?;
        Ok(investigation)
    }

    /// The window and fingerprint of an incident's latest investigation.
    pub async fn investigation_context(
        &self,
        incident_id: i64,
    ) -> Result<Option<InvestigationContext>, StoreError> {
        let row = self
            .db()
            .query_one(self.stmt(
                "SELECT window_start, window_end, fingerprint FROM investigations WHERE incident_id = ? ORDER BY id DESC LIMIT 1",
                vec![incident_id.into()],
            ))
            .await?;
        let Some(r) = row else { return Ok(None) };
        let fingerprint: Option<serde_json::Value> = r.try_get("", "fingerprint")?;
        Ok(Some(InvestigationContext {
            window_start: r.try_get("", "window_start")?,
            window_end: r.try_get("", "window_end")?,
            fingerprint: fingerprint.and_then(|v| serde_json::from_value(v).ok()),
        }))
    }

    /// Past incidents whose latest investigation ranked `service` first or in which an
    /// engineer confirmed it, newest first.
    pub async fn incidents_for_service(
        &self,
        service: &str,
        limit: u32,
    ) -> Result<Vec<ServiceIncident>, StoreError> {
        let columns = INCIDENT_COLUMNS
            .split(", ")
            .map(|c| format!("i.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self
            .db()
            .query_all(self.stmt(
                &format!("SELECT {columns}, h.rank AS h_rank, h.kind AS h_kind, h.status AS h_status FROM hypotheses h JOIN incidents i ON i.id = h.incident_id WHERE h.service = ? AND h.investigation_id = (SELECT MAX(v.id) FROM investigations v WHERE v.incident_id = h.incident_id) AND (h.rank = 1 OR h.status = 'confirmed') ORDER BY i.id DESC LIMIT ?"),
                vec![service.into(), i64::from(limit).into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ServiceIncident {
                    incident: incident_from(r)?,
                    rank: r.try_get("", "h_rank")?,
                    kind: r.try_get("", "h_kind")?,
                    status: r.try_get("", "h_status")?,
                })
            })
            .collect()
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

/// `(?, …), (?, …)…`: `rows` groups of `columns` placeholders, for a multi-row insert.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait;

    /// SQLite's plan for `sql`, one step a line.
    async fn plan(store: &Store, sql: &str, values: Vec<sea_orm::Value>) -> String {
        let rows = store
            .db()
            .query_all(store.stmt(&format!("EXPLAIN QUERY PLAN {sql}"), values))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn lookups_made_per_reply_and_decision_read_an_index_not_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plan.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let by_thread = plan(
            &store,
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE channel = ? AND thread_ts = ? ORDER BY id DESC LIMIT 1"),
            vec!["C1".into(), "1.1".into()],
        )
        .await;
        assert!(
            by_thread.contains("USING INDEX ix_incidents_thread"),
            "{by_thread}"
        );
        let hypotheses = plan(
            &store,
            "SELECT id, rank FROM hypotheses WHERE investigation_id = (SELECT MAX(id) FROM investigations WHERE incident_id = ?) ORDER BY rank",
            vec![1i64.into()],
        )
        .await;
        assert!(!hypotheses.contains("SCAN hypotheses"), "{hypotheses}");
        let by_service = plan(
            &store,
            "SELECT h.rank FROM hypotheses h WHERE h.service = ?",
            vec!["checkout".into()],
        )
        .await;
        assert!(by_service.contains("ix_hypotheses_service"), "{by_service}");
    }
}
