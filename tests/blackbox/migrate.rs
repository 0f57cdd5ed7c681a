//! `cairn migrate` on a fresh SQLite file and, when configured, on PostgreSQL.

use crate::{cairn, run, stderr, stdout};

#[test]
fn migrate_fresh_sqlite_file_then_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path()).arg("migrate"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        dir.path().join("cairn.db").is_file(),
        "the default database is ./cairn.db"
    );
    let first = stdout(&out);
    assert!(first.contains("applied"), "{first}");

    let out = run(cairn(dir.path()).arg("migrate"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
}

#[test]
fn migrate_unreachable_database_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(cairn(dir.path())
        .arg("migrate")
        .env("CAIRN_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("database"), "{}", stderr(&out));
}
