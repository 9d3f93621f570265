//! JSON text (RFC 8259) read straight into the tree, by hand: every event goes through here,
//! and a general-purpose deserializer spent a seventh of an event's preparing on the visits
//! and checks a tree of our own kind does not need.
//!
//! It accepts and refuses exactly what `serde_json` does (a test compares the two on
//! generated and mangled texts), and reads each number as `serde_json` would: integers as
//! `u64` or `i64`, everything else (`-0`, fractions, exponents, integers past 64 bits) as the
//! double nearest the literal. Nesting is limited as `serde_json` limits it, so no text can
//! exhaust the stack.

use std::borrow::Cow;

use serde_json::Number;

use super::Json;
use crate::jcs::MAX_SAFE_INTEGER;
use crate::literals::Suspect;

/// Objects and arrays open at once, at most: `serde_json`'s limit (it refuses the 128th).
const MAX_DEPTH: usize = 127;

/// Members an object holds before a repeated name is looked for by hashing rather than by
/// comparing it with each member before it.
const SCAN_MEMBERS: usize = 32;

/// Why a text was refused, as the parser saw it.
#[derive(Debug)]
pub(super) enum Failure {
    /// Not JSON: what was wrong, and at which byte.
    Syntax { what: &'static str, at: usize },
    /// A number literal beyond a double's range, starting at this byte.
    Overflow { at: usize },
    /// A member name repeated in its object: the path to it, innermost token first.
    Duplicate(Vec<String>),
}

/// A parsed tree and, in document order, the literals of its numbers that may not be what
/// the literal says: doubles, and integers beyond ±(2^53-1).
pub(super) struct Parsed<'a> {
    pub(super) tree: Json<'a>,
    pub(super) suspects: Vec<Suspect<'a>>,
}

/// A failure kept off the path of every value that parses: a result is the size of a tree
/// node.
type Fail = Box<Failure>;

pub(super) fn parse(text: &str) -> Result<Parsed<'_>, Failure> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
        numbers: 0,
        suspects: Vec::new(),
    };
    let mut tree = Json::Null;
    p.value(&mut tree).map_err(|e| *e)?;
    p.skip_space();
    if p.at < p.bytes.len() {
        return Err(*p.fail("trailing characters"));
    }
    Ok(Parsed {
        tree,
        suspects: p.suspects,
    })
}

/// Puts a value read into its slot. The slot is a `Null` the parser made for it, and
/// overwriting it by assignment would call the tree's drop glue, which is recursive and never
/// inlined, for every value read; a `Null` owns nothing, so it is forgotten instead.
#[inline(always)]
fn put<'a>(slot: &mut Json<'a>, value: Json<'a>) {
    let old = std::mem::replace(slot, value);
    if matches!(old, Json::Null) {
        std::mem::forget(old);
    } else {
        drop(old);
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: usize,
    /// Numbers read so far: a suspect's ordinal among them finds it in the tree.
    numbers: usize,
    suspects: Vec<Suspect<'a>>,
}

