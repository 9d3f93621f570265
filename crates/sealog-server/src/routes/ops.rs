//! Liveness, readiness, metrics and the API description.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Action;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::openapi::{Health, Ready};
use crate::state::AppState;

type Shared = State<std::sync::Arc<AppState>>;

#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The process is up", body = Health)))]
pub(crate) async fn healthz() -> Response {
    axum::Json(Health {
        status: "ok".into(),
    })
    .into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "Ready to serve", body = Ready),
              (status = 503, description = "Not ready: shutting down or the store failed", body = Ready)))]
pub(crate) async fn readyz(State(state): Shared) -> Response {
    let mut reasons = Vec::new();
    if state.is_shutting_down() {
        reasons.push("shutting down".to_string());
    }
    if let Some(f) = state.store_failure() {
        reasons.push(format!("the store refuses writes: {f}"));
    }
    let bus = state
        .bus
        .as_ref()
        .map(|b| b.lock().expect("bus status").clone());
    let open = state.keys.open_mode();
    let body = Ready {
        status: if reasons.is_empty() { "ready" } else { "not_ready" }.into(),
        auth: if open { "open" } else { "keys" }.into(),
        warning: open.then(|| {
            "OPEN MODE: no API key exists, every request is served as admin; create one with `sealog keys create`".to_string()
        }),
        uptime_s: state.started.elapsed().as_secs(),
        reasons,
        witnessing: state.witnessing(),
        nats: bus.and_then(|b| serde_json::to_value(b).ok()),
    };
    let status = if body.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4"),
              (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn metrics(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.authorize(Action::Metrics, &json!({})).await?;
    Ok(render_metrics(&ctx.state))
}

/// `/metrics` without authentication, for `--public-metrics`.
pub(crate) async fn metrics_public(State(state): Shared) -> Response {
    render_metrics(&state)
}

fn render_metrics(state: &AppState) -> Response {
    crate::metrics::refresh_gauges(state);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This API's OpenAPI 3.1 description", body = Object)))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}
