//! `/v1/exports`: deterministic exports and evidence bundles, made by auditors and admins
//! (a tenant key within its tenant, a subject key of its own records only), each recorded
//! as `audit.export`; large ones wait for a second admin's approval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_export::Format;
use sealog_ledger::{Query, Selection, View};

use crate::access::{clip, unparsed_body};
use crate::auth::Action;
use crate::context::{Ctx, blocking, json_bytes};
use crate::error::ApiError;
use crate::exports::{self, Job, JobState, Kind};
use crate::formats::ExportForm;
use crate::routes::records::as_of_size;

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExportFormat {
    Jsonl,
    Parquet,
    /// An evidence bundle: the history of one `subject` or one `data_subject`.
    Bundle,
}

/// What to export: the filters of `GET /v1/records` that an export takes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportFilters {
    scope: Option<String>,
    tenant: Option<String>,
    subject: Option<String>,
    data_subject: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    source: Option<String>,
    actor: Option<String>,
    /// Pack axes: NAME → VALUE.
    #[serde(default)]
    axes: BTreeMap<String, String>,
    /// Event time at or after (RFC 3339 or YYYY-MM-DD).
    from: Option<String>,
    /// Event time before.
    to: Option<String>,
    /// `history` (default) or `current`.
    view: Option<String>,
    valid_at: Option<String>,
    /// Cut the log at a tree size (digits) or an ingest time (RFC 3339).
    as_of: Option<String>,
    /// Prove against this signed checkpoint (note text) instead of a stored one.
    checkpoint: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateExport {
    format: ExportFormat,
    #[serde(default)]
    filters: ExportFilters,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("BAD_EXPORT_REQUEST", message)
}

/// The request's selection, before the principal's reach is added.
fn selection(ctx: &Ctx, f: &ExportFilters) -> Result<(Selection, Option<String>), ApiError> {
    let names = ctx.state.ledger.axis_names();
    let mut equals: Vec<(String, String)> = [
        ("scope", &f.scope),
        ("tenant", &f.tenant),
        ("subject", &f.subject),
        ("data_subject", &f.data_subject),
        ("type", &f.event_type),
        ("source", &f.source),
        ("actor", &f.actor),
    ]
    .into_iter()
    .filter_map(|(a, v)| Some((a.to_string(), v.clone()?)))
    .collect();
    for (name, value) in &f.axes {
        if !names.iter().any(|a| a == name) {
            return Err(ApiError::bad_request(
                "UNKNOWN_AXIS",
                format!(
                    "unknown axis {:?}; indexed axes are {}",
                    clip(name),
                    names.join(", ")
                ),
            ));
        }
        equals.push((name.clone(), value.clone()));
    }
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                if !crate::formats::TIME_BOUND.matches(t) {
                    return Err(bad(format!(
                        "filters.{name} must be {}",
                        crate::formats::TIME_BOUND.description()
                    )));
                }
                sealog_model::time::parse_bound(t).map_err(|m| bad(format!("filters.{name}: {m}")))
            })
            .transpose()
    };
    let view = match f.view.as_deref() {
        None | Some("history") => View::History,
        Some("current") => View::Current,
        Some(v) => {
            return Err(bad(format!(
                "filters.view {:?}: history or current",
                clip(v)
            )));
        }
    };
    let query = Query {
        equals,
        event_from: time("from", &f.from)?,
        event_to: time("to", &f.to)?,
        valid_at: time("valid_at", &f.valid_at)?,
        view,
        ..Query::default()
    };
    Ok((
        Selection {
            query,
            as_of: None,
            checkpoint: f.checkpoint.clone(),
        },
        f.as_of.clone(),
    ))
}