impl<'a> Parser<'a> {
    #[cold]
    fn fail(&self, what: &'static str) -> Fail {
        Box::new(Failure::Syntax { what, at: self.at })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte after any white space, not consumed.
    fn next_token(&mut self) -> Option<u8> {
        self.skip_space();
        self.peek()
    }

    /// Reads the next value into `out`, where it stays: a value returned instead is
    /// written by the callee a field at a time and copied by its caller in wider loads, which
    /// the processor cannot forward from those stores, on every member of every object.
    fn value(&mut self, out: &mut Json<'a>) -> Result<(), Fail> {
        let read = match self.next_token() {
            None => return Err(self.fail("EOF while parsing a value")),
            Some(b'"') => Json::String(self.string()?),
            Some(b'{') => {
                self.enter()?;
                let read = self.object(out);
                self.depth -= 1;
                return read;
            }
            Some(b'[') => {
                self.enter()?;
                let read = self.array(out);
                self.depth -= 1;
                return read;
            }
            Some(b't') => self.word("true", Json::Bool(true))?,
            Some(b'f') => self.word("false", Json::Bool(false))?,
            Some(b'n') => self.word("null", Json::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.fail("expected value")),
        };
        put(out, read);
        Ok(())
    }

    /// Past the bracket that opens an object or array, one level deeper.
    fn enter(&mut self) -> Result<(), Fail> {
        if self.depth == MAX_DEPTH {
            return Err(self.fail("recursion limit exceeded"));
        }
        self.depth += 1;
        self.at += 1;
        Ok(())
    }

    fn word(&mut self, word: &'static str, v: Json<'a>) -> Result<Json<'a>, Fail> {
        let rest = &self.bytes[self.at..];
        if rest.starts_with(word.as_bytes()) {
            self.at += word.len();
            return Ok(v);
        }
        let same = rest
            .iter()
            .zip(word.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        self.at += same;
        Err(self.fail(if same == rest.len() {
            "EOF while parsing a value"
        } else {
            "expected ident"
        }))
    }

    /// Builds the object in its slot, and each member in its place in the object: a member or
    /// an object assembled on the stack and moved in is read back in wider loads than it was
    /// written in, and the processor cannot forward those stores.
    fn object(&mut self, out: &mut Json<'a>) -> Result<(), Fail> {
        let mut seen: Option<std::collections::HashSet<String>> = None;
        match self.next_token() {
            Some(b'}') => {
                self.at += 1;
                put(out, Json::Object(Vec::new()));
                return Ok(());
            }
            Some(b'"') => {}
            Some(_) => return Err(self.fail("key must be a string")),
            None => return Err(self.fail("EOF while parsing an object")),
        }
        // Room for eight saves the first growths of most objects.
        put(out, Json::Object(Vec::with_capacity(8)));
        let Json::Object(members) = out else {
            unreachable!("an object was just put there")
        };
        loop {
            let key = self.string()?;
            members.resize_with(members.len() + 1, || (Cow::Borrowed(""), Json::Null));
            let last = members.len() - 1;
            let (before, [(name, slot)]) = members.split_at_mut(last) else {
                unreachable!("a member was just pushed")
            };
            *name = key;
            let key = &*name;
            if repeats(before, &mut seen, key) {
                return Err(Box::new(Failure::Duplicate(vec![key.to_string()])));
            }
            match self.next_token() {
                Some(b':') => self.at += 1,
                Some(_) => return Err(self.fail("expected `:`")),
                None => return Err(self.fail("EOF while parsing an object")),
            }
            if let Err(e) = self.value(slot) {
                return Err(unwinding(e, || key.to_string()));
            }
            match self.next_token() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(_) => return Err(self.fail("expected `,` or `}`")),
                None => return Err(self.fail("EOF while parsing an object")),
            }
            match self.next_token() {
                Some(b'"') => {}
                Some(b'}') => return Err(self.fail("trailing comma")),
                Some(_) => return Err(self.fail("key must be a string")),
                None => return Err(self.fail("EOF while parsing an object")),
            }
        }
    }

