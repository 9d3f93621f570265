//! The real binary on a real PostgreSQL (`scripts/pg-cluster`): every command gives what it
//! gives on a data directory for the same events; erasure destroys the key row and nothing
//! else; no personal value reaches the database in clear; `verify` finds a row a superuser
//! changed behind the triggers; two `sealog serve` processes on one database append in one
//! dense order, and one killed with SIGKILL loses nothing it acknowledged; a database restart
//! under HTTP load answers 503 with Retry-After and loses nothing acknowledged.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sealog_testkit::events::{examples, ndjson};
use sealog_testkit::pg::{Cluster, Sql};
use sealog_testkit::{Api, Cli, ServerProcess, tempdir};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sealog");

/// A migrated cluster, or `None` (said loudly) where PostgreSQL is not installed.
fn database() -> Option<Cluster> {
    let cluster = Cluster::start()?;
    let cwd = tempdir();
    Cli::on_database(BIN, &cluster.url(), cwd.path()).ok(&["migrate"], b"");
    Some(cluster)
}

/// The binary on a data directory and on the database, side by side.
fn twins(cluster: &Cluster) -> (tempfile::TempDir, Cli, Cli) {
    let dirs = tempdir();
    let local = Cli::new(BIN, &dirs.path().join("data"));
    let db = Cli::on_database(BIN, &cluster.url(), &dirs.path().join("state"));
    (dirs, local, db)
}

/// The events of the example file, with one that its pack quarantines.
fn events() -> Vec<Value> {
    let mut all = examples();
    let mut incomplete = all[0].clone();
    incomplete["id"] = json!("incomplete-1");
    incomplete["data"] = json!({});
    all.push(incomplete);
    all
}

/// A record as read (personal values opened) without what differs between two logs given the
/// same events at other times under other keys: its ingest time and its id (which covers the
/// sealed values).
fn comparable(mut r: Value) -> Value {
    let o = r.as_object_mut().expect("a record");
    o.remove("ingested_at");
    o.remove("record_id");
    r
}

/// The non-audit records, opened, comparable.
fn producer_records(cli: &Cli) -> Vec<Value> {
    cli.ok(&["query", "--limit", "10000"], b"")
        .lines()
        .into_iter()
        .filter(|r| !r["type"].as_str().unwrap_or("").starts_with("audit."))
        .map(comparable)
        .collect()
}

