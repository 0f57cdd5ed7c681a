//! Creates `knowledge_records`: institutional knowledge, one row per version; never deleted.

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
                    .table(Alias::new("knowledge_records"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(
                        ColumnDef::new(Alias::new("record_id"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("version")).integer().not_null())
                    .col(ColumnDef::new(Alias::new("kind")).string().not_null())
                    .col(ColumnDef::new(Alias::new("statement")).text().not_null())
                    .col(ColumnDef::new(Alias::new("fields")).json().not_null())
                    .col(ColumnDef::new(Alias::new("author")).string().not_null())
                    .col(ColumnDef::new(Alias::new("channel")).string().null())
                    .col(ColumnDef::new(Alias::new("thread_ts")).string().null())
                    .col(
                        ColumnDef::new(Alias::new("incident_id"))
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Alias::new("origin")).string().not_null())
                    .col(ColumnDef::new(Alias::new("scope")).string().not_null())
                    .col(ColumnDef::new(Alias::new("status")).string().not_null())
                    .col(
                        ColumnDef::new(Alias::new("review_at"))
                            .timestamp_with_time_zone()
                            .null(),
                    )
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
                    .name("ux_knowledge_records_version")
                    .table(Alias::new("knowledge_records"))
                    .col(Alias::new("record_id"))
                    .col(Alias::new("version"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("knowledge_records"))
                    .to_owned(),
            )
            .await
    }
}
