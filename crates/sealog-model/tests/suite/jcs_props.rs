//! Properties of canonicalization over random JSON values.
//!
//! `serde_json_canonicalizer` serves as an independent oracle. It agrees with Sealog on every
//! value generated here: the two differ only on integers beyond ±(2^53-1), which the oracle
//! rounds and Sealog refuses (covered in `jcs_errors.rs`), so those are never generated.

use std::cmp::Ordering;

use proptest::prelude::*;
use proptest::sample::Index;
use sealog_model::canonical_text;
use sealog_model::jcs::{self, MAX_SAFE_INTEGER};
use sealog_model::json::Json;
use serde_json::{Map, Number, Value};

/// Characters chosen to hit every rule: escapes, the UTF-16 vs UTF-8 ordering trap (U+E000..U+FFFF
/// against the astral planes), JSON pointer escapes and plain ASCII.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'e'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => prop::sample::select(vec!['"', '\\', '/', '~', '\u{7f}', ' ']),
        1 => proptest::char::range('\u{80}', '\u{d7ff}'),
        2 => proptest::char::range('\u{e000}', '\u{ffff}'),
        2 => proptest::char::range('\u{10000}', '\u{10ffff}'),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(interesting_char(), 0..6).prop_map(String::from_iter),
        1 => any::<String>(),
    ]
}

/// Two keys to compare: independent ones, and pairs whose second is a prefix of the first
/// (all of it, some or none) and another text, so that shared prefixes, one key a prefix of the
/// other, and the UTF-16 ordering trap right after a shared prefix are common.
fn key_pair() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (text(), text()),
        (text(), any::<Index>(), text()).prop_map(|(a, cut, tail)| {
            let chars: Vec<char> = a.chars().collect();
            let kept: String = chars[..cut.index(chars.len() + 1)].iter().collect();
            (a, kept + &tail)
        }),
    ]
}

fn safe_integer() -> impl Strategy<Value = Number> {
    let max = MAX_SAFE_INTEGER as i64;
    prop_oneof![
        (-max..=max).prop_map(Number::from),
        (0..=MAX_SAFE_INTEGER).prop_map(Number::from),
        (-1000_i64..1000).prop_map(Number::from),
        prop::sample::select(vec![0, 1, -1, max, -max]).prop_map(Number::from),
    ]
}

/// Whether a double is accepted: integral doubles above 2^53
/// and below 1e21 would print as plain integer literals that read back as unsafe integers, so
/// they are refused (pinned in `jcs_errors.rs`).
fn reparses_as_itself(f: f64) -> bool {
    !(f.fract() == 0.0 && f.abs() > MAX_SAFE_INTEGER as f64 && f.abs() < 1e21)
}

fn finite_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1_000_000_i64..1_000_000, 0..8_i32).prop_map(|(m, e)| m as f64 / 10_f64.powi(e)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1e21,
            1e-7,
            1e-6,
            5e-324,
            f64::MAX,
            f64::MIN
        ]),
    ]
    .prop_filter("finite", |f| f.is_finite())
}

