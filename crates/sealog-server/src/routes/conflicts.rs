//! Consistency checks over HTTP (PRODUCT §11): `GET /v1/conflicts` lists what the checks
//! found, `POST /v1/conflicts/{id}/resolve` settles one by appending a resolution record
//! (auditors and admins; a tenant-scoped key within its tenant), and `POST /v1/checks` runs
//! the checks now (an unscoped admin).

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sealog_check::{Criticality, Filter, Resolution, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::checks::{RunRequest, run_now, to_api};
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::formats::{ConflictStatus, CriticalityName};
use crate::params::Params;
use crate::routes::records::echoed;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ConflictList {
    /// Oldest first: each with its status (`open`, `escalated`, `resolved`) and its
    /// resolution records.
    #[schema(value_type = Vec<Object>)]
    conflicts: Vec<Value>,
}

fn param<T>(
    p: &Params,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ApiError> {
    p.get(name)
        .map(|v| parse(v).map_err(|m| ApiError::bad_request("BAD_PARAMETER", m)))
        .transpose()
}

#[utoipa::path(
    get, path = "/v1/conflicts", operation_id = "list_conflicts", tag = "checks",
    params(
        ("status" = inline(Option<ConflictStatus>), Query),
        ("rule" = inline(Option<crate::formats::Filter>), Query, description = "only this rule's conflicts"),
        ("criticality" = inline(Option<CriticalityName>), Query, description = "only conflicts at or above this criticality"),
    ),
    responses(
        (status = 200, description = "The conflicts", body = ConflictList),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let parsed = Params::parse(raw.as_deref(), &["status", "rule", "criticality"]);
    let resource = match &parsed {
        Ok(p) => json!({"filter": echoed(&ctx.state.ledger, p)}),
        Err(_) => json!({"query": unparsed_query(&ctx.state.ledger, raw.as_deref())}),
    };
    ctx.authorize(Action::ConflictsList, &resource).await?;
    let result = async {
        let p = parsed?;
        let status = param(&p, "status", Status::parse)?;
        let at_least = param(&p, "criticality", Criticality::parse)?;
        let rule = p.get("rule").map(str::to_string);
        if let Some(rule) = &rule {
            crate::formats::FILTER.check("rule", rule)?;
        }
        let ledger = ctx.state.ledger.clone();
        let tenant = ctx.principal.tenant.clone();
        blocking(move || {
            let filter = Filter {
                status,
                tenant: tenant.as_deref(),
                rule: rule.as_deref(),
                at_least,
            };
            let kept = sealog_check::conflicts(&ledger, &filter).map_err(to_api)?;
            Ok(kept.iter().map(|c| c.to_json()).collect::<Vec<_>>())
        })
        .await
    }
    .await;
    let conflicts = ctx
        .recorded(Action::ConflictsList, resource, result, |c| Some(c.len()))
        .await?;
    Ok(axum::Json(ConflictList { conflicts }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveRequest {
    /// authority_wins, recency_wins, human_wins (the winner by that criterion of seed 003
    /// §5.3 alone; refused when it does not decide), escalate or dismissed.
    #[schema(pattern = "^(authority_wins|recency_wins|human_wins|escalate|dismissed)$")]
    resolution: String,
    /// Why: kept in the resolution record.
    #[schema(schema_with = crate::formats::nonblank)]
    reason: String,
}

#[utoipa::path(
    post, path = "/v1/conflicts/{id}/resolve", tag = "checks", request_body = ResolveRequest,
    params(("id" = String, Path, description = "the conflict id (`cf-…`)")),
    responses(
        (status = 201, description = "The `sealog.conflict_resolved` record, durable", body = Object),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "No such conflict within this key's reach", body = crate::openapi::ErrorBody),
        (status = 408, body = crate::openapi::ErrorBody),
        (status = 409, description = "The conflict is already resolved (`ALREADY_RESOLVED`)", body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, description = "The resolution's criterion does not decide, or the rule declares none (`CHECK_REFUSED`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resolve(
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let resource = json!({"conflict_id": crate::access::clip(&id)});
    ctx.authorize(Action::ConflictsResolve, &resource).await?;
    let result = resolve_conflict(&ctx, id, headers, body).await;
    ctx.refusal_recorded(Action::ConflictsResolve, resource, result)
        .await
}

async fn resolve_conflict(
    ctx: &Ctx,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: ResolveRequest =
        crate::routes::small_json::read(ctx, &headers, body, "resolution").await?;
    let resolution = Resolution::parse(&req.resolution)
        .map_err(|m| ApiError::bad_request("BAD_PARAMETER", m))?;
    crate::formats::NONBLANK.check("reason", &req.reason)?;
    let ledger = ctx.state.ledger.clone();
    let act = crate::access::act_of(&ctx.principal);
    let tenant = ctx.principal.tenant.clone();
    let record = blocking(move || {
        sealog_check::resolve(
            &ledger,
            &id,
            (resolution, &req.reason),
            &act,
            tenant.as_deref(),
        )
        .map_err(to_api)
    })
    .await?;
    crate::checks::refresh_open(&ctx.state).await;
    Ok((StatusCode::CREATED, axum::Json(record)).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChecksRequest {
    /// Only these rules (a partial run: the next scheduled run still starts where the last
    /// complete one ended).
    #[serde(default)]
    #[schema(schema_with = crate::formats::rule_names)]
    rules: Vec<String>,
    /// Only findings about this subject (or key id, for the access rules).
    #[serde(default)]
    subject: Option<String>,
    /// From the start of the log.
    #[serde(default)]
    full: bool,
}

#[utoipa::path(
    post, path = "/v1/checks", tag = "checks", request_body = ChecksRequest,
    responses(
        (status = 200, description = "The run's summary and its findings (each with `new`: recorded by this run)", body = Object),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 408, body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown rule (`CHECK_REFUSED`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn run_checks(
    ctx: Ctx,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.authorize(Action::ChecksRun, &json!({})).await?;
    let result = run_asked(&ctx, headers, body).await;
    ctx.refusal_recorded(Action::ChecksRun, json!({}), result)
        .await
}

async fn run_asked(ctx: &Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let req: ChecksRequest = crate::routes::small_json::read(ctx, &headers, body, "check").await?;
    let act = crate::access::act_of(&ctx.principal);
    let report = run_now(
        &ctx.state,
        RunRequest {
            rules: req.rules,
            subject: req.subject,
            full: req.full,
        },
        act,
    )
    .await?;
    let mut out = report.summary();
    out["findings"] = Value::Array(report.findings.iter().map(|f| f.to_json()).collect());
    Ok(axum::Json(out).into_response())
}
