//! Every read on a data directory is in the log it read: `get`, `query`, `state`,
//! `quarantine` and `prove` each append one `audit.access` record naming the local user, the
//! action, what was asked and what was found. Beside a running server the directory opens
//! read-only: the command says the read was not recorded and how to have it recorded, and
//! appends nothing.

use sealog_testkit::{Api, Cli, ServerProcess, tempdir};
use serde_json::{Value, json};

fn access_records(cli: &Cli) -> Vec<Value> {
    cli.all_records()
        .into_iter()
        .filter(|r| r["type"] == "audit.access")
        .collect()
}

#[allow(unsafe_code)]
fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

#[test]
fn each_local_read_appends_one_access_record_naming_the_local_user() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    cli.ok(&["demo"], b"");
    // (arguments, exit code, action, resource, outcome, count) of each read.
    type Read<'a> = (&'a [&'a str], i32, &'a str, Value, &'a str, Option<u64>);
    let reads: &[Read<'_>] = &[
        (
            &["get", "3"],
            0,
            "records.get",
            json!({"id": "3"}),
            "allowed",
            Some(1),
        ),
        (
            &["get", "999"],
            1,
            "records.get",
            json!({"id": "999"}),
            "not_found",
            None,
        ),
        (
            &["query", "--subject", "chunk-7"],
            0,
            "records.query",
            json!({"filter": {"subject": "chunk-7", "limit": "1000"}}),
            "allowed",
            Some(4),
        ),
        (
            &["state", "--subject", "chunk-7", "--valid-at", "2026-03-04"],
            0,
            "subjects.state",
            json!({"subject": "chunk-7", "filter": {"valid_at": "2026-03-04"}}),
            "allowed",
            Some(1),
        ),
        (
            &["quarantine"],
            0,
            "quarantine.query",
            json!({"filter": {"limit": "1000"}}),
            "allowed",
            Some(1),
        ),
        (
            &["prove", "inclusion", "2"],
            0,
            "proofs.inclusion",
            json!({"seq": 2, "size": null}),
            "allowed",
            Some(1),
        ),
        (
            &["prove", "consistency", "3", "999"],
            1,
            "proofs.consistency",
            json!({"from": 3, "to": 999}),
            "not_found",
            None,
        ),
    ];
    let mut seen = access_records(&cli).len();
    for (args, code, action, resource, outcome, count) in reads {
        let run = cli.run(args, b"");
        assert_eq!(run.code, *code, "sealog {args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("not recorded"),
            "sealog {args:?}: {}",
            run.stderr
        );
        let all = access_records(&cli);
        // The listing itself is a read: each `all_records` page (limit 10000) adds its own.
        let mine: Vec<&Value> = all[seen..]
            .iter()
            .filter(|r| {
                r["data"]["action"] == *action
                    && r["data"]["resource"]["filter"]["limit"] != "10000"
            })
            .collect();
        assert_eq!(mine.len(), 1, "sealog {args:?} appended {}", mine.len());
        let r = mine[0];
        assert_eq!(r["source"], "sealog-cli");
        assert_eq!(r["actor"]["type"], "human");
        let d = &r["data"];
        assert_eq!(d["channel"], "cli");
        assert_eq!(d["local_user"]["uid"], euid());
        assert!(
            d["local_user"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        );
        assert_eq!(
            r["actor"]["id"],
            format!("local:{}", d["local_user"]["name"].as_str().unwrap())
        );
        assert_eq!(d["resource"], *resource, "sealog {args:?}");
        assert_eq!(d["outcome"], *outcome, "sealog {args:?}");
        assert_eq!(d["count"].as_u64(), *count, "sealog {args:?}");
        seen = all.len();
    }
    cli.assert_verifies();
}

#[test]
fn reads_beside_a_running_server_say_they_were_not_recorded_and_append_nothing() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    cli.ok(&["demo"], b"");
    let srv = ServerProcess::start(&cli, &[]);
    let len = || {
        let r = srv.get("/checkpoint", None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text().lines().nth(1).unwrap().parse::<u64>().unwrap()
    };
    let before = len();
    for args in [
        &["get", "3"][..],
        &["query", "--subject", "chunk-7"],
        &["state", "--subject", "chunk-7"],
        &["quarantine"],
        &["prove", "inclusion", "2", "--size", "3"],
    ] {
        let run = cli.run(args, b"");
        assert_eq!(run.code, 0, "sealog {args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("this read was not recorded")
                && run.stderr.contains("held by a running server")
                && run.stderr.contains("--url"),
            "sealog {args:?} must say the read was not recorded and how to have it recorded: {}",
            run.stderr
        );
    }
    assert_eq!(len(), before, "a read-only opening appended nothing");
    srv.stop();
}
