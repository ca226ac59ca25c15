//! The job stores a service test runs on: a test written once runs on the
//! embedded SQLite store and on a PostgreSQL schema of its own
//! (`on_both_stores!`), as users run the service on either.

use crate::replicas::Schema;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The store of one test's service(s).
pub enum TestStore {
    /// The embedded store in the server's `--data-dir`.
    Sqlite,
    /// A schema of the test server's, dropped by `finish`.
    Postgres(Box<Schema>),
}

impl TestStore {
    /// `None` when PostgreSQL is not reachable (a failure in CI, a loud
    /// skip elsewhere).
    pub async fn make(kind: Kind) -> Option<TestStore> {
        match kind {
            Kind::Sqlite => Some(TestStore::Sqlite),
            Kind::Postgres => Schema::make()
                .await
                .map(|schema| TestStore::Postgres(Box::new(schema))),
        }
    }

    /// The `serve` arguments that select it. Short leases on PostgreSQL:
    /// a killed server's claims end within seconds, as a restart ends an
    /// embedded store's at once.
    pub fn args(&self) -> Vec<String> {
        match self {
            TestStore::Sqlite => Vec::new(),
            TestStore::Postgres(schema) => vec![
                "--store".into(),
                schema.url.clone(),
                "--lease-ttl-secs".into(),
                "3".into(),
            ],
        }
    }

    pub async fn finish(self) {
        if let TestStore::Postgres(schema) = self {
            schema.drop_it().await;
        }
    }
}

/// Runs `async fn NAME(kind: Kind)` as two tests, `NAME::sqlite` and
/// `NAME::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::stores::Kind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::stores::Kind::Postgres).await
            }
        }
    )+};
}
pub(crate) use on_both_stores;
