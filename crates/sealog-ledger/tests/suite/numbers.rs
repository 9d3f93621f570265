//! Numbers end to end: an event holding a number RFC 8785 would not write back as sent is
//! refused whole, with the number's pointer, and nothing of it is stored; a number it writes
//! back as sent is stored in its canonical form.

use crate::support;

use sealog_ledger::{IngestResult, Undeclared};
use serde_json::{Value, json};
use support::*;

/// Where a number stands in the events below, and its pointer.
const PLACES: [(&str, &str); 3] = [
    ("N", "/data/amount"),
    (
        r#"[{"price": 1.5}, {"note": "a \"quoted\" 1e400, \\", "price": N}]"#,
        "/data/lines/1/price",
    ),
    (r#"{"a\"b": {"c/d": [0, N]}}"#, "/data/a\"b/c~1d/1"),
];

/// An event of a type no pack declares, with `value` (JSON text) as its `data.amount`, or
/// standing for `N` in one of [`PLACES`].
fn event(id: &str, place: &str, number: &str) -> Vec<u8> {
    let value = place.replace('N', number);
    let data = if place == "N" {
        format!(r#"{{"amount": {value}}}"#)
    } else if place.starts_with('[') {
        format!(r#"{{"amount": 1, "lines": {value}}}"#)
    } else {
        value
    };
    format!(
        r#"{{"specversion": "1.0", "id": "{id}", "source": "shop", "type": "shop.payment_captured",
            "time": "2026-01-03T12:34:56Z", "tenant": "acme", "data": {data}}}"#
    )
    .into_bytes()
}

fn result(ledger: &sealog_ledger::Ledger, raw: Vec<u8>) -> IngestResult {
    ingest_raw(ledger, &[raw]).remove(0)
}

/// The issue's finding: these were stored rounded (or refused as not JSON); RFC 8785 cannot
/// write any of them back as sent.
#[test]
fn numbers_beyond_what_rfc_8785_reproduces_are_refused_not_rounded() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_with(dir.path(), Undeclared::Accept);
    let refused = [
        "123456789012345678901234567890",
        "0.1000000000000000055511151231257827",
        "1.00000000000000001",
        "1e-400",
        "4e-324",
        "1e400",
        "-1e400",
        "9007199254740993",
        "-9007199254740992",
    ];
    for (i, number) in refused.iter().enumerate() {
        for (place, pointer) in PLACES {
            let raw = event(&format!("e{i}"), place, number);
            let text = String::from_utf8_lossy(&raw).into_owned();
            let answer = result(&ledger, raw).to_json();
            assert_eq!(answer["status"], "rejected", "{text}: {answer}");
            let error = &answer["error"];
            assert_eq!(error["code"], "UNREPRESENTABLE_NUMBER", "{text}: {answer}");
            assert_eq!(error["field"], *pointer, "{text}: {answer}");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(number), "{message}");
            assert!(message.contains("send it as a string"), "{message}");
        }
    }
    assert_eq!(ledger.len(), 0, "nothing refused is in the log");
    assert_eq!(ledger.quarantine_len(), 0, "nor in the quarantine log");

    // Sent as strings, as the refusal asks, the same values are stored exactly as sent.
    for (i, number) in refused.iter().enumerate() {
        let answer = result(
            &ledger,
            event(&format!("e{i}"), "N", &format!("\"{number}\"")),
        );
        let seq = answer
            .seq()
            .unwrap_or_else(|| panic!("{number}: {}", answer.to_json()));
        let record: Value = serde_json::from_slice(&ledger.get(seq).unwrap().unwrap()).unwrap();
        assert_eq!(record["data"]["amount"], json!(number));
    }
}

/// Numbers RFC 8785 writes back as sent are stored in its form; two spellings of one value
/// are one event.
#[test]
fn numbers_rfc_8785_reproduces_are_stored_in_its_form() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_with(dir.path(), Undeclared::Accept);
    let accepted = [
        ("1.0", "1", "1"),
        ("1E+2", "100", "1e2"),
        ("0.1", "0.1", "1e-1"),
        ("1.5e-7", "1.5e-7", "0.00000015"),
        ("5e-324", "5e-324", "0.5e-323"),
        ("-0.0", "0", "0"),
        (
            "2.2250738585072014e-308",
            "2.2250738585072014e-308",
            "22.250738585072014e-309",
        ),
        (
            "9007199254740991",
            "9007199254740991",
            "9007199254740991.000",
        ),
        ("100000000000000000000000", "1e+23", "1e23"),
    ];
    for (i, (number, canonical, respelled)) in accepted.into_iter().enumerate() {
        for (place, pointer) in PLACES {
            let id = format!("ok-{i}-{}", pointer.len());
            let answer = result(&ledger, event(&id, place, number));
            let seq = answer
                .seq()
                .unwrap_or_else(|| panic!("{number}: {}", answer.to_json()));
            let record = ledger.get(seq).unwrap().unwrap();
            let record_text = String::from_utf8(record.clone()).unwrap();
            let value: Value = serde_json::from_slice(&record).unwrap();
            let stored = value
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{record_text}"));
            assert_eq!(stored.to_string(), canonical, "{number} at {pointer}");
            assert_eq!(stored.as_f64(), number.parse::<f64>().ok(), "{record_text}");

            let again = result(&ledger, event(&id, place, respelled));
            assert_eq!(again.status(), "duplicate", "{respelled} is {number}");
            assert_eq!(again.seq(), Some(seq));
        }
    }
    assert_eq!(ledger.len(), (accepted.len() * PLACES.len()) as u64);
}

/// The number is refused when the event is parsed, before its pack or its type is looked
/// at: an event that would have been quarantined is refused instead, and its raw bytes are
/// kept nowhere.
#[test]
fn a_refused_number_is_refused_before_any_pack_sees_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut declared = decision("d1", "run_1");
    declared["data"]["decision"]["score"] = json!("N");
    let declared = serde_json::to_string(&declared)
        .unwrap()
        .replace("\"N\"", "0.30000000000000000444");
    let undeclared = event("u1", "N", "1e400");
    for (raw, pointer) in [
        (declared.into_bytes(), "/data/decision/score"),
        (undeclared, "/data/amount"),
    ] {
        let answer = result(&ledger, raw).to_json();
        assert_eq!(answer["status"], "rejected", "{answer}");
        assert_eq!(answer["error"]["code"], "UNREPRESENTABLE_NUMBER");
        assert_eq!(answer["error"]["field"], pointer);
    }
    assert_eq!((ledger.len(), ledger.quarantine_len()), (0, 0));
}
