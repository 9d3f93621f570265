//! The crate boundaries ARCHITECTURE.md draws are a test: each workspace crate's dependencies
//! on Sealog's crates, as `cargo metadata` reports them, must be ones its "Dependency rules"
//! line allows. A boundary can then only move by changing the document and the code together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the workspace root")
}

/// Allowed (normal, dev) Sealog dependencies per crate, from ARCHITECTURE.md.
type Rules = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn rules() -> Rules {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text
        .split("## Dependency rules")
        .nth(1)
        .expect("a Dependency rules section")
        .split("\n## ")
        .next()
        .expect("the section's text");
    let names = |list: &str| -> BTreeSet<String> {
        list.split(',')
            .map(|n| n.trim().trim_matches('`').to_string())
            .filter(|n| !n.is_empty() && n != "nothing")
            .collect()
    };
    let mut out = Rules::new();
    for line in section.lines().filter_map(|l| l.strip_prefix("- `")) {
        let (krate, rest) = line.split_once('`').expect("a crate name in backticks");
        let rest = rest
            .trim()
            .strip_prefix("may depend on:")
            .unwrap_or_else(|| panic!("rule for {krate}: expected 'may depend on:'"));
        let (normal, tests) = rest.split_once("; tests:").unwrap_or((rest, ""));
        out.insert(krate.to_string(), (names(normal), names(tests)));
    }
    assert!(out.len() >= 9, "too few rules parsed: {out:?}");
    out
}

/// Each workspace crate's Sealog dependencies: (normal, dev).
fn actual() -> Rules {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let mut deps = Rules::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("a name").to_string();
        let entry = deps.entry(name).or_default();
        for d in p["dependencies"].as_array().expect("dependencies") {
            let dep = d["name"].as_str().expect("a dependency name");
            if !dep.starts_with("sealog") {
                continue;
            }
            match d["kind"].as_str() {
                Some("dev") => entry.1.insert(dep.to_string()),
                _ => entry.0.insert(dep.to_string()),
            };
        }
    }
    deps
}

#[test]
fn every_crate_depends_only_on_what_architecture_md_allows() {
    let rules = rules();
    let actual = actual();
    let mut wrong = Vec::new();
    for (krate, (normal, dev)) in &actual {
        let Some((allowed, tests)) = rules.get(krate) else {
            wrong.push(format!(
                "{krate} has no line in ARCHITECTURE.md's dependency rules"
            ));
            continue;
        };
        for d in normal.difference(allowed) {
            wrong.push(format!(
                "{krate} depends on {d}, which ARCHITECTURE.md does not allow"
            ));
        }
        for d in dev
            .iter()
            .filter(|d| !allowed.contains(*d) && !tests.contains(*d))
        {
            wrong.push(format!(
                "{krate}'s tests depend on {d}, which ARCHITECTURE.md does not allow"
            ));
        }
    }
    for krate in rules.keys().filter(|k| !actual.contains_key(*k)) {
        wrong.push(format!(
            "ARCHITECTURE.md has a rule for {krate}, which is not a workspace crate"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_rules_forbid_what_the_boundaries_say() {
    let rules = rules();
    for krate in ["sealog-server", "sealog", "sealog-bench", "sealog-testkit"] {
        let (normal, tests) = &rules[krate];
        assert!(
            !normal.contains("sealog-store") && !tests.contains("sealog-store"),
            "{krate} must reach the data only through the ledger"
        );
    }
    for (krate, (normal, _)) in &rules {
        assert!(
            !normal.contains("sealog-testkit"),
            "{krate} ships the test kit"
        );
    }
    assert!(rules["sealog-model"].0.is_empty() && rules["sealog-merkle"].0.is_empty());
    assert!(!rules["sealog-store"].0.contains("sealog-ledger"));
    assert!(!rules["sealog-store"].0.contains("sealog-packs"));
}

/// The database backend takes the storage contract from `sealog-store` (its traits, errors,
/// stubs and the checkpoint opener) and nothing of the embedded engine: the two share no
/// storage code.
#[test]
fn the_database_backend_uses_only_the_stores_contract() {
    const CONTRACT: &[&str] = &[
        "Admission",
        "Entry",
        "Id",
        "Indexer",
        "Key",
        "LIMIT_MAX",
        "LogRead",
        "LogView",
        "LogWrite",
        "Outcome",
        "Outcomes",
        "Page",
        "Postings",
        "Scan",
        "Stats",
        "Verdict",
        "WithLeaf",
        "Prune",
        "Recovery",
        "SignedCheckpoint",
        "Extension",
        "extensions_of",
        "CheckpointSource",
        "StoreError",
        "Stub",
        "open_checkpoint",
        "TableRow",
        "CoordinationRow",
    ];
    let rules = rules();
    for forbidden in ["sealog-packs", "sealog-ledger"] {
        assert!(
            !rules["sealog-pg"].0.contains(forbidden),
            "sealog-pg knows SQL, not events: it must not depend on {forbidden}"
        );
    }
    let src = root().join("crates/sealog-pg/src");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("sealog_store::") {
            let rest = &text[i + "sealog_store::".len()..];
            let used = match rest.strip_prefix('{') {
                Some(list) => &list[..list.find('}').expect("a closed use list")],
                None => {
                    let end = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                }
            };
            names.extend(
                used.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            );
        }
    }
    assert!(!names.is_empty(), "sealog-pg implements the contract");
    for name in &names {
        assert!(
            CONTRACT.contains(&name.as_str()),
            "sealog-pg uses sealog_store::{name}, which is not the storage contract"
        );
    }
}
