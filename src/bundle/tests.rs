//! The bundle's tests: every input shape, hostile archives refused with
//! their limits, the entry found.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::error::human_bytes;
use super::limits::clean_path;
use super::zip_archive::MAX_ZIP_RECORDS;
use super::*;

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap();
    out.into_inner()
}

fn upload(kind: InputKind, bytes: Vec<u8>, entry: Option<&str>) -> Upload {
    Upload {
        kind,
        name: "app".into(),
        entry: entry.map(String::from),
        bytes,
    }
}

#[test]
fn an_upload_is_checked_from_its_directory_and_trailer_without_unpacking() {
    let app: &[u8] = b"if __name__ == \"__main__\":\n    print(1)\n";
    let zip = zip_of(&[("myapp/main.py", app), ("myapp/README", &[b'x'; 1000])]);
    assert_eq!(
        upload(InputKind::Zip, zip.clone(), None).check().unwrap(),
        app.len() as u64 + 1000
    );
    // The entry, with or without the folder wrapping every file.
    for entry in ["main.py", "myapp/main.py"] {
        assert!(
            upload(InputKind::Zip, zip.clone(), Some(entry))
                .check()
                .is_ok(),
            "{entry}"
        );
    }
    assert_eq!(
        upload(InputKind::Zip, zip, Some("other.py"))
            .check()
            .unwrap_err()
            .code()
            .as_str(),
        "entry_not_found"
    );
    assert_eq!(
        upload(InputKind::Zip, zip_of(&[("notes.txt", b"x")]), None)
            .check()
            .unwrap_err()
            .code()
            .as_str(),
        "no_python_file"
    );
    assert_eq!(
        upload(InputKind::Zip, zip_of(&[("../main.py", app)]), None)
            .check()
            .unwrap_err()
            .code()
            .as_str(),
        "unsafe_archive_path"
    );
    // A zip declaring more than an app may unpack to.
    let big = vec![0u8; MAX_BYTES as usize + 1];
    assert_eq!(
        upload(
            InputKind::Zip,
            zip_of(&[("main.py", app), ("data.bin", &big)]),
            None
        )
        .check()
        .unwrap_err()
        .code()
        .as_str(),
        "archive_too_large"
    );
    let tar_gz = tar_gz_of(|b| {
        let mut header = tar::Header::new_gnu();
        header.set_size(app.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, "main.py", app).unwrap();
    });
    let declared = upload(InputKind::TarGz, tar_gz.clone(), None)
        .check()
        .unwrap();
    assert!(
        declared >= 1024 && declared.is_multiple_of(512),
        "the tar stream's size: {declared}"
    );
    assert_eq!(
        upload(InputKind::TarGz, b"\x1f\x8bnot gzip at all".to_vec(), None)
            .check()
            .unwrap_err()
            .code()
            .as_str(),
        "bad_archive"
    );
    assert!(upload(InputKind::TarGz, tar_gz, None).unpack().is_ok());
}

#[test]
fn a_gzip_trailer_that_lies_is_caught_by_the_limits_when_unpacked() {
    let big = vec![b'#'; MAX_BYTES as usize + 1];
    let mut tar_gz = tar_gz_of(|b| {
        let mut header = tar::Header::new_gnu();
        header.set_size(big.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, "main.py", big.as_slice())
            .unwrap();
    });
    let at = tar_gz.len() - 4;
    tar_gz[at..].copy_from_slice(&1u32.to_le_bytes());
    let lying = upload(InputKind::TarGz, tar_gz, None);
    assert_eq!(
        lying.check().unwrap(),
        1,
        "the check reads only the trailer"
    );
    assert_eq!(
        lying.unpack().unwrap_err().code().as_str(),
        "archive_too_large"
    );
}

fn tar_gz_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    build(&mut builder);
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h
}

const MAIN: &[u8] = b"from ui.window import W\nif __name__ == \"__main__\":\n    W()\n";

#[test]
fn an_app_packed_as_tar_gz_reads_back_as_the_same_files_and_entry() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/apps/package_settings");
    let app = Bundle::from_dir(&dir, None).unwrap();
    let bytes = app.to_tar_gz().unwrap();
    assert_eq!(bytes, app.to_tar_gz().unwrap(), "packing is deterministic");
    let back = Bundle::from_bytes(InputKind::TarGz, "x.tar.gz", &bytes, Some(&app.entry)).unwrap();
    assert_eq!((back.entry, back.files), (app.entry, app.files));
}

