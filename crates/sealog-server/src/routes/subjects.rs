//! `GET /v1/subjects/{subject}/state`: a subject's state rebuilt from its canonical records
//! (the current view, folded by its packs' state rules in event-time order), on both clocks:
//! `as_of` (what the log knew) and `valid_at` (what had happened).
//!
//! *Invariant*: the rebuild folds only records within the caller's reach: the principal's
//! forced filters (tenant, data subject) are passed to the ledger and hold for every record.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use sealog_ledger::{StateError, StateQuery};
use serde_json::{Value, json};

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::context::{Ctx, blocking, json_bytes};
use crate::error::ApiError;
use crate::formats::{AsOf, FILTER, Filter, TimeBound};
use crate::params::Params;
use crate::routes::records::{as_of_size, time_param};

const STATE_PARAMS: [&str; 4] = ["scope", "type", "as_of", "valid_at"];

#[utoipa::path(
    get, path = "/v1/subjects/{subject}/state", tag = "records",
    params(
        ("subject" = inline(Filter), Path, description = "the subject (a pack's subject, e.g. a chunk id, a decision id, a conversation id)"),
        ("scope" = inline(Option<Filter>), Query, description = "the scope, required when the subject has records in several scopes"),
        ("type" = inline(Option<Filter>), Query, description = "an event type of the kind of resource meant (its pack and subject field), required when the subject's id names resources of several kinds (an order and a chunk with one id); any type no pack declares names the records of such types"),
        ("as_of" = inline(Option<AsOf>), Query, description = "what the log knew: the state as the log had it at an ingest time or a tree size (a size past the log's end is refused)"),
        ("valid_at" = inline(Option<TimeBound>), Query, description = "what had happened: the state as of this event time; a correction counts from its target's time"),
    ),
    responses(
        (status = 200, description = "The rebuilt state: the packs' fold of the subject's current records in event-time order (ties by seq; a delete yields a tombstone), with subject, scope, as_of_size, valid_at and arrived_late (records whose time is earlier than a record logged before them)", body = Object),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "The key may not read records", body = crate::openapi::ErrorBody),
        (status = 409, description = "`AMBIGUOUS_SCOPE`: the subject has records in several scopes; name one with `scope` (the scopes are listed in `scopes`); `AMBIGUOUS_KIND`: the subject's id names resources of several kinds; name one with `type` (a type of each kind is listed in `types`); `AS_OF_PAST_END`: `as_of` names a tree size the log has not reached", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn state(
    ctx: Ctx,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    serve(ctx, &subject, raw.as_deref(), false).await
}

#[utoipa::path(
    get, path = "/v1/subjects/{subject}/timeline", tag = "records",
    params(
        ("subject" = inline(Filter), Path, description = "the subject"),
        ("scope" = inline(Option<Filter>), Query, description = "the scope, required when the subject has records in several scopes"),
        ("type" = inline(Option<Filter>), Query, description = "an event type of the kind of resource meant, required when the subject's id names resources of several kinds"),
        ("as_of" = inline(Option<AsOf>), Query, description = "what the log knew: an ingest time or a tree size"),
        ("valid_at" = inline(Option<TimeBound>), Query, description = "what had happened: an event time"),
    ),
    responses(
        (status = 200, description = "The subject's state as `state` rebuilds it, with `steps`: each record the fold applied, in order, with the state it left (so each step's before is the step before it), and `superseded`: the records a later one replaced, each with `superseded_by`, the seq of the record that did when the key may read it (null otherwise: a correction may be about another data subject)", body = Object),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "The key may not read records", body = crate::openapi::ErrorBody),
        (status = 409, description = "`AMBIGUOUS_SCOPE`: name one with `scope`; `AMBIGUOUS_KIND`: name one with `type`; `AS_OF_PAST_END`: `as_of` names a tree size the log has not reached", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn timeline(
    ctx: Ctx,
    Path(subject): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    serve(ctx, &subject, raw.as_deref(), true).await
}

/// The state, or with `steps` the timeline: the same read, recorded the same way (a
/// timeline's count is its steps).
async fn serve(
    ctx: Ctx,
    subject: &str,
    raw: Option<&str>,
    steps: bool,
) -> Result<Response, ApiError> {
    let parsed = Params::parse(raw, &STATE_PARAMS);
    let mut resource = json!({"subject": crate::access::clip(subject)});
    if steps {
        resource["view"] = json!("timeline");
    }
    match &parsed {
        Ok(p) => resource["filter"] = p.to_json(),
        Err(_) => resource["query"] = unparsed_query(&ctx.state.ledger, raw),
    }
    ctx.authorize(Action::GetState, &resource).await?;
    let result = match parsed {
        Ok(p) => rebuild(&ctx, subject, &p, steps).await,
        Err(e) => Err(e),
    };
    let body = ctx
        .recorded(Action::GetState, resource, result, |v| {
            Some(v.get("steps").and_then(Value::as_array).map_or(1, Vec::len))
        })
        .await?;
    Ok(json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("a state serializes"),
    ))
}

async fn rebuild(ctx: &Ctx, subject: &str, p: &Params, steps: bool) -> Result<Value, ApiError> {
    FILTER.check("subject", subject)?;
    let ledger = ctx.state.ledger.clone();
    let subject = subject.to_string();
    let scope = p.get("scope").map(str::to_string);
    if let Some(scope) = &scope {
        FILTER.check("scope", scope)?;
    }
    let of_type = p.get("type").map(str::to_string);
    if let Some(t) = &of_type {
        FILTER.check("type", t)?;
    }
    let as_of = p.get("as_of").map(str::to_string);
    let valid_at = time_param(p, "valid_at")?;
    let filters = ctx.principal.forced_filters();
    let principal = ctx.principal.clone();
    let started = std::time::Instant::now();
    let out = blocking(move || {
        let as_of_size = as_of.map(|s| as_of_size(&ledger, &s)).transpose()?;
        let q = StateQuery {
            subject,
            scope,
            of_type,
            filters,
            as_of_size,
            valid_at,
            sight: principal.sight(&ledger),
        };
        let folded = if steps {
            ledger.timeline(&q)
        } else {
            ledger.state(&q)
        };
        folded.map_err(|e| {
            let message = e.to_string();
            match e {
                StateError::Store(e) => e.into(),
                StateError::AmbiguousScope(scopes) => {
                    ApiError::new(StatusCode::CONFLICT, "AMBIGUOUS_SCOPE", message)
                        .with("scopes", json!(scopes))
                }
                StateError::AmbiguousKind(types) => {
                    ApiError::new(StatusCode::CONFLICT, "AMBIGUOUS_KIND", message)
                        .with("types", json!(types))
                }
            }
        })
    })
    .await;
    metrics::histogram!("sealog_query_seconds", "endpoint" => "subjects.state")
        .record(started.elapsed().as_secs_f64());
    out
}
