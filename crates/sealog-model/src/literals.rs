//! Number literals as they were sent, and the one rule for which of them an event may hold.
//!
//! A record's id is a hash over RFC 8785 text, which writes every number as the shortest
//! decimal that reads back as the same IEEE double. A literal is accepted only if that text
//! denotes exactly the value the producer wrote: `1.0`, `1E+2`, `0.1` and `-0` are accepted
//! (RFC 8785 writes `1`, `100`, `0.1` and `0`, the same values), while a literal with more
//! precision than a double keeps, one beyond its range, or a non-zero one that would become 0
//! or a subnormal with fewer digits is refused. Integers are further limited to ±(2^53-1)
//! (see [`crate::jcs`]). Equal values are judged alike whatever their spelling, so
//! `100000000000000000000000` and `1e23` are both accepted: RFC 8785 writes both as `1e+23`.
//!
//! The parser keeps the literals of the numbers that may differ from what they spell, with
//! their place among the text's numbers; once the whole text has parsed, each is compared
//! with the number the tree holds at that place (the text's numbers in document order are
//! the tree's in depth-first order). Refusals of the text itself (a repeated name, a syntax
//! error) come first, wherever they are.

use std::borrow::Cow;

use serde_json::Number;

use crate::jcs::{self, Unformattable};
use crate::json::{Json, NumberProblem, ParseError};

/// Checks the numbers of `tree` that the parser read as doubles or as integers beyond
/// ±(2^53-1) (`suspects`, with their literals, in document order) against the literals they
/// were read from. Integers within that range were read exactly, so their literals need no
/// look.
pub(crate) fn check_tree(tree: &Json<'_>, suspects: &[Suspect<'_>]) -> Result<(), ParseError> {
    let mut walk = Walk {
        next_ordinal: 0,
        suspects,
    };
    walk.node(tree, None)?;
    debug_assert!(
        walk.suspects.is_empty(),
        "the tree holds the text's numbers"
    );
    Ok(())
}

/// After the parser refused `text` with an error at byte `error_at`: the refusal as
/// [`ParseError::UnrepresentableNumber`] if the cause was a literal beyond a double's range.
///
/// The text before the error is valid JSON, and the parser stops at its first error: a
/// well-formed literal that overflows, starts no later than the error and stands where a
/// value may, is the literal it stopped at.
pub(crate) fn overflow_before(text: &[u8], error_at: usize) -> Option<ParseError> {
    let mut path = Vec::new();
    let mut value_may_follow = true;
    for token in Tokens::new(text) {
        if token.start() > error_at {
            return None;
        }
        let in_array = matches!(path.last(), Some(Level::Array { .. }));
        match &token {
            Token::OpenObject(_) => path.push(Level::Object {
                key: None,
                expects_key: true,
            }),
            Token::OpenArray(_) => path.push(Level::Array { index: 0 }),
            Token::Close(_) => {
                path.pop();
            }
            Token::Comma(_) => match path.last_mut() {
                Some(Level::Array { index }) => *index += 1,
                Some(Level::Object { expects_key, .. }) => *expects_key = true,
                None => {}
            },
            Token::String(range) => {
                if let Some(Level::Object { key, expects_key }) = path.last_mut()
                    && *expects_key
                {
                    *key = Some(&text[range.clone()]);
                    *expects_key = false;
                }
            }
            Token::Number(range) => {
                let literal = &text[range.clone()];
                if value_may_follow && is_json_number(literal) && overflows(literal) {
                    return Some(refusal(
                        literal,
                        text_pointer(&path),
                        NumberProblem::Overflow,
                    ));
                }
            }
            Token::Colon(_) | Token::Other(_) => {}
        }
        value_may_follow = match token {
            Token::Colon(_) | Token::OpenArray(_) => true,
            Token::Comma(_) => in_array,
            _ => false,
        };
    }
    None
}

/// Why the number `n` does not stand for `literal`, if it does not.
fn problem(literal: &[u8], n: &Number) -> Option<NumberProblem> {
    let f = match jcs::checked_f64(n) {
        Ok(f) => f,
        Err(Unformattable::UnsafeInteger) => return Some(NumberProblem::UnsafeInteger),
        Err(Unformattable::NonFinite) => return Some(NumberProblem::Overflow),
    };
    if surely_exact(literal, f) {
        return None;
    }
    compared(literal, f)
}

