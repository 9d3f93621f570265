//! Writing an export: the slice's records in order into the format's file, the multiproof
//! checked against the signed root with the leaves just written, then the proof and the
//! manifest; all three aside, synced, and renamed into place with the manifest last.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use sealog_ledger::{Ledger, Located, Packs, Selection};
use sealog_merkle::{Hash, root_from_multiproof};

use crate::error::Error;
use crate::files::{Aside, Hashing, dir_of, sha256_hex, sync_dir};
use crate::manifest::{self, COMPLETENESS, Filters, Format, Manifest, ORDER, ProofRef};
use crate::{manifest_path, parquet_file, proof, proof_path};

/// What to export and where.
#[derive(Debug, Clone)]
pub struct Request {
    pub selection: Selection,
    pub format: Format,
    pub out: PathBuf,
    /// Replace an existing export of that name.
    pub force: bool,
    /// (axis, value) pairs every record must have, checked on each record as it is written
    /// (a tenant's or a data subject's reach), beside the index walk that selected them.
    pub must_have: Vec<(String, String)>,
}

/// Where records go, in export order.
pub(crate) trait Sink {
    /// One record; `located` when the reader has already read it apart.
    fn push(&mut self, bytes: &[u8], located: Option<Located>) -> Result<(), Error>;
    /// Flushes everything; the file, its size and its SHA-256.
    fn finish(self: Box<Self>) -> Result<(File, u64, String), Error>;
}

struct Jsonl {
    out: Hashing<BufWriter<File>>,
    path: PathBuf,
}

