//! `POST /v1/events`: one object, an array, or NDJSON; one result per event, in order.

use std::ops::Range;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use sealog_ledger::{Author, IngestResult, Ledger, Prepared};
use sealog_model::PrepareError;
use sealog_model::input::{self, InputError};
use serde_json::{Value, json};

use crate::access::Access;
use crate::auth::{Action, Principal};
use crate::budget::{EVENT_OVERHEAD_BYTES, Reservation};
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::ingest::Work;
use crate::state::AppState;

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
    params(("Sealog-Stream" = Option<String>, Header, description = "`<stream id>/<n>`: this request is the n-th of an ordered stream (n from 1) and is committed only after request n − 1 of the stream was; prepared beside it. A stream is the sending key's own: another key's stream of the same id is another stream. A refused request of a key that may append fails the rest of its stream (409 STREAM_ORDER): start a new one")),
    request_body(description = "One event object, a JSON array of events, or NDJSON (one event per line)",
        content((Value = "application/json"), (String = "application/x-ndjson"), (Value = "application/cloudevents+json"), (Value = "application/cloudevents-batch+json"))),
    responses(
        (status = 200, description = "One result per event, in request order; acknowledged results are durable", body = crate::openapi::AppendResults),
        (status = 400, description = "The body holds no events (not JSON, empty, invalid UTF-8)", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, description = "The key may not append, or every event was outside its tenant", body = crate::openapi::ErrorBody),
        (status = 408, body = crate::openapi::ErrorBody), (status = 413, description = "Body over the limit, more events than the memory budget could hold, or every event over 1 MiB", body = crate::openapi::ErrorBody),
        (status = 409, description = "An ordered stream's request whose predecessor failed or did not come in time; nothing was committed", body = crate::openapi::ErrorBody),
        (status = 415, body = crate::openapi::ErrorBody), (status = 422, description = "Every event was refused; `results` says why, per event", body = crate::openapi::ErrorBody),
        (status = 503, description = "Backpressure (the append queue or the memory budget of request bodies is full) or shutdown; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn append(ctx: Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let place = crate::streams::place(&headers, &ctx.principal.key_id)?;
    // Before the stream is touched: a key that may not append has no stream to fail.
    ctx.authorize(Action::Append, &Value::Null).await?;
    let answer = append_in_place(&ctx, &headers, body, place.clone()).await;
    if answer.is_err()
        && let Some(place) = place
    {
        // Refused before its turn: the stream's later requests must not commit either.
        ctx.state.streams.fail(&place);
    }
    answer
}

async fn append_in_place(
    ctx: &Ctx,
    headers: &HeaderMap,
    body: Body,
    place: Option<crate::streams::Place>,
) -> Result<Response, ApiError> {
    // CloudEvents binary mode: the attributes are `ce-*` headers and the body, of any media
    // type, is the event's data; it becomes the one structured form before anything else.
    let binary = sealog_model::cloudevents::is_binary(
        headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or(""))),
    );
    if !binary {
        check_media_type(headers)?;
    }
    let (mut bytes, reservation) = read_body(body, headers, &ctx.state).await?;
    if binary {
        bytes = structured_of_binary(headers, &bytes)?;
    }
    let body = Arc::new(bytes);
    // Counting and splitting read the whole body: off the async workers when it is large.
    let (reservation, raws) = if body.len() > INLINE_PREPARE_BYTES_MAX {
        let b = body.clone();
        blocking(move || split_within(&b, reservation)).await?
    } else {
        split_within(&body, reservation)?
    };
    let raws = Arc::new(raws);
    let mut out = Results::with_capacity(raws.len());
    let mut turn = None;
    let mut start = 0;
    while start < raws.len() {
        let end = slice_end(&raws, start);
        let slice_bytes: usize = raws[start..end]
            .iter()
            .map(|r| r.as_ref().map_or(0, |r| r.len()))
            .sum();
        let prepare = {
            let (ledger, body, raws) = (ctx.state.ledger.clone(), body.clone(), raws.clone());
            let principal = ctx.principal.clone();
            move || prepare_slice(&ledger, &body, &raws[start..end], &principal)
        };
        // A large slice is prepared on a blocking thread, beside the stream's previous request;
        // a small one on the append thread that commits it, once its turn came.
        let work = if slice_bytes > INLINE_PREPARE_BYTES_MAX {
            Work::Prepared(blocking(move || Ok(prepare())).await?)
        } else {
            Work::Raw {
                events: end - start,
                prepare: Box::new(prepare),
            }
        };
        if let Some(place) = place.clone().filter(|_| turn.is_none()) {
            turn = Some(
                ctx.state
                    .streams
                    .turn(place, ctx.state.limits.stream_wait)
                    .await?,
            );
        }
        out.commit(ctx, work, start).await?;
        start = end;
    }
    if let Some(t) = turn {
        t.committed();
    }
    drop((raws, body));
    if !out.denied.is_empty() {
        let err = ApiError::forbidden("events outside this key's tenant, or of a reserved type");
        let mut resource = json!({"denied_events": out.denied});
        if out.denied_count > out.denied.len() {
            resource["denied_count"] = json!(out.denied_count);
        }
        ctx.record(Access::of(Action::Append, resource, Err(&err)))
            .await?;
    }
    let Results {
        json: mut results,
        accepted,
        refused,
        too_large,
        denied_count,
        ..
    } = out;
    results.push(b']');
    if accepted > 0 {
        results.push(b'}');
        return Ok(held_json(StatusCode::OK, results, reservation));
    }
    // The error body carries the results array alone, beside `error`.
    results.drain(..RESULTS_PREFIX.len() - 1);
    let err = if too_large == refused {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            "every event is over the size limit",
        )
    } else if denied_count == refused {
        ApiError::forbidden("every event is outside this key's tenant or of a reserved type")
    } else {
        ApiError::unprocessable("NO_VALID_EVENTS", "every event was refused; see results")
    };
    let (status, body) = err.with_json("results", results).into_json();
    Ok(held_json(status, body, reservation))
}

