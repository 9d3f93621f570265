//! `POST /v1/events`: one object, an array, or NDJSON; one result per event, in order.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use sealog_ledger::{Author, Ledger, Prepared, Rejection};
use sealog_model::PrepareError;
use sealog_model::input::{self, InputError};
use serde_json::{Value, json};

use crate::access::Access;
use crate::auth::{Action, Principal};
use crate::context::{Ctx, blocking, json_bytes};
use crate::error::ApiError;
use crate::state::Limits;

/// Bodies larger than this are prepared on a blocking thread rather than an async worker.
const INLINE_PREPARE_BYTES_MAX: usize = 256 << 10;

/// Media types a body may be sent as; the shape (object, array, NDJSON) is read from the body.
const MEDIA_TYPES: [&str; 5] = [
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/x-ndjson",
    "application/ndjson",
];

#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    request_body(description = "One event object, a JSON array of events, or NDJSON (one event per line)",
        content((Value = "application/json"), (String = "application/x-ndjson"), (Value = "application/cloudevents+json"), (Value = "application/cloudevents-batch+json"))),
    responses(
        (status = 200, description = "One result per event, in request order; acknowledged results are durable", body = crate::openapi::AppendResults),
        (status = 400, description = "The body holds no events (not JSON, empty, invalid UTF-8)", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, description = "The key may not append, or every event was outside its tenant", body = crate::openapi::ErrorBody),
        (status = 408, body = crate::openapi::ErrorBody), (status = 413, description = "Body over the limit, or every event over 1 MiB", body = crate::openapi::ErrorBody),
        (status = 415, body = crate::openapi::ErrorBody), (status = 422, description = "Every event was refused; `results` says why, per event", body = crate::openapi::ErrorBody),
        (status = 503, description = "Backpressure or shutdown; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn append(ctx: Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    ctx.authorize(Action::Append, &Value::Null).await?;
    check_media_type(&headers)?;
    let bytes = read_body(body, &headers, &ctx.state.limits).await?;
    let principal = ctx.principal.clone();
    let ledger = ctx.state.ledger.clone();
    let prepared = if bytes.len() > INLINE_PREPARE_BYTES_MAX {
        blocking(move || prepare_all(&ledger, &bytes, &principal)).await?
    } else {
        prepare_all(&ledger, &bytes, &principal)?
    };
    // The ledger counts what it commits; refusals before it are counted below.
    let mut good = Vec::new();
    let mut refusals = Vec::with_capacity(prepared.len());
    for p in prepared {
        match p {
            Ok(p) => {
                good.push(p);
                refusals.push(None);
            }
            Err(r) => refusals.push(Some(r)),
        }
    }
    let accepted = good.len();
    let mut committed = ctx.state.ingest(good).await?.into_iter();
    let mut results = Vec::with_capacity(refusals.len());
    let mut denied = Vec::new();
    let mut codes = Vec::new();
    for (i, p) in refusals.into_iter().enumerate() {
        let r = match p {
            None => committed
                .next()
                .expect("one result per committed event")
                .to_json(),
            Some(refusal) => {
                metrics::counter!("sealog_ingest_events_total", "status" => "rejected")
                    .increment(1);
                metrics::counter!("sealog_input_refused_total", "code" => refusal.code)
                    .increment(1);
                if refusal.denied {
                    denied.push(i);
                }
                codes.push(refusal.code);
                refusal.to_json()
            }
        };
        results.push(r);
    }
    if !denied.is_empty() {
        let err = ApiError::forbidden("events outside this key's tenant, or of a reserved type");
        ctx.record(Access::of(
            Action::Append,
            json!({"denied_events": denied}),
            Err(&err),
        ))
        .await?;
    }
    let body = json!({ "results": results });
    if accepted > 0 {
        return Ok(json_bytes(
            StatusCode::OK,
            serde_json::to_vec(&body).expect("results serialize"),
        ));
    }
    let err = if codes.iter().all(|c| *c == "TOO_LARGE") {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            "every event is over the size limit",
        )
    } else if denied.len() == codes.len() {
        ApiError::forbidden("every event is outside this key's tenant or of a reserved type")
    } else {
        ApiError::unprocessable("NO_VALID_EVENTS", "every event was refused; see results")
    };
    Err(err.with("results", body["results"].clone()))
}

fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |why: &str| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("{why}; send one of {}", MEDIA_TYPES.join(", ")),
        )
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| unsupported("no Content-Type"))?
        .to_str()
        .map_err(|_| unsupported("the Content-Type is not text"))?;
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if !MEDIA_TYPES.contains(&essence.as_str()) {
        return Err(unsupported(&format!(
            "Content-Type {:?} is not accepted",
            crate::access::clip(&essence)
        )));
    }
    for param in parts {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        if k.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported("only the UTF-8 charset is accepted"));
        }
    }
    Ok(())
}

/// Reads the whole body within the size and time limits.
pub(crate) async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!(
                "the body is over the limit of {} bytes; split it into several requests",
                limits.body_bytes_max
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_bytes_max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request("BAD_BODY", format!("the body could not be read: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > limits.body_bytes_max {
                    return Err(too_large());
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!(
                    "the body did not arrive within {} s",
                    limits.body_timeout.as_secs_f64()
                ),
            ));
        }
    }
    Ok(out)
}

/// Splits the body and prepares each event through the ledger, as a producer limited to
/// the key's tenant; input that is not an event, and events the key may not write, are
/// refused there and never reach the log.
fn prepare_all(
    ledger: &Ledger,
    bytes: &[u8],
    principal: &Principal,
) -> Result<Vec<Result<Prepared, Rejection>>, ApiError> {
    let raws = input::split(bytes).map_err(|e| {
        let status = match e {
            InputError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        metrics::counter!("sealog_input_refused_total", "code" => e.code()).increment(1);
        ApiError::new(status, e.code(), format!("the body holds no events: {e}"))
    })?;
    let author = Author::Producer {
        tenant: principal.tenant.as_deref(),
    };
    Ok(raws
        .into_iter()
        .map(|raw| {
            let raw = raw.map_err(|e| Rejection::from(PrepareError::Input(e)))?;
            match ledger.prepare(raw, &author) {
                Prepared::Rejected(r) => Err(r),
                p => Ok(p),
            }
        })
        .collect())
}
