//! The sandbox image: its content-hash tag, and building it offline
//! (debootstrap + import when no registry is reachable, then the Dockerfile).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

include!(concat!(env!("OUT_DIR"), "/docker_context.rs"));

/// The Debian image the Dockerfile is written for, used when it can be pulled.
const UPSTREAM_BASE: &str = "debian:bookworm-slim";
const SANDBOX_REPOSITORY: &str = "qtjudge-sandbox";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("docker engine error while {doing}: {source}")]
    Engine {
        doing: &'static str,
        source: bollard::errors::Error,
    },
    #[error("building the base image needs debootstrap and root: {0} (install it with `apt-get install debootstrap`, or build on a machine that can pull {UPSTREAM_BASE})")]
    Bootstrap(String),
    #[error("the sandbox image build failed: {0}")]
    Build(String),
}

/// Short hash of every file of `docker/` the binary carries.
pub fn context_hash() -> String {
    let mut hasher = Sha256::new();
    for (path, bytes) in DOCKER_CONTEXT {
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hex::encode(&hasher.finalize()[..6])
}

/// The tag of the sandbox image this binary needs.
pub fn sandbox_tag() -> String {
    format!("{SANDBOX_REPOSITORY}:{}", context_hash())
}

/// The embedded text of one `docker/` file.
pub fn context_file(path: &str) -> Option<&'static [u8]> {
    DOCKER_CONTEXT
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

fn base_packages() -> Vec<String> {
    let text = String::from_utf8_lossy(context_file("base-packages.txt").unwrap_or_default());
    let mut packages: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    packages.sort();
    packages
}

/// The offline base's name: a hash of the package list, so that only a new
/// list makes a new base.
pub fn base_tag() -> String {
    let mut listing = String::new();
    for package in base_packages() {
        listing.push_str(&package);
        listing.push('\n');
    }
    let digest = Sha256::digest(listing.as_bytes());
    format!("qtjudge-base:bookworm-{}", &hex::encode(digest)[..12])
}

/// Makes sure the sandbox image exists, building it when missing.
/// `progress` receives one line per build step.
pub async fn ensure(
    docker: &Docker,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<String, ImageError> {
    let tag = sandbox_tag();
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    progress(&format!(
        "sandbox image {tag} is missing: building it (once per change of docker/)"
    ));
    build(docker, progress).await
}

/// Builds the sandbox image (and the base it needs) unconditionally.
pub async fn build(
    docker: &Docker,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<String, ImageError> {
    let base = ensure_base(docker, progress).await?;
    let tag = sandbox_tag();
    progress(&format!("building {tag} from {base}"));
    let context =
        context_tar().map_err(|e| ImageError::Build(format!("cannot pack docker/: {e}")))?;
    let mut build_args = HashMap::new();
    build_args.insert("BASE".to_string(), base);
    let mut labels = HashMap::new();
    labels.insert("qtjudge.context".to_string(), context_hash());
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .buildargs(&build_args)
        .labels(&labels)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ImageError::Build(e.to_string()))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Build(detail));
        }
        if let Some(line) = info.stream {
            let line = line.trim();
            if !line.is_empty() {
                progress(line);
            }
        }
    }
    docker
        .tag_image(
            &tag,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::default()
                    .repo(SANDBOX_REPOSITORY)
                    .tag("latest")
                    .build(),
            ),
        )
        .await
        .map_err(|source| ImageError::Engine {
            doing: "tagging the sandbox image as latest",
            source,
        })?;
    progress(&format!("built {tag}"));
    Ok(tag)
}

