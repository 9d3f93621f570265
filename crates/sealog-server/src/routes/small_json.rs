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
    object(&bytes).map_err(|m| ApiError::bad_request("BAD_JSON", format!("the {what}: {m}")))
}

/// A request body that must be one JSON object: serde would also read a struct from an
/// array of its fields in order, which no request documents.
pub(crate) fn object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("the body must be a JSON object".to_string());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}
