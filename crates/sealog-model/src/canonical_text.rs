//! Reading text that must already be in RFC 8785 form, as every stored record is. One pass
//! checks the form byte by byte while it builds the tree, where parsing, canonicalizing again
//! and comparing would build the text a second time; reading records back (queries, exports,
//! `verify`, `verify-export`) is dominated by this. Text in any other form is refused with
//! the byte where it first departs from the form.
//!
//! The form accepted is exactly what [`crate::jcs`] writes: no whitespace; member names in
//! strictly ascending UTF-16 order (so none repeats); strings escaped only where RFC 8785
//! escapes; numbers spelled as ECMAScript spells them, integers within ±(2^53-1); and no
//! deeper nesting than the parser of events accepts.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Range;

use serde_json::Number;

use crate::jcs::{self, MAX_SAFE_INTEGER};
use crate::json::{self, Json};

/// A canonical JSON object: its tree, and where each of its members lies in the text.
pub struct CanonicalObject<'a> {
    pub tree: Json<'a>,
    /// Each member's bytes, from its name's opening quote to the end of its value, in order.
    pub members: Vec<Range<usize>>,
    /// The most containers open at once, the object itself included.
    pub depth: usize,
}

/// Where and how text departs from the canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {at}: {why}")]
pub struct NotCanonical {
    pub at: usize,
    pub why: &'static str,
}

/// Containers that may be open at once: the event parser's limit (serde_json's), so that
/// whatever could be ingested can be read back and nothing deeper can.
const MAX_DEPTH: usize = 127;

/// Reads `bytes` as one canonical JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<CanonicalObject<'_>, NotCanonical> {
    parse_object_leaving(bytes, None)
}

/// Like [`parse_object`], but the member named `left` is only checked, not built, when its
/// value is an object: the tree holds it as an empty object, so that whoever reads the tree
/// still sees its kind. For readers that need every byte checked but not every value.
pub fn parse_object_leaving<'a>(
    bytes: &'a [u8],
    left: Option<&str>,
) -> Result<CanonicalObject<'a>, NotCanonical> {
    let text = std::str::from_utf8(bytes).map_err(|e| NotCanonical {
        at: e.valid_up_to(),
        why: "not UTF-8",
    })?;
    json::count_tree();
    let mut r = Reader {
        text,
        bytes,
        at: 0,
        depth: 0,
        deepest: 0,
        open_members: Vec::with_capacity(64),
        open_items: Vec::with_capacity(64),
    };
    if r.peek() != Some(b'{') {
        return Err(r.fail("not an object"));
    }
    let mut members = Vec::with_capacity(16);
    let tree = r.object(Some(Top {
        spans: &mut members,
        left,
    }))?;
    if r.at != bytes.len() {
        return Err(r.fail("bytes follow the object"));
    }
    Ok(CanonicalObject {
        tree,
        members,
        depth: r.deepest,
    })
}

/// What the top-level object's reading also does.
struct Top<'s, 'n> {
    spans: &'s mut Vec<Range<usize>>,
    left: Option<&'n str>,
}

/// A string's content as written, between its quotes, and whether it holds escapes.
#[derive(Clone)]
struct Written {
    content: Range<usize>,
    escaped: bool,
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    depth: usize,
    deepest: usize,
    /// The members and items of the containers still open, innermost last: each container
    /// is moved out into a vector of its exact size when it closes, one allocation each.
    open_members: Vec<(Cow<'a, str>, Json<'a>)>,
    open_items: Vec<Json<'a>>,
}

impl<'a> Reader<'a> {
    fn fail(&self, why: &'static str) -> NotCanonical {
        NotCanonical { at: self.at, why }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, b: u8, why: &'static str) -> Result<(), NotCanonical> {
        if self.peek() != Some(b) {
            return Err(self.fail(why));
        }
        self.at += 1;
        Ok(())
    }

