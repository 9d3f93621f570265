//! The console's integrity panel and dashboard: `GET /v1/integrity` (the newest signed
//! checkpoint, the verifier key, how the tree grew, the last verifications and check runs),
//! `POST /v1/verify` (an admin starts a verification of the whole data directory, recorded
//! as a `sealog.verify_run`), and `GET /v1/dashboard` (ingest and quarantine rates, append
//! latency, checkpoint age, open conflicts). All read every tenant's volume, so a
//! tenant-scoped key may not.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use sealog_ledger::{Ledger, Log};
use sealog_model::time::format_micros;

use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::state::AppState;

const MINUTE: i64 = 60_000_000_000;
const DAY: i64 = 24 * 60 * MINUTE;
/// Runs of each kind the panel lists, newest first.
const RUNS_SHOWN: usize = 10;

/// The data of the newest records of one of Sealog's own types, newest first.
fn latest_runs(ledger: &Ledger, event_type: &str) -> Result<Vec<Value>, ApiError> {
    let runs = ledger.records_where(vec![("type".into(), event_type.into())])?;
    Ok(runs
        .into_iter()
        .rev()
        .take(RUNS_SHOWN)
        .map(|(seq, r)| {
            let mut data = r.get("data").cloned().unwrap_or(Value::Null);
            if let Value::Object(m) = &mut data {
                m.insert("seq".into(), json!(seq));
                m.insert("time".into(), r.get("time").cloned().unwrap_or(Value::Null));
            }
            data
        })
        .collect())
}

#[utoipa::path(
    get, path = "/v1/integrity", tag = "console",
    responses(
        (status = 200, description = "The newest signed checkpoint (its note, size and root), the verifier key, the tree's size at each of the last 30 days' ends, the last verifications and check runs, and whether a verification is running", body = Object),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn integrity(ctx: Ctx) -> Result<Response, ApiError> {
    let resource = json!({"path": "/v1/integrity"});
    ctx.authorize(Action::Integrity, &resource).await?;
    let state = ctx.state.clone();
    let result = blocking(move || {
        let ledger = &state.ledger;
        let checkpoint = ledger.checkpoint()?;
        let now = crate::keys::now_nanos();
        let edges: Vec<i64> = (0..=30).rev().map(|d| now - d * DAY).collect();
        let sizes = ledger.sizes_at(Log::Canonical, &edges)?;
        let growth: Vec<Value> = edges
            .iter()
            .zip(&sizes)
            .map(|(t, s)| json!({"at": format_micros(*t), "size": s}))
            .collect();
        Ok(json!({
            "checkpoint": {
                "note": checkpoint.note,
                "size": checkpoint.size,
                "root": base64::engine::general_purpose::STANDARD.encode(checkpoint.root),
            },
            "verifier_key": ledger.verifier_key(),
            "growth": growth,
            "verify_runs": latest_runs(ledger, "sealog.verify_run")?,
            "check_runs": latest_runs(ledger, "sealog.check_run")?,
            "verifying": state.verifying.load(Ordering::Acquire),
        }))
    })
    .await;
    let body = ctx
        .recorded(Action::Integrity, resource, result, |_| None)
        .await?;
    Ok(Json(body).into_response())
}

#[utoipa::path(
    post, path = "/v1/verify", tag = "console",
    responses(
        (status = 202, description = "A verification of the whole data directory started; its `sealog.verify_run` record appears in `GET /v1/integrity` when it ends", body = Object),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
        (status = 409, description = "`VERIFY_RUNNING`: one is already running", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn start_verify(ctx: Ctx) -> Result<Response, ApiError> {
    let resource = json!({"path": "/v1/verify"});
    ctx.authorize(Action::VerifyStart, &resource).await?;
    let started = ctx
        .state
        .verifying
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    let result = if started {
        let run_id = format!("verify-{}", ctx.request_id);
        tokio::spawn(verify_and_record(
            ctx.state.clone(),
            run_id.clone(),
            ctx.principal.clone(),
        ));
        Ok(json!({"run_id": run_id}))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "VERIFY_RUNNING",
            "a verification is already running",
        ))
    };
    let body = ctx
        .recorded(Action::VerifyStart, resource, result, |_| None)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn verify_and_record(state: Arc<AppState>, run_id: String, by: crate::auth::Principal) {
    let started_at = crate::keys::now_text();
    let st = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let opts = sealog_ledger::VerifyOptions {
            packs: Some(st.ledger.packs()),
            ..Default::default()
        };
        Ledger::verify(st.layout.root(), &opts)
    })
    .await;
    let mut data = json!({"run_id": run_id, "started_at": started_at});
    match outcome {
        Ok(Ok((canonical, quarantine))) => {
            data["outcome"] = json!("intact");
            data["records"] = json!(canonical.records);
            data["bytes"] = json!(canonical.bytes);
            data["signed_records"] = json!(canonical.signed_records);
            data["root"] = json!(base64::engine::general_purpose::STANDARD.encode(canonical.root));
            if let Some(q) = quarantine {
                data["quarantine_records"] = json!(q.records);
            }
        }
        Ok(Err(failure)) => {
            data["outcome"] = json!("failed");
            data["location"] = json!(crate::access::clip(&failure.location));
            data["message"] = json!(crate::access::clip(&failure.message));
        }
        Err(e) => {
            data["outcome"] = json!("failed");
            data["location"] = json!("the server");
            data["message"] = json!(format!("the verification did not finish: {e}"));
        }
    }
    data["finished_at"] = json!(crate::keys::now_text());
    let event = json!({
        "specversion": "1.0", "id": format!("verify-run:{}", data["run_id"].as_str().unwrap_or("")),
        "source": crate::access::SOURCE, "type": "sealog.verify_run",
        "time": data["finished_at"], "actor": crate::access::actor(Some(&by)), "data": data,
    });
    if let Err(e) = state.record_own(vec![event]).await {
        tracing::error!(error = %e.message, "cannot record the verification's outcome");
    }
    state.verifying.store(false, Ordering::Release);
}

