//! Retention over HTTP (PRODUCT §8): `GET /v1/retention` shows what is due, `POST
//! /v1/retention/apply` prunes it (or, `dry_run`, says what it would). An admin's over every
//! tenant: retention crosses tenants, so a tenant-scoped key may not run it. The ledger
//! refuses to apply it at a `now` past its clock (422 `INVALID_ARGUMENT`); the status and a
//! dry run may look ahead.

use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::formats::{DATE_TIME, DateTime};
use crate::params::Params;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyRequest {
    /// The instant retention is measured at (RFC 3339); the server's clock when absent. Applied,
    /// at most five seconds past the server's clock; a dry run may look further ahead.
    #[serde(default)]
    #[schema(schema_with = crate::formats::date_time_or_null)]
    now: Option<String>,
    /// Only say what would be pruned.
    #[serde(default)]
    dry_run: bool,
}

fn now_of(text: Option<&str>) -> Result<i64, ApiError> {
    match text {
        None => Ok(crate::keys::now_nanos()),
        Some(t) => {
            DATE_TIME.check("now", t)?;
            sealog_model::time::parse_rfc3339(t)
                .map_err(|m| ApiError::bad_request("BAD_PARAMETER", format!("now: {m}")))
        }
    }
}

#[utoipa::path(
    get, path = "/v1/retention", operation_id = "retention_status", tag = "privacy",
    params(("now" = inline(Option<DateTime>), Query, description = "Measure at this instant, which may be to come (what would be due then); the server's clock when absent")),
    responses(
        (status = 200, description = "What is due, by log and type, and what holds keep", body = crate::openapi::RetentionReportBody),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn status(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let now = Params::parse(raw.as_deref(), &["now"]).and_then(|p| now_of(p.get("now")));
    let resource = match &now {
        Ok(now) => json!({"now": sealog_model::time::format_micros(*now)}),
        Err(_) => json!({"query": unparsed_query(&ctx.state.ledger, raw.as_deref())}),
    };
    ctx.authorize(Action::RetentionStatus, &resource).await?;
    let result = match now {
        Ok(now) => {
            let ledger = ctx.state.ledger.clone();
            blocking(move || ledger.retention_status(now).map_err(ApiError::from)).await
        }
        Err(e) => Err(e),
    };
    let report = ctx
        .recorded(Action::RetentionStatus, resource, result, |r| {
            Some(r.due.len())
        })
        .await?;
    Ok((StatusCode::OK, axum::Json(report)).into_response())
}

#[utoipa::path(
    post, path = "/v1/retention/apply", tag = "privacy", request_body = ApplyRequest,
    responses(
        (status = 200, description = "Retention applied (or, dry run, what it would prune); the `audit.retention_applied` record is durable and signed", body = crate::openapi::RetentionReportBody),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 408, body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, description = "`INVALID_ARGUMENT`: not a dry run and `now` is more than five seconds past the server's clock, so records would be pruned before their retention ends (or the retention record was refused); nothing was pruned", body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn apply(ctx: Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    ctx.authorize(Action::RetentionApply, &json!({})).await?;
    let result = apply_asked(&ctx, headers, body).await;
    ctx.refusal_recorded(Action::RetentionApply, json!({}), result)
        .await
}

async fn apply_asked(ctx: &Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let req: ApplyRequest =
        crate::routes::small_json::read(ctx, &headers, body, "retention").await?;
    let now = now_of(req.now.as_deref())?;
    let ledger = ctx.state.ledger.clone();
    let act = crate::access::act_of(&ctx.principal);
    let report = blocking(move || {
        ledger
            .apply_retention(now, req.dry_run, &act)
            .map_err(ApiError::from)
    })
    .await?;
    Ok((StatusCode::OK, axum::Json(report)).into_response())
}
