//! `sealog checkpoint`, `sealog prove …`, `sealog verify`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sealog_merkle::Hash;
use sealog_store::{Store, verify};
use serde_json::json;

#[derive(clap::Subcommand)]
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

pub(crate) fn checkpoint(store: &Store, key: bool) -> anyhow::Result<ExitCode> {
    if key {
        println!("{}", store.verifier_key());
    } else {
        print!("{}", store.checkpoint()?.note);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn prove(store: &Store, p: &Prove) -> anyhow::Result<ExitCode> {
    let latest = store.checkpoint()?;
    let out = match *p {
        Prove::Inclusion { seq, size } => {
            let size = size.unwrap_or(latest.size);
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
            let hashes = store.consistency_proof(old, new)?;
            json!({
                "from": old, "to": new, "from_root": B64.encode(store.root(old)?), "to_root": B64.encode(store.root(new)?),
                "hashes": b64_all(&hashes),
            })
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn verify(
    dir: &Path,
    since: Option<&PathBuf>,
    key: Option<&String>,
) -> anyhow::Result<ExitCode> {
    let since_text = since.map(std::fs::read_to_string).transpose()?;
    let started = Instant::now();
    let progress = |records: u64, bytes: u64| {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\rverify: {records} records, {:.0} MiB, {:.0} MiB/s ",
            bytes as f64 / 1048576.0,
            bytes as f64 / 1048576.0 / secs
        );
        let _ = std::io::stderr().flush();
    };
    let opts = verify::Options {
        key: key.cloned(),
        since: since_text,
        progress: Some(&progress),
    };
    let result = verify::verify(dir, &opts).and_then(|r| {
        // The quarantine log is a log of its own, with its own key and checkpoints.
        let qdir = dir.join("quarantine");
        if !qdir.join("log").exists() {
            return Ok((r, None));
        }
        let q_opts = verify::Options {
            key: None,
            since: None,
            progress: Some(&progress),
        };
        match verify::verify(&qdir, &q_opts) {
            Ok(q) => Ok((r, Some(q))),
            Err(mut f) => {
                f.location = format!("quarantine log: {}", f.location);
                Err(f)
            }
        }
    });
    eprintln!();
    match result {
        Ok((r, quarantine)) => {
            let quarantine = quarantine.map(|q| {
                json!({"records": q.records, "signed_records": q.signed_records,
                       "root": B64.encode(q.root), "verifier": q.verifier, "checkpoints": q.checkpoints})
            });
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({
                    "status": "intact", "records": r.records, "segments": r.segments, "checkpoints": r.checkpoints,
                    "root": B64.encode(r.root), "verifier": r.verifier, "since_size": r.since_size,
                    "signed_records": r.signed_records, "unsigned_records": r.records - r.signed_records,
                    "bytes": r.bytes, "seconds": secs, "mib_per_s": r.bytes as f64 / 1048576.0 / secs.max(1e-9),
                    "quarantine": quarantine,
                })
            );
            if r.signed_records < r.records {
                eprintln!(
                    "sealog: note: {} records after the newest signed checkpoint are intact but not yet signed",
                    r.records - r.signed_records
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            println!(
                "{}",
                json!({"status": "damaged", "location": f.location, "message": f.message})
            );
            eprintln!("sealog: verify FAILED at {}: {}", f.location, f.message);
            Ok(ExitCode::from(1))
        }
    }
}
