//! The SQLite store's schema, brought up to date at every open: the
//! migration files of `store/migrations/`, in order, each applied once in
//! its own transaction with the version it brings (`PRAGMA user_version`).
//! A store made before versioning (version 0 with tables) is given the
//! version its tables show, once, and then migrated like any other.

use rusqlite::{params, Connection};

use super::super::{Result, StoreError};

struct Migration {
    version: u32,
    name: &'static str,
    sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $file)),
        }
    };
}

/// Every version of the schema, oldest first; version `n` is the `n`th.
const MIGRATIONS: &[Migration] = &[
    migration!(1, "jobs", "0001_jobs.sql"),
    migration!(2, "callbacks", "0002_callbacks.sql"),
    migration!(3, "bundles", "0003_bundles.sql"),
    migration!(4, "task choices", "0004_task_choices.sql"),
    migration!(5, "uploads", "0005_uploads.sql"),
    migration!(6, "no callback trigger", "0006_no_callback_trigger.sql"),
    migration!(7, "leases", "0007_leases.sql"),
    migration!(8, "samples", "0008_samples.sql"),
];

/// The newest schema version this build knows.
pub(super) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
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
        let listed: Vec<(u32, &str, &str)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name, m.sql))
            .collect();
        crate::service::store::conformance::assert_migrations_are_their_files(
            "src/service/store/migrations",
            &listed,
        );
    }
}
