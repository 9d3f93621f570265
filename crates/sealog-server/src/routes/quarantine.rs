//! `GET /v1/quarantine?…` and `GET /v1/quarantine/payloads/{payload_ref}`: the quarantine
//! log — events that could not become canonical, with their reason — and the raw payloads
//! kept as evidence. Auditors (and admins) only.
//!
//! *Invariant*: a tenant-scoped key sees only its tenant's quarantine records, and a payload
//! only when one of those records names it; anything else answers like a payload that does
//! not exist. A key bound to a data subject sees no quarantine record at all: a quarantined
//! event never passed the pack that would establish whose it is, so the quarantine log is not
//! keyed by data subject (its forced `data_subject` filter matches nothing) and no quarantine
//! record derives one. The subject role is refused these routes outright (the role table).

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use sealog_ledger::ReasonCode;
use sealog_ledger::{LIMIT_MAX, Query};
use serde::Deserialize;
use serde_json::json;

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::context::{Ctx, blocking, json_bytes};
use crate::error::ApiError;
use crate::formats::{Count, Cursor, FILTER, Filter, Limit, ReasonName, RecordIdText, TimeBound};
use crate::params::Params;
use crate::routes::records::{Log, run_paged, time_param};

const QUERY_PARAMS: [&str; 10] = [
    "reason", "from", "to", "id", "subject", "type", "tenant", "cursor", "after", "limit",
];

#[utoipa::path(
    get, path = "/v1/quarantine", tag = "quarantine",
    params(
        ("reason" = inline(Option<ReasonName>), Query, description = "reason code"),
        ("from" = inline(Option<TimeBound>), Query, description = "quarantined at or after"),
        ("to" = inline(Option<TimeBound>), Query, description = "quarantined before"),
        ("id" = inline(Option<Filter>), Query, description = "the producer's event id"),
        ("subject" = inline(Option<Filter>), Query), ("type" = inline(Option<Filter>), Query, description = "the quarantined event's type"),
        ("tenant" = inline(Option<Filter>), Query, description = "a tenant-scoped key always reads its own tenant only"),
        ("cursor" = inline(Option<Cursor>), Query, description = "`next_cursor` of the previous page of the same query (not with `after`)"),
        ("after" = inline(Option<Count>), Query, description = "only records after this seq of the quarantine log (not with `cursor`)"),
        ("limit" = inline(Option<Limit>), Query, description = "records per page (default 100)"),
    ),
    responses(
        (status = 200, description = "Quarantine records in the order they were quarantined: correlation (id, source, time, tenant, subject), `data` with reason_code, the evidence (missing_fields, violations, forbidden_fields, message), event_type, scope and payload_ref", body = crate::openapi::RecordsPage),
        (status = 400, description = "Malformed or unknown parameter, unknown reason code (the valid ones are listed)", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "Only auditor and admin keys read the quarantine log", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn query(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let parsed = Params::parse(raw.as_deref(), &QUERY_PARAMS);
    let resource = match &parsed {
        Ok(p) => json!({"filter": p.to_json()}),
        Err(_) => json!({"query": unparsed_query(&ctx.state.ledger, raw.as_deref())}),
    };
    ctx.authorize(Action::QueryQuarantine, &resource).await?;
    let result = match parsed {
        Ok(p) => run_query(&ctx, &p).await,
        Err(e) => Err(e),
    };
    let body = ctx
        .recorded(Action::QueryQuarantine, resource, result, |r| Some(r.1))
        .await?;
    Ok(json_bytes(StatusCode::OK, body.0))
}

async fn run_query(ctx: &Ctx, p: &Params) -> Result<(Vec<u8>, usize), ApiError> {
    let mut equals = Vec::new();
    if let Some(r) = p.get("reason") {
        if ReasonCode::parse(r).is_none() {
            let valid: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
            return Err(ApiError::bad_request(
                "UNKNOWN_REASON",
                format!(
                    "unknown reason code {:?}; reason codes are {}",
                    crate::access::clip(r),
                    valid.join(", ")
                ),
            ));
        }
        equals.push(("reason".to_string(), r.to_string()));
    }
    for (param, axis) in [
        ("id", "id"),
        ("subject", "subject"),
        ("type", "event_type"),
        ("tenant", "tenant"),
    ] {
        if let Some(v) = p.get(param) {
            FILTER.check(param, v)?;
            equals.push((axis.to_string(), v.to_string()));
        }
    }
    let q = Query {
        equals,
        ingest_from: time_param(p, "from")?,
        ingest_to: time_param(p, "to")?,
        ..Query::default()
    };
    run_paged(ctx, p, q, Log::Quarantine, true, "quarantine.query")
        .await
        .map(|(body, n, _)| (body, n))
}

/// The part of a quarantine record that names its payload.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    data: Option<NamedData<'a>>,
}

#[derive(Deserialize)]
struct NamedData<'a> {
    #[serde(borrow, default)]
    payload_ref: Option<std::borrow::Cow<'a, str>>,
}

