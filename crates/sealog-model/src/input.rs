//! Splits a request body or file into events: one JSON object, a JSON array of objects, or
//! NDJSON (one object per line). Each event keeps its own raw bytes so that size, UTF-8 and
//! syntax errors are reported per event and one bad line never hides the others.

use serde_json::value::RawValue;

use crate::limits::EVENT_BYTES_MAX;

/// Why one piece of input is not an event at all. Such input is refused, never stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not valid UTF-8 (byte {offset} of the event)")]
    InvalidUtf8 { offset: usize },
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("the input holds no events")]
    Empty,
}

impl InputError {
    /// A stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::TooLarge { .. } => "TOO_LARGE",
            InputError::InvalidUtf8 { .. } => "INVALID_UTF8",
            InputError::NotJson(_) => "NOT_JSON",
            InputError::Empty => "EMPTY",
        }
    }
}

/// One event's raw bytes, or why that part of the input is not an event.
pub type RawEvent<'a> = Result<&'a [u8], InputError>;

/// Splits `input` into events, in input order.
///
/// A whole-input parse error of an array refuses the whole input (it has no lines to resync
/// on); NDJSON errors are per line.
pub fn split(input: &[u8]) -> Result<Vec<RawEvent<'_>>, InputError> {
    let trimmed = input.trim_ascii();
    if trimmed.is_empty() {
        return Err(InputError::Empty);
    }
    if trimmed[0] == b'[' {
        let text = std::str::from_utf8(trimmed).map_err(|e| InputError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| InputError::NotJson(e.to_string()))?;
        if items.is_empty() {
            return Err(InputError::Empty);
        }
        return Ok(items
            .into_iter()
            .map(|raw| check_size(raw.get().as_bytes()))
            .collect());
    }
    // One (possibly pretty-printed) object spans lines, so try it whole first. Input is NDJSON
    // only if some line is an object or array on its own; otherwise it is one event, which
    // gets one result (e.g. `TOO_LARGE` or `INVALID_UTF8`), never one refusal per line. Both
    // are decided by where brackets close, without parsing: each event is parsed once, later.
    if trimmed[0] == b'{' && closes_at_end(trimmed) {
        return Ok(vec![check_size(trimmed)]);
    }
    let lines = || {
        lines(trimmed)
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
    };
    if trimmed[0] == b'{' && !lines().any(closes_on_its_line) {
        return Ok(vec![check_size(trimmed)]);
    }
    Ok(lines().map(check_size).collect())
}

/// The pieces of `text` between line feeds, as `text.split(|&b| b == b'\n')` gives them, with
/// each line feed found by `memchr`: a request body is megabytes, and a byte at a time is
/// several times slower.
pub fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\n', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn check_size(raw: &[u8]) -> RawEvent<'_> {
    if raw.len() > EVENT_BYTES_MAX {
        return Err(InputError::TooLarge {
            size: raw.len(),
            limit: EVENT_BYTES_MAX,
        });
    }
    Ok(raw)
}

/// Checks one event's size and UTF-8 before parsing, for precise messages.
pub fn check_event_bytes(raw: &[u8]) -> Result<&str, InputError> {
    check_size(raw)?;
    std::str::from_utf8(raw).map_err(|e| InputError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

/// Finds where top-level objects and arrays end in a stream of bytes, without parsing them:
/// it tracks only strings, escapes and bracket depth. Streaming input (`sealog append -`) is
/// cut into events with it; each event is then parsed once, where its errors are reported.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    depth: u32,
    in_string: bool,
    escaped: bool,
}

/// What one byte did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Outside any object or array (whitespace, or stray bytes a later parse refuses).
    Outside,
    /// Inside an object or array that goes on.
    Inside,
    /// The closing bracket of a top-level object or array.
    End,
}

impl Scanner {
    pub fn new() -> Self {
        Scanner::default()
    }

    pub fn step(&mut self, b: u8) -> Step {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return if self.depth == 0 {
                Step::Outside
            } else {
                Step::Inside
            };
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 0 {
                    Step::Outside
                } else {
                    Step::Inside
                }
            }
            b'{' | b'[' => {
                self.depth += 1;
                Step::Inside
            }
            b'}' | b']' if self.depth > 0 => {
                self.depth -= 1;
                if self.depth == 0 {
                    Step::End
                } else {
                    Step::Inside
                }
            }
            _ if self.depth > 0 => Step::Inside,
            _ => Step::Outside,
        }
    }

    /// Whether an object or array is open.
    pub fn is_open(&self) -> bool {
        self.depth > 0 || self.in_string
    }
}

