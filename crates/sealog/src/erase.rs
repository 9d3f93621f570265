//! `sealog erase`: a data subject erased by destroying their key (crypto-shredding), locally
//! or through a server (`POST /v1/erasures`). Records stay and verify; their personal fields
//! read as erased from then on.

use std::process::ExitCode;

use anyhow::bail;
use sealog_ledger::{EraseError, Erasure, Ledger};
use serde_json::json;

use crate::access::local_act;
use crate::client;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The data subject as producers name them (a customer id), or their pseudonym (`ps:…`).
    #[arg(long)]
    data_subject: String,
    /// Only the subject's key in this tenant (every tenant's by default).
    #[arg(long)]
    tenant: Option<String>,
    /// Why (a request reference): kept in the `audit.legal_erasure` record.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    pub(crate) remote: client::Remote,
}

fn check(a: &Args) -> anyhow::Result<()> {
    if a.data_subject.trim().is_empty() {
        bail!("--data-subject must name someone");
    }
    if a.reason.trim().is_empty() {
        bail!("--reason must say why: it is kept with the erasure");
    }
    Ok(())
}

fn print(v: &serde_json::Value) -> std::io::Result<()> {
    say!("{v}")
}

pub(crate) fn run(ledger: &Ledger, a: &Args) -> anyhow::Result<ExitCode> {
    check(a)?;
    let erasure = Erasure {
        data_subject: &a.data_subject,
        tenant: a.tenant.as_deref(),
        reason: &a.reason,
        act: local_act(),
    };
    match ledger.erase(&erasure) {
        Ok(done) => {
            print(&json!({
                "status": "erased",
                "data_subject_pseudonym": done.pseudonym,
                "tenants": done.tenants,
                "records_affected": done.records,
                "seq": done.seq,
                "record_id": done.record_id.to_string(),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (EraseError::AlreadyErased(_) | EraseError::Unknown(_) | EraseError::Held(_))) => {
            tell!("sealog: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn run_client(c: &client::Client, a: &Args) -> anyhow::Result<ExitCode> {
    check(a)?;
    let body = json!({"data_subject": a.data_subject, "tenant": a.tenant, "reason": a.reason});
    let reply = c.post(
        "/v1/erasures",
        "application/json",
        body.to_string().as_bytes(),
    )?;
    if reply.status == 200 || reply.status == 201 {
        say!("{}", String::from_utf8_lossy(&reply.body))?;
        return Ok(ExitCode::SUCCESS);
    }
    tell!("sealog: {} ({})", reply.message(), reply.status);
    Ok(ExitCode::from(1))
}