fn scalar() -> impl Strategy<Value = Value> {
    let double = finite_double()
        // Integral doubles past 2^53 are refused (they would re-read as unsafe integers).
        .prop_filter("refused", |&f| reparses_as_itself(f))
        .prop_map(|f| Value::Number(Number::from_f64(f).unwrap()));
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        safe_integer().prop_map(Value::Number),
        double,
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn canonical(value: &Value) -> Vec<u8> {
    jcs::to_vec(value).expect("generated values are all canonicalizable")
}

/// The canonical bytes of JSON text, the way an event reaches them: parsed into the tree that
/// keeps members as sent, then canonicalized. Going through a `serde_json::Value` instead
/// would sort the members first and hide any dependence on the order sent.
fn canonical_text(text: &str) -> Vec<u8> {
    let tree = Json::parse_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut out = Vec::new();
    jcs::write_json(&tree, &mut out).expect("generated values are all canonicalizable");
    out
}

/// Each object's pointer and member names in the order the tree holds them, by pointer.
fn member_orders(tree: &Json<'_>) -> std::collections::BTreeMap<String, Vec<String>> {
    fn walk(
        tree: &Json<'_>,
        at: String,
        found: &mut std::collections::BTreeMap<String, Vec<String>>,
    ) {
        match tree {
            Json::Object(members) => {
                found.insert(
                    at.clone(),
                    members.iter().map(|(k, _)| k.to_string()).collect(),
                );
                for (k, item) in members {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    walk(item, format!("{at}/{k}"), found);
                }
            }
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = std::collections::BTreeMap::new();
    walk(tree, String::new(), &mut found);
    found
}

/// Tiny deterministic generator so that one proptest-chosen seed drives all layout choices.
struct Layout(u64);

impl Layout {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }

    fn space(&mut self, out: &mut String) {
        for _ in 0..self.next(3) {
            out.push([' ', '\t', '\n', '\r'][self.next(4)]);
        }
    }

    /// Writes `value` as valid JSON text in a random but equivalent spelling: members shuffled,
    /// whitespace sprinkled, characters escaped where they need not be.
    fn render(&mut self, value: &Value, out: &mut String) {
        self.space(out);
        match value {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.render(item, out);
                }
                self.space(out);
                out.push(']');
            }
            Value::Object(map) => {
                let mut members: Vec<_> = map.iter().collect();
                for i in (1..members.len()).rev() {
                    members.swap(i, self.next(i + 1));
                }
                out.push('{');
                for (i, (key, item)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.space(out);
                    self.string(key, out);
                    self.space(out);
                    out.push(':');
                    self.render(item, out);
                }
                self.space(out);
                out.push('}');
            }
            Value::String(s) => self.string(s, out),
            other => out.push_str(&other.to_string()),
        }
        self.space(out);
    }

    fn string(&mut self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match (c, self.next(3)) {
                ('/', 0) => out.push_str("\\/"),
                ('"' | '\\' | '\u{0}'..='\u{1f}', _) | (_, 0) => {
                    let mut units = [0; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                _ => out.push(c),
            }
        }
        out.push('"');
    }
}

/// JSON pointers of every scalar inside `value`.
fn scalar_pointers(value: &Value, at: String, found: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                scalar_pointers(item, format!("{at}/{i}"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                scalar_pointers(item, format!("{at}/{key}"), found);
            }
        }
        _ => found.push(at),
    }
}

/// The member-order property is only as strong as its texts: they must present members out
/// of sorted order at every level, and the parser must hand that order on to the writer.
#[test]
fn shuffled_texts_reach_the_canonicalizer_in_other_member_orders() {
    let value = serde_json::json!({
        "b": [{"y": 1, "x": [true, null], "\u{e000}": 0, "\u{10000}": 0}, 2.5],
        "a": {"q": {"n": -1, "m": "\u{e9}\"\\", "o": []}, "p": "/~"},
        "c": "end"
    });
    let sorted = member_orders(&Json::from_value(&value));
    assert_eq!(sorted.len(), 4);
    let mut reordered = std::collections::BTreeSet::new();
    const SEEDS: std::ops::Range<u64> = 0..64;
    eprintln!("layout seeds {SEEDS:?} (fixed: the run is the same every time)");
    for seed in SEEDS {
        let mut text = String::new();
        Layout(seed).render(&value, &mut text);
        let orders = member_orders(&Json::parse_str(&text).unwrap());
        assert_eq!(
            orders.keys().collect::<Vec<_>>(),
            sorted.keys().collect::<Vec<_>>(),
            "seed {seed}: {text}"
        );
        for (pointer, got) in &orders {
            let want = &sorted[pointer];
            let (mut a, mut b) = (got.clone(), want.clone());
            a.sort();
            b.sort();
            assert_eq!(a, b, "seed {seed}: the same members at {pointer:?}: {text}");
            if got != want {
                reordered.insert(pointer.clone());
            }
        }
        assert_eq!(
            canonical_text(&text),
            canonical(&value),
            "seed {seed}: {text}"
        );
    }
    assert_eq!(
        reordered,
        sorted.keys().cloned().collect(),
        "each object was presented out of sorted order by some seed (sorted: {sorted:?})"
    );
}

