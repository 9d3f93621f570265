//! Values without a canonical form in Sealog, and where the refusal points.

use sealog_model::jcs::{self, JcsError, MAX_SAFE_INTEGER};
use serde_json::{Map, Number, Value, json};

fn unsafe_integer(number: &str, pointer: &str) -> Result<Vec<u8>, JcsError> {
    Err(JcsError::UnsafeInteger(
        number.to_owned(),
        pointer.to_owned(),
    ))
}

#[test]
fn jcs_refuses_integers_beyond_2_pow_53_with_their_pointer() {
    let two_53 = MAX_SAFE_INTEGER + 1;
    assert_eq!(
        jcs::to_vec(&json!({"a": [{"b/c": two_53}]})),
        unsafe_integer("9007199254740992", "/a/0/b~1c")
    );
    assert_eq!(
        jcs::to_vec(&json!({"a": [{"b/c": -(two_53 as i64)}]})),
        unsafe_integer("-9007199254740992", "/a/0/b~1c")
    );
    assert_eq!(
        jcs::to_vec(&json!({"a": [1, 2, {"x": 0, "b/c": u64::MAX}]})),
        unsafe_integer("18446744073709551615", "/a/2/b~1c")
    );
    assert_eq!(
        jcs::to_vec(&json!([[], [i64::MIN]])),
        unsafe_integer("-9223372036854775808", "/1/0")
    );
}

#[test]
fn jcs_error_pointers_follow_rfc6901() {
    assert_eq!(
        jcs::to_vec(&json!(u64::MAX)),
        unsafe_integer("18446744073709551615", "")
    );
    assert_eq!(
        jcs::to_vec(&json!({"": u64::MAX})),
        unsafe_integer("18446744073709551615", "/")
    );
    assert_eq!(
        jcs::to_vec(&json!({"~1/": {"é 😂": [u64::MAX]}})),
        unsafe_integer("18446744073709551615", "/~01~1/é 😂/0")
    );
    // Members are visited in canonical order, so the first offender in that order is reported.
    assert_eq!(
        jcs::to_vec(&json!({"b": u64::MAX, "a": [0, u64::MAX]})),
        unsafe_integer("18446744073709551615", "/a/1")
    );
}

#[test]
fn jcs_accepts_the_safe_range_boundaries() {
    let max = MAX_SAFE_INTEGER;
    let min = -(max as i64);
    assert_eq!(
        jcs::to_vec(&json!([max, min])).unwrap(),
        b"[9007199254740991,-9007199254740991]"
    );
    let parsed: Value = serde_json::from_str("[9007199254740991, -9007199254740991]").unwrap();
    assert_eq!(
        jcs::to_vec(&parsed).unwrap(),
        b"[9007199254740991,-9007199254740991]"
    );
}

#[test]
fn jcs_refuses_unsafe_integers_parsed_from_text() {
    let parsed: Value = serde_json::from_str(r#"{"data": {"amount": 9007199254740993}}"#).unwrap();
    assert_eq!(
        jcs::to_vec(&parsed),
        unsafe_integer("9007199254740993", "/data/amount")
    );
    let parsed: Value = serde_json::from_str(r#"{"id": -9007199254740992}"#).unwrap();
    assert_eq!(
        jcs::to_vec(&parsed),
        unsafe_integer("-9007199254740992", "/id")
    );
}

/// RFC 8785 itself would round these to the nearest double (the oracle crate does exactly
/// that); Sealog refuses them so that a record never seals a number other than the one sent.
#[test]
fn jcs_deviates_from_plain_rfc8785_only_by_refusing() {
    let value = json!({"n": 9_007_199_254_740_993_u64});
    assert_eq!(
        serde_json_canonicalizer::to_vec(&value).unwrap(),
        b"{\"n\":9007199254740992}"
    );
    assert!(jcs::to_vec(&value).is_err());
}

#[test]
fn jcs_write_number_reports_the_given_pointer() {
    let mut out = Vec::new();
    let err = jcs::write_number(&Number::from(u64::MAX), "/x~0y", &mut out).unwrap_err();
    assert_eq!(
        err,
        JcsError::UnsafeInteger("18446744073709551615".into(), "/x~0y".into())
    );
    assert!(out.is_empty());
    assert_eq!(
        err.to_string(),
        "number 18446744073709551615 at /x~0y is outside the exactly representable integer range \
         ±(2^53-1); send it as a string"
    );
}

/// An integral double past 2^53 (e.g. `1e16`) would print as plain digits that parse back as
/// an unsafe integer, so it is refused like one: every canonical text stays re-readable.
#[test]
fn jcs_integral_doubles_beyond_2_pow_53_are_refused() {
    let parsed: Value = serde_json::from_str(r#"{"a": 1e16}"#).unwrap();
    assert_eq!(jcs::to_vec(&parsed), unsafe_integer("1e+16", "/a"));
    let fine: Value = serde_json::from_str(r#"{"a": 1e21, "b": 9007199254740991.0}"#).unwrap();
    let canonical = jcs::to_vec(&fine).unwrap();
    assert_eq!(canonical, br#"{"a":1e+21,"b":9007199254740991}"#.to_vec());
}

/// Far deeper than any caller allows, to show depth costs heap, not stack.
#[test]
fn jcs_deep_nesting_does_not_overflow_the_stack() {
    const DEPTH: usize = 200_000;
    let mut value = json!(u64::MAX);
    for _ in 0..DEPTH {
        // Not `json!`, which would serialize (recursively) a copy of `value`.
        value = Value::Object(Map::from_iter([(
            "k".to_owned(),
            Value::Array(vec![value]),
        )]));
    }
    let refused = jcs::to_vec(&value);

    let mut innermost = &mut value;
    while innermost.is_object() {
        innermost = &mut innermost["k"][0];
    }
    *innermost = json!(1);
    let accepted = jcs::to_vec(&value);

    // Taken apart before asserting: unwinding would drop `value` the recursive way.
    dismantle(value);
    assert_eq!(
        refused,
        unsafe_integer("18446744073709551615", &"/k/0".repeat(DEPTH))
    );
    let expected = "{\"k\":[".repeat(DEPTH) + "1" + &"]}".repeat(DEPTH);
    assert!(accepted.unwrap() == expected.as_bytes());
}

/// serde_json drops nested values recursively; taking the chain apart level by level keeps the
/// test itself from overflowing the stack it is meant to protect.
fn dismantle(mut value: Value) {
    loop {
        value = match value {
            Value::Object(mut map) => map.remove("k").unwrap_or(Value::Null),
            Value::Array(mut items) => items.pop().unwrap_or(Value::Null),
            _ => return,
        };
    }
}
