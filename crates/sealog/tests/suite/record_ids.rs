//! `record_id = "sha256:" + hex(SHA-256(JCS(normalized event)))` (PRODUCT.md §3), checked
//! against an independent RFC 8785 implementation (`serde_json_canonicalizer`) and SHA-256 of
//! the `sha2` crate, never against Sealog's own canonicalizer: an expectation computed with
//! the code under test agrees with any bug in it.
//!
//! Everything goes through the real binary: `sealog append` of the shipped examples into a
//! fresh data directory, read back with `sealog query` and `sealog get`. The ids are also
//! pinned in `tests/data/example_record_ids.txt`, produced by the oracle alone, so a change
//! of identity shows up as a diff of that file even if both implementations moved.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sealog_testkit::events::{oracle_jcs, oracle_record_id};
use sealog_testkit::shuffle::{self, Whitespace};
use sealog_testkit::{Cli, Rng};
use serde_json::{Map, Value};

/// Examples whose pack normalization changes something before hashing. Pinned, so the
/// test notices both a normalization that stops applying and one that starts to.
const NORMALIZED_BY_THEIR_PACK: [&str; 1] = ["evt_txn_000000124"];

/// Examples with personal values: sealed under their data subject's key before hashing, so
/// their ids are the oracle's hash of the stored (sealed) event, and differ from one data
/// directory to the next (each makes its own keys). Pinned like the normalized ones.
const SEALED_BY_THEIR_PACK: [&str; 7] = [
    "cm25-1",
    "cm25-2",
    "cm25-3",
    "comms-order-1",
    "comms-email-1",
    "comms-order-2",
    "comms-popia-1",
];

fn sealed(event: &Value) -> bool {
    SEALED_BY_THEIR_PACK.contains(&event_id(event))
}

/// What `SEALOG_BLESS_RECORD_IDS=1` rewrites (never under CI).
const BLESS: &str = "SEALOG_BLESS_RECORD_IDS";

fn examples_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson")
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/example_record_ids.txt")
}

/// The example events, as written in the file.
fn examples() -> Vec<Value> {
    std::fs::read_to_string(examples_path())
        .expect("examples/events.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("an example is JSON"))
        .collect()
}

fn oracle_id(v: &Value) -> String {
    format!("sha256:{}", hex::encode(oracle_record_id(v)))
}

fn event_id(v: &Value) -> &str {
    v["id"].as_str().expect("an event id")
}

/// An event in the form PRODUCT.md §3 hashes, with the normalization written out here from
/// the seed documents rather than read from the packs under test: the decision-log seed's
/// §7.3 orderings. The other built-in packs' normalizations change none of the examples
/// (see `NORMALIZED_BY_THEIR_PACK`).
fn documented_form(event: &Value) -> Value {
    let mut e = event.clone();
    if e["type"] != "decision-log.audit_decision_record" {
        return e;
    }
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    let mut sort_by = |pointer: &str, keys: &[&str]| {
        if let Some(Value::Array(items)) = e.pointer_mut(pointer) {
            items.sort_by_key(|item| keys.iter().map(|k| text(item, k)).collect::<Vec<_>>());
        }
    };
    sort_by("/data/features/feature_keys_used", &["key_type", "key_id"]);
    sort_by(
        "/data/features/group_versions_used",
        &["group_name", "group_version"],
    );
    sort_by("/data/features/freshness", &["group_name", "group_version"]);
    sort_by("/data/decision/actions", &["action_type"]);
    sort_by("/data/df_provenance/stage_summary", &["stage"]);
    if let Some(Value::Array(groups)) =
        e.pointer_mut("/data/degrade/capabilities_mask/allowed_feature_groups")
    {
        groups.sort_by_key(|g| g.as_str().unwrap_or_default().to_string());
    }
    e
}

/// A record as `sealog` prints it, without the server fields: the event it stores.
fn stored_event(record: &Value) -> Value {
    let mut m: Map<String, Value> = record.as_object().expect("a record object").clone();
    for field in ["seq", "record_id", "ingested_at"] {
        assert!(m.remove(field).is_some(), "record lacks {field}: {record}");
    }
    Value::Object(m)
}

/// The data directory after `sealog append examples/events.ndjson`; its result lines.
fn appended_examples(cli: &Cli) -> Vec<Value> {
    let path = examples_path();
    let results = cli
        .ok(&["append", path.to_str().expect("a UTF-8 path")], b"")
        .lines();
    assert_eq!(results.len(), examples().len(), "one result per example");
    for (r, e) in results.iter().zip(examples()) {
        assert_eq!(r["status"], "appended", "{}: {r}", event_id(&e));
    }
    results
}

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir)
}