#[utoipa::path(
    get, path = "/v1/dashboard", tag = "console",
    responses(
        (status = 200, description = "Live figures: records and quarantined events in all, appended per minute over the last hour, quarantined in the last hour by reason, append latency percentiles over the last 5 minutes, the newest checkpoint's size and age, and the open conflicts by criticality", body = Object),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn dashboard(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.authorize(Action::Dashboard, &json!({"path": "/v1/dashboard"}))
        .await?;
    let state = ctx.state.clone();
    let result = blocking(move || {
        let ledger = &state.ledger;
        let now = crate::keys::now_nanos();
        let edges: Vec<i64> = (0..=60).rev().map(|m| now - m * MINUTE).collect();
        let sizes = ledger.sizes_at(Log::Canonical, &edges)?;
        let per_minute: Vec<u64> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
        let qsizes = ledger.sizes_at(Log::Quarantine, &edges)?;
        let q_per_minute: Vec<u64> = qsizes.windows(2).map(|w| w[1] - w[0]).collect();
        let hour = sealog_report::build(
            ledger,
            &sealog_report::Request {
                name: sealog_report::Name::Quarantine,
                from: Some(now - 60 * MINUTE),
                to: Some(now),
                now,
                filters: Vec::new(),
            },
        )
        .map_err(|e| ApiError::internal(e.to_string()))?;
        let by_reason: Vec<Value> = hour
            .sections
            .iter()
            .find_map(|s| match s {
                sealog_report::Section::Series { series, .. } => Some(series),
                sealog_report::Section::Table { .. } => None,
            })
            .map(|series| {
                series
                    .iter()
                    .map(|s| json!({"reason": s.name, "count": s.total()}))
                    .collect()
            })
            .unwrap_or_default();
        let (samples, p50, p99) = state
            .appender
            .recent
            .percentiles(std::time::Duration::from_secs(300));
        let (stats, _) = ledger.stats();
        let age = stats
            .checkpoint_at
            .and_then(|at| at.elapsed().ok())
            .map(|d| d.as_secs_f64());
        let ms = |s: Option<f64>| s.map(|s| (s * 1e6).round() / 1e3);
        Ok(json!({
            "now": format_micros(now),
            "records": ledger.len(),
            "quarantined": ledger.quarantine_len(),
            "appended_per_minute": per_minute,
            "quarantined_per_minute": q_per_minute,
            "quarantined_last_hour": by_reason,
            "append_latency": {"samples": samples, "p50_ms": ms(p50), "p99_ms": ms(p99)},
            "checkpoint": {"size": stats.checkpoint_size, "age_seconds": age},
            "conflicts_open": *state.checks.open.lock().expect("checks lock"),
        }))
    })
    .await;
    // Figures, not records: like `/metrics`, a refresh is recorded only when refused (the
    // page polls it every few seconds).
    Ok(Json(result?).into_response())
}
