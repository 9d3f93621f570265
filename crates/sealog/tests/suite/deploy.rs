//! `deploy/`: the systemd unit passes `systemd-analyze verify` (its command and manual pages
//! resolved to this build's) and its sandbox rates well in `systemd-analyze security`; the
//! container image's settings are ones this binary takes; `sealog health` says whether a
//! real server is ready. The image itself is not built on these machines (no container
//! engine); `scripts/static-binary` builds and runs the static binary it would hold.

use std::path::{Path, PathBuf};
use std::process::Command;

use sealog_testkit::{Cli, ServerProcess, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_sealog");

fn deploy(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze`, or a loud skip outside CI when the machine has none.
fn systemd_analyze() -> Option<PathBuf> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing: .ci/run installs systemd"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed (Debian package systemd)");
    }
    found
}

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempdir();
    let man = dir.path().join("man");
    let out = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(man.join("man1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit = deploy("sealog.service").replace("/usr/local/bin/sealog", BIN);
    let path = dir.path().join("sealog.service");
    std::fs::write(&path, &unit).unwrap();
    let verify = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Exposure 0 (locked down) to 10 (unprotected), given here in tenths; systemd calls up to
    // 2.x "OK".
    let security = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "systemd-analyze security: {}",
        String::from_utf8_lossy(&security.stdout)
    );
    // The command it runs is one this binary takes, with the config `sealog init` writes.
    let config = dir.path().join("sealog.toml");
    let init = Command::new(BIN)
        .args(["init", "--out"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .replace("/etc/sealog/sealog.toml", config.to_str().unwrap());
    let mut words = exec.split_whitespace().skip(1).collect::<Vec<_>>();
    words.push("--help");
    let help = Command::new(BIN).args(&words).output().unwrap();
    assert!(help.status.success(), "{exec}: {help:?}");
}

#[test]
fn the_images_settings_and_health_check_are_this_binarys() {
    let file = deploy("Containerfile");
    assert!(file.contains("+crt-static") && file.contains("USER 65532"));
    assert!(file.contains("VOLUME [\"/var/lib/sealog\"]"));
    // Each SEALOG_ variable the image sets is one the CLI reads, with a value it takes.
    let dir = tempdir();
    let mut env = Vec::new();
    for line in file.lines() {
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.trim_end_matches('\\').split_once('=')
                && k.starts_with("SEALOG_")
            {
                env.push((k.to_string(), v.to_string()));
            }
        }
    }
    assert_eq!(env.len(), 3, "{env:?}");
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (k, _) in &env {
        assert!(
            help.contains(&format!("env: {k}=")),
            "{k} is not a flag's variable"
        );
    }
    // The health check answers 2 with no server, 0 once one is ready.
    let down = Command::new(BIN)
        .args(["health", "--url", "http://127.0.0.1:1", "--timeout-s", "2"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(2), "{down:?}");
    let cli = Cli::new(BIN, &dir.path().join("data"));
    let server = ServerProcess::start(&cli, &[]);
    let up = Command::new(BIN)
        .args(["health", "--url", &server.url()])
        .output()
        .unwrap();
    assert_eq!(up.status.code(), Some(0), "{up:?}");
    assert!(file.contains("\"health\", \"--url\", \"http://127.0.0.1:7700\""));
    server.stop();
}
