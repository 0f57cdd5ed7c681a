//! Creates `incidents`: incidents opened by pages and questions.

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
                    .table(Alias::new("incidents"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(ColumnDef::new(Alias::new("title")).text().not_null())
                    .col(ColumnDef::new(Alias::new("source")).string().not_null())
                    .col(ColumnDef::new(Alias::new("source_ref")).string().not_null())
                    .col(ColumnDef::new(Alias::new("channel")).string().null())
                    .col(ColumnDef::new(Alias::new("thread_ts")).string().null())
                    .col(ColumnDef::new(Alias::new("status")).string().not_null())
                    .col(
                        ColumnDef::new(Alias::new("created_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("updated_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_incidents_source_ref")
                    .table(Alias::new("incidents"))
                    .col(Alias::new("source"))
                    .col(Alias::new("source_ref"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("incidents")).to_owned())
            .await
    }
}
