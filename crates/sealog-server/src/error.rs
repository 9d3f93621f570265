//! The one error type of the API. Every failure reaches the client as
//! `{"error":{"code","message"}}` with a fitting status; internal errors are logged here and
//! reach the client only as a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    retry_after_s: Option<u32>,
    /// Members added beside `error`, e.g. the per-event results of a refused append.
    extra: Option<(&'static str, Extra)>,
    /// What the access record of the request says in place of `message`, where the message
    /// quotes what the caller sent (see [`ApiError::recorded_as`]).
    recorded: Option<Box<str>>,
}

#[derive(Debug)]
enum Extra {
    Value(Value),
    /// JSON text built by the server itself (a large list of results, kept as bytes).
    Json(Vec<u8>),
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
            extra: None,
            recorded: None,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// Backpressure or a store that cannot take writes: the client should retry later.
    pub(crate) fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after_s: u32,
    ) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// A fault of ours: logged with its detail, shown to the client without it.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; the server log has the details",
        )
    }

    /// Keeps `message` out of the access record, which says `recorded` instead: the caller is
    /// told what it sent wrong, but an access record is kept for good and read by others.
    pub(crate) fn recorded_as(mut self, recorded: impl Into<String>) -> Self {
        self.recorded = Some(recorded.into().into_boxed_str());
        self
    }

    /// What the access record of the request says of this error.
    pub(crate) fn recorded_message(&self) -> &str {
        self.recorded.as_deref().unwrap_or(&self.message)
    }

    pub(crate) fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub(crate) fn with(mut self, name: &'static str, value: Value) -> Self {
        self.extra = Some((name, Extra::Value(value)));
        self
    }

    /// Like `with`, for a member already serialized: `json` must be one JSON value.
    pub(crate) fn with_json(mut self, name: &'static str, json: Vec<u8>) -> Self {
        self.extra = Some((name, Extra::Json(json)));
        self
    }

    /// A short label for the access record.
    pub(crate) fn outcome(&self) -> &'static str {
        match self.status.as_u16() {
            401 | 403 => "denied",
            404 => "not_found",
            400..=499 => "invalid",
            _ => "failed",
        }
    }
}

impl From<sealog_ledger::Error> for ApiError {
    fn from(e: sealog_ledger::Error) -> Self {
        use sealog_ledger::Error as E;
        match e {
            E::InvalidArgument(m) => ApiError::unprocessable("INVALID_ARGUMENT", m),
            E::PastTheEnd { .. } => {
                ApiError::new(StatusCode::CONFLICT, "AS_OF_PAST_END", e.to_string())
            }
            E::Poisoned(_) | E::Closed => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::unavailable(
                    "STORE_UNAVAILABLE",
                    "the store cannot take writes; it needs a restart (see the server log)",
                    30,
                )
            }
            E::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::unavailable(
                    "STORE_UNAVAILABLE",
                    "the log's database cannot be reached now; nothing was acknowledged, so send the request again",
                    2,
                )
            }
            E::Pruned(stub) => ApiError::new(
                StatusCode::GONE,
                "PRUNED_BY_RETENTION",
                format!(
                    "record {} was pruned by retention: its stub keeps its leaf hash (so its proofs hold) and its id, not its body",
                    stub.seq
                ),
            )
            .with(
                "pruned",
                json!({"seq": stub.seq, "record_id": format!("sha256:{}", hex::encode(stub.id))}),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl ApiError {
    /// The status and the JSON body, for a handler that sends them itself (a body that
    /// holds a reservation of the memory budget). A member added with `with_json` is moved
    /// into the body, not copied: its buffer becomes the body.
    pub(crate) fn into_json(self) -> (StatusCode, Vec<u8>) {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        let text = match self.extra {
            None => serde_json::to_vec(&body),
            Some((name, Extra::Value(value))) => {
                body[name] = value;
                serde_json::to_vec(&body)
            }
            Some((name, Extra::Json(mut json))) => {
                let mut text = serde_json::to_vec(&body).expect("an error body serializes");
                text.pop(); // the closing brace, to add a member
                text.extend_from_slice(format!(",{}:", Value::from(name)).as_bytes());
                json.splice(0..0, text);
                json.push(b'}');
                Ok(json)
            }
        };
        (self.status, text.expect("an error body serializes"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after_s = self.retry_after_s;
        let (status, text) = self.into_json();
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], text).into_response();
        if let Some(s) = retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sealog\""),
            );
        }
        resp
    }
}

/// The error code a bare status gets when something other than our handlers answered
/// (the router's 404 and 405, body-limit rejections).
pub(crate) fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BAD_REQUEST",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        408 => "REQUEST_TIMEOUT",
        429 => "TOO_MANY_REQUESTS",
        413 => "TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        422 => "UNPROCESSABLE",
        431 => "HEADERS_TOO_LARGE",
        503 => "UNAVAILABLE",
        401..=499 => "CLIENT_ERROR",
        _ => "INTERNAL",
    }
}
