//! `sealog export`, `sealog verify-export` and `sealog export approve`, run as a user would:
//! on a data directory, through a running server, with bad input, and with memory that does
//! not grow with the export.

use std::path::Path;

use sealog_testkit::{Api, Cli, ServerProcess, tempdir, wait_for};
use serde_json::{Value, json};

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.join("data"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_export_verifies_offline_and_any_change_fails_it() {
    let dir = tempdir();
    let cli = cli(dir.path());
    cli.ok(&["demo"], b"");
    let out = dir.path().join("chunk.jsonl");
    let made = cli
        .ok(
            &[
                "export",
                "--format",
                "jsonl",
                "--out",
                path(&out),
                "--subject",
                "chunk-7",
            ],
            b"",
        )
        .json();
    assert_eq!(made["count"], 4, "{made}");
    let manifest = dir.path().join("chunk.jsonl.manifest.json");
    let vkey = cli
        .ok(&["checkpoint", "--verifier-key"], b"")
        .stdout
        .trim()
        .to_string();

    // Offline: another directory, no data directory at all.
    let elsewhere = tempdir();
    let offline = Cli::new(env!("CARGO_BIN_EXE_sealog"), &elsewhere.path().join("none"));
    let ok = offline.ok(
        &["verify-export", path(&manifest), "--verifier-key", &vkey],
        b"",
    );
    assert_eq!(ok.json()["status"], "verified");
    assert_eq!(ok.json()["count"], 4);
    assert_eq!(ok.json()["key_pinned"], true);
    assert_eq!(ok.json()["metadata_checked"], true);
    assert!(
        !elsewhere.path().join("none").exists(),
        "verify-export opens no data directory"
    );

    // Unpinned: verified, with a note that the key came from the manifest.
    let unpinned = offline.ok(&["verify-export", path(&manifest)], b"");
    assert!(
        unpinned.stderr.contains("--verifier-key"),
        "{}",
        unpinned.stderr
    );

    // A changed byte in the file: exit 1, the first bad record named.
    let original = std::fs::read(&out).unwrap();
    let mut bad = original.clone();
    let at = bad.iter().position(|&b| b == b'7').unwrap();
    bad[at] = b'8';
    std::fs::write(&out, &bad).unwrap();
    let failed = offline.run(&["verify-export", path(&manifest)], b"");
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(failed.json()["status"], "failed");
    assert!(failed.stderr.contains("record 1"), "{}", failed.stderr);
    std::fs::write(&out, &original).unwrap();

    // Another log's key.
    let other = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("other"));
    other.ok(&["demo"], b"");
    let other_key = other
        .ok(&["checkpoint", "--verifier-key"], b"")
        .stdout
        .trim()
        .to_string();
    let wrong = offline.run(
        &[
            "verify-export",
            path(&manifest),
            "--verifier-key",
            &other_key,
        ],
        b"",
    );
    assert_eq!(wrong.code, 1);

    // The export is in the log it came from, naming who made it.
    let recorded: Vec<Value> = cli
        .all_records()
        .into_iter()
        .filter(|r| r["type"] == "audit.export")
        .collect();
    assert_eq!(recorded.len(), 1);
    let data = &recorded[0]["data"];
    assert_eq!(
        (data["channel"].as_str(), data["count"].as_u64()),
        (Some("cli"), Some(4))
    );
    assert_eq!(data["sha256"], made["sha256"]);
    assert!(data["local_user"]["uid"].is_u64());
    cli.assert_verifies();
}

#[test]
fn an_existing_file_an_unknown_axis_and_a_missing_directory_are_refused() {
    let dir = tempdir();
    let cli = cli(dir.path());
    cli.ok(&["demo"], b"");
    let out = dir.path().join("x.parquet");
    std::fs::write(&out, b"precious").unwrap();
    let refused = cli.run(&["export", "--format", "parquet", "--out", path(&out)], b"");
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious", "untouched");
    let forced = cli.ok(
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            path(&out),
            "--force",
        ],
        b"",
    );
    assert_eq!(forced.json()["format"], "parquet");
    cli.ok(
        &[
            "verify-export",
            path(&dir.path().join("x.parquet.manifest.json")),
        ],
        b"",
    );

    let unknown = cli.run(
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            path(&dir.path().join("y.jsonl")),
            "--axis",
            "colour=red",
        ],
        b"",
    );
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown axis"),
        "{}",
        unknown.stderr
    );
    let missing = cli.run(
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            path(&dir.path().join("no/such/y.jsonl")),
        ],
        b"",
    );
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("not a directory"),
        "{}",
        missing.stderr
    );
    let no_format = cli.run(&["export", "--out", path(&dir.path().join("z.jsonl"))], b"");
    assert_eq!(no_format.code, 2);
    let bundle_of_nothing = cli.run(&["export", "--bundle", path(&dir.path().join("b"))], b"");
    assert_eq!(bundle_of_nothing.code, 2);
    assert!(
        bundle_of_nothing
            .stderr
            .contains("--subject or --data-subject")
    );
    let past = cli.run(
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            path(&dir.path().join("p.jsonl")),
            "--as-of",
            "100000",
        ],
        b"",
    );
    assert_eq!(past.code, 2);
    assert!(past.stderr.contains("past the end"), "{}", past.stderr);
    let not_a_manifest = cli.run(&["verify-export", path(&out)], b"");
    assert_eq!(not_a_manifest.code, 1);
    for name in ["y.jsonl", "z.jsonl", "p.jsonl"] {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    assert!(!dir.path().join("b").exists());
}