impl Sink for Jsonl {
    fn push(&mut self, bytes: &[u8], _: Option<Located>) -> Result<(), Error> {
        self.out
            .write_all(bytes)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| Error::io(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<(File, u64, String), Error> {
        let Jsonl { out, path } = *self;
        let (bytes, digest) = (out.bytes, out.digest());
        let file = out
            .inner
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        Ok((file, bytes, digest))
    }
}

/// Threads reading an export's records, beside the one writing them.
const READERS: usize = 2;

/// Bytes written between syncs of a growing export file.
const SYNC_EVERY: usize = 64 << 20;

/// A record as the reading side hands it over: seq, bytes, leaf hash, and its facts when
/// the writer needs them.
type Read = (u64, Vec<u8>, Hash, Option<Located>);

/// Records handed to a reader at a time: the store reads those close together at once.
const CHUNK: usize = 256;

fn read_chunk(
    ledger: &Ledger,
    packs: &Packs,
    seqs: &[u64],
    read_apart: bool,
) -> Result<Vec<Read>, Error> {
    let records = ledger.get_many_with_leaves(seqs)?;
    seqs.iter()
        .zip(records)
        .map(|(&seq, record)| {
            let (bytes, leaf) = record.ok_or_else(|| {
                Error::Corrupted(format!("record {seq} was selected but is gone"))
            })?;
            let located = if read_apart {
                Some(sealog_ledger::locate(packs, &bytes).map_err(Error::Corrupted)?)
            } else {
                None
            };
            Ok((seq, bytes, leaf, located))
        })
        .collect()
}

/// An export written and synced under temporary names: [`Pending::commit`] gives it its
/// names (the manifest last); dropped instead, it leaves nothing behind.
pub struct Pending {
    pub manifest: Manifest,
    /// The event types of its records, sorted.
    pub types: Vec<String>,
    files: [Aside; 3],
    dir: PathBuf,
}

impl Pending {
    pub fn commit(self) -> Result<Manifest, Error> {
        let Pending {
            manifest,
            files,
            dir,
            ..
        } = self;
        for f in files {
            f.commit()?;
        }
        sync_dir(&dir)?;
        Ok(manifest)
    }
}

/// Writes an export and gives it its names; `progress(done, total)` is called as records
/// are written.
pub fn export(
    ledger: &Ledger,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Manifest, Error> {
    prepare(ledger, req, progress)?.commit()
}

/// Writes an export under temporary names. Nothing appears under `out` (or its proof and
/// manifest names) unless the [`Pending`] is committed.
pub fn prepare(
    ledger: &Ledger,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Pending, Error> {
    let out = &req.out;
    let (proof_file, manifest_file) = (proof_path(out), manifest_path(out));
    if !req.force {
        for p in [out, &proof_file, &manifest_file] {
            if p.symlink_metadata().is_ok() {
                return Err(Error::Exists(p.clone()));
            }
        }
    }
    let dir = dir_of(out);
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    // A person is named by pseudonym in the manifest too, as the records' index has them.
    let mut query = req.selection.query.clone();
    ledger.pseudonymise_query(&mut query);
    let selection = Selection {
        query,
        ..req.selection.clone()
    };
    let slice = ledger.slice(&selection)?;
    let total = slice.order.len() as u64;

    let (data, file) = Aside::create(out)?;
    let syncing = file.try_clone().map_err(|e| Error::io(data.tmp(), e))?;
    let mut sink: Box<dyn Sink> = match req.format {
        Format::Jsonl => Box::new(Jsonl {
            out: Hashing::new(BufWriter::with_capacity(1 << 20, file)),
            path: data.tmp().to_path_buf(),
        }),
        Format::Parquet => Box::new(parquet_file::Writer::new(
            file,
            data.tmp(),
            ledger.packs(),
            &slice.types,
        )?),
    };
    // Reader threads read the records and hash each into its leaf (proven together against
    // the signed root below); this one writes and hashes the file. What the writer needs of
    // a record's content (Parquet's columns, the caller's reach) is read apart on the
    // reading side.
    let read_apart = req.format == Format::Parquet || !req.must_have.is_empty();
    let packs = ledger.packs();
    let order = &slice.order;
    let mut leaves: Vec<(u64, Hash)> = Vec::with_capacity(order.len());
    std::thread::scope(|scope| -> Result<(), Error> {
        // Readers take every READERS-th chunk of the order; this thread takes their output
        // in turn.
        let mut from_readers = Vec::with_capacity(READERS);
        for r in 0..READERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Read>, Error>>(2);
            from_readers.push(rx);
            scope.spawn(move || {
                for chunk in order.chunks(CHUNK).skip(r).step_by(READERS) {
                    let item = read_chunk(ledger, packs, chunk, read_apart);
                    let failed = item.is_err();
                    if tx.send(item).is_err() || failed {
                        break;
                    }
                }
            });
        }
        // Written data is synced as it grows, beside the writing, so the sync before the
        // rename has little left to do.
        let (tick, ticks) = std::sync::mpsc::sync_channel::<()>(1);
        scope.spawn(move || {
            for () in ticks {
                let _ = syncing.sync_data();
            }
        });
        let mut unsynced = 0usize;
        let chunks = order.len().div_ceil(CHUNK);
        let mut in_order = Vec::new().into_iter();
        let mut next_chunk = 0;
        for i in 0..order.len() {
            if in_order.len() == 0 && next_chunk < chunks {
                let Ok(chunk) = from_readers[next_chunk % READERS].recv() else {
                    break;
                };
                in_order = chunk?.into_iter();
                next_chunk += 1;
            }
            let Some((seq, bytes, leaf, located)) = in_order.next() else {
                break;
            };
            let outside = located
                .as_ref()
                .and_then(|r| req.must_have.iter().find(|(a, v)| !r.has(a, v)));
            if let Some((a, v)) = outside {
                return Err(Error::Corrupted(format!(
                    "record {seq} was selected but does not have {a} = {v:?}"
                )));
            }
            sink.push(&bytes, located)?;
            unsynced += bytes.len() + 1;
            if unsynced >= SYNC_EVERY {
                let _ = tick.try_send(());
                unsynced = 0;
            }
            leaves.push((seq, leaf));
            if i % 4096 == 4095 {
                progress(i as u64 + 1, total);
            }
        }
        Ok(())
    })?;
    if leaves.len() != order.len() {
        return Err(Error::Corrupted("the records were not all read".into()));
    }
    let (file, bytes, sha256) = sink.finish()?;
    file.sync_all().map_err(|e| Error::io(data.tmp(), e))?;
    drop(file);
    progress(total, total);

    let cp = &slice.checkpoint;
    leaves.sort_unstable_by_key(|l| l.0);
    let (seqs, hashes): (Vec<u64>, Vec<Hash>) = leaves.into_iter().unzip();
    let multiproof = ledger.multiproof(&seqs, cp.size)?;
    let root = root_from_multiproof(&seqs, &hashes, cp.size, &multiproof)
        .map_err(|e| Error::Corrupted(format!("the log's tree gives a bad proof: {e}")))?;
    if root != cp.root {
        return Err(Error::Corrupted(format!(
            "the records read do not hash to the signed root of tree size {}: the log was changed after it was signed (run `sealog verify`)",
            cp.size
        )));
    }
    let proof_bytes = proof::write(&multiproof);
    let manifest = Manifest {
        sealog_export: manifest::VERSION,
        format: req.format,
        bytes,
        count: total,
        sha256,
        order: ORDER.to_string(),
        filters: Filters::of(&selection.query, slice.cut),
        tree_size: cp.size,
        checkpoint: cp.note.clone(),
        verifier_key: ledger.verifier_key(),
        proof: ProofRef {
            file: manifest::PROOF_FILE.to_string(),
            kind: proof::KIND.to_string(),
            hashes: multiproof.len() as u64,
            sha256: sha256_hex(&proof_bytes),
        },
        packs: ledger.packs().fingerprint(),
        completeness: COMPLETENESS.to_string(),
        sealog_version: env!("CARGO_PKG_VERSION").to_string(),
        manifest_sha256: String::new(),
    }
    .sealed();
    let proof_aside = Aside::whole(&proof_file, &proof_bytes)?;
    let manifest_aside = Aside::whole(&manifest_file, &manifest.to_bytes())?;
    Ok(Pending {
        manifest,
        types: slice.types,
        files: [data, proof_aside, manifest_aside],
        dir: dir.to_path_buf(),
    })
}
