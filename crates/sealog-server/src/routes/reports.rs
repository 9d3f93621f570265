//! `GET /v1/reports/{name}`: the reports of PRODUCT §12 (auditors and admins; a
//! tenant-scoped key's report counts its tenant only, the log sizes it states included), as
//! JSON, CSV or Markdown.

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use sealog_ledger::{Ledger, Log};
use sealog_report::{Name, Report, Request};

use crate::access::unparsed_query;
use crate::auth::Action;
use crate::context::{Ctx, blocking};
use crate::error::ApiError;
use crate::formats::{ReportFormat, ReportName, TimeBound};
use crate::params::Params;
use crate::routes::records::{echoed, time_param};

#[utoipa::path(
    get, path = "/v1/reports/{name}", tag = "reports",
    params(
        ("name" = inline(ReportName), Path),
        ("from" = inline(Option<TimeBound>), Query, description = "start of the window on the event clock (the quarantine sections on the quarantine log's ingest clock); default: the report's span before `to` (a day, a week, 30 days). The window is not empty and at most 400 days"),
        ("to" = inline(Option<TimeBound>), Query, description = "end of the window (exclusive); default: now"),
        ("format" = inline(Option<ReportFormat>), Query),
    ),
    responses(
        (status = 200, description = "The report: its window, periods (hours up to two days, days beyond), the log size it was counted at, and its sections (series per period, or tables); CSV and Markdown as attachments", content(
            (Object = "application/json"),
            (String = "text/csv; charset=utf-8"),
            (String = "text/markdown; charset=utf-8"),
        )),
        (status = 400, body = crate::openapi::ErrorBody), (status = 401, body = crate::openapi::ErrorBody),
        (status = 403, body = crate::openapi::ErrorBody), (status = 404, description = "No report of that name", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn report(
    ctx: Ctx,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let parsed = Params::parse(raw.as_deref(), &["from", "to", "format"]);
    let mut resource = json!({"report": crate::access::clip(&name)});
    match &parsed {
        Ok(p) => resource["filter"] = echoed(&ctx.state.ledger, p),
        Err(_) => resource["query"] = unparsed_query(&ctx.state.ledger, raw.as_deref()),
    }
    ctx.authorize(Action::Reports, &resource).await?;
    let result = build(&ctx, &name, parsed).await;
    let resp = ctx
        .recorded(Action::Reports, resource, result, |_| None)
        .await?;
    Ok(resp)
}

async fn build(
    ctx: &Ctx,
    name: &str,
    parsed: Result<Params, ApiError>,
) -> Result<Response, ApiError> {
    let name = Name::parse(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no report {name:?}: daily, weekly, monthly, quarantine, coordination or popia"
        ))
    })?;
    let p = parsed?;
    let format = p.get("format").unwrap_or("json").to_string();
    if !matches!(format.as_str(), "json" | "csv" | "md") {
        return Err(ApiError::bad_request(
            "BAD_PARAMETER",
            "format is json, csv or md",
        ));
    }
    let req = Request {
        name,
        from: time_param(&p, "from")?,
        to: time_param(&p, "to")?,
        now: crate::keys::now_nanos(),
        // Only the tenant narrows a report: the role check keeps subject keys out.
        filters: ctx
            .principal
            .tenant
            .iter()
            .map(|t| ("tenant".to_string(), t.clone()))
            .collect(),
    };
    let ledger = ctx.state.ledger.clone();
    let started = std::time::Instant::now();
    let report = blocking(move || {
        let mut report = sealog_report::build(&ledger, &req).map_err(|e| match e {
            sealog_report::ReportError::Invalid(m) => ApiError::bad_request("BAD_PARAMETER", m),
            sealog_report::ReportError::Store(e) => e.into(),
        })?;
        sizes_within_reach(&ledger, &req.filters, &mut report)?;
        Ok(report)
    })
    .await?;
    metrics::histogram!("sealog_query_seconds", "endpoint" => "reports")
        .record(started.elapsed().as_secs_f64());
    let file = format!("sealog-{}-report", name.as_str());
    let (body, ty, ext) = match format.as_str() {
        "csv" => (report.to_csv(), "text/csv; charset=utf-8", "csv"),
        "md" => (report.to_markdown(), "text/markdown; charset=utf-8", "md"),
        _ => (report.to_json().to_string(), "application/json", "json"),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    if ext != "json" {
        let disposition = format!("attachment; filename=\"{file}.{ext}\"");
        resp.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
        );
    }
    Ok(resp)
}

/// Narrows the log sizes a report states to the caller's reach. The report states the whole
/// logs' sizes at the window's end, which would tell a tenant's key how much every other
/// tenant logs and has had quarantined.
fn sizes_within_reach(
    ledger: &Ledger,
    filters: &[(String, String)],
    report: &mut Report,
) -> Result<(), sealog_ledger::Error> {
    if filters.is_empty() {
        return Ok(());
    }
    report.log_size = records_within(ledger, Log::Canonical, filters, report.log_size)?;
    report.quarantine_size =
        records_within(ledger, Log::Quarantine, filters, report.quarantine_size)?;
    Ok(())
}

/// How many of a log's first `size` records carry every one of `filters`.
fn records_within(
    ledger: &Ledger,
    log: Log,
    filters: &[(String, String)],
    size: u64,
) -> Result<u64, sealog_ledger::Error> {
    Ok(ledger.tally(log, filters, &[0, size])?.iter().sum())
}