#[test]
fn a_zipped_folder_is_read_in_memory_with_its_top_folder_stripped() {
    let bytes = zip_of(&[
        ("app/main.py", MAIN),
        ("app/ui/window.py", b"class W: pass\n"),
        ("app/ui/__pycache__/window.cpython-311.pyc", b"\0\0"),
        ("app/settings.json", b"{}"),
    ]);
    let b = Bundle::from_bytes(InputKind::Zip, "app.zip", &bytes, None).unwrap();
    assert_eq!(b.entry, "main.py");
    let paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["main.py", "settings.json", "ui/window.py"]);
    assert_eq!(b.compared_file("W"), "ui/window.py");
    assert_eq!(b.compared_file("Other"), "main.py");
}

#[test]
fn hostile_zips_are_refused_with_what_is_wrong() {
    for (name, why) in [
        ("../evil.py", "`..`"),
        ("/etc/evil.py", "absolute"),
        ("a/../../evil.py", "`..`"),
        ("C:\\evil.py", "backslash"),
    ] {
        let bytes = zip_of(&[("main.py", MAIN), (name, b"x")]);
        let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &bytes, None).unwrap_err();
        assert_eq!(e.code().as_str(), "unsafe_archive_path", "{name}");
        assert!(e.to_string().contains(why), "{name}: {e}");
    }
    let many: Vec<(String, Vec<u8>)> = (0..MAX_FILES + 1)
        .map(|i| (format!("f{i}.txt"), vec![b'x']))
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &zip_of(&refs), None).unwrap_err();
    assert_eq!(e, BundleError::TooManyFiles);
    // A zip bomb: 64 MiB of zeros deflate to a few tens of KiB.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = zip_of(&[("main.py", MAIN), ("zeros.bin", &zeros)]);
    assert!(bomb.len() < 1024 * 1024);
    let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &bomb, None).unwrap_err();
    assert_eq!(e, BundleError::TooLarge);
    let e = Bundle::from_bytes(InputKind::Zip, "a.zip", b"PK not really", None).unwrap_err();
    assert_eq!(e.code().as_str(), "bad_archive");
}

#[test]
fn tar_links_devices_and_escapes_are_refused() {
    let with = |kind: tar::EntryType, link: Option<&str>| {
        tar_gz_of(|t| {
            let mut h = header(tar::EntryType::Regular, MAIN.len() as u64);
            t.append_data(&mut h, "main.py", MAIN).unwrap();
            let mut h = header(kind, 0);
            if let Some(target) = link {
                h.set_link_name(target).unwrap();
            }
            t.append_data(&mut h, "other", &b""[..]).unwrap();
        })
    };
    for (kind, link, word) in [
        (
            tar::EntryType::Symlink,
            Some("/etc/passwd"),
            "symbolic link",
        ),
        (tar::EntryType::Link, Some("main.py"), "hard link"),
        (tar::EntryType::Char, None, "device"),
        (tar::EntryType::Block, None, "device"),
        (tar::EntryType::Fifo, None, "fifo"),
    ] {
        let e =
            Bundle::from_bytes(InputKind::TarGz, "a.tar.gz", &with(kind, link), None).unwrap_err();
        assert_eq!(e.code().as_str(), "archive_special_file", "{kind:?}");
        assert!(e.to_string().contains(word), "{kind:?}: {e}");
    }
    // `tar::Builder` refuses to write `..`, so the name goes in raw.
    let escape = tar_gz_of(|t| {
        let mut h = header(tar::EntryType::Regular, 1);
        h.as_old_mut().name[..12].copy_from_slice(b"../../evil.p");
        h.set_cksum();
        t.append(&h, &b"x"[..]).unwrap();
    });
    let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &escape, None).unwrap_err();
    assert_eq!(e.code().as_str(), "unsafe_archive_path");
    let bomb = tar_gz_of(|t| {
        let zeros = vec![0u8; (MAX_BYTES + 1) as usize];
        let mut h = header(tar::EntryType::Regular, zeros.len() as u64);
        t.append_data(&mut h, "zeros.bin", zeros.as_slice())
            .unwrap();
    });
    let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &bomb, None).unwrap_err();
    assert_eq!(e, BundleError::TooLarge);
}

/// A raw tar header block: `size` is declared, never backed by data,
/// so a refusal shows the record was judged before it was read.
fn raw_header(name: &str, kind: u8, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    *h.as_bytes()
}

