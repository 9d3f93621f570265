//! `sealog export`, `sealog export approve` and `sealog verify-export`.
//!
//! A local export is recorded like a read: an `audit.export` record naming the local user,
//! the filters, the count and the file's hash is durable before the export gets its name.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sealog_export::{Format, Manifest, Request};
use sealog_ledger::{Packs, Query, Selection};
use serde_json::json;

use crate::access::Reader;
use crate::read::{ViewArg, as_of_size, axis_pairs, given, time_arg};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) action: Option<Action>,
    /// `jsonl` (one canonical record per line) or `parquet` (typed columns and the canonical
    /// record text).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The export file; FILE.proof and FILE.manifest.json are written beside it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing export of that name.
    #[arg(long)]
    force: bool,
    /// An evidence bundle of one resource (--subject) or one person (--data-subject): the
    /// records, their proof, the checkpoint, the verifier key, the schemas and a README.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "format"])]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) filters: Filters,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

#[derive(clap::Subcommand)]
pub(crate) enum Action {
    /// Approve a bulk export that waits for a second admin (server only: --url).
    Approve {
        id: String,
        #[command(flatten)]
        remote: crate::client::Remote,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    Jsonl,
    Parquet,
}

/// What an export selects: the filters of `query` that an export takes.
#[derive(clap::Args)]
pub(crate) struct Filters {
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// Whose personal data: the data subject the packs derive.
    #[arg(long)]
    data_subject: Option<String>,
    #[arg(long = "type")]
    event_type: Option<String>,
    #[arg(long)]
    source: Option<String>,
    /// Actor id.
    #[arg(long)]
    actor: Option<String>,
    /// NAME=VALUE on an indexed axis; repeatable.
    #[arg(long = "axis", value_name = "NAME=VALUE")]
    axes: Vec<String>,
    /// Event time at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Event time before.
    #[arg(long)]
    to: Option<String>,
    /// `history`: every record; `current`: per subject, only the head of its chain.
    #[arg(long, value_enum, default_value_t = ViewArg::History)]
    view: ViewArg,
    /// Records whose event time is at or before this time (history), or chain heads whose
    /// chain starts by then (current).
    #[arg(long)]
    valid_at: Option<String>,
    /// Cut the log at a tree size (or at an ingest time, RFC 3339). Proven against the
    /// oldest stored checkpoint that covers it, so the same --as-of gives the same export
    /// however much the log has grown since.
    #[arg(long)]
    as_of: Option<String>,
    /// Prove against this signed checkpoint (a file holding the note) instead.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
}

impl Filters {
    /// The filters as `POST /v1/exports` members, for client mode.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (name, v) in [
            ("scope", &self.scope),
            ("tenant", &self.tenant),
            ("subject", &self.subject),
            ("data_subject", &self.data_subject),
            ("type", &self.event_type),
            ("source", &self.source),
            ("actor", &self.actor),
            ("from", &self.from),
            ("to", &self.to),
            ("valid_at", &self.valid_at),
            ("as_of", &self.as_of),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), json!(v));
            }
        }
        if !self.axes.is_empty() {
            let axes: serde_json::Map<String, serde_json::Value> = self
                .axes
                .iter()
                .map(|p| {
                    let (n, v) = p.split_once('=').unwrap_or((p, ""));
                    (n.to_string(), json!(v))
                })
                .collect();
            m.insert("axes".into(), serde_json::Value::Object(axes));
        }
        if self.view == ViewArg::Current {
            m.insert("view".into(), json!("current"));
        }
        serde_json::Value::Object(m)
    }

    fn selection(&self, reader: &Reader) -> anyhow::Result<Selection> {
        let ledger = &reader.ledger;
        let mut equals = given(&[
            ("scope", &self.scope),
            ("tenant", &self.tenant),
            ("subject", &self.subject),
            ("data_subject", &self.data_subject),
            ("type", &self.event_type),
            ("source", &self.source),
            ("actor", &self.actor),
        ]);
        equals.extend(axis_pairs(ledger, &self.axes)?);
        let checkpoint = self
            .checkpoint
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p).with_context(|| format!("--checkpoint {}", p.display()))
            })
            .transpose()?;
        Ok(Selection {
            query: Query {
                equals,
                event_from: time_arg("from", &self.from)?,
                event_to: time_arg("to", &self.to)?,
                valid_at: time_arg("valid-at", &self.valid_at)?,
                view: self.view.into(),
                ..Query::default()
            },
            as_of: as_of_size(ledger, self.as_of.as_deref())?,
            checkpoint,
        })
    }
}