#[test]
fn every_command_gives_on_postgresql_what_it_gives_on_a_directory() {
    let Some(cluster) = database() else {
        return;
    };
    let (_dirs, local, db) = twins(&cluster);
    let input = ndjson(&events());
    let (here, there) = (local.run(&["append"], &input), db.run(&["append"], &input));
    assert_eq!(here.code, there.code, "{}", there.stderr);
    // Personal values are sealed under each log's own random subject keys, so record ids of
    // events that carry them differ; everything else is the same.
    let outcome = |r: &Value| json!([r["status"], r["seq"], r["reason_code"]]);
    let (appended_here, appended_there) = (here.lines(), there.lines());
    assert_eq!(
        appended_here.iter().map(outcome).collect::<Vec<_>>(),
        appended_there.iter().map(outcome).collect::<Vec<_>>(),
        "the same outcomes and seqs"
    );
    assert!(
        appended_there.iter().any(|r| r["status"] == "quarantined"),
        "{appended_there:?}"
    );
    // Appending again is a no-op on both.
    let again = db.run(&["append"], &input).lines();
    assert!(
        again
            .iter()
            .all(|r| r["status"] == "duplicate" || r["status"] == "quarantined"),
        "{again:?}"
    );
    assert_eq!(producer_records(&local), producer_records(&db));

    let got = |cli: &Cli, appended: &[Value]| {
        let id = appended[0]["record_id"].as_str().unwrap();
        comparable(cli.ok(&["get", id], b"").json())
    };
    assert_eq!(got(&local, &appended_here), got(&db, &appended_there));
    let subject = events()[0]["subject"].as_str().unwrap().to_string();
    let state = |cli: &Cli| {
        let mut s = cli.ok(&["state", "--subject", &subject], b"").json();
        s.as_object_mut().unwrap().remove("as_of");
        s
    };
    assert_eq!(state(&local), state(&db));
    let quarantined = |cli: &Cli| -> Vec<Value> {
        cli.ok(&["quarantine"], b"")
            .lines()
            .into_iter()
            .map(|q| json!([q["reason"], q["event_id"]]))
            .collect()
    };
    assert_eq!(quarantined(&local), quarantined(&db));
    let note = db.ok(&["checkpoint"], b"").stdout;
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect(&note);
    assert!(size > 0, "{note}");
    assert!(note.starts_with("sealog.pg/"), "{note}");
    // Both backends' canonical checkpoints carry the quarantine log's head.
    for note in [note.as_str(), &local.ok(&["checkpoint"], b"").stdout] {
        assert!(note.contains("\nquarantine 1 "), "{note}");
    }
    let proof = db.ok(&["prove", "inclusion", "0"], b"").json();
    assert_eq!(proof["leaf_index"], 0, "{proof}");
    assert_eq!(proof["tree_size"], size, "{proof}");
    db.assert_verifies();
    local.assert_verifies();

    // Nothing personal in clear anywhere in the database.
    let sql = Sql::connect(&cluster.conninfo);
    let dump: String = sql
        .strings(
            "SELECT convert_from(body, 'UTF8') FROM sealog_records
             UNION ALL SELECT encode(bytes, 'escape') FROM sealog_quarantine_payloads",
        )
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let customer = events()
        .into_iter()
        .find(|e| e["id"] == "comms-email-1")
        .expect("the email example");
    let email = customer["data"]["recipient_details"]["email"]
        .as_str()
        .expect("an email address in the example");
    assert!(!dump.contains(email), "{email} is stored in clear");

    // Erasure: the key row goes, the mark stays, every record stays and verifies.
    let who = customer["data"]["recipient_details"]["customer_id"]
        .as_str()
        .unwrap();
    let count = |table: &str| {
        sql.strings(&format!("SELECT count(*)::text FROM {table}"))[0][0]
            .clone()
            .unwrap()
    };
    let keys_before: u64 = count("sealog_subject_keys").parse().unwrap();
    let records_before = count("sealog_records");
    let done = db
        .ok(
            &["erase", "--data-subject", who, "--reason", "request 5"],
            b"",
        )
        .json();
    assert_eq!(done["status"], "erased", "{done}");
    // The subject's key in each tenant it appears in (two, in the examples).
    let destroyed = keys_before - count("sealog_subject_keys").parse::<u64>().unwrap();
    assert_eq!(destroyed, 2, "{done}");
    // Each destroyed key is marked erased, and so is every tenant it has no key in yet.
    assert_eq!(count("sealog_erased_subjects"), (destroyed + 1).to_string());
    let records_after: u64 = count("sealog_records").parse().unwrap();
    assert!(
        records_after > records_before.parse().unwrap(),
        "nothing removed; the erasure is itself a record"
    );
    let erased = db
        .ok(&["get", customer_record(&appended_there)], b"")
        .json();
    assert_eq!(
        erased["data"]["recipient_details"]["email"]["$personal"], "erased",
        "{erased}"
    );
    db.assert_verifies();

    // A row changed behind the triggers is named by verify.
    sql.exec(
        "SET session_replication_role = replica;
         UPDATE sealog_records SET body = convert_to(replace(convert_from(body, 'UTF8'), '\"id\"', '\"Id\"'), 'UTF8')
           WHERE log = 'canonical' AND seq = 2;
         RESET session_replication_role;",
    )
    .unwrap();
    let damaged = |cli: &Cli| -> Value {
        let run = cli.run(&["verify"], b"");
        assert_eq!(run.code, 1, "{} {}", run.stdout, run.stderr);
        let found: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(found["status"], "damaged");
        found
    };
    let damaged_at = |cli: &Cli, place: &str| {
        let found = damaged(cli);
        assert!(
            found["location"].as_str().unwrap().contains(place),
            "{place}: {found}"
        );
    };
    damaged_at(&db, "record 2");
    // Put back, it verifies again: what was found was that edit.
    sql.exec(
        "SET session_replication_role = replica;
         UPDATE sealog_records SET body = convert_to(replace(convert_from(body, 'UTF8'), '\"Id\"', '\"id\"'), 'UTF8')
           WHERE log = 'canonical' AND seq = 2;
         RESET session_replication_role;",
    )
    .unwrap();
    db.assert_verifies();

    // An index posting added or removed behind the triggers is named too: verify compares
    // the index with the keys every record gives.
    sql.exec(
        "INSERT INTO sealog_key_runs (log, key, first_seq, last_seq, seqs)
           VALUES ('canonical', repeat('ab', 16)::uuid, 3, 3, '{3}')",
    )
    .unwrap();
    damaged_at(&db, "record 3");
    sql.exec(
        "SET session_replication_role = replica;
         DELETE FROM sealog_key_runs WHERE key = repeat('ab', 16)::uuid;
         CREATE TABLE saved_run AS SELECT * FROM sealog_key_runs
           WHERE log = 'canonical' AND seqs = '{1}' LIMIT 1;
         DELETE FROM sealog_key_runs k USING saved_run s
           WHERE k.log = s.log AND k.key = s.key AND k.last_seq = s.last_seq;
         RESET session_replication_role;",
    )
    .unwrap();
    damaged_at(&db, "record 1");
    sql.exec("INSERT INTO sealog_key_runs SELECT * FROM saved_run; DROP TABLE saved_run")
        .unwrap();
    db.assert_verifies();

    // Retention through the database's sanctioned function: every stub is accounted for. It
    // applies at an instant that has come, so to records of a user pack's type kept a second.
    let pack = tempdir();
    std::fs::write(
        pack.path().join("manifest.json"),
        json!({"pack": "brief", "retention": "PT1S",
               "types": {"brief.note": {"schema": "note.schema.json"}}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        pack.path().join("note.schema.json"),
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#,
    )
    .unwrap();
    let packs = pack.path().to_str().unwrap();
    let notes: Vec<Value> = (0..3)
        .map(|i| {
            json!({"specversion": "1.0", "id": format!("note-{i}"), "source": "tests",
                   "type": "brief.note", "time": "2026-03-01T00:00:00Z", "data": {"i": i}})
        })
        .collect();
    db.ok(&["--packs", packs, "append"], &ndjson(&notes));
    sealog_testkit::wait_for(10, "the notes to be due", || {
        let status = db
            .ok(&["--packs", packs, "retention", "status"], b"")
            .json();
        (status["pruned"] == 3).then_some(())
    });
    let applied = db.ok(&["--packs", packs, "retention", "apply"], b"").json();
    assert_eq!(applied["pruned"], 3, "{applied}");
    db.assert_verifies();
    // A stub nothing signed accounts for is a record removed, not pruned.
    let mut late = sealog_testkit::events::example("coordination.decision");
    late["id"] = json!("late-1");
    db.ok(&["append"], &ndjson(&[late]));
    let newest = sql.strings("SELECT max(seq)::text FROM sealog_records WHERE log = 'canonical'")
        [0][0]
        .clone()
        .unwrap();
    sql.exec(&format!(
        "SET session_replication_role = replica;
         INSERT INTO sealog_pruned (log, seq, kept, pruned_by) VALUES ('canonical', {newest}, '{{}}', 'intruder');
         UPDATE sealog_records SET body = '' WHERE log = 'canonical' AND seq = {newest};
         RESET session_replication_role;"
    ))
    .unwrap();
    let found = damaged(&db);
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains("no signed retention record accounts for"),
        "{found}"
    );
}

#[test]
fn an_export_from_postgresql_proves_itself_offline() {
    let Some(cluster) = database() else {
        return;
    };
    let (dirs, local, db) = twins(&cluster);
    let input = ndjson(&events());
    local.run(&["append"], &input);
    db.run(&["append"], &input);
    let mut counts = Vec::new();
    for (cli, file) in [(&local, "here.jsonl"), (&db, "there.jsonl")] {
        let out = dirs.path().join(file);
        let made = cli
            .ok(
                &[
                    "export",
                    "--type",
                    "coordination.decision",
                    "--format",
                    "jsonl",
                    "--out",
                    out.to_str().unwrap(),
                ],
                b"",
            )
            .json();
        counts.push(made["count"].clone());
        let manifest = format!("{}.manifest.json", out.display());
        let checked = cli.run(&["verify-export", &manifest], b"");
        assert_eq!(checked.code, 0, "{} {}", checked.stdout, checked.stderr);
    }
    assert_eq!(counts[0], counts[1]);
    assert!(counts[1].as_u64().unwrap() >= 2, "{counts:?}");
}

/// The record id of the email example among the append results (same order as the input).
fn customer_record(appended: &[Value]) -> &str {
    let at = events()
        .iter()
        .position(|e| e["id"] == "comms-email-1")
        .unwrap();
    appended[at]["record_id"].as_str().unwrap()
}

/// Starts a server on the database with `state`; the state's keys are the first server's.
fn serve(url: &str, state: &Path) -> ServerProcess {
    let cli = Cli::on_database(BIN, url, state).accepting_undeclared();
    ServerProcess::start(&cli, &[])
}

fn event(n: u64) -> Value {
    sealog_testkit::events::event(&format!("e{n}"), Some("acme"), "s", "test.pg")
}

/// Appends event `n` through `srv`; its seq when acknowledged, `None` when refused for now.
fn append(srv: &ServerProcess, key: &str, n: u64) -> Option<u64> {
    // A connection closed without an answer is a failure; the server's log says why.
    let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        srv.post_json("/v1/events", Some(key), &event(n))
    }))
    .unwrap_or_else(|_| {
        panic!(
            "append {n} got no answer; the server's log:\n{}",
            srv.log_text()
        )
    });
    match resp.status {
        200 | 201 => Some(resp.json()["results"][0]["seq"].as_u64().expect("a seq")),
        503 => {
            assert!(
                resp.header("retry-after").is_some(),
                "503 says when to retry"
            );
            None
        }
        other => panic!("append {n}: {other} {}", resp.text()),
    }
}