/// A body is prepared and committed in slices of at most this many events and bytes, so a
/// request holds at most one slice of prepared events at a time: each holds its canonical
/// bytes, index keys and claims, several times its raw size (about 3 KiB for an event of
/// 400 bytes), so a slice takes a few MiB. A slice is one commit of its own (one fsync
/// shared with whatever else is queued), which is why it is not smaller.
const SLICE_EVENTS_MAX: usize = 1024;
const SLICE_BYTES_MAX: usize = 1 << 20;

/// How the body of a successful append begins; the results follow.
const RESULTS_PREFIX: &[u8] = b"{\"results\":[";

/// Indices of refused events an access record lists; past it, only their count.
const DENIED_LISTED_MAX: usize = 1000;

/// Where the body's events are (byte ranges), or why a part of it is not an event.
type RawRange = Result<Range<usize>, InputError>;

/// The end of the slice that starts at `start`: one event at least, then as many as fit.
fn slice_end(raws: &[RawRange], start: usize) -> usize {
    let mut bytes = 0;
    let mut end = start;
    while end < raws.len() && end - start < SLICE_EVENTS_MAX {
        let len = raws[end].as_ref().map_or(0, |r| r.len());
        if end > start && bytes + len > SLICE_BYTES_MAX {
            break;
        }
        bytes += len;
        end += 1;
    }
    end
}

/// The results of one body as they are committed slice by slice: serialized at once (a
/// JSON array, in request order), with what the final answer needs to know.
struct Results {
    json: Vec<u8>,
    events: usize,
    accepted: usize,
    refused: usize,
    too_large: usize,
    denied: Vec<usize>,
    denied_count: usize,
}

impl Results {
    fn with_capacity(events: usize) -> Self {
        // An appended event's result takes about 120 bytes.
        let mut json = Vec::with_capacity(events.saturating_mul(128).min(64 << 20));
        json.extend_from_slice(RESULTS_PREFIX);
        Results {
            json,
            events: 0,
            accepted: 0,
            refused: 0,
            too_large: 0,
            denied: Vec::new(),
            denied_count: 0,
        }
    }

