//! Published RFC 8785 test vectors; see `testdata/jcs/README.md` for their origin.

use std::fs;
use std::path::{Path, PathBuf};

use sealog_model::jcs;
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jcs")
}

/// The canonical text of a double, or `REFUSED` where Sealog refuses it: an integral double
/// past ±(2^53-1) that would print as plain digits (and so re-read as an unsafe integer).
fn number_text(f: f64) -> String {
    let n = Number::from_f64(f).expect("finite");
    let mut out = Vec::new();
    match jcs::write_number(&n, "", &mut out) {
        Ok(()) => String::from_utf8(out).unwrap(),
        Err(jcs::JcsError::UnsafeInteger(..)) => REFUSED.to_string(),
        Err(e) => panic!("{e}"),
    }
}

const REFUSED: &str = "REFUSED";

/// RFC 8785's text for `expected`, or `REFUSED` when that text is an integer Sealog refuses.
fn sealog_expects(expected: &str) -> &str {
    let digits = expected.trim_start_matches('-');
    let unsafe_integer = digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<f64>().unwrap() > jcs::MAX_SAFE_INTEGER as f64;
    if unsafe_integer { REFUSED } else { expected }
}

/// None of the upstream inputs holds an integer beyond 2^53, so Sealog's refusal of those (a
/// deviation from RFC 8785, which would round them) never comes into play and every file must
/// match byte for byte.
#[test]
fn jcs_rfc8785_input_files_canonicalize_to_expected_output() {
    let dir = testdata();
    let mut names: Vec<String> = fs::read_dir(dir.join("input"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "arrays",
            "french",
            "structures",
            "unicode",
            "values",
            "weird"
        ]
        .map(|n| format!("{n}.json"))
    );
    for name in &names {
        let input = fs::read(dir.join("input").join(name)).unwrap();
        let expected = fs::read(dir.join("output").join(name)).unwrap();
        let value: Value = serde_json::from_slice(&input).unwrap();
        let actual = jcs::to_vec(&value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&actual),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
        assert_eq!(actual, expected, "{name}");

        let hex_name = name.replace(".json", ".txt");
        let hex_text = fs::read_to_string(dir.join("outhex").join(hex_name)).unwrap();
        let hex_digits: String = hex_text.split_whitespace().collect();
        assert_eq!(hex::decode(hex_digits).unwrap(), expected, "{name} outhex");
    }
}

/// RFC 8785 Appendix B, "Number Serialization Samples".
#[test]
fn jcs_rfc8785_appendix_b_numbers() {
    let rows: [(u64, &str); 24] = [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"), // minus zero
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"), // round to even
    ];
    for (bits, expected) in rows {
        assert_eq!(
            number_text(f64::from_bits(bits)),
            sealog_expects(expected),
            "{bits:016x}"
        );
    }
}

/// The appendix's remaining rows, NaN (0x7fffffffffffffff) and Infinity (0x7ff0000000000000),
/// must be errors. serde_json cannot even represent them, so `JcsError::NonFinite` is a guard
/// that no `serde_json::Value` can reach.
#[test]
fn jcs_rfc8785_appendix_b_non_finite_cannot_be_numbers() {
    for bits in [
        0x7fffffffffffffff_u64,
        0x7ff0000000000000,
        0xfff0000000000000,
    ] {
        assert_eq!(Number::from_f64(f64::from_bits(bits)), None);
        assert_eq!(serde_json::json!(f64::from_bits(bits)), Value::Null);
    }
}

/// The first 10,000 lines of upstream's `es6testfile100m.txt` (edge cases, then the 2,000
/// smallest normal doubles, then pseudo-random doubles), checked against the published
/// checksum so the expectations cannot drift unnoticed.
#[test]
fn jcs_es6_number_test_file_first_10k_lines() {
    let bytes = fs::read(testdata().join("es6-numbers-10k.txt")).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        "b9f7a8e75ef22a835685a52ccba7f7d6bdc99e34b010992cbc5864cd12be6892"
    );
    let text = std::str::from_utf8(&bytes).unwrap();
    let mut lines = 0;
    for line in text.lines() {
        let (hex_bits, expected) = line.split_once(',').unwrap();
        let bits = u64::from_str_radix(hex_bits, 16).unwrap();
        assert_eq!(
            number_text(f64::from_bits(bits)),
            sealog_expects(expected),
            "{hex_bits}"
        );
        lines += 1;
    }
    assert_eq!(lines, 10_000);
}

/// Safe integers take the integer path through serde_json but must print exactly like the
/// double of the same value.
#[test]
fn jcs_safe_integers_print_like_their_doubles() {
    let max = jcs::MAX_SAFE_INTEGER;
    for u in [0, 1, 9, 10, 99, 1_000_000, 1 << 52, max - 1, max] {
        let mut out = Vec::new();
        jcs::write_number(&Number::from(u), "", &mut out).unwrap();
        assert_eq!(out, u.to_string().into_bytes());
        assert_eq!(number_text(u as f64), u.to_string());
        let i = -(u as i64);
        let mut out = Vec::new();
        jcs::write_number(&Number::from(i), "", &mut out).unwrap();
        assert_eq!(out, i.to_string().into_bytes());
    }
}
