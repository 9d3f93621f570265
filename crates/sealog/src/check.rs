//! `sealog check` and `sealog conflicts` (PRODUCT §11): consistency checks run here (they
//! append their records, so they need the data directory's writer) or by a server
//! (`POST /v1/checks`), and the conflicts they found, listed and resolved.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sealog_check::{Criticality, Resolution, RunOptions, Status};
use sealog_ledger::Ledger;
use serde_json::{Value, json};

use crate::access::{Outcome, Reader, local_act, now_nanos};
use crate::client;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Only this rule (repeatable); a run limited so does not move where the next run starts.
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<String>,
    /// Only findings about this subject (or key id, for the access rules).
    #[arg(long)]
    subject: Option<String>,
    /// Exit 1 when a finding of this run is at least this critical: critical, high, medium,
    /// low or info. (A log that does not match its signed checkpoint always exits 1.)
    #[arg(long, value_name = "CRITICALITY")]
    fail_on: Option<String>,
    /// Check the whole log, not only what is new since the last complete run.
    #[arg(long)]
    full: bool,
    /// A snapshot of the domain's links (NDJSON rows such as `{"conversation_id", "customer_id"}`,
    /// with `"tenant"` when a conversation id is audited in several tenants) reconciled with
    /// the audited links, both ways.
    #[arg(long, value_name = "FILE")]
    reconcile: Option<std::path::PathBuf>,
    /// The run's clock (RFC 3339; now by default): deadlines and windows are measured to it.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    #[command(flatten)]
    pub(crate) remote: client::Remote,
}

fn fail_on(a: &Args) -> anyhow::Result<Option<Criticality>> {
    a.fail_on
        .as_deref()
        .map(|c| Criticality::parse(c).map_err(|m| anyhow::anyhow!("--fail-on: {m}")))
        .transpose()
}