/// Sealog's canonical form of `v`, shown beside the oracle's when they disagree (never used
/// as an expectation).
fn sealogs_jcs(v: &Value) -> String {
    sealog_model::jcs::to_vec(v).map_or_else(
        |e| format!("(no canonical form: {e})"),
        |b| String::from_utf8_lossy(&b).into_owned(),
    )
}

#[test]
fn every_stored_example_has_the_sha256_of_the_oracles_jcs_as_its_record_id() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    let results = appended_examples(&cli);
    let records = cli.all_records();
    assert_eq!(records.len(), results.len());
    for ((example, result), record) in examples().iter().zip(&results).zip(&records) {
        let id = record["record_id"].as_str().expect("a record_id");
        assert_eq!(result["record_id"], id, "the append answered the stored id");
        assert_eq!(result["seq"], record["seq"]);
        let stored = stored_event(record);
        assert_eq!(event_id(&stored), event_id(example));
        assert_eq!(
            oracle_id(&stored),
            id,
            "{}: the record_id is not SHA-256 of the oracle's JCS of the stored event\n\
             oracle: {}\nsealog: {}",
            event_id(example),
            oracle_jcs(&stored),
            sealogs_jcs(&stored)
        );
        // `get` by id and by seq reads back the same record.
        for key in [id.to_string(), record["seq"].to_string()] {
            assert_eq!(
                &cli.ok(&["get", "--sealed", &key], b"").json(),
                record,
                "get {key}"
            );
        }
        // Sealed exactly where the pack declares personal fields, and opened on reading.
        let text = record.to_string();
        assert_eq!(
            text.contains("\"sealed:v1:"),
            sealed(example),
            "{}: {text}",
            event_id(example)
        );
        if sealed(example) {
            let opened = stored_event(&cli.ok(&["get", id], b"").json());
            assert_eq!(&opened, example, "an admin reads the event as sent");
        }
    }
}

#[test]
fn examples_hash_as_written_unless_their_pack_normalizes_them_as_the_seed_says() {
    let dir = sealog_testkit::tempdir();
    let results = appended_examples(&cli(dir.path()));
    let mut normalized = BTreeSet::new();
    for (example, result) in examples().iter().zip(&results) {
        let name = event_id(example);
        let id = result["record_id"].as_str().expect("a record_id");
        let documented = documented_form(example);
        if sealed(example) {
            assert_ne!(
                oracle_id(&documented),
                id,
                "{name}: its personal values are sealed"
            );
            continue;
        }
        if oracle_jcs(&documented) != oracle_jcs(example) {
            normalized.insert(name.to_string());
            assert_ne!(
                oracle_id(example),
                id,
                "{name}: hashed as written, though its declared arrays are out of order"
            );
        }
        assert_eq!(
            oracle_id(&documented),
            id,
            "{name}: the record_id is not SHA-256 of the oracle's JCS of the event as the \
             seed normalizes it\noracle: {}\nsealog: {}",
            oracle_jcs(&documented),
            sealogs_jcs(&documented)
        );
    }
    assert_eq!(
        normalized,
        NORMALIZED_BY_THEIR_PACK
            .iter()
            .map(ToString::to_string)
            .collect(),
        "the examples normalization changes"
    );
}

const GOLDEN_HEADER: &str = "\
# The record_id of each event of examples/events.ndjson, in file order: `<event id> <record_id>`.
# Produced by the RFC 8785 oracle (serde_json_canonicalizer) and SHA-256 (sha2) over each
# event after the decision-log seed's §7.3 orderings, with no Sealog code involved. Examples
# with personal values are not here: they are sealed under keys each data directory makes.
# Regenerate only on purpose, never under CI:
#   SEALOG_BLESS_RECORD_IDS=1 cargo test -p sealog --test suite record_ids::golden
";

/// The golden file's `(event id, record_id)` pairs.
fn golden() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(golden_path()).expect("tests/data/example_record_ids.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (event, id) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("not `<event id> <record_id>`: {l:?}"));
            (event.to_string(), id.to_string())
        })
        .collect()
}