fn gz(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

fn read_tar(tar: &[u8]) -> Result<Bundle, BundleError> {
    Bundle::from_bytes(InputKind::TarGz, "a.tar.gz", &gz(tar), None)
}

#[test]
fn tar_header_extensions_over_the_limit_are_refused_unread_naming_it() {
    for (kind, words) in [
        (
            b'L',
            ["a tar long-name record is 1 GiB", "64 KiB limit for names"],
        ),
        (
            b'K',
            [
                "a tar long-link-name record is 1 GiB",
                "64 KiB limit for names",
            ],
        ),
        (
            b'x',
            [
                "a tar PAX header is 1 GiB",
                "64 KiB limit for header extensions",
            ],
        ),
        (
            b'g',
            [
                "a tar global PAX header is 1 GiB",
                "64 KiB limit for header extensions",
            ],
        ),
    ] {
        let e = read_tar(&raw_header("././@LongLink", kind, 1 << 30)).unwrap_err();
        assert_eq!(e.code().as_str(), "archive_too_large", "{}", kind as char);
        for word in words {
            assert!(e.to_string().contains(word), "{}: {e}", kind as char);
        }
    }
    // 8 GiB, the most an octal size field holds, and beyond it in base-256.
    let e = read_tar(&raw_header("x", b'L', (8 << 30) - 1)).unwrap_err();
    assert!(e.to_string().contains("is 8.0 GiB, over the 64 KiB"), "{e}");
    let e = read_tar(&raw_header("x", b'x', 1 << 40)).unwrap_err();
    assert!(e.to_string().contains("is 1024 GiB"), "{e}");
}

#[test]
fn an_unpacked_tar_over_its_limit_is_refused_before_it_is_inflated() {
    // A folder declaring the largest size there is: its padding does not wrap.
    let e = read_tar(&raw_header("app/", b'5', u64::MAX)).unwrap_err();
    assert_eq!(e.code().as_str(), "archive_too_large", "{e}");
    // A folder declaring 1 GiB of content: skipped, but never inflated.
    let e = read_tar(&raw_header("app/", b'5', 1 << 30)).unwrap_err();
    assert_eq!(e.code().as_str(), "archive_too_large");
    assert!(
        e.to_string()
            .contains("the unpacked tar (headers and skipped files included) is 1.0 GiB, over the 32 MiB limit"),
        "{e}"
    );
    // Caches are skipped, not kept, yet still inflated: they count.
    let pyc = vec![0u8; 7 << 20];
    let caches = tar_gz_of(|t| {
        for i in 0..5 {
            let mut h = header(tar::EntryType::Regular, pyc.len() as u64);
            t.append_data(&mut h, format!("__pycache__/m{i}.pyc"), pyc.as_slice())
                .unwrap();
        }
    });
    let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &caches, None).unwrap_err();
    assert!(e.to_string().contains("over the 32 MiB limit"), "{e}");
}

#[test]
fn long_names_in_gnu_ustar_and_pax_form_read_back() {
    let long = format!("app/{}/main.py", "deep".repeat(30));
    let pax_name = format!("app/{}/pax.py", "p".repeat(150));
    let bytes = tar_gz_of(|t| {
        // The GNU header takes the name as a `L` record.
        let mut h = header(tar::EntryType::Regular, MAIN.len() as u64);
        t.append_data(&mut h, &long, MAIN).unwrap();
        // A ustar header splits it into prefix and name.
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("app/{}/ustar.py", "u".repeat(100)))
            .unwrap();
        h.set_size(1);
        h.set_cksum();
        t.append(&h, &b"u"[..]).unwrap();
        t.append_pax_extensions([("path", pax_name.as_bytes())])
            .unwrap();
        let mut h = header(tar::EntryType::Regular, 1);
        h.as_old_mut().name[..5].copy_from_slice(b"short");
        h.set_cksum();
        t.append(&h, &b"p"[..]).unwrap();
    });
    let b = Bundle::from_bytes(InputKind::TarGz, "a.tgz", &bytes, None).unwrap();
    let paths: Vec<&str> = b.files.iter().map(|f| f.path.as_str()).collect();
    let short = |p: &str| p["app/".len()..].to_string();
    let mut expected = [
        short(&long),
        short(&pax_name),
        format!("{}/ustar.py", "u".repeat(100)),
    ];
    expected.sort();
    assert_eq!(paths, expected);
    assert_eq!(b.entry, short(&long));
}

