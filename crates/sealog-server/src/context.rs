//! Per-request plumbing: request ids, the tracing span, metrics, authentication, and the
//! rule that every error body is `{"error":{"code","message"}}` whoever produced it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument;

use crate::access::{Access, clip};
use crate::auth::{Action, Principal};
use crate::error::{ApiError, code_for_status};
use crate::state::AppState;

/// The id of one request (in the `x-request-id` response header, the logs and access
/// records), and the W3C trace context it came with, if any.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String, pub Option<Trace>);

/// A W3C Trace Context `traceparent` (version 00 and later): the caller's trace and span, so
/// an access record can be found from the trace a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trace {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: String,
}

impl Trace {
    /// The header's trace context, or `None` when it is not a valid one (the W3C rule: an
    /// invalid `traceparent` is ignored, never an error).
    pub(crate) fn parse(header: &[u8]) -> Option<Trace> {
        let text = std::str::from_utf8(header).ok()?.trim();
        let mut parts = text.split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        // Version 00 has exactly four fields; a later version may add more after them.
        let valid = hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && hex(trace_id, 32)
            && !zero(trace_id)
            && hex(parent_id, 16)
            && !zero(parent_id)
            && hex(flags, 2);
        valid.then(|| Trace {
            trace_id: trace_id.to_string(),
            parent_id: parent_id.to_string(),
            flags: flags.to_string(),
        })
    }

    pub(crate) fn of(headers: &axum::http::HeaderMap) -> Option<Trace> {
        headers
            .get("traceparent")
            .and_then(|v| Trace::parse(v.as_bytes()))
    }
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 6];
        let _ = getrandom::fill(&mut b);
        hex::encode(b)
    });
    format!(
        "{prefix}-{:08x}",
        NEXT_REQUEST.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bounded label for metrics and logs: the route, never the raw path.
pub(crate) fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/events" => "/v1/events",
        "/v1/records" => "/v1/records",
        "/v1/quarantine" => "/v1/quarantine",
        "/v1/proofs/inclusion" => "/v1/proofs/inclusion",
        "/v1/proofs/consistency" => "/v1/proofs/consistency",
        "/v1/keys" => "/v1/keys",
        "/checkpoint" => "/checkpoint",
        "/metrics" => "/metrics",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/openapi.json" => "/openapi.json",
        "/" => "/",
        "/v1/session" => "/v1/session",
        "/v1/integrity" => "/v1/integrity",
        "/v1/verify" => "/v1/verify",
        "/v1/dashboard" => "/v1/dashboard",
        p if p.starts_with("/console/") => "/console/{name}",
        p if p.starts_with("/v1/reports/") => "/v1/reports/{name}",
        p if p.starts_with("/v1/subjects/") && p.ends_with("/timeline") => {
            "/v1/subjects/{subject}/timeline"
        }
        "/v1/exports" => "/v1/exports",
        p if p.starts_with("/v1/exports/") => "/v1/exports/{id}",
        p if p.starts_with("/v1/records/") => "/v1/records/{id}",
        p if p.starts_with("/v1/keys/") => "/v1/keys/{id}",
        p if p.starts_with("/v1/quarantine/payloads/") => "/v1/quarantine/payloads/{payload_ref}",
        p if p.starts_with("/v1/subjects/") => "/v1/subjects/{subject}/state",
        p if p.starts_with("/tile/entries/") => "/tile/entries/{n}",
        p if p.starts_with("/tile/") => "/tile/{l}/{n}",
        _ => "other",
    }
}

/// The bytes of a request's head as sent: its line and each header line.
fn head_len(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 11;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}

