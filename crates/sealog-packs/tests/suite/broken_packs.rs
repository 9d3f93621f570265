//! User packs that cannot be loaded say which pack, which file and where.

use crate::common;

use std::path::Path;

use sealog_packs::{CheckKind, PackError, Packs, ReasonCode};
use serde_json::{Value, json};

const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}"#;

fn manifest(ty: Value) -> Value {
    json!({"pack": "acme", "types": {"acme.thing": ty}})
}

fn write_pack(dir: &Path, manifest: &Value, schema: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("thing.schema.json"), schema).unwrap();
}

fn load(manifest: &Value, schema: &str) -> Result<Packs, PackError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acme");
    write_pack(&dir, manifest, schema);
    Packs::load(&[&dir])
}

fn good() -> Value {
    json!({"schema": "thing.schema.json", "subject": "/data/id", "required": ["/data/n"],
           "axes": [{"name": "n", "pointer": "/data/n"}], "state": {"op": "create", "set": {"n": "/data/n"}}})
}

#[test]
fn a_good_user_pack_loads_beside_the_builtins_and_checks_events() {
    let packs = load(&manifest(good()), SCHEMA).unwrap();
    assert!(packs.pack_names().contains(&"acme"));
    assert!(packs.pack_names().contains(&"decision-log"));
    assert!(packs.declares("acme.thing"));
    let ok = json!({"id": "1", "source": "s", "type": "acme.thing", "time": "2026-01-01T00:00:00Z", "data": {"id": "x", "n": 3}});
    common::check_with(&packs, &ok).unwrap();
    let mut bad = ok.clone();
    bad["data"]["n"] = json!("three");
    let q = common::check_with(&packs, &bad).unwrap_err();
    assert_eq!(
        (q.reason, q.violations[0].pointer.as_str()),
        (ReasonCode::SchemaViolation, "/data/n")
    );
    assert!(
        packs
            .axes()
            .contains(&("acme".into(), "acme.thing".into(), "n".into()))
    );
}

fn expect_error(manifest: Value, schema: &str, file: &str, at: &str, words: &str) {
    let e = load(&manifest, schema).expect_err("must not load");
    let text = e.to_string();
    assert_eq!(e.file, file, "{text}");
    assert!(e.at.contains(at), "at {at:?}: {text}");
    assert!(text.contains(words), "{words:?}: {text}");
    assert!(text.contains("acme"), "names the pack: {text}");
}

#[test]
fn retention_is_seven_years_unless_a_pack_or_type_says_otherwise_and_a_bad_one_is_located() {
    let packs = load(&manifest(good()), SCHEMA).unwrap();
    assert_eq!(packs.retention("acme.thing").text(), "P7Y");
    assert_eq!(packs.retention("nobody.declared").text(), "P7Y");
    assert_eq!(packs.retention("audit.retention_applied").text(), "forever");
    assert_eq!(packs.retention("audit.access").text(), "P7Y");
    assert_eq!(packs.quarantine_retention("comms.email").text(), "P1Y");
    assert_eq!(packs.retention("comms.email").text(), "P7Y");
    let mut m = manifest(good());
    m["retention"] = json!("P6Y");
    m["quarantine_retention"] = json!("P90D");
    let packs = load(&m, SCHEMA).unwrap();
    assert_eq!(packs.retention("acme.thing").text(), "P6Y");
    assert_eq!(packs.quarantine_retention("acme.thing").text(), "P90D");
    let mut ty = good();
    ty["retention"] = json!("PT72H");
    let packs = load(&manifest(ty), SCHEMA).unwrap();
    assert_eq!(packs.retention("acme.thing").text(), "PT72H");
    assert_eq!(packs.quarantine_retention("acme.thing").text(), "PT72H");
    let mut ty = good();
    ty["retention"] = json!("7 years");
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "types.\"acme.thing\".retention",
        "not an ISO 8601 duration",
    );
    let mut m = manifest(good());
    m["quarantine_retention"] = json!("P");
    expect_error(
        m,
        SCHEMA,
        "manifest.json",
        "quarantine_retention",
        "ISO 8601",
    );
}

#[test]
fn a_misspelt_rule_is_an_error_with_its_line() {
    let mut ty = good();
    ty["requried"] = json!(["/data/n"]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "line",
        "unknown field `requried`",
    );
}

#[test]
fn bad_pointers_are_located() {
    let mut ty = good();
    ty["required"] = json!(["/data/n", "data/m"]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "types.\"acme.thing\".required[1]",
        "must start with '/'",
    );
    let mut ty = good();
    ty["forbidden"] = json!(["/data/a~2b"]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "forbidden[0]",
        "'~' must be followed by 0 or 1",
    );
    let mut ty = good();
    ty["subject"] = json!("/data/items/*/id");
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "subject",
        "'*' is not allowed here",
    );
    let mut ty = good();
    ty["axes"] = json!([{"name": "seq", "pointer": "/seq"}]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "axes[0].pointer",
        "which the server sets",
    );
}

