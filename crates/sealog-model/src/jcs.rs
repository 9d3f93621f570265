//! RFC 8785 JSON Canonicalization Scheme.
//!
//! Record identity is a hash over these bytes, so two producers that mean the same JSON value
//! must get the same bytes here, whatever whitespace, escapes or member order they sent.
//!
//! One deliberate deviation from the RFC: integers beyond ±(2^53-1) are refused rather than
//! rounded to the nearest double, because a hash over a silently altered value would seal
//! something the producer never sent. For the same reason the parser
//! ([`crate::json::Json::parse`]) refuses any number literal this module would not write back
//! as the value sent (more digits than a double keeps, overflow, underflow), before a tree
//! exists: a value already held as a double cannot tell how it was spelled.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::json::Json;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// An integer outside ±(2^53 - 1): JSON numbers are IEEE doubles in RFC 8785, so such a
    /// value would silently change on canonicalization; Sealog refuses it (producers must send
    /// big ids as strings). Holds the number as written and the RFC 6901 JSON pointer of the
    /// value, e.g. "/data/amount".
    #[error(
        "number {0} at {1} is outside the exactly representable integer range ±(2^53-1); send it as a string"
    )]
    UnsafeInteger(String, String),
    /// A NaN or an infinity, which JSON cannot express. Holds the number and its JSON pointer.
    #[error("number {0} at {1} is not finite")]
    NonFinite(String, String),
}

/// MAX_SAFE_INTEGER = 2^53 - 1
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// Appends the canonical form of `value` to `out`.
///
/// On error `out` holds a partial, meaningless prefix of the output.
pub fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    write_node(value, out, None)
}

/// Appends the canonical form of a borrowed tree to `out`.
///
/// On error `out` holds a partial, meaningless prefix of the output.
pub fn write_json(value: &Json<'_>, out: &mut Vec<u8>) -> Result<(), JcsError> {
    write_node(value, out, None)
}

/// [`write_json`] of an object, also noting where each of its members starts in `out` (at
/// its name's opening quote), in the canonical order they are written in.
pub fn write_object_marking(
    value: &Json<'_>,
    out: &mut Vec<u8>,
    member_starts: &mut Vec<u32>,
) -> Result<(), JcsError> {
    write_node(value, out, Some(member_starts))
}

/// One node of a JSON tree, as the canonicalizer sees it; lets one writer serve both
/// `serde_json::Value` and the ingest path's borrowed [`Json`].
pub trait Node: Sized {
    fn view(&self) -> View<'_, Self>;
    /// An object's members as stored, appended to `out` (called when `view` says `Object`)
    /// through [`member`].
    fn members<'s>(&'s self, out: &mut Vec<Member<'s, Self>>);
}

/// An object's member as the writer sorts it: its name's [`lead`], its name, its value.
pub type Member<'s, N> = (u64, &'s str, &'s N);

/// A member with its name's lead.
pub fn member<'s, N>(name: &'s str, value: &'s N) -> Member<'s, N> {
    (lead(name), name, value)
}

/// A name's first eight bytes as a big-endian number, zero past its end: for names whose
/// first eight bytes are ASCII, numbers that differ order the names as UTF-16 does (the
/// first differing byte is a character of its own in each, or the end of the shorter), so
/// most comparisons of a sort are one comparison of two numbers.
fn lead(name: &str) -> u64 {
    let b = name.as_bytes();
    match b.get(..8) {
        Some(eight) => u64::from_be_bytes(eight.try_into().expect("eight bytes")),
        None => b
            .iter()
            .enumerate()
            .fold(0, |word, (i, &c)| word | u64::from(c) << (56 - 8 * i)),
    }
}

/// Sorts an object's members by name in UTF-16 order ([`cmp_keys`]): by their leads, and by
/// the names where the leads tie, when every lead is ASCII; by the names alone otherwise.
fn sort_members<N>(own: &mut [Member<'_, N>]) {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    if own.iter().all(|m| m.0 & HIGH_BITS == 0) {
        own.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| cmp_keys(a.1, b.1)));
    } else {
        own.sort_unstable_by(|a, b| cmp_keys(a.1, b.1));
    }
}