/// Outermost middleware: assigns the request id, opens the span, records the metrics, and
/// rewrites any error response that is not already our JSON shape.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let id = new_request_id();
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    let trace = Trace::of(req.headers());
    let trace_id = trace.as_ref().map(|t| t.trace_id.clone());
    req.extensions_mut().insert(RequestId(id.clone(), trace));
    // Debug level: at the default `info` a span per request would cost more than routing it.
    // Field names follow OpenTelemetry's semantic conventions.
    let span = tracing::debug_span!(
        "request",
        request_id = %id,
        "http.request.method" = %method,
        "http.route" = route,
        trace_id = trace_id.as_deref(),
    );
    let started = Instant::now();
    let resp = if head_len(&req) > crate::server::HEADER_BYTES_MAX {
        ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            format!(
                "the request's line and headers are over {} KiB",
                crate::server::HEADER_BYTES_MAX >> 10
            ),
        )
        .into_response()
    } else {
        next.run(req).instrument(span.clone()).await
    };
    let resp = normalize_error(resp).await;
    let status = resp.status();
    let secs = started.elapsed().as_secs_f64();
    metrics::counter!("sealog_http_requests_total", "route" => route, "status" => status_label(status.as_u16()))
        .increment(1);
    metrics::histogram!("sealog_http_request_seconds", "route" => route).record(secs);
    if status.is_server_error() {
        tracing::warn!(
            request_id = %id,
            "http.route" = route,
            "http.response.status_code" = status.as_u16(),
            trace_id = trace_id.as_deref(),
            seconds = secs,
            "request failed"
        );
    } else {
        span.in_scope(|| {
            tracing::debug!(
                "http.response.status_code" = status.as_u16(),
                seconds = secs,
                "request"
            )
        });
    }
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The common statuses as static labels, so the hot path allocates nothing for them.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        200 => "200".into(),
        201 => "201".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        422 => "422".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

async fn normalize_error(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        clip(&text)
    };
    let mut out = ApiError::new(status, code_for_status(status), message).into_response();
    for (name, value) in parts.headers.iter() {
        if name == header::ALLOW || name == header::RETRY_AFTER {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// An authenticated request: handlers that take it run only for a known principal, and
/// every refusal on the way is recorded.
pub(crate) struct Ctx {
    pub state: Arc<AppState>,
    pub principal: Principal,
    pub request_id: String,
    pub trace: Option<Trace>,
    /// The client's address, when the request came over a connection.
    pub peer: Option<std::net::IpAddr>,
    /// Holds one of the key's in-flight slots until the request ends.
    _slot: Slot,
}

/// One of a key's in-flight request slots, given back when dropped.
struct Slot(Arc<AtomicU64>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes an in-flight slot for the key, or refuses with 429 when it has none left, so one
/// busy client cannot take every connection's worth of work from the others.
fn take_slot(state: &AppState, key_id: &str) -> Result<Slot, ApiError> {
    let counter = {
        let mut map = state.inflight.lock().expect("in-flight lock");
        map.entry(key_id.to_string()).or_default().clone()
    };
    if counter.fetch_add(1, Ordering::AcqRel) >= state.key_inflight_max as u64 {
        counter.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("sealog_throttled_total").increment(1);
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!(
                "this key already has {} requests in flight; retry after the indicated delay",
                state.key_inflight_max
            ),
        )
        .retry_after(1));
    }
    Ok(Slot(counter))
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let (request_id, trace) = parts
            .extensions
            .get::<RequestId>()
            .map_or_else(|| (new_request_id(), None), |r| (r.0.clone(), r.1.clone()));
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let peer = parts.extensions.get::<crate::access::Peer>().map(|p| p.0);
        // A bearer key wins; without one, the console's session cookie is the credential.
        let session = match header {
            None if !state.keys.open_mode() => crate::sessions::token_of(&parts.headers),
            _ => None,
        };
        let authenticated = match &session {
            Some(token) => match state.sessions.get(token) {
                Some(s) => {
                    let p = state.keys.principal_of_id(&s.key_id);
                    if p.is_ok() && !parts.method.is_safe() {
                        check_csrf(parts, state, &s, peer, (&request_id, trace.as_ref())).await?;
                    }
                    p
                }
                None => Err(crate::auth::AuthFailure {
                    message: "the session has ended; sign in again",
                    key_id: None,
                }),
            },
            None => state.keys.authenticate(header),
        };
        // A key change seen by this request is in the log before the request is served.
        if state.keys.generation() != state.keys_recorded_generation.load(Ordering::Acquire) {
            state.record_key_changes().await?;
        }
        match authenticated {
            Ok(principal) => Ok(Ctx {
                _slot: take_slot(state, &principal.key_id)?,
                state: state.clone(),
                principal,
                request_id,
                trace,
                peer,
            }),
            Err(f) => {
                metrics::counter!("sealog_auth_failures_total").increment(1);
                let err = ApiError::unauthorized(f.message);
                let access = Access::denied(route_action(parts), parts.uri.path(), 401, f.message);
                state
                    .record_access(
                        None,
                        (f.key_id.as_deref(), peer),
                        (&request_id, trace.as_ref()),
                        access,
                    )
                    .await?;
                Err(err)
            }
        }
    }
}

