//! Indexes for the lookups made on every thread reply and every decision: an incident by
//! its thread, an investigation's hypotheses, and a service's past hypotheses. Without them
//! each of these read the whole table, which grows with every incident.

use sea_orm_migration::prelude::*;

/// This migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index, table, columns).
const INDEXES: [(&str, &str, &[&str]); 3] = [
    (
        "ix_incidents_thread",
        "incidents",
        &["channel", "thread_ts"],
    ),
    (
        "ix_hypotheses_investigation",
        "hypotheses",
        &["investigation_id", "rank"],
    ),
    ("ix_hypotheses_service", "hypotheses", &["service"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(Alias::new(table)).if_not_exists();
            for column in columns {
                index.col(Alias::new(*column));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