/// A progress line on a terminal, nothing otherwise.
fn progress() -> impl FnMut(u64, u64) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            tell_inline!("\rsealog: export: {done}/{total} records ");
            let _ = std::io::stderr().flush();
            if done == total {
                tell!();
            }
        }
    }
}

pub(crate) fn run(reader: &Reader, a: &Args) -> anyhow::Result<ExitCode> {
    let sel = a.filters.selection(reader)?;
    let record = |m: &Manifest, format: &str| -> Result<(), sealog_export::Error> {
        reader
            .record_export(&export_id(m), format, export_json(m), m.count as usize)
            .map_err(|e| sealog_export::Error::Refused(format!("{e:#}")))
    };
    if let Some(dir) = &a.bundle {
        let (axis, value) = match (&a.filters.subject, &a.filters.data_subject) {
            (Some(s), None) => ("subject", s),
            (None, Some(s)) => ("data_subject", s),
            _ => bail!("--bundle needs exactly one of --subject or --data-subject"),
        };
        let mut extra = sel.clone();
        extra.query.equals.retain(|(a, _)| a != axis);
        let req = sealog_export::BundleRequest {
            axis: axis.to_string(),
            value: value.clone(),
            extra,
            must_have: Vec::new(),
            dir: dir.clone(),
        };
        let report = sealog_export::bundle(&reader.ledger, &req, &mut progress(), &mut |m| {
            record(m, "bundle")
        })?;
        say!(
            "{}",
            json!({"bundle": report.dir, "count": report.manifest.count,
                   "tree_size": report.manifest.tree_size, "schemas": report.schemas})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(format), Some(out)) = (a.format, &a.out) else {
        bail!("an export needs --format jsonl|parquet and --out FILE (or --bundle DIR)");
    };
    let format = match format {
        FormatArg::Jsonl => Format::Jsonl,
        FormatArg::Parquet => Format::Parquet,
    };
    let req = Request {
        selection: sel,
        format,
        out: out.clone(),
        force: a.force,
        must_have: Vec::new(),
    };
    let pending = sealog_export::prepare(&reader.ledger, &req, &mut progress())?;
    record(&pending.manifest, format.name())?;
    let m = pending.commit()?;
    say!("{}", summary(out, &m))?;
    Ok(ExitCode::SUCCESS)
}

/// Client mode: the server makes the export (and records it); it is then downloaded. A
/// bulk export may wait for an admin's approval: the command says so and how to approve it.
pub(crate) fn run_client(client: &crate::client::Client, a: &Args) -> anyhow::Result<ExitCode> {
    if let Some(Action::Approve { id, .. }) = &a.action {
        let reply = client.post(
            &format!("/v1/exports/{}/approve", crate::client::path_segment(id)),
            "application/json",
            b"",
        )?;
        say!("{}", String::from_utf8_lossy(&reply.body).trim())?;
        return Ok(if reply.status == 202 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let (format, dest) = match (&a.bundle, a.format, &a.out) {
        (Some(dir), _, _) => ("bundle", dir.clone()),
        (None, Some(FormatArg::Jsonl), Some(out)) => ("jsonl", out.clone()),
        (None, Some(FormatArg::Parquet), Some(out)) => ("parquet", out.clone()),
        _ => bail!("an export needs --format jsonl|parquet and --out FILE (or --bundle DIR)"),
    };
    if a.filters.checkpoint.is_some() {
        bail!("--checkpoint is for local exports; against a server, pass --as-of SIZE");
    }
    let outputs = |files: &[String]| -> Vec<(String, PathBuf)> {
        files
            .iter()
            .map(|f| {
                let local = match format {
                    "bundle" => dest.join(f.strip_prefix("bundle/").unwrap_or(f)),
                    _ => {
                        let suffix = f.split_once('.').map_or("", |(_, rest)| rest);
                        let suffix = suffix.split_once('.').map_or("", |(_, rest)| rest);
                        crate::export::with_suffix(&dest, suffix)
                    }
                };
                (f.clone(), local)
            })
            .collect()
    };
    if !a.force && format != "bundle" {
        for p in [
            dest.clone(),
            sealog_export::proof_path(&dest),
            sealog_export::manifest_path(&dest),
        ] {
            if p.exists() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
    }
    if format == "bundle" && std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} exists and is not empty", dest.display());
    }
    let body = json!({"format": format, "filters": a.filters.to_json()});
    let reply = client.post(
        "/v1/exports",
        "application/json",
        body.to_string().as_bytes(),
    )?;
    if !matches!(reply.status, 201 | 202) {
        tell!(
            "sealog: the server answered {}: {}",
            reply.status,
            reply.message()
        );
        return Ok(ExitCode::from(1));
    }
    let mut status: serde_json::Value = serde_json::from_slice(&reply.body)?;
    let id = status["id"].as_str().unwrap_or_default().to_string();
    let mut show = progress();
    loop {
        match status["state"].as_str() {
            Some("done") => break,
            Some("pending") => {
                tell!(
                    "sealog: export {id} holds {} records and waits for a second admin's approval: sealog export approve {id} --url URL --key ADMIN_KEY; then fetch it with GET /v1/exports/{id}",
                    status["count"]
                );
                say!("{status}")?;
                return Ok(ExitCode::from(1));
            }
            Some("failed") => bail!("export {id} failed: {}", status["error"]),
            _ => {
                show(
                    status["written"].as_u64().unwrap_or(0),
                    status["count"].as_u64().unwrap_or(0),
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
                let reply = client.get(&format!("/v1/exports/{id}/status"))?;
                if reply.status != 200 {
                    bail!(
                        "export {id}: the server answered {}: {}",
                        reply.status,
                        reply.message()
                    );
                }
                status = serde_json::from_slice(&reply.body)?;
            }
        }
    }
    let files: Vec<String> = serde_json::from_value(status["files"].clone())?;
    if format == "bundle" {
        std::fs::create_dir_all(dest.join("schemas"))?;
    }
    for (remote, local) in outputs(&files) {
        client.download(&format!("/v1/exports/{id}/files/{remote}"), &local)?;
    }
    say!(
        "{}",
        json!({"id": id, "file": dest, "format": format, "count": status["count"],
               "sha256": status["manifest"]["sha256"], "tree_size": status["manifest"]["tree_size"]})
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `file` with a suffix after its name: `""` → itself, `"proof"` → `file.proof`.
pub(crate) fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    if suffix.is_empty() {
        return file.to_path_buf();
    }
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    file.with_file_name(name)
}

/// An export's id: the SHA-256 of its manifest, which names everything in it.
pub(crate) fn export_id(m: &Manifest) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(m.to_bytes())))
}

fn export_json(m: &Manifest) -> serde_json::Value {
    json!({"filters": m.filters, "sha256": m.sha256, "checkpoint_size": m.tree_size})
}

fn summary(out: &Path, m: &Manifest) -> serde_json::Value {
    json!({"file": out, "manifest": sealog_export::manifest_path(out), "format": m.format,
           "count": m.count, "bytes": m.bytes, "sha256": m.sha256, "tree_size": m.tree_size})
}

#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The export's manifest (FILE.manifest.json).
    manifest: PathBuf,
    /// The log's verifier key (or a file holding it), from a source you trust; without it
    /// the manifest's own key is used, which shows the export is intact, not whose it is.
    #[arg(long, value_name = "VKEY")]
    verifier_key: Option<String>,
}