    fn push(&mut self, result: &Value) {
        if self.events > 0 {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, result).expect("a result serializes");
        self.events += 1;
    }

    /// Commits one slice (its refusals go through the ledger too, which counts every event)
    /// and adds every result of the slice, in order, once they are durable. `first` is the
    /// index of the slice's first event in the body.
    async fn commit(&mut self, ctx: &Ctx, work: Work, first: usize) -> Result<(), ApiError> {
        // Once a slice is in the log (it has results), a later one waits for room in the queue
        // rather than being refused.
        let results = ctx.state.ingest_with(work, self.events > 0).await?;
        for (i, r) in results.iter().enumerate() {
            match r {
                IngestResult::Rejected(refusal) => {
                    metrics::counter!("sealog_input_refused_total", "code" => refusal.code)
                        .increment(1);
                    self.refused += 1;
                    if refusal.code == "TOO_LARGE" {
                        self.too_large += 1;
                    }
                    if refusal.denied {
                        self.denied_count += 1;
                        if self.denied.len() < DENIED_LISTED_MAX {
                            self.denied.push(first + i);
                        }
                    }
                }
                _ => self.accepted += 1,
            }
            self.push(&r.to_json());
        }
        Ok(())
    }
}

/// A JSON response whose body keeps its share of the memory budget until it is sent.
fn held_json(status: StatusCode, mut json: Vec<u8>, mut reservation: Reservation) -> Response {
    json.shrink_to_fit();
    let len = json.len();
    reservation.shrink_to(len);
    let body = Full::new(Bytes::from(json)).map_frame(move |frame| {
        // Owned by the body: given back when hyper drops it, once sent or abandoned.
        let _held = reservation.bytes();
        frame
    });
    let mut resp = (status, Body::new(body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The mapped body does not tell its length; the header does (no chunked encoding).
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// The structured event of a binary-mode request. Header values are percent-decoded first,
/// as the CloudEvents HTTP binding has them encoded.
fn structured_of_binary(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let refused = |m: String| ApiError::bad_request("INVALID_ENVELOPE", m);
    let mut decoded = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        let is_attribute = name.len() > 3 && name[..3].eq_ignore_ascii_case("ce-");
        if !(is_attribute || name == "content-type") {
            continue;
        }
        let text = value
            .to_str()
            .map_err(|_| refused(format!("header {name}: not visible ASCII")))?;
        let text = if is_attribute {
            crate::percent::decode(text, false)
                .map_err(|_| refused(format!("header {name}: not percent-encoded UTF-8")))?
        } else {
            text.to_string()
        };
        decoded.push((name, text));
    }
    sealog_model::cloudevents::structured_from_binary(
        decoded.iter().map(|(k, v)| (*k, v.as_str())),
        body,
    )
    .map_err(|e| refused(e.0))
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

/// Reads the whole body within the size and time limits, and within the memory budget:
/// the returned reservation holds the body's bytes until dropped. A body the budget has no
/// room for is not buffered: it is read and thrown away (so the client, which is still
/// sending it, gets the answer rather than a reset connection) and answered 503.
pub(crate) async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<(Vec<u8>, Reservation), ApiError> {
    let limits = &state.limits;
    // A body larger than the whole budget could never be read: it is too large, not early.
    let max = limits.body_bytes_max.min(state.budget.cap());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!("the body is over the limit of {max} bytes; split it into several requests"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    let timed_out = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "the body did not arrive within {} s",
                limits.body_timeout.as_secs_f64()
            ),
        )
    };
    let mut reservation = state.budget.empty();
    let declared = declared.map_or(0, |n| n as usize);
    if !reservation.grow(declared) {
        return Err(refuse_unread(body, headers, max, deadline, state).await);
    }
    let mut out = Vec::with_capacity(declared);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => break,
            Ok(Some(frame)) => frame.map_err(|e| {
                ApiError::bad_request("BAD_BODY", format!("the body could not be read: {e}"))
            })?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = out.len() + data.len();
        if len > max {
            return Err(too_large());
        }
        if len > out.capacity() {
            // Without a Content-Length (or past it): grow by doubling, reserving first.
            let cap = len.max(out.capacity() * 2).min(max);
            if !reservation.grow(cap.saturating_sub(reservation.bytes())) {
                drop((out, reservation));
                return Err(refuse_unread(body, headers, max, deadline, state).await);
            }
            out.reserve_exact(cap - out.len());
        }
        out.extend_from_slice(&data);
    }
    Ok((out, reservation))
}