#[test]
fn two_servers_share_one_database_and_a_killed_one_loses_nothing_acknowledged() {
    let Some(cluster) = database() else {
        return;
    };
    let url = cluster.url();
    let dirs = tempdir();
    let (a_state, b_state) = (dirs.path().join("a"), dirs.path().join("b"));
    let first = Cli::on_database(BIN, &url, &a_state);
    let (key, _) = first.create_key(&["admin"], None, None);
    let a = serve(&url, &a_state);
    // The second server gets the first one's secrets and keys, as an operator copies them.
    copy_dir(&a_state, &b_state);
    let b = serve(&url, &b_state);
    let servers = [Arc::new(a), Arc::new(b)];
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let srv = servers[t as usize % 2].clone();
            let key = key.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let n = t * 1000 + i;
                        (n, append(&srv, &key, n).expect("the database is up"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acknowledged: Vec<(u64, u64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let seqs: BTreeSet<u64> = acknowledged.iter().map(|a| a.1).collect();
    assert_eq!(seqs.len(), 200, "one seq per event across both servers");
    let [a, b] = servers.map(|s| Arc::into_inner(s).unwrap());
    let records = |srv: &ServerProcess| -> Vec<Value> {
        let page = srv.get("/v1/records?limit=1000&type=test.pg", Some(&key));
        assert_eq!(page.status, 200, "{}", page.text());
        page.json()["records"].as_array().unwrap().clone()
    };
    assert_eq!(records(&a).len(), 200);
    assert_eq!(records(&a), records(&b), "both serve the same log");

    // SIGKILL one server in the middle of appends: what it acknowledged is there.
    let stop = Arc::new(AtomicBool::new(false));
    let a = Arc::new(a);
    let writer = {
        let (a, key, stop) = (a.clone(), key.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            for n in 10_000.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match try_append(a.addr, &key, n) {
                    Some(200 | 201) => acked.push(n),
                    Some(_) => {}
                    // Killed: no answer, so nothing was acknowledged.
                    None => break,
                }
            }
            acked
        })
    };
    sealog_testkit::wait_for(120, "some appends through the first server", || {
        (records(&b).len() > 220).then_some(())
    });
    sealog_testkit::cli::signal(a.child.id(), libc::SIGKILL);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    let ids: BTreeSet<String> = records(&b)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for n in &acked {
        assert!(ids.contains(&format!("e{n}")), "acknowledged e{n} is lost");
    }
    b.stop();
    drop(a);
    first.assert_verifies();
}

#[test]
fn a_database_restart_under_load_answers_503_and_loses_nothing_acknowledged() {
    let Some(cluster) = database() else {
        return;
    };
    let url = cluster.url();
    let dirs = tempdir();
    let state = dirs.path().join("state");
    let cli = Cli::on_database(BIN, &url, &state);
    let (key, _) = cli.create_key(&["admin"], None, None);
    let srv = Arc::new(serve(&url, &state));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (srv, key, stop) = (srv.clone(), key.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut acked, mut refused) = (Vec::new(), 0);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || acked.len() < 10 {
                match append(&srv, &key, n) {
                    Some(_) => acked.push(n),
                    None => refused += 1,
                }
                n += 1;
            }
            (acked, refused, n)
        })
    };
    cluster.restart();
    stop.store(true, Ordering::Relaxed);
    let (acked, _refused, sent) = writer.join().unwrap();
    // Sending everything again appends what was refused, once.
    for n in 0..sent {
        while append(&srv, &key, n).is_none() {}
    }
    let page = srv.get("/v1/records?limit=10000&type=test.pg", Some(&key));
    let ids: BTreeSet<String> = page.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len() as u64, sent, "each event once");
    for n in &acked {
        assert!(ids.contains(&format!("e{n}")));
    }
    Arc::into_inner(srv).unwrap().stop();
    cli.assert_verifies();
}