#[test]
fn a_pax_size_is_the_members_size_and_bad_headers_are_refused() {
    let with_pax = |records: &[u8], data: &[u8]| {
        let mut tar = Vec::new();
        tar.extend_from_slice(&raw_header("pax", b'x', records.len() as u64));
        tar.extend_from_slice(records);
        tar.resize(tar.len().next_multiple_of(512), 0);
        tar.extend_from_slice(&raw_header("main.py", b'0', 1));
        tar.extend_from_slice(data);
        tar.resize(tar.len().next_multiple_of(512) + 1024, 0);
        tar
    };
    let b = read_tar(&with_pax(b"10 size=4\n", b"x=1\n")).unwrap();
    assert_eq!(b.files[0].data, b"x=1\n");
    let e = read_tar(&with_pax(b"18 size=999999999\n", b"")).unwrap_err();
    assert_eq!(e, BundleError::TooLarge);
    for malformed in [
        &b"99 path=x\n"[..],
        b"8 path=x",
        b"x path=y\n",
        b"9 size=-\n",
    ] {
        let e = read_tar(&with_pax(malformed, b"x")).unwrap_err();
        assert_eq!(e.code().as_str(), "bad_archive", "{malformed:?}: {e}");
        assert!(e.to_string().contains("PAX"), "{e}");
    }
    let mut damaged = raw_header("main.py", b'0', 0);
    damaged[0] = b'n';
    let e = read_tar(&damaged).unwrap_err();
    assert!(e.to_string().contains("checksum does not match"), "{e}");
    let truncated = raw_header("main.py", b'0', 100);
    let e = read_tar(&truncated).unwrap_err();
    assert!(e.to_string().contains("ends inside a member"), "{e}");
    let e = Bundle::from_bytes(InputKind::TarGz, "a.tgz", b"not gzip", None).unwrap_err();
    assert_eq!(e.code().as_str(), "bad_archive");
    let e = read_tar(&raw_header("disk.img", b'S', 0)).unwrap_err();
    assert!(e.to_string().contains("is a GNU sparse file"), "{e}");
}

#[test]
fn a_zip_directory_too_big_to_parse_is_refused_before_the_zip_reader_sees_it() {
    // Signatures alone: refused as too many before any of it is parsed.
    let spam = b"PK\x01\x02".repeat(MAX_ZIP_RECORDS + 1);
    let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &spam, None).unwrap_err();
    assert_eq!(e, BundleError::TooManyFiles);
    // Central headers whose comments declare 64 KiB each.
    let mut headers = Vec::new();
    for _ in 0..40 {
        let mut fixed = [0u8; 46];
        fixed[..4].copy_from_slice(b"PK\x01\x02");
        fixed[32..34].copy_from_slice(&u16::MAX.to_le_bytes());
        headers.extend_from_slice(&fixed);
    }
    let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &headers, None).unwrap_err();
    assert_eq!(e.code().as_str(), "archive_too_large");
    assert!(
        e.to_string().contains(
            "central directory (names, extra fields and comments) is 2.5 MiB, over the 2 MiB limit"
        ),
        "{e}"
    );
}

#[test]
fn a_zip_declaring_less_than_it_inflates_to_is_never_read_past_the_cap() {
    let zeros = vec![0u8; 64 << 20];
    let mut bomb = zip_of(&[("main.py", MAIN), ("zeros.bin", &zeros)]);
    // Both headers of `zeros.bin` now claim 100 bytes.
    let declared = (zeros.len() as u32).to_le_bytes();
    let mut patched = 0;
    for at in memchr::memmem::find_iter(&bomb.clone(), &declared) {
        bomb[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
        patched += 1;
    }
    assert_eq!(patched, 2);
    let e = Bundle::from_bytes(InputKind::Zip, "a.zip", &bomb, None).unwrap_err();
    assert!(
        e == BundleError::TooLarge || e.code().as_str() == "bad_archive",
        "{e}"
    );
}

#[test]
fn the_committed_app_archive_reads_as_the_tar_crate_reads_it() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/apps/archived_chat.tar.gz");
    let bytes = std::fs::read(path).unwrap();
    let mut by_crate = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    for member in archive.entries().unwrap() {
        let mut member = member.unwrap();
        if member.header().entry_type().is_file() {
            let path = clean_path(&String::from_utf8_lossy(&member.path_bytes())).unwrap();
            let mut data = Vec::new();
            member.read_to_end(&mut data).unwrap();
            by_crate.insert(path, data);
        }
    }
    assert!(by_crate.len() > 1);
    assert_eq!(read_tar_gz(&bytes).unwrap().files, by_crate);
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human_bytes(100), "100 bytes");
    assert_eq!(human_bytes(64 * 1024), "64 KiB");
    assert_eq!(human_bytes(3 << 19), "1.5 MiB");
    assert_eq!(human_bytes(8 << 30), "8 GiB");
}

