//! An export killed with SIGKILL while it writes leaves nothing under the names it was
//! writing: the file, its proof and its manifest appear only whole, by rename.

use std::path::Path;

use sealog_testkit::{Cli, tempdir, wait_for};
use serde_json::json;

fn partial_of(dir: &Path, name: &str) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let e = e.ok()?;
        let n = e.file_name().to_string_lossy().into_owned();
        (n.starts_with(&format!(".{name}.")) && n.ends_with(".partial"))
            .then(|| e.metadata().map_or(0, |m| m.len()))
    })
}

#[test]
fn an_export_killed_midway_leaves_nothing_under_its_names() {
    let dir = tempdir();
    let cli =
        Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data")).accepting_undeclared();
    let input = dir.path().join("events.ndjson");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let padding = "k".repeat(2000);
        for i in 0..30_000u64 {
            let e = json!({"specversion": "1.0", "id": format!("e{i}"), "source": "kill", "type": "kill.kind",
                           "time": "2026-01-01T00:00:00Z", "subject": format!("s{i}"), "data": {"pad": padding}});
            writeln!(w, "{e}").unwrap();
        }
    }
    let mut append = cli.command(&["--durability", "os", "append", input.to_str().unwrap()]);
    append.stdout(std::process::Stdio::null());
    let run = sealog_testkit::cli::run_command(append, b"", std::time::Duration::from_secs(600));
    assert_eq!(run.code, 0, "{}", run.stderr);

    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("all.parquet");
    let mut child = cli
        .command(&[
            "export",
            "--format",
            "parquet",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once it has written part of the file (0: it ended first).
    let killed_midway = wait_for(300, "the export to start writing", || {
        if let Some(n) = partial_of(&out_dir, "all.parquet").filter(|&n| n > 0) {
            return Some(n);
        }
        child.try_wait().unwrap().map(|_| 0)
    });
    sealog_testkit::cli::signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let names = [
        out.clone(),
        out_dir.join("all.parquet.proof"),
        out_dir.join("all.parquet.manifest.json"),
    ];
    assert!(
        killed_midway > 0,
        "the export ended before it could be killed midway; give it a larger log"
    );
    for n in &names {
        assert!(!n.exists(), "{} exists after a kill midway", n.display());
    }
    // The next export under the same name is whole, and verifies.
    let again = cli.run(
        &[
            "export",
            "--format",
            "parquet",
            "--out",
            out.to_str().unwrap(),
            "--force",
        ],
        b"",
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let v = cli
        .ok(&["verify-export", names[2].to_str().unwrap()], b"")
        .json();
    assert_eq!(v["status"], "verified");
    assert!(v["count"].as_u64().unwrap() >= 30_000);
}