proptest! {
    #![proptest_config(seeded(0x5ea1_0201))]

    #[test]
    fn jcs_matches_the_oracle(value in json_value()) {
        let oracle = serde_json_canonicalizer::to_vec(&value).unwrap();
        prop_assert_eq!(
            String::from_utf8(canonical(&value)).unwrap(),
            String::from_utf8(oracle).unwrap()
        );
    }

    #[test]
    fn jcs_is_idempotent(value in json_value()) {
        let once = canonical(&value);
        let reparsed: Value = serde_json::from_slice(&once).unwrap();
        prop_assert_eq!(canonical(&reparsed), once);
    }

    #[test]
    fn jcs_ignores_member_order_whitespace_and_escapes(
        value in json_value(),
        seed in any::<u64>(),
    ) {
        let mut text = String::new();
        Layout(seed).render(&value, &mut text);
        prop_assert_eq!(canonical_text(&text), canonical(&value), "{}", text);
    }

    #[test]
    fn jcs_changing_any_scalar_changes_the_bytes(
        value in json_value(),
        which in any::<Index>(),
        replacement in scalar(),
    ) {
        let mut pointers = Vec::new();
        scalar_pointers(&value, String::new(), &mut pointers);
        prop_assume!(!pointers.is_empty(), "only empty containers");
        let pointer = which.get(&pointers);
        let original = value.pointer(pointer).unwrap();
        // 3.0 and 3 are different `Value`s but the same JSON number.
        prop_assume!(canonical(original) != canonical(&replacement));

        let mut changed = value.clone();
        *changed.pointer_mut(pointer).unwrap() = replacement;
        prop_assert_ne!(canonical(&changed), canonical(&value));
    }

    #[test]
    fn jcs_cmp_keys_is_utf16_code_unit_order((a, b) in key_pair()) {
        let expected = a.encode_utf16().cmp(b.encode_utf16());
        prop_assert_eq!(jcs::cmp_keys(&a, &b), expected);
        prop_assert_eq!(jcs::cmp_keys(&b, &a), expected.reverse());
        prop_assert_eq!(jcs::cmp_keys(&a, &a), Ordering::Equal);
    }
}

/// What reading canonical text must accept, decided the long way: parse it, canonicalize the
/// tree again and compare. `canonical_text` must agree on every text, and build the same tree.
fn canonical_the_long_way(text: &[u8]) -> Option<Json<'_>> {
    let tree = Json::parse(text).ok()?;
    let mut out = Vec::new();
    jcs::write_json(&tree, &mut out).ok()?;
    (matches!(tree, Json::Object(_)) && out == text).then_some(tree)
}

fn agrees_with_the_long_way(text: &[u8]) -> Result<(), TestCaseError> {
    let quick = canonical_text::parse_object(text);
    let long = canonical_the_long_way(text);
    match (&quick, &long) {
        (Ok(q), Some(l)) => prop_assert_eq!(&q.tree, l),
        (Err(_), None) => {}
        _ => prop_assert!(
            false,
            "one pass says {:?}, the long way {}: {:?}",
            quick.as_ref().map(|_| ()),
            if long.is_some() { "accepts" } else { "refuses" },
            String::from_utf8_lossy(text)
        ),
    }
    // Leaving a member's object value unbuilt checks it all the same: the same answer, the
    // same spans and depth, and the tree with that value as an empty object.
    let names: Vec<String> = match Json::parse(text) {
        Ok(Json::Object(members)) => members.iter().map(|(k, _)| k.to_string()).collect(),
        _ => vec![],
    };
    for left in names.iter().map(String::as_str).chain(["a", ""]) {
        let leaving = canonical_text::parse_object_leaving(text, Some(left));
        prop_assert_eq!(
            leaving.is_ok(),
            quick.is_ok(),
            "leaving {:?} of {:?}",
            left,
            String::from_utf8_lossy(text)
        );
        if let (Ok(l), Ok(q)) = (&leaving, &quick) {
            prop_assert_eq!(&l.members, &q.members);
            prop_assert_eq!(l.depth, q.depth);
            let mut expected = q.tree.clone();
            if let Some(v @ Json::Object(_)) = expected.get_mut(left) {
                *v = Json::Object(Vec::new());
            }
            prop_assert_eq!(&l.tree, &expected);
        }
    }
    if let Ok(q) = quick {
        // Each member span is the member's own canonical text.
        let Json::Object(members) = &q.tree else {
            unreachable!()
        };
        prop_assert_eq!(members.len(), q.members.len());
        for ((name, value), span) in members.iter().zip(&q.members) {
            let mut own = Vec::new();
            jcs::write_string(name, &mut own);
            own.push(b':');
            jcs::write_json(value, &mut own).unwrap();
            prop_assert_eq!(&text[span.clone()], &own[..]);
        }
    }
    Ok(())
}

