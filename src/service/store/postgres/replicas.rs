//! The replicas sharing this store (the `replicas` table): each says it is
//! alive, and the containers of one that stopped saying so are removed by
//! exactly one other at a time (a claim with a deadline, as a job's lease),
//! round after round for a while: a container whose creation the dead
//! replica had asked for may appear after the first round.

use super::{pg, PostgresStore};
use crate::service::store::Result;

/// A replica silent for this many lease lifetimes is dead: by then its
/// jobs' leases have expired and its late results are refused anyway.
const DEAD_AFTER_LEASES: f64 = 2.0;
/// A dead replica is reaped again each lease lifetime until it has been
/// silent this long (ten minutes with the default lease), then forgotten.
const FORGET_AFTER_LEASES: f64 = 20.0;

impl PostgresStore {
    pub(super) async fn say_alive(&self, owner: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO replicas (owner, last_seen) VALUES ($1, now())
                 ON CONFLICT (owner) DO UPDATE
                 SET last_seen = now(), reaper = NULL, reaping_until = NULL",
                &[&owner],
            )
            .await
            .map_err(pg("saying this replica is alive"))?;
        Ok(())
    }

    pub(super) async fn claim_dead(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE replicas SET reaper = $1,
                        reaping_until = now() + make_interval(secs => $2::float8)
                 WHERE last_seen < now() - make_interval(secs => $3::float8)
                   AND (reaping_until IS NULL OR reaping_until < now())
                 RETURNING owner",
                &[
                    &self.holder,
                    &self.lease_secs,
                    &(self.lease_secs * DEAD_AFTER_LEASES),
                ],
            )
            .await
            .map_err(pg("claiming dead replicas"))?;
        Ok(rows.iter().map(|row| row.get("owner")).collect())
    }

    /// After a round of reaping: the owners silent long enough are
    /// forgotten; the others' claims lapse and they are reaped again.
    pub(super) async fn forget_dead(&self, owners: &[String]) -> Result<()> {
        let client = self.client().await?;
        // Only while still this claim's: another replica may have taken
        // it over after this one's claim lapsed.
        client
            .execute(
                "DELETE FROM replicas WHERE owner = ANY($1) AND reaper = $2
                   AND last_seen < now() - make_interval(secs => $3::float8)",
                &[
                    &owners,
                    &self.holder,
                    &(self.lease_secs * FORGET_AFTER_LEASES),
                ],
            )
            .await
            .map_err(pg("forgetting reaped replicas"))?;
        Ok(())
    }
}
