//! Which number literals an event may hold: those RFC 8785 writes back as the value sent.
//! Every other one is refused when the event is parsed, with its pointer, so a record never
//! seals a number its producer did not send.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use sealog_model::jcs::{self, MAX_SAFE_INTEGER};
use sealog_model::json::{Json, NumberProblem, ParseError};
use sealog_model::{Canonical, PrepareError};

/// Where a literal is put: the document (with `L` standing for the literal), the same
/// document in RFC 8785 form (with `L` standing for the literal's canonical text), and the
/// pointer of the literal.
const PLACES: [(&str, &str, &str); 6] = [
    ("L", "L", ""),
    (
        r#"{"data": {"amount": L}}"#,
        r#"{"data":{"amount":L}}"#,
        "/data/amount",
    ),
    (
        r#"{"a": [0, [1.5, {"x": "y", "b~c/d": L}]], "z": 2e0}"#,
        r#"{"a":[0,[1.5,{"b~c/d":L,"x":"y"}]],"z":2}"#,
        "/a/1/1/b~0c~1d",
    ),
    (
        r#"{"a\"b": "x\"1, 2e999", "c\\": [L, 7]}"#,
        r#"{"a\"b":"x\"1, 2e999","c\\":[L,7]}"#,
        "/c\\/0",
    ),
    ("{\"k\\u00e9\" :\n [\r\n\t L ] }", r#"{"ké":[L]}"#, "/ké/0"),
    (
        r#"[{"n": 1e-7, "m": 0.5}, -3, {"o": {"p": [true, null, L]}}]"#,
        r#"[{"m":0.5,"n":1e-7},-3,{"o":{"p":[true,null,L]}}]"#,
        "/2/o/p/2",
    ),
];

fn placed(template: &str, literal: &str) -> String {
    template.replace('L', literal)
}

/// Literals RFC 8785 writes back as the same value, and how it writes them.
const ACCEPTED: [(&str, &str); 22] = [
    ("9007199254740991", "9007199254740991"),
    ("-9007199254740991", "-9007199254740991"),
    ("1e2", "100"),
    ("1E+2", "100"),
    ("1.0", "1"),
    ("100.000", "100"),
    ("0.1", "0.1"),
    ("0.1000000000000000", "0.1"),
    ("1.5e-7", "1.5e-7"),
    ("0.000001", "0.000001"),
    ("-0", "0"),
    ("-0.0", "0"),
    ("0e-400", "0"),
    ("5e-324", "5e-324"),
    ("-5e-324", "-5e-324"),
    ("2.2250738585072014e-308", "2.2250738585072014e-308"),
    ("1.7976931348623157e308", "1.7976931348623157e+308"),
    ("1e21", "1e+21"),
    ("100000000000000000000000", "1e+23"),
    ("333333333.3333333", "333333333.3333333"),
    ("9007199254740991.0", "9007199254740991"),
    ("12345678901234.5e-3", "12345678901.2345"),
];

fn precision_loss(sealed_as: &str) -> NumberProblem {
    NumberProblem::PrecisionLoss {
        sealed_as: sealed_as.into(),
    }
}

fn underflow(sealed_as: &str) -> NumberProblem {
    NumberProblem::Underflow {
        sealed_as: sealed_as.into(),
    }
}

/// Literals RFC 8785 would not write back as the value sent, and why.
fn refused() -> Vec<(&'static str, NumberProblem)> {
    vec![
        ("9007199254740992", NumberProblem::UnsafeInteger),
        ("-9007199254740992", NumberProblem::UnsafeInteger),
        ("9007199254740993", NumberProblem::UnsafeInteger),
        ("18446744073709551616", NumberProblem::UnsafeInteger),
        ("1e16", NumberProblem::UnsafeInteger),
        ("9007199254740992.0", NumberProblem::UnsafeInteger),
        ("1e400", NumberProblem::Overflow),
        ("-1e400", NumberProblem::Overflow),
        ("1.8e308", NumberProblem::Overflow),
        ("1e99999999999999999999", NumberProblem::Overflow),
        ("1e-400", underflow("0")),
        ("-1e-400", underflow("0")),
        ("1e-99999999999999999999", underflow("0")),
        ("2e-324", underflow("0")),
        ("4e-324", underflow("5e-324")),
        ("1.2345678e-320", underflow("1.2347e-320")),
        (
            "123456789012345678901234567890",
            precision_loss("1.2345678901234568e+29"),
        ),
        (
            "0.1000000000000000055511151231257827",
            precision_loss("0.1"),
        ),
        ("1.00000000000000001", precision_loss("1")),
        ("333333333.33333329", precision_loss("333333333.3333333")),
        (
            "2.22507385850720138e-308",
            precision_loss("2.2250738585072014e-308"),
        ),
    ]
}

fn canonical_text(tree: &Json<'_>) -> String {
    let mut out = Vec::new();
    jcs::write_json(tree, &mut out).expect("an accepted tree has a canonical form");
    String::from_utf8(out).unwrap()
}

/// Both entry points, which must agree.
fn parse_both(text: &str) -> Result<Json<'_>, ParseError> {
    let from_bytes = Json::parse(text.as_bytes());
    let from_str = Json::parse_str(text);
    assert_eq!(from_bytes, from_str, "{text}");
    from_str
}

