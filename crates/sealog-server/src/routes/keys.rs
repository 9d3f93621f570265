//! `/v1/keys`: key management for admins, the same file `sealog keys` edits. A tenant
//! admin manages only its own tenant's keys. Each change is recorded in the log before the
//! response, as `audit.key_created` / `audit.key_revoked`.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::keys::{self, KeyError, KeyRecord, KeySpec, Role};
use crate::openapi::{KeyCreated, KeyInfo, KeyList};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    roles: Vec<Role>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    data_subject: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::Invalid(m) => ApiError::unprocessable("INVALID_KEY_SPEC", m),
        KeyError::NotFound(id) => {
            ApiError::not_found(format!("no key {}", crate::access::clip(&id)))
        }
        KeyError::AlreadyRevoked(id) => ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_REVOKED",
            format!("key {id} is already revoked"),
        ),
        other => ApiError::internal(other),
    }
}

impl From<&KeyRecord> for KeyInfo {
    fn from(k: &KeyRecord) -> Self {
        KeyInfo {
            id: k.id.clone(),
            roles: k.roles.clone(),
            tenant: k.tenant.clone(),
            data_subject: k.data_subject.clone(),
            label: k.label.clone(),
            created_at: k.created_at.clone(),
            created_by: k.created_by.clone(),
            revoked_at: k.revoked_at.clone(),
            revoked_by: k.revoked_by.clone(),
        }
    }
}

#[utoipa::path(
    post, path = "/v1/keys", operation_id = "create_key", tag = "keys", request_body = CreateKey,
    responses(
        (status = 201, description = "The new key; its secret is shown only here", body = KeyCreated),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 408, body = crate::openapi::ErrorBody),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody),
        (status = 422, body = crate::openapi::ErrorBody),
        (status = 503, description = "The memory budget of request bodies is full; retry after `Retry-After` seconds", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(ctx: Ctx, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    ctx.authorize(Action::KeysCreate, &json!({})).await?;
    let mut asked = json!({});
    let result = create_asked(&ctx, headers, body, &mut asked).await;
    ctx.refusal_recorded(Action::KeysCreate, asked, result)
        .await
}

/// Creates the key the request asks for; `asked` becomes the tenant it names, for the record
/// of a refusal.
async fn create_asked(
    ctx: &Ctx,
    headers: HeaderMap,
    body: Body,
    asked: &mut Value,
) -> Result<Response, ApiError> {
    let is_json = crate::routes::small_json::is_json(&headers);
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the key spec as application/json",
        ));
    }
    let (bytes, _reservation) =
        crate::routes::events::read_body(body, &headers, &ctx.state).await?;
    let req: CreateKey = crate::routes::small_json::object(&bytes)
        .map_err(|r| r.answer("BAD_JSON", "the key spec: "))?;
    if let Some(t) = &req.tenant {
        *asked = json!({"tenant": crate::access::clip(t)});
    }
    let tenant = match (&ctx.principal.tenant, req.tenant) {
        (Some(own), Some(t)) if *own != t => {
            return Err(ApiError::forbidden(
                "a tenant admin creates keys only for its own tenant",
            ));
        }
        (Some(own), _) => Some(own.clone()),
        (None, t) => t,
    };
    let spec = KeySpec {
        roles: req.roles,
        tenant,
        data_subject: req.data_subject,
        label: req.label,
    };
    let dir = ctx.state.layout.root().to_path_buf();
    let by = ctx.principal.key_id.clone();
    let new = blocking(move || keys::create(&dir, spec, &by).map_err(key_error)).await?;
    ctx.state.keys.refresh();
    ctx.state.record_key_changes().await?;
    let body = KeyCreated {
        key: new.secret,
        info: KeyInfo::from(&new.record),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[utoipa::path(
    get, path = "/v1/keys", operation_id = "list_keys", tag = "keys",
    responses(
        (status = 200, description = "Every key in the caller's tenant (all keys for an unscoped admin), revoked ones included", body = KeyList),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.authorize(Action::KeysList, &json!({})).await?;
    ctx.state.keys.refresh();
    let keys: Vec<KeyInfo> = ctx
        .state
        .keys
        .keys()
        .iter()
        .filter(|k| ctx.principal.tenant.is_none() || k.tenant == ctx.principal.tenant)
        .map(KeyInfo::from)
        .collect();
    let keys = ctx
        .recorded(Action::KeysList, json!({}), Ok(keys), |k| Some(k.len()))
        .await?;
    Ok(axum::Json(KeyList { keys }).into_response())
}

#[utoipa::path(
    delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "the key's id (`key_…`)")),
    responses(
        (status = 200, description = "The revoked key", body = KeyInfo),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody), (status = 409, description = "Already revoked", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revoke(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let resource = json!({"key": crate::access::clip(&id)});
    ctx.authorize(Action::KeysRevoke, &resource).await?;
    let result = revoke_key(&ctx, id).await;
    ctx.refusal_recorded(Action::KeysRevoke, resource, result)
        .await
}

async fn revoke_key(ctx: &Ctx, id: String) -> Result<Response, ApiError> {
    let dir = ctx.state.layout.root().to_path_buf();
    let by = ctx.principal.key_id.clone();
    let tenant = ctx.principal.tenant.clone();
    let record =
        blocking(move || keys::revoke(&dir, &id, &by, tenant.as_deref()).map_err(key_error))
            .await?;
    ctx.state.keys.refresh();
    ctx.state.record_key_changes().await?;
    Ok(axum::Json(KeyInfo::from(&record)).into_response())
}
