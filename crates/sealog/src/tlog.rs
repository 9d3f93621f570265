//! `sealog checkpoint`, `sealog prove …`, `sealog verify`.

use crate::access::{Outcome, Reader};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealog_ledger::{Ledger, Packs, VerifyFailure, VerifyOptions};
use sealog_merkle::Hash;
use serde_json::{Value, json};

#[derive(clap::Args)]
pub(crate) struct ProveArgs {
    #[command(subcommand)]
    pub(crate) which: Prove,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// A checkpoint note saved earlier: prove the log only grew since.
    #[arg(long)]
    pub(crate) since: Option<PathBuf>,
    /// The verifier key to trust, or a file holding it (default: the data directory's own
    /// keys/log.pub; with --url, the key the server reports, which proves nothing about the
    /// server itself).
    #[arg(long, value_name = "VKEY")]
    pub(crate) verifier_key: Option<String>,
    /// Checkpoint notes kept outside the data directory (a client's, or cosigned ones): the
    /// log must extend each. Their cosignatures count for --witness.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub(crate) trusted: Vec<PathBuf>,
    /// Require cosignatures by this witness (its cosignature verifier key, or a file holding
    /// it), on checkpoints kept in checkpoints/cosigned or given with --trusted. Repeatable.
    #[arg(long = "witness", value_name = "VKEY")]
    pub(crate) witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned (default: all).
    #[arg(long, value_name = "N")]
    pub(crate) witness_quorum: Option<usize>,
    /// Fail when records after the newest signed checkpoint (or, with --witness, the newest
    /// witnessed one) are not yet vouched for.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Check every record's index entries (not a sample of them) and that the index holds
    /// nothing the log does not.
    #[arg(long)]
    pub(crate) full: bool,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

impl VerifyArgs {
    fn verifier_key(&self) -> anyhow::Result<Option<String>> {
        read_verifier_key(self.verifier_key.as_deref())
    }
}

/// A `--verifier-key` argument: the key itself, or a file holding it.
pub(crate) fn read_verifier_key(arg: Option<&str>) -> anyhow::Result<Option<String>> {
    arg.map(|k| match std::fs::read_to_string(k) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(_) if k.contains('+') => Ok(k.to_string()),
        Err(e) => Err(anyhow::anyhow!("--verifier-key {k:?}: {e}")),
    })
    .transpose()
}