/// Whether `literal`, read as the double `f`, is surely what RFC 8785 writes for `f`, without
/// writing it. A decimal of at most `f64::DIGITS` significant digits read as a normal double
/// comes back from it, rounded to that many digits, unchanged (the definition of C's
/// `DBL_DIG`). RFC 8785's shortest form of the double has no more digits than the literal
/// and reads as the same double, so it too comes back unchanged: the two are one value.
fn surely_exact(literal: &[u8], f: f64) -> bool {
    f.is_normal() && mantissa_digits(literal) <= f64::DIGITS as usize
}

/// Why RFC 8785's text for `f`, the double `literal` reads as, is not the literal's value, if
/// it is not.
fn compared(literal: &[u8], f: f64) -> Option<NumberProblem> {
    let mut buffer = ryu_js::Buffer::new();
    let canonical = buffer.format_finite(f);
    if Decimal::of(literal).same_value(&Decimal::of(canonical.as_bytes())) {
        return None;
    }
    let sealed_as = canonical.to_owned();
    Some(if f.is_normal() {
        NumberProblem::PrecisionLoss { sealed_as }
    } else {
        NumberProblem::Underflow { sealed_as }
    })
}

/// A literal the parser reads as something other than an exact safe integer, and its place
/// among the text's literals.
pub(crate) struct Suspect<'t> {
    pub(crate) ordinal: usize,
    pub(crate) literal: &'t [u8],
}

/// How many digits a literal's mantissa spells (leading and trailing zeros included).
fn mantissa_digits(literal: &[u8]) -> usize {
    literal
        .iter()
        .take_while(|b| !matches!(b, b'e' | b'E'))
        .filter(|b| b.is_ascii_digit())
        .count()
}

/// A depth-first walk of the tree that meets its numbers in the order the text holds them.
struct Walk<'s, 't> {
    next_ordinal: usize,
    /// Suspects not yet met, in document order.
    suspects: &'s [Suspect<'t>],
}

/// One step from a parent to a child; the chain of them back to the root is the pointer.
struct Step<'p> {
    token: PathToken<'p>,
    parent: Option<&'p Step<'p>>,
}

enum PathToken<'p> {
    Key(&'p str),
    Index(usize),
}

impl Walk<'_, '_> {
    /// Recursion is bounded: the parser refuses text nested 128 levels deep.
    fn node(&mut self, node: &Json<'_>, at: Option<&Step<'_>>) -> Result<(), ParseError> {
        if self.suspects.is_empty() {
            return Ok(());
        }
        match node {
            Json::Number(n) => self.number(n, at),
            Json::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                let step = Step {
                    token: PathToken::Index(i),
                    parent: at,
                };
                self.node(item, Some(&step))
            }),
            Json::Object(members) => members.iter().try_for_each(|(key, value)| {
                let step = Step {
                    token: PathToken::Key(key),
                    parent: at,
                };
                self.node(value, Some(&step))
            }),
            Json::Null | Json::Bool(_) | Json::String(_) => Ok(()),
        }
    }

    fn number(&mut self, n: &Number, at: Option<&Step<'_>>) -> Result<(), ParseError> {
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        let Some((suspect, rest)) = self.suspects.split_first() else {
            return Ok(());
        };
        if suspect.ordinal != ordinal {
            return Ok(());
        }
        self.suspects = rest;
        match problem(suspect.literal, n) {
            None => Ok(()),
            Some(why) => Err(refusal(suspect.literal, tree_pointer(at), why)),
        }
    }
}

fn refusal(literal: &[u8], pointer: String, problem: NumberProblem) -> ParseError {
    ParseError::UnrepresentableNumber {
        pointer,
        literal: String::from_utf8_lossy(literal).into_owned(),
        problem,
    }
}

/// The RFC 6901 pointer of the value reached by `at`.
fn tree_pointer(at: Option<&Step<'_>>) -> String {
    let mut tokens: Vec<Cow<'_, str>> = Vec::new();
    let mut step = at;
    while let Some(s) = step {
        tokens.push(match s.token {
            PathToken::Key(k) => Cow::Borrowed(k),
            PathToken::Index(i) => Cow::Owned(i.to_string()),
        });
        step = s.parent;
    }
    tokens.reverse();
    pointer_of(tokens)
}

