//! Creates `runbooks`: imported runbooks.

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
                    .table(Alias::new("runbooks"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(ColumnDef::new(Alias::new("title")).text().not_null())
                    .col(ColumnDef::new(Alias::new("path")).text().not_null())
                    .col(ColumnDef::new(Alias::new("services")).json().not_null())
                    .col(ColumnDef::new(Alias::new("alerts")).json().not_null())
                    .col(ColumnDef::new(Alias::new("tags")).json().not_null())
                    .col(ColumnDef::new(Alias::new("body")).text().not_null())
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
                    .name("ux_runbooks_path")
                    .table(Alias::new("runbooks"))
                    .col(Alias::new("path"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("runbooks")).to_owned())
            .await
    }
}
