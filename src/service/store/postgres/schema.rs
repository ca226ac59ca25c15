//! The PostgreSQL store's schema, brought up to date at every open: the
//! files of `postgres/migrations/`, in order, each applied once. Replicas
//! starting together take turns (an advisory lock held by the transaction
//! that migrates), and the version is a row of `qtjudge_schema`.

use tokio_postgres::Client;

use super::super::migration::Migration;
use super::super::{Result, StoreError};

/// Every version of the schema, oldest first; version `n` is the `n`th.
const MIGRATIONS: &[Migration] = &[
    Migration::new(1, "jobs", include_str!("migrations/0001_jobs.sql")),
    Migration::new(2, "samples", include_str!("migrations/0002_samples.sql")),
    Migration::new(3, "replicas", include_str!("migrations/0003_replicas.sql")),
];

fn latest() -> u32 {
    super::super::migration::latest(MIGRATIONS)
}

/// Applies the migrations the schema lacks, all in one transaction.
pub(super) async fn run(client: &mut Client, location: &str) -> Result<()> {
    let open_error = |source: tokio_postgres::Error| StoreError::Open {
        location: location.to_string(),
        source: Box::new(source),
    };
    let tx = client.transaction().await.map_err(open_error)?;
    // One replica migrates; the others wait here, then find it done.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':qtjudge-migrate'))",
        &[],
    )
    .await
    .map_err(open_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS qtjudge_schema (version INTEGER NOT NULL)")
        .await
        .map_err(open_error)?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM qtjudge_schema", &[])
        .await
        .map_err(open_error)?
        .map(|row| row.get("version"));
    let current = found.unwrap_or(0);
    if i64::from(current) > i64::from(latest()) {
        return Err(StoreError::TooNew {
            location: location.to_string(),
            found: i64::from(current),
            known: latest(),
        });
    }
    // The version column is an INTEGER, `i32` on the wire.
    let current = current.max(0) as u32;
    let newest = latest() as i32;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| StoreError::Migrate {
                location: location.to_string(),
                version: m.version,
                name: m.name,
                source: Box::new(source),
            })?;
        tracing::info!(
            store = location,
            version = m.version,
            name = m.name,
            "job store migrated"
        );
    }
    if found.is_none() {
        tx.execute(
            "INSERT INTO qtjudge_schema (version) VALUES ($1)",
            &[&newest],
        )
        .await
        .map_err(open_error)?;
    } else if current < latest() {
        tx.execute("UPDATE qtjudge_schema SET version = $1", &[&newest])
            .await
            .map_err(open_error)?;
    }
    tx.commit().await.map_err(open_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_numbered_in_order_and_name_their_files() {
        crate::service::store::migration::assert_listed_as_their_files(
            "src/service/store/postgres/migrations",
            MIGRATIONS,
        );
    }
}