/// Our debootstrapped base if present, else the upstream image if it can be
/// pulled, else a new debootstrapped base.
async fn ensure_base(
    docker: &Docker,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<String, ImageError> {
    let ours = base_tag();
    if docker.inspect_image(&ours).await.is_ok() {
        return Ok(ours);
    }
    if docker.inspect_image(UPSTREAM_BASE).await.is_ok() {
        return Ok(UPSTREAM_BASE.to_string());
    }
    progress(&format!("trying to pull {UPSTREAM_BASE}"));
    let options = CreateImageOptionsBuilder::default()
        .from_image(UPSTREAM_BASE)
        .build();
    let mut pull = docker.create_image(Some(options), None, None);
    let mut pulled = true;
    while let Some(item) = pull.next().await {
        if let Err(e) = item {
            progress(&format!(
                "cannot pull {UPSTREAM_BASE} ({e}): bootstrapping the base from Debian's packages"
            ));
            pulled = false;
            break;
        }
    }
    if pulled {
        return Ok(UPSTREAM_BASE.to_string());
    }
    bootstrap_base(docker, &ours, progress).await?;
    Ok(ours)
}

/// debootstrap bookworm with the package list into a temporary folder and
/// import it as `name` (what `docker import` does, through the Engine API).
async fn bootstrap_base(
    docker: &Docker,
    name: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), ImageError> {
    let folder = tempfile::Builder::new()
        .prefix("qtjudge-rootfs.")
        .tempdir_in(std::env::var_os("QTJUDGE_BUILD_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .map_err(|e| {
            ImageError::Bootstrap(format!(
                "cannot make a folder for the root file system: {e}"
            ))
        })?;
    let root = folder.path().join("rootfs");
    let mirror =
        std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    progress(&format!(
        "debootstrap bookworm with {} (about 2 minutes)",
        base_packages().join(",")
    ));
    let mut child = tokio::process::Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", base_packages().join(",")))
        .arg("bookworm")
        .arg(&root)
        .arg(&mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::Bootstrap(format!("cannot run debootstrap: {e}")))?;
    // debootstrap's "I: Retrieving …" lines are the progress of a 2-minute step.
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let mut err_text = String::new();
    let mut out_text = String::new();
    let read_stdout = async {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("I: Retrieving")
                || line.starts_with("I: Installing")
                || line.starts_with("I: Configuring")
            {
                progress(&format!("debootstrap: {}", line.trim_start_matches("I: ")));
            }
            out_text.push_str(&line);
            out_text.push('\n');
        }
    };
    let _ = tokio::join!(read_stdout, stderr.read_to_string(&mut err_text));
    let status = child
        .wait()
        .await
        .map_err(|e| ImageError::Bootstrap(format!("debootstrap: {e}")))?;
    if !status.success() {
        let tail: String = format!("{out_text}{err_text}")
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(ImageError::Bootstrap(format!(
            "debootstrap failed ({status}): {tail}"
        )));
    }
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_folder(&root.join(cache));
    }
    progress(&format!("importing the root file system as {name}"));
    let mut tar = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::Bootstrap(format!("cannot run tar: {e}")))?;
    let archive =
        tokio_util::io::ReaderStream::with_capacity(tar.stdout.take().expect("piped"), 1 << 20);
    let (repo, tag) = name.split_once(':').unwrap_or((name, "latest"));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "CMD [\"/bin/bash\"]".to_string(),
        ])
        .build();
    let mut import =
        docker.create_image(Some(options), Some(bollard::body_try_stream(archive)), None);
    while let Some(item) = import.next().await {
        item.map_err(|source| ImageError::Engine {
            doing: "importing the bootstrapped base",
            source,
        })?;
    }
    let _ = tar.wait().await;
    Ok(())
}

fn clear_folder(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.path().is_file() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The CA bundle pip should trust while the image is built, for networks
/// that re-sign TLS (a proxy's own CA): `QTJUDGE_BUILD_CA_BUNDLE`, else the
/// host pip's own `PIP_CERT`. Not part of the image's hash, and deleted by
/// the Dockerfile once pip is done.
fn build_ca_bundle() -> Option<Vec<u8>> {
    let path =
        std::env::var_os("QTJUDGE_BUILD_CA_BUNDLE").or_else(|| std::env::var_os("PIP_CERT"))?;
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(path = %Path::new(&path).display(), "cannot read the CA bundle for the image build ({e}); pip will use the image's own");
            None
        }
    }
}

/// The embedded `docker/` folder as an uncompressed tar archive (plus the
/// build's CA bundle, when there is one).
fn context_tar() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let ca = build_ca_bundle();
    let extra = ca.as_deref().map(|bytes| ("build-ca.pem", bytes));
    for (path, bytes) in DOCKER_CONTEXT.iter().map(|(p, b)| (*p, *b)).chain(extra) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, path, bytes)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_carries_the_dockerfile_and_the_harness() {
        assert!(context_file("Dockerfile").is_some());
        assert!(context_file("harness/harness.py").is_some());
        assert!(context_file("harness/supervisor.py").is_some());
    }

    #[test]
    fn tags_are_content_hashes() {
        assert_eq!(sandbox_tag(), format!("qtjudge-sandbox:{}", context_hash()));
        assert_eq!(context_hash().len(), 12);
        assert!(base_tag().starts_with("qtjudge-base:bookworm-"));
    }
}
