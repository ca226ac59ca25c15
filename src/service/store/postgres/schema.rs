//! The PostgreSQL store's schema, brought up to date at every open: the
//! files of `postgres/migrations/`, in order, each applied once. Replicas
//! starting together take turns (an advisory lock held by the transaction
//! that migrates), and the version is a row of `qtjudge_schema`.

use tokio_postgres::Client;

use super::super::{Result, StoreError};

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("migrations/", $file)),
        }
    };
}

/// Every version of the schema, oldest first; version `n` is the `n`th.
const MIGRATIONS: &[Migration] = &[
    migration!(1, "jobs", "0001_jobs.sql"),
    migration!(2, "samples", "0002_samples.sql"),
];

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
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
    if current > latest() {
        return Err(StoreError::TooNew {
            location: location.to_string(),
            found: i64::from(current),
            known: latest() as u32,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| StoreError::Migrate {
                location: location.to_string(),
                version: m.version as u32,
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
            &[&latest()],
        )
        .await
        .map_err(open_error)?;
    } else if current < latest() {
        tx.execute("UPDATE qtjudge_schema SET version = $1", &[&latest()])
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
        let listed: Vec<(u32, &str, &str)> = MIGRATIONS
            .iter()
            .map(|m| (m.version as u32, m.name, m.sql))
            .collect();
        crate::service::store::conformance::assert_migrations_are_their_files(
            "src/service/store/postgres/migrations",
            &listed,
        );
    }
}
