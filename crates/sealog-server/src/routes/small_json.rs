//! The bodies of the admin routes that take a few names and a reason (erasures, holds):
//! JSON only, a small bound of their own, unknown members refused.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::context::Ctx;
use crate::error::ApiError;

/// A request that names a person or a tenant and says why fits in this.
pub(crate) const SMALL_JSON_BYTES_MAX: usize = 64 << 10;

/// Whether the request says its body is JSON.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

/// Reads and parses a small JSON body: 415 if it is not JSON, 413 past the bound (by its
/// declared length, before reading), 400 if it does not parse as `T`. `what` names it in
/// messages.
pub(crate) async fn read<T: DeserializeOwned>(
    ctx: &Ctx,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("send the {what} as application/json"),
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!("the {what} is at most {SMALL_JSON_BYTES_MAX} bytes"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > SMALL_JSON_BYTES_MAX) {
        return Err(too_large());
    }
    let (bytes, _reservation) = crate::routes::events::read_body(body, headers, &ctx.state).await?;
    if bytes.len() > SMALL_JSON_BYTES_MAX {
        return Err(too_large());
    }
    object(&bytes).map_err(|r| r.answer("BAD_JSON", &format!("the {what}: ")))
}

/// A request body that must be one JSON object: serde would also read a struct from an
/// array of its fields in order, which no request documents.
pub(crate) fn object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refused> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(Refused::of)?;
    if !value.is_object() {
        let why = "the body must be a JSON object".to_string();
        return Err(Refused {
            told: why.clone(),
            kept: why,
        });
    }
    serde_json::from_value(value).map_err(Refused::of)
}

/// Why a body was refused: what the caller is told (naming what it sent wrong), and the same
/// without the values it sent, for the request's access record.
#[derive(Debug)]
pub(crate) struct Refused {
    told: String,
    kept: String,
}

impl Refused {
    fn of(e: serde_json::Error) -> Self {
        Refused {
            told: e.to_string(),
            kept: valueless(&e),
        }
    }

    /// The refusal as a 400 with `code`, its messages led by `lead`.
    pub(crate) fn answer(&self, code: &'static str, lead: &str) -> ApiError {
        ApiError::bad_request(code, format!("{lead}{}", self.told))
            .recorded_as(format!("{lead}{}", self.kept))
    }
}

/// What is wrong with a body, without the values it holds: the answer is also the message of
/// the request's access record, kept for good, and a value a request got wrong may name a
/// person (`"data_subject": 9031`, or a member named by a customer id). What was expected stays.
fn valueless(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde's data errors name the value or member first, then what was expected:
    // "invalid type: string \"…\", expected …", "unknown field `…`, expected one of …".
    let expected = |rest: &str| {
        rest.find(", expected")
            .map_or("", |at| &rest[at..])
            .to_string()
    };
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(lead) {
            let kind = rest.split([' ', ',']).next().unwrap_or("");
            return format!("{lead}{kind}{}", expected(rest));
        }
    }
    for lead in ["unknown variant ", "unknown field "] {
        if let Some(rest) = text.strip_prefix(lead) {
            return format!("{}{}", lead.trim_end(), expected(rest));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Erase {
        data_subject: String,
        format: Format,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Jsonl,
    }

    #[test]
    fn a_refused_bodys_access_record_describes_it_without_the_values_it_holds() {
        for (body, says) in [
            (
                r#"{"data_subject": 9031, "format": "jsonl"}"#,
                "invalid type: integer, expected a string",
            ),
            (
                r#"{"data_subject": "x", "format": "cust-9031"}"#,
                "unknown variant, expected",
            ),
            (
                r#"{"data_subject": "x", "format": "jsonl", "cust-9031": 1}"#,
                "unknown field, expected",
            ),
            (r#"{"data_subject": "x"}"#, "missing field `format`"),
        ] {
            let refused = object::<Erase>(body.as_bytes()).unwrap_err();
            let kept = refused
                .answer("BAD_JSON", "")
                .recorded_message()
                .to_string();
            assert!(!kept.contains("9031"), "{body}: {kept}");
            assert!(kept.contains(says), "{body}: {kept}");
        }
    }
}
