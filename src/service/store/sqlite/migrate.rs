//! The SQLite store's schema, brought up to date at every open: the
//! migration files of `store/migrations/`, in order, each applied once in
//! its own transaction with the version it brings (`PRAGMA user_version`).
//! A store made before versioning (version 0 with tables) is given the
//! version its tables show, once, and then migrated like any other.

use rusqlite::{params, Connection};

use super::super::migration::Migration;
use super::super::{Result, StoreError};

/// Every version of the schema, oldest first; version `n` is the `n`th.
const MIGRATIONS: &[Migration] = &[
    Migration::new(1, "jobs", include_str!("../migrations/0001_jobs.sql")),
    Migration::new(
        2,
        "callbacks",
        include_str!("../migrations/0002_callbacks.sql"),
    ),
    Migration::new(3, "bundles", include_str!("../migrations/0003_bundles.sql")),
    Migration::new(
        4,
        "task choices",
        include_str!("../migrations/0004_task_choices.sql"),
    ),
    Migration::new(5, "uploads", include_str!("../migrations/0005_uploads.sql")),
    Migration::new(
        6,
        "no callback trigger",
        include_str!("../migrations/0006_no_callback_trigger.sql"),
    ),
    Migration::new(7, "leases", include_str!("../migrations/0007_leases.sql")),
    Migration::new(8, "samples", include_str!("../migrations/0008_samples.sql")),
];

/// The newest schema version this build knows.
pub(super) fn latest() -> u32 {
    super::super::migration::latest(MIGRATIONS)
}

/// Applies the migrations the store lacks.
pub(super) fn run(conn: &mut Connection, location: &str) -> Result<()> {
    let open_error = |source: rusqlite::Error| StoreError::Open {
        location: location.to_string(),
        source: Box::new(source),
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_error)?;
    if found > i64::from(latest()) {
        // Read by this version, its newer columns would be lost or misread.
        return Err(StoreError::TooNew {
            location: location.to_string(),
            found,
            known: latest(),
        });
    }
    let mut current = found as u32;
    if current == 0 {
        current = unversioned(conn).map_err(open_error)?;
        if current > 0 {
            tracing::info!(
                path = location,
                version = current,
                "a store made before schema versions: taken as this version"
            );
        }
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let migrate_error = |source: rusqlite::Error| StoreError::Migrate {
            location: location.to_string(),
            version: m.version,
            name: m.name,
            source: Box::new(source),
        };
        let tx = conn.transaction().map_err(migrate_error)?;
        tx.execute_batch(m.sql).map_err(migrate_error)?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(migrate_error)?;
        tx.commit().map_err(migrate_error)?;
        if current > 0 {
            tracing::info!(
                path = location,
                version = m.version,
                name = m.name,
                "job store migrated"
            );
        }
    }
    Ok(())
}

/// The version a store made before versioning is at (0: an empty file).
/// Those versions added their tables and columns at every open, each
/// everything it knew, so a store holds a prefix of the migrations: the
/// first missing mark ends it.
fn unversioned(conn: &Connection) -> rusqlite::Result<u32> {
    let has_table = |table: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            params![table],
            |r| r.get(0),
        )
    };
    let has_job_column = |column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
            params![column],
            |r| r.get(0),
        )
    };
    let marks = [
        has_table("jobs")?,
        has_table("callbacks")?,
        has_job_column("bundle")?,
        has_job_column("task_choice")?,
        has_job_column("upload")?,
    ];
    let version = marks.iter().take_while(|&&present| present).count() as u32;
    if version > 0 {
        conn.pragma_update(None, "user_version", version)?;
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_numbered_in_order_and_name_their_files() {
        crate::service::store::migration::assert_listed_as_their_files(
            "src/service/store/migrations",
            MIGRATIONS,
        );
    }
}