pub enum View<'a, N> {
    Null,
    Bool(bool),
    Number(&'a Number),
    String(&'a str),
    Array(&'a [N]),
    /// An object: its members come from [`Node::members`], and the writer sorts them. A
    /// tree never holds a repeated member (the parser refuses one), so none is looked for.
    Object,
}

impl Node for Value {
    fn view(&self) -> View<'_, Self> {
        match self {
            Value::Null => View::Null,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => View::Number(n),
            Value::String(s) => View::String(s),
            Value::Array(a) => View::Array(a),
            Value::Object(_) => View::Object,
        }
    }
    fn members<'s>(&'s self, out: &mut Vec<Member<'s, Self>>) {
        if let Value::Object(m) = self {
            out.extend(m.iter().map(|(k, v)| member(k.as_str(), v)));
        }
    }
}

impl Node for Json<'_> {
    fn view(&self) -> View<'_, Self> {
        match self {
            Json::Null => View::Null,
            Json::Bool(b) => View::Bool(*b),
            Json::Number(n) => View::Number(n),
            Json::String(s) => View::String(s),
            Json::Array(a) => View::Array(a),
            Json::Object(_) => View::Object,
        }
    }
    fn members<'s>(&'s self, out: &mut Vec<Member<'s, Self>>) {
        if let Json::Object(m) = self {
            out.extend(m.iter().map(|(k, v)| member(k.as_ref(), v)));
        }
    }
}

fn write_node<N: Node>(
    value: &N,
    out: &mut Vec<u8>,
    mut top_members: Option<&mut Vec<u32>>,
) -> Result<(), JcsError> {
    // An explicit stack instead of recursion: input depth is limited by callers, but this module
    // must not be the place where a hostile document overflows the thread's stack.
    let mut stack: Vec<Frame<'_, N>> = Vec::new();
    // The members of every object open, outermost first, each object's sorted in place: one
    // list for the whole document rather than one allocated per object. Both are given room
    // at the first object (an event's envelope and its body's members, so that they seldom
    // grow), the stack alone at an array; a scalar needs neither.
    let mut members: Vec<Member<'_, N>> = Vec::new();
    let mut pending = Some(value);
    loop {
        if let Some(value) = pending.take() {
            match value.view() {
                View::Null => out.extend_from_slice(b"null"),
                View::Bool(true) => out.extend_from_slice(b"true"),
                View::Bool(false) => out.extend_from_slice(b"false"),
                View::Number(n) => match checked_f64(n) {
                    Ok(f) => write_f64(f, out),
                    Err(why) => return Err(why.at(n.to_string(), pointer(&stack, &members))),
                },
                View::String(s) => write_string(s, out),
                View::Array(items) => {
                    if stack.capacity() == 0 {
                        stack.reserve(8);
                    }
                    out.push(b'[');
                    stack.push(Frame::Array { items, next: 0 });
                }
                View::Object => {
                    if members.capacity() == 0 {
                        stack.reserve(8);
                        members.reserve(48);
                    }
                    let start = members.len();
                    value.members(&mut members);
                    let own = &mut members[start..];
                    // A map's own order (UTF-8 bytes, insertion, or as sent) cannot be trusted.
                    // Already-sorted input costs one linear pass.
                    sort_members(own);
                    debug_assert!(
                        own.windows(2).all(|w| w[0].1 != w[1].1),
                        "a parsed tree holds no repeated member"
                    );
                    out.push(b'{');
                    stack.push(Frame::Object {
                        start,
                        next: start,
                        end: members.len(),
                    });
                }
            }
        }
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            return Ok(());
        };
        match frame {
            Frame::Array { items, next } => match items.get(*next) {
                Some(item) => {
                    if *next > 0 {
                        out.push(b',');
                    }
                    *next += 1;
                    pending = Some(item);
                }
                None => {
                    out.push(b']');
                    stack.pop();
                }
            },
            Frame::Object { start, next, end } => {
                if *next < *end {
                    let (_, key, item) = members[*next];
                    if *next > *start {
                        out.push(b',');
                    }
                    *next += 1;
                    if let (Some(starts), 1) = (top_members.as_deref_mut(), depth) {
                        starts.push(u32::try_from(out.len()).expect("far below 4 GiB"));
                    }
                    write_string(key, out);
                    out.push(b':');
                    pending = Some(item);
                } else {
                    out.push(b'}');
                    members.truncate(*start);
                    stack.pop();
                }
            }
        }
    }
}

