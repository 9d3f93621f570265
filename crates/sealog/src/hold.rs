//! `sealog hold place|release|list`: legal holds on a tenant or a data subject, locally or
//! through a server (`/v1/holds`). A held data subject is not erased until the hold is
//! released; each hold and release is a record.

use std::process::ExitCode;

use anyhow::bail;
use sealog_ledger::{HoldAct, HoldError, HoldScope, Ledger};
use serde_json::json;

use crate::access::local_act;
use crate::client;

#[derive(clap::Subcommand)]
pub(crate) enum Hold {
    /// Place a hold on a tenant, or on a data subject (within one tenant, or every tenant).
    Place {
        #[command(flatten)]
        scope: Scope,
        /// Why: the matter, the order.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Release the hold `--id`, or every hold in force on exactly this scope.
    Release {
        #[arg(long = "id", value_name = "HOLD_ID")]
        hold_id: Option<String>,
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// The holds in force, as NDJSON (with --all, released ones too).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: client::Remote,
    },
}

#[derive(clap::Args)]
pub(crate) struct Scope {
    #[arg(long)]
    tenant: Option<String>,
    /// As producers name them (a customer id), or their pseudonym (`ps:…`).
    #[arg(long)]
    data_subject: Option<String>,
}

impl Hold {
    pub(crate) fn remote(&self) -> &client::Remote {
        match self {
            Hold::Place { remote, .. }
            | Hold::Release { remote, .. }
            | Hold::List { remote, .. } => remote,
        }
    }
}

fn act(reason: &str) -> HoldAct<'_> {
    HoldAct {
        reason,
        act: local_act(),
    }
}

fn scope(s: &Scope) -> HoldScope<'_> {
    HoldScope {
        tenant: s.tenant.as_deref(),
        data_subject: s.data_subject.as_deref(),
    }
}

fn refused(e: HoldError) -> anyhow::Result<ExitCode> {
    match e {
        HoldError::NotFound(m) => {
            tell!("sealog: {m}");
            Ok(ExitCode::from(1))
        }
        HoldError::Invalid(m) => bail!("{m}"),
        other => Err(other.into()),
    }
}

pub(crate) fn run(ledger: &Ledger, h: &Hold) -> anyhow::Result<ExitCode> {
    match h {
        Hold::Place {
            scope: s, reason, ..
        } => match ledger.place_hold(&scope(s), &act(reason)) {
            Ok(hold) => {
                say!("{}", serde_json::to_string(&hold)?)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => refused(e),
        },
        Hold::Release {
            hold_id,
            scope: s,
            reason,
            ..
        } => match ledger.release_holds(hold_id.as_deref(), &scope(s), &act(reason)) {
            Ok(holds) => {
                for hold in holds {
                    say!("{}", serde_json::to_string(&hold)?)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => refused(e),
        },
        Hold::List { all, .. } => {
            let holds = ledger.holds(*all)?;
            crate::access::record_on(
                ledger,
                "holds.list",
                serde_json::json!({"all": all}),
                &crate::access::Outcome::Allowed(holds.len()),
            )?;
            for hold in holds {
                say!("{}", serde_json::to_string(&hold)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn run_client(c: &client::Client, h: &Hold) -> anyhow::Result<ExitCode> {
    let reply = match h {
        Hold::Place {
            scope: s, reason, ..
        } => {
            let body =
                json!({"tenant": s.tenant, "data_subject": s.data_subject, "reason": reason});
            c.post("/v1/holds", "application/json", body.to_string().as_bytes())?
        }
        Hold::Release {
            hold_id,
            scope: s,
            reason,
            ..
        } => {
            let body = json!({"hold_id": hold_id, "tenant": s.tenant,
                              "data_subject": s.data_subject, "reason": reason});
            c.post(
                "/v1/holds/release",
                "application/json",
                body.to_string().as_bytes(),
            )?
        }
        Hold::List { all, .. } => c.get(&format!("/v1/holds?all={all}"))?,
    };
    if !(200..300).contains(&reply.status) {
        tell!("sealog: {} ({})", reply.message(), reply.status);
        return Ok(ExitCode::from(if reply.status == 404 { 1 } else { 2 }));
    }
    let v: serde_json::Value = serde_json::from_slice(&reply.body)?;
    match v.get("holds").and_then(|h| h.as_array()) {
        Some(holds) => {
            for h in holds {
                say!("{h}")?;
            }
        }
        None => say!("{v}")?,
    }
    Ok(ExitCode::SUCCESS)
}