pub(crate) fn verify(packs: &Packs, a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = crate::tlog::read_verifier_key(a.verifier_key.as_deref())?;
    match sealog_export::verify(&a.manifest, key.as_deref(), packs) {
        Ok(v) => {
            say!(
                "{}",
                json!({"status": "verified", "format": v.format, "count": v.count, "bytes": v.bytes,
                       "tree_size": v.tree_size, "origin": v.origin, "key_pinned": v.key_pinned,
                       "metadata_checked": v.metadata_checked, "missing": v.missing})
            )?;
            if v.unfiltered && v.missing > 0 {
                tell!(
                    "sealog: note: the manifest names no filter, yet {} of the {} records below its cut are not in the file: retention pruned them, or the manifest is not the one the export was made with (a manifest's filters are not signed; only the records and the checkpoint are proven)",
                    v.missing,
                    v.missing + v.count
                );
            }
            if !v.metadata_checked {
                tell!(
                    "sealog: note: the file was written by an earlier release, whose Parquet writer this one cannot run again: its rows are checked, its footer's statistics and page index are not; read it without statistics-based filtering, or export it again"
                );
            }
            if !v.key_pinned {
                tell!(
                    "sealog: note: checked with the key the manifest names; pass --verifier-key with the log's key from a source you trust to check whose export it is"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            say!("{}", json!({"status": "failed", "error": f.0}))?;
            tell!("sealog: verify-export: {}", f.0);
            Ok(ExitCode::from(1))
        }
    }
}
