//! Strict query-string parsing. A misspelled filter must not silently widen a query in an
//! audit tool, so unknown and repeated parameters are refused, and so is text that is not
//! UTF-8 once percent-decoded.

use crate::error::ApiError;
use crate::percent::Undecodable;

/// Longest query string accepted.
const QUERY_BYTES_MAX: usize = 16 << 10;

pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=2`; `allowed` names the parameters (a trailing `.` allows a prefix).
    pub(crate) fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        if raw.len() > QUERY_BYTES_MAX {
            return Err(ApiError::bad_request(
                "BAD_PARAMETER",
                format!("the query string is longer than {QUERY_BYTES_MAX} bytes"),
            ));
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            let known = allowed.iter().any(|a| match a.strip_suffix('.') {
                Some(prefix) => {
                    k.len() > a.len() && k.starts_with(prefix) && k.as_bytes()[prefix.len()] == b'.'
                }
                None => *a == k,
            });
            if !known {
                return Err(ApiError::bad_request(
                    "UNKNOWN_PARAMETER",
                    format!(
                        "unknown parameter {:?}; this route takes {}",
                        crate::access::clip(&k),
                        allowed.join(", ")
                    ),
                ));
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(ApiError::bad_request(
                    "BAD_PARAMETER",
                    format!("parameter {k:?} is given more than once"),
                ));
            }
            out.push((k, v));
        }
        Ok(Params(out))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A non-negative integer parameter.
    pub(crate) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_u64(v).ok_or_else(|| {
                    ApiError::bad_request(
                        "BAD_PARAMETER",
                        format!("{name} must be a non-negative integer"),
                    )
                })
            })
            .transpose()
    }

    /// For the access record: what the caller asked, as sent.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (crate::access::clip(k), crate::access::clip(v).into()))
                .collect(),
        )
    }
}

/// Digits only: no sign, no spaces, no leading `+`.
pub(crate) fn parse_u64(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn decode(s: &str) -> Result<String, ApiError> {
    crate::percent::decode(s, true).map_err(|e| {
        ApiError::bad_request(
            "BAD_PARAMETER",
            match e {
                Undecodable::Escape => "malformed percent-encoding in the query",
                Undecodable::Utf8 => "a query parameter is not UTF-8 once decoded",
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        let p = Params::parse(Some("a=x%20y&axis.type=t+u"), &["a", "axis."]).unwrap();
        assert_eq!(p.get("a"), Some("x y"));
        assert_eq!(p.get("axis.type"), Some("t u"));
        for bad in [
            "b=1", "a=1&a=2", "a=%zz", "a=%ff", "a=%4", "a=%+f", "axis=1", "axis.=1",
        ] {
            assert!(Params::parse(Some(bad), &["a", "axis."]).is_err(), "{bad}");
        }
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("18446744073709551616"), None);
    }
}