#[utoipa::path(
    post, path = "/v1/exports", operation_id = "create_export", tag = "exports",
    request_body = CreateExport,
    responses(
        (status = 201, description = "The export is done: `{id, state: \"done\", manifest, files, …}`", body = Object),
        (status = 202, description = "The export runs in the background (`state: \"running\"`), or waits for a second admin's approval (`state: \"pending\"`); follow `/v1/exports/{id}/status`", body = Object),
        (status = 400, description = "Malformed request, unknown filter or axis, bad time or view (`BAD_EXPORT_REQUEST`, `UNKNOWN_AXIS`)", body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "Only auditor, subject and admin keys export", body = crate::openapi::ErrorBody),
        (status = 409, description = "`AS_OF_PAST_END`: `as_of` names a tree size the log has not reached", body = crate::openapi::ErrorBody),
        (status = 422, description = "A cut past the checkpoints, or a checkpoint that is not this log's (`INVALID_ARGUMENT`)", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(ctx: Ctx, body: Bytes) -> Result<Response, ApiError> {
    let parsed: Result<CreateExport, ApiError> = crate::routes::small_json::object(&body)
        .map_err(|r| r.answer("BAD_EXPORT_REQUEST", "the body is not an export request: "));
    let resource = match &parsed {
        Ok(r) => {
            json!({"format": format!("{:?}", r.format).to_lowercase(), "filters": filters_json(&ctx.state.ledger, &r.filters)})
        }
        Err(_) => json!({"body": unparsed_body(&ctx.state.ledger, &body)}),
    };
    ctx.authorize(Action::ExportCreate, &resource).await?;
    let result = start(&ctx, parsed).await;
    let (status, body) = ctx
        .recorded(Action::ExportCreate, resource, result, |_| None)
        .await?;
    Ok(json_bytes(status, serde_json::to_vec(&body).expect("JSON")))
}

async fn start(
    ctx: &Ctx,
    parsed: Result<CreateExport, ApiError>,
) -> Result<(StatusCode, Value), ApiError> {
    let req = parsed?;
    let (mut sel, as_of) = selection(ctx, &req.filters)?;
    let kind = match req.format {
        ExportFormat::Jsonl => Kind::File(Format::Jsonl),
        ExportFormat::Parquet => Kind::File(Format::Parquet),
        ExportFormat::Bundle => Kind::Bundle,
    };
    let bundle_of = match kind {
        Kind::Bundle => match (&req.filters.subject, &req.filters.data_subject) {
            (Some(s), None) => Some(("subject".to_string(), s.clone())),
            (None, Some(s)) => Some(("data_subject".to_string(), s.clone())),
            _ => {
                return Err(bad(
                    "a bundle is the history of exactly one of filters.subject or filters.data_subject",
                ));
            }
        },
        Kind::File(_) => None,
    };
    if bundle_of.is_some() {
        sel.query.view = View::History;
    }
    let reach = ctx.principal.forced_filters();
    sel.query.equals.extend(reach.iter().cloned());
    let ledger = ctx.state.ledger.clone();
    let sliced = sel.clone();
    let slice = blocking(move || {
        let mut sel = sliced;
        sel.as_of = as_of.map(|a| as_of_size(&ledger, &a)).transpose()?;
        Ok(ledger.slice(&sel)?)
    })
    .await?;
    // Pinned: approval or a background run proves against the same checkpoint and cut.
    sel.as_of = Some(slice.cut);
    sel.checkpoint = Some(slice.checkpoint.note.clone());
    let id = exports::new_id();
    let job = Arc::new(Job {
        dir: ctx.state.exports.job_dir(&id),
        id,
        kind,
        filters: serde_json::to_value(filters_json(&ctx.state.ledger, &req.filters))
            .unwrap_or_default(),
        selection: sel,
        bundle_of,
        reach,
        requested_by: ctx.principal.clone(),
        approved_by: Mutex::new(None),
        count: slice.order.len() as u64,
        written: AtomicU64::new(0),
        state: Mutex::new(JobState::Pending),
        made: SystemTime::now(),
    });
    let config = ctx.state.exports.config.clone();
    ctx.state.exports.insert(job.clone());
    if job.count > config.approval_above {
        return Ok((StatusCode::ACCEPTED, job.status(config.ttl)));
    }
    launch(ctx, &job, job.count > config.background_above).await
}

/// Runs a job: in the background (answered 202), or to the end before answering (201).
async fn launch(
    ctx: &Ctx,
    job: &Arc<Job>,
    background: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let ttl = ctx.state.exports.config.ttl;
    *job.state.lock().expect("job lock") = JobState::Running;
    let (state, j, rid) = (ctx.state.clone(), job.clone(), ctx.request_id.clone());
    let task = tokio::task::spawn_blocking(move || exports::run(&state, &j, &rid));
    if background {
        return Ok((StatusCode::ACCEPTED, job.status(ttl)));
    }
    task.await.map_err(ApiError::internal)?;
    match job.state() {
        JobState::Done(_) => Ok((StatusCode::CREATED, job.status(ttl))),
        JobState::Failed(why) => Err(ApiError::internal(why)),
        _ => Err(ApiError::internal("the export ended in no final state")),
    }
}

/// The filters as the export's records and status state them: a person by pseudonym.
fn filters_json(ledger: &sealog_ledger::Ledger, f: &ExportFilters) -> Value {
    let mut m = serde_json::Map::new();
    for (name, v) in [
        ("scope", &f.scope),
        ("tenant", &f.tenant),
        ("subject", &f.subject),
        ("data_subject", &f.data_subject),
        ("type", &f.event_type),
        ("source", &f.source),
        ("actor", &f.actor),
        ("from", &f.from),
        ("to", &f.to),
        ("view", &f.view),
        ("valid_at", &f.valid_at),
        ("as_of", &f.as_of),
    ] {
        if let Some(v) = v {
            m.insert(name.into(), json!(clip(&ledger.filter_value(name, v))));
        }
    }
    if !f.axes.is_empty() {
        let axes: BTreeMap<&String, String> = f
            .axes
            .iter()
            .map(|(name, v)| (name, ledger.echoed_value(name, v)))
            .collect();
        m.insert("axes".into(), json!(axes));
    }
    if f.checkpoint.is_some() {
        m.insert("checkpoint".into(), json!(true));
    }
    Value::Object(m)
}

/// The job, if it exists and the principal may see it; out of reach answers like absent.
fn find(ctx: &Ctx, id: &str) -> Result<Arc<Job>, ApiError> {
    ctx.state
        .exports
        .get(id)
        .filter(|j| j.visible_to(&ctx.principal))
        .ok_or_else(|| ApiError::not_found(format!("no export {}", clip(id))))
}

#[utoipa::path(
    get, path = "/v1/exports/{id}/status", operation_id = "export_status", tag = "exports",
    params(("id" = String, Path, description = "the export's id")),
    responses(
        (status = 200, description = "`{id, state (pending|running|done|failed), format, filters, count, written, requested_by, approved_by, expires_at, manifest?, files?, error?}`", body = Object),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "No such export within this key's reach (or it expired)", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn status(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let resource = json!({"export_id": clip(&id), "part": "status"});
    ctx.authorize(Action::ExportRead, &resource).await?;
    let result = find(&ctx, &id).map(|j| j.status(ctx.state.exports.config.ttl));
    let body = ctx
        .recorded(Action::ExportRead, resource, result, |_| None)
        .await?;
    Ok(json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("JSON"),
    ))
}

#[utoipa::path(
    get, path = "/v1/exports/{id}/manifest", tag = "exports",
    params(("id" = String, Path, description = "the export's id")),
    responses(
        (status = 200, description = "The export's manifest (`FILE.manifest.json`, RFC 8785 canonical JSON)", body = Object),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody),
        (status = 409, description = "`EXPORT_NOT_READY`: pending, running or failed", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn manifest(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let name = |j: &Job| format!("{}.manifest.json", j.main_file());
    serve(&ctx, &id, name, "manifest").await
}

#[utoipa::path(
    get, path = "/v1/exports/{id}", tag = "exports",
    params(
        ("id" = String, Path, description = "the export's id"),
        ("form" = inline(Option<ExportForm>), Query),
    ),
    responses(
        (status = 200, description = "The export file, streamed (JSONL or Parquet; a bundle's records.jsonl), with `content-length` and its SHA-256 in `x-sealog-sha256`; opened, chunked, as NDJSON with `x-sealog-form: opened`", content(
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        )),
        (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody),
        (status = 409, description = "`EXPORT_NOT_READY`, or `form=opened` of a Parquet export (`NOT_JSONL`)", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn file(
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = crate::params::Params::parse(raw.as_deref(), &["form"])?;
    let form = p.get("form").unwrap_or("sealed");
    crate::formats::check_one_of("form", form, &["sealed", "opened"])?;
    if form == "opened" {
        serve_opened(&ctx, &id).await
    } else {
        serve(&ctx, &id, |j| j.main_file().to_string(), "file").await
    }
}

/// The export's records with their personal values as the caller may see them, line by line
/// (PRODUCT §8: opened only while streamed to a principal allowed to see them; the file kept
/// holds them sealed, as its proof covers them).
async fn serve_opened(ctx: &Ctx, id: &str) -> Result<Response, ApiError> {
    let mut resource = json!({"export_id": clip(id), "part": "file", "form": "opened"});
    ctx.authorize(Action::ExportRead, &resource).await?;
    let found = find(ctx, id).and_then(|job| {
        let name = job.main_file().to_string();
        resource["file"] = json!(clip(&name));
        match job.state() {
            JobState::Done(m) if name.ends_with(".jsonl") => exports::file_path(&job, &name)
                .map(|p| (p, m.count))
                .ok_or_else(|| ApiError::not_found(format!("export {id} has no file"))),
            // The request's form is right; this export's is not.
            JobState::Done(_) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "NOT_JSONL",
                "form=opened streams JSONL records; this export is Parquet",
            )),
            _ => Err(exports::not_ready(&job)),
        }
    });
    let (path, _) = ctx
        .recorded(Action::ExportRead, resource, found, |f| Some(f.1 as usize))
        .await?;
    let file = std::fs::File::open(&path).map_err(ApiError::internal)?;
    let ledger = ctx.state.ledger.clone();
    let sight = ctx.principal.sight(&ledger);
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::with_capacity(256 << 10, file).split(b'\n');
        let mut chunk = Vec::with_capacity(256 << 10);
        loop {
            let line = lines.next();
            let done = line.is_none();
            match line {
                Some(Ok(l)) => {
                    chunk.extend_from_slice(&ledger.reveal(&l, &sight));
                    chunk.push(b'\n');
                }
                Some(Err(e)) => {
                    tx.abort(e);
                    return;
                }
                None => {}
            }
            if (done && !chunk.is_empty()) || chunk.len() >= 256 << 10 {
                let data = Bytes::from(std::mem::take(&mut chunk));
                if runtime.block_on(tx.send_data(data)).is_err() {
                    return;
                }
            }
            if done {
                return;
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static("x-sealog-form"),
                "opened".to_string(),
            ),
        ],
        Body::new(body),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/v1/exports/{id}/files/{name}", tag = "exports",
    params(
        ("id" = String, Path, description = "the export's id"),
        ("name" = String, Path, description = "one of the names its status lists under `files` (the proof, a bundle's checkpoint, key, README and schemas)"),
    ),
    responses(
        (status = 200, description = "The file, with `content-length` and `x-sealog-sha256`: JSON for `.json` files, the export's own file as `GET /v1/exports/{id}` serves it, other files as bytes", content(
            (Vec<u8> = "application/octet-stream"),
            (Object = "application/json"),
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        )),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 404, description = "No such export, or no such file in it", body = crate::openapi::ErrorBody),
        (status = 409, description = "`EXPORT_NOT_READY`", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn named_file(
    ctx: Ctx,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    serve(&ctx, &id, move |_| name.clone(), "files").await
}

async fn serve(
    ctx: &Ctx,
    id: &str,
    name: impl Fn(&Job) -> String,
    part: &str,
) -> Result<Response, ApiError> {
    let mut resource = json!({"export_id": clip(id), "part": part});
    ctx.authorize(Action::ExportRead, &resource).await?;
    let found = find(ctx, id).and_then(|job| {
        let name = name(&job);
        resource["file"] = json!(clip(&name));
        match job.state() {
            JobState::Done(m) => {
                let path = exports::file_path(&job, &name).ok_or_else(|| {
                    ApiError::not_found(format!("export {id} has no file {}", clip(&name)))
                })?;
                let content_type = if name.ends_with(".json") {
                    "application/json"
                } else if name == job.main_file() {
                    job.kind.content_type()
                } else {
                    "application/octet-stream"
                };
                let known = (name == job.main_file()).then(|| (m.bytes, m.sha256.clone()));
                Ok((path, content_type, known, m.count))
            }
            _ => Err(exports::not_ready(&job)),
        }
    });
    let (path, content_type, known, _) = ctx
        .recorded(Action::ExportRead, resource, found, |f| Some(f.3 as usize))
        .await?;
    stream_file(path, content_type, known).await
}

/// Streams a file in chunks, never holding it whole; its length and SHA-256 in headers.
async fn stream_file(
    path: std::path::PathBuf,
    content_type: &'static str,
    known: Option<(u64, String)>,
) -> Result<Response, ApiError> {
    let p = path.clone();
    let (len, sha) = match known {
        Some(k) => k,
        None => {
            blocking(move || {
                let bytes = std::fs::read(&p).map_err(ApiError::internal)?;
                Ok((bytes.len() as u64, hex::encode(Sha256::digest(&bytes))))
            })
            .await?
        }
    };
    let file = std::fs::File::open(&path).map_err(ApiError::internal)?;
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    tokio::spawn(async move {
        let file = Arc::new(file);
        let mut offset = 0u64;
        loop {
            let f = file.clone();
            let chunk = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; 256 << 10];
                let n = f.read_at(&mut buf, offset)?;
                buf.truncate(n);
                Ok::<_, std::io::Error>(buf)
            })
            .await;
            match chunk {
                Ok(Ok(buf)) if buf.is_empty() => break,
                Ok(Ok(buf)) => {
                    offset += buf.len() as u64;
                    if tx.send_data(Bytes::from(buf)).await.is_err() {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tx.abort(e);
                    break;
                }
                Err(e) => {
                    tx.abort(std::io::Error::other(e.to_string()));
                    break;
                }
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::HeaderName::from_static("x-sealog-sha256"), sha),
        ],
        Body::new(body),
    )
        .into_response())
}

#[utoipa::path(
    post, path = "/v1/exports/{id}/approve", tag = "exports",
    params(("id" = String, Path, description = "the pending export's id")),
    responses(
        (status = 202, description = "Approved (recorded as `audit.export_approved`); the export runs in the background", body = Object),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, description = "Only admin keys approve, and never their own export", body = crate::openapi::ErrorBody),
        (status = 404, body = crate::openapi::ErrorBody),
        (status = 409, description = "`NOT_PENDING`: the export does not wait for approval", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn approve(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let resource = json!({"export_id": clip(&id)});
    ctx.authorize(Action::ExportApprove, &resource).await?;
    let result = approve_job(&ctx, &id).await;
    let (status, body) = ctx
        .recorded(Action::ExportApprove, resource, result, |_| None)
        .await?;
    Ok(json_bytes(status, serde_json::to_vec(&body).expect("JSON")))
}

/// Whose key `key_id` is, for the four-eyes rule: a key made with `sealog keys create` (by
/// the operator, who holds the data directory) is its own holder's; a key made over HTTP is
/// the holder's of the key that made it, since whoever holds an admin key can mint more.
fn holder<'k>(keys: &'k [crate::keys::KeyRecord], key_id: &'k str) -> &'k str {
    let mut id = key_id;
    // Each step goes to an older key; the bound only guards a damaged key file.
    for _ in 0..=keys.len() {
        match keys.iter().find(|k| k.id == id) {
            Some(k) if keys.iter().any(|maker| maker.id == k.created_by) => id = &k.created_by,
            _ => return id,
        }
    }
    id
}

async fn approve_job(ctx: &Ctx, id: &str) -> Result<(StatusCode, Value), ApiError> {
    let job = find(ctx, id)?;
    if job.requested_by.key_id == ctx.principal.key_id {
        return Err(ApiError::forbidden(
            "an export is approved by a second admin, not by the key that asked for it",
        ));
    }
    let keys = ctx.state.keys.keys();
    if holder(&keys, &job.requested_by.key_id) == holder(&keys, &ctx.principal.key_id) {
        return Err(ApiError::forbidden(
            "an export is approved by a second admin: this key and the one that asked for it were made over HTTP from one key made with `sealog keys create`, so one holder may hold both",
        ));
    }
    {
        // Taken out of `pending` at once, so two approvals cannot both start it.
        let mut state = job.state.lock().expect("job lock");
        if !matches!(*state, JobState::Pending) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "NOT_PENDING",
                format!("export {id} does not wait for approval"),
            ));
        }
        *state = JobState::Running;
    }
    let event = exports::approval_event(&job, &ctx.principal, &ctx.request_id);
    if let Err(e) = ctx.state.record_own(vec![event]).await {
        *job.state.lock().expect("job lock") = JobState::Pending;
        return Err(e);
    }
    *job.approved_by.lock().expect("job lock") = Some(ctx.principal.key_id.clone());
    launch(ctx, &job, true).await
}