/// One open container while the text is scanned for a pointer.
enum Level<'t> {
    /// `key` is the raw text (quotes and escapes included) of the member being read.
    Object {
        key: Option<&'t [u8]>,
        expects_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The RFC 6901 pointer of the value the innermost level is reading.
fn text_pointer(path: &[Level<'_>]) -> String {
    pointer_of(path.iter().map(|level| {
        match level {
            // The text up to here was valid JSON, so the key decodes; the fallback keeps a
            // pointer rather than none.
            Level::Object { key: Some(raw), .. } => Cow::Owned(
                serde_json::from_slice(raw)
                    .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
            ),
            Level::Object { key: None, .. } => Cow::Borrowed(""),
            Level::Array { index } => Cow::Owned(index.to_string()),
        }
    }))
}

fn pointer_of<'a>(tokens: impl IntoIterator<Item = Cow<'a, str>>) -> String {
    let mut pointer = String::new();
    for token in tokens {
        pointer.push('/');
        for c in token.chars() {
            match c {
                '~' => pointer.push_str("~0"),
                '/' => pointer.push_str("~1"),
                _ => pointer.push(c),
            }
        }
    }
    pointer
}

/// Whether a well-formed literal is beyond the largest double (read by the standard library,
/// as the parser reads it, so both overflow alike).
fn overflows(literal: &[u8]) -> bool {
    std::str::from_utf8(literal)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .is_some_and(f64::is_infinite)
}

/// Whether `literal` is exactly one JSON number (RFC 8259 §6).
fn is_json_number(literal: &[u8]) -> bool {
    let rest = literal.strip_prefix(b"-").unwrap_or(literal);
    let rest = match rest {
        [b'0', rest @ ..] => rest,
        [b'1'..=b'9', ..] => skip_digits(rest),
        _ => return false,
    };
    let rest = match rest {
        [b'.', fraction @ ..] if starts_with_digit(fraction) => skip_digits(fraction),
        [b'.', ..] => return false,
        _ => rest,
    };
    match rest {
        [] => true,
        [b'e' | b'E', exponent @ ..] => {
            let exponent = exponent
                .strip_prefix(b"+")
                .or_else(|| exponent.strip_prefix(b"-"))
                .unwrap_or(exponent);
            starts_with_digit(exponent) && skip_digits(exponent).is_empty()
        }
        _ => false,
    }
}

fn starts_with_digit(text: &[u8]) -> bool {
    text.first().is_some_and(u8::is_ascii_digit)
}

fn skip_digits(text: &[u8]) -> &[u8] {
    let n = text.iter().take_while(|b| b.is_ascii_digit()).count();
    &text[n..]
}

/// A decimal number as its significant digits and where the point goes: the value is
/// `0.D × 10^exponent`, D being `whole` then `fraction` with no leading or trailing zeros.
/// Comparing two of these compares the values two literals denote, whatever their spelling.
#[derive(Debug)]
struct Decimal<'t> {
    negative: bool,
    whole: &'t [u8],
    fraction: &'t [u8],
    exponent: i64,
}

impl<'t> Decimal<'t> {
    /// Reads a well-formed JSON number (a literal that parsed, or RFC 8785's text).
    fn of(literal: &'t [u8]) -> Self {
        let (negative, unsigned) = match literal.strip_prefix(b"-") {
            Some(rest) => (true, rest),
            None => (false, literal),
        };
        let (mantissa, exponent) = match unsigned.iter().position(|b| matches!(b, b'e' | b'E')) {
            Some(e) => (&unsigned[..e], exponent_value(&unsigned[e + 1..])),
            None => (unsigned, 0),
        };
        let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
            Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
            None => (mantissa, &[][..]),
        };
        let whole = trim_start_zeros(whole);
        let (fraction, point) = if whole.is_empty() {
            let trimmed = trim_start_zeros(fraction);
            (trimmed, -as_i64(fraction.len() - trimmed.len()))
        } else {
            (fraction, as_i64(whole.len()))
        };
        let fraction = trim_end_zeros(fraction);
        let whole = if fraction.is_empty() {
            trim_end_zeros(whole)
        } else {
            whole
        };
        Decimal {
            negative,
            whole,
            fraction,
            exponent: point.saturating_add(exponent),
        }
    }

    fn is_zero(&self) -> bool {
        self.whole.is_empty() && self.fraction.is_empty()
    }

    /// Zero is one value whatever its sign: RFC 8785 writes `-0` as `0`.
    fn same_value(&self, other: &Decimal<'_>) -> bool {
        if self.is_zero() || other.is_zero() {
            return self.is_zero() && other.is_zero();
        }
        self.negative == other.negative
            && self.exponent == other.exponent
            && self
                .whole
                .iter()
                .chain(self.fraction)
                .eq(other.whole.iter().chain(other.fraction))
    }
}

