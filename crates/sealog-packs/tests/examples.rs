mod common;

use common::{check, examples, packs};
use sealog_model::PreparedEvent;
use sealog_model::json::Json;

#[test]
fn every_example_passes_its_pack_and_prepares() {
    let events = examples();
    assert!((10..=20).contains(&events.len()));
    for e in &events {
        let normalized = check(e).unwrap_or_else(|q| panic!("{}: {q}", e["id"]));
        PreparedEvent::from_json_with(&Json::from_value(&normalized), &packs())
            .unwrap_or_else(|err| panic!("{}: {err}", e["id"]));
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
    let mut all = p.pack_names();
    all.sort();
    assert_eq!(covered, all);
}
