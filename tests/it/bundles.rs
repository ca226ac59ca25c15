//! Apps of several files (issue 8 part B): `qtjudge verify` on a folder, a
//! zip and a notebook through the real Docker sandbox, `--entry` and its
//! errors, hostile archives refused, the task chosen when none is given,
//! and the same apps uploaded to a real `qtjudge serve` (multipart and
//! base64).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::server::{service_ready, Server};
use crate::stores::Kind;
use crate::support::{docker, json_of, repo};

fn qtjudge(args: &[&str]) -> Output {
    crate::support::qtjudge_cli(args, None)
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    for (name, data) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap();
    out.into_inner()
}

/// Every file of a fixture folder, under `prefix`.
fn files_of(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            out.extend(files_of(&entry.path(), &format!("{name}/")));
        } else {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    out
}

fn package_zip(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let files = files_of(&repo().join("fixtures/apps/package_settings"), "package/");
    let mut entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    entries.extend_from_slice(extra);
    zip_of(&entries)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

type Case = (&'static str, Vec<u8>, Vec<&'static str>, Vec<&'static str>);

/// Usage errors come before any container: no Docker needed.
#[test]
fn entry_errors_and_hostile_archives_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let guard = b"if __name__ == \"__main__\":\n    pass\n";
    // (file name, bytes, extra arguments, words the error must hold)
    let cases: Vec<Case> = vec![
        (
            "two.zip",
            zip_of(&[("a.py", guard), ("b.py", guard)]),
            vec![],
            vec!["ambiguous entry point", "a.py, b.py", "--entry"],
        ),
        (
            "none.zip",
            zip_of(&[("a.py", b"x = 1\n"), ("b.py", b"y = 2\n")]),
            vec![],
            vec!["no entry point", "a.py, b.py", "--entry"],
        ),
        (
            "missing.zip",
            zip_of(&[("a.py", guard), ("core/c.py", b"")]),
            vec!["--entry", "main.py"],
            vec![
                "--entry `main.py` is not a file of the app",
                "a.py, core/c.py",
            ],
        ),
        (
            "escape.zip",
            zip_of(&[("main.py", guard), ("../../home/evil.py", b"x")]),
            vec![],
            vec!["unsafe archive entry", "`..`"],
        ),
        (
            "absolute.zip",
            zip_of(&[("main.py", guard), ("/etc/cron.d/evil", b"x")]),
            vec![],
            vec!["unsafe archive entry", "absolute"],
        ),
        (
            "bomb.zip",
            zip_of(&[("main.py", guard), ("zeros.bin", &vec![0u8; 40 << 20])]),
            vec![],
            vec!["over 8388608 bytes once unpacked"],
        ),
        (
            "notzip.zip",
            b"this is not a zip".to_vec(),
            vec![],
            vec!["not a readable zip archive"],
        ),
    ];
    for (name, bytes, extra, words) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut args = vec!["verify", path.to_str().unwrap()];
        args.extend(extra);
        let out = qtjudge(&args);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        for word in words {
            assert!(err.contains(word), "{name}: no {word:?} in {err}");
        }
    }
    // A symlink in a tar.gz, and in a folder: refused, never followed.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_link_name("/etc/shadow").unwrap();
    tar.append_data(&mut h, "secret", &b""[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let path = dir.path().join("link.tar.gz");
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let out = qtjudge(&["verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`secret` is a symbolic link"),
        "{}",
        stderr(&out)
    );
    let app = dir.path().join("linked");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("main.py"), guard).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", app.join("data.txt")).unwrap();
    let out = qtjudge(&["verify", app.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`data.txt` is a symbolic link"),
        "{}",
        stderr(&out)
    );
    // --entry means nothing for one script.
    let script = dir.path().join("one.py");
    std::fs::write(&script, guard).unwrap();
    let out = qtjudge(&["verify", script.to_str().unwrap(), "--entry", "one.py"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--entry applies to an app"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_runs_a_folder_a_zip_with_entry_and_a_notebook_in_docker() {
    if docker().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let apps = repo().join("fixtures/apps");

    // A folder: entry by its guard, the package imported, settings.json read from the cwd.
    let out = qtjudge(&[
        "verify",
        apps.join("package_settings").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = json_of(&out);
    assert_eq!(v["tier"], 1, "{v:#}");
    assert_eq!(v["bundle"]["origin"], "directory");
    assert_eq!(v["bundle"]["entry"], "main.py");
    assert!(v["bundle"]["files"]
        .as_array()
        .unwrap()
        .contains(&json!("core/conversation.py")));
    // No --task, and nothing like the experiment's original: the generic task.
    assert_eq!(v["task"], "generic-reset");
    assert_eq!(v["task_choice"]["how"], "default", "{:#}", v["task_choice"]);

    // A zip whose own test module also has a guard: ambiguous at the top
    // level, so --entry decides (the top folder `package/` is stripped).
    let zip = package_zip(&[(
        "package/selftest.py",
        b"if __name__ == \"__main__\":\n    raise SystemExit('not the app')\n",
    )]);
    let path = dir.path().join("package.zip");
    std::fs::write(&path, &zip).unwrap();
    let out = qtjudge(&["verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("main.py, package/selftest.py")
            || stderr(&out).contains("main.py, selftest.py"),
        "{}",
        stderr(&out)
    );
    let out = qtjudge(&[
        "verify",
        path.to_str().unwrap(),
        "--entry",
        "main.py",
        "--task",
        "generic-reset",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("tier 1"), "{text}");
    assert!(
        text.contains("task: generic-reset (the task `generic-reset` was given)"),
        "{text}"
    );
    assert!(text.contains("entry main.py"), "{text}");

    // A notebook: magics dropped, exec_() in its last cell.
    let out = qtjudge(&[
        "verify",
        apps.join("notebook_chat.ipynb").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = json_of(&out);
    assert_eq!(v["tier"], 1, "{v:#}");
    assert_eq!(v["bundle"]["origin"], "notebook");
    assert_eq!(v["bundle"]["entry"], "notebook_chat.py");

    // One of the experiment's answers, no --task: its task is found.
    let out = qtjudge(&[
        "verify",
        repo()
            .join("fixtures/outputs/reset-conversation/correct.py")
            .to_str()
            .unwrap(),
        "--format",
        "json",
    ]);
    let v = json_of(&out);
    assert_eq!(v["task"], "reset-conversation", "{:#}", v["task_choice"]);
    assert_eq!(v["task_choice"]["how"], "resembles");
    assert_eq!(v["tier"], 1, "{v:#}");
}

/// A multipart/form-data body by hand: `file` plus text fields.
fn multipart(filename: &str, data: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = format!("qtjudge-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(data);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_takes_apps_as_multipart_and_base64_and_refuses_bad_ones() {
    let Some((server, _, _dir)) = service_ready(Kind::Sqlite, &["--workers", "1"]).await else {
        return;
    };

    // Refused before anything is queued, each with its code.
    let bad = [
        (
            json!({"archive_base64": base64::engine::general_purpose::STANDARD.encode(zip_of(&[("../x.py", b"x")])), "archive_name": "x.zip"}),
            "unsafe_archive_path",
        ),
        (json!({"archive_base64": "%%% not base64"}), "bad_archive"),
        (
            json!({"archive_base64": base64::engine::general_purpose::STANDARD.encode(package_zip(&[])), "entry": "nope.py"}),
            "entry_not_found",
        ),
        (
            json!({"output": "x", "archive_base64": "UEs="}),
            "output_and_archive",
        ),
        (
            json!({"output": "print(1)", "entry": "main.py"}),
            "entry_without_archive",
        ),
    ];
    for (body, code) in bad {
        let response = server
            .post("/v1/verifications")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{code}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], code, "{error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let (content_type, body) = multipart("evil.tar.gz", b"\x1f\x8bnot gzip", &[]);
    let response = server
        .post("/v1/verifications")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "bad_archive", "{error}");

    // A zip as base64; the fixture archive and a notebook as multipart.
    let zip = base64::engine::general_purpose::STANDARD.encode(package_zip(&[]));
    let response = server
        .post("/v1/verifications")
        .json(&json!({"archive_base64": zip, "archive_name": "package.zip", "model": "b64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    // An app is unpacked, and its task chosen, by the worker that runs it.
    assert!(accepted["task_choice"].is_null(), "{accepted}");
    let b64 = accepted["id"].as_str().unwrap().to_string();
    let mut uploads = vec![b64];
    for (file, fields) in [
        (
            "archived_chat.tar.gz",
            vec![("model", "tgz"), ("entry", "app.py")],
        ),
        (
            "notebook_chat.ipynb",
            vec![("model", "nb"), ("task", "generic-reset")],
        ),
    ] {
        let bytes = std::fs::read(repo().join("fixtures/apps").join(file)).unwrap();
        let (content_type, body) = multipart(file, &bytes, &fields);
        let response = server
            .post("/v1/verifications")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "{file}: {accepted}");
        uploads.push(accepted["id"].as_str().unwrap().to_string());
    }
    for id in &uploads {
        let view = server.finished(id).await;
        assert_eq!(view["status"], "done", "{view:#}");
        assert_eq!(view["task"], "generic-reset");
        assert_eq!(view["task_choice"]["task"], "generic-reset", "{view:#}");
        assert_eq!(view["result"]["tier"], 1, "{:#}", view["result"]);
        assert!(
            view["result"]["bundle"]["entry"].is_string(),
            "{:#}",
            view["result"]
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_app_queued_before_kill_9_runs_after_the_restart() {
    // One worker, two uploads: the second is still queued (or running) at the kill.
    let Some((server, _, dir)) = service_ready(Kind::Sqlite, &["--workers", "1"]).await else {
        return;
    };
    let data = dir.path().join("data");
    let zip = base64::engine::general_purpose::STANDARD.encode(package_zip(&[]));
    let mut ids = Vec::new();
    for model in ["first", "survivor"] {
        let response = server
            .post("/v1/verifications")
            .json(&json!({"archive_base64": zip, "model": model}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_string());
    }
    let id = ids.pop().unwrap();
    let view: Value = server.view(&id).await;
    assert_ne!(view["status"], "done", "finished before the kill: {view}");
    server.kill_9();
    let server = Server::start(&data, &["--workers", "1"]);
    server.wait_ready().await;
    let view = server.finished(&id).await;
    assert_eq!(view["result"]["tier"], 1, "{view:#}");
    assert_eq!(view["result"]["bundle"]["origin"], "zip");
    server.stop();
}

/// The tier and failure `fixtures/apps/manifest.toml` expects of `file`.
fn app_verdict(file: &str) -> (u64, String) {
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo().join("fixtures/apps/manifest.toml")).unwrap(),
    )
    .unwrap();
    let app = manifest["app"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["file"].as_str() == Some(file))
        .unwrap_or_else(|| panic!("{file} is not in fixtures/apps/manifest.toml"));
    (
        app["tier"].as_integer().unwrap() as u64,
        app["failure"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_without_a_task_grades_each_answer_against_the_task_it_resembles() {
    let Some((server, _, _dir)) = service_ready(Kind::Sqlite, &["--workers", "2"]).await else {
        return;
    };
    let answers = repo().join("fixtures/outputs/reset-conversation");
    let experiment = crate::support::manifest()
        .into_iter()
        .find(|a| a.model == "devstral")
        .unwrap();
    let app = "ollama_chat_requests.py";
    let items = json!([
        {"model": "devstral", "output": std::fs::read_to_string(answers.join(&experiment.file)).unwrap()},
        {"model": "app", "output": std::fs::read_to_string(repo().join("fixtures/apps").join(app)).unwrap()},
    ]);
    let response = server
        .post("/v1/batches")
        .json(&items)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{accepted}");
    let location = accepted["links"]["self"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let batch = loop {
        let batch = server.get_json(&format!("{location}?wait=20")).await;
        if batch["status"] == "done" {
            break batch;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never finished: {batch:#}\nlog:\n{}",
            server.log()
        );
    };
    assert_eq!(
        batch["task"], "generic-reset, reset-conversation",
        "{batch:#}"
    );
    // (model, task, how it was chosen, expected tier and failure)
    let expected = [
        (
            "devstral",
            "reset-conversation",
            "resembles",
            (u64::from(experiment.tier), experiment.failure.clone()),
        ),
        ("app", "generic-reset", "default", app_verdict(app)),
    ];
    for (model, task, how, (tier, failure)) in expected {
        let item = batch["verifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["model"] == model)
            .unwrap_or_else(|| panic!("no {model} in {batch:#}"));
        assert_eq!(item["task"], task, "{item:#}");
        assert_eq!(
            (
                item["tier"].as_u64(),
                item["failure"].as_str().unwrap_or("")
            ),
            (Some(tier), failure.as_str()),
            "{model}: {item:#}"
        );
        // The choice is kept with the job: its view and its result say it.
        let view = server.view(item["id"].as_str().unwrap()).await;
        assert_eq!(view["task"], task);
        assert_eq!(view["task_choice"]["task"], task, "{view:#}");
        assert_eq!(view["task_choice"]["how"], how, "{view:#}");
        assert!(view["task_choice"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        assert_eq!(view["result"]["task_choice"], view["task_choice"]);
        assert_eq!(item["task_choice"], view["task_choice"]);
    }
    server.stop();
}

/// What `qtjudge verify ARCHIVE` did, with the most memory it held.
struct Measured {
    code: Option<i32>,
    stderr: String,
    peak_rss_bytes: u64,
}

const PROBE_ARCHIVE: &str = "QTJUDGE_TEST_PEAK_RSS_ARCHIVE";
const PROBE_LINE: &str = "qtjudge-peak-rss-probe ";

/// Runs `qtjudge verify ARCHIVE` and measures its peak RSS. The kernel's
/// peak for a child starts from the memory of the process that spawned it
/// (an exec after vfork records the spawner's own peak), and this test
/// process may hold what other tests built: so a fresh, small process of
/// this test binary, running only `peak_rss_probe`, spawns and reaps it.
fn verify_measuring_peak_rss(archive: &Path) -> Measured {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bundles::peak_rss_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_ARCHIVE, archive)
        .output()
        .expect("the test binary runs its probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        // libtest prints the test's name on the same line, before its output.
        .find_map(|l| l.split_once(PROBE_LINE).map(|(_, result)| result))
        .unwrap_or_else(|| panic!("the probe printed no result: {stdout}\n{}", stderr(&out)));
    let probe: Value = serde_json::from_str(line).unwrap();
    Measured {
        code: probe["code"].as_i64().map(|c| c as i32),
        stderr: probe["stderr"].as_str().unwrap().to_string(),
        peak_rss_bytes: probe["peak_rss_kib"].as_u64().unwrap() * 1024,
    }
}

#[test]
#[ignore = "a helper: verify_measuring_peak_rss runs it in a process of its own"]
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which gives its peak memory"
)]
fn peak_rss_probe() {
    let Some(archive) = std::env::var_os(PROBE_ARCHIVE) else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_qtjudge"))
        .arg("verify")
        .arg(&archive)
        .env("QTJUDGE_TASKS_DIR", repo().join("fixtures/tasks"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("qtjudge runs");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain integers, so all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped (std never waited on
    // it); both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    println!(
        "{PROBE_LINE}{}",
        json!({"code": code, "stderr": err, "peak_rss_kib": usage.ru_maxrss})
    );
}

/// A `.tar.gz` whose first record is a `kind` header extension declaring
/// 1 GiB and holding it (zeros), then an app: streamed through the
/// compressor, never held whole.
fn write_tar_gz_with_huge_record(path: &Path, kind: tar::EntryType) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let record_size: u64 = 1 << 30;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(record_size);
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    gz.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..record_size / zeros.len() as u64 {
        gz.write_all(&zeros).unwrap();
    }
    let mut tar = tar::Builder::new(Vec::new());
    let main = b"if __name__ == \"__main__\":\n    pass\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(main.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, "main.py", &main[..]).unwrap();
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap().flush().unwrap();
}

/// A zip holding 1 GiB of zeros, deflated as it is written.
fn write_zip_bomb(path: &Path) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("main.py", options).unwrap();
    zip.write_all(b"if __name__ == \"__main__\":\n    pass\n")
        .unwrap();
    zip.start_file("zeros.bin", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
}

/// A zip of 150,000 empty files: 13 MiB, under the upload cap, but a
/// central directory the zip reader would keep a record per entry of.
fn write_zip_of_many_entries(path: &Path) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..150_000 {
        zip.start_file(format!("{i}"), options).unwrap();
    }
    zip.finish().unwrap();
}

/// Issue 17 (7): any archive up to the upload cap is read in bounded
/// memory; records bigger than an app needs are refused, naming the limit,
/// before they are read. No Docker: the archive is read first.
#[test]
fn archives_declaring_huge_records_are_refused_in_bounded_memory() {
    const PEAK_RSS_LIMIT: u64 = 64 << 20;
    const UPLOAD_CAP: u64 = 16 << 20;
    let dir = tempfile::tempdir().unwrap();
    // (file, how it is written, words the refusal must hold)
    type Writer = fn(&Path);
    let cases: [(&str, Writer, &[&str]); 4] = [
        (
            "long-name.tar.gz",
            |p| write_tar_gz_with_huge_record(p, tar::EntryType::GNULongName),
            &["a tar long-name record is 1 GiB, over the 64 KiB limit for names"],
        ),
        (
            "pax.tar.gz",
            |p| write_tar_gz_with_huge_record(p, tar::EntryType::XHeader),
            &["a tar PAX header is 1 GiB, over the 64 KiB limit for header extensions"],
        ),
        (
            "bomb.zip",
            write_zip_bomb,
            &["over 8388608 bytes once unpacked"],
        ),
        (
            "many.zip",
            write_zip_of_many_entries,
            &["more than 256 files"],
        ),
    ];
    let mut peaks = Vec::new();
    for (name, write, words) in cases {
        let path = dir.path().join(name);
        write(&path);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= UPLOAD_CAP, "{name} is {size} bytes, over the cap");
        let run = verify_measuring_peak_rss(&path);
        assert_eq!(run.code, Some(2), "{name}: {}", run.stderr);
        for word in words {
            assert!(
                run.stderr.contains(word),
                "{name}: no {word:?} in {}",
                run.stderr
            );
        }
        let peak_mib = run.peak_rss_bytes as f64 / f64::from(1 << 20);
        eprintln!("{name} ({size} bytes): refused at a peak RSS of {peak_mib:.1} MiB");
        peaks.push((name, run.peak_rss_bytes));
    }
    for (name, peak) in peaks {
        assert!(
            peak < PEAK_RSS_LIMIT,
            "{name}: peak RSS {peak} bytes, over {PEAK_RSS_LIMIT}"
        );
    }
}
