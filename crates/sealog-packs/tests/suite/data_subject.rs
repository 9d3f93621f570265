//! Data subjects: every built-in type derives the one the crate README's table names, each
//! manifest states its choice, and only the pack (never the envelope) decides it.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{derive, examples, packs};
use sealog_packs::{PackError, Packs};
use serde_json::{Value, json};

const PACK_DIRS: [&str; 6] = [
    "audit",
    "conversation-linking",
    "coordination",
    "customer-comms",
    "decision-log",
    "knowledge-audit",
];

/// The README's "Data subjects" table: type → pointer (`None` for "none"), `prefix.*` rows
/// expanded over the built-in types.
fn readme_table() -> BTreeMap<String, Option<String>> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README");
    let section = readme
        .split("## Data subjects")
        .nth(1)
        .expect("a Data subjects section")
        .split("\n## ")
        .next()
        .expect("its text");
    let p = packs();
    let every_type: Vec<String> = p
        .pack_names()
        .into_iter()
        .flat_map(|name| p.pack_types(name))
        .map(str::to_string)
        .collect();
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (names, pointer) = (cells[1], cells[2]);
        let pointer = match pointer {
            "none" => None,
            p => Some(p.trim_matches('`').to_string()),
        };
        for name in names.split('`').skip(1).step_by(2) {
            let matched: Vec<&String> = match name.strip_suffix('*') {
                Some(prefix) => every_type
                    .iter()
                    .filter(|t| t.starts_with(prefix))
                    .collect(),
                None => every_type.iter().filter(|t| *t == name).collect(),
            };
            assert!(!matched.is_empty(), "README row {name:?} names no type");
            for t in matched {
                let before = table.insert(t.clone(), pointer.clone());
                assert!(before.is_none(), "{t} is in the README table twice");
            }
        }
    }
    table
}

#[test]
fn every_built_in_type_derives_the_data_subject_the_readme_names() {
    let table = readme_table();
    let p = packs();
    let mut declared = BTreeMap::new();
    for pack in p.pack_names() {
        for ty in p.pack_types(pack) {
            declared.insert(
                ty.to_string(),
                p.data_subject_pointer(ty).map(str::to_string),
            );
        }
    }
    assert_eq!(declared, table, "compiled packs vs the README table");
    assert!(
        table.values().filter(|v| v.is_some()).count() >= 9,
        "the customer's own records have a data subject: {table:?}"
    );
}

#[test]
fn every_built_in_manifest_states_each_types_choice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("packs");
    let mut types = 0;
    for dir in PACK_DIRS {
        let text = std::fs::read_to_string(root.join(dir).join("manifest.json")).unwrap();
        let manifest: Value = serde_json::from_str(&text).unwrap();
        for (ty, decl) in manifest["types"].as_object().unwrap() {
            match decl.get("data_subject") {
                Some(Value::String(_) | Value::Null) => types += 1,
                other => panic!(
                    "{dir}: {ty} must say \"data_subject\": a pointer or null, not {other:?}"
                ),
            }
        }
    }
    let p = packs();
    let all: usize = p
        .pack_names()
        .into_iter()
        .map(|n| p.pack_types(n).len())
        .sum();
    assert_eq!(types, all);
}

#[test]
fn the_examples_derive_their_customers_and_nothing_else_does() {
    // By event id: what each example's data subject is.
    let want: BTreeMap<&str, Option<&str>> = [
        ("evt_txn_000000123", None),
        ("evt_txn_000000124", None),
        ("cm25-1", Some("cust-17")),
        ("cm25-2", Some("cust-17")),
        ("cm25-3", Some("cust-23")),
        ("cm25-4", None),
        ("ka-1", None),
        ("ka-2", None),
        ("ka-3", None),
        ("ka-4", None),
        ("c4-0001", None),
        ("c4-0002", None),
        ("comms-order-1", Some("cust-23")),
        ("comms-email-1", Some("cust-23")),
        ("comms-order-2", Some("cust-23")),
        ("comms-popia-1", Some("cust-23")),
    ]
    .into_iter()
    .collect();
    let events = examples();
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        want.keys().copied().collect(),
        "every example is listed here"
    );
    for e in &events {
        let id = e["id"].as_str().unwrap();
        assert_eq!(derive(e).data_subject.as_deref(), want[id], "{id}");
    }
}

