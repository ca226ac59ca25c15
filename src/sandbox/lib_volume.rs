//! A shared, read-only copy of the sandbox image's `/usr/lib`, for engines
//! on the fuse-overlayfs storage driver.
//!
//! There, every container reads the image through a FUSE daemon of its
//! own, so the Python, Qt and PyQt5 files each harness maps (tens of MB)
//! come through FUSE again for every container: no page cache is shared
//! between them. A named volume is a plain directory on the engine's host;
//! mounted read-only over `/usr/lib` (Python's modules, Qt and every other
//! shared library), its pages stay cached from one container to the next.
//! On 2 cores, a container that imports PyQt5 and draws a window went from
//! 0.44 to 0.34 CPU-s and from 0.47 to 0.34 s.
//!
//! The volume is named after the image's id, so an image rebuilt under the
//! same tag gets a fresh copy. A container of the image copies its
//! `/usr/lib` in, then writes a marker that tells a complete volume from
//! one whose copy was cut off. (Only `/usr/lib`: the programs of
//! `/usr/bin` and `/usr/sbin` are small and mapped once per container.)

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListVolumesOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::docker::{LABEL, LABEL_OWNER, LABEL_RUN};

/// Marks the volumes this module makes (and the image they copy).
const VOLUME_LABEL: &str = "qtjudge.lib-volume";
const IMAGE_ID_LABEL: &str = "qtjudge.image-id";
const TARGET: &str = "/usr/lib";
/// Written into the volume once the copy of `/usr/lib` is complete (its
/// version changes with what the fill does, so older volumes are refilled).
const MARKER_NAME: &str = ".qtjudge-lib-complete-v1";
/// `off` turns the shared volume off (to compare, or to debug a storage
/// problem); anything else leaves the choice to the storage driver.
pub const SWITCH_ENV: &str = "QTJUDGE_LIB_VOLUME";
/// Copying several hundred MB; slow disks take a while.
const FILL_LIMIT: Duration = Duration::from_secs(300);
const CHECK_LIMIT: Duration = Duration::from_secs(60);

/// Volumes this process has seen complete: checked once, not per sandbox.
static COMPLETE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The volume to mount over `/usr/lib` in the sandbox's containers, filled when
/// needed; `None` where it would not pay (other storage drivers) or could
/// not be made (then the containers read it from the image, as before).
pub async fn prepare(docker: &Docker, image: &str, owner: &str) -> Option<String> {
    if std::env::var(SWITCH_ENV).as_deref() == Ok("off") {
        tracing::info!("{SWITCH_ENV}=off: the containers read /usr/lib from the image");
        return None;
    }
    let driver = docker.info().await.ok()?.driver.unwrap_or_default();
    if driver != "fuse-overlayfs" {
        return None;
    }
    let image_id = docker.inspect_image(image).await.ok()?.id?;
    let name = volume_name(&image_id);
    match ensure_complete(docker, image, &image_id, &name, owner).await {
        Ok(()) => {
            tracing::info!(volume = %name, "the containers mount the image's /usr/lib from a shared read-only volume (fuse-overlayfs shares no page cache between containers)");
            remove_orphaned(docker).await;
            Some(name)
        }
        Err(e) => {
            tracing::warn!(volume = %name, error = %e, "cannot prepare the shared /usr/lib volume; the containers read /usr/lib through fuse-overlayfs (slower); `docker volume rm {name}` and a restart retry it");
            None
        }
    }
}

/// `qtjudge-lib-<12 hex digits of the image id>`.
pub fn volume_name(image_id: &str) -> String {
    let hex = image_id.trim_start_matches("sha256:");
    format!("qtjudge-lib-{}", &hex[..hex.len().min(12)])
}

