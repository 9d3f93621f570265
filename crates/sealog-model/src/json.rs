//! The one tree an event is parsed into: strings without escapes point into the input,
//! objects keep their members in a `Vec` in the order sent. Parsing is strict: a member name
//! that repeats in its object is refused here, with its RFC 6901 pointer, so no later step
//! ever has to decide which of two values counts. A number literal that RFC 8785 would not
//! write back as the value sent is refused here too, with its pointer, so no later step ever
//! sees a number other than the one sent (the rule is in the `literals` module). Every later
//! step — the envelope, the pack checks and normalization, canonicalization, derivation —
//! reads (or edits) this tree.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::{Number, Value};

use crate::literals;

mod parser;

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// Why text is not one strict JSON value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// A member name repeats in its object: parsers disagree on which one counts, so such
    /// a value has no single meaning to seal. Holds the pointer of the second occurrence.
    #[error("member {0} appears more than once")]
    DuplicateMember(String),
    /// A number RFC 8785 would not write back as the value sent, so the record would seal a
    /// number its producer never sent. Holds the RFC 6901 pointer of the value and the
    /// literal as written.
    #[error("number {literal} at {pointer} {problem}; send it as a string")]
    UnrepresentableNumber {
        pointer: String,
        literal: String,
        problem: NumberProblem,
    },
}

/// How a number literal differs from what RFC 8785 would write for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberProblem {
    #[error("is outside the exactly representable integer range ±(2^53-1)")]
    UnsafeInteger,
    #[error("is beyond the range of an IEEE double")]
    Overflow,
    /// Not zero, yet it reads as zero or as a subnormal double with fewer digits. Holds
    /// what RFC 8785 would write.
    #[error("is too small for an IEEE double: it would be sealed as {sealed_as}")]
    Underflow { sealed_as: String },
    /// More precise than a double. Holds what RFC 8785 would write.
    #[error("has more digits than an IEEE double keeps: it would be sealed as {sealed_as}")]
    PrecisionLoss { sealed_as: String },
}

thread_local! {
    /// Trees built on this thread (text parses and conversions from `Value`): how the
    /// ingest path proves it parses each event once.
    static TREES_BUILT: Cell<u64> = const { Cell::new(0) };
}

/// How many trees this thread has built so far (see [`Json::parse`], [`Json::from_value`]).
pub fn trees_built_on_this_thread() -> u64 {
    TREES_BUILT.with(Cell::get)
}

pub(crate) fn count_tree() {
    TREES_BUILT.with(|c| c.set(c.get() + 1));
}

/// Whether a member's name is `key`. A lookup walks an object's members in order, and most
/// names it passes differ from the key in length or in their first or last byte: those are
/// compared first, since a call to `memcmp` for each name costs more than the comparison.
#[inline]
pub fn name_is(name: &str, key: &str) -> bool {
    let (a, b) = (name.as_bytes(), key.as_bytes());
    a.len() == b.len() && a.first() == b.first() && a.last() == b.last() && same_bytes(a, b)
}

/// Whether two slices of the same length hold the same bytes, compared a word at a time (the
/// last word overlapping the one before): for names this short, cheaper than calling
/// `memcmp`.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert_eq!(n, b.len(), "compared only at equal lengths");
    if n < 4 {
        return a == b;
    }
    if n <= 8 {
        let word = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
        return word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4);
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

impl<'a> Json<'a> {
    /// Parses JSON text strictly (see the module docs), once its bytes are known to be UTF-8.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse_str(text),
            Err(e) => {
                count_tree();
                Err(not_json(
                    "invalid unicode code point",
                    bytes,
                    e.valid_up_to(),
                ))
            }
        }
    }

    /// Parses text already known to be UTF-8, without checking it again.
    pub fn parse_str(text: &'a str) -> Result<Self, ParseError> {
        count_tree();
        let parsed = parser::parse(text).map_err(|f| refused(f, text.as_bytes()))?;
        if !parsed.suspects.is_empty() {
            literals::check_tree(&parsed.tree, &parsed.suspects)?;
        }
        Ok(parsed.tree)
    }

    /// Borrows a `serde_json::Value` as a tree of this kind (a `Value` cannot hold a
    /// duplicate member, so nothing is checked).
    pub fn from_value(v: &'a Value) -> Self {
        count_tree();
        Self::borrow_value(v)
    }

    fn borrow_value(v: &'a Value) -> Self {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(a) => Json::Array(a.iter().map(Self::borrow_value).collect()),
            Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Self::borrow_value(v)))
                    .collect(),
            ),
        }
    }

    /// An owned tree of a `Value` (a pack's default, inserted into an event).
    pub fn owned(v: &Value) -> Json<'static> {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Owned(s.clone())),
            Value::Array(a) => Json::Array(a.iter().map(Json::owned).collect()),
            Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Json::owned(v)))
                    .collect(),
            ),
        }
    }

    /// This tree as a `serde_json::Value`, for the cold paths that want one (describing a
    /// schema violation, the actor a quarantine record keeps).
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// The member named `key`, for objects.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members
                .iter()
                .find(|(k, _)| name_is(k, key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json<'a>> {
        match self {
            Json::Object(members) => members
                .iter_mut()
                .find(|(k, _)| name_is(k, key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// Equal as JSON values: member order does not matter, numbers compare as serde_json's.
    pub fn same_value(&self, other: &Value) -> bool {
        match (self, other) {
            (Json::Null, Value::Null) => true,
            (Json::Bool(a), Value::Bool(b)) => a == b,
            (Json::Number(a), Value::Number(b)) => a == b,
            (Json::String(a), Value::String(b)) => a == b,
            (Json::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y))
            }
            (Json::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k.as_ref()).is_some_and(|w| v.same_value(w)))
            }
            _ => false,
        }
    }
}

