//! Legal holds over HTTP (PRODUCT §8): `POST /v1/holds` places one on a tenant or a data
//! subject, `POST /v1/holds/release` releases it, `GET /v1/holds` lists them. Placing and
//! releasing are an admin's (a tenant admin's within its own tenant); listing is an auditor's
//! too. Holds are records; what is answered is read back from the log.

use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sealog_ledger::{Hold, HoldAct, HoldError, HoldScope};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::formats::{Flag, NONBLANK};
use crate::params::Params;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldRequest {
    /// The tenant the hold covers (a whole tenant, or the data subject within it).
    #[serde(default)]
    tenant: Option<String>,
    /// The data subject the hold covers, as producers name them, or their pseudonym.
    #[serde(default)]
    data_subject: Option<String>,
    /// For a release: the hold to release (else every hold in force on exactly this scope).
    #[serde(default)]
    hold_id: Option<String>,
    /// Why: the matter, the order.
    #[schema(min_length = 1)]
    reason: String,
}

impl HoldRequest {
    fn scope(&self) -> HoldScope<'_> {
        HoldScope {
            tenant: self.tenant.as_deref(),
            data_subject: self.data_subject.as_deref(),
        }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct HoldList {
    #[schema(value_type = Vec<Object>)]
    holds: Vec<Hold>,
}

/// The request, checked; `asked` becomes what it names (the data subject by pseudonym) once
/// that is known, for the record of a refusal.
async fn read(
    ctx: &Ctx,
    headers: &HeaderMap,
    body: Body,
    asked: &mut Value,
) -> Result<HoldRequest, ApiError> {
    let mut req: HoldRequest = crate::routes::small_json::read(ctx, headers, body, "hold").await?;
    *asked = json!({
        "tenant": req.tenant.as_deref().map(crate::access::clip),
        "data_subject_pseudonym": req.data_subject.as_deref().map(|d| ctx.state.ledger.pseudonym(d)),
        "hold_id": req.hold_id.as_deref().map(crate::access::clip),
    });
    NONBLANK.check("reason", &req.reason)?;
    for (name, value) in [("tenant", &req.tenant), ("data_subject", &req.data_subject)] {
        if value
            .as_deref()
            .is_some_and(|v| !sealog_model::limits::attribute_fits(v))
        {
            return Err(ApiError::bad_request(
                "BAD_PARAMETER",
                format!(
                    "{name} must be 1 to {} characters",
                    sealog_model::limits::ATTRIBUTE_CHARS_MAX
                ),
            ));
        }
    }
    // A tenant admin holds only within its own tenant.
    match (&ctx.principal.tenant, &req.tenant) {
        (Some(own), Some(t)) if own != t => {
            return Err(ApiError::forbidden(
                "a tenant admin places and releases holds only within its own tenant",
            ));
        }
        (Some(own), None) => req.tenant = Some(own.clone()),
        _ => {}
    }
    Ok(req)
}

fn hold_error(e: HoldError) -> ApiError {
    match e {
        HoldError::Invalid(m) => ApiError::bad_request("BAD_PARAMETER", m),
        HoldError::NotFound(m) => ApiError::not_found(m),
        HoldError::Store(s) => s.into(),
        // The request was checked before: a refusal here is the audit pack's, of a record
        // the request described.
        refused @ HoldError::Refused(_) => {
            ApiError::unprocessable("HOLD_REFUSED", refused.to_string())
        }
    }
}

#[utoipa::path(
    post, path = "/v1/holds", operation_id = "place_hold", tag = "privacy", request_body = HoldRequest,
    responses(
        (status = 201, description = "The hold, in force until released", body = Object),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 408, body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, description = "The hold's record was refused (`HOLD_REFUSED`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn place(ctx: Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    ctx.authorize(Action::HoldsChange, &json!({})).await?;
    let mut asked = json!({});
    let result = place_asked(&ctx, headers, body, &mut asked).await;
    ctx.refusal_recorded(Action::HoldsChange, asked, result)
        .await
}

async fn place_asked(
    ctx: &Ctx,
    headers: HeaderMap,
    body: Body,
    asked: &mut Value,
) -> Result<Response, ApiError> {
    let req = read(ctx, &headers, body, asked).await?;
    if req.hold_id.is_some() {
        return Err(ApiError::bad_request(
            "BAD_PARAMETER",
            "hold_id names a hold to release: a new hold gets its own",
        ));
    }
    let ledger = ctx.state.ledger.clone();
    let act = crate::access::act_of(&ctx.principal);
    let hold = blocking(move || {
        let scope = req.scope();
        let act = HoldAct {
            reason: &req.reason,
            act,
        };
        ledger.place_hold(&scope, &act).map_err(hold_error)
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(hold)).into_response())
}

#[utoipa::path(
    post, path = "/v1/holds/release", operation_id = "release_holds", tag = "privacy", request_body = HoldRequest,
    responses(
        (status = 200, description = "The holds released", body = HoldList),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "No hold in force matches", body = crate::openapi::ErrorBody),
        (status = 408, body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, description = "The hold's record was refused (`HOLD_REFUSED`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn release(
    ctx: Ctx,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    ctx.authorize(Action::HoldsChange, &json!({})).await?;
    let mut asked = json!({});
    let result = release_asked(&ctx, headers, body, &mut asked).await;
    ctx.refusal_recorded(Action::HoldsChange, asked, result)
        .await
}

async fn release_asked(
    ctx: &Ctx,
    headers: HeaderMap,
    body: Body,
    asked: &mut Value,
) -> Result<Response, ApiError> {
    let req = read(ctx, &headers, body, asked).await?;
    let ledger = ctx.state.ledger.clone();
    let scoped = ctx.principal.tenant.clone();
    let act = crate::access::act_of(&ctx.principal);
    let holds = blocking(move || {
        // A tenant admin releases only its own tenant's holds, by id too.
        if let (Some(own), Some(id)) = (&scoped, &req.hold_id) {
            let theirs = ledger
                .holds(false)?
                .into_iter()
                .any(|h| h.hold_id == *id && h.tenant.as_deref() == Some(own.as_str()));
            if !theirs {
                return Err(ApiError::not_found("no hold in force matches"));
            }
        }
        let scope = req.scope();
        let act = HoldAct {
            reason: &req.reason,
            act,
        };
        ledger
            .release_holds(req.hold_id.as_deref(), &scope, &act)
            .map_err(hold_error)
    })
    .await?;
    Ok((StatusCode::OK, axum::Json(HoldList { holds })).into_response())
}

#[utoipa::path(
    get, path = "/v1/holds", operation_id = "list_holds", tag = "privacy",
    params(("all" = inline(Option<Flag>), Query, description = "`true`: released holds too")),
    responses(
        (status = 200, description = "Holds in force (or all), oldest first", body = HoldList),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let all = Params::parse(raw.as_deref(), &["all"]).and_then(|p| match p.get("all") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "BAD_PARAMETER",
            "all is true or false",
        )),
    });
    let resource = match &all {
        Ok(all) => json!({"all": all}),
        Err(_) => json!({"query": unparsed_query(&ctx.state.ledger, raw.as_deref())}),
    };
    ctx.authorize(Action::HoldsList, &resource).await?;
    let result = match all {
        Ok(all) => {
            let ledger = ctx.state.ledger.clone();
            let scoped = ctx.principal.tenant.clone();
            blocking(move || {
                let mut holds = ledger.holds(all)?;
                if let Some(own) = scoped {
                    holds.retain(|h| h.tenant.as_deref() == Some(own.as_str()));
                }
                Ok::<_, ApiError>(holds)
            })
            .await
        }
        Err(e) => Err(e),
    };
    let holds = ctx
        .recorded(Action::HoldsList, resource, result, |h| Some(h.len()))
        .await?;
    Ok((StatusCode::OK, axum::Json(HoldList { holds })).into_response())
}
