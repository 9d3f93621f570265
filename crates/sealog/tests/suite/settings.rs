//! Settings from the command line, the environment and a config file, first match wins,
//! through the real binary: where the data goes, and a server limit set each way; a key no
//! flag has is refused naming the file; `sealog init` writes a starter that the binary reads
//! back with every setting it shows uncommented.

use std::path::Path;
use std::process::Command;

use sealog_testkit::{Api, ServerProcess, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_sealog");

/// `sealog ARGS` in `dir`, with no SEALOG_ variable but those given.
fn sealog(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("SEALOG_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied()).args(args);
    c
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = sealog(dir, args, env).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_beats_the_environment_which_beats_the_file() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("sealog.toml"), "data = \"./from-file\"\n").unwrap();
    let config = ["--config", "sealog.toml"];
    let checkpoint = |extra: &[&str], env: &[(&str, &str)]| {
        let args: Vec<&str> = config.iter().chain(extra).copied().collect();
        let (code, err) = run(d, &args, env);
        assert_eq!(code, 0, "{args:?} {env:?}: {err}");
    };
    checkpoint(&["checkpoint"], &[]);
    assert!(d.join("from-file/log").is_dir() || d.join("from-file").is_dir());
    checkpoint(&["checkpoint"], &[("SEALOG_DATA", "./from-env")]);
    assert!(d.join("from-env").is_dir());
    checkpoint(
        &["--data", "./from-cli", "checkpoint"],
        &[("SEALOG_DATA", "./from-env-2")],
    );
    assert!(d.join("from-cli").is_dir() && !d.join("from-env-2").exists());
    // SEALOG_CONFIG names the file when --config does not.
    std::fs::write(d.join("other.toml"), "data = \"./from-other\"\n").unwrap();
    let (code, err) = run(d, &["checkpoint"], &[("SEALOG_CONFIG", "other.toml")]);
    assert_eq!(code, 0, "{err}");
    assert!(d.join("from-other").is_dir());
    assert!(
        !d.join("sealog-data").exists(),
        "the default was never used"
    );
}

#[test]
fn a_servers_limit_set_in_the_file_holds_unless_the_environment_says_otherwise() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(
        d.join("sealog.toml"),
        "[serve]\nlisten = \"127.0.0.1:0\"\nbody-bytes-max = 512\n",
    )
    .unwrap();
    let body = serde_json::json!({"id": "x", "source": "s", "type": "t.x",
        "time": "2026-01-01T00:00:00Z", "data": {"pad": "p".repeat(2000)}});
    let post = |env: &[(&str, &str)]| {
        let data = d.join(format!("data-{}", env.len()));
        let data = data.to_str().unwrap();
        let cmd = sealog(
            d,
            &["--config", "sealog.toml", "--data", data, "serve"],
            env,
        );
        let server = ServerProcess::spawn(cmd, Path::new(data));
        let status = server.post_json("/v1/events", None, &body).status;
        server.stop();
        status
    };
    assert_eq!(post(&[]), 413, "the file's limit");
    assert_ne!(
        post(&[("SEALOG_SERVE_BODY_BYTES_MAX", "100000")]),
        413,
        "the environment's limit"
    );
}

#[test]
fn a_setting_no_flag_has_is_refused_naming_the_file() {
    let dir = tempdir();
    let d = dir.path();
    for (text, says) in [
        ("[serve]\nlisten-on = \"x\"\n", "no flag --listen-on"),
        ("nonsense = 1\n", "no flag --nonsense"),
        ("[srve]\nlisten = \"x\"\n", "no such command"),
        ("[serve]\nlisten = [\"a\", \"b\"]\n", "takes one value"),
        ("data = \n", "sealog.toml"),
    ] {
        std::fs::write(d.join("sealog.toml"), text).unwrap();
        let (code, err) = run(d, &["--config", "sealog.toml", "checkpoint"], &[]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(
            err.contains("sealog.toml") && err.contains(says),
            "{text}: {err}"
        );
    }
    let (code, err) = run(d, &["--config", "missing.toml", "checkpoint"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn init_writes_a_starter_every_setting_of_which_reads_back() {
    let dir = tempdir();
    let d = dir.path();
    let (code, err) = run(d, &["init"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(d, &["init"], &[]);
    assert_eq!(code, 2, "an existing file is not overwritten");
    assert!(err.contains("sealog.toml"), "{err}");
    let text = std::fs::read_to_string(d.join("sealog.toml")).unwrap();
    for var in [
        "SEALOG_DATA",
        "SEALOG_SERVE_LISTEN",
        "SEALOG_SERVE_NATS_ACK_WAIT_S",
    ] {
        assert!(text.contains(var), "{var}");
    }
    // Every setting with a value shown, uncommented: the binary takes the file as it is.
    let mut settings = 0;
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(s) if s.contains(" = ") && !s.contains(" = \"\"") && s.contains("# SEALOG_") => {
                settings += 1;
                format!("{s}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(settings >= 25, "{settings} settings shown");
    std::fs::write(d.join("all.toml"), uncommented).unwrap();
    let (code, err) = run(d, &["--config", "all.toml", "checkpoint"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        d.join("sealog-data").is_dir(),
        "the default data directory, from the file"
    );
}