/// An exponent's value; one too large for an `i64` saturates, which still compares unequal
/// to any double's exponent.
fn exponent_value(text: &[u8]) -> i64 {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let magnitude = digits.iter().fold(0_i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    if negative { -magnitude } else { magnitude }
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn trim_start_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().take_while(|&&b| b == b'0').count();
    &digits[n..]
}

fn trim_end_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().rev().take_while(|&&b| b == b'0').count();
    &digits[..digits.len() - n]
}

/// What the scanner tells apart in JSON text, passing over whitespace. Each token holds its
/// byte range, or its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    OpenObject(usize),
    OpenArray(usize),
    Close(usize),
    Comma(usize),
    Colon(usize),
    String(std::ops::Range<usize>),
    Number(std::ops::Range<usize>),
    /// A byte of `true`, `false` or `null`, or of something that is not JSON.
    Other(usize),
}

impl Token {
    fn start(&self) -> usize {
        match self {
            Token::OpenObject(at)
            | Token::OpenArray(at)
            | Token::Close(at)
            | Token::Comma(at)
            | Token::Colon(at)
            | Token::Other(at) => *at,
            Token::String(range) | Token::Number(range) => range.start,
        }
    }
}

/// Tokens of JSON text. Never fails: on text that is not JSON it yields something
/// meaningless, which callers only read up to where the parser found the text valid.
struct Tokens<'t> {
    text: &'t [u8],
    at: usize,
}

impl<'t> Tokens<'t> {
    fn new(text: &'t [u8]) -> Self {
        Tokens { text, at: 0 }
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        while let Some(&b) = self.text.get(self.at) {
            let start = self.at;
            self.at += 1;
            let token = match b {
                b'"' => {
                    self.at = string_end(self.text, self.at);
                    Token::String(start..self.at)
                }
                b'-' | b'0'..=b'9' => {
                    self.at = number_end(self.text, self.at);
                    Token::Number(start..self.at)
                }
                b'{' => Token::OpenObject(start),
                b'[' => Token::OpenArray(start),
                b'}' | b']' => Token::Close(start),
                b',' => Token::Comma(start),
                b':' => Token::Colon(start),
                b' ' | b'\t' | b'\n' | b'\r' => continue,
                _ => Token::Other(start),
            };
            return Some(token);
        }
        None
    }
}

/// Where the string whose opening quote is just before `from` ends (past its closing quote),
/// an escaped quote not ending it.
fn string_end(text: &[u8], mut from: usize) -> usize {
    while let Some(found) = quote_or_backslash(text, from) {
        if text[found] == b'"' {
            return found + 1;
        }
        from = (found + 2).min(text.len());
    }
    text.len()
}