    /// Builds the array in its slot, as [`Parser::object`] does.
    fn array(&mut self, out: &mut Json<'a>) -> Result<(), Fail> {
        match self.next_token() {
            Some(b']') => {
                self.at += 1;
                put(out, Json::Array(Vec::new()));
                return Ok(());
            }
            None => return Err(self.fail("EOF while parsing a list")),
            Some(_) => {}
        }
        put(out, Json::Array(Vec::with_capacity(4)));
        let Json::Array(items) = out else {
            unreachable!("an array was just put there")
        };
        loop {
            let i = items.len();
            items.resize_with(i + 1, || Json::Null);
            if let Err(e) = self.value(&mut items[i]) {
                return Err(unwinding(e, || i.to_string()));
            }
            match self.next_token() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(_) => return Err(self.fail("expected `,` or `]`")),
                None => return Err(self.fail("EOF while parsing a list")),
            }
            if self.next_token() == Some(b']') {
                return Err(self.fail("trailing comma"));
            }
        }
    }

    /// The string whose opening quote is the next byte: borrowed from the text unless it
    /// holds an escape.
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, Fail> {
        self.at += 1;
        let start = self.at;
        let end = self.plain_run(start);
        match self.bytes.get(end) {
            Some(b'"') => {
                self.at = end + 1;
                // Quotes are ASCII, so both ends are character boundaries of the text.
                Ok(Cow::Borrowed(&self.text[start..end]))
            }
            _ => {
                let mut owned = String::with_capacity(end - start + 16);
                owned.push_str(&self.text[start..end]);
                self.at = end;
                self.escaped(&mut owned)?;
                Ok(Cow::Owned(owned))
            }
        }
    }

    /// Where the run of bytes from `from` that need no attention ends: at the first quote,
    /// backslash or control character, or the end of the text. They are the bytes RFC 8785
    /// escapes, so the canonical writer's scan serves.
    #[inline(always)]
    fn plain_run(&self, from: usize) -> usize {
        crate::jcs::plain_run(self.bytes, from)
    }

    /// The rest of a string that holds an escape, from the byte at `self.at`.
    #[cold]
    fn escaped(&mut self, out: &mut String) -> Result<(), Fail> {
        loop {
            match self.peek() {
                None => return Err(self.fail("EOF while parsing a string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(out)?;
                }
                Some(_) => {
                    return Err(self
                        .fail("control character (\\u0000-\\u001F) found while parsing a string"));
                }
            }
            let end = self.plain_run(self.at);
            out.push_str(&self.text[self.at..end]);
            self.at = end;
        }
    }

    /// One escape, after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), Fail> {
        let Some(b) = self.peek() else {
            return Err(self.fail("EOF while parsing a string"));
        };
        self.at += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => {
                self.at -= 1;
                return Err(self.fail("invalid escape"));
            }
        };
        out.push(c);
        Ok(())
    }

    /// A `\u` escape after its `u`, with the low half of a surrogate pair if it opens one.
    fn unicode_escape(&mut self) -> Result<char, Fail> {
        let high = self.hex4()?;
        if (0xDC00..=0xDFFF).contains(&high) {
            return Err(self.fail("lone leading surrogate in hex escape"));
        }
        if !(0xD800..=0xDBFF).contains(&high) {
            return Ok(char::from_u32(u32::from(high)).expect("not a surrogate"));
        }
        match (self.peek(), self.bytes.get(self.at + 1)) {
            (None, _) | (Some(b'\\'), None) => {
                return Err(self.fail("EOF while parsing a string"));
            }
            (Some(b'\\'), Some(b'u')) => self.at += 2,
            (Some(b'\\'), Some(_)) => {
                self.at += 2;
                return Err(self.fail("unexpected end of hex escape"));
            }
            (Some(_), _) => {
                self.at += 1;
                return Err(self.fail("unexpected end of hex escape"));
            }
        }
        let low = self.hex4()?;
        if !(0xDC00..=0xDFFF).contains(&low) {
            return Err(self.fail("lone leading surrogate in hex escape"));
        }
        let c = 0x1_0000 + ((u32::from(high) - 0xD800) << 10 | (u32::from(low) - 0xDC00));
        Ok(char::from_u32(c).expect("a pair's code point"))
    }

    fn hex4(&mut self) -> Result<u16, Fail> {
        let mut n = 0u16;
        for _ in 0..4 {
            let Some(b) = self.peek() else {
                return Err(self.fail("EOF while parsing a string"));
            };
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(self.fail("invalid escape")),
            };
            self.at += 1;
            n = n << 4 | u16::from(d);
        }
        Ok(n)
    }

    fn number(&mut self) -> Result<Json<'a>, Fail> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        // The integer part: one zero, or digits that do not start with one.
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.fail("invalid number"));
                }
            }
            Some(b'1'..=b'9') => self.skip_digits(),
            None => return Err(self.fail("EOF while parsing a value")),
            Some(_) => return Err(self.fail("invalid number")),
        }
        let int_end = self.at;
        let mut integral = true;
        if self.peek() == Some(b'.') {
            integral = false;
            self.at += 1;
            self.digits_after()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            integral = false;
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits_after()?;
        }
        let literal = &self.bytes[start..self.at];
        let ordinal = self.numbers;
        self.numbers += 1;
        let integer = if integral {
            integer(
                &self.bytes[start + usize::from(negative)..int_end],
                negative,
            )
        } else {
            None
        };
        let (number, exact) = match integer {
            Some((n, magnitude)) => (n, magnitude <= MAX_SAFE_INTEGER),
            None => {
                let f: f64 = self.text[start..self.at]
                    .parse()
                    .expect("a JSON number is a float literal");
                if !f.is_finite() {
                    return Err(Box::new(Failure::Overflow { at: start }));
                }
                (Number::from_f64(f).expect("finite"), false)
            }
        };
        if !exact {
            self.suspects.push(Suspect { ordinal, literal });
        }
        Ok(Json::Number(number))
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    /// At least one digit, after a decimal point or an exponent's mark.
    fn digits_after(&mut self) -> Result<(), Fail> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.skip_digits();
                Ok(())
            }
            None => Err(self.fail("EOF while parsing a value")),
            Some(_) => Err(self.fail("invalid number")),
        }
    }
}

/// An integer literal's `digits` as `serde_json` keeps them, with their magnitude: a `u64`
/// or an `i64`, or `None` if it keeps a double (`-0`, or beyond 64 bits).
fn integer(digits: &[u8], negative: bool) -> Option<(Number, u64)> {
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if !negative {
        return Some((n.into(), n));
    }
    let neg = (n as i64).wrapping_neg();
    (neg < 0).then(|| (neg.into(), n))
}

