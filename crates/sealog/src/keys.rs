//! `sealog keys create|list|revoke`: API keys for the server. Works on the key file alone,
//! without the store's lock, so it runs beside a serving `sealog serve`; the server picks the
//! change up on its next request and records it in the log (at once when running, or at its
//! next start) as `audit.key_created` / `audit.key_revoked`.

use std::process::ExitCode;

use sealog_server::keys::{self, KeyError, KeyRecord, KeySpec, Role};
use serde_json::json;

#[derive(clap::Subcommand)]
pub(crate) enum Keys {
    /// Create a key and print it once (it is stored only as a SHA-256 hash).
    Create {
        /// writer, reader, auditor, admin or subject; repeatable.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// Limit the key to one tenant's records.
        #[arg(long)]
        tenant: Option<String>,
        /// For the subject role: the data subject whose records the key may read.
        #[arg(long)]
        data_subject: Option<String>,
        /// A note for people (who holds the key, what for).
        #[arg(long)]
        label: Option<String>,
    },
    /// Every key ever created, revoked ones included, as NDJSON (never the secrets).
    List,
    /// Revoke a key by id (`key_…`); it stops working on the server's next request.
    Revoke { id: String },
    /// Rotate the log's signing key (not an API key): an `audit.log_key_rotated` record names
    /// the old and new verifier keys, a checkpoint both keys sign covers it, and only the new
    /// key signs after. Witnesses need the new key too (`witness serve --log ORIGIN=NEWKEY`).
    /// Stop the server first: it needs the data directory to itself.
    RotateLog,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: KeyError| e.to_string())
}

fn info(k: &KeyRecord) -> serde_json::Value {
    json!({
        "id": k.id, "roles": k.roles, "tenant": k.tenant, "data_subject": k.data_subject,
        "label": k.label, "created_at": k.created_at, "created_by": k.created_by,
        "revoked_at": k.revoked_at, "revoked_by": k.revoked_by,
    })
}

pub(crate) fn run(data: &std::path::Path, k: &Keys) -> anyhow::Result<ExitCode> {
    match k {
        Keys::Create {
            roles,
            tenant,
            data_subject,
            label,
        } => {
            let spec = KeySpec {
                roles: roles.clone(),
                tenant: tenant.clone(),
                data_subject: data_subject.clone(),
                label: label.clone(),
            };
            match keys::create(data, spec, "cli") {
                Ok(new) => {
                    let mut v = info(&new.record);
                    v["key"] = json!(new.secret);
                    say!("{v}")?;
                    tell!("sealog: keep this key now: it is not shown again");
                    Ok(ExitCode::SUCCESS)
                }
                Err(KeyError::Invalid(m)) => {
                    tell!("sealog: {m}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        Keys::List => {
            for k in keys::load(data)? {
                say!("{}", info(&k))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Keys::RotateLog => unreachable!("opened with the ledger in main"),
        Keys::Revoke { id } => match keys::revoke(data, id, "cli", None) {
            Ok(k) => {
                say!("{}", info(&k))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ (KeyError::NotFound(_) | KeyError::AlreadyRevoked(_))) => {
                tell!("sealog: {e}");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// `sealog keys rotate-log`.
pub(crate) fn rotate_log(ledger: &sealog_ledger::Ledger) -> anyhow::Result<ExitCode> {
    let r = ledger.rotate_log_key(&crate::access::local_act())?;
    say!(
        "{}",
        json!({"old_verifier_key": r.old_key, "new_verifier_key": r.new_key,
               "seq": r.seq, "checkpoint_size": r.checkpoint_size})
    )?;
    tell!(
        "sealog: the log now signs with {}; give it to every witness and verifier (`witness serve --log ORIGIN=VKEY`, `verify --verifier-key`)",
        r.new_key
    );
    Ok(ExitCode::SUCCESS)
}
