//! The storage conformance suite against the embedded store: every check, each on a fresh
//! directory, under the default configuration and under one that rolls segments and writes
//! index runs every few records, so that the contract holds across both.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use sealog_model::LogLayout;
use sealog_store::conformance::{CHECKS, TestKeys, Unique};
use sealog_store::{Config, Durability, LogWrite, Store};

fn configs() -> [(&'static str, Config); 2] {
    [
        ("the default configuration", Config::default()),
        (
            "small segments and index runs",
            Config {
                durability: Durability::Os,
                segment_bytes_max: 4096,
                memtable_records_max: 8,
                ..Config::default()
            },
        ),
    ]
}

#[test]
fn the_embedded_store_passes_every_conformance_check() {
    assert!(!CHECKS.is_empty());
    let mut failures = Vec::new();
    for (config_name, config) in configs() {
        for (name, check) in CHECKS {
            let dir = sealog_testkit::tempdir();
            let layout = LogLayout::new(dir.path());
            let open = || -> Box<dyn LogWrite<Unique>> {
                Box::new(
                    Store::open(&layout, config.clone(), Arc::new(TestKeys), Unique)
                        .unwrap_or_else(|e| panic!("open {}: {e}", dir.path().display())),
                )
            };
            // Every check runs even after one fails, so the report names all that fail.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(&open))) {
                failures.push(format!(
                    "{name} ({config_name}): {}",
                    sealog_testkit::panic_text(&*payload)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
