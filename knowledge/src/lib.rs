//! Cairn's storage: the database (SQLite file or PostgreSQL), its migrations, and the
//! repository API the other crates use. sea-orm types stay inside this crate.

pub mod migration;
mod store;

pub use store::{Backend, MigrationReport, Store, StoreError};
