//! Reads on a data directory are recorded like the server's: each `get`, `query`, `state`,
//! `quarantine`, `prove`, `report`, `conflicts`, `hold list` and `retention status` appends an `audit.access` record naming the local user (uid and
//! name) before it prints anything, so what was read and by whom is in the log it was read
//! from. A read that cannot be recorded is not served. Opened read-only (beside a running
//! server, or without the signing key) the log cannot be written: the command says the read
//! was not recorded and how to have it recorded.

use std::cell::Cell;

use anyhow::{Context, bail};
use sealog_ledger::{Author, IngestResult, Ledger};
use serde_json::{Value, json};

/// The `source` of every record the CLI writes about itself.
const SOURCE: &str = "sealog-cli";

/// A ledger opened for reading, and whether its reads can be recorded.
pub(crate) struct Reader {
    pub(crate) ledger: Ledger,
    /// Why reads on this opening go unrecorded, if they do.
    unrecorded: Option<String>,
    warned: Cell<bool>,
}

/// What a read found, as its access record states it.
pub(crate) enum Outcome {
    /// Served, with the number of records (or proofs) it returned.
    Allowed(usize),
    /// What was asked for is not in the log.
    NotFound,
    /// The request could not be answered as asked (a proof outside the tree).
    Invalid,
}

impl Reader {
    pub(crate) fn recording(ledger: Ledger) -> Self {
        Reader {
            ledger,
            unrecorded: None,
            warned: Cell::new(false),
        }
    }

    pub(crate) fn unrecorded(ledger: Ledger, why: impl Into<String>) -> Self {
        Reader {
            ledger,
            unrecorded: Some(why.into()),
            warned: Cell::new(false),
        }
    }

    /// Closes the ledger: a failure of the final checkpoint after the reads' access records
    /// is reported, not dropped.
    pub(crate) fn close(self) -> anyhow::Result<()> {
        Ok(self.ledger.close()?)
    }

    /// Appends the access record of a read and waits until it is durable; call it before
    /// printing what was read.
    pub(crate) fn record(
        &self,
        action: &str,
        resource: Value,
        outcome: &Outcome,
    ) -> anyhow::Result<()> {
        if let Some(why) = &self.unrecorded {
            if !self.warned.replace(true) {
                tell!(
                    "sealog: note: this read was not recorded in the log ({why}); to have reads recorded, read through the server: --url URL --key KEY"
                );
            }
            return Ok(());
        }
        record_on(&self.ledger, action, resource, outcome)
    }
}

/// Appends one of the CLI's own records and waits until it is durable: `unwritten` says what
/// does not happen when it cannot be written, `refused` when the audit pack refuses it.
fn commit_own(
    ledger: &Ledger,
    event: &Value,
    unwritten: &'static str,
    refused: &str,
) -> anyhow::Result<()> {
    let prepared = ledger.prepare_value(event, &Author::Sealog);
    let results = ledger.commit(vec![prepared]).context(unwritten)?;
    match results.first() {
        Some(IngestResult::Appended { .. } | IngestResult::Duplicate { .. }) => Ok(()),
        other => bail!(
            "{refused}: {}",
            other.map_or_else(|| "no result".to_string(), |r| r.to_json().to_string())
        ),
    }
}

/// Appends the access record of a read made on `ledger`, opened to write, and waits until it
/// is durable; call it before printing what was read.
pub(crate) fn record_on(
    ledger: &Ledger,
    action: &str,
    resource: Value,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let (name, outcome, status, count) = match outcome {
        Outcome::Allowed(n) => ("allowed", "allowed", 200, Some(*n)),
        Outcome::NotFound => ("not_found", "not_found", 404, None),
        Outcome::Invalid => ("invalid", "invalid", 422, None),
    };
    let user = local_user();
    let now = now_nanos();
    let request_id = format!("cli-{}-{now}", std::process::id());
    let mut event = json!({
        "specversion": "1.0",
        "id": format!("access:{request_id}"),
        "source": SOURCE,
        "type": "audit.access",
        "time": sealog_model::time::format_micros(now),
        "actor": {"type": "human", "id": format!("local:{}", user.1)},
        "data": {
            "principal": null,
            "channel": "cli",
            "local_user": {"uid": user.0, "name": user.1},
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "status": status,
            "request_id": request_id,
        },
    });
    if let Some(n) = count {
        event["data"]["count"] = json!(n);
    }
    commit_own(
        ledger,
        &event,
        "the read could not be recorded, so it is not served",
        &format!("the read's access record ({name}) was not accepted, so the read is not served"),
    )
}

impl Reader {
    /// Appends the `audit.export` record of an export made here and waits until it is
    /// durable; call it before the export gets its name.
    pub(crate) fn record_export(
        &self,
        export_id: &str,
        format: &str,
        details: Value,
        count: usize,
    ) -> anyhow::Result<()> {
        if let Some(why) = &self.unrecorded {
            tell!(
                "sealog: note: this export was not recorded in the log ({why}); to have it recorded, export through the server: --url URL --key KEY"
            );
            return Ok(());
        }
        let user = local_user();
        let now = now_nanos();
        let mut data = json!({
            "export_id": export_id,
            "format": format,
            "count": count,
            "channel": "cli",
            "local_user": {"uid": user.0, "name": user.1},
        });
        if let (Value::Object(d), Value::Object(extra)) = (&mut data, details) {
            d.extend(extra);
        }
        let event = json!({
            "specversion": "1.0",
            "id": format!("export:cli-{}-{now}", std::process::id()),
            "source": SOURCE,
            "type": "audit.export",
            "time": sealog_model::time::format_micros(now),
            "actor": {"type": "human", "id": format!("local:{}", user.1)},
            "data": data,
        });
        commit_own(
            &self.ledger,
            &event,
            "the export could not be recorded, so it is not given its name",
            "the export's audit record was not accepted, so the export is not given its name",
        )
    }
}

/// The local user acting through the CLI, now: who and when Sealog's own records of an act
/// name.
pub(crate) fn local_act() -> sealog_ledger::Act<'static> {
    let user = local_user();
    sealog_ledger::Act {
        actor: json!({"type": "human", "id": format!("local:{}", user.1)}),
        time: sealog_model::time::format_micros(now_nanos()),
        source: SOURCE,
    }
}

pub(crate) fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The effective user: uid and login name (the uid again when it has no name).
#[allow(unsafe_code)]
pub(crate) fn local_user() -> (u32, String) {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    let uid = unsafe { libc::geteuid() };
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory of the stated size; `found` is either null
    // or points at `pwd`, whose strings point into `buf`, both alive below.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    let name = if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: getpwuid_r wrote a NUL-terminated name into `buf`.
        unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned()
    } else {
        uid.to_string()
    };
    (uid, name)
}
