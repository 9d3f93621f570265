//! `POST /v1/erasures`: a data subject erased by destroying their key (PRODUCT §8), admin
//! only; a tenant admin erases within its own tenant. The `audit.legal_erasure` record names
//! the subject by pseudonym and is durable before the key is destroyed.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sealog_ledger::{EraseError, Erasure};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseRequest {
    /// The data subject as producers name them (a customer id), or their pseudonym (`ps:…`).
    #[schema(schema_with = crate::formats::nonblank)]
    data_subject: String,
    /// Only the subject's key in this tenant; every tenant's when absent (a tenant admin's
    /// own tenant).
    #[serde(default)]
    tenant: Option<String>,
    /// Why: kept in the `audit.legal_erasure` record.
    #[schema(schema_with = crate::formats::nonblank)]
    reason: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Erased {
    status: &'static str,
    data_subject_pseudonym: String,
    tenants: Vec<String>,
    /// Records sealed for the subject: they stay, verify, and read as erased.
    records_affected: u64,
    /// The `audit.legal_erasure` record.
    seq: u64,
    record_id: String,
}

#[utoipa::path(
    post, path = "/v1/erasures", tag = "privacy", request_body = EraseRequest,
    responses(
        (status = 201, description = "The subject's key is destroyed; the erasure record is durable", body = Erased),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "No personal data is sealed for this data subject here", body = crate::openapi::ErrorBody),
        (status = 408, body = crate::openapi::ErrorBody),
        (status = 409, description = "The data subject is already erased (`ALREADY_ERASED`), or a legal hold covers them (`LEGAL_HOLD`, naming `hold_id`): nothing changed", body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn erase(ctx: Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    ctx.authorize(Action::Erase, &json!({})).await?;
    let mut asked = json!({});
    let result = erase_asked(&ctx, headers, body, &mut asked).await;
    ctx.refusal_recorded(Action::Erase, asked, result).await
}

/// Erases what the request asks for; `asked` becomes what it names (the data subject by
/// pseudonym) once that is known, for the record of a refusal.
async fn erase_asked(
    ctx: &Ctx,
    headers: HeaderMap,
    body: Body,
    asked: &mut Value,
) -> Result<Response, ApiError> {
    let req: EraseRequest = crate::routes::small_json::read(ctx, &headers, body, "erasure").await?;
    crate::formats::NONBLANK.check("data_subject", &req.data_subject)?;
    let ledger = ctx.state.ledger.clone();
    let pseudonym = ledger.pseudonym(&req.data_subject);
    *asked = json!({"data_subject_pseudonym": pseudonym,
                    "tenant": req.tenant.as_deref().map(crate::access::clip)});
    crate::formats::NONBLANK.check("reason", &req.reason)?;
    let tenant = match (&ctx.principal.tenant, req.tenant) {
        (Some(own), Some(t)) if *own != t => {
            return Err(ApiError::forbidden(
                "a tenant admin erases only within its own tenant",
            ));
        }
        (Some(own), _) => Some(own.clone()),
        (None, t) => t,
    };
    asked["tenant"] = json!(tenant);
    let act = crate::access::act_of(&ctx.principal);
    let scoped = ctx.principal.tenant.clone();
    let reason = req.reason;
    let done = blocking(move || {
        let erasure = Erasure {
            data_subject: &pseudonym,
            tenant: tenant.as_deref(),
            reason: &reason,
            act,
        };
        ledger.erase(&erasure).map_err(|e| match e {
            EraseError::Unknown(_) => ApiError::not_found(e.to_string()),
            EraseError::AlreadyErased(_) => {
                ApiError::new(StatusCode::CONFLICT, "ALREADY_ERASED", e.to_string())
            }
            // A hold placed outside a tenant key's tenant is named to it by neither its id
            // nor its reason: its holds list does not show it, and the refusal is recorded
            // where every reader of the tenant reads it.
            EraseError::Held(ref h)
                if scoped.is_some() && h.tenant.as_deref() != scoped.as_deref() =>
            {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "LEGAL_HOLD",
                    "a legal hold placed outside this key's tenant covers this data subject: nothing was erased until it is released",
                )
            }
            EraseError::Held(ref h) => {
                let id = h.hold_id.clone();
                ApiError::new(StatusCode::CONFLICT, "LEGAL_HOLD", e.to_string())
                    .with("hold_id", json!(id))
            }
            EraseError::Store(s) => s.into(),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERASURE_FAILED",
                other.to_string(),
            ),
        })
    })
    .await?;
    let body = Erased {
        status: "erased",
        data_subject_pseudonym: done.pseudonym,
        tenants: done.tenants,
        records_affected: done.records,
        seq: done.seq,
        record_id: done.record_id.to_string(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}