fn well_formed(reference: &str) -> bool {
    reference.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[utoipa::path(
    get, path = "/v1/quarantine/payloads/{payload_ref}", tag = "quarantine",
    params(("payload_ref" = inline(RecordIdText), Path, description = "a quarantine record's `data.payload_ref`: `sha256:` + 64 lowercase hex")),
    responses(
        (status = 200, description = "The quarantined event's bytes exactly as received (restricted evidence; never kept for FORBIDDEN_FIELD)", body = Object),
        (status = 400, description = "Not a payload reference", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "Only auditor and admin keys read quarantine payloads", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such payload within this key's reach", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn payload(ctx: Ctx, Path(reference): Path<String>) -> Result<Response, ApiError> {
    let resource = json!({"payload_ref": crate::access::clip(&reference)});
    ctx.authorize(Action::GetQuarantinePayload, &resource)
        .await?;
    let result = read_payload(&ctx, reference).await;
    let bytes = ctx
        .recorded(Action::GetQuarantinePayload, resource, result, |_| Some(1))
        .await?;
    Ok(json_bytes(StatusCode::OK, bytes))
}

async fn read_payload(ctx: &Ctx, reference: String) -> Result<Vec<u8>, ApiError> {
    if !well_formed(&reference) {
        return Err(ApiError::bad_request(
            "BAD_PAYLOAD_REF",
            "a payload is named by its payload_ref: sha256: and 64 lowercase hex digits",
        ));
    }
    let not_found = || ApiError::not_found(format!("no payload {reference}"));
    let ledger = ctx.state.ledger.clone();
    let forced = ctx.principal.forced_filters();
    let principal = ctx.principal.clone();
    let wanted = reference.clone();
    let found = blocking(move || {
        // A scoped key must reach a quarantine record that names the payload. There is no
        // index on payload_ref: this walks the key's own quarantine records only.
        if !forced.is_empty() {
            let mut q = Query {
                equals: forced,
                limit: LIMIT_MAX,
                ..Query::default()
            };
            q.equals.sort();
            let mut named = false;
            'pages: loop {
                let page = ledger.quarantine_query(&q)?;
                for (_, bytes) in &page.records {
                    let r: Option<Named<'_>> = serde_json::from_slice(bytes).ok();
                    let named_here = r
                        .and_then(|r| r.data)
                        .and_then(|d| d.payload_ref)
                        .is_some_and(|r| r == wanted);
                    if named_here {
                        named = true;
                        break 'pages;
                    }
                }
                match page.next_after {
                    Some(a) => q.after = Some(a),
                    None => break,
                }
            }
            if !named {
                return Ok(None);
            }
        }
        let sight = principal.sight(&ledger);
        Ok(ledger
            .quarantine_payload(&wanted)?
            .and_then(|bytes| ledger.reveal_payload(bytes, &sight)))
    })
    .await?;
    found.ok_or_else(not_found)
}
