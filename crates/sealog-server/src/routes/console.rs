//! The console (PRODUCT §12): its page and assets, embedded in the binary and served at `/`
//! with a strict content security policy (nothing from anywhere but this server), and the
//! session routes that turn an API key into a cookie.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use crate::access::Access;
use crate::auth::Action;
use crate::context::{Ctx, RequestId};
use crate::error::ApiError;
use crate::state::AppState;

/// The console's files: (name, content type, bytes).
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/verify.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../console/style.css"),
    ),
];
const INDEX: &str = include_str!("../../console/index.html");

/// Scripts, styles, images and requests from this origin only; no frames, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary: revalidate rather than cache a stale console.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

pub(crate) async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => page(ty, body),
        None => ApiError::not_found("no such console file").into_response(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// The API key, as `sealog keys create` printed it.
    key: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SessionBody {
    /// Who the session acts as.
    #[schema(value_type = Object)]
    principal: serde_json::Value,
    /// Echo it in `X-CSRF-Token` on every state-changing request made with the cookie
    /// (empty in open mode, where there is no session).
    csrf_token: String,
    /// Seconds until the session ends (it also ends after 30 minutes unused).
    expires_in: u64,
    open_mode: bool,
    /// Every axis a records query may name (the envelope's and the packs').
    axes: Vec<String>,
    /// The reason codes a quarantine query may name.
    reasons: Vec<&'static str>,
}

impl SessionBody {
    fn new(state: &AppState, principal: &crate::auth::Principal) -> Self {
        SessionBody {
            principal: principal.to_json(),
            csrf_token: String::new(),
            expires_in: 0,
            open_mode: state.keys.open_mode(),
            axes: state.ledger.axis_names().to_vec(),
            reasons: sealog_ledger::ReasonCode::ALL
                .iter()
                .map(|c| c.as_str())
                .collect(),
        }
    }
}

#[utoipa::path(
    post, path = "/v1/session", tag = "console", request_body = SignIn,
    responses(
        (status = 200, description = "Signed in: the `sealog_session` cookie (HttpOnly, SameSite=Strict, Secure under TLS) is set", body = SessionBody),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 415, description = "The body must be `application/json`", body = crate::openapi::ErrorBody),
        (status = 503, description = "Too many sessions are open", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request_id: Option<axum::Extension<RequestId>>,
    peer: Option<axum::Extension<crate::access::Peer>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (request_id, trace) =
        request_id.map_or_else(|| (String::new(), None), |r| (r.0.0.clone(), r.0.1.clone()));
    let peer = peer.map(|p| p.0.0);
    // A form of another site cannot send this content type without the browser asking first.
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "sign in with a JSON body: {\"key\": \"…\"}",
        ));
    }
    let SignIn { key } = crate::routes::small_json::object(&body)
        .map_err(|r| r.answer("BAD_BODY", "sign in with {\"key\": \"…\"}: "))?;
    let bearer = format!("Bearer {key}");
    let principal = match state.keys.authenticate(Some(bearer.as_bytes())) {
        Ok(p) => p,
        Err(f) => {
            let access = Access::denied(
                Action::SessionStart.name().into(),
                "/v1/session",
                401,
                f.message,
            );
            state
                .record_access(
                    None,
                    (f.key_id.as_deref(), peer),
                    (&request_id, trace.as_ref()),
                    access,
                )
                .await?;
            return Err(ApiError::unauthorized(f.message));
        }
    };
    let access = Access::of(
        Action::SessionStart,
        json!({"path": "/v1/session"}),
        Ok(None),
    );
    state
        .record_access(
            Some(&principal),
            (None, peer),
            (&request_id, trace.as_ref()),
            access,
        )
        .await?;
    let mut body = SessionBody::new(&state, &principal);
    if body.open_mode {
        return Ok(Json(body).into_response());
    }
    let Some((token, session)) = state.sessions.start(&principal.key_id) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_SESSIONS",
            "too many console sessions are open; try again later",
        ));
    };
    body.csrf_token = session.csrf.clone();
    body.expires_in = session.remaining();
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&state.sessions.cookie(&token)).map_err(ApiError::internal)?,
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[utoipa::path(
    get, path = "/v1/session", tag = "console",
    responses(
        (status = 200, description = "The session's principal and CSRF token (or the bearer key's principal)", body = SessionBody),
        (status = 401, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn current(ctx: Ctx, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = crate::sessions::token_of(&headers).and_then(|t| ctx.state.sessions.get(&t));
    let body = SessionBody {
        csrf_token: session.as_ref().map(|s| s.csrf.clone()).unwrap_or_default(),
        expires_in: session
            .as_ref()
            .map_or(0, crate::sessions::Session::remaining),
        ..SessionBody::new(&ctx.state, &ctx.principal)
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[utoipa::path(
    delete, path = "/v1/session", tag = "console",
    responses(
        (status = 204, description = "Signed out: the session ended and its cookie is cleared"),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "`CSRF`: the request did not carry the session's CSRF token", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn sign_out(ctx: Ctx, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = crate::sessions::token_of(&headers) {
        ctx.state.sessions.end(&token);
    }
    ctx.record(Access::of(
        Action::SessionEnd,
        json!({"path": "/v1/session"}),
        Ok(None),
    ))
    .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&ctx.state.sessions.cleared()).map_err(ApiError::internal)?,
    );
    Ok(resp)
}
