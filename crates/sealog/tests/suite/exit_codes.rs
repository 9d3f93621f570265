//! One exit-code rule for every command, locally and as a client of a server (`--url`):
//! 0 success, 1 the command ran but refused or could not find something, 2 it could not run.
//! The README's table states the same rule.

use sealog_testkit::files::flip_byte;
use sealog_testkit::{Cli, ServerProcess, tempdir};

const ZERO: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn expect(cli: &Cli, cases: &[(&[&str], &[u8], i32)], mode: &str) {
    for (args, stdin, code) in cases {
        let run = cli.run(args, stdin);
        assert_eq!(
            run.code, *code,
            "{mode}: sealog {args:?} exited {} (expected {code}); stderr: {}",
            run.code, run.stderr
        );
        if *code != 0 {
            assert!(
                !(run.stderr.trim().is_empty() && run.stdout.trim().is_empty()),
                "{mode}: sealog {args:?} exited {code} without saying why"
            );
        }
    }
}

#[test]
fn every_command_answers_0_1_or_2_by_the_same_rule() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    cli.ok(&["demo"], b"");
    let quarantined = br#"{"id":"x","source":"t","type":"nobody.declares_this","time":"2026-01-01T00:00:00Z","data":{}}"#;
    let first = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson"),
    )
    .unwrap();
    let first = first.lines().next().unwrap().to_string();
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, &first).unwrap();
    let events = events.to_str().unwrap();
    let missing = dir.path().join("no-such-file");
    let missing = missing.to_str().unwrap();
    let local: &[(&[&str], &[u8], i32)] = &[
        (&["append", "-"], first.as_bytes(), 0),
        (&["append", "-"], b"", 2),
        (&["append", "-"], quarantined, 1),
        (&["append", "-"], b"not json\n", 1),
        (&["append", events], b"", 0),
        (&["append", missing], b"", 2),
        (&["get", "0"], b"", 0),
        (&["get", "999"], b"", 1),
        (&["get", ZERO], b"", 1),
        (&["get", "nonsense"], b"", 2),
        (&["query", "--subject", "chunk-7"], b"", 0),
        (&["query", "--subject", "nobody"], b"", 0),
        (&["query", "--from", "garbage"], b"", 2),
        (&["query", "--axis", "no_such_axis=1"], b"", 2),
        (&["query", "--no-such-flag"], b"", 2),
        (&["state", "--subject", "chunk-7"], b"", 0),
        (&["state", "--subject", "nobody"], b"", 1),
        (
            &["state", "--subject", "chunk-7", "--valid-at", "garbage"],
            b"",
            2,
        ),
        (&["quarantine"], b"", 0),
        (&["quarantine", "--reason", "NOPE"], b"", 2),
        (&["checkpoint"], b"", 0),
        (&["checkpoint", "--verifier-key"], b"", 0),
        (&["prove", "inclusion", "3"], b"", 0),
        (&["prove", "inclusion", "999"], b"", 1),
        (&["prove", "inclusion", "3", "--size", "2"], b"", 1),
        (&["prove", "inclusion", "x"], b"", 2),
        (&["prove", "consistency", "5", "9"], b"", 0),
        (&["prove", "consistency", "5", "999"], b"", 1),
        (&["prove", "consistency", "9", "5"], b"", 1),
        (&["verify"], b"", 0),
        (&["verify", "--since", missing], b"", 2),
        (&["keys", "list"], b"", 0),
        (&["keys", "revoke", "key_nonesuch"], b"", 1),
        (&["keys", "create", "--role", "nobody"], b"", 2),
        (&["serve", "--listen", "not-an-address"], b"", 2),
    ];
    expect(&cli, local, "local");

    // The same commands as a client of a server on that directory.
    let srv = ServerProcess::start(&cli, &[]);
    let url = srv.url();
    let remote: Vec<(Vec<&str>, &[u8], i32)> = [
        (&["get", "0"][..], &b""[..], 0),
        (&["get", "999"], b"", 1),
        (&["get", "nonsense"], b"", 2),
        (&["query", "--subject", "chunk-7"], b"", 0),
        (&["query", "--subject", "nobody"], b"", 0),
        (&["state", "--subject", "chunk-7"], b"", 0),
        (&["state", "--subject", "nobody"], b"", 1),
        (&["quarantine"], b"", 0),
        (&["checkpoint"], b"", 0),
        (&["prove", "inclusion", "3"], b"", 0),
        (&["prove", "inclusion", "999"], b"", 1),
        (&["prove", "consistency", "5", "999"], b"", 1),
        (&["append", "-"], quarantined, 1),
    ]
    .into_iter()
    .map(|(args, stdin, code)| {
        let mut a = args.to_vec();
        a.extend(["--url", url.as_str()]);
        (a, stdin, code)
    })
    .collect();
    let remote: Vec<(&[&str], &[u8], i32)> = remote
        .iter()
        .map(|(a, s, c)| (a.as_slice(), *s, *c))
        .collect();
    expect(&cli, &remote, "client");
    srv.stop();
    let unreachable: &[(&[&str], &[u8], i32)] = &[(&["get", "0", "--url", url.as_str()], b"", 2)];
    expect(&cli, unreachable, "client of a stopped server");

    // Damage found is a refusal to vouch for the log, not a failure to run.
    let segment = dir.path().join("data/log/00000000000000000000.seg");
    flip_byte(&segment, 200);
    expect(
        &cli,
        &[(&["verify"], b"", 1), (&["check", "--full"], b"", 1)],
        "damaged",
    );
}