/// Whether `key` is already a member. Objects are small: a linear scan beats hashing until
/// they are not, and past that a set of the names keeps a large object from costing the
/// square of its size.
fn repeats(
    members: &[(Cow<'_, str>, Json<'_>)],
    seen: &mut Option<std::collections::HashSet<String>>,
    key: &str,
) -> bool {
    if members.len() < SCAN_MEMBERS {
        return members.iter().any(|(k, _)| k == key);
    }
    let seen = seen.get_or_insert_with(|| members.iter().map(|(k, _)| k.to_string()).collect());
    !seen.insert(key.to_string())
}

/// On the way out of a failed parse, adds this level's token to a duplicate's path.
#[cold]
fn unwinding(mut e: Fail, token: impl FnOnce() -> String) -> Fail {
    if let Failure::Duplicate(path) = &mut *e {
        path.push(token());
    }
    e
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    use crate::json::{Json, ParseError};
    use crate::test_rng::Rng;

    /// The tree as `serde_json` builds it, with a repeated name refused as ours is: what the
    /// parser must agree with.
    #[derive(Debug, PartialEq)]
    enum Reference {
        Tree(String),
        Duplicate,
        NotJson,
    }

    struct Tree<'de>(Json<'de>);

    impl<'de> Deserialize<'de> for Tree<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(TreeVisitor)
        }
    }

    struct TreeVisitor;

    impl<'de> Visitor<'de> for TreeVisitor {
        type Value = Tree<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Tree(Json::Null))
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
            Ok(Tree(Json::Bool(b)))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Tree(Json::Number(n.into())))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Tree(Json::Number(n.into())))
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            let n = serde_json::Number::from_f64(n).ok_or_else(|| E::custom("not finite"))?;
            Ok(Tree(Json::Number(n)))
        }
        fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Tree(Json::String(Cow::Borrowed(s))))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Tree(Json::String(Cow::Owned(s.to_owned()))))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Tree(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Tree(Json::Array(items)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if members.iter().any(|(m, _)| *m == k) {
                    return Err(de::Error::custom("duplicate member name"));
                }
                let Tree(v) = map.next_value()?;
                members.push((k, v));
            }
            Ok(Tree(Json::Object(members)))
        }
    }

    /// A tree written with every number's kind and bits, so `1`, `1.0` and `-0` differ.
    fn exact(j: &Json<'_>) -> String {
        match j {
            Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => format!("u{u}"),
                (None, Some(i), _) => format!("i{i}"),
                (_, _, Some(f)) => format!("f{:x}", f.to_bits()),
                _ => unreachable!(),
            },
            Json::Array(a) => format!("[{}]", a.iter().map(exact).collect::<Vec<_>>().join(",")),
            Json::Object(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k:?}:{}", exact(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{other:?}"),
        }
    }

    fn reference(text: &str) -> Reference {
        match serde_json::from_str::<Tree<'_>>(text) {
            Ok(Tree(t)) => Reference::Tree(exact(&t)),
            Err(e) if e.to_string().starts_with("duplicate member name") => Reference::Duplicate,
            Err(_) => Reference::NotJson,
        }
    }

    fn ours(text: &str) -> Reference {
        match super::parse(text) {
            Ok(p) => Reference::Tree(exact(&p.tree)),
            Err(super::Failure::Duplicate(_)) => Reference::Duplicate,
            Err(_) => Reference::NotJson,
        }
    }

    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "0.5",
        "-0.0",
        "1e5",
        "1E+2",
        "2e-3",
        "1.0",
        "12345678901234567890",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "9007199254740993",
        "-9007199254740993",
        "1e400",
        "-1e400",
        "1e-400",
        "0.1000000000000000055511151231257827",
        "4.9406564584124654e-324",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "0e99999999999",
        "123.456e-7",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "--1",
        "0x1",
        "1.5.2",
        "-01",
        "00",
    ];

    const STRINGS: &[&str] = &[
        r#""""#,
        r#""plain""#,
        r#""a b c d e f g h i j k""#,
        r#""esc\"aped""#,
        r#""\\\/\b\f\n\r\t""#,
        r#""\u0041\u00e9\u20AC""#,
        r#""\ud83d\ude00""#,
        r#""\ud83d""#,
        r#""\ude00""#,
        r#""\ud83d\u0041""#,
        r#""\ud83dx""#,
        r#""\ud83d\n""#,
        r#""\x""#,
        r#""\u12""#,
        r#""\u12G4""#,
        "\"tab\there\"",
        "\"nl\nhere\"",
        "\"\u{7f}del\"",
        "\"é€😀 wide\"",
        r#""long string with no escapes at all, more than eight bytes""#,
        r#""unterminated"#,
    ];

    fn value(r: &mut Rng, depth: usize, out: &mut String) {
        let space = [" ", "", "", "\n", "\t", "\r\n "];
        out.push_str(r.pick(&space));
        match if depth > 4 { r.below(4) } else { r.below(7) } {
            0 => out.push_str(r.pick(NUMBERS)),
            1 => out.push_str(r.pick(STRINGS)),
            2 => out.push_str(r.pick(&["true", "false", "null", "tru", "nul", "falsy"])),
            3 => out.push_str(r.pick(NUMBERS)),
            4 | 5 => {
                out.push('{');
                let names = [
                    "\"a\"",
                    "\"b\"",
                    "\"a\\u0062\"",
                    "\"ab\"",
                    "\"\\u0061\"",
                    "\"c\"",
                ];
                for i in 0..r.below(5) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(r.pick(&space));
                    out.push_str(r.pick(&names));
                    out.push_str(r.pick(&space));
                    out.push(':');
                    value(r, depth + 1, out);
                }
                out.push_str(r.pick(&space));
                out.push('}');
            }
            _ => {
                out.push('[');
                for i in 0..r.below(5) {
                    if i > 0 {
                        out.push(',');
                    }
                    value(r, depth + 1, out);
                }
                out.push(']');
            }
        }
        out.push_str(r.pick(&space));
    }

    /// Edits that break texts where parsers are most likely to disagree.
    fn mangle(r: &mut Rng, text: &str) -> String {
        let mut b = text.as_bytes().to_vec();
        for _ in 0..1 + r.below(3) {
            let at = r.below(b.len() + 1);
            match r.below(4) {
                0 if at < b.len() => {
                    b.remove(at);
                }
                1 => b.truncate(at),
                _ => {
                    let junk = b",:[]{}\"\\0-e.x \x01";
                    b.insert(at, junk[r.below(junk.len())]);
                }
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn accepts_refuses_and_reads_exactly_as_serde_json() {
        let mut r = Rng::new(0x5EA1_0600);
        let (mut trees, mut refused) = (0, 0);
        for round in 0..60_000 {
            let mut text = String::new();
            value(&mut r, 0, &mut text);
            if round % 2 == 1 {
                text = mangle(&mut r, &text);
            }
            let want = reference(&text);
            assert_eq!(ours(&text), want, "{text:?}");
            match want {
                Reference::Tree(_) => trees += 1,
                _ => refused += 1,
            }
        }
        // Both outcomes were exercised, many times.
        assert!(
            trees > 5_000 && refused > 5_000,
            "{trees} trees, {refused} refused"
        );
    }

    #[test]
    fn nesting_is_limited_where_serde_json_limits_it() {
        for depth in [1, 126, 127, 128, 129, 5_000] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let text = format!("{}0{}", open.repeat(depth), close.repeat(depth));
                assert_eq!(ours(&text), reference(&text), "depth {depth} {open}");
            }
        }
        assert!(matches!(ours(&"[".repeat(127)), Reference::NotJson));
    }

    #[test]
    fn a_large_object_finds_its_repeated_name_and_keeps_the_rest() {
        let names: Vec<String> = (0..5_000).map(|i| format!("\"m{i}\":{i}")).collect();
        let whole = format!("{{{}}}", names.join(","));
        let Ok(p) = super::parse(&whole) else {
            panic!("parses")
        };
        assert!(matches!(&p.tree, Json::Object(m) if m.len() == 5_000));
        for repeated in [0, 31, 32, 33, 4_998] {
            let text = format!("{{{},\"m{repeated}\":true}}", names.join(","));
            assert_eq!(
                Json::parse_str(&text),
                Err(ParseError::DuplicateMember(format!("/m{repeated}")))
            );
        }
    }

    #[test]
    fn plain_runs_stop_at_the_first_byte_that_needs_attention_wherever_it_falls() {
        for len in 0..40 {
            for special in ["\"", "\\n\"", "\u{1}\""] {
                let body = "é".repeat(len / 2) + &"x".repeat(len % 2);
                let text = format!("[\"{body}{special}]");
                assert_eq!(ours(&text), reference(&text), "{text:?}");
            }
        }
    }
}