/// Convenience: canonical bytes.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write_value(value, &mut out)?;
    Ok(out)
}

/// Appends a JSON string literal per RFC 8785 §3.2.2.2 (escape only ", \\, and U+0000..U+001F;
/// \b \t \n \f \r short forms, other controls \u00XX lowercase hex; everything else literal
/// UTF-8).
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    // Every byte that needs escaping is ASCII, so splitting the UTF-8 around it is safe and the
    // untouched runs in between can be copied wholesale.
    let mut at = 0;
    loop {
        let stop = plain_run_of_string(bytes, at);
        out.extend_from_slice(&bytes[at..stop]);
        let Some(&b) = bytes.get(stop) else { break };
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            b'\t' => b't',
            b'\n' => b'n',
            0x0c => b'f',
            b'\r' => b'r',
            _ => 0,
        };
        if short == 0 {
            let (hi, lo) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
        at = stop + 1;
    }
    out.push(b'"');
}

/// The bytes that end a run of plain string content: the quote, the backslash, and the
/// controls, which RFC 8785 always escapes.
static STOPS_A_RUN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Where the run of bytes from `from` that need no escaping ends: eight bytes at a time, then
/// a byte at a time. For a text that goes on past the run, as a parser's does: the bytes left
/// over are few and met once a text.
#[inline(always)]
pub(crate) fn plain_run(bytes: &[u8], from: usize) -> usize {
    match plain_words(bytes, from) {
        Ok(stop) => stop,
        Err(mut at) => {
            while at < bytes.len() && !STOPS_A_RUN[usize::from(bytes[at])] {
                at += 1;
            }
            at
        }
    }
}

/// [`plain_run`] for the bytes of one string, which end where the string does: the last one
/// to seven bytes, met in every string, are tested as one word rather than by a loop whose
/// exit is mispredicted. Where the bytes hold a word, it is the last, shifted to start at
/// `at`: the lanes past the end are zero, a stop, so the run ends at the end at the latest.
/// Else four to seven bytes are read as two overlapping halves, and one to three as the
/// first, middle and last (each lane at `at` plus the lane, or a repeat of the lane before
/// it). Either way a lane's position grows with the lane, so the lowest stop is the first.
#[inline(always)]
fn plain_run_of_string(bytes: &[u8], from: usize) -> usize {
    /// A byte no run stops at, for the lanes of a short word past the end of the bytes.
    const PLAIN: u64 = 0x6161_6161_6161_6161;
    let at = match plain_words(bytes, from) {
        Ok(stop) => return stop,
        Err(at) => at,
    };
    let (len, n) = (bytes.len(), bytes.len() - at);
    if n == 0 {
        return at;
    }
    if len >= 8 {
        let last = u64::from_le_bytes(bytes[len - 8..].try_into().expect("eight bytes"));
        return at + lane(stops(last >> (8 * (8 - n))));
    }
    if n >= 4 {
        let half = |i: usize| u64::from(u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4")));
        return match stops(half(at) | half(len - 4) << 32) {
            0 => len,
            found if lane(found) < 4 => at + lane(found),
            found => len + lane(found) - 8,
        };
    }
    let v = u64::from(bytes[at])
        | u64::from(bytes[at + n / 2]) << 8
        | u64::from(bytes[len - 1]) << 16
        | PLAIN << 24;
    match stops(v) {
        0 => len,
        found => at + lane(found),
    }
}

/// The run from `from` eight bytes at a time: `Ok` with where it stops, or `Err` with where
/// fewer than eight bytes are left and none before has stopped it.
#[inline(always)]
fn plain_words(bytes: &[u8], from: usize) -> Result<usize, usize> {
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let found = stops(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        if found != 0 {
            return Ok(at + lane(found));
        }
        at += 8;
    }
    Err(at)
}

/// The lane (byte) of a word's first stop, `found` being its [`stops`], not zero.
#[inline(always)]
fn lane(found: u64) -> usize {
    (found.trailing_zeros() / 8) as usize
}

/// A word's stops: a byte's top bit is set where the byte is a quote, a backslash or below
/// 0x20. Borrows can set it spuriously only above a true stop, so the lowest one set is the
/// first.
#[inline(always)]
fn stops(v: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero_in(v ^ (ONES * u64::from(b'"')))
        | zero_in(v ^ (ONES * u64::from(b'\\')))
        | (v.wrapping_sub(ONES * 0x20) & !v))
        & TOPS
}

