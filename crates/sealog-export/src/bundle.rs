//! Evidence bundles: one resource's or one person's whole history, with everything a third
//! party needs to check it offline.

use std::fs;
use std::path::{Path, PathBuf};

use sealog_ledger::{Ledger, Selection, View};

use crate::error::Error;
use crate::manifest::{Format, Manifest};
use crate::write::{Request, prepare};

/// What a bundle holds.
#[derive(Debug, Clone)]
pub struct BundleReport {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub schemas: Vec<String>,
}

const README: &str = include_str!("bundle_readme.md");

/// What a bundle holds: the records that have `axis = value` (`subject` or
/// `data_subject`) and `extra`'s filters, history view, cut where `extra` cuts the log and
/// proven against its checkpoint if it names one, into `dir`.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    pub axis: String,
    pub value: String,
    pub extra: Selection,
    /// The caller's reach, checked on every record (see [`Request::must_have`]).
    pub must_have: Vec<(String, String)>,
    /// Must not exist, or be empty.
    pub dir: PathBuf,
}

/// Writes a bundle. It is made in a directory beside its own and renamed into place whole,
/// after `before_commit` has accepted its manifest (the caller records the export there).
pub fn bundle(
    ledger: &Ledger,
    req: &BundleRequest,
    progress: &mut dyn FnMut(u64, u64),
    before_commit: &mut dyn FnMut(&Manifest) -> Result<(), Error>,
) -> Result<BundleReport, Error> {
    let (axis, value, extra, final_dir) = (&req.axis, &req.value, &req.extra, &req.dir);
    let must_have = req.must_have.clone();
    match fs::read_dir(final_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Exists(final_dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(final_dir, e)),
    }
    let name = final_dir.file_name().unwrap_or_default().to_string_lossy();
    let partial =
        PartialDir(final_dir.with_file_name(format!(".{name}.{}.partial", std::process::id())));
    let dir = partial.0.as_path();
    let _ = fs::remove_dir_all(dir);
    owner_only_dir(dir)?;
    let mut selection = extra.clone();
    selection.query.equals.push((axis.clone(), value.clone()));
    selection.query.view = View::History;
    let req = Request {
        selection,
        format: Format::Jsonl,
        out: dir.join("records.jsonl"),
        force: false,
        must_have,
    };
    let pending = prepare(ledger, &req, progress)?;
    let types = pending.types.clone();
    let manifest = pending.commit()?;
    let write = |name: &str, text: &str| owner_only_file(&dir.join(name), text);
    write("checkpoint", &manifest.checkpoint)?;
    write("log.pub", &format!("{}\n", manifest.verifier_key.trim()))?;
    write("README.md", README)?;
    let schemas_dir = dir.join("schemas");
    owner_only_dir(&schemas_dir)?;
    let mut schemas = Vec::new();
    for t in types {
        if let Some((_, text)) = ledger.packs().schema(&t) {
            let name = format!("{t}.schema.json");
            owner_only_file(&schemas_dir.join(&name), text)?;
            schemas.push(name);
        }
    }
    before_commit(&manifest)?;
    if final_dir.exists() {
        fs::remove_dir(final_dir).map_err(|e| Error::io(final_dir, e))?;
    }
    fs::rename(dir, final_dir).map_err(|e| Error::io(final_dir, e))?;
    std::mem::forget(partial);
    crate::files::sync_dir(crate::files::dir_of(final_dir))?;
    Ok(BundleReport {
        dir: final_dir.clone(),
        manifest,
        schemas,
    })
}

/// A bundle is a data subject's records: its directory and every file in it are owner-only,
/// as an export's files are, whatever the umask.
fn owner_only_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

fn owner_only_file(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .map_err(|e| Error::io(path, e))
}

/// A bundle being made: removed unless it was renamed into place.
struct PartialDir(PathBuf);

impl Drop for PartialDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
