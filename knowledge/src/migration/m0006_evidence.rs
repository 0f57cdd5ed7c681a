//! Creates `evidence`: evidence backing a hypothesis.

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
                    .table(Alias::new("evidence"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(
                        ColumnDef::new(Alias::new("hypothesis_id"))
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("kind")).string().not_null())
                    .col(ColumnDef::new(Alias::new("text")).text().not_null())
                    .col(ColumnDef::new(Alias::new("source")).string().null())
                    .col(ColumnDef::new(Alias::new("link")).text().null())
                    .col(
                        ColumnDef::new(Alias::new("incident_ref"))
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("record_ref"))
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_evidence_hypothesis")
                    .table(Alias::new("evidence"))
                    .col(Alias::new("hypothesis_id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("evidence")).to_owned())
            .await
    }
}