/// Turns the parser's refusal of `text` into ours: a duplicate's pointer, a number beyond a
/// double's range, or where the text stopped being JSON.
fn refused(failure: parser::Failure, text: &[u8]) -> ParseError {
    match failure {
        parser::Failure::Duplicate(path) => {
            let mut pointer = String::new();
            for token in path.iter().rev() {
                pointer.push('/');
                pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
            }
            ParseError::DuplicateMember(pointer)
        }
        parser::Failure::Overflow { at } => literals::overflow_before(text, at)
            .unwrap_or_else(|| not_json("number out of range", text, at)),
        parser::Failure::Syntax { what, at } => not_json(what, text, at),
    }
}

/// Where the text stopped being JSON, as a line and a column (in bytes, from 1).
fn not_json(what: &str, text: &[u8], at: usize) -> ParseError {
    let before = &text[..at.min(text.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
    ParseError::NotJson(format!("{what} at line {line} column {column}"))
}

/// How many literals the parser keeps to check against their numbers, for text it reads.
#[cfg(test)]
pub(crate) fn suspects_kept(text: &str) -> Option<usize> {
    parser::parse(text).ok().map(|p| p.suspects.len())
}

/// The byte offset of serde_json's error position (a 1-based line, and a column counted in
/// bytes within it).
#[cfg(test)]
pub(crate) fn error_offset(e: &serde_json::Error, text: &[u8]) -> usize {
    let line_start = match e.line() {
        0 | 1 => 0,
        line => text
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1),
    };
    (line_start + e.column()).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal-length slices compared a word at a time answer as `==` does: every length up to
    /// 40, with one byte changed at every place in turn.
    #[test]
    fn same_bytes_is_equality_at_every_length_and_place() {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "{n} equal bytes");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{n} bytes differing at {at}");
            }
        }
    }

    /// Every pair of names of up to three letters from a small alphabet (one letter of two
    /// bytes), so that equal lengths and equal first and last bytes are common: the shortcut
    /// answers as `==` does.
    #[test]
    fn a_name_is_a_key_exactly_when_equal() {
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|n| ["a", "b", "\u{e9}"].map(|c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 40);
        for a in &names {
            for b in &names {
                assert_eq!(name_is(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn borrows_plain_strings() {
        let text = br#"{"a":"plain","b":"esc\u0041ped","c":[1,-2,2.5,null,true]}"#;
        let j = Json::parse(text).unwrap();
        let Json::Object(m) = &j else { panic!() };
        assert!(matches!(&m[0].1, Json::String(Cow::Borrowed("plain"))));
        assert!(matches!(&m[1].1, Json::String(Cow::Owned(s)) if s == "escAped"));
        assert_eq!(j.get("a"), Some(&Json::String(Cow::Borrowed("plain"))));
    }

    #[test]
    fn agrees_with_serde_json_value() {
        for text in [
            r#"{"x":[1,{"y":"z\n"},-0.5e3,false],"k":null}"#,
            r#"{"a":[1,-2,3.5,1e300,9007199254740991,-9007199254740991],"e":"\u00e9\ud83d\ude00"}"#,
            r#"[{"x":0.1},{"x":2.5e-10}]"#,
            r#""just a string""#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let parsed = Json::parse(text.as_bytes()).unwrap();
            assert!(parsed.same_value(&v), "{text}");
            assert_eq!(parsed.to_value(), v, "{text}");
        }
    }

    #[test]
    fn duplicate_members_are_refused_with_their_pointer() {
        let cases = [
            (r#"{"id":"e","id":"f"}"#, "/id"),
            (r#"{"a":{"b":1,"b":2}}"#, "/a/b"),
            (r#"{"d":{"x/y":[1,{"b":1,"b":2}]}}"#, "/d/x~1y/1/b"),
            (r#"{"d":[[{"~":0,"~":1}]]}"#, "/d/0/0/~0"),
        ];
        for (text, pointer) in cases {
            assert_eq!(
                Json::parse(text.as_bytes()),
                Err(ParseError::DuplicateMember(pointer.into())),
                "{text}"
            );
        }
        // A failure that is not a duplicate leaves no path behind for the next parse.
        assert!(matches!(
            Json::parse(br#"{"a":[1,2"#),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            Json::parse(br#"{"a":1}x"#),
            Err(ParseError::NotJson(_))
        ));
        assert!(Json::parse(br#"{"a":1,"b":{"a":1}}"#).is_ok());
    }

    #[test]
    fn a_refused_number_is_one_tree_and_leaves_nothing_behind() {
        let before = trees_built_on_this_thread();
        for text in [
            &br#"{"a":[0.5,1e400]}"#[..],
            br#"{"a":[0.5,0.10000000000000001]}"#,
        ] {
            assert!(matches!(
                Json::parse(text),
                Err(ParseError::UnrepresentableNumber { .. })
            ));
        }
        assert_eq!(trees_built_on_this_thread() - before, 2);
        // The numbers a failed parse counted are not looked for in the next text (a debug
        // build asserts that the counts agree).
        assert!(matches!(
            Json::parse(b"[0.5, 0.25, 9007199254740993"),
            Err(ParseError::NotJson(_))
        ));
        let next = Json::parse(b"[0.5]").unwrap();
        assert_eq!(next.to_value(), serde_json::json!([0.5]));
    }

    #[test]
    fn counts_the_trees_it_builds() {
        let before = trees_built_on_this_thread();
        let v = serde_json::json!({"a": 1});
        let _ = Json::parse(b"{}").unwrap();
        let _ = Json::from_value(&v);
        let _ = Json::parse(b"{").unwrap_err();
        assert_eq!(trees_built_on_this_thread() - before, 3);
    }
}
