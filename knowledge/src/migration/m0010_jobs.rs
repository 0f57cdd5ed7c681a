//! Creates `jobs`: the durable work queue: leases, attempts, dead letter.

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
                    .table(Alias::new("jobs"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(ColumnDef::new(Alias::new("kind")).string().not_null())
                    .col(ColumnDef::new(Alias::new("payload")).json().not_null())
                    .col(ColumnDef::new(Alias::new("state")).string().not_null())
                    .col(
                        ColumnDef::new(Alias::new("run_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("attempts")).integer().not_null())
                    .col(
                        ColumnDef::new(Alias::new("max_attempts"))
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("lease_owner")).string().null())
                    .col(
                        ColumnDef::new(Alias::new("lease_until"))
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Alias::new("last_error")).text().null())
                    .col(
                        ColumnDef::new(Alias::new("created_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_jobs_state_run_at")
                    .table(Alias::new("jobs"))
                    .col(Alias::new("state"))
                    .col(Alias::new("run_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("jobs")).to_owned())
            .await
    }
}
