//! Cairn's storage: the database (SQLite file or PostgreSQL), its migrations, and the
//! repository API the other crates use. sea-orm types stay inside this crate.

mod fingerprint;
pub mod migration;
mod queue;
mod records;
mod runbooks;
mod search;
mod store;

pub use fingerprint::Fingerprint;
pub use queue::{
    backoff, Job, JobState, OutboxMessage, OutboxRef, DEFAULT_MAX_ATTEMPTS, MAX_OUTBOX_ATTEMPTS,
};

pub use records::{
    Forget, Incident, InvestigationContext, KnowledgeRecord, NewIncident, Precedent, Runbook,
    ServiceEntry, ServiceIncident, StoredEvidence, StoredHypothesis,
};
pub use runbooks::{parse_runbook, ImportError, ImportReport, RunbookFile};
pub use search::{DocType, Hit, SearchError, SearchIndex};
pub use store::{Backend, MigrationReport, Store, StoreError};