#[test]
fn axis_names_may_not_shadow_builtin_axes() {
    let reserved = sealog_packs::axes::ENVELOPE_AXES.into_iter().chain([
        "chain",
        "supersedes",
        "correction",
        "reason",
    ]);
    for name in reserved {
        assert!(sealog_packs::axes::is_reserved(name));
        let mut ty = good();
        ty["axes"] = json!([{"name": name, "pointer": "/data/n"}]);
        expect_error(
            manifest(ty),
            SCHEMA,
            "manifest.json",
            "axes[0].name",
            "built-in axis",
        );
    }
}

#[test]
fn normalization_may_touch_only_the_body() {
    for (what, rule) in [
        ("sort", json!({"sort": [{"array": "/actor", "by": []}]})),
        (
            "defaults",
            json!({"defaults": [{"pointer": "/subject", "value": "x"}]}),
        ),
        (
            "defaults",
            json!({"defaults": [{"pointer": "/data", "value": {}}]}),
        ),
    ] {
        let mut ty = good();
        ty["normalize"] = rule;
        expect_error(
            manifest(ty),
            SCHEMA,
            "manifest.json",
            &format!("normalize.{what}[0]"),
            "only under /data",
        );
    }
}

#[test]
fn broken_schemas_are_reported_in_their_own_file() {
    expect_error(
        manifest(good()),
        "{\"type\": \"object\",\n \"properties\": }",
        "thing.schema.json",
        "line 2",
        "expected value",
    );
    expect_error(
        manifest(good()),
        r#"{"type": "objekt"}"#,
        "thing.schema.json",
        "/",
        "invalid schema",
    );
    expect_error(
        manifest(good()),
        r#"{"$schema": "http://json-schema.org/draft-07/schema#"}"#,
        "thing.schema.json",
        "/$schema",
        "2020-12",
    );
    let mut ty = good();
    ty["schema"] = json!("../elsewhere.json");
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "schema",
        "file name inside the pack",
    );
    let mut ty = good();
    ty["schema"] = json!("absent.schema.json");
    expect_error(
        manifest(ty),
        SCHEMA,
        "absent.schema.json",
        "file",
        "cannot read",
    );
}

#[test]
fn types_and_packs_are_unique_across_packs() {
    let m = json!({"pack": "acme", "types": {"decision-log.audit_decision_record": good()}});
    expect_error(
        m,
        SCHEMA,
        "manifest.json",
        "types.\"decision-log.audit_decision_record\"",
        "already declared by pack \"decision-log\"",
    );
    let m = json!({"pack": "coordination", "types": {"acme.other": good()}});
    let e = load(&m, SCHEMA).unwrap_err();
    assert!(e.to_string().contains("already loaded"), "{e}");
}

#[test]
fn contradictory_rules_are_refused() {
    let mut ty = good();
    ty["state"] = json!({"op": "observe", "set": {"n": "/data/n"}});
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "state",
        "changes no fields",
    );
    let mut ty = good();
    ty["required_when"] = json!([{"when": {"pointer": "/data/n"}, "required": ["/data/m"]}]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "required_when[0].when",
        "exactly one of",
    );
    let mut ty = good();
    ty["actor_types"] = json!(["robot"]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "actor_types[0]",
        "not an actor type",
    );
    let mut ty = good();
    ty["equal"] = json!([["/data/n"]]);
    expect_error(
        manifest(ty),
        SCHEMA,
        "manifest.json",
        "equal[0]",
        "at least two",
    );
}

#[test]
fn a_missing_manifest_names_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Packs::load(&[tmp.path()]).unwrap_err();
    assert_eq!(e.file, "manifest.json");
    assert!(e.pack.contains(&tmp.path().display().to_string()), "{e}");
}

fn with_check(check: Value) -> Value {
    let mut m = manifest(good());
    m["checks"] = json!([check]);
    m
}