/// Appends a number per ECMAScript Number.prototype.toString (RFC 8785 §3.2.2.3), via ryu-js.
/// Integers (i64/u64) beyond MAX_SAFE_INTEGER are an error; f64 that are integral print without
/// ".0"; -0 prints "0".
///
/// `pointer` is only used to locate the value in an error.
pub fn write_number(n: &Number, pointer: &str, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let f = checked_f64(n).map_err(|why| why.at(n.to_string(), pointer.to_owned()))?;
    write_f64(f, out);
    Ok(())
}

/// Orders object member names by their UTF-16 code units (RFC 8785 §3.2.3), NOT by UTF-8 bytes.
pub fn cmp_keys(a: &str, b: &str) -> Ordering {
    // Where the first differing byte is ASCII in both, the characters before it are the
    // same and it is a character of its own in each: byte order is UTF-16 order there.
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => return x.len().cmp(&y.len()),
        Some(i) if x[i].is_ascii() && y[i].is_ascii() => return x[i].cmp(&y[i]),
        Some(_) => {}
    }
    // Only the first differing character decides, and it is compared as UTF-16 would see it,
    // so no key is ever re-encoded as a whole.
    match a.chars().zip(b.chars()).find(|(x, y)| x != y) {
        Some((x, y)) => utf16_rank(x).cmp(&utf16_rank(y)),
        // One is a prefix of the other (or they are equal): shorter first, in any encoding.
        None => a.len().cmp(&b.len()),
    }
}

/// A character's place in UTF-16 code unit order.
///
/// That order is code point order except for one block: U+E000..U+FFFF are single code units
/// above the surrogates (0xD800..0xDBFF) that begin every character from U+10000 on, so they
/// sort after all of those. Moving the block past U+10FFFF gives the same order in one number.
fn utf16_rank(c: char) -> u32 {
    let code_point = u32::from(c);
    if (0xe000..=0xffff).contains(&code_point) {
        code_point + u32::from(char::MAX) + 1
    } else {
        code_point
    }
}

/// One open container in [`write_node`], with the index of the next child to write.
enum Frame<'a, N> {
    Array {
        items: &'a [N],
        next: usize,
    },
    /// Its members are `members[start..end]` of the writer's list.
    Object {
        start: usize,
        next: usize,
        end: usize,
    },
}

/// Why a number has no canonical form, before it is located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unformattable {
    UnsafeInteger,
    NonFinite,
}

impl Unformattable {
    fn at(self, number: String, pointer: String) -> JcsError {
        match self {
            Unformattable::UnsafeInteger => JcsError::UnsafeInteger(number, pointer),
            Unformattable::NonFinite => JcsError::NonFinite(number, pointer),
        }
    }
}

