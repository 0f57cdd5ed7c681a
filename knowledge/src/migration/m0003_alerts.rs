//! Creates `alerts`: raw inbound alerts and pages, deduplicated.

use sea_orm_migration::prelude::*;

/// This migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("alerts"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(ColumnDef::new(Alias::new("dedupe_key")).string().not_null())
                    .col(
                        ColumnDef::new(Alias::new("incident_id"))
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Alias::new("source")).string().not_null())
                    .col(ColumnDef::new(Alias::new("payload")).json().not_null())
                    .col(
                        ColumnDef::new(Alias::new("received_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_alerts_dedupe_key")
                    .table(Alias::new("alerts"))
                    .col(Alias::new("dedupe_key"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("alerts")).to_owned())
            .await
    }
}