#[test]
fn a_user_packs_check_rules_load_and_a_bad_one_is_located() {
    let rule = json!({"name": "acme.lost", "kind": "state", "criticality": "high",
        "message": "lost", "types": ["acme.thing"], "anomalies": ["expect"]});
    let packs = load(&with_check(rule.clone()), SCHEMA).unwrap();
    let r = packs
        .checks()
        .iter()
        .find(|r| r.name == "acme.lost")
        .unwrap();
    assert_eq!(
        (r.pack.as_str(), r.criticality.as_str(), r.kind.name()),
        ("acme", "high", "state")
    );
    assert!(
        packs
            .checks()
            .iter()
            .any(|r| r.name == "knowledge.contradiction")
    );
    let bad = |patch: Value, at: &str, words: &str| {
        let mut r = rule.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                r.as_object_mut().unwrap().remove(k);
            } else {
                r[k] = v.clone();
            }
        }
        expect_error(with_check(r), SCHEMA, "manifest.json", at, words);
    };
    bad(
        json!({"kind": "vibes"}),
        "checks[0].kind",
        "not a rule kind",
    );
    bad(
        json!({"criticality": "severe"}),
        "checks[0].criticality",
        "not a criticality",
    );
    bad(
        json!({"types": ["other.thing"]}),
        "checks[0].types",
        "not declared by this pack",
    );
    bad(json!({"name": "other.lost"}), "checks[0].name", "namespace");
    bad(
        json!({"anomalies": ["weird"]}),
        "checks[0].anomalies",
        "not an anomaly kind",
    );
    bad(
        json!({"within": "P1D"}),
        "checks[0].within",
        "does not take",
    );
    bad(
        json!({"message": " "}),
        "checks[0].message",
        "says what it found",
    );
    bad(
        json!({"kind": "stale", "anomalies": null, "within": "P1M"}),
        "checks[0].within",
        "fixed duration",
    );
    bad(
        json!({"kind": "deadline", "anomalies": null, "within": "P1D"}),
        "checks[0].done",
        "says when it is met",
    );
    bad(
        json!({"kind": "contradiction", "anomalies": null, "axis": "nope", "key": "n", "value": "n"}),
        "checks[0].axis",
        "must be an axis",
    );
    bad(
        json!({"kind": "denied_burst", "anomalies": null, "types": null, "within": "PT5M", "threshold": 1}),
        "checks[0].threshold",
        "at least 2",
    );
    let mut twice = manifest(good());
    twice["checks"] = json!([rule.clone(), rule]);
    expect_error(
        twice,
        SCHEMA,
        "manifest.json",
        "checks[1].name",
        "declared twice",
    );
    let mut unknown = with_check(json!({}));
    unknown["checks"][0] = json!({"name": "acme.x", "kind": "state", "criticality": "low",
        "message": "m", "types": ["acme.thing"], "anomalies": ["expect"], "severity": 3});
    let e = load(&unknown, SCHEMA).unwrap_err().to_string();
    assert!(
        e.contains("unknown field `severity`") && e.contains("line"),
        "{e}"
    );
}

/// A deadline rule's `from` names the field a record's deadline counts from; one that names
/// no single field of the record's data is refused where it stands.
#[test]
fn a_deadline_counts_from_its_from_field_and_a_bad_one_is_located() {
    let rule = |from: Value| {
        json!({"name": "acme.late", "kind": "deadline", "criticality": "high",
               "message": "late", "types": ["acme.thing"], "within": "P10D",
               "from": from, "done": {"field": "n"}})
    };
    let packs = load(&with_check(rule(json!("/data/filed_at"))), SCHEMA).unwrap();
    let at = |t| sealog_model::time::parse_rfc3339(t).unwrap();
    let record = json!({"data": {"filed_at": "2026-03-01T00:00:00Z",
                                 "request_timestamp": "2026-03-02T00:00:00Z"}});
    let deadline = |name: &str| -> i64 {
        let rule = packs.checks().iter().find(|r| r.name == name).unwrap();
        match &rule.kind {
            CheckKind::Deadline(d) => d.starts(&record, at("2026-03-20T00:00:00Z")),
            _ => panic!("{name} is not a deadline rule"),
        }
    };
    assert_eq!(deadline("acme.late"), at("2026-03-01T00:00:00Z"));
    assert_eq!(
        deadline("comms.popia_request_overdue"),
        at("2026-03-02T00:00:00Z"),
        "the built-in rule counts from the request's receipt"
    );
    for (from, words) in [
        (json!("data/filed_at"), "must start with '/'"),
        (json!("/time"), "into the record's data"),
        (json!("/data"), "into the record's data"),
        (json!("/data/filed/*/at"), "names one field"),
        (json!("/data/a~2b"), "'~' must be followed by 0 or 1"),
    ] {
        expect_error(
            with_check(rule(from)),
            SCHEMA,
            "manifest.json",
            "checks[0].from",
            words,
        );
    }
    let mut stale = rule(json!("/data/filed_at"));
    stale["kind"] = json!("stale");
    stale.as_object_mut().unwrap().remove("done");
    expect_error(
        with_check(stale),
        SCHEMA,
        "manifest.json",
        "checks[0].from",
        "does not take",
    );
}

