//! Proofs, the signed checkpoint and the C2SP tlog-tiles read layout.
//!
//! Hashes, tree sizes and checkpoints are log-wide and reveal no record's content, so a
//! tenant-scoped auditor may fetch them; an inclusion proof names one record and is given
//! only for a record within the caller's reach (its tenant, and, for a key bound to a data
//! subject, that subject's own records), answering for any other exactly as for a seq the
//! log does not have; entry bundles hold every tenant's records and are served only to keys
//! without a tenant scope. The subject role gets none of these (the role table): a
//! customer's key reads its own records, not the log's structure.

use axum::extract::{Path, RawQuery};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealog_merkle::tiles::{self, TilePath};
use serde_json::json;

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::formats::{Count, RECORD_ID, RecordIdText, Size, TILE_PATH, TilePathText};
use crate::openapi::{ConsistencyProof, InclusionProof};
use crate::params::Params;
use crate::routes::records::visible;
use sealog_model::RecordId;

#[utoipa::path(
    get, path = "/v1/proofs/inclusion", tag = "proofs",
    params(("seq" = inline(Option<Count>), Query, description = "the record's seq (auditor, admin); name the record by seq or by record_id, not both"),
           ("record_id" = inline(Option<RecordIdText>), Query, description = "or its record_id: the answer then carries the record as stored, so the caller checks it is the record named; a writer key names records this way"),
           ("size" = inline(Option<Size>), Query, description = "tree size (default: the latest checkpoint's)")),
    responses(
        (status = 200, description = "RFC 9162 inclusion proof; `checkpoint` is the signed note when `size` is the latest checkpoint's; `record` when asked by record_id", body = InclusionProof),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "No such record within this key's reach, the record is not in the tree of `size`, or the log has no tree of `size` yet", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn inclusion(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let parsed = Params::parse(raw.as_deref(), &["seq", "record_id", "size"]);
    let resource = match &parsed {
        Ok(p) => p.to_json(),
        Err(_) => json!({"query": unparsed_query(&ctx.state.ledger, raw.as_deref())}),
    };
    ctx.authorize(Action::ProveInclusion, &resource).await?;
    let result = match parsed {
        Ok(p) => prove_inclusion(&ctx, &p).await,
        Err(e) => Err(e),
    };
    let proof = ctx
        .recorded(Action::ProveInclusion, resource, result, |_| Some(1))
        .await?;
    Ok(axum::Json(proof).into_response())
}

async fn prove_inclusion(ctx: &Ctx, p: &Params) -> Result<InclusionProof, ApiError> {
    let by_id = match p.get("record_id") {
        Some(id) => {
            RECORD_ID.check_as("BAD_RECORD_ID", "record_id", id)?;
            RecordId::parse(id)
        }
        None => None,
    };
    let seq = p.u64("seq")?;
    if seq.is_some() == by_id.is_some() {
        return Err(ApiError::bad_request(
            "BAD_PARAMETER",
            "name the record by seq or by record_id (one of them)",
        ));
    }
    if by_id.is_none() && !ctx.principal.proves_any_record() {
        return Err(ApiError::forbidden(
            "this key has the proofs of the records it names by record_id, not by seq",
        ));
    }
    let size = p.u64("size")?;
    let ledger = ctx.state.ledger.clone();
    let principal = ctx.principal.clone();
    blocking(move || {
        let store = &ledger;
        let no_record =
            |named: &dyn std::fmt::Display| ApiError::not_found(format!("no record {named}"));
        let seq = match (&by_id, seq) {
            (Some(id), _) => store.seq_of(id)?.ok_or_else(|| no_record(id))?,
            (None, seq) => seq.expect("one of seq and record_id, checked above"),
        };
        let not_found = || match &by_id {
            Some(id) => no_record(id),
            None => no_record(&seq),
        };
        let mut served = None;
        // A pruned record's stub keeps its leaf but not whose it was: only a key of every
        // tenant may have its proof.
        let leaf = match store.get(seq) {
            Err(sealog_ledger::Error::Pruned(stub)) if principal.sees_every_record() => stub.leaf,
            Err(sealog_ledger::Error::Pruned(_)) => return Err(not_found()),
            other => {
                let record = other?.ok_or_else(not_found)?;
                if !visible(&principal, store, &record) {
                    return Err(not_found());
                }
                let leaf = sealog_merkle::leaf_hash(&record);
                if by_id.is_some() {
                    served = Some(B64.encode(&record));
                }
                leaf
            }
        };
        let latest = store.checkpoint()?;
        let size = size.unwrap_or(latest.size);
        if size > latest.size {
            return Err(no_tree(size));
        }
        if seq >= size {
            return Err(ApiError::not_found(format!(
                "record {seq} is not in the tree of size {size}"
            )));
        }
        let hashes = store.inclusion_proof(seq, size)?;
        Ok(InclusionProof {
            leaf_index: seq,
            tree_size: size,
            root: B64.encode(store.root(size)?),
            leaf_hash: B64.encode(leaf),
            hashes: hashes.iter().map(|h| B64.encode(h)).collect(),
            checkpoint: (size == latest.size).then_some(latest.note),
            record: served,
        })
    })
    .await
}

/// A tree size the log has not reached: the tree does not exist yet.
fn no_tree(size: u64) -> ApiError {
    ApiError::not_found(format!("the log has no tree of size {size} yet"))
}

#[utoipa::path(
    get, path = "/v1/proofs/consistency", tag = "proofs",
    params(("from" = inline(Size), Query, description = "older tree size"),
           ("to" = inline(Option<Size>), Query, description = "newer tree size, at least `from` (default: the latest checkpoint's)")),
    responses(
        (status = 200, description = "RFC 9162 consistency proof", body = ConsistencyProof),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "The log has no tree of `to` (or `from`) yet, or `from` is above `to` (no such proof exists)", body = crate::openapi::ErrorBody),
        (status = 422, description = "`from` is 0", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn consistency(ctx: Ctx, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(raw.as_deref(), &["from", "to"]);
    let resource = p.as_ref().map(Params::to_json).unwrap_or_default();
    ctx.authorize(Action::ProveConsistency, &resource).await?;
    let p = p?;
    let from = p
        .u64("from")?
        .ok_or_else(|| ApiError::bad_request("BAD_PARAMETER", "from is required"))?;
    let to = p.u64("to")?;
    let ledger = ctx.state.ledger.clone();
    let proof = blocking(move || {
        let store = &ledger;
        let latest = store.checkpoint()?.size;
        let to = to.unwrap_or(latest);
        if to > latest || from > latest {
            return Err(no_tree(to.max(from)));
        }
        if from == 0 {
            return Err(ApiError::unprocessable(
                "INVALID_ARGUMENT",
                "from must be at least 1: an empty tree has no consistency proof",
            ));
        }
        if from > to {
            // RFC 9162 proves a tree consistent with a later one, never with an earlier one.
            return Err(ApiError::not_found(format!(
                "there is no consistency proof from a tree of size {from} to a smaller one of size {to}"
            )));
        }
        let hashes = store.consistency_proof(from, to)?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: B64.encode(store.root(from)?),
            to_root: B64.encode(store.root(to)?),
            hashes: hashes.iter().map(|h| B64.encode(h)).collect(),
        })
    })
    .await?;
    Ok(axum::Json(proof).into_response())
}

