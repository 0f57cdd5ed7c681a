//! Adds to `jobs` the key of the inbound event a job was made from, unique, so accepting an
//! event (dedupe, store, queue) is one statement: the acknowledgement path holds the
//! database for one round trip.

use sea_orm_migration::prelude::*;

/// This migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("jobs"))
                    .add_column(ColumnDef::new(Alias::new("event_key")).string().null())
                    .to_owned(),
            )
            .await?;
        // Jobs queued by Cairn itself have no key; NULLs never conflict.
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_event_key")
                    .table(Alias::new("jobs"))
                    .col(Alias::new("event_key"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_jobs_event_key")
                    .table(Alias::new("jobs"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("jobs"))
                    .drop_column(Alias::new("event_key"))
                    .to_owned(),
            )
            .await
    }
}