/// A personal field is sealed whole before axes are read, so an axis reading inside one (by
/// its pointer or a joined field) would index nothing: the manifest is refused, and says why.
#[test]
fn an_axis_inside_a_personal_field_is_refused() {
    let mut ty = good();
    ty["data_subject"] = json!("/data/customer");
    ty["personal"] = json!(["/data/profile", "/data/contacts"]);
    ty["axes"] = json!([{"name": "n", "pointer": "/data/n"},
                        {"name": "email", "pointer": "/data/profile/email"}]);
    expect_error(
        manifest(ty.clone()),
        SCHEMA,
        "manifest.json",
        "types.\"acme.thing\".axes[1]",
        "reads inside the personal field \"/data/profile\"",
    );
    ty["axes"] = json!([{"name": "phone", "pointer": "/data/contacts/*", "join": ["/phone"]}]);
    expect_error(
        manifest(ty.clone()),
        SCHEMA,
        "manifest.json",
        "axes[0]",
        "reads inside the personal field \"/data/contacts\"",
    );
    // The personal field itself may be an axis: it indexes a keyed hash of the value.
    ty["axes"] = json!([{"name": "profile", "pointer": "/data/profile"}]);
    if let Err(e) = load(&manifest(ty), SCHEMA) {
        panic!("a personal field as an axis is refused: {e}");
    }
}

/// Defaults are added after the check that asks for the data subject beside a personal value:
/// a default that would put a personal value into an event is refused when the pack loads,
/// and names the field. One inside a personal field, or one that adds nothing there, is kept.
#[test]
fn a_default_that_fills_a_personal_field_is_refused() {
    let mut ty = good();
    ty["data_subject"] = json!("/data/customer");
    ty["personal"] = json!([
        "/data/profile/name",
        "/data/contacts/*/phone",
        "/data/notes"
    ]);
    for (default, names) in [
        (
            json!({"pointer": "/data/profile/name", "value": "n/a"}),
            "/data/profile/name",
        ),
        (
            json!({"pointer": "/data/profile", "value": {"name": "n/a"}}),
            "/data/profile/name",
        ),
        (
            json!({"pointer": "/data/contacts/0/phone", "value": "0"}),
            "/data/contacts/*/phone",
        ),
        (
            json!({"pointer": "/data/contacts", "value": [{"phone": "0"}]}),
            "/data/contacts/*/phone",
        ),
        (
            json!({"pointer": "/data/customer", "value": "anonymous"}),
            "/data/customer",
        ),
    ] {
        ty["normalize"] = json!({"defaults": [{"pointer": "/data/n", "value": 0}, default]});
        expect_error(
            manifest(ty.clone()),
            SCHEMA,
            "manifest.json",
            "types.\"acme.thing\".normalize.defaults[1].pointer",
            &format!("would put a value into the personal field \"{names}\""),
        );
    }
    for harmless in [
        json!({"pointer": "/data/notes/kind", "value": "memo"}),
        json!({"pointer": "/data/profile", "value": {"city": "Durban"}}),
        json!({"pointer": "/data/profile/name", "value": null}),
        json!({"pointer": "/data/contacts/*/kind", "value": "home"}),
        json!({"pointer": "/data/contacts", "value": []}),
    ] {
        ty["normalize"] = json!({"defaults": [harmless.clone()]});
        if let Err(e) = load(&manifest(ty.clone()), SCHEMA) {
            panic!("{harmless} is refused: {e}");
        }
    }
}

/// Sealing rewrites what it names: a personal field or data subject in the envelope (which
/// Sealog orders, isolates and finds records by) or the whole of `/data` is refused when the
/// pack loads, and the place is named.
#[test]
fn personal_fields_and_the_data_subject_outside_data_are_refused() {
    for (ds, personal, at) in [
        ("/data/customer", json!(["/time"]), "personal[0]"),
        (
            "/data/customer",
            json!(["/data/name", "/actor"]),
            "personal[1]",
        ),
        ("/data/customer", json!(["/actor/id"]), "personal[0]"),
        ("/data/customer", json!(["/tenant"]), "personal[0]"),
        ("/data/customer", json!(["/data"]), "personal[0]"),
        ("/data/customer", json!(["/*"]), "personal[0]"),
        ("/tenant", json!([]), "data_subject"),
        ("/subject", json!(["/data/name"]), "data_subject"),
        ("/data", json!([]), "data_subject"),
    ] {
        let mut ty = good();
        ty["data_subject"] = json!(ds);
        ty["personal"] = personal.clone();
        expect_error(
            manifest(ty),
            SCHEMA,
            "manifest.json",
            &format!("types.\"acme.thing\".{at}"),
            "is not under /data",
        );
    }
}