#[test]
fn a_bundle_holds_a_history_and_proves_it() {
    let dir = tempdir();
    let cli = cli(dir.path());
    cli.ok(&["demo"], b"");
    let bundle = dir.path().join("evidence");
    let made = cli
        .ok(
            &["export", "--subject", "chunk-7", "--bundle", path(&bundle)],
            b"",
        )
        .json();
    assert_eq!(made["count"], 4);
    for f in [
        "records.jsonl",
        "records.jsonl.proof",
        "records.jsonl.manifest.json",
        "checkpoint",
        "log.pub",
        "README.md",
    ] {
        assert!(bundle.join(f).is_file(), "{f}");
    }
    assert!(
        bundle
            .join("schemas/knowledge.chunk_modified.schema.json")
            .is_file()
    );
    // A data subject's records: owner-only, every file and directory of it.
    for entry in walk(&bundle) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", entry.display());
    }
    let readme = std::fs::read_to_string(bundle.join("README.md")).unwrap();
    assert!(readme.contains("sealog verify-export"));
    let manifest = bundle.join("records.jsonl.manifest.json");
    let key = bundle.join("log.pub");
    let v = cli
        .ok(
            &[
                "verify-export",
                path(&manifest),
                "--verifier-key",
                path(&key),
            ],
            b"",
        )
        .json();
    assert_eq!(
        (v["status"].as_str(), v["count"].as_u64()),
        (Some("verified"), Some(4))
    );
    // Its checkpoint is the manifest's, and signed by the log's key.
    let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_to_string(bundle.join("checkpoint")).unwrap(),
        m["checkpoint"].as_str().unwrap()
    );
    let again = cli.run(
        &["export", "--subject", "chunk-7", "--bundle", path(&bundle)],
        b"",
    );
    assert_eq!(again.code, 2, "a bundle is not written over another");

    // Cut at a tree size, a bundle is made again byte for byte, though each bundle made is
    // recorded in the log and the log grows between them.
    let cut = (m["tree_size"].as_u64().unwrap() - 1).to_string();
    let made_at = |name: &str| {
        let b = dir.path().join(name);
        cli.ok(
            &[
                "export",
                "--subject",
                "chunk-7",
                "--bundle",
                path(&b),
                "--as-of",
                &cut,
            ],
            b"",
        );
        let read = |f: &str| std::fs::read(b.join(f)).unwrap();
        (read("records.jsonl"), read("records.jsonl.manifest.json"))
    };
    let (records, manifest) = made_at("cut-1");
    assert_eq!(made_at("cut-2"), (records, manifest.clone()));
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["filters"]["as_of"].to_string(), cut, "{m}");
}