#[derive(Clone, Copy, clap::Subcommand)]
pub(crate) enum Prove {
    /// Inclusion proof of record SEQ in the tree of --size leaves (default: the latest checkpoint).
    Inclusion {
        seq: u64,
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof between tree sizes OLD and NEW.
    Consistency { old: u64, new: u64 },
}

fn b64_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

pub(crate) fn checkpoint(store: &Ledger, key: bool) -> anyhow::Result<ExitCode> {
    if key {
        say!("{}", store.verifier_key())?;
    } else {
        write!(std::io::stdout(), "{}", store.checkpoint()?.note)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn prove(reader: &Reader, p: &Prove) -> anyhow::Result<ExitCode> {
    let store = &reader.ledger;
    let latest = store.checkpoint()?;
    let len = store.len();
    let (action, resource) = match *p {
        Prove::Inclusion { seq, size } => ("proofs.inclusion", json!({"seq": seq, "size": size})),
        Prove::Consistency { old, new } => ("proofs.consistency", json!({"from": old, "to": new})),
    };
    let refuse = |outcome: Outcome, why: String| -> anyhow::Result<ExitCode> {
        reader.record(action, resource.clone(), &outcome)?;
        tell!("sealog: {why}");
        Ok(ExitCode::from(1))
    };
    let out = match *p {
        Prove::Inclusion { seq, size } => {
            let size = size.unwrap_or(latest.size);
            if size > len {
                return refuse(
                    Outcome::NotFound,
                    format!("no tree of size {size}: the log holds {len} records"),
                );
            }
            if seq >= len {
                return refuse(Outcome::NotFound, format!("no record {seq}"));
            }
            if seq >= size {
                return refuse(
                    Outcome::Invalid,
                    format!("record {seq} is not in the tree of size {size}"),
                );
            }
            let hashes = store.inclusion_proof(seq, size)?;
            let leaf = store
                .get(seq)?
                .map(|r| sealog_merkle::leaf_hash(&r))
                .expect("seq < size <= len");
            let mut v = json!({
                "leaf_index": seq, "tree_size": size, "root": B64.encode(store.root(size)?),
                "leaf_hash": B64.encode(leaf), "hashes": b64_all(&hashes),
            });
            if size == latest.size {
                v["checkpoint"] = json!(latest.note);
            }
            v
        }
        Prove::Consistency { old, new } => {
            if old == 0 || old > new {
                return refuse(
                    Outcome::Invalid,
                    format!("no consistency proof from size {old} to {new}: need 1 <= old <= new"),
                );
            }
            if new > len {
                return refuse(
                    Outcome::NotFound,
                    format!("no tree of size {new}: the log holds {len} records"),
                );
            }
            let hashes = store.consistency_proof(old, new)?;
            json!({
                "from": old, "to": new, "from_root": B64.encode(store.root(old)?), "to_root": B64.encode(store.root(new)?),
                "hashes": b64_all(&hashes),
            })
        }
    };
    reader.record(action, resource, &Outcome::Allowed(1))?;
    say!("{out}")?;
    Ok(ExitCode::SUCCESS)
}

/// Progress for a person watching: on a terminal only (a log or a pipe gets the result
/// alone), as a bar when the bytes to read are known (`total`: every log of a data
/// directory), as counts when they are not.
fn progress(total: Option<u64>) -> impl Fn(u64, u64) {
    let started = Instant::now();
    let shown = std::io::stderr().is_terminal();
    move |records: u64, done: u64| {
        if !shown {
            return;
        }
        let mib = done as f64 / 1048576.0;
        let rate = mib / started.elapsed().as_secs_f64().max(1e-9);
        match total.filter(|&t| t > 0) {
            Some(t) => {
                let share = (done as f64 / t as f64).min(1.0);
                let filled = (share * 30.0).round() as usize;
                tell_inline!(
                    "\rverify [{}{}] {:>3.0}% {records} records, {mib:.0} MiB, {rate:.0} MiB/s ",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    share * 100.0
                );
            }
            None => tell_inline!("\rverify: {records} records, {mib:.0} MiB, {rate:.0} MiB/s "),
        }
        let _ = std::io::stderr().flush();
    }
}

/// The bytes of every log in a data directory, uncompressed: what `verify` reads.
fn log_bytes(dir: &Path) -> u64 {
    let layout = sealog_model::Layout::new(dir);
    [
        layout.canonical().segments(),
        layout.quarantine().segments(),
    ]
    .iter()
    .map(|d| sealog_ledger::segment_bytes(d))
    .sum()
}

/// What `verify` reads: a data directory, or a database with this server's state directory.
pub(crate) enum Place<'a> {
    Dir(&'a Path),
    Database { url: String, state: &'a Path },
}

impl<'a> Place<'a> {
    pub(crate) fn of(url: Option<String>, dir: &'a Path, state: &'a Path) -> Self {
        match url {
            Some(url) => Place::Database { url, state },
            None => Place::Dir(dir),
        }
    }
}

pub(crate) fn verify(place: &Place<'_>, packs: &Packs, a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let since_text = a.since.as_ref().map(std::fs::read_to_string).transpose()?;
    let started = Instant::now();
    let total = match place {
        Place::Dir(dir) => Some(log_bytes(dir)),
        Place::Database { .. } => None,
    };
    let progress = progress(total);
    let trusted = a
        .trusted
        .iter()
        .map(|p| {
            anyhow::Context::with_context(std::fs::read_to_string(p), || {
                format!("--trusted {}", p.display())
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = VerifyOptions {
        key: a.verifier_key()?,
        since: since_text,
        trusted,
        witnesses: crate::witness::verifiers(&a.witnesses)?,
        witness_quorum: a.witness_quorum,
        progress: Some(&progress),
        packs: Some(packs),
        full: a.full,
    };
    let result = match place {
        Place::Dir(dir) => Ledger::verify(dir, &opts),
        Place::Database { url, state } => Ledger::verify_database(url, state, &opts),
    };
    if std::io::stderr().is_terminal() {
        tell!();
    }
    match result {
        Ok((r, q)) => {
            let checked = |files: &[(String, String)]| -> serde_json::Map<String, Value> {
                files.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
            };
            let quarantine = q.as_ref().map(|q| {
                json!({"records": q.records, "signed_records": q.signed_records,
                       "root": B64.encode(q.root), "verifier": q.verifier, "checkpoints": q.checkpoints,
                       "checked": checked(&q.files)})
            });
            let secs = started.elapsed().as_secs_f64();
            say!(
                "{}",
                json!({
                    "status": "intact", "records": r.records, "segments": r.segments, "checkpoints": r.checkpoints,
                    "root": B64.encode(r.root), "verifier": r.verifier, "since_size": r.since_size,
                    "signed_records": r.signed_records, "unsigned_records": r.records - r.signed_records,
                    "writer_durable": r.writer_durable, "cosigned": r.cosigned,
                    "witnessed_records": r.witnessed_records,
                    "bytes": r.bytes, "seconds": secs, "mib_per_s": r.bytes as f64 / 1048576.0 / secs.max(1e-9),
                    "quarantine": quarantine, "full": a.full, "checked": checked(&r.files),
                })
            )?;
            for (kind, what) in &r.files {
                tell!("sealog: checked {kind}: {what}");
            }
            for (kind, what) in q.iter().flat_map(|q| &q.files) {
                tell!("sealog: checked quarantine {kind}: {what}");
            }
            if let Some(n) = r.writer_durable {
                tell!(
                    "sealog: note: a process is writing this log; verified the {n} records it had made durable"
                );
            }
            if let Some(w) = r.witnessed_records.filter(|w| *w < r.records) {
                let tail = r.records - w;
                if a.strict {
                    tell!(
                        "sealog: verify FAILED (--strict): {tail} records after the newest witnessed checkpoint are not cosigned"
                    );
                    return Ok(ExitCode::from(1));
                }
                tell!(
                    "sealog: note: {tail} records after the newest witnessed checkpoint are intact but not yet cosigned"
                );
            }
            Ok(unvouched(r.records - r.signed_records, a.strict))
        }
        Err(f) => Ok(damaged(&f)),
    }
}

/// The first thing found wrong, on both outputs; exit code 1.
fn damaged(f: &VerifyFailure) -> ExitCode {
    // Exit code 1 says it whether or not the line can be written.
    let _ = say!(
        "{}",
        json!({"status": "damaged", "location": f.location, "message": f.message})
    );
    tell!("sealog: verify FAILED at {}: {}", f.location, f.message);
    ExitCode::from(1)
}

/// Records after the newest checkpoint are intact but not vouched for: a note, or with
/// `--strict` a failure.
fn unvouched(records: u64, strict: bool) -> ExitCode {
    if records == 0 {
        return ExitCode::SUCCESS;
    }
    if strict {
        tell!(
            "sealog: verify FAILED (--strict): {records} records after the newest signed checkpoint are not vouched for"
        );
        return ExitCode::from(1);
    }
    tell!(
        "sealog: note: {records} records after the newest signed checkpoint are intact but not yet signed"
    );
    ExitCode::SUCCESS
}

/// `sealog verify --url`: checks the server's signed checkpoint, then rebuilds its whole tree
/// from the entry bundles it serves (every record re-read and re-hashed, as offline) and
/// compares roots; with `--since`, also that the tree only grew.
pub(crate) fn verify_remote(
    client: &crate::client::Client,
    a: &VerifyArgs,
) -> anyhow::Result<ExitCode> {
    if !a.trusted.is_empty() || !a.witnesses.is_empty() || a.witness_quorum.is_some() {
        anyhow::bail!(
            "--trusted and --witness check a data directory: run verify where the log is (--data), or fetch /checkpoint and check it with --trusted there"
        );
    }
    if a.full {
        anyhow::bail!(
            "--full checks a data directory's index against its log: run verify where the log is (--data); through a server the tree is rebuilt from the records alone"
        );
    }
    let since = a.since.as_ref().map(std::fs::read_to_string).transpose()?;
    let key = match a.verifier_key()? {
        Some(k) => k,
        None => {
            tell!(
                "sealog: note: no --verifier-key: checking against the key the server reports, which proves consistency, not who signed"
            );
            client.text("/checkpoint/key")?.trim().to_string()
        }
    };
    let progress = progress(None);
    let result = crate::client::verify_tree(client, &key, since.as_deref(), &progress);
    if std::io::stderr().is_terminal() {
        tell!();
    }
    match result {
        Ok(r) => {
            say!(
                "{}",
                json!({"status": "intact", "records": r.records, "root": B64.encode(r.root),
                       "verifier": r.verifier, "since_size": r.since_size, "source": "server"})
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => Ok(damaged(&f)),
    }
}