/// The number as the double RFC 8785 formats, or why there is none. Safe integers convert to
/// doubles exactly, so one formatter serves every number. The parser applies the same rule to
/// every literal it reads, so a tree parsed from text never fails here.
pub(crate) fn checked_f64(n: &Number) -> Result<f64, Unformattable> {
    let (f, integer_magnitude) = if let Some(u) = n.as_u64() {
        (u as f64, Some(u))
    } else if let Some(i) = n.as_i64() {
        (i as f64, Some(i.unsigned_abs()))
    } else {
        (n.as_f64().unwrap_or(f64::NAN), None)
    };
    // A double that is integral and past 2^53 but below 1e21 prints as plain digits, which
    // parse back as an unsafe integer: refusing it too keeps every canonical text re-readable.
    let integral_unsafe_double = integer_magnitude.is_none()
        && f.fract() == 0.0
        && f.abs() > MAX_SAFE_INTEGER as f64
        && f.abs() < 1e21;
    match integer_magnitude {
        Some(magnitude) if magnitude > MAX_SAFE_INTEGER => Err(Unformattable::UnsafeInteger),
        _ if integral_unsafe_double => Err(Unformattable::UnsafeInteger),
        // serde_json never holds a non-finite number, but that is its invariant, not ours.
        _ if !f.is_finite() => Err(Unformattable::NonFinite),
        _ => Ok(f),
    }
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    // ECMAScript writes an integral value below 1e21 as its digits, so a safe integer (most
    // numbers events carry: counts, ages, amounts in minor units) needs no search for the
    // shortest digits that read back; -0 becomes 0 here too.
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 {
        out.extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
        return;
    }
    out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
}

