//! Containers by their labels: the owner label (`<host>:<pid>:<start
//! time>`) that tells whether the qtjudge that made a container still
//! runs, the reaper of those whose owner is gone, and the count of a run's.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

use super::cleanup::remove;
use super::{engine_error, LABEL, LABEL_OWNER, LABEL_RUN};
use crate::sandbox::SandboxError;

/// Removes the containers that a crashed qtjudge left behind: those whose
/// owner process is gone. Returns how many were removed.
pub(super) async fn reap_orphans(docker: &Docker) -> Result<usize, SandboxError> {
    reap_where(docker, |owner| !owner_alive(owner)).await
}

/// Removes the containers of the owners named: qtjudge processes on other
/// hosts that a shared store says are dead (this host cannot see their
/// processes). Returns how many were removed.
pub(super) async fn reap_owned_by(
    docker: &Docker,
    owners: &[String],
) -> Result<usize, SandboxError> {
    if owners.is_empty() {
        return Ok(0);
    }
    reap_where(docker, |owner| owners.iter().any(|o| o == owner)).await
}

/// Removes every container of ours whose owner label `dead` accepts.
async fn reap_where(docker: &Docker, dead: impl Fn(&str) -> bool) -> Result<usize, SandboxError> {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![LABEL.to_string()]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| engine_error("listing qtjudge's containers", e))?;
    let mut removed = 0;
    for container in containers {
        let owner = container
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_OWNER))
            .cloned()
            .unwrap_or_default();
        if !dead(&owner) {
            continue;
        }
        if let Some(id) = container.id {
            tracing::warn!(container = %id, owner, "removing a container left behind by a qtjudge that is gone");
            if remove(docker, &id).await {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Counts the containers with our label (all of them, or one run's).
pub async fn count_labelled(docker: &Docker, run_id: Option<&str>) -> Result<usize, SandboxError> {
    let label = match run_id {
        Some(id) => format!("{LABEL_RUN}={id}"),
        None => LABEL.to_string(),
    };
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![label]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .map(|c| c.len())
        .map_err(|e| engine_error("listing containers", e))
}

/// `<host>:<pid>:<start time>`: the start time tells a restarted process
/// that reuses a pid (pid 1 in a compose service) from the one that made
/// the container.
pub(in crate::sandbox) fn owner_id() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        hostname(),
        start_time(pid).unwrap_or_default()
    )
}

/// The node part of owner labels: `QTJUDGE_REPLICA_NAME` when set (two
/// replicas on one host that share an engine, each reaped by the other
/// only once the store says it is dead), else the hostname.
fn hostname() -> String {
    if let Some(name) = std::env::var(REPLICA_NAME_VAR)
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.contains(':'))
    {
        return name;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Names this process's node in the labels of what it starts.
pub const REPLICA_NAME_VAR: &str = "QTJUDGE_REPLICA_NAME";

/// A process's start time in clock ticks since boot (/proc/PID/stat, field 22).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(String::from)
}

/// Whether the qtjudge process named by an owner label still runs here.
/// An owner on another host is left alone (give a compose service a fixed
/// hostname so that its restarts reap what it left).
pub(in crate::sandbox) fn owner_alive(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid), started) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match (start_time(pid), started) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        assert!(owner_alive(&owner_id()));
        let pid = std::process::id();
        assert!(
            !owner_alive(&format!("{}:{pid}:1", hostname())),
            "same pid, other start time"
        );
        assert!(
            !owner_alive(&format!("{}:4194399:1", hostname())),
            "no such pid"
        );
        assert!(
            owner_alive("another-host:1:1"),
            "owners elsewhere are left alone"
        );
    }
}
