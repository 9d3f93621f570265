//! Retention (PRODUCT §8; seed 003 INV-C005-06: a defined period, seven years by default,
//! enforced): records past their type's retention are replaced by stubs under a signed
//! `audit.retention_applied` record, every proof made before still verifies, verify tells
//! pruning from tampering, holds keep records, and a crash between the record and the rewrite
//! is finished on the next opening. Retention is applied only at an instant that has come, so
//! the records pruned here are of user packs that keep them one second.

use crate::support;

use std::path::Path;
use std::sync::OnceLock;

use sealog_ledger::{
    Act, Error, HoldAct, HoldScope, IngestResult, Ledger, Log, Packs, Query,
    RETENTION_APPLIED_TYPE, Undeclared, VerifyOptions,
};
use sealog_merkle::{leaf_hash, verify_consistency, verify_inclusion};
use sealog_testkit::files::files_holding;
use sealog_testkit::format;
use serde_json::{Value, json};
use support::{appended_seq, decision, example, result_of};

const DAY: i64 = 86_400_000_000_000;
const YEAR: i64 = 365 * DAY;
/// What the `brief` pack keeps its records, and the `slow` pack its quarantine records.
const BRIEF: i64 = 1_000_000_000;

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn act() -> Act<'static> {
    Act {
        actor: json!({"type": "human", "id": "records-officer"}),
        time: "2033-12-01T00:00:00Z".into(),
        source: "sealog-test",
    }
}