/// Bytes that make or break JSON syntax and RFC 8785 form, for mutating canonical text.
fn mutation_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"{}[],:\"\\ 0123456789-+.eEtfnulsrbu/\t\n".to_vec()),
        1 => any::<u8>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    SwapAdjacent(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), mutation_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), mutation_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::SwapAdjacent),
    ]
}

fn mutate(text: &mut Vec<u8>, m: &Mutation) {
    if text.is_empty() {
        return;
    }
    match m {
        Mutation::Replace(i, b) => *i.get_mut(text) = *b,
        Mutation::Insert(i, b) => {
            let at = i.index(text.len() + 1);
            text.insert(at, *b);
        }
        Mutation::Remove(i) => {
            text.remove(i.index(text.len()));
        }
        Mutation::SwapAdjacent(i) => {
            let at = i.index(text.len());
            if at + 1 < text.len() {
                text.swap(at, at + 1);
            }
        }
    }
}

fn object_value() -> impl Strategy<Value = Value> {
    prop::collection::vec((text(), json_value()), 0..6)
        .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>()))
}

#[test]
fn reading_canonical_text_agrees_on_chosen_texts() {
    let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    let texts = [
        r#"{}"#.to_string(),
        r#"{"a":-0}"#.into(),
        r#"{"a":0}"#.into(),
        r#"{"a":1.0}"#.into(),
        r#"{"a":1e21}"#.into(),
        r#"{"a":1e+21}"#.into(),
        r#"{"a":5e-324}"#.into(),
        r#"{"a":1e-7}"#.into(),
        r#"{"a":0.000001}"#.into(),
        r#"{"a":9007199254740991}"#.into(),
        r#"{"a":-9007199254740991}"#.into(),
        r#"{"a":9007199254740992}"#.into(),
        r#"{"a":00}"#.into(),
        r#"{"a":"\u001f\b"}"#.into(),
        r#"{"a":"\u0008"}"#.into(),
        r#"{"a":"\u001F"}"#.into(),
        r#"{"a":"\/"}"#.into(),
        r#"{"a":"\u0041"}"#.into(),
        "{\"a\":\"\u{7f}\u{2028}\"}".into(),
        "{\"\u{10000}\":1,\"\u{e000}\":2}".into(),
        "{\"\u{e000}\":2,\"\u{10000}\":1}".into(),
        r#"{"a":1,"a":1}"#.into(),
        r#"{"a":1,"b":2} "#.into(),
        r#"{"a":tru}"#.into(),
        r#"[1]"#.into(),
        deep(126),
        deep(127),
        deep(128),
    ];
    for text in &texts {
        agrees_with_the_long_way(text.as_bytes()).unwrap();
    }
}

proptest! {
    #![proptest_config(seeded(0x5ea1_0202))]

    #[test]
    fn reading_canonical_text_accepts_canonical_objects(value in object_value()) {
        let text = canonical(&value);
        prop_assert!(canonical_text::parse_object(&text).is_ok());
        agrees_with_the_long_way(&text)?;
    }

    #[test]
    fn reading_canonical_text_agrees_on_other_spellings(value in object_value(), seed in any::<u64>()) {
        let mut text = String::new();
        Layout(seed).render(&value, &mut text);
        agrees_with_the_long_way(text.as_bytes())?;
        agrees_with_the_long_way(serde_json::to_string(&value).unwrap().as_bytes())?;
    }

    #[test]
    fn reading_canonical_text_agrees_on_mutated_canonical_text(
        value in object_value(),
        mutations in prop::collection::vec(mutation(), 1..3),
    ) {
        let mut text = canonical(&value);
        for m in &mutations {
            mutate(&mut text, m);
        }
        agrees_with_the_long_way(&text)?;
    }
}

/// A thousand cases from a fixed seed, so a failure is the same on every run.
fn seeded(seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}