#[test]
fn the_entry_is_the_guarded_file_or_named_and_errors_name_the_candidates() {
    let files = |entries: &[(&str, &[u8])]| zip_of(entries);
    let two = files(&[("a.py", MAIN), ("b.py", MAIN), ("core/c.py", b"x = 1\n")]);
    let e = Bundle::from_bytes(InputKind::Zip, "x.zip", &two, None).unwrap_err();
    assert_eq!(e.code().as_str(), "ambiguous_entry_point");
    assert!(
        e.to_string().contains("a.py, b.py") && e.to_string().contains("--entry"),
        "{e}"
    );
    let b = Bundle::from_bytes(InputKind::Zip, "x.zip", &two, Some("b.py")).unwrap();
    assert_eq!(b.entry, "b.py");
    let e = Bundle::from_bytes(InputKind::Zip, "x.zip", &two, Some("nope.py")).unwrap_err();
    assert!(
        e.to_string().contains("nope.py") && e.to_string().contains("core/c.py"),
        "{e}"
    );
    // A guard deeper down does not compete with the top one.
    let nested = files(&[("main.py", MAIN), ("core/client.py", MAIN)]);
    let b = Bundle::from_bytes(InputKind::Zip, "x.zip", &nested, None).unwrap();
    assert_eq!(b.entry, "main.py");
    let none = files(&[("a.py", b"x = 1\n"), ("b.py", b"y = 2\n")]);
    let e = Bundle::from_bytes(InputKind::Zip, "x.zip", &none, None).unwrap_err();
    assert_eq!(e.code().as_str(), "no_entry_point");
    assert!(
        e.to_string().contains("a.py, b.py") && e.to_string().contains("--entry"),
        "{e}"
    );
    let one = files(&[("app.py", b"x = 1\n"), ("notes.txt", b"hi")]);
    assert_eq!(
        Bundle::from_bytes(InputKind::Zip, "x.zip", &one, None)
            .unwrap()
            .entry,
        "app.py"
    );
}

#[test]
fn a_notebook_keeps_code_cells_in_order_without_ipython_lines() {
    let nb = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "markdown", "source": ["# A chat app"]},
            {"cell_type": "code", "source": ["%gui qt\n", "!pip install requests\n", "import sys\n"]},
            {"cell_type": "code", "source": "%%bash\necho hi\n"},
            {"cell_type": "code", "source": ["if True:\n", "    files = !ls\n", "    x = 1\n", "sys?\n"]},
            {"cell_type": "code", "source": "app.exec_()\n"},
        ]
    });
    let mut notes = Vec::new();
    let script = notebook_script(&nb.to_string(), &mut notes).unwrap();
    assert!(!script.contains("%gui") && !script.contains("pip") && !script.contains("echo"));
    assert!(script.contains("    pass  # qtjudge"), "{script}");
    let import = script.find("import sys").unwrap();
    let exec = script.find("app.exec_()").unwrap();
    assert!(import < exec);
    assert!(notes.iter().any(|n| n.contains("%%bash")), "{notes:?}");
    let b = Bundle::from_bytes(
        InputKind::Notebook,
        "dir/My Chat.ipynb",
        nb.to_string().as_bytes(),
        None,
    )
    .unwrap();
    assert_eq!(b.entry, "My_Chat.py");
    assert_eq!(b.origin, Origin::Notebook);
    let e =
        Bundle::from_bytes(InputKind::Notebook, "x.ipynb", b"{\"cells\": 3}", None).unwrap_err();
    assert_eq!(e.code().as_str(), "bad_notebook");
}

#[test]
fn a_folder_refuses_symlinks_and_skips_caches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ui/__pycache__")).unwrap();
    std::fs::write(dir.path().join("main.py"), MAIN).unwrap();
    std::fs::write(dir.path().join("ui/window.py"), "class W: pass\n").unwrap();
    std::fs::write(dir.path().join("ui/__pycache__/w.pyc"), "x").unwrap();
    let b = Bundle::from_path(dir.path(), None).unwrap().unwrap();
    assert_eq!(b.origin, Origin::Directory);
    assert_eq!(b.files.len(), 2);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("ui/secret")).unwrap();
    let e = Bundle::from_path(dir.path(), None).unwrap().unwrap_err();
    assert_eq!(e.code().as_str(), "archive_special_file");
    assert!(e.to_string().contains("ui/secret"), "{e}");
}
