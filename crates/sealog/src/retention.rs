//! `sealog retention status|apply`: what is past its type's retention, and pruning it
//! (admin; locally, or through a server with `--url`). Applying appends the
//! `audit.retention_applied` record, signs it, then leaves stubs in place of the pruned
//! records; every proof of what remains still holds.

use std::process::ExitCode;

use anyhow::Context;
use sealog_ledger::Ledger;
use serde_json::json;

use crate::access::local_act;
use crate::client;

#[derive(clap::Subcommand)]
pub(crate) enum Retention {
    /// What is due, by log and type, and what holds keep (JSON).
    Status {
        /// Measure at this instant (RFC 3339) instead of now; it may be to come, to see what
        /// would be due then.
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Prune what is due: each pruned record leaves a stub that keeps its proofs (JSON).
    Apply {
        /// Measure at this instant (RFC 3339) instead of now: at most five seconds past the
        /// clock (the server's with --url), so nothing is pruned before its retention ends;
        /// with --dry-run, any instant.
        #[arg(long)]
        now: Option<String>,
        /// Only say what would be pruned.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: client::Remote,
    },
}

impl Retention {
    pub(crate) fn remote(&self) -> &client::Remote {
        match self {
            Retention::Status { remote, .. } | Retention::Apply { remote, .. } => remote,
        }
    }
}

fn instant(now: Option<&str>) -> anyhow::Result<i64> {
    match now {
        None => Ok(crate::access::now_nanos()),
        Some(t) => sealog_model::time::parse_rfc3339(t)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--now {t}")),
    }
}

pub(crate) fn run(ledger: &Ledger, r: &Retention) -> anyhow::Result<ExitCode> {
    let report = match r {
        Retention::Status { now, .. } => {
            let report = ledger.retention_status(instant(now.as_deref())?)?;
            crate::access::record_on(
                ledger,
                "retention.status",
                serde_json::json!({"now": report.now}),
                &crate::access::Outcome::Allowed(report.due.len()),
            )?;
            report
        }
        Retention::Apply { now, dry_run, .. } => {
            ledger.apply_retention(instant(now.as_deref())?, *dry_run, &local_act())?
        }
    };
    say!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_client(c: &client::Client, r: &Retention) -> anyhow::Result<ExitCode> {
    let reply = match r {
        Retention::Status { now, .. } => match now {
            Some(t) => {
                instant(Some(t))?;
                c.get(&format!("/v1/retention?now={}", client::encode(t)))?
            }
            None => c.get("/v1/retention")?,
        },
        Retention::Apply { now, dry_run, .. } => {
            if let Some(t) = now {
                instant(Some(t))?;
            }
            let body = json!({"now": now, "dry_run": dry_run});
            c.post(
                "/v1/retention/apply",
                "application/json",
                body.to_string().as_bytes(),
            )?
        }
    };
    if !(200..300).contains(&reply.status) {
        tell!("sealog: {} ({})", reply.message(), reply.status);
        return Ok(ExitCode::from(2));
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body)?;
    say!("{}", serde_json::to_string_pretty(&v)?)?;
    Ok(ExitCode::SUCCESS)
}
