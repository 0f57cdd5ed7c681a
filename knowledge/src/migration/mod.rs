//! Schema migrations, one module per migration, backend-neutral (SQLite and PostgreSQL).

use sea_orm_migration::prelude::*;

mod m0001_services;
mod m0002_incidents;
mod m0003_alerts;
mod m0004_investigations;
mod m0005_hypotheses;
mod m0006_evidence;
mod m0007_knowledge_records;
mod m0008_runbooks;
mod m0009_processed_events;
mod m0010_jobs;
mod m0011_outbox;
mod m0012_investigation_context;
mod m0013_job_event_key;
mod m0014_lookup_indexes;

/// The surrogate key every table starts with: a 64-bit auto-incrementing `id`.
fn id_column() -> ColumnDef {
    ColumnDef::new(Alias::new("id"))
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

/// Every migration in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_services::Migration),
            Box::new(m0002_incidents::Migration),
            Box::new(m0003_alerts::Migration),
            Box::new(m0004_investigations::Migration),
            Box::new(m0005_hypotheses::Migration),
            Box::new(m0006_evidence::Migration),
            Box::new(m0007_knowledge_records::Migration),
            Box::new(m0008_runbooks::Migration),
            Box::new(m0009_processed_events::Migration),
            Box::new(m0010_jobs::Migration),
            Box::new(m0011_outbox::Migration),
            Box::new(m0012_investigation_context::Migration),
            Box::new(m0013_job_event_key::Migration),
            Box::new(m0014_lookup_indexes::Migration),
        ]
    }
}
