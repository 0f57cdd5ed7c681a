//! Creates `outbox`: messages to send, each once.

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
                    .table(Alias::new("outbox"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(
                        ColumnDef::new(Alias::new("idempotency_key"))
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("channel")).string().not_null())
                    .col(ColumnDef::new(Alias::new("payload")).json().not_null())
                    .col(ColumnDef::new(Alias::new("state")).string().not_null())
                    .col(ColumnDef::new(Alias::new("attempts")).integer().not_null())
                    .col(
                        ColumnDef::new(Alias::new("next_attempt_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("sent_ts")).string().null())
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
                    .name("ux_outbox_key")
                    .table(Alias::new("outbox"))
                    .col(Alias::new("idempotency_key"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_state")
                    .table(Alias::new("outbox"))
                    .col(Alias::new("state"))
                    .col(Alias::new("next_attempt_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("outbox")).to_owned())
            .await
    }
}