/// A request refused before its route ran is named by its method and route.
fn route_action(parts: &Parts) -> String {
    format!("{} {}", parts.method, route_label(parts.uri.path()))
}

/// Refuses (and records) a state-changing request made with the session cookie that does not
/// echo the session's CSRF token: a page of another site can make the browser send the
/// cookie, but cannot read the token.
async fn check_csrf(
    parts: &Parts,
    state: &Arc<AppState>,
    session: &crate::sessions::Session,
    peer: Option<std::net::IpAddr>,
    request: (&str, Option<&Trace>),
) -> Result<(), ApiError> {
    let sent = parts
        .headers
        .get(crate::sessions::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    if sent.is_some_and(|t| crate::sessions::same(t, &session.csrf)) {
        return Ok(());
    }
    let message =
        "a request made with the console's session must carry its CSRF token in X-CSRF-Token";
    let access = Access::denied(route_action(parts), parts.uri.path(), 403, message);
    state
        .record_access(None, (Some(&session.key_id), peer), request, access)
        .await?;
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "CSRF",
        message,
    ))
}

impl Ctx {
    /// Refuses (and records) an action the principal's roles do not allow.
    pub(crate) async fn authorize(&self, action: Action, resource: &Value) -> Result<(), ApiError> {
        if self.principal.may(action) {
            return Ok(());
        }
        let err = ApiError::forbidden(if self.principal.roles_allow(action) {
            format!(
                "a tenant-scoped key may not {}: it shows every tenant's data or volume",
                action.name()
            )
        } else {
            format!("this key's roles do not allow {}", action.name())
        });
        self.record(Access::of(action, resource.clone(), Err(&err)))
            .await?;
        Err(err)
    }

    pub(crate) async fn record(&self, access: Access) -> Result<(), ApiError> {
        self.state
            .record_access(
                Some(&self.principal),
                (None, self.peer),
                (&self.request_id, self.trace.as_ref()),
                access,
            )
            .await
    }

    /// Records a read's outcome, then passes the result on; a read whose access record
    /// cannot be written is not served.
    pub(crate) async fn recorded<T>(
        &self,
        action: Action,
        resource: Value,
        result: Result<T, ApiError>,
        count: impl Fn(&T) -> Option<usize>,
    ) -> Result<T, ApiError> {
        let access = Access::of(action, resource, result.as_ref().map(&count));
        self.record(access).await?;
        result
    }

    /// Passes on the result of a change whose success is a record of its own (a hold, a
    /// key, a resolution, a retention run), recording it first if it was refused: every
    /// refused attempt is an access record (PRODUCT §9), whatever step refused it.
    pub(crate) async fn refusal_recorded<T>(
        &self,
        action: Action,
        resource: Value,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(err) = &result {
            self.record(Access::of(action, resource, Err(err))).await?;
        }
        result
    }
}

/// Runs a blocking store call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// A response with a raw JSON body we built ourselves.
pub(crate) fn json_bytes(status: axum::http::StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::Trace;

    #[test]
    fn traceparent_is_taken_only_when_valid() {
        let ok = Trace::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(ok.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            (ok.parent_id.as_str(), ok.flags.as_str()),
            ("00f067aa0ba902b7", "01")
        );
        // A later version may carry more fields after the four it shares with 00.
        assert!(
            Trace::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some()
        );
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"[..],
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(Trace::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
