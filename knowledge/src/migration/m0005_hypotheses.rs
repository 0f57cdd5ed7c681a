//! Creates `hypotheses`: ranked suspected causes.

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
                    .table(Alias::new("hypotheses"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(
                        ColumnDef::new(Alias::new("investigation_id"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("incident_id"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("rank")).integer().not_null())
                    .col(ColumnDef::new(Alias::new("service")).string().not_null())
                    .col(ColumnDef::new(Alias::new("kind")).string().null())
                    .col(ColumnDef::new(Alias::new("confidence")).double().not_null())
                    .col(ColumnDef::new(Alias::new("status")).string().not_null())
                    .col(ColumnDef::new(Alias::new("decided_by")).string().null())
                    .col(
                        ColumnDef::new(Alias::new("decided_at"))
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_hypotheses_incident_rank")
                    .table(Alias::new("hypotheses"))
                    .col(Alias::new("incident_id"))
                    .col(Alias::new("rank"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("hypotheses")).to_owned())
            .await
    }
}
