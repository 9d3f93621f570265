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
    // only if some line is a JSON value on its own; otherwise it is one event, which gets one
    // result (e.g. `TOO_LARGE` or `INVALID_UTF8`), never one refusal per line.
    if trimmed[0] == b'{' && serde_json::from_slice::<&RawValue>(trimmed).is_ok() {
        return Ok(vec![check_size(trimmed)]);
    }
    let lines = || {
        trimmed
            .split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
    };
    let line_is_a_value = |l: &&[u8]| serde_json::from_slice::<&RawValue>(l).is_ok();
    if trimmed[0] == b'{' && !lines().any(|l| line_is_a_value(&l)) {
        return Ok(vec![check_size(trimmed)]);
    }
    Ok(lines().map(check_size).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

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
            crate::PreparedEvent::from_bytes(n[2].as_ref().unwrap()),
            Err(crate::record::PrepareError::Input(InputError::NotJson(_)))
        ));
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