/// Sets the member a pointer names, creating objects on the way.
fn set(event: &mut Value, pointer: &str, value: Value) {
    let mut at = event;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len() - 1] {
        at = at
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    at[parts[parts.len() - 1]] = value;
}

fn bare(ty: &str) -> Value {
    json!({"id": "e", "source": "s", "type": ty, "time": "2026-01-01T00:00:00Z",
           "tenant": "t", "data": {}})
}

#[test]
fn a_type_reads_its_data_subject_from_its_pointer_only() {
    let p = packs();
    for pack in p.pack_names() {
        for ty in p.pack_types(pack) {
            let mut e = bare(ty);
            // The envelope has no say: neither a member of that name nor the subject.
            e["data_subject"] = json!("from-the-envelope");
            e["subject"] = json!("from-the-subject");
            match p.data_subject_pointer(ty) {
                None => assert_eq!(derive(&e).data_subject, None, "{ty}"),
                Some(pointer) => {
                    assert_eq!(derive(&e).data_subject, None, "{ty}: pointer absent");
                    set(&mut e, pointer, Value::Null);
                    assert_eq!(derive(&e).data_subject, None, "{ty}: pointer null");
                    set(&mut e, pointer, json!("cust-9"));
                    assert_eq!(derive(&e).data_subject.as_deref(), Some("cust-9"), "{ty}");
                }
            }
        }
    }
}

#[test]
fn a_relink_and_a_resolution_are_the_new_customers_and_an_unlink_the_previous_ones() {
    let mut e = bare("conversation.customer_relinked");
    e["data"] = json!({"previous_customer_id": "cust-old", "new_customer_id": "cust-new"});
    assert_eq!(derive(&e).data_subject.as_deref(), Some("cust-new"));
    e["type"] = json!("conversation.customer_unlinked");
    assert_eq!(derive(&e).data_subject.as_deref(), Some("cust-old"));
    // A resolution candidate is the candidate's: their id is sealed under their key.
    e["type"] = json!("conversation.customer_resolved");
    assert_eq!(derive(&e).data_subject.as_deref(), Some("cust-new"));
}

const SCHEMA: &str =
    r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}"#;

fn user_pack(data_subject: Value) -> Result<Packs, PackError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acme");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({"pack": "acme", "types": {"acme.visit": {
        "schema": "visit.schema.json", "subject": "/data/visit_id", "data_subject": data_subject}}});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("visit.schema.json"), SCHEMA).unwrap();
    Packs::load(&[&dir])
}

#[test]
fn a_user_pack_declares_a_data_subject_like_a_subject() {
    let packs = user_pack(json!("/data/patient/id")).unwrap();
    let mut e = bare("acme.visit");
    e["data"] = json!({"visit_id": "v-1", "patient": {"id": 42}});
    let j = sealog_model::json::Json::from_value(&e);
    let env = sealog_model::Envelope::parse(&j).unwrap();
    // Not a string: its RFC 8785 text, as for subjects.
    assert_eq!(packs.data_subject(&j, &env).as_deref(), Some("42"));
    assert_eq!(packs.derive(&j, &env).data_subject.as_deref(), Some("42"));
    assert_eq!(packs.derive(&j, &env).subject.as_deref(), Some("v-1"));

    let fingerprint = |p: &Packs| p.fingerprint();
    assert_ne!(
        fingerprint(&packs),
        fingerprint(&user_pack(json!("/data/owner")).unwrap()),
        "where the data subject is read from is part of what the index depends on"
    );
    assert_ne!(
        fingerprint(&packs),
        fingerprint(&user_pack(Value::Null).unwrap())
    );

    for (bad, words) in [
        (json!("/data/patients/*"), "'*' is not allowed here"),
        (json!("/seq"), "which the server sets"),
        (json!("data/id"), "must start with '/'"),
    ] {
        let e = user_pack(bad.clone()).expect_err("must not load");
        let text = e.to_string();
        assert!(
            e.at.ends_with("data_subject") && text.contains(words),
            "{bad}: {text}"
        );
    }
}