/// Fails naming each event whose id differs, rather than printing two long lists.
#[track_caller]
fn assert_same_ids(got: &[(String, String)], want: &[(String, String)], what: &str) {
    let events = |v: &[(String, String)]| v.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>();
    assert_eq!(
        events(got),
        events(want),
        "{what}: the same events in the same order"
    );
    let wrong: Vec<String> = got
        .iter()
        .zip(want)
        .filter(|(g, w)| g.1 != w.1)
        .map(|(g, w)| format!("{}: got {}, want {}", g.0, g.1, w.1))
        .collect();
    assert!(wrong.is_empty(), "{what}:\n{}", wrong.join("\n"));
}

#[test]
fn golden_record_ids_are_the_oracles() {
    let from_oracle: Vec<(String, String)> = examples()
        .iter()
        .filter(|e| !sealed(e))
        .map(|e| (event_id(e).to_string(), oracle_id(&documented_form(e))))
        .collect();
    if std::env::var_os(BLESS).is_some() {
        assert!(
            !sealog_testkit::under_ci(),
            "{BLESS} is set under CI: golden ids are regenerated only by hand, on purpose"
        );
        let mut text = GOLDEN_HEADER.to_string();
        for (event, id) in &from_oracle {
            text.push_str(&format!("{event} {id}\n"));
        }
        std::fs::write(golden_path(), text).expect("write the golden ids");
        eprintln!("{BLESS}: rewrote {}", golden_path().display());
    }
    let text = std::fs::read_to_string(golden_path()).expect("the golden ids");
    assert!(
        text.starts_with(GOLDEN_HEADER),
        "the header says how it was made"
    );
    assert_same_ids(&golden(), &from_oracle, "golden ids against the oracle");
    let distinct: BTreeSet<&String> = from_oracle.iter().map(|(_, id)| id).collect();
    assert_eq!(
        distinct.len(),
        from_oracle.len(),
        "every example is its own record"
    );
}

#[test]
fn golden_record_ids_are_what_appending_the_examples_yields() {
    let dir = sealog_testkit::tempdir();
    let results = appended_examples(&cli(dir.path()));
    let got: Vec<(String, String)> = examples()
        .iter()
        .zip(&results)
        .filter(|(e, _)| !sealed(e))
        .map(|(e, r)| {
            let id = r["record_id"].as_str().expect("a record_id");
            (event_id(e).to_string(), id.to_string())
        })
        .collect();
    assert_same_ids(&got, &golden(), "appended examples against the golden ids");
}

#[test]
fn examples_sent_in_other_member_orders_through_sealog_append_are_the_same_records() {
    let seed = shuffle::seed("SEALOG_RECORD_IDS_SEED", 0x5EA1_01D5_0000_0001);
    let mut rng = Rng::new(seed);
    let dir = sealog_testkit::tempdir();
    let log = cli(dir.path());
    let first = appended_examples(&log);

    let mut input = Vec::new();
    for example in examples() {
        let text = shuffle::shuffled(&example, &mut rng, Whitespace::Inline);
        let unsorted = shuffle::unsorted_objects(&text);
        for level in ["", "/data"] {
            assert!(
                unsorted.iter().any(|u| u == level),
                "{}: {level:?} is in sorted order, as a `Value` would present it: {text}",
                event_id(&example)
            );
        }
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), example);
        input.extend_from_slice(text.as_bytes());
        input.push(b'\n');
    }
    let again = log.ok(&["append"], &input).lines();
    assert_eq!(again.len(), first.len());
    for ((a, b), e) in first.iter().zip(&again).zip(examples()) {
        assert_eq!(b["status"], "duplicate", "{}: {b}", event_id(&e));
        assert_eq!(b["seq"], a["seq"], "{}", event_id(&e));
        assert_eq!(b["record_id"], a["record_id"], "{}", event_id(&e));
    }
    assert_eq!(log.all_records().len(), first.len());

    // In a data directory of their own, the reordered texts are the golden records.
    let fresh = sealog_testkit::tempdir();
    let results = cli(fresh.path()).ok(&["append"], &input).lines();
    let got: Vec<(String, String)> = examples()
        .iter()
        .zip(&results)
        .filter(|(e, r)| {
            assert_eq!(r["status"], "appended", "{}: {r}", event_id(e));
            !sealed(e)
        })
        .map(|(e, r)| {
            (
                event_id(e).to_string(),
                r["record_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_same_ids(&got, &golden(), "reordered examples against the golden ids");
}