/// Where the number literal going on at `from` ends.
fn number_end(text: &[u8], from: usize) -> usize {
    from + text[from..]
        .iter()
        .take_while(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
        .count()
}

/// The first `"` or `\` in `text` from `from` on. Strings are most of an event's bytes, so
/// they are searched a word at a time.
fn quote_or_backslash(text: &[u8], from: usize) -> Option<usize> {
    let rest = &text[from..];
    let mut words = rest.chunks_exact(WORD);
    for (i, word) in (&mut words).enumerate() {
        let word = u64::from_le_bytes(word.try_into().expect("a whole word"));
        let hits = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
        if hits != 0 {
            // Little-endian: the lowest flagged byte comes first in the text.
            return Some(from + i * WORD + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let tail = rest.len() - words.remainder().len();
    words
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|i| from + tail + i)
}

const WORD: usize = std::mem::size_of::<u64>();

/// The high bit of each byte of `word` that equals `byte`. A byte after a true match may be
/// flagged falsely (a borrow runs into it), never one before, so the lowest flag is exact.
fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW_BITS: u64 = u64::from_le_bytes([0x01; WORD]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; WORD]);
    let zero_where_equal = word ^ (LOW_BITS * u64::from(byte));
    zero_where_equal.wrapping_sub(LOW_BITS) & !zero_where_equal & HIGH_BITS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_compare_by_value_whatever_their_spelling() {
        let same = [
            ("1.0", "1"),
            ("1E+2", "100"),
            ("1e2", "100"),
            ("0.1", "1e-1"),
            ("0.0010", "1e-3"),
            ("12.5", "125e-1"),
            ("1250E-2", "12.5"),
            ("-0", "0"),
            ("-0.0e5", "0"),
            ("0e-400", "0"),
            ("100000000000000000000000", "1e+23"),
            ("-4.50", "-4.5"),
        ];
        for (a, b) in same {
            let (x, y) = (Decimal::of(a.as_bytes()), Decimal::of(b.as_bytes()));
            assert!(x.same_value(&y) && y.same_value(&x), "{a} = {b}");
        }
        let different = [
            ("1", "-1"),
            ("1.1", "1.01"),
            ("10", "1"),
            ("1e400", "1e399"),
            ("1e-400", "0"),
            ("1e99999999999999999999999", "1e+308"),
            ("1e-99999999999999999999999", "5e-324"),
            ("0.1000000000000000055511151231257827", "0.1"),
            ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ];
        for (a, b) in different {
            let (x, y) = (Decimal::of(a.as_bytes()), Decimal::of(b.as_bytes()));
            assert!(!x.same_value(&y) && !y.same_value(&x), "{a} ≠ {b}");
        }
    }

    #[test]
    fn only_well_formed_json_numbers_are_numbers() {
        for good in ["0", "-0", "1", "10", "0.5", "-1.25e-3", "1E+2", "2e0"] {
            assert!(is_json_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "--1", "1.5.2", "1e5e5", "+1", "0x1", "1-2",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn overflow_is_found_only_where_serde_json_stopped_at_it() {
        let found = |text: &str| {
            let e = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
            let at = crate::json::error_offset(&e, text.as_bytes());
            overflow_before(text.as_bytes(), at)
        };
        let overflow = |pointer: &str, literal: &str| {
            Some(ParseError::UnrepresentableNumber {
                pointer: pointer.into(),
                literal: literal.into(),
                problem: NumberProblem::Overflow,
            })
        };
        assert_eq!(found("1e400"), overflow("", "1e400"));
        assert_eq!(
            found(r#"{"a":[1,{"b":-1e400}]}"#),
            overflow("/a/1/b", "-1e400")
        );
        assert_eq!(
            found("{\n \"k\\u002f\\\"\" :\n\t[ 0 ,\r\n 2E+999 ] }"),
            overflow("/k~1\"/1", "2E+999")
        );
        // Syntax errors at or after an overflowing literal are not its fault.
        for text in [
            r#"{"a":"x" 1e400}"#,
            r#"{"a":1, 1e400}"#,
            r#"[true 1e400]"#,
            r#"{"a":01e400}"#,
            r#"{"a":1e400.5}"#,
            r#"{"a":1,]"#,
            r#"{"a":"1e400"#,
        ] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    /// A decimal with more digits than a double keeps: random digits (almost never exact),
    /// or a double's own shortest digits padded with zeros (always exact).
    fn long_literal() -> impl Strategy<Value = String> {
        let random =
            ("[1-9][0-9]{15,24}", 0..25_usize, -340..320_i32).prop_map(|(digits, point, exp)| {
                let point = point.clamp(1, digits.len());
                format!("{}.{}e{exp}", &digits[..point], &digits[point..])
            });
        let padded =
            (any::<u64>(), 16..30_usize).prop_filter_map("finite and not zero", |(bits, width)| {
                let f = f64::from_bits(bits);
                (f.is_finite() && f != 0.0).then(|| {
                    let canonical = ryu_js::Buffer::new().format_finite(f).to_owned();
                    let (negative, digits, exp) = digits_and_exponent(&canonical);
                    let sign = if negative { "-" } else { "" };
                    format!("{sign}0.{digits:0<width$}e{exp}")
                })
            });
        prop_oneof![random, padded]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 4096,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ea1_0001),
            ..ProptestConfig::default()
        })]

        /// The shortcut that skips RFC 8785's text agrees with comparing it, for every
        /// literal it applies to, and applies to every literal of up to 15 digits that reads
        /// as a normal double.
        #[test]
        fn short_literals_of_normal_doubles_need_no_comparison(
            // The digit count first, so that literals of up to 15 digits (the claim) are
            // about as common as longer ones.
            mantissa in (1..=17_u32).prop_flat_map(|d| 10_u64.pow(d - 1)..10_u64.pow(d)),
            point in 1..16_usize,
            exp in -340..320_i32,
            negative in any::<bool>(),
        ) {
            let digits = mantissa.to_string();
            let point = point.min(digits.len());
            let sign = if negative { "-" } else { "" };
            let literal = if point == digits.len() {
                format!("{sign}{digits}e{exp}")
            } else {
                format!("{sign}{}.{}e{exp}", &digits[..point], &digits[point..])
            };
            let f: f64 = literal.parse().unwrap();
            prop_assume!(f.is_finite());
            if surely_exact(literal.as_bytes(), f) {
                prop_assert_eq!(compared(literal.as_bytes(), f), None, "{}", literal);
            } else {
                prop_assert!(!f.is_normal() || digits.len() > 15, "{}", literal);
            }
        }

        /// A literal is accepted exactly when RFC 8785's text for its double reads back as the
        /// literal's own double and spells the same digits: checked here against a
        /// different computation of the same thing (trimmed digit strings).
        #[test]
        fn long_literals_are_accepted_only_if_rfc_8785_spells_their_value(
            literal in long_literal(),
        ) {
            let f: f64 = literal.parse().unwrap();
            prop_assume!(f.is_finite());
            let canonical = ryu_js::Buffer::new().format_finite(f).to_owned();
            let same = digits_and_exponent(&literal) == digits_and_exponent(&canonical);
            let accepted = compared(literal.as_bytes(), f).is_none();
            prop_assert_eq!(accepted, same, "{} vs {}", literal, canonical);
        }

        /// Exactly the numbers serde_json reads as doubles or as unsafe integers are kept as
        /// suspects by the parser, so every literal that may differ from its number is
        /// checked.
        #[test]
        fn suspects_are_the_numbers_serde_json_does_not_read_as_safe_integers(
            literal in prop_oneof![
                "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
                // The edge of the safe integers, which random digits almost never reach.
                "-?900719925474099[0-3](\\.0)?(e0)?",
            ]
        ) {
            let Ok(n) = serde_json::from_str::<Number>(&literal) else {
                return Ok(());
            };
            let safe_integer = n
                .as_u64()
                .map(|u| u <= jcs::MAX_SAFE_INTEGER)
                .or(n.as_i64().map(|i| i.unsigned_abs() <= jcs::MAX_SAFE_INTEGER))
                .unwrap_or(false);
            let kept = crate::json::suspects_kept(&literal);
            prop_assert_eq!(kept, Some(usize::from(!safe_integer)), "{}", literal);
        }

        /// The standard library and serde_json overflow at the same literals: random ones,
        /// and ones at the edge, where the digits of f64::MAX (1.7976931348623157e308) and of
        /// the halfway point to 2^1024 (1.797693134862315807937…e308) decide.
        #[test]
        fn overflow_agrees_with_serde_json(
            (digits, exp) in prop_oneof![
                ("[1-9][0-9]{0,20}", 280..330_i32),
                "1797693134862315(7|8|80[0-9]{0,8}|79[0-9]{0,8}|9)".prop_map(|d| {
                    let exp = 308 - (d.len() as i32 - 1);
                    (d, exp)
                }),
            ],
        ) {
            let literal = format!("{digits}e{exp}");
            let serde_refuses = serde_json::from_str::<f64>(&literal).is_err();
            prop_assert_eq!(overflows(literal.as_bytes()), serde_refuses, "{}", literal);
        }

        #[test]
        fn strings_end_at_their_closing_quote(s in any::<String>(), tail in "[ -~]{0,12}") {
            let literal = serde_json::to_string(&s).unwrap();
            let text = format!("{literal}{tail}");
            prop_assert_eq!(string_end(text.as_bytes(), 1), literal.len());
        }

        #[test]
        fn the_word_search_finds_the_first_quote_or_backslash(
            bytes in prop::collection::vec(
                prop::sample::select(vec![b'a', b'"', b'\\', 0, 0x01, 0x80, 0xff, b'!', b']']),
                0..40,
            ),
            from in 0..40_usize,
        ) {
            let from = from.min(bytes.len());
            let naive = bytes[from..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .map(|i| i + from);
            prop_assert_eq!(quote_or_backslash(&bytes, from), naive);
        }
    }

    /// The digits of a decimal without leading or trailing zeros, and the exponent that puts
    /// the point before the first of them; computed apart from [`Decimal`].
    fn digits_and_exponent(literal: &str) -> (bool, String, i64) {
        let negative = literal.starts_with('-');
        let literal = literal.trim_start_matches('-').to_ascii_lowercase();
        let (mantissa, exp) = literal.split_once('e').unwrap_or((&literal, "0"));
        let exp: i64 = exp.parse().unwrap();
        let point = mantissa.find('.').unwrap_or(mantissa.len()) as i64;
        let all: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let leading = (all.len() - all.trim_start_matches('0').len()) as i64;
        let digits = all.trim_matches('0').to_string();
        (negative, digits, point - leading + exp)
    }
}