#[test]
fn literals_rfc_8785_writes_back_as_sent_are_accepted_wherever_they_stand() {
    for (literal, canonical) in ACCEPTED {
        for (template, canonical_template, _) in PLACES {
            let text = placed(template, literal);
            let tree = parse_both(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                canonical_text(&tree),
                placed(canonical_template, canonical),
                "{text}"
            );
        }
    }
}

#[test]
fn other_literals_are_refused_with_their_pointer_wherever_they_stand() {
    for (literal, problem) in refused() {
        for (template, _, pointer) in PLACES {
            let text = placed(template, literal);
            let expected = ParseError::UnrepresentableNumber {
                pointer: pointer.into(),
                literal: literal.into(),
                problem: problem.clone(),
            };
            assert_eq!(parse_both(&text), Err(expected), "{text}");
        }
    }
}

#[test]
fn a_refusal_is_unrepresentable_number_at_its_pointer_and_says_to_send_a_string() {
    for (literal, _) in refused() {
        let text = placed(PLACES[1].0, literal);
        let e = PrepareError::from(Json::parse_str(&text).unwrap_err());
        assert_eq!(e.code(), "UNREPRESENTABLE_NUMBER", "{text}");
        assert_eq!(e.field(), Some("/data/amount"), "{text}");
        let message = e.to_string();
        for part in [literal, "/data/amount", "send it as a string"] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
    }
    let e = PrepareError::from(
        Json::parse_str(r#"{"a": 0.1000000000000000055511151231257827}"#).unwrap_err(),
    );
    assert_eq!(
        e.to_string(),
        "number 0.1000000000000000055511151231257827 at /a has more digits than an IEEE double \
         keeps: it would be sealed as 0.1; send it as a string"
    );
}

/// The first offender serde_json or the literal check meets is reported, and a syntax error
/// next to a literal that overflows is not mistaken for the overflow.
#[test]
fn the_first_offender_is_reported_and_syntax_errors_stay_syntax_errors() {
    let first = |text: &str| match Json::parse_str(text) {
        Err(ParseError::UnrepresentableNumber { pointer, .. }) => pointer,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(first(r#"{"b": 1e400, "a": 1e-400}"#), "/b");
    assert_eq!(
        first(r#"[0.1, 0.10000000000000001, 9007199254740993]"#),
        "/1"
    );
    assert_eq!(first(r#"{"a": 1e400, "a": 1}"#), "/a");
    assert_eq!(
        Json::parse_str(r#"{"a": 1, "a": 1e400}"#),
        Err(ParseError::DuplicateMember("/a".into()))
    );
    for text in [r#"{"a": 1e400"#, r#"{"a": [1e400}"#, r#"{"a": 1e400 "b"}"#] {
        assert!(
            matches!(
                Json::parse_str(text),
                Err(ParseError::UnrepresentableNumber { .. })
            ),
            "serde_json stops at the number first: {text}"
        );
    }
    for text in [
        r#"{"a": "x" 1e400}"#,
        r#"{"a": 1, 1e400}"#,
        r#"[null 1e400]"#,
        r#"{"a": 1e400.}"#,
        r#"{"a": -01e400}"#,
    ] {
        assert!(
            matches!(Json::parse_str(text), Err(ParseError::NotJson(_))),
            "{text}"
        );
    }
}

/// Equal values spelled differently are one event.
#[test]
fn spellings_of_one_value_give_one_record_id() {
    let event = |n: &str| {
        format!(
            r#"{{"id":"e1","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{{"n":{n}}}}}"#
        )
    };
    let id = |n: &str| {
        let text = event(n);
        Canonical::of_event(&Json::parse_str(&text).unwrap())
            .unwrap()
            .record_id
    };
    for spellings in [
        &["100", "1e2", "1E+2", "100.0", "0.001e5"][..],
        &["0", "-0", "0.0", "-0e-400"],
        &["1e+23", "1e23", "100000000000000000000000"],
    ] {
        for s in spellings {
            assert_eq!(id(s), id(spellings[0]), "{s} = {}", spellings[0]);
        }
    }
    assert_ne!(id("100"), id("1e3"));
}

/// RFC 8785's own sample input holds `333333333.33333329`, which the RFC rounds to
/// `333333333.3333333`: Sealog refuses the sample rather than seal a number not sent.
#[test]
fn the_rfc_8785_sample_is_refused_for_its_rounded_number() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jcs/input/values.json");
    let text = fs::read_to_string(path).unwrap();
    assert_eq!(
        Json::parse_str(&text),
        Err(ParseError::UnrepresentableNumber {
            pointer: "/numbers/0".into(),
            literal: "333333333.33333329".into(),
            problem: precision_loss("333333333.3333333"),
        })
    );
    let rounded = text.replace("333333333.33333329", "333333333.3333333");
    assert!(Json::parse_str(&rounded).is_ok());
}

/// RFC 8785's text for a double, or `None` where Sealog refuses the double: an integral one
/// past ±(2^53-1) that prints as plain digits.
fn accepted_text(f: f64) -> Option<String> {
    let text = ryu_js::Buffer::new().format_finite(f).to_owned();
    let plain_integer = text
        .trim_start_matches('-')
        .bytes()
        .all(|b| b.is_ascii_digit());
    (!(plain_integer && f.abs() > MAX_SAFE_INTEGER as f64)).then_some(text)
}

/// Every double's RFC 8785 text is accepted as itself, pinned on upstream's test file.
#[test]
fn every_canonical_number_of_the_es6_test_file_is_accepted_as_itself() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jcs/es6-numbers-10k.txt");
    let lines = fs::read_to_string(path).unwrap();
    let mut accepted = 0;
    for line in lines.lines() {
        let (bits, expected) = line.split_once(',').unwrap();
        let f = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        match accepted_text(f) {
            Some(text) => {
                assert_eq!(text, expected, "{bits}");
                let tree = Json::parse_str(expected).unwrap_or_else(|e| panic!("{bits}: {e}"));
                assert_eq!(canonical_text(&tree), expected, "{bits}");
                accepted += 1;
            }
            None => assert!(
                matches!(
                    Json::parse_str(expected),
                    Err(ParseError::UnrepresentableNumber {
                        problem: NumberProblem::UnsafeInteger,
                        ..
                    })
                ),
                "{bits}"
            ),
        }
    }
    assert!(accepted > 9_000, "the file is mostly accepted numbers");
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        rng_seed: RngSeed::Fixed(0x5ea1_0002),
        ..ProptestConfig::default()
    }
}

fn finite_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<u64>().prop_map(f64::from_bits),
        2 => (-1_000_000_i64..1_000_000, 0..8_i32).prop_map(|(m, e)| m as f64 / 10_f64.powi(e)),
        1 => (any::<u64>(), -1074..1024_i32).prop_map(|(m, e)| (m >> 11) as f64 * 2_f64.powi(e)),
        1 => prop::sample::select(vec![0.0, -0.0, 5e-324, f64::MIN_POSITIVE, f64::MAX, f64::MIN]),
    ]
    .prop_filter("finite", |f| f.is_finite())
}

/// A literal of the same value as RFC 8785's `canonical`, spelled some other way.
fn respelled(canonical: &str, style: usize, padding: usize) -> String {
    let (negative, digits, exponent) = significant(canonical);
    if digits.is_empty() {
        return ["0", "-0", "0.000", "-0e5"][style % 4].into();
    }
    let sign = if negative { "-" } else { "" };
    let zeros = "0".repeat(padding);
    // The value is 0.DIGITS × 10^exponent.
    match style % 4 {
        0 => canonical.to_owned(),
        1 => format!("{sign}0.{digits}{zeros}E{exponent}"),
        2 => {
            let shift = digits.len() as i64 + padding as i64;
            format!("{sign}{digits}{zeros}e{}", exponent - shift)
        }
        _ => {
            let fraction = format!("{}{zeros}", &digits[1..]);
            let point = if fraction.is_empty() { "" } else { "." };
            format!("{sign}{}{point}{fraction}e+{}", &digits[..1], exponent - 1)
                .replace("e+-", "e-")
        }
    }
}

/// A decimal's sign, its digits without leading or trailing zeros, and the exponent that puts
/// the point before the first of them.
fn significant(text: &str) -> (bool, String, i64) {
    let negative = text.starts_with('-');
    let lower = text.trim_start_matches('-').to_ascii_lowercase();
    let (mantissa, exp) = lower.split_once('e').unwrap_or((&lower, "0"));
    let point = mantissa.find('.').unwrap_or(mantissa.len()) as i64;
    let all: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let leading = (all.len() - all.trim_start_matches('0').len()) as i64;
    let exp: i64 = exp.parse().unwrap();
    (
        negative,
        all.trim_matches('0').to_owned(),
        point - leading + exp,
    )
}

/// A JSON document of numbers in assorted spellings, each RFC 8785 writes back as its value.
#[derive(Debug, Clone)]
enum Doc {
    Number(String),
    Text(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl Doc {
    fn render(&self, out: &mut String) {
        match self {
            Doc::Number(n) => out.push_str(n),
            Doc::Text(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            Doc::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Doc::Object(members) => {
                out.push('{');
                for (i, (key, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).unwrap());
                    out.push_str(" : ");
                    item.render(out);
                }
                out.push('}');
            }
        }
    }
}

fn accepted_literal() -> impl Strategy<Value = String> {
    (finite_double(), any::<usize>(), 0..4_usize)
        .prop_filter_map("refused double", |(f, style, padding)| {
            accepted_text(f).map(|c| respelled(&c, style, padding))
        })
}

fn doc() -> impl Strategy<Value = Doc> {
    let key = prop::sample::select(vec!["a", "b", "\"", "\\", "1.5", "é", "a/b", "~", "-7"]);
    let leaf = prop_oneof![
        3 => accepted_literal().prop_map(Doc::Number),
        1 => "[a-z0-9\"\\\\ .e-]{0,12}".prop_map(Doc::Text),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Doc::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|members| {
                Doc::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn parsed(text: &str) -> Result<Json<'_>, TestCaseError> {
    Json::parse_str(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))
}

/// Two trees hold the same values: numbers compare as doubles (`1.0` and `1` are one).
fn same_values(a: &Json<'_>, b: &Json<'_>) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_values(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_values(v, w)))
                && y.iter().all(|(k, _)| a.get(k).is_some())
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_double_in_rfc_8785_form_is_accepted_as_itself(f in finite_double()) {
        let text = ryu_js::Buffer::new().format_finite(f).to_owned();
        match accepted_text(f) {
            Some(_) => {
                let tree = parsed(&text)?;
                prop_assert_eq!(canonical_text(&tree), text);
            }
            None => prop_assert_eq!(
                Json::parse_str(&text),
                Err(ParseError::UnrepresentableNumber {
                    pointer: String::new(),
                    literal: text.clone(),
                    problem: NumberProblem::UnsafeInteger,
                })
            ),
        }
    }

    #[test]
    fn accepted_numbers_canonicalize_to_text_that_parses_back_to_the_same_tree(doc in doc()) {
        let mut text = String::new();
        doc.render(&mut text);
        let tree = parsed(&text)?;
        let canonical = canonical_text(&tree);
        let again = parsed(&canonical)?;
        prop_assert!(same_values(&tree, &again), "{} vs {}", text, canonical);
        prop_assert_eq!(canonical_text(&again), canonical);
    }

    /// A non-zero 18th significant digit is past what any double's shortest form spells, so
    /// RFC 8785 could never write it back: such a literal is refused, however spelled.
    #[test]
    fn a_digit_past_what_a_double_keeps_is_refused(
        f in finite_double(),
        extra in 1..10_u8,
        style in any::<usize>(),
    ) {
        let Some(canonical) = accepted_text(f) else { return Ok(()) };
        let (negative, digits, exponent) = significant(&canonical);
        prop_assume!(!digits.is_empty());
        let sign = if negative { "-" } else { "" };
        let longer = format!("{sign}0.{digits:0<17}{extra}e{exponent}");
        let respelled = respelled(&longer, style, 0);
        let text = format!(r#"{{"data":[{respelled}]}}"#);
        match Json::parse_str(&text) {
            Err(ParseError::UnrepresentableNumber { pointer, literal, .. }) => {
                prop_assert_eq!(pointer, "/data/0");
                prop_assert_eq!(literal, respelled);
            }
            other => prop_assert!(false, "{}: {:?}", text, other),
        }
    }
}