/// Makes `name` a complete copy of `image`'s `/usr/lib`: checks a volume
/// that is there, and (re)fills one that is missing or incomplete. One
/// process fills at a time (two copies into one volume would rewrite files
/// under a reader): the lock is a container name, which the engine keeps
/// unique across processes.
pub async fn ensure_complete(
    docker: &Docker,
    image: &str,
    image_id: &str,
    name: &str,
    owner: &str,
) -> Result<(), String> {
    if known_complete(name) {
        return Ok(());
    }
    let give_up = Instant::now() + FILL_LIMIT;
    loop {
        if docker.inspect_volume(name).await.is_ok()
            && is_complete(docker, image, name, owner).await
        {
            remember_complete(name);
            return Ok(());
        }
        let lock = format!("{name}-fill-lock");
        if take_lock(docker, image, &lock, owner).await? {
            let filled = fill(docker, image, image_id, name, owner).await;
            super::docker::remove(docker, &lock).await;
            if filled.is_ok() {
                remember_complete(name);
            }
            return filled;
        }
        // Another qtjudge is filling it: wait for its lock to go, then look again.
        wait_for_lock(docker, &lock, give_up).await?;
    }
}

/// Copies the image's `/usr/lib` into the volume `name` (the lock held).
/// The volume is never removed and made again, so that a check by another
/// process, mounting it meanwhile, can neither block the fill nor make an
/// empty volume under the same name: what an earlier, cut-off copy left is
/// deleted inside it instead.
async fn fill(
    docker: &Docker,
    image: &str,
    image_id: &str,
    name: &str,
    owner: &str,
) -> Result<(), String> {
    if docker.inspect_volume(name).await.is_ok() {
        if is_complete(docker, image, name, owner).await {
            return Ok(());
        }
        tracing::warn!(volume = %name, "the shared /usr/lib volume is incomplete (its copy was cut off); filling it again");
    }
    let labels = HashMap::from([
        (VOLUME_LABEL.to_string(), "1".to_string()),
        (IMAGE_ID_LABEL.to_string(), image_id.to_string()),
    ]);
    docker
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating the volume: {e}"))?;
    tracing::info!(volume = %name, "copying the sandbox image's /usr/lib into a shared volume (once per image)");
    // The marker is written only once the copy is whole.
    let fill = [
        "sh",
        "-c",
        &format!(
            "find /fill -mindepth 1 -delete && cp -a /usr/lib/. /fill/ && : > /fill/{MARKER_NAME}"
        ),
    ];
    match run_once(
        docker,
        image,
        mount_at(name, "/fill", false),
        &fill,
        owner,
        FILL_LIMIT,
    )
    .await
    {
        Ok(0) => Ok(()),
        outcome => Err(format!("filling the volume: {outcome:?}")),
    }
}

/// Creates the (never started) lock container; `false` if another has it.
async fn take_lock(docker: &Docker, image: &str, lock: &str, owner: &str) -> Result<bool, String> {
    let config = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![]),
        cmd: Some(vec!["true".into()]),
        labels: Some(qtjudge_labels(owner)),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    match docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(lock).build()),
            config,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(false),
        Err(e) => Err(format!("creating the fill lock: {e}")),
    }
}

