//! `qtjudge serve`: its raw arguments validated into the service's settings.

use anyhow::Result;

use super::{exit_codes, ServeArgs};
use crate::sandbox::SandboxConfig;
use crate::task;

pub(super) async fn serve_command(args: ServeArgs) -> Result<i32> {
    let config = crate::service::ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        store: args.store,
        lease_ttl: std::time::Duration::from_secs(args.lease_ttl_secs.max(1)),
        workers: args.workers,
        token: args.token.filter(|t| !t.is_empty()),
        max_queue: args.max_queue,
        max_body: args.max_body_kb.saturating_mul(1024),
        max_batch: args.max_batch,
        max_batch_unpacked: args.max_batch_unpacked_mb.saturating_mul(1 << 20),
        retention: (args.retention_hours > 0)
            .then(|| std::time::Duration::from_secs(args.retention_hours * 3600)),
        grace: std::time::Duration::from_secs(args.grace_seconds),
        tasks_dir: args.tasks_dir.unwrap_or_else(task::default_tasks_dir),
        callback_secret: args.callback_secret.filter(|s| !s.is_empty()),
        callback_attempts: args.callback_attempts,
        sandbox: SandboxConfig {
            kind: args.sandbox,
            runtime: args.runtime.filter(|r| !r.is_empty()),
            // One warm container per worker.
            warm: args.workers,
        },
        max_connections: args.max_connections,
        header_timeout: std::time::Duration::from_secs(args.header_timeout_secs),
        body_timeout: std::time::Duration::from_secs(args.body_timeout_secs),
    };
    crate::service::serve(config).await?;
    Ok(exit_codes::OK)
}
