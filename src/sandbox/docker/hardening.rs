//! The hardened container every answer runs in: no network, a read-only
//! root, capped noexec tmpfs mounts, the supervisor's five capabilities and
//! none for the candidate, the task's limits, labels for the reaper.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};

use super::{LABEL, LABEL_OWNER, LABEL_RUN, LABEL_SANDBOX};
use crate::task::Limits;

/// Linux capabilities the supervisor keeps to drop to the candidate's uid
/// and to kill it, to hand the home it furnished to that uid, and to read
/// back what the app did there (a `.ssh` of mode 0700, as on a desktop);
/// the candidate itself has none.
const SUPERVISOR_CAPABILITIES: [&str; 5] = ["SETUID", "SETGID", "KILL", "CHOWN", "DAC_READ_SEARCH"];

/// The candidate's home: a folder of its own, not a link into /tmp.
const CANDIDATE_HOME: &str = "/home/user";

/// The candidate's `XDG_RUNTIME_DIR`, where a desktop's login puts it:
/// its own, mode 0700 (the candidate's uid is 1000, `CANDIDATE_UID`).
const CANDIDATE_RUNTIME_DIR: &str = "/run/user/1000";

/// The hard limit on open files a Linux login gets by default (the
/// kernel's 1024:4096; systemd sessions raise the hard one further); the
/// soft one is the task's. Equal soft and hard limits would tell a
/// container from a desktop. Not higher: an engine may not raise its
/// containers' limits past its own (one at 20000 refused 524288).
const DESKTOP_OPEN_FILES_HARD: i64 = 4096;

/// The hardened container: no network, read-only root, a capped tmpfs
/// (noexec: no program written by the app runs from it),
/// no capabilities for the candidate, and the task's limits.
pub(super) fn container_config(
    image: &str,
    label: &str,
    limits: &Limits,
    owner: &str,
    sandbox_id: &str,
    runtime: Option<&str>,
    lib_volume: Option<&str>,
) -> ContainerCreateBody {
    let mib = 1024 * 1024;
    let mut labels = HashMap::new();
    labels.insert(LABEL.to_string(), "1".to_string());
    labels.insert(LABEL_RUN.to_string(), label.to_string());
    labels.insert(LABEL_OWNER.to_string(), owner.to_string());
    labels.insert(LABEL_SANDBOX.to_string(), sandbox_id.to_string());
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/tmp".to_string(),
        format!("rw,noexec,nosuid,nodev,size={}m,mode=1777", limits.tmpfs_mb),
    );
    // Furnished by the supervisor as root, then given to the candidate.
    tmpfs.insert(
        CANDIDATE_HOME.to_string(),
        format!("rw,noexec,nosuid,nodev,size={}m,mode=0755", limits.tmpfs_mb),
    );
    tmpfs.insert(
        CANDIDATE_RUNTIME_DIR.to_string(),
        format!(
            "rw,noexec,nosuid,nodev,size={}m,mode=0700,uid=1000,gid=1000",
            limits.tmpfs_mb
        ),
    );
    let file_size = (limits.file_size_mb * mib) as i64;
    let host_config = HostConfig {
        network_mode: Some("none".into()),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(
            SUPERVISOR_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        security_opt: Some(vec!["no-new-privileges".into()]),
        memory: Some((limits.memory_mb * mib) as i64),
        memory_swap: Some((limits.memory_mb * mib) as i64),
        pids_limit: Some(limits.pids),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        ulimits: Some(vec![
            ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(limits.open_files as i64),
                hard: Some(DESKTOP_OPEN_FILES_HARD.max(limits.open_files as i64)),
            },
            ResourcesUlimits {
                name: Some("fsize".into()),
                soft: Some(file_size),
                hard: Some(file_size),
            },
            ResourcesUlimits {
                name: Some("core".into()),
                soft: Some(0),
                hard: Some(0),
            },
        ]),
        // Our own init (docker/harness/init.py): Docker's would name the
        // supervisor in pid 1's command line, which every process can read.
        init: Some(false),
        runtime: runtime.map(String::from),
        mounts: lib_volume.map(|name| vec![crate::sandbox::lib_volume::mount(name)]),
        // Output goes to the attached client only; nothing is logged to disk.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![
            "python3".into(),
            "-I".into(),
            "/opt/qtjudge/init.py".into(),
        ]),
        user: Some("0".into()),
        // Not the container's id, Docker's default: a name as a desktop has.
        hostname: Some("workstation".into()),
        env: Some(vec![
            "LANG=C.UTF-8".into(),
            format!("QTJUDGE_OUTPUT_CAP_BYTES={}", limits.output_cap_kb * 1024),
        ]),
        working_dir: Some("/tmp".into()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}