/// Waits until the lock container is gone; one whose owner died is removed.
async fn wait_for_lock(docker: &Docker, lock: &str, give_up: Instant) -> Result<(), String> {
    loop {
        let owner = match docker
            .inspect_container(
                lock,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Err(_) => return Ok(()),
            Ok(held) => held
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(LABEL_OWNER).cloned())
                .unwrap_or_default(),
        };
        if !super::docker::owner_alive(&owner) {
            tracing::warn!(
                lock,
                owner,
                "removing the lock of a /usr/lib fill whose qtjudge is gone"
            );
            super::docker::remove(docker, lock).await;
            return Ok(());
        }
        if Instant::now() >= give_up {
            return Err(format!(
                "another qtjudge ({owner}) has been filling the volume for {} s; `docker rm -f {lock}` if it is stuck",
                FILL_LIMIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn qtjudge_labels(owner: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (LABEL_RUN.to_string(), "lib-volume".to_string()),
        (LABEL_OWNER.to_string(), owner.to_string()),
    ])
}

/// Whether the volume holds a whole copy: its marker is there. (`test`
/// needs the C library, which lives in the volume: an empty one cannot
/// even start it.)
pub async fn is_complete(docker: &Docker, image: &str, name: &str, owner: &str) -> bool {
    let marker = format!("{TARGET}/{MARKER_NAME}");
    let check = ["test", "-e", &marker];
    matches!(
        run_once(docker, image, mount(name), &check, owner, CHECK_LIMIT).await,
        Ok(0)
    )
}

/// The mount the sandbox's containers get: read-only, never copied into.
pub fn mount(name: &str) -> Mount {
    mount_at(name, TARGET, true)
}

pub fn mount_at(name: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(name.into()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn known_complete(name: &str) -> bool {
    let complete = COMPLETE.lock().unwrap_or_else(|p| p.into_inner());
    complete.as_ref().is_some_and(|set| set.contains(name))
}

fn remember_complete(name: &str) {
    let mut complete = COMPLETE.lock().unwrap_or_else(|p| p.into_inner());
    complete
        .get_or_insert_with(HashSet::new)
        .insert(name.to_string());
}

/// Forgets what this process saw (a test that removes a volume).
pub fn forget(name: &str) {
    let mut complete = COMPLETE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(set) = complete.as_mut() {
        set.remove(name);
    }
}

/// Runs `cmd` in a container of `image` with `volume_mount`, and returns
/// its exit code. The container carries qtjudge's labels, so the
/// reaper removes it should this process die before it does.
pub async fn run_once(
    docker: &Docker,
    image: &str,
    volume_mount: Mount,
    cmd: &[&str],
    owner: &str,
    limit: Duration,
) -> Result<i64, String> {
    let config = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![]),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        user: Some("0".into()),
        labels: Some(qtjudge_labels(owner)),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            mounts: Some(vec![volume_mount]),
            cap_drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("qtjudge-lib-volume-{}", &super::new_nonce()[..12]);
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            config,
        )
        .await
        .map_err(|e| format!("creating a container: {e}"))?;
    let outcome = async {
        docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|e| format!("starting a container: {e}"))?;
        let mut wait = docker.wait_container(
            &created.id,
            Some(WaitContainerOptionsBuilder::default().build()),
        );
        match tokio::time::timeout(limit, wait.next()).await {
            Err(_) => Err(format!("no exit within {} s", limit.as_secs())),
            Ok(Some(Ok(exit))) => Ok(exit.status_code),
            // A non-zero exit comes as an error carrying its code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Ok(code)
            }
            Ok(Some(Err(e))) => Err(format!("waiting for a container: {e}")),
            Ok(None) => Err("the engine ended the wait without an exit code".into()),
        }
    }
    .await;
    super::docker::remove(docker, &created.id).await;
    outcome
}

/// Removes the volumes whose image is gone: no sandbox can mount them any
/// more. A volume of an image that still exists may serve another qtjudge
/// of another version, so it stays.
async fn remove_orphaned(docker: &Docker) {
    let filters = HashMap::from([("label".to_string(), vec![VOLUME_LABEL.to_string()])]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let Ok(listed) = docker.list_volumes(Some(options)).await else {
        return;
    };
    for volume in listed.volumes.unwrap_or_default() {
        let Some(image_id) = volume.labels.get(IMAGE_ID_LABEL) else {
            continue;
        };
        if let Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) = docker.inspect_image(image_id).await
        {
            tracing::info!(volume = %volume.name, "removing the shared /usr/lib volume of an image that is gone");
            let _ = docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_is_named_after_the_image_id() {
        assert_eq!(
            volume_name("sha256:a5d4e88c19aa0123456789"),
            "qtjudge-lib-a5d4e88c19aa"
        );
        assert_eq!(volume_name("abc"), "qtjudge-lib-abc");
    }

    #[test]
    fn the_sandbox_mount_is_read_only_and_never_copied_into() {
        let m = mount("qtjudge-lib-x");
        assert_eq!(m.target.as_deref(), Some("/usr/lib"));
        assert_eq!(m.read_only, Some(true));
        assert_eq!(m.volume_options.and_then(|o| o.no_copy), Some(true));
    }
}
