//! A ledger of events of several types, tenants, subjects and times, and export helpers.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use sealog_export::{Format, Manifest, Request};
use sealog_ledger::{
    Author, Durability, IngestResult, Ledger, LedgerConfig, Packs, Query, Selection, StoreConfig,
    Undeclared,
};
use serde_json::{Value, json};

pub fn open(dir: &Path) -> Ledger {
    let config = LedgerConfig {
        store: StoreConfig {
            durability: Durability::Os,
            memtable_records_max: 64,
            ..StoreConfig::default()
        },
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    };
    Ledger::open(dir, config).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Event `i`: tenant `t{i%3}`, subject `s{i%5}`, an event time that goes back and forth.
pub fn event(i: u64) -> Value {
    let minute = (i * 37) % 60;
    json!({
        "specversion": "1.0", "id": format!("e{i}"), "source": "test", "type": format!("test.kind{}", i % 2),
        "time": format!("2026-01-03T12:{minute:02}:00Z"), "subject": format!("s{}", i % 5),
        "tenant": format!("t{}", i % 3),
        "actor": {"type": "human", "id": "u1"}, "data": {"n": i, "text": "é\u{1F600}\"\\\n"},
    })
}

pub fn append(ledger: &Ledger, events: &[Value]) {
    let raws: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
    let items: Vec<_> = raws.iter().map(|r| Ok(r.as_slice())).collect();
    for r in ledger.ingest(&items, &Author::ANYONE).expect("ingest") {
        assert!(
            matches!(r, IngestResult::Appended { .. }),
            "{:?}",
            r.to_json()
        );
    }
}

/// A ledger of `n` events, closed and reopened so its checkpoints are stored.
pub fn filled(dir: &Path, n: u64) -> Ledger {
    let ledger = open(dir);
    let events: Vec<Value> = (0..n).map(event).collect();
    append(&ledger, &events);
    ledger.checkpoint().expect("sign");
    ledger
}

pub fn request(out: &Path, format: Format, query: Query) -> Request {
    Request {
        selection: Selection {
            query,
            ..Selection::default()
        },
        format,
        out: out.to_path_buf(),
        force: false,
        must_have: Vec::new(),
    }
}

pub fn export(ledger: &Ledger, req: &Request) -> Manifest {
    sealog_export::export(ledger, req, &mut |_, _| {}).expect("export")
}

pub fn manifest_of(file: &Path) -> PathBuf {
    sealog_export::manifest_path(file)
}

pub fn verify(file: &Path) -> Result<sealog_export::Verified, sealog_export::Failure> {
    sealog_export::verify(&manifest_of(file), None, &Packs::builtin())
}

pub fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn eq(axis: &str, value: &str) -> (String, String) {
    (axis.to_string(), value.to_string())
}