#[utoipa::path(
    get, path = "/checkpoint", tag = "tlog",
    responses(
        (status = 200, description = "The latest signed checkpoint: a C2SP tlog-checkpoint in a signed note. With witnesses (`serve --witness`), the newest final one: cosigned by the quorum, with their C2SP tlog-cosignature lines", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 503, description = "With witnesses: no checkpoint has reached the quorum yet (`WITNESS_PENDING`, with `Retry-After`)", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn checkpoint(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.authorize(Action::Checkpoint, &json!({})).await?;
    let note = match &ctx.state.witness {
        Some(status) => {
            let final_note = status.lock().expect("witness status").final_note.clone();
            final_note.ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "WITNESS_PENDING",
                    "no checkpoint has been cosigned by the witness quorum yet; see /readyz",
                )
                .retry_after(1)
            })?
        }
        None => {
            let ledger = ctx.state.ledger.clone();
            blocking(move || Ok(ledger.checkpoint()?)).await?.note
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/checkpoint/key", tag = "tlog",
    responses(
        (status = 200, description = "The log's checkpoint verifier key, in C2SP note verifier-key format. Clients that want trust from outside the server get it another way; this serves operators and tooling.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn verifier_key(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.authorize(Action::Checkpoint, &json!({})).await?;
    let key = ctx.state.ledger.verifier_key();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{key}\n"),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/tile/{path}", tag = "tlog",
    params(("path" = inline(TilePathText), Path)),
    responses(
        (status = 200, description = "The tile's bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "Entry bundles need a key without a tenant scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such tile in the latest checkpoint's tree", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn tile(ctx: Ctx, Path(rest): Path<String>) -> Result<Response, ApiError> {
    let path = format!("tile/{rest}");
    let parsed = match TILE_PATH.check_as("BAD_TILE_PATH", "path", &rest) {
        // The form allows only indexes that fit, so nothing the form allows is refused here.
        Ok(()) => tiles::parse_tile_path(&path)
            .map_err(|e| ApiError::bad_request("BAD_TILE_PATH", e.to_string())),
        Err(e) => Err(e),
    };
    let resource = json!({"tile": crate::access::clip(&path)});
    let action = match parsed {
        Ok(TilePath::Entries { .. }) => Action::EntryBundle,
        _ => Action::HashTile,
    };
    ctx.authorize(action, &resource).await?;
    let ledger = ctx.state.ledger.clone();
    let read = |t: TilePath| {
        blocking(move || {
            let store = &ledger;
            let out = match t {
                TilePath::Hashes {
                    level,
                    index,
                    width,
                } => store.tile(level, index, width),
                TilePath::Entries { index, width } => store.entry_bundle(index, width),
            };
            out.map_err(|e| match e {
                sealog_ledger::Error::InvalidArgument(m) => ApiError::not_found(m),
                other => other.into(),
            })
        })
    };
    let result = match parsed {
        Ok(t) => read(t).await,
        Err(e) => Err(e),
    };
    let bytes = if action == Action::EntryBundle {
        ctx.recorded(action, resource, result, |_| None).await?
    } else {
        result?
    };
    let full = !path.contains(".p/");
    let cache = if full {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}
