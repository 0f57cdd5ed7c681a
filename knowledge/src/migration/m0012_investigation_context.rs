//! Adds to `investigations` the window looked at and the symptom fingerprint found, so a
//! past incident can be compared with a new one and exported as a bundle.

use sea_orm_migration::prelude::*;

/// This migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [&str; 3] = ["window_start", "window_end", "fingerprint"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for name in COLUMNS {
            let mut column = ColumnDef::new(Alias::new(name));
            if name == "fingerprint" {
                column.json().null();
            } else {
                column.timestamp_with_time_zone().null();
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("investigations"))
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("investigations"))
                        .drop_column(Alias::new(name))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
