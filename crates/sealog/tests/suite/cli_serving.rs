//! The read commands beside a running `sealog serve`: on the server's own data directory they
//! open it read-only and see what the server acknowledged; as clients (`--url URL --key KEY`)
//! they print the same answers; `verify --strict` refuses records no checkpoint vouches for.

use std::path::Path;

use sealog_testkit::Api;
use sealog_testkit::events::{event, examples, ndjson};
use sealog_testkit::{Cli, Run, ServerProcess};
use serde_json::Value;

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir)
}

/// Posts NDJSON events and returns the server's results.
fn post(server: &ServerProcess, key: Option<&str>, events: &[Value]) -> Vec<Value> {
    let body = ndjson(events);
    let resp = server.req(
        "POST",
        "/v1/events",
        key,
        Some(("application/x-ndjson", &body)),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let results = resp.json()["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), events.len());
    results
}

/// A read command run on the data directory the server holds: it must succeed and say that
/// it read what the server made durable, read-only.
fn beside(cli: &Cli, args: &[&str]) -> Run {
    let run = cli.ok(args, b"");
    assert!(
        run.stderr.contains("read-only"),
        "{args:?} did not say it read beside the server: {}",
        run.stderr
    );
    run
}

/// The same command as a client of the server.
fn remote(cli: &Cli, server: &ServerProcess, key: &str, args: &[&str]) -> Run {
    let url = server.url();
    let mut full = args.to_vec();
    full.extend(["--url", &url, "--key", key]);
    cli.ok(&full, b"")
}

/// The signed root of the checkpoint note of this size in `checkpoints/log`, if there is one.
fn signed_root(data: &Path, size: u64) -> Option<String> {
    let (notes, _) = sealog_testkit::format::checkpoint_notes(&data.join("checkpoints/log"));
    notes.iter().find_map(|n| {
        let mut lines = n.lines().skip(1);
        (lines.next()? == size.to_string()).then(|| lines.next().map(str::to_string))?
    })
}

#[test]
fn every_read_command_reads_beside_the_server_and_answers_as_its_client_alike() {
    let tmp = sealog_testkit::tempdir();
    let data = tmp.path().join("data");
    let cli = cli(&data);
    let (writer, _) = cli.create_key(&["writer"], None, None);
    let server = ServerProcess::start(&cli, &[]);
    // A key made while the server runs works at once.
    let (auditor, _) = cli.create_key(&["auditor"], None, None);

    let mut unknown = event("no-pack", None, "s1", "made.up");
    unknown["source"] = "cli-serving".into();
    let mut sent = examples();
    sent.push(unknown);
    let results = post(&server, Some(&writer), &sent);
    let appended: Vec<(u64, Value)> = results
        .iter()
        .filter(|r| r["status"] == "appended")
        .map(|r| (r["seq"].as_u64().unwrap(), r["record_id"].clone()))
        .collect();
    assert_eq!(appended.len(), sent.len() - 1, "{results:?}");
    let quarantined = results.last().unwrap();
    assert_eq!(
        quarantined["reason_code"], "UNKNOWN_EVENT_TYPE",
        "{quarantined}"
    );
    let size = appended.iter().map(|(seq, _)| seq + 1).max().unwrap();
    let size_arg = size.to_string();

    // get: every acknowledged record, byte for byte the same both ways.
    for (seq, record_id) in &appended {
        let local = beside(&cli, &["get", &seq.to_string()]);
        assert_eq!(&local.lines()[0]["record_id"], record_id);
        let by_url = remote(&cli, &server, &auditor, &["get", &seq.to_string()]);
        assert_eq!(local.stdout, by_url.stdout, "get {seq}");
    }

    // query: the server's reads are themselves recorded, so the log grows as the test reads
    // it; at a fixed tree size both ways print the same records.
    let listed = beside(&cli, &["query"]).lines();
    for (seq, record_id) in &appended {
        assert_eq!(&listed[*seq as usize]["record_id"], record_id, "seq {seq}");
    }
    let local = beside(&cli, &["query", "--as-of", &size_arg]);
    assert_eq!(local.lines().len() as u64, size);
    let by_url = remote(&cli, &server, &auditor, &["query", "--as-of", &size_arg]);
    assert_eq!(local.stdout, by_url.stdout);

    // state
    let args = ["state", "--subject", "chunk-7", "--as-of", &size_arg];
    let local = beside(&cli, &args);
    assert_ne!(local.json()["status"], "absent", "{}", local.stdout);
    assert_eq!(local.stdout, remote(&cli, &server, &auditor, &args).stdout);

    // quarantine
    let local = beside(&cli, &["quarantine"]);
    let found = local.lines();
    assert_eq!(found.len(), 1, "{}", local.stdout);
    assert_eq!(found[0]["record_id"], quarantined["quarantine_id"]);
    let by_url = remote(&cli, &server, &auditor, &["quarantine"]);
    assert_eq!(local.stdout, by_url.stdout);

    // checkpoint: the server signs one over everything it has; beside it, that is the newest
    // there is. Nothing is appended in between: neither command is a recorded read.
    let signed = remote(&cli, &server, &auditor, &["checkpoint"]).stdout;
    let local = beside(&cli, &["checkpoint"]);
    assert_eq!(local.stdout, signed);
    let old_size: u64 = signed.lines().nth(1).unwrap().parse().unwrap();
    assert!(old_size >= size, "{signed}");
    let old_checkpoint = tmp.path().join("old.checkpoint");
    std::fs::write(&old_checkpoint, &signed).unwrap();
    let vkey = beside(&cli, &["checkpoint", "--verifier-key"]).stdout;
    assert_eq!(
        vkey,
        std::fs::read_to_string(data.join("keys/log.pub")).unwrap()
    );
    assert_eq!(
        vkey,
        remote(&cli, &server, &auditor, &["checkpoint", "--verifier-key"]).stdout
    );

    // prove: beside the server first, so that the newest checkpoint is the same for both
    // (the server records the inclusion proof it gives, after giving it).
    let (last_seq, _) = appended.last().unwrap();
    let args = ["prove", "inclusion", &last_seq.to_string()];
    let local = beside(&cli, &args);
    assert_eq!(local.json()["tree_size"], old_size);
    assert_eq!(local.json()["checkpoint"], Value::String(signed.clone()));
    assert_eq!(local.json(), remote(&cli, &server, &auditor, &args).json());
    let args = ["prove", "consistency", "1", &old_size.to_string()];
    let local = beside(&cli, &args);
    assert_eq!(local.json()["to"], old_size);
    assert_eq!(local.json(), remote(&cli, &server, &auditor, &args).json());

    // More events after the saved checkpoint, for `--since`.
    let later: Vec<Value> = (0..5)
        .map(|i| event(&format!("later-{i}"), None, "s1", "made.up"))
        .collect();
    post(&server, Some(&writer), &later);

    // verify beside the server: up to what it has made durable, and it says so.
    let since = old_checkpoint.to_str().unwrap();
    let run = cli.ok(&["verify", "--since", since], b"");
    let report = run.json();
    assert_eq!(report["status"], "intact", "{report}");
    assert_eq!(report["since_size"], old_size);
    assert_eq!(report["writer_durable"], report["records"], "{report}");
    assert!(report["records"].as_u64().unwrap() >= old_size, "{report}");
    assert!(
        run.stderr.contains("a process is writing this log"),
        "{}",
        run.stderr
    );

    // verify as a client: the tree rebuilt from the entry bundles has the signed root, and
    // it extends the saved checkpoint; with the key from outside, and with the server's.
    let key_file = data.join("keys/log.pub");
    for extra in [vec!["--verifier-key", key_file.to_str().unwrap()], vec![]] {
        let mut args = vec!["verify", "--since", since];
        args.extend(&extra);
        let report = remote(&cli, &server, &auditor, &args).json();
        assert_eq!(report["status"], "intact", "{report}");
        assert_eq!(report["source"], "server");
        assert_eq!(report["since_size"], old_size);
        let records = report["records"].as_u64().unwrap();
        assert!(records > old_size, "the later events are covered: {report}");
        assert_eq!(
            signed_root(&data, records).as_deref(),
            report["root"].as_str(),
            "{report}"
        );
    }
    // What only a data directory can be checked for is refused, not passed over.
    for (extra, says) in [
        (vec!["--full"], "--full checks a data directory"),
        (vec!["--trusted", since], "--trusted and --witness"),
        (vec!["--witness-quorum", "1"], "--trusted and --witness"),
    ] {
        let url = server.url();
        let mut args = vec!["verify", "--url", &url, "--key", &auditor];
        args.extend(&extra);
        let refused = cli.run(&args, b"");
        assert_ne!(refused.code, 0, "{extra:?}: {}", refused.stdout);
        assert!(
            refused.stderr.contains(says),
            "{extra:?}: {}",
            refused.stderr
        );
    }
    server.stop();
    cli.assert_verifies();
}

#[test]
fn verify_strict_refuses_records_that_a_killed_server_never_signed() {
    let tmp = sealog_testkit::tempdir();
    let data = tmp.path().join("data");
    let cli = cli(&data);
    // The writer signs a checkpoint at a commit a second after its last one, and on close.
    // A commit soon after the start and a SIGKILL leave records no checkpoint covers; on a
    // machine slow enough to reach that second first, the next round tries again.
    let mut unsigned = 0;
    for round in 0..5 {
        let server = ServerProcess::start(&cli, &[]);
        let evs: Vec<Value> = examples()
            .into_iter()
            .map(|mut e| {
                e["id"] = format!("{}-{round}", e["id"].as_str().unwrap()).into();
                e
            })
            .collect();
        post(&server, None, &evs);
        sealog_testkit::cli::signal(server.child.id(), libc::SIGKILL);
        drop(server);
        // `verify` opens nothing, so nothing signs a checkpoint before it looks.
        let run = cli.ok(&["verify"], b"");
        let report = run.json();
        assert_eq!(report["status"], "intact", "{report}");
        unsigned = report["unsigned_records"].as_u64().unwrap();
        if unsigned > 0 {
            assert!(
                run.stderr.contains("not yet signed"),
                "without --strict a note says so: {}",
                run.stderr
            );
            break;
        }
    }
    assert!(
        unsigned > 0,
        "every round's records were signed before the kill"
    );

    let strict = cli.run(&["verify", "--strict"], b"");
    assert_eq!(strict.code, 1, "{} {}", strict.stdout, strict.stderr);
    assert!(
        strict.stderr.contains(&format!("{unsigned} records"))
            && strict.stderr.contains("not vouched for"),
        "{}",
        strict.stderr
    );
    assert_eq!(
        strict.json()["status"],
        "intact",
        "the records themselves are whole"
    );

    // Opened as its writer again, the log is recovered and closed with a checkpoint over
    // everything: then --strict passes.
    cli.ok(&["checkpoint"], b"");
    let run = cli.ok(&["verify", "--strict"], b"");
    assert_eq!(run.json()["unsigned_records"], 0);
}

#[test]
fn verify_url_reads_a_full_entry_bundle_where_an_older_checkpoints_partial_one_is_gone() {
    let tmp = sealog_testkit::tempdir();
    let data = tmp.path().join("data");
    let mut cli = cli(&data);
    cli.accept_undeclared = true;
    let batch = |from: usize, to: usize| -> Vec<u8> {
        let events: Vec<Value> = (from..to)
            .map(|i| event(&format!("e-{i}"), None, "s1", "made.up"))
            .collect();
        ndjson(&events)
    };
    cli.ok(&["append"], &batch(0, 260));
    let older = cli.ok(&["checkpoint"], b"").stdout;
    assert_eq!(older.lines().nth(1), Some("260"), "{older}");
    cli.ok(&["append"], &batch(260, 600));
    let (auditor, _) = cli.create_key(&["auditor"], None, None);
    let server = ServerProcess::start(&cli, &[]);
    // A cache in front of the log still hands out the older checkpoint, and the log behind it
    // no longer serves that checkpoint's partial tiles (C2SP lets it, once they are full).
    let proxy = sealog_testkit::proxy::FaultProxy::start(
        server.addr,
        sealog_testkit::proxy::Mode::Paths(vec![
            ("/checkpoint".into(), 200, older.clone()),
            (".p/".into(), 404, "gone".into()),
        ]),
    );
    let key_file = data.join("keys/log.pub");
    let url = proxy.url();
    let run = cli.ok(
        &[
            "verify",
            "--url",
            &url,
            "--key",
            &auditor,
            "--verifier-key",
            key_file.to_str().unwrap(),
        ],
        b"",
    );
    let report = run.json();
    assert_eq!(report["status"], "intact", "{report}");
    assert_eq!(report["records"], 260, "{report}");
    server.stop();
}