    fn value(&mut self) -> Result<Json<'a>, NotCanonical> {
        match self.peek() {
            Some(b'{') => self.object(None),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            _ => self.literal().map(|b| b.map_or(Json::Null, Json::Bool)),
        }
    }

    /// Checks a value without building it.
    fn check_value(&mut self) -> Result<(), NotCanonical> {
        match self.peek() {
            Some(b'{') => self.check_object(),
            Some(b'[') => self.check_array(),
            Some(b'"') => self.written_string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number_token().map(drop),
            _ => self.literal().map(drop),
        }
    }

    fn enter(&mut self) -> Result<(), NotCanonical> {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        if self.depth > MAX_DEPTH {
            return Err(self.fail("nested deeper than an event may be"));
        }
        self.at += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.at += 1;
        self.depth -= 1;
    }

    /// A member's name, checked to sort after the one before it.
    #[inline(always)]
    fn member_name(&mut self, before: Option<&Written>) -> Result<Written, NotCanonical> {
        let start = self.at;
        if self.peek() != Some(b'"') {
            return Err(self.fail("a member name was expected"));
        }
        let name = self.written_string()?;
        if let Some(before) = before
            && self.order(before, &name) != Ordering::Less
        {
            return Err(NotCanonical {
                at: start,
                why: "member names are not in strictly ascending UTF-16 order",
            });
        }
        self.expect(b':', "':' was expected")?;
        Ok(name)
    }

    fn order(&self, a: &Written, b: &Written) -> Ordering {
        if a.escaped || b.escaped {
            jcs::cmp_keys(&self.unescape(a), &self.unescape(b))
        } else {
            jcs::cmp_keys(&self.text[a.content.clone()], &self.text[b.content.clone()])
        }
    }

    /// After a member's value: whether another member follows.
    #[inline(always)]
    fn next_member(&mut self) -> Result<bool, NotCanonical> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(b'}') => Ok(false),
            _ => Err(self.fail("',' or '}' was expected")),
        }
    }

    #[inline(always)]
    fn next_item(&mut self) -> Result<bool, NotCanonical> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(b']') => Ok(false),
            _ => Err(self.fail("',' or ']' was expected")),
        }
    }

    fn object(&mut self, mut top: Option<Top<'_, '_>>) -> Result<Json<'a>, NotCanonical> {
        self.enter()?;
        let base = self.open_members.len();
        let mut before = None;
        let mut more = self.peek() != Some(b'}');
        while more {
            let start = self.at;
            let name = self.member_name(before.as_ref())?;
            let left = self.peek() == Some(b'{')
                && top.as_ref().and_then(|t| t.left).is_some_and(|l| {
                    if name.escaped {
                        self.unescape(&name) == l
                    } else {
                        l.as_bytes() == &self.bytes[name.content.clone()]
                    }
                });
            let value = if left {
                self.check_value()?;
                Json::Object(Vec::new())
            } else {
                self.value()?
            };
            if let Some(t) = top.as_mut() {
                t.spans.push(start..self.at);
            }
            self.open_members.push((self.string_of(&name), value));
            before = Some(name);
            more = self.next_member()?;
        }
        self.leave();
        Ok(Json::Object(self.open_members.split_off(base)))
    }

    fn check_object(&mut self) -> Result<(), NotCanonical> {
        self.enter()?;
        let mut before = None;
        let mut more = self.peek() != Some(b'}');
        while more {
            let name = self.member_name(before.as_ref())?;
            self.check_value()?;
            before = Some(name);
            more = self.next_member()?;
        }
        self.leave();
        Ok(())
    }

    fn array(&mut self) -> Result<Json<'a>, NotCanonical> {
        self.enter()?;
        let base = self.open_items.len();
        let mut more = self.peek() != Some(b']');
        while more {
            let item = self.value()?;
            self.open_items.push(item);
            more = self.next_item()?;
        }
        self.leave();
        Ok(Json::Array(self.open_items.split_off(base)))
    }

    fn check_array(&mut self) -> Result<(), NotCanonical> {
        self.enter()?;
        let mut more = self.peek() != Some(b']');
        while more {
            self.check_value()?;
            more = self.next_item()?;
        }
        self.leave();
        Ok(())
    }

    /// `true`, `false` or `null`, as `Some(bool)` or `None`.
    fn literal(&mut self) -> Result<Option<bool>, NotCanonical> {
        let rest = &self.bytes[self.at..];
        let (value, len) = if rest.starts_with(b"true") {
            (Some(true), 4)
        } else if rest.starts_with(b"false") {
            (Some(false), 5)
        } else if rest.starts_with(b"null") {
            (None, 4)
        } else {
            return Err(self.fail("a value was expected"));
        };
        self.at += len;
        Ok(value)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, NotCanonical> {
        let w = self.written_string()?;
        Ok(self.string_of(&w))
    }

    fn string_of(&self, w: &Written) -> Cow<'a, str> {
        if w.escaped {
            Cow::Owned(self.unescape(w))
        } else {
            Cow::Borrowed(&self.text[w.content.clone()])
        }
    }

    /// A string at its opening quote, checked. Only the escapes RFC 8785 writes are
    /// accepted: `\"`, `\\`, the five short forms, and `\u00xx` in lowercase for the other
    /// controls.
    #[inline(always)]
    fn written_string(&mut self) -> Result<Written, NotCanonical> {
        self.at += 1;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at = self.plain_run(self.at);
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.at += self.escape_at(self.at)?.1;
                }
                Some(_) => return Err(self.fail("a control character is not escaped")),
                None => return Err(self.fail("a string is not closed")),
            }
        }
        let content = start..self.at;
        self.at += 1;
        Ok(Written { content, escaped })
    }

    #[inline(always)]
    fn plain_run(&self, from: usize) -> usize {
        jcs::plain_run(self.bytes, from)
    }

    /// The content of a string already checked, its escapes decoded.
    fn unescape(&self, w: &Written) -> String {
        let mut out = String::with_capacity(w.content.len());
        let mut at = w.content.start;
        while at < w.content.end {
            let run_end = self.plain_run(at).min(w.content.end);
            out.push_str(&self.text[at..run_end]);
            at = run_end;
            if at < w.content.end {
                let (c, len) = self.escape_at(at).expect("checked before");
                out.push(c);
                at += len;
            }
        }
        out
    }

    /// The escape at `at` (a backslash): the character it stands for and its length.
    fn escape_at(&self, at: usize) -> Result<(char, usize), NotCanonical> {
        let refuse = |why| NotCanonical { at, why };
        let short = match self.bytes.get(at + 1) {
            None => return Err(refuse("a string is not closed")),
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'b') => Some('\u{8}'),
            Some(b't') => Some('\t'),
            Some(b'n') => Some('\n'),
            Some(b'f') => Some('\u{c}'),
            Some(b'r') => Some('\r'),
            Some(_) => None,
        };
        if let Some(c) = short {
            return Ok((c, 2));
        }
        let lower_hex = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let code = match self.bytes.get(at + 1..at + 6) {
            Some([b'u', b'0', b'0', hi @ (b'0' | b'1'), lo]) => {
                lower_hex(*lo).map(|lo| (hi - b'0') << 4 | lo)
            }
            _ => None,
        };
        match code {
            Some(c) if !matches!(c, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) => Ok((char::from(c), 6)),
            _ => Err(refuse("an escape RFC 8785 does not write")),
        }
    }

    /// A number, which must be spelled exactly as RFC 8785 spells its value.
    fn number(&mut self) -> Result<Number, NotCanonical> {
        let start = self.at;
        Ok(match self.number_token()? {
            Some(i) if i < 0 => Number::from(i),
            Some(i) => Number::from(i.unsigned_abs()),
            None => self.text[start..self.at]
                .parse::<Number>()
                .expect("checked before"),
        })
    }

    /// Checks the number at the cursor and moves past it: its value when it is an integer
    /// (most numbers in events: plain digits within ±(2^53-1) are their own spelling).
    fn number_token(&mut self) -> Result<Option<i64>, NotCanonical> {
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while r.peek().is_some_and(|b| b.is_ascii_digit()) {
                r.at += 1;
            }
            r.at - from
        };
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        let int_digits = digits(self);
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return Err(NotCanonical {
                at: int_start,
                why: "a number is not spelled as JSON allows",
            });
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            integral = false;
            self.at += 1;
            if digits(self) == 0 {
                return Err(self.fail("a number is not spelled as JSON allows"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integral = false;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.fail("a number is not spelled as JSON allows"));
            }
        }
        let token = &self.text[start..self.at];
        let refuse = |why| Err(NotCanonical { at: start, why });
        if integral {
            let magnitude = match token[int_start - start..].parse::<u64>() {
                Ok(m) if int_digits <= 16 && m <= MAX_SAFE_INTEGER => m as i64,
                _ => return refuse("an integer beyond ±(2^53-1)"),
            };
            return match (negative, magnitude) {
                (true, 0) => refuse("-0 is spelled 0"),
                (true, m) => Ok(Some(-m)),
                (false, m) => Ok(Some(m)),
            };
        }
        let Ok(number) = token.parse::<Number>() else {
            return refuse("a number beyond the range of an IEEE double");
        };
        let mut spelled = Vec::with_capacity(token.len());
        if jcs::write_number(&number, "", &mut spelled).is_err() || spelled != token.as_bytes() {
            return refuse("a number not spelled as RFC 8785 spells it");
        }
        Ok(None)
    }
}