/// An append that a killed server may leave unanswered (`None`), with the status otherwise.
fn try_append(addr: std::net::SocketAddr, key: &str, n: u64) -> Option<u16> {
    use std::io::{Read, Write};
    let body = event(n).to_string();
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok()?;
    sealog_testkit::http::parse_response(&out).map(|r| r.status)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Seed 004 AC-A8 ("C5-S1 can read audits"): the coordination pack's records are rows of
/// `coordination_audit_records` that a reader with plain SQL finds, written in the append's
/// transaction with the record's ingest time, once however often the event is sent.
#[test]
fn ac_a8_a_plain_sql_reader_finds_the_coordination_records() {
    let Some(cluster) = database() else {
        return;
    };
    let dirs = tempdir();
    let db = Cli::on_database(BIN, &cluster.url(), &dirs.path().join("state"));
    let decisions: Vec<Value> = examples()
        .into_iter()
        .filter(|e| e["type"] == "coordination.decision")
        .collect();
    assert!(decisions.len() >= 2);
    let input = ndjson(&decisions);
    db.ok(&["append"], &input);
    db.ok(&["append"], &input);
    let sql = Sql::connect(&cluster.conninfo);
    sql.exec("SET ROLE sealog_app").unwrap();
    let rows = sql.strings(
        "SELECT envelope_id, envelope_class, decision, reason,
                to_char(decision_timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                conflicting_envelope_id, preempting_envelope_id,
                active_envelopes_count::text, tenant_id, audit_id::text
         FROM coordination_audit_records ORDER BY decision_timestamp",
    );
    assert_eq!(
        rows.len(),
        decisions.len(),
        "one row per record, sent twice"
    );
    let records = db
        .ok(&["query", "--type", "coordination.decision"], b"")
        .lines();
    for (row, event) in rows.iter().zip(&decisions) {
        let d = &event["data"];
        let text = |v: &Value| v.as_str().map(str::to_string);
        assert_eq!(
            row[..9].to_vec(),
            vec![
                text(&d["envelope_id"]),
                text(&d["envelope_class"]),
                text(&d["decision"]),
                text(&d["reason"]),
                text(&d["decision_timestamp"]),
                text(&d["conflicting_envelope_id"]),
                text(&d["preempting_envelope_id"]),
                Some(
                    d["active_envelopes_count"]
                        .as_u64()
                        .unwrap_or(0)
                        .to_string()
                ),
                text(&d["tenant_id"]),
            ],
        );
        let record = records
            .iter()
            .find(|r| r["id"] == event["id"])
            .expect("the record");
        let audit_id = row[9].as_deref().unwrap();
        assert_eq!(
            audit_id.as_bytes()[14],
            b'5',
            "a version 5 UUID: {audit_id}"
        );
        assert!(record["record_id"].as_str().unwrap().starts_with("sha256:"));
    }
    // The seed's reader: by envelope and by decision.
    let preempted = sql
        .strings("SELECT envelope_id FROM coordination_audit_records WHERE decision = 'PREEMPTED'");
    let want: Vec<Vec<Option<String>>> = decisions
        .iter()
        .filter(|e| e["data"]["decision"] == "PREEMPTED")
        .map(|e| vec![e["data"]["envelope_id"].as_str().map(str::to_string)])
        .collect();
    assert_eq!(preempted, want);
    // created_at is the record's ingest time; the row cannot be changed.
    let same = sql.strings(
        "SELECT count(*)::text FROM coordination_audit_records c
         JOIN sealog_records r ON r.log = 'canonical' AND r.ingested_at = c.created_at",
    );
    assert_ne!(same[0][0].as_deref(), Some("0"));
    let e = sql
        .exec("UPDATE coordination_audit_records SET reason = 'x'")
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
}

/// `sealog keys rotate-log` on a database: the newest tree head is signed by both keys, the
/// key file and the database name the new key, appends go on and verify; a server still
/// holding the old key file is refused, and one given the new file runs.
#[test]
fn a_log_key_rotation_on_postgresql_hands_over_and_verifies() {
    let Some(cluster) = database() else {
        return;
    };
    let dirs = tempdir();
    let (a_state, b_state) = (dirs.path().join("a"), dirs.path().join("b"));
    let a = Cli::on_database(BIN, &cluster.url(), &a_state);
    let b = Cli::on_database(BIN, &cluster.url(), &b_state);
    let decisions: Vec<Value> = examples()
        .into_iter()
        .filter(|e| e["type"] == "coordination.decision")
        .collect();
    a.ok(&["append"], &ndjson(&decisions[..1]));
    copy_dir(&a_state, &b_state);
    let rotated = a.ok(&["keys", "rotate-log"], b"").json();
    let (old, new) = (
        rotated["old_verifier_key"].as_str().unwrap(),
        rotated["new_verifier_key"].as_str().unwrap(),
    );
    assert_ne!(old, new);
    let key_file = std::fs::read_to_string(a_state.join("keys/log.key")).unwrap();
    assert!(!a_state.join("keys/log.key.next").exists());
    // Same origin, another key: the key file is the new one.
    assert_eq!(old.split('+').next(), new.split('+').next());
    assert_ne!(
        key_file,
        std::fs::read_to_string(b_state.join("keys/log.key")).unwrap()
    );
    a.ok(&["append"], &ndjson(&decisions[1..]));
    let vkey = a.ok(&["checkpoint", "--verifier-key"], b"").stdout;
    assert_eq!(vkey.trim(), new, "the log names the new key");
    a.assert_verifies();
    let sql = Sql::connect(&cluster.conninfo);
    let events =
        sql.strings("SELECT event FROM sealog_log_keys WHERE log = 'canonical' ORDER BY n");
    assert_eq!(
        events,
        ["created", "prepared", "finished"]
            .map(|e| vec![Some(e.to_string())])
            .to_vec()
    );
    // The server with the old key file: refused; given the new one: it writes.
    let stale = b.run(&["append"], &ndjson(&decisions[..1]));
    assert_eq!(stale.code, 2, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("is not the signing key"),
        "{}",
        stale.stderr
    );
    std::fs::write(b_state.join("keys/log.key"), &key_file).unwrap();
    b.ok(&["append"], &ndjson(&decisions[..1]));
    b.assert_verifies();
}