/// Output that cannot be written (here `/dev/full`, which answers every write with ENOSPC)
/// fails the command by the same rule, never by a panic (exit 101): a result on standard
/// output that was not written is an error; a note on standard error that was not written is
/// lost, and `check`, whose summary is written there, fails.
#[test]
fn output_that_cannot_be_written_fails_the_command_without_a_panic() {
    let full = std::path::Path::new("/dev/full");
    if !full.exists() {
        eprintln!("\n*** SKIPPED: this system has no /dev/full ***\n");
        assert!(
            !sealog_testkit::under_ci(),
            "CI runs where /dev/full exists"
        );
        return;
    }
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    cli.ok(&["demo"], b"");
    cli.ok(
        &["hold", "place", "--tenant", "acme", "--reason", "inquiry 9"],
        b"",
    );
    let out = dir.path().join("chunk.jsonl");
    let out = out.to_str().unwrap();
    let prints: [&[&str]; 8] = [
        &["get", "0"],
        &["query", "--limit", "5"],
        &["checkpoint"],
        &["checkpoint", "--verifier-key"],
        &["verify"],
        &["hold", "list"],
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            out,
            "--force",
            "--subject",
            "chunk-7",
        ],
        &["check"],
    ];
    let run = |args: &[&str], stdout: bool| {
        let mut c = cli.command(args);
        let sink = std::fs::OpenOptions::new().write(true).open(full).unwrap();
        if stdout {
            c.stdout(sink).stderr(std::process::Stdio::piped());
        } else {
            c.stdout(std::process::Stdio::piped()).stderr(sink);
        }
        c.output().unwrap()
    };
    for args in prints {
        let o = run(args, true);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "sealog {args:?} > /dev/full: {stderr}"
        );
        assert!(
            stderr.contains("No space left on device") && !stderr.contains("panicked"),
            "sealog {args:?} > /dev/full names the cause: {stderr}"
        );
    }
    for args in prints {
        let o = run(args, false);
        let code = o.status.code();
        let want = if args[0] == "check" { Some(2) } else { Some(0) };
        assert_eq!(code, want, "sealog {args:?} 2> /dev/full");
    }
    cli.assert_verifies();
}