/// The 503 for a body the budget has no room for, once the rest of it has been read and
/// thrown away (at most `max` bytes, until `deadline`) — unless the client waits for a
/// `100 Continue` before sending it, in which case it is not asked for.
async fn refuse_unread(
    mut body: Body,
    headers: &HeaderMap,
    max: usize,
    deadline: tokio::time::Instant,
    state: &AppState,
) -> ApiError {
    if !headers.contains_key(header::EXPECT) {
        let mut seen = 0usize;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > max {
                break;
            }
        }
    }
    busy(state.budget.cap())
}

/// Backpressure from the memory budget.
fn busy(cap: usize) -> ApiError {
    metrics::counter!("sealog_buffer_refused_total").increment(1);
    ApiError::unavailable(
        "BUSY",
        format!(
            "the server already holds its limit of {cap} bytes of request bodies; retry after the indicated delay"
        ),
        1,
    )
}

/// An upper bound of the events [`input::split`] finds in `body`, found without allocating:
/// the items of a top-level array, or else the lines that are not blank.
fn count_events(body: &[u8]) -> usize {
    let body = body.trim_ascii();
    if body.first() != Some(&b'[') {
        return input::lines(body)
            .filter(|l| !l.trim_ascii().is_empty())
            .count()
            .max(1);
    }
    let (mut depth, mut in_string, mut escaped, mut commas) = (0usize, false, false, 0usize);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => commas += 1,
            _ => {}
        }
    }
    commas + 1
}

/// Reserves each event's share of the budget, then splits the body into its events' ranges.
/// A body whose events could never fit the budget is too large; one that does not fit now
/// waits its turn (503).
fn split_within(
    body: &[u8],
    mut reservation: Reservation,
) -> Result<(Reservation, Vec<RawRange>), ApiError> {
    let events = count_events(body);
    let share = events.saturating_mul(EVENT_OVERHEAD_BYTES);
    let cap = reservation.cap();
    if body.len().saturating_add(share) > cap {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!(
                "the body holds up to {events} events; with {EVENT_OVERHEAD_BYTES} bytes for \
                 each one's result that is more than the {cap} bytes the server holds for \
                 requests at once; split it into several requests"
            ),
        ));
    }
    if !reservation.grow(share) {
        return Err(busy(cap));
    }
    let base = body.as_ptr() as usize;
    let raws = input::split(body).map_err(|e| {
        let status = match e {
            InputError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        metrics::counter!("sealog_input_refused_total", "code" => e.code()).increment(1);
        ApiError::new(status, e.code(), format!("the body holds no events: {e}"))
    })?;
    let ranges = raws
        .into_iter()
        .map(|raw| {
            raw.map(|event| {
                // Each event is a part of the body: its place, to find it again.
                let at = event.as_ptr() as usize - base;
                at..at + event.len()
            })
        })
        .collect();
    Ok((reservation, ranges))
}

/// Prepares one slice of the body's events through the ledger, as a producer limited to the
/// key's tenant; input that is not an event, and events the key may not write, are refused
/// there and never reach the log.
fn prepare_slice(
    ledger: &Ledger,
    body: &[u8],
    raws: &[RawRange],
    principal: &Principal,
) -> Vec<Prepared> {
    let author = Author::Producer {
        tenant: principal.tenant.as_deref(),
    };
    raws.iter()
        .map(|raw| match raw {
            Ok(range) => ledger.prepare(&body[range.clone()], &author),
            Err(e) => Prepared::Rejected(PrepareError::Input(e.clone()).into()),
        })
        .collect()
}
