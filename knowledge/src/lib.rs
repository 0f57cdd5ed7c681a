//! Cairn's storage: the database (SQLite file or PostgreSQL), its migrations, and the
//! repository API the other crates use. sea-orm types stay inside this crate.

mod fingerprint;
pub mod migration;
mod queue;
mod records;
mod store;

pub use fingerprint::Fingerprint;
pub use queue::{backoff, Job, JobState, OutboxMessage, DEFAULT_MAX_ATTEMPTS};

pub use records::{
    Incident, KnowledgeRecord, NewIncident, Runbook, StoredEvidence, StoredHypothesis,
};
pub use store::{Backend, MigrationReport, Store, StoreError};
