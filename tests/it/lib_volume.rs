//! The shared read-only `/usr/lib` volume (fuse-overlayfs engines): the
//! sandbox mounts a complete copy of its image's, and a volume whose copy
//! was cut off is filled again rather than mounted, by one process at a
//! time. (That the candidate cannot write into it is the hostile fixture
//! `write-shared-libraries.py`.)

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use qtjudge::sandbox::docker::{LABEL, LABEL_OWNER};
use qtjudge::sandbox::lib_volume;

use crate::support::docker;

/// Runs `script` in a container of `image` with `volume` at `/fill`
/// (writable), on the image's own C library: a cut-off volume may lack it.
async fn in_volume(engine: &Docker, image: &str, volume: &str, owner: &str, script: &str) -> i64 {
    let mount = lib_volume::mount_at(volume, "/fill", false);
    let cmd = ["/bin/sh", "-c", script];
    lib_volume::run_once(engine, image, mount, &cmd, owner, Duration::from_secs(60))
        .await
        .expect("the helper container runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_mounts_a_complete_copy_and_an_incomplete_one_is_filled_again() {
    let Some(sandbox) = docker().await else {
        return;
    };
    let engine = sandbox.engine();
    let (image, owner) = (sandbox.image(), sandbox.owner());
    let driver = engine.info().await.unwrap().driver.unwrap_or_default();
    let image_id = engine.inspect_image(image).await.unwrap().id.unwrap();
    if driver != "fuse-overlayfs" {
        assert_eq!(
            sandbox.lib_volume(),
            None,
            "only fuse-overlayfs gains from it"
        );
        eprintln!("lib_volume test: the engine's storage driver is {driver}; no shared volume is used there");
        return;
    }
    let name = sandbox
        .lib_volume()
        .expect("on fuse-overlayfs the sandbox mounts a shared /usr/lib");
    assert_eq!(name, lib_volume::volume_name(&image_id));
    assert!(
        lib_volume::is_complete(engine, image, name, owner).await,
        "the mounted volume carries its marker"
    );

    // What a copy cut off before its marker leaves: part of the files (in a
    // volume of its own: the other tests use the real one).
    let cut_off = format!("qtjudge-lib-test-{}", std::process::id());
    engine
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(cut_off.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        in_volume(engine, image, &cut_off, owner, ": > /fill/half-copied").await,
        0
    );
    assert!(
        !lib_volume::is_complete(engine, image, &cut_off, owner).await,
        "a volume without its marker is not taken for a complete one"
    );
    // A fill lock left by a qtjudge that died mid-fill (its pid is gone).
    let lock = format!("{cut_off}-fill-lock");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dead_owner = format!("{}:4194305:0", host.trim());
    engine
        .create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::default()
                    .name(&lock)
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some(image.to_string()),
                labels: Some(HashMap::from([
                    (LABEL.to_string(), "1".to_string()),
                    (LABEL_OWNER.to_string(), dead_owner),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Two fills at once (two tasks, as two processes would): one copies,
    // the other waits for its lock and then finds the copy complete.
    let fill = || lib_volume::ensure_complete(engine, image, &image_id, &cut_off, owner);
    let (first, second) = tokio::join!(fill(), fill());
    first.expect("the incomplete volume is filled again, past the dead lock");
    second.expect("the second fill waits for the first and finds it complete");
    lib_volume::forget(&cut_off);
    let refilled = lib_volume::is_complete(engine, image, &cut_off, owner).await;
    let leftover_gone = in_volume(
        engine,
        image,
        &cut_off,
        owner,
        "test ! -e /fill/half-copied",
    )
    .await;
    let python_there = in_volume(engine, image, &cut_off, owner, "test -d /fill/python3.11").await;
    let lock_left = engine
        .inspect_container(
            &lock,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .is_ok();
    engine
        .remove_volume(
            &cut_off,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
        .expect("no container is left holding the volume");
    assert!(refilled, "after the fill, the marker is there");
    assert_eq!(
        leftover_gone, 0,
        "what the cut-off copy left is deleted first"
    );
    assert_eq!(python_there, 0, "the copy holds Python's modules");
    assert!(!lock_left, "the fill lock is removed after the fill");
}