/// The RFC 6901 pointer of the child each open container is currently writing.
fn pointer<N>(stack: &[Frame<'_, N>], members: &[Member<'_, N>]) -> String {
    let mut pointer = String::new();
    for frame in stack {
        pointer.push('/');
        match frame {
            Frame::Array { next, .. } => pointer.push_str(&(next - 1).to_string()),
            Frame::Object { next, .. } => {
                for c in members[next - 1].1.chars() {
                    match c {
                        '~' => pointer.push_str("~0"),
                        '/' => pointer.push_str("~1"),
                        _ => pointer.push(c),
                    }
                }
            }
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        write_string(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Safe integers are written without the shortest-digits search, exactly as it writes
    /// them; every other double still goes through it.
    #[test]
    fn integers_are_written_as_ecmascript_writes_them() {
        let ryu = |f: f64| ryu_js::Buffer::new().format_finite(f).to_string();
        let ours = |f: f64| {
            let mut out = Vec::new();
            write_f64(f, &mut out);
            String::from_utf8(out).unwrap()
        };
        let max = MAX_SAFE_INTEGER as f64;
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut samples = vec![0.0, -0.0, 1.0, -1.0, 9.0, 10.0, 1e15, max, -max, max + 1.0];
        samples.extend([
            1e16,
            1e20,
            1e21,
            123.5,
            -0.25,
            5e-324,
            1.7976931348623157e308,
        ]);
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let magnitude = (x >> 11) % (1u64 << (x % 54)).max(1);
            let sign = if x & 1 == 0 { 1.0 } else { -1.0 };
            samples.push(sign * magnitude as f64);
            samples.push(f64::from_bits(x) % 1e22);
        }
        for f in samples.into_iter().filter(|f| f.is_finite()) {
            assert_eq!(ours(f), ryu(f), "{f:e}");
        }
        assert_eq!(ours(-0.0), "0");
    }

    /// Every slice length around a word or two, every start, with stops (and bytes next to
    /// them in value) anywhere, before the start too: the run ends where a byte-at-a-time scan
    /// ends it, whichever way the last bytes are tested.
    #[test]
    fn plain_runs_end_where_a_byte_by_byte_scan_ends_them() {
        let by_byte = |bytes: &[u8], from: usize| {
            (from..bytes.len())
                .find(|&i| STOPS_A_RUN[usize::from(bytes[i])])
                .unwrap_or(bytes.len())
        };
        let palette = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'\\', 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
            b'a',
        ];
        let mut r = crate::test_rng::Rng::new(0x9a1c_5eed);
        for len in 0..=26 {
            for _ in 0..400 {
                // Mostly plain bytes, so that runs are long; any byte may be a stop.
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match r.below(4) {
                        0 => palette[r.below(palette.len())],
                        _ => b'a' + r.below(26) as u8,
                    })
                    .collect();
                for from in 0..=len {
                    let expected = by_byte(&bytes, from);
                    assert_eq!(plain_run(&bytes, from), expected, "{bytes:?} from {from}");
                    assert_eq!(
                        plain_run_of_string(&bytes, from),
                        expected,
                        "a string's {bytes:?} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn escapes_only_what_rfc8785_requires() {
        assert_eq!(string("\u{8}\t\n\u{c}\r"), r#""\b\t\n\f\r""#);
        assert_eq!(
            string("\u{0}\u{1}\u{b}\u{1f}"),
            r#""\u0000\u0001\u000b\u001f""#
        );
        assert_eq!(string("\"\\/"), r#""\"\\/""#);
        assert_eq!(
            string("\u{7f}\u{80}\u{2028}\u{fffd}😂"),
            "\"\u{7f}\u{80}\u{2028}\u{fffd}😂\""
        );
    }

    /// Members come out in the UTF-16 order of their names however they were sent: names
    /// around eight bytes long and sharing long prefixes, holding NUL and DEL, two- and
    /// three-byte characters, U+E000..U+FFFF and characters past U+FFFF (which UTF-16 puts
    /// before U+E000), so leads tie, differ, and are ASCII or not.
    #[test]
    fn members_are_written_in_the_utf16_order_of_their_names() {
        let pieces = [
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "\u{0}",
            "\u{7f}",
            "\u{e9}",
            "\u{e000}",
            "\u{ffff}",
            "\u{1f602}",
            "z",
            "A",
        ];
        let mut r = crate::test_rng::Rng::new(0x50e7_0dd5);
        for _ in 0..3000 {
            let n = 1 + r.below(12);
            let mut names: Vec<String> = (0..n)
                .map(|_| (0..1 + r.below(4)).map(|_| r.pick(&pieces)).collect())
                .collect();
            names.sort();
            names.dedup();
            for i in (1..names.len()).rev() {
                names.swap(i, r.below(i + 1));
            }
            let tree = Json::Object(
                names
                    .iter()
                    .map(|k| (Cow::Borrowed(k.as_str()), Json::Null))
                    .collect(),
            );
            let mut written = Vec::new();
            write_json(&tree, &mut written).unwrap();
            names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            let mut expected = b"{".to_vec();
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    expected.push(b',');
                }
                write_string(name, &mut expected);
                expected.extend_from_slice(b":null");
            }
            expected.push(b'}');
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn keys_order_by_utf16_not_utf8() {
        // U+1F602 is D83D DE02 in UTF-16, so it sorts before U+FB33 despite its larger UTF-8.
        assert_eq!(cmp_keys("😂", "\u{fb33}"), Ordering::Less);
        assert_eq!("😂".cmp("\u{fb33}"), Ordering::Greater);
        assert_eq!(cmp_keys("😂", "\u{d7ff}"), Ordering::Greater);
        assert_eq!(cmp_keys("\u{1f602}", "\u{1f603}"), Ordering::Less);
        assert_eq!(cmp_keys("\u{1f602}", "\u{10_0000}"), Ordering::Less);
        assert_eq!(cmp_keys("\u{e000}", "\u{10e000}"), Ordering::Greater);
        assert_eq!(cmp_keys("\u{ffff}", "\u{10ffff}"), Ordering::Greater);
        assert_eq!(cmp_keys("a", "ab"), Ordering::Less);
        assert_eq!(cmp_keys("", ""), Ordering::Equal);
    }

    #[test]
    fn pointer_escapes_tilde_and_slash() {
        let value = serde_json::json!({"a": [{"b/c~": 9_007_199_254_740_992u64}]});
        let err = to_vec(&value).unwrap_err();
        assert_eq!(
            err,
            JcsError::UnsafeInteger("9007199254740992".into(), "/a/0/b~1c~0".into())
        );
    }
}