/// The built-in packs and two user packs whose records come due within seconds: `brief`
/// keeps its types one second (`brief.email` and `brief.decision`, checked as their
/// built-in namesakes are, and `brief.chain`, any object), `slow` keeps `slow.email` seven
/// years and its quarantine records one second.
pub(crate) fn brief_packs() -> Packs {
    static PACKS: OnceLock<Packs> = OnceLock::new();
    PACKS
        .get_or_init(|| {
            let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sealog-packs/packs");
            let decl = |pack: &str, ty: &str| -> Value {
                let text = std::fs::read_to_string(builtin.join(pack).join("manifest.json"));
                let manifest: Value = serde_json::from_str(&text.unwrap()).unwrap();
                let schema = manifest["types"][ty]["schema"].as_str().unwrap();
                let schema = std::fs::read_to_string(builtin.join(pack).join(schema)).unwrap();
                let mut d = manifest["types"][ty].clone();
                d["schema"] = json!(format!("{ty}.schema.json"));
                d["schema_text"] = json!(schema);
                d
            };
            let email = decl("customer-comms", "comms.email");
            let decision = decl("decision-log", "decision-log.audit_decision_record");
            let chain = json!({"schema": "chain.schema.json",
                "schema_text": r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#});
            let tmp = tempfile::tempdir().unwrap();
            let packs = [
                json!({"pack": "brief", "retention": "PT1S", "types": {
                    "brief.email": email, "brief.decision": decision, "brief.chain": chain}}),
                json!({"pack": "slow", "quarantine_retention": "PT1S", "types": {
                    "slow.email": email}}),
            ];
            let dirs: Vec<std::path::PathBuf> = packs
                .into_iter()
                .map(|mut m| {
                    let dir = tmp.path().join(m["pack"].as_str().unwrap());
                    std::fs::create_dir(&dir).unwrap();
                    for d in m["types"].as_object_mut().unwrap().values_mut() {
                        let text = d.as_object_mut().unwrap().remove("schema_text").unwrap();
                        let file = dir.join(d["schema"].as_str().unwrap());
                        std::fs::write(file, text.as_str().unwrap()).unwrap();
                    }
                    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
                    dir
                })
                .collect();
            let dirs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
            Packs::load(&dirs).unwrap_or_else(|e| panic!("the short-retention packs: {e}"))
        })
        .clone()
}

/// A ledger with the built-in packs and [`brief_packs`] that quarantines undeclared types.
pub(crate) fn open_brief(dir: &Path) -> Ledger {
    open_brief_with(dir, Undeclared::Quarantine)
}

fn open_brief_with(dir: &Path, undeclared: Undeclared) -> Ledger {
    Ledger::open(dir, support::config(brief_packs(), undeclared))
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Waits until every record of the log is past a retention of one second, and returns the
/// instant, which an application may use: it has come.
pub(crate) fn due_now(ledger: &Ledger) -> i64 {
    let newest = ingested(ledger, ledger.len() - 1);
    sealog_testkit::wait_for(10, "the records to be a second old", || {
        let t = now();
        (t > newest + BRIEF).then_some(t)
    })
}

/// [`due_now`] for the quarantine log.
fn quarantine_due_now(ledger: &Ledger) -> i64 {
    let page = ledger
        .quarantine_query(&Query {
            limit: 100,
            ..Query::default()
        })
        .unwrap();
    let newest = page
        .records
        .iter()
        .map(|(_, bytes)| {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            sealog_model::time::parse_rfc3339(v["ingested_at"].as_str().unwrap()).unwrap()
        })
        .max()
        .expect("a quarantine record");
    sealog_testkit::wait_for(10, "the quarantine records to be a second old", || {
        let t = now();
        (t > newest + BRIEF).then_some(t)
    })
}

/// An email of a type kept seven years (`comms.email`), or as the short-retention packs keep
/// it (`brief.email`, `slow.email`).
pub(crate) fn email_of(ty: &str, id: &str, customer: &str, tenant: &str) -> Value {
    let mut e = example("comms.email", 0);
    e["type"] = json!(ty);
    e["id"] = json!(id);
    e["tenant"] = json!(tenant);
    e["data"]["email_id"] = json!(format!("<{id}@shop>"));
    e["data"]["recipient_details"]["customer_id"] = json!(customer);
    e
}

fn email(id: &str, customer: &str, tenant: &str) -> Value {
    email_of("brief.email", id, customer, tenant)
}

fn brief_decision(d: &str, run: &str) -> Value {
    let mut e = decision(d, run);
    e["type"] = json!("brief.decision");
    e
}

fn verify_full(dir: &Path) -> Result<String, String> {
    Ledger::verify(
        dir,
        &VerifyOptions {
            full: true,
            ..VerifyOptions::default()
        },
    )
    .map(|(c, _)| {
        c.files
            .iter()
            .map(|(f, what)| format!("{f}: {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .map_err(|f| f.to_string())
}

fn is_pruned(ledger: &Ledger, seq: u64) -> bool {
    match ledger.get(seq) {
        Err(Error::Pruned(stub)) => stub.seq == seq,
        Ok(_) => false,
        Err(e) => panic!("record {seq}: {e}"),
    }
}

/// A small log: decisions, emails of two customers, all of them ordinary records kept a
/// second.
fn fill(ledger: &Ledger) -> Vec<u64> {
    let mut seqs = Vec::new();
    for d in 0..6 {
        seqs.push(appended_seq(&result_of(
            ledger,
            &brief_decision(&format!("dec-retained-{d}"), "run-1"),
        )));
    }
    for (i, c) in ["cust-1", "cust-2", "cust-1"].iter().enumerate() {
        seqs.push(appended_seq(&result_of(
            ledger,
            &email(&format!("m-{i}"), c, "shop-brief"),
        )));
    }
    seqs
}

/// The same of the built-in types, which keep the default seven years.
fn fill_kept(ledger: &Ledger) -> Vec<u64> {
    let mut seqs = Vec::new();
    for d in 0..3 {
        seqs.push(appended_seq(&result_of(
            ledger,
            &decision(&format!("dec-kept-{d}"), "run-1"),
        )));
    }
    for (i, c) in ["cust-1", "cust-2"].iter().enumerate() {
        seqs.push(appended_seq(&result_of(
            ledger,
            &email_of("comms.email", &format!("m-kept-{i}"), c, "shop-za"),
        )));
    }
    seqs
}

#[test]
fn inv_c005_06_seven_years_by_default_then_pruned_with_every_proof_still_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open_brief(tmp.path());
    let kept = fill_kept(&ledger);
    let seqs = fill(&ledger);
    let before = ledger.checkpoint().unwrap();
    let size = before.size;
    let records: Vec<Vec<u8>> = (0..size).map(|s| ledger.get(s).unwrap().unwrap()).collect();
    let proofs: Vec<_> = (0..size)
        .map(|s| ledger.inclusion_proof(s, size).unwrap())
        .collect();

    // Six years on only the records kept a second are due; seven years and a day on, the
    // built-in types' records are too, by default.
    let t0 = due_now(&ledger);
    let early = ledger.retention_status(t0 + 6 * YEAR).unwrap();
    assert_eq!(early.pruned, seqs.len() as u64, "{early:?}");
    assert!(early.due.iter().all(|d| d.retention == "PT1S"), "{early:?}");
    let due_at = t0 + 7 * YEAR + 3 * DAY;
    let status = ledger.retention_status(due_at).unwrap();
    assert_eq!(
        status.pruned,
        (seqs.len() + kept.len()) as u64,
        "{status:?}"
    );
    for d in &status.due {
        let period = if d.event_type.starts_with("brief.") {
            "PT1S"
        } else {
            "P7Y"
        };
        assert_eq!(d.retention, period, "{status:?}");
    }
    assert_eq!(ledger.len(), size, "status changes nothing");
    let dry = ledger.apply_retention(due_at, true, &act()).unwrap();
    assert_eq!((dry.pruned, dry.seq), (status.pruned, None));
    assert_eq!(ledger.len(), size, "a dry run changes nothing");
    // Applied only at an instant that has come: seven years on is not yet.
    let e = ledger.apply_retention(due_at, false, &act()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("later than this log's clock")),
        "{e}"
    );
    assert_eq!(ledger.len(), size, "a refused application changes nothing");

    let applied = ledger.apply_retention(t0, false, &act()).unwrap();
    assert_eq!(applied.pruned, seqs.len() as u64);
    let record_seq = applied.seq.expect("a retention record");
    let record: Value = serde_json::from_slice(&ledger.get(record_seq).unwrap().unwrap()).unwrap();
    assert_eq!(record["type"], RETENTION_APPLIED_TYPE);
    assert_eq!(record["data"]["pruned"], json!(seqs.len()));
    assert_eq!(record["data"]["policy"]["brief.email"], "PT1S");
    assert!(
        ledger.latest_checkpoint().unwrap().size > record_seq,
        "the retention record is under a signed checkpoint"
    );

    let check = |ledger: &Ledger, when: &str| {
        for seq in 0..size {
            assert_eq!(
                is_pruned(ledger, seq),
                seqs.contains(&seq),
                "{when}: record {seq}"
            );
            if !seqs.contains(&seq) {
                assert_eq!(ledger.get(seq).unwrap().unwrap(), records[seq as usize]);
            }
            let leaf = leaf_hash(&records[seq as usize]);
            verify_inclusion(&leaf, seq, size, &before.root, &proofs[seq as usize])
                .unwrap_or_else(|e| panic!("{when}: a proof made before of {seq}: {e}"));
            let fresh = ledger.inclusion_proof(seq, size).unwrap();
            verify_inclusion(&leaf, seq, size, &before.root, &fresh)
                .unwrap_or_else(|e| panic!("{when}: a proof made after of {seq}: {e}"));
        }
        let now_cp = ledger.checkpoint().unwrap();
        let proof = ledger.consistency_proof(size, now_cp.size).unwrap();
        verify_consistency(size, now_cp.size, &before.root, &now_cp.root, &proof)
            .unwrap_or_else(|e| panic!("{when}: consistency from before: {e}"));
        let q = Query {
            equals: vec![("type".into(), "brief.email".into())],
            limit: 100,
            ..Query::default()
        };
        assert!(ledger.query(&q).unwrap().records.is_empty(), "{when}");
        // Counted under none of their axes, the same before the index is rebuilt as after:
        // a report does not change when the server restarts.
        let by_type = [("type".to_string(), "brief.email".to_string())];
        let by_tenant = [("tenant".to_string(), "shop-brief".to_string())];
        for equals in [&by_type[..], &by_tenant[..]] {
            assert_eq!(
                ledger.tally(Log::Canonical, equals, &[0, size]).unwrap(),
                vec![0],
                "{when}: {equals:?}"
            );
            assert_eq!(
                ledger.seqs_where(Log::Canonical, equals, 0, size).unwrap(),
                Vec::<u64>::new(),
                "{when}: {equals:?}"
            );
        }
    };
    check(&ledger, "after applying");
    // The same event again is still the record it was: its id stays in the stub.
    match result_of(&ledger, &brief_decision("dec-retained-0", "run-1")) {
        IngestResult::Duplicate { seq, .. } => assert_eq!(seq, seqs[0]),
        other => panic!(
            "expected a duplicate of the pruned record, got {}",
            other.to_json()
        ),
    }
    let again = ledger.apply_retention(now(), false, &act()).unwrap();
    assert_eq!(again.pruned, 0, "nothing is due twice");
    drop(ledger);

    let ledger = open_brief(tmp.path());
    assert!(
        ledger
            .recovery()
            .0
            .rebuilt
            .is_some_and(|why| why.contains("retention")),
        "the index drops the pruned records' keys on the next opening"
    );
    check(&ledger, "after reopening");
    drop(ledger);
    let report = verify_full(tmp.path()).unwrap_or_else(|e| panic!("verify after retention: {e}"));
    assert!(
        report.contains(&format!("{} stubs", seqs.len())),
        "{report}"
    );
    assert!(
        files_holding(tmp.path(), "dec-retained-3").is_empty(),
        "a pruned record's body is in no file"
    );
}

/// Every signed record and stub after retention, and a stub forged or a kept record changed
/// afterwards: verify never mistakes pruning for tampering, and still finds tampering.
#[test]
fn verify_tells_pruning_from_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open_brief(tmp.path());
    let seqs = fill(&ledger);
    ledger
        .apply_retention(due_now(&ledger), false, &act())
        .unwrap();
    // A record appended after, kept.
    let kept = appended_seq(&result_of(&ledger, &decision("dec-kept", "run-2")));
    ledger.checkpoint().unwrap();
    drop(ledger);
    verify_full(tmp.path()).unwrap();
    let copies = tempfile::tempdir().unwrap();
    let clean = copies.path().join("clean");
    sealog_testkit::files::copy_dir(tmp.path(), &clean);

    // A kept record's byte changed, in a segment retention rewrote.
    let log = tmp.path().join("log");
    let (_, first) = format::segments(&log)[0].clone();
    let bytes = format::read_segment(&first);
    let frames = format::frames(&bytes, format::HEADER_BYTES as usize);
    let stubbed = frames.len();
    assert!(
        stubbed >= seqs.len(),
        "the pruned records are in the first segment"
    );
    let (_, last) = format::segments(&log).last().unwrap().clone();
    let mut last_bytes = format::read_segment(&last);
    let last_frames = format::frames(&last_bytes, format::HEADER_BYTES as usize);
    let at = last_frames.last().unwrap().start + 40;
    last_bytes[at as usize] ^= 0xff;
    format::write_segment(&last, &last_bytes);
    let e = verify_full(tmp.path()).expect_err("a changed record is found");
    assert!(
        e.contains(&format!("seq {kept}")) || e.contains("changed"),
        "{e}"
    );

    // A stub's times changed (the time indexes are rebuilt from them): its retention
    // record's digest no longer matches.
    for (what, at) in [("ingest time", 80), ("event time", 88)] {
        let moved = copies.path().join(what.replace(' ', "-"));
        sealog_testkit::files::copy_dir(&clean, &moved);
        let (base, seg) = format::segments(&moved.join("log"))[0].clone();
        let mut bytes = format::read_segment(&seg);
        let r = format::frames(&bytes, format::HEADER_BYTES as usize)[(seqs[0] - base) as usize]
            .clone();
        let mut payload = bytes[r.start as usize + 8..r.end as usize].to_vec();
        assert!(
            payload.starts_with(b"\0PRUNED1"),
            "seq {} is a stub",
            seqs[0]
        );
        let t = i64::from_le_bytes(payload[at..at + 8].try_into().unwrap());
        payload[at..at + 8].copy_from_slice(&(t - 86_400_000_000_000).to_le_bytes());
        let mut frame = Vec::new();
        format::encode_frame(&payload, &mut frame);
        bytes[r.start as usize..r.end as usize].copy_from_slice(&frame);
        format::write_segment(&seg, &bytes);
        // The derived files, which would tell first, made again from the changed log.
        std::fs::remove_dir_all(moved.join("index")).unwrap();
        drop(open_brief(&moved));
        let e = verify_full(&moved).expect_err(what);
        assert!(e.contains("a stub was changed"), "{what}: {e}");
    }

    // A kept record replaced by a well-formed stub keeping its true leaf hash: nothing signed
    // pruned it, so it was removed.
    let forged = copies.path().join("forged");
    sealog_testkit::files::copy_dir(&clean, &forged);
    let flog = forged.join("log");
    let (_, seg) = format::segments(&flog).last().unwrap().clone();
    let mut bytes = format::read_segment(&seg);
    let frames = format::frames(&bytes, format::HEADER_BYTES as usize);
    let r = frames.last().unwrap().clone();
    let payload = bytes[r.start as usize + 8..r.end as usize].to_vec();
    let v: Value = serde_json::from_slice(&payload).unwrap();
    let seq = v["seq"].as_u64().unwrap();
    let id: [u8; 32] = hex::decode(
        v["record_id"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let time = |k: &str| sealog_model::time::parse_rfc3339(v[k].as_str().unwrap()).unwrap();
    let times = (time("ingested_at"), time("time"));
    let stub = format::stub(seq, leaf_hash(&payload), id, times, payload.len());
    let mut frame = Vec::new();
    format::encode_frame(&stub, &mut frame);
    bytes[r.start as usize..r.end as usize].copy_from_slice(&frame);
    format::write_segment(&seg, &bytes);
    let e = verify_full(&forged).expect_err("a forged stub is found");
    assert!(e.contains("no signed retention record accounts for"), "{e}");
    assert!(e.contains(&format!("record {seq}")), "{e}");
}

/// A record retention pruned, put back from a copy taken before (it still hashes to its
/// leaf) while the records pruned around it stay stubs: no crash leaves that, and it would
/// keep the application's digest from being checked, so verify refuses it.
#[test]
fn a_pruned_record_put_back_among_stubs_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let ledger = open_brief(&dir);
    let seqs = fill(&ledger);
    ledger.close().unwrap();
    let before = tmp.path().join("before");
    sealog_testkit::files::copy_dir(&dir, &before);
    let ledger = open_brief(&dir);
    ledger
        .apply_retention(due_now(&ledger), false, &act())
        .unwrap();
    appended_seq(&result_of(&ledger, &decision("dec-kept", "run-2")));
    ledger.close().unwrap();
    verify_full(&dir).unwrap();

    let back = seqs[seqs.len() / 2];
    let (base, seg) = format::segments(&dir.join("log"))[0].clone();
    let (_, old) = format::segments(&before.join("log"))[0].clone();
    let mut bytes = format::read_segment(&seg);
    let old_bytes = format::read_segment(&old);
    let r = format::frames(&bytes, format::HEADER_BYTES as usize)[(back - base) as usize].clone();
    let (from, to) = (r.start as usize, r.end as usize);
    assert_ne!(
        bytes[from..to],
        old_bytes[from..to],
        "seq {back} was pruned"
    );
    bytes[from..to].copy_from_slice(&old_bytes[from..to]);
    format::write_segment(&seg, &bytes);
    // The derived files, which would tell first, made again from the changed log.
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    drop(open_brief(&dir));
    let e = verify_full(&dir).expect_err("a pruned record put back");
    assert!(e.contains("a pruned record was put back"), "{e}");
    assert!(e.contains(&format!("record {back}")), "{e}");
}

#[test]
fn a_hold_keeps_its_records_from_retention_until_released() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open_brief(tmp.path());
    let za = appended_seq(&result_of(&ledger, &email("m-za", "cust-1", "shop-za")));
    let ke = appended_seq(&result_of(&ledger, &email("m-ke", "cust-2", "shop-ke")));
    let hold = ledger
        .place_hold(
            &HoldScope {
                tenant: Some("shop-ke"),
                ..HoldScope::default()
            },
            &HoldAct {
                reason: "litigation 2033-4",
                act: act(),
            },
        )
        .unwrap();
    let applied = ledger
        .apply_retention(due_now(&ledger), false, &act())
        .unwrap();
    assert_eq!((applied.pruned, applied.held), (1, 1), "{applied:?}");
    assert!(is_pruned(&ledger, za));
    assert!(!is_pruned(&ledger, ke), "the held tenant's record is kept");
    ledger
        .release_holds(
            None,
            &HoldScope {
                tenant: Some("shop-ke"),
                ..HoldScope::default()
            },
            &HoldAct {
                reason: "matter closed",
                act: act(),
            },
        )
        .unwrap();
    let applied = ledger.apply_retention(now(), false, &act()).unwrap();
    assert_eq!(
        (applied.pruned, applied.held),
        (1, 0),
        "{applied:?} after {hold:?}"
    );
    assert!(is_pruned(&ledger, ke));
    drop(ledger);
    verify_full(tmp.path()).unwrap();
}

/// Makes the rewrite of a log's first segment fail, as a crash before it would leave it: a
/// directory stands where the rewrite is written aside, whether the segment is still plain or
/// the writer has compressed it since it was sealed.
fn block_rewrites(log: &std::path::Path) -> [std::path::PathBuf; 2] {
    let blockers = [
        "00000000000000000000.seg.prune",
        "00000000000000000000.zseg.prune",
    ]
    .map(|name| log.join(name));
    for blocker in &blockers {
        std::fs::create_dir(blocker).unwrap();
        std::fs::write(blocker.join("x"), b"x").unwrap();
    }
    blockers
}

fn unblock(blockers: &[std::path::PathBuf]) {
    for blocker in blockers {
        std::fs::remove_dir_all(blocker).unwrap();
    }
}

/// Quarantine keeps its own period (customer-comms: one year; `slow` here: a second, its
/// records seven years), and a pruned quarantine record's payload goes with it; the
/// retention record says how many.
#[test]
fn quarantine_retention_differs_and_takes_the_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open_brief(tmp.path());
    let slow = |id: &str| email_of("slow.email", id, "cust-1", "shop-za");
    appended_seq(&result_of(&ledger, &slow("m-ok")));
    let mut bad = slow("m-bad");
    bad["data"].as_object_mut().unwrap().remove("email_id");
    assert!(matches!(
        result_of(&ledger, &bad),
        IngestResult::Quarantined { .. }
    ));
    let q = ledger
        .quarantine_query(&Query {
            limit: 10,
            ..Query::default()
        })
        .unwrap();
    let refs: Vec<String> = q
        .records
        .iter()
        .filter_map(|(_, b)| {
            serde_json::from_slice::<Value>(b).unwrap()["data"]["payload_ref"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(refs.len(), 1, "the quarantined event's payload is kept");
    let with_payload = refs.len() as u64;
    assert!(ledger.quarantine_payload(&refs[0]).unwrap().is_some());
    // A crash after the payload is deleted and before its record is pruned (the rewrite of
    // the quarantine log fails): verify accepts the missing payload under the signed
    // retention record, and the next opening finishes the pruning.
    let blockers = block_rewrites(&tmp.path().join("quarantine/log"));
    let later = quarantine_due_now(&ledger);
    ledger.apply_retention(later, false, &act()).unwrap_err();
    assert!(ledger.quarantine_payload(&refs[0]).unwrap().is_none());
    drop(ledger);
    unblock(&blockers);
    verify_full(tmp.path()).unwrap();
    let ledger = open_brief(tmp.path());
    let applied = ledger.retention_status(later).unwrap();
    assert_eq!(
        applied.quarantine_pruned, 0,
        "finished on opening: {applied:?}"
    );
    drop(ledger);
    std::fs::remove_dir_all(tmp.path()).unwrap();

    // Uninterrupted.
    let ledger = open_brief(tmp.path());
    let kept = appended_seq(&result_of(&ledger, &slow("m-ok")));
    assert!(matches!(
        result_of(&ledger, &bad),
        IngestResult::Quarantined { .. }
    ));
    let applied = ledger
        .apply_retention(quarantine_due_now(&ledger), false, &act())
        .unwrap();
    assert_eq!(
        (applied.pruned, applied.quarantine_pruned),
        (0, 1),
        "{applied:?}"
    );
    assert_eq!(applied.payloads_deleted, with_payload);
    assert!(!is_pruned(&ledger, kept));
    let q = ledger
        .quarantine_query(&Query {
            limit: 10,
            ..Query::default()
        })
        .unwrap();
    assert!(
        q.records.is_empty(),
        "the pruned quarantine record leaves queries"
    );
    drop(ledger);
    verify_full(tmp.path()).unwrap();
    assert!(files_holding(tmp.path(), "m-bad@shop").is_empty());
}

/// A crash after the retention record is durable and before any segment is rewritten: the
/// rewrite fails (a directory stands where its new segment would be written), and the next
/// opening finishes what the record says.
#[test]
fn a_retention_record_whose_rewrite_a_crash_stopped_is_finished_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open_brief(tmp.path());
    let seqs = fill(&ledger);
    let blockers = block_rewrites(&tmp.path().join("log"));
    let e = ledger
        .apply_retention(due_now(&ledger), false, &act())
        .unwrap_err();
    assert!(e.to_string().contains(".prune"), "{e}");
    assert!(!is_pruned(&ledger, seqs[0]), "nothing rewritten yet");
    drop(ledger);
    // Verify between the two: the record is there, no stub yet; nothing is wrong.
    unblock(&blockers);
    verify_full(tmp.path()).unwrap();
    let ledger = open_brief(tmp.path());
    for &s in &seqs {
        assert!(is_pruned(&ledger, s), "record {s} pruned on reopening");
    }
    drop(ledger);
    verify_full(tmp.path()).unwrap();

    // A rewrite written aside but not yet renamed is deleted on open: the old whole version
    // stands.
    let leftover = tmp
        .path()
        .join("log")
        .join("00000000000000000000.seg.prune");
    std::fs::write(&leftover, b"half a segment").unwrap();
    let ledger = open_brief(tmp.path());
    assert!(!leftover.exists());
    assert!(is_pruned(&ledger, seqs[0]));
}

/// A correction kept while the record it corrects is pruned (seed 002 §12.3: references
/// resolvable during retention): the pruned original stays superseded (its stub keeps the
/// link), the correction stays current, its chain still starts at the original's event time
/// on the valid-time clock, and correcting the original again is still a stale link.
#[test]
fn a_kept_correction_of_a_pruned_record_still_resolves_its_chain() {
    use sealog_ledger::View;
    let tmp = tempfile::tempdir().unwrap();
    let ledger = open_brief_with(tmp.path(), Undeclared::Accept);
    let ev = |id: &str, time: &str, supersedes: Option<&str>| {
        let mut v = json!({"id": id, "source": "tests", "type": "brief.chain", "time": time,
                           "tenant": "t", "subject": "loan-7", "data": {"v": id}});
        if let Some(s) = supersedes {
            v["supersedes"] = json!(s);
        }
        v
    };
    let original = result_of(&ledger, &ev("a", "2026-01-01T00:00:00Z", None));
    let (seq0, rid0) = match &original {
        IngestResult::Appended { seq, record_id } => (*seq, record_id.to_string()),
        other => panic!("{}", other.to_json()),
    };
    let t0 = ingested(&ledger, seq0);
    // Ingested strictly later, so a cutoff falls between the two.
    sealog_testkit::wait_for(5, "the clock to pass the original's ingest time", || {
        (now() / 1000 > t0 / 1000).then_some(())
    });
    let fix = appended_seq(&result_of(
        &ledger,
        &ev("b", "2026-03-01T00:00:00Z", Some(&rid0)),
    ));
    let t1 = ingested(&ledger, fix);
    // A second after the correction's ingest: the cutoff is that instant, which the original
    // precedes and the correction does not. Applied once that instant has come.
    let at = t1 + BRIEF;
    sealog_testkit::wait_for(10, "a second past the correction", || {
        (now() >= at).then_some(())
    });
    let applied = ledger.apply_retention(at, false, &act()).unwrap();
    assert_eq!(applied.pruned, 1, "{applied:?}");
    assert!(is_pruned(&ledger, seq0));
    assert!(!is_pruned(&ledger, fix));

    let check = |ledger: &Ledger, when: &str| {
        let q = Query {
            equals: vec![("subject".into(), "loan-7".into())],
            view: View::Current,
            limit: 10,
            ..Query::default()
        };
        let current: Vec<u64> = ledger
            .query(&q)
            .unwrap()
            .records
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(current, [fix], "{when}");
        // On the valid-time clock the correction counts from its chain's start, the pruned
        // original's event time, which its stub keeps.
        let q = Query {
            equals: vec![("subject".into(), "loan-7".into())],
            view: View::Current,
            valid_at: Some(sealog_model::time::parse_rfc3339("2026-02-01T00:00:00Z").unwrap()),
            limit: 10,
            ..Query::default()
        };
        let then: Vec<u64> = ledger
            .query(&q)
            .unwrap()
            .records
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(then, [fix], "{when}: valid in February through its chain");
        match result_of(ledger, &ev("c", "2026-04-01T00:00:00Z", Some(&rid0))) {
            IngestResult::Quarantined { finding, .. } => {
                assert_eq!(finding.reason_code, "STALE_SUPERSEDES_LINK", "{when}")
            }
            other => panic!("{when}: {}", other.to_json()),
        }
    };
    check(&ledger, "after pruning");
    drop(ledger);
    let ledger = open_brief_with(tmp.path(), Undeclared::Accept);
    check(&ledger, "after the index is rebuilt from the stubs");
    drop(ledger);
    verify_full(tmp.path()).unwrap();
}

fn ingested(ledger: &Ledger, seq: u64) -> i64 {
    let v: Value = serde_json::from_slice(&ledger.get(seq).unwrap().unwrap()).unwrap();
    sealog_model::time::parse_rfc3339(v["ingested_at"].as_str().unwrap()).unwrap()
}