#[test]
fn an_export_through_a_server_is_made_there_and_downloaded() {
    let dir = tempdir();
    let cli = cli(dir.path());
    cli.ok(&["demo"], b"");
    let (admin, _) = cli.create_key(&["admin"], None, None);
    let (second, _) = cli.create_key(&["admin"], None, None);
    let (auditor, _) = cli.create_key(&["auditor"], None, None);
    let server = ServerProcess::start(&cli, &["--export-approval-above", "10"]);
    let url = server.url();
    let remote = |key: &str, args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--url", url.as_str(), "--key", key]);
        cli.run(&a, b"")
    };
    let out = dir.path().join("remote.jsonl");
    let made = remote(
        &auditor,
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            path(&out),
            "--subject",
            "chunk-7",
        ],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let v = cli
        .ok(
            &[
                "verify-export",
                path(&dir.path().join("remote.jsonl.manifest.json")),
            ],
            b"",
        )
        .json();
    assert_eq!(v["count"], 4);

    let bundle = dir.path().join("remote-bundle");
    let b = remote(
        &auditor,
        &["export", "--subject", "chunk-7", "--bundle", path(&bundle)],
    );
    assert_eq!(b.code, 0, "{}", b.stderr);
    cli.ok(
        &[
            "verify-export",
            path(&bundle.join("records.jsonl.manifest.json")),
            "--verifier-key",
            path(&bundle.join("log.pub")),
        ],
        b"",
    );

    // More records than the server exports unapproved: it waits for a second admin.
    let big = dir.path().join("all.jsonl");
    let pending = remote(
        &admin,
        &["export", "--format", "jsonl", "--out", path(&big)],
    );
    assert_eq!(pending.code, 1, "{}", pending.stderr);
    assert!(pending.stderr.contains("approve"), "{}", pending.stderr);
    let id = pending.json()["id"].as_str().unwrap().to_string();
    assert!(!big.exists());
    let own = remote(&admin, &["export", "approve", &id]);
    assert_eq!(own.code, 1, "an admin does not approve its own export");
    let approved = remote(&second, &["export", "approve", &id]);
    assert_eq!(approved.code, 0, "{} {}", approved.stdout, approved.stderr);
    wait_for(60, "the approved export", || {
        let s = server
            .get(&format!("/v1/exports/{id}/status"), Some(&admin))
            .json();
        (s["state"] == "done").then_some(())
    });
    server.stop();
    let types: Vec<String> = cli
        .all_records()
        .iter()
        .filter(|r| r["type"].as_str().unwrap().starts_with("audit.export"))
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "audit.export").count(),
        3,
        "{types:?}"
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "audit.export_approved")
            .count(),
        1
    );
}

/// Peak resident memory of one child process, from `wait4` (which also reaps it).
#[allow(unsafe_code, clippy::zombie_processes)]
fn peak_rss_kib(mut command: std::process::Command) -> (i32, i64) {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: `rusage` is plain data filled in by the kernel; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (status, usage.ru_maxrss)
}

#[test]
fn exporting_and_verifying_take_memory_that_does_not_grow_with_the_export() {
    // Two logs, one three times the other, of ~1 KiB records: the larger export must not
    // need memory in proportion to its records. What does grow — an order key, a seq and a
    // leaf hash per record, and the writers' own bookkeeping — is 100 to 300 bytes a record
    // (debug build), well under the third of a record allowed here; holding the records
    // would cost the whole of them.
    let dir = tempdir();
    let mut peaks = Vec::new();
    for (name, n) in [("small", 16_000u64), ("large", 48_000)] {
        let cli =
            Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join(name)).accepting_undeclared();
        // Written to a file one event at a time: this process's memory must stay small, as
        // a child's peak RSS counts the parent's pages until it executes.
        let input = dir.path().join(format!("{name}.ndjson"));
        {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
            let padding = "p".repeat(900);
            for i in 0..n {
                let e = json!({"specversion": "1.0", "id": format!("e{i}"), "source": "rss", "type": "rss.kind",
                       "time": format!("2026-01-0{}T00:00:00Z", 1 + i % 9), "subject": format!("s{}", i % 97),
                       "data": {"i": i, "pad": padding}});
                writeln!(w, "{e}").unwrap();
            }
        }
        let (status, _) =
            peak_rss_kib(cli.command(&["--durability", "os", "append", path(&input)]));
        assert_eq!(status, 0, "append");
        let mut row = Vec::new();
        for format in ["jsonl", "parquet"] {
            let out = dir.path().join(format!("{name}.{format}"));
            let (status, rss) = peak_rss_kib(cli.command(&[
                "export",
                "--format",
                format,
                "--out",
                path(&out),
                "--type",
                "rss.kind",
            ]));
            assert_eq!(status, 0, "{name} {format} export");
            let manifest = dir.path().join(format!("{name}.{format}.manifest.json"));
            let (status, vrss) = peak_rss_kib(cli.command(&["verify-export", path(&manifest)]));
            assert_eq!(status, 0, "{name} {format} verify-export");
            row.push((std::fs::metadata(&out).unwrap().len(), rss, vrss));
        }
        peaks.push(row);
    }
    // The records' size is the JSONL file's (Parquet compresses them).
    let grown_kib = (peaks[1][0].0 - peaks[0][0].0) as i64 / 1024;
    for (i, format) in ["jsonl", "parquet"].iter().enumerate() {
        let (small, large) = (peaks[0][i], peaks[1][i]);
        for (what, a, b) in [
            ("export", small.1, large.1),
            ("verify-export", small.2, large.2),
        ] {
            assert!(
                b - a < grown_kib / 3,
                "{format} {what}: peak RSS {a} KiB → {b} KiB while the records grew by {grown_kib} KiB"
            );
        }
    }
}

/// A directory and everything under it.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