/// Whether `line` (trimmed) is one object or array that closes at its last byte, as one
/// NDJSON line is. It is still parsed later; this only decides how input is cut.
pub fn closes_on_its_line(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    matches!(line.first(), Some(b'{' | b'[')) && closes_at_end(line)
}

/// Whether the first object or array in `text` (trimmed) closes at its last byte: where
/// [`Scanner`] says it ends, found crossing each string at once to its next quote or
/// backslash (`memchr2`), since most of an event's bytes are in strings and every single
/// appended event is cut this way.
fn closes_at_end(text: &[u8]) -> bool {
    let mut depth = 0u32;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => loop {
                i += 1;
                match text
                    .get(i..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                {
                    None => return false,
                    Some(k) if text[i + k] == b'"' => {
                        i += k;
                        break;
                    }
                    // A backslash: the byte after it is part of the string.
                    Some(k) => i += k + 1,
                }
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return i == text.len() - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_the_pieces_a_split_at_line_feeds_gives() {
        for text in [
            &b""[..],
            b"\n",
            b"\n\n",
            b"a",
            b"a\n",
            b"\na",
            b"{\"a\":1}\r\n\n  {\"b\":2}\n{\"c\":3}",
        ] {
            let want: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            assert_eq!(lines(text).collect::<Vec<_>>(), want, "{text:?}");
        }
        let long = [b"x".repeat(100_000), b"y".repeat(77)].join(&b'\n');
        assert_eq!(
            lines(&long).map(<[u8]>::len).collect::<Vec<_>>(),
            [100_000, 77]
        );
    }

    #[test]
    fn accepts_object_array_and_ndjson() {
        assert_eq!(
            split(b" {\"a\":\n 1}\n").unwrap(),
            vec![Ok(&b"{\"a\":\n 1}"[..])]
        );
        let a = split(b"[{\"a\":1}, {\"b\":2}]").unwrap();
        assert_eq!(a, vec![Ok(&b"{\"a\":1}"[..]), Ok(&b"{\"b\":2}"[..])]);
        let n = split(b"{\"a\":1}\n\n{\"b\":2}\r\n{oops\n").unwrap();
        assert_eq!(n.len(), 3);
        assert!(
            n[2].is_ok(),
            "syntax is checked when the event is prepared, per line"
        );
        assert!(matches!(
            crate::json::Json::parse(n[2].as_ref().unwrap()),
            Err(crate::json::ParseError::NotJson(_))
        ));
    }

    #[test]
    fn the_scanner_finds_where_values_close() {
        assert!(closes_on_its_line(br#" {"a":"}{","b":[1,{"c":"\\\""}]} "#));
        assert!(closes_on_its_line(b"[1,2]"));
        assert!(!closes_on_its_line(b"{\"a\":"));
        assert!(!closes_on_its_line(b"{\"a\":1} {\"b\":2}"));
        assert!(!closes_on_its_line(b"{oops"));
        assert!(!closes_on_its_line(b"42"));
        let mut s = Scanner::new();
        let text = b"{\"a\":\n [1]}\n";
        let ends: Vec<usize> = text
            .iter()
            .enumerate()
            .filter(|(_, b)| s.step(**b) == Step::End)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ends, [10]);
        assert!(!s.is_open());
    }

    /// Where the byte scanner says the first object or array closes.
    fn closes_at_end_by_scanner(text: &[u8]) -> bool {
        let mut s = Scanner::new();
        text.iter().position(|&b| s.step(b) == Step::End) == Some(text.len() - 1)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 4096,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ea1_0002),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Crossing strings at once decides as stepping every byte does, on texts made of the
        /// bytes that matter (brackets, quotes, backslashes) and a few that do not.
        #[test]
        fn closing_found_by_jumps_agrees_with_the_scanner(
            text in proptest::collection::vec(
                proptest::sample::select(&b"{}[]\"\\ax:,\n"[..]),
                1..64,
            ),
        ) {
            proptest::prop_assert_eq!(
                closes_at_end(&text),
                closes_at_end_by_scanner(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn refuses_what_is_not_events() {
        assert_eq!(split(b"  \n ").unwrap_err(), InputError::Empty);
        assert_eq!(split(b"[]").unwrap_err(), InputError::Empty);
        assert!(matches!(
            split(b"[{\"a\":1},").unwrap_err(),
            InputError::NotJson(_)
        ));
        assert!(matches!(
            check_event_bytes(b"{\"a\":\"\xff\"}"),
            Err(InputError::InvalidUtf8 { offset: 6 })
        ));
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(EVENT_BYTES_MAX));
        assert!(matches!(
            split(big.as_bytes()).unwrap()[0],
            Err(InputError::TooLarge { .. })
        ));
    }
}
