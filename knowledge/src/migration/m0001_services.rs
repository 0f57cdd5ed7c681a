//! Creates `services`: the service catalogue.

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
                    .table(Alias::new("services"))
                    .if_not_exists()
                    .col(super::id_column())
                    .col(ColumnDef::new(Alias::new("name")).string().not_null())
                    .col(ColumnDef::new(Alias::new("kind")).string().null())
                    .col(ColumnDef::new(Alias::new("team")).string().null())
                    .col(ColumnDef::new(Alias::new("depends_on")).json().not_null())
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
                    .name("ux_services_name")
                    .table(Alias::new("services"))
                    .col(Alias::new("name"))
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("services")).to_owned())
            .await
    }
}