/// Prints the findings, says what the run did on stderr, and picks the exit code.
fn finish(
    findings: &[Value],
    summary: &Value,
    integrity_ok: bool,
    fail_on: Option<Criticality>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for f in findings {
        writeln!(out, "{f}")?;
    }
    out.flush()?;
    // The summary is the command's own output: a failure to write it fails the command.
    writeln!(std::io::stderr(), "sealog: check: {summary}")?;
    let worst = findings
        .iter()
        .filter_map(|f| f["criticality"].as_str())
        .filter_map(|c| Criticality::parse(c).ok())
        .max();
    let failed = !integrity_ok || fail_on.is_some_and(|min| worst.is_some_and(|w| w >= min));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn run(ledger: &Ledger, a: &Args) -> anyhow::Result<ExitCode> {
    let fail_on = fail_on(a)?;
    let now = match &a.now {
        None => now_nanos(),
        Some(t) => {
            sealog_model::time::parse_rfc3339(t).map_err(|m| anyhow::anyhow!("--now: {m}"))?
        }
    };
    let domain = match &a.reconcile {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--reconcile {}", path.display()))?;
            Some(
                sealog_check::parse_domain(&text)
                    .map_err(|e| anyhow::anyhow!("--reconcile {}: {e}", path.display()))?,
            )
        }
    };
    let report = sealog_check::run(
        ledger,
        &RunOptions {
            rules: a.rules.clone(),
            subject: a.subject.clone(),
            full: a.full,
            now,
            act: local_act(),
            domain,
        },
    );
    let report = match report {
        Ok(r) => r,
        Err(e @ sealog_check::CheckError::Invalid(_)) => {
            tell!("sealog: {e}");
            return Ok(ExitCode::from(1));
        }
        // Damage is a refusal to vouch for the log, as `verify`'s is, not a failure to run.
        Err(
            e @ (sealog_check::CheckError::Corrupted(_)
            | sealog_check::CheckError::Store(sealog_ledger::Error::Corrupted(_))),
        ) => {
            tell!(
                "sealog: check: integrity: {e}; the run stopped there and recorded nothing (`sealog verify` locates every damaged place)"
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let findings: Vec<Value> = report.findings.iter().map(|f| f.to_json()).collect();
    finish(&findings, &report.summary(), report.integrity.ok, fail_on)
}

pub(crate) fn run_client(c: &client::Client, a: &Args) -> anyhow::Result<ExitCode> {
    let fail_on = fail_on(a)?;
    if a.reconcile.is_some() || a.now.is_some() {
        bail!(
            "--reconcile and --now run locally (the server checks on its own clock): give --data, not --url"
        );
    }
    let body = json!({"rules": a.rules, "subject": a.subject, "full": a.full});
    let reply = c.post(
        "/v1/checks",
        "application/json",
        body.to_string().as_bytes(),
    )?;
    if reply.status != 200 {
        tell!("sealog: {} ({})", reply.message(), reply.status);
        return Ok(ExitCode::from(1));
    }
    let mut v: Value = serde_json::from_slice(&reply.body).context("the server's answer")?;
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    let ok = v["integrity"]["ok"] == json!(true);
    v["findings"] = json!(findings.len());
    finish(&findings, &v, ok, fail_on)
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ConflictsArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// Only conflicts in this status: open, escalated, resolved.
    #[arg(long)]
    status: Option<String>,
    /// Only this rule's conflicts.
    #[arg(long)]
    rule: Option<String>,
    /// Only conflicts at least this critical.
    #[arg(long)]
    criticality: Option<String>,
    #[command(flatten)]
    pub(crate) remote: client::Remote,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Settle a conflict by appending a resolution record: nothing is edited.
    Resolve {
        /// The conflict id (`cf-…`).
        id: String,
        /// authority_wins, recency_wins or human_wins (the winner by that criterion alone;
        /// refused when it does not decide), escalate, or dismissed.
        #[arg(long)]
        resolution: String,
        /// Why: kept in the resolution record.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: client::Remote,
    },
}

impl ConflictsArgs {
    pub(crate) fn remote(&self) -> &client::Remote {
        match &self.action {
            Some(Action::Resolve { remote, .. }) => remote,
            None => &self.remote,
        }
    }

    /// Checked before anything is opened.
    pub(crate) fn filters(&self) -> anyhow::Result<(Option<Status>, Option<Criticality>)> {
        let status = self
            .status
            .as_deref()
            .map(|s| Status::parse(s).map_err(|m| anyhow::anyhow!("--status: {m}")))
            .transpose()?;
        let min = self
            .criticality
            .as_deref()
            .map(|c| Criticality::parse(c).map_err(|m| anyhow::anyhow!("--criticality: {m}")))
            .transpose()?;
        Ok((status, min))
    }
}

fn resolution(text: &str, reason: &str) -> anyhow::Result<Resolution> {
    if reason.trim().is_empty() {
        bail!("--reason must say why: it is kept with the resolution");
    }
    Resolution::parse(text).map_err(|m| anyhow::anyhow!("--resolution: {m}"))
}

impl ConflictsArgs {
    /// Whether the command writes (a resolution) rather than reads.
    pub(crate) fn writes(&self) -> bool {
        self.action.is_some()
    }
}

/// Lists or resolves locally, with the filters `a.filters()` checked before the log was
/// opened. Listing is a read, recorded like every read.
pub(crate) fn conflicts(
    reader: &Reader,
    a: &ConflictsArgs,
    (status, min): (Option<Status>, Option<Criticality>),
) -> anyhow::Result<ExitCode> {
    if let Some(Action::Resolve {
        id,
        resolution: r,
        reason,
        ..
    }) = &a.action
    {
        let resolution = resolution(r, reason)?;
        return match sealog_check::resolve(
            &reader.ledger,
            id,
            (resolution, reason),
            &local_act(),
            None,
        ) {
            Ok(record) => {
                say!("{record}")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(
                e @ (sealog_check::CheckError::Invalid(_)
                | sealog_check::CheckError::NotFound(_)
                | sealog_check::CheckError::Settled(_)),
            ) => {
                tell!("sealog: {e}");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
        };
    }
    let filter = sealog_check::Filter {
        status,
        tenant: None,
        rule: a.rule.as_deref(),
        at_least: min,
    };
    let listed: Vec<Value> = sealog_check::conflicts(&reader.ledger, &filter)?
        .iter()
        .map(|c| c.to_json())
        .collect();
    reader.record(
        "conflicts.list",
        json!({"status": a.status, "rule": a.rule, "criticality": a.criticality}),
        &Outcome::Allowed(listed.len()),
    )?;
    let mut out = std::io::stdout().lock();
    for c in &listed {
        writeln!(out, "{c}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn conflicts_client(c: &client::Client, a: &ConflictsArgs) -> anyhow::Result<ExitCode> {
    a.filters()?;
    if let Some(Action::Resolve {
        id,
        resolution: r,
        reason,
        ..
    }) = &a.action
    {
        resolution(r, reason)?;
        let body = json!({"resolution": r, "reason": reason});
        let reply = c.post(
            &format!("/v1/conflicts/{}/resolve", client::path_segment(id)),
            "application/json",
            body.to_string().as_bytes(),
        )?;
        if reply.status == 201 {
            say!("{}", String::from_utf8_lossy(&reply.body))?;
            return Ok(ExitCode::SUCCESS);
        }
        tell!("sealog: {} ({})", reply.message(), reply.status);
        return Ok(ExitCode::from(1));
    }
    let params: Vec<(String, String)> = [
        ("status", &a.status),
        ("rule", &a.rule),
        ("criticality", &a.criticality),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
    .collect();
    let query = sealog_client::query_string(&params);
    let sep = if query.is_empty() { "" } else { "?" };
    let reply = c.get(&format!("/v1/conflicts{sep}{query}"))?;
    if reply.status != 200 {
        tell!("sealog: {} ({})", reply.message(), reply.status);
        return Ok(ExitCode::from(1));
    }
    let v: Value = serde_json::from_slice(&reply.body).context("the server's answer")?;
    let mut out = std::io::stdout().lock();
    for c in v["conflicts"].as_array().into_iter().flatten() {
        writeln!(out, "{c}")?;
    }
    Ok(ExitCode::SUCCESS)
}
