use crate::common;

use common::{canonical, check, examples, packs};

#[test]
fn every_example_passes_its_pack_and_prepares() {
    let events = examples();
    assert!((10..=20).contains(&events.len()));
    for e in &events {
        let normalized = check(e).unwrap_or_else(|q| panic!("{}: {q}", e["id"]));
        canonical(&normalized);
    }
}

#[test]
fn the_examples_cover_every_built_in_pack() {
    let p = packs();
    let mut covered: Vec<&str> = examples()
        .iter()
        .map(|e| p.pack_of(e["type"].as_str().unwrap()).unwrap())
        .map(|name| p.pack_names().into_iter().find(|n| *n == name).unwrap())
        .collect();
    covered.sort();
    covered.dedup();
    // `audit` holds Sealog's own record types, which producers may not send.
    let mut all: Vec<&str> = p
        .pack_names()
        .into_iter()
        .filter(|n| *n != "audit")
        .collect();
    all.sort();
    assert_eq!(covered, all);
}
