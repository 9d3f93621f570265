//! `sealog report NAME`: the reports of PRODUCT §12, counted from the index over a window,
//! printed as JSON, CSV or Markdown (or, with --url, asked of a server).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;

use sealog_report::{Name, Request};

use crate::access::{Outcome, Reader, now_nanos};
use crate::client;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// daily, weekly, monthly, quarantine, coordination or popia.
    name: String,
    /// Start of the window on the event clock (RFC 3339 or YYYY-MM-DD): records count in the
    /// period their events happened in, quarantined events in the one they were quarantined
    /// in; default: the report's span (a day, a week, 30 days) before --to.
    #[arg(long)]
    from: Option<String>,
    /// End of the window, exclusive; default: now.
    #[arg(long)]
    to: Option<String>,
    /// json, csv or md.
    #[arg(long, default_value = "json", value_parser = ["json", "csv", "md"])]
    format: String,
    #[command(flatten)]
    pub(crate) remote: client::Remote,
}

fn name(a: &Args) -> anyhow::Result<Name> {
    Name::parse(&a.name).with_context(|| {
        format!(
            "no report {:?}: daily, weekly, monthly, quarantine, coordination or popia",
            a.name
        )
    })
}

fn bound(text: Option<&String>, what: &str) -> anyhow::Result<Option<i64>> {
    text.map(|t| sealog_model::time::parse_bound(t).map_err(|m| anyhow::anyhow!("--{what}: {m}")))
        .transpose()
}

pub(crate) fn run(reader: &Reader, a: &Args) -> anyhow::Result<ExitCode> {
    let req = Request {
        name: name(a)?,
        from: bound(a.from.as_ref(), "from")?,
        to: bound(a.to.as_ref(), "to")?,
        now: now_nanos(),
        filters: Vec::new(),
    };
    let resource = json!({"report": a.name, "from": a.from, "to": a.to});
    let report = match sealog_report::build(&reader.ledger, &req) {
        Ok(r) => r,
        Err(sealog_report::ReportError::Invalid(m)) => {
            reader.record("reports.get", resource, &Outcome::Invalid)?;
            bail!("{m}")
        }
        Err(e) => return Err(e.into()),
    };
    reader.record("reports.get", resource, &Outcome::Allowed(0))?;
    let text = match a.format.as_str() {
        "csv" => report.to_csv(),
        "md" => report.to_markdown(),
        _ => format!("{}\n", report.to_json()),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_client(c: &client::Client, a: &Args) -> anyhow::Result<ExitCode> {
    name(a)?;
    let mut path = format!(
        "/v1/reports/{}?format={}",
        client::encode(&a.name),
        a.format
    );
    for (k, v) in [("from", &a.from), ("to", &a.to)] {
        if let Some(v) = v {
            path.push_str(&format!("&{k}={}", client::encode(v)));
        }
    }
    let reply = c.get(&path)?;
    if reply.status != 200 {
        return Err(reply.error().into());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&reply.body)?;
    if a.format == "json" {
        out.write_all(b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
