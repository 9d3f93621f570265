//! Secondary indexes: record_id → seq (dedupe and lookup), posting → seqs (equality axes),
//! event time → seqs (windows). Everything here is derived from the log: it is written
//! without slowing acknowledgements and rebuilt from the log after a crash.
//!
//! Shape: a memtable for the newest records plus immutable sorted runs on disk (see `run`).
//! Runs are merged like a binary counter, so there are O(log n) of them and each entry is
//! rewritten O(log n) times. `MANIFEST` names the runs and how many records they cover; it
//! is replaced atomically after the runs it names are durable.

mod memtable;
mod run;

use std::fs;
use std::path::{Path, PathBuf};

use sealog_model::{Posting, PreparedEvent};

use crate::error::StoreError;
use memtable::Memtable;
use run::Run;

const MANIFEST_HEADER: &str = "sealog-index 1";

pub(crate) struct Index {
    dir: PathBuf,
    memtable_records_max: u64,
    runs: Vec<Run>,
    mem: Memtable,
}

impl Index {
    /// Opens the index; it covers records `0..end()` (runs only: the memtable starts empty).
    pub(crate) fn open(dir: &Path, memtable_records_max: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let manifest = dir.join("MANIFEST");
        let mut runs = Vec::new();
        match fs::read_to_string(&manifest) {
            Ok(text) => {
                let mut lines = text.lines();
                if lines.next() != Some(MANIFEST_HEADER) {
                    return Err(StoreError::Corrupted(format!(
                        "{}: unknown header",
                        manifest.display()
                    )));
                }
                for line in lines {
                    let f: Vec<u64> = line
                        .split(' ')
                        .skip(1)
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|_| {
                            StoreError::Corrupted(format!(
                                "{}: bad line {line:?}",
                                manifest.display()
                            ))
                        })?;
                    let [first, end, a, b, c] = f[..] else {
                        return Err(StoreError::Corrupted(format!(
                            "{}: bad line {line:?}",
                            manifest.display()
                        )));
                    };
                    runs.push(Run::open(dir, first, end, [a, b, c])?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&manifest, e)),
        }
        let end = runs.last().map_or(0, |r: &Run| r.end);
        for w in runs.windows(2) {
            if w[0].end != w[1].first {
                return Err(StoreError::Corrupted(format!(
                    "{}: runs are not contiguous",
                    manifest.display()
                )));
            }
        }
        Ok(Index {
            dir: dir.to_path_buf(),
            memtable_records_max,
            runs,
            mem: Memtable::new(end),
        })
    }

    /// Forgets everything, for a rebuild from the log.
    pub(crate) fn reset(dir: &Path, memtable_records_max: u64) -> Result<Self, StoreError> {
        let _ = fs::remove_file(dir.join("MANIFEST"));
        remove_unnamed_runs(dir, &[])?;
        Index::open(dir, memtable_records_max)
    }

    /// Records covered by durable runs.
    pub(crate) fn durable_end(&self) -> u64 {
        self.mem.first
    }

    /// Records covered in all.
    pub(crate) fn end(&self) -> u64 {
        self.mem.end
    }

    pub(crate) fn insert(&mut self, seq: u64, event: &PreparedEvent) {
        self.mem.insert(
            seq,
            event.record_id.0,
            &event.postings,
            event.event_time_nanos,
        );
    }

    pub(crate) fn needs_flush(&self) -> bool {
        self.mem.records() >= self.memtable_records_max
    }

    pub(crate) fn lookup_rid(&self, rid: &[u8; 32]) -> Option<u64> {
        self.mem
            .lookup_rid(rid)
            .or_else(|| self.runs.iter().rev().find_map(|r| r.lookup_rid(rid)))
    }

    /// Up to `limit` seqs in `[from, below)` with `key`, ascending.
    pub(crate) fn postings(&self, key: &Posting, from: u64, below: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for r in self.runs.iter().filter(|r| r.end > from && r.first < below) {
            r.postings(key, from, limit, &mut out);
            if out.len() >= limit {
                break;
            }
        }
        if out.len() < limit {
            self.mem.postings(key, from, limit, &mut out);
        }
        out.retain(|&s| s < below);
        out
    }

    pub(crate) fn contains(&self, key: &Posting, seq: u64) -> bool {
        if seq >= self.mem.first {
            return self.mem.contains(key, seq);
        }
        let i = self.runs.partition_point(|r| r.end <= seq);
        self.runs.get(i).is_some_and(|r| r.contains(key, seq))
    }

    /// How many records carry `key`: O(runs × log n), used to pick the rarest key to scan.
    pub(crate) fn count(&self, key: &Posting) -> u64 {
        self.runs.iter().map(|r| r.count(key)).sum::<u64>() + self.mem.count(key)
    }

    /// Seqs whose event time is in `[from, to)`, ascending.
    pub(crate) fn time_range(&self, from: i64, to: i64) -> Vec<u64> {
        let mut out = Vec::new();
        for r in &self.runs {
            r.time_range(from, to, &mut out);
        }
        self.mem.time_range(from, to, &mut out);
        out.sort_unstable();
        out
    }

    /// Writes the memtable as a run, makes it durable, names it in the manifest, and merges
    /// runs of similar size. The caller must have made `positions` durable up to `end()`.
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        if self.mem.records() == 0 {
            return Ok(());
        }
        let (first, end) = (self.mem.first, self.mem.end);
        let (rid, post, time) = self.mem.sorted_tables();
        let s = run::stem(&self.dir, first, end);
        let counts = [
            run::write_table(&s.with_extension("rid"), rid.iter())?,
            run::write_table(&s.with_extension("post"), post.iter())?,
            run::write_table(&s.with_extension("time"), time.iter())?,
        ];
        self.runs.push(Run::open(&self.dir, first, end, counts)?);
        self.mem = Memtable::new(end);
        while self.runs.len() >= 2 {
            let n = self.runs.len();
            let (older, newer) = (&self.runs[n - 2], &self.runs[n - 1]);
            if older.end - older.first > 2 * (newer.end - newer.first) {
                break;
            }
            let merged = merge(&self.dir, older, newer)?;
            self.runs.truncate(n - 2);
            self.runs.push(merged);
        }
        self.write_manifest()?;
        let keep: Vec<(u64, u64)> = self.runs.iter().map(|r| (r.first, r.end)).collect();
        remove_unnamed_runs(&self.dir, &keep)
    }

    fn write_manifest(&self) -> Result<(), StoreError> {
        let mut text = format!("{MANIFEST_HEADER}\n");
        for r in &self.runs {
            let [a, b, c] = r.counts();
            text.push_str(&format!("run {} {} {a} {b} {c}\n", r.first, r.end));
        }
        let tmp = self.dir.join("MANIFEST.tmp");
        fs::write(&tmp, text).map_err(|e| StoreError::io(&tmp, e))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io(&tmp, e))?;
        let manifest = self.dir.join("MANIFEST");
        fs::rename(&tmp, &manifest).map_err(|e| StoreError::io(&manifest, e))?;
        crate::segment::sync_dir(&self.dir)
    }
}

fn merge(dir: &Path, a: &Run, b: &Run) -> Result<Run, StoreError> {
    let s = run::stem(dir, a.first, b.end);
    let counts = [
        run::write_table(&s.with_extension("rid"), merge_sorted(&a.rid, &b.rid))?,
        run::write_table(&s.with_extension("post"), merge_sorted(&a.post, &b.post))?,
        run::write_table(&s.with_extension("time"), merge_sorted(&a.time, &b.time))?,
    ];
    Run::open(dir, a.first, b.end, counts)
}

fn merge_sorted<'a>(a: &'a run::Table, b: &'a run::Table) -> impl Iterator<Item = &'a [u8]> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let take_a = match (i < a.len(), j < b.len()) {
            (false, false) => return None,
            (true, false) => true,
            (false, true) => false,
            (true, true) => a.entry(i) <= b.entry(j),
        };
        if take_a {
            i += 1;
            Some(a.entry(i - 1))
        } else {
            j += 1;
            Some(b.entry(j - 1))
        }
    })
}

/// Deletes run files the manifest does not name: leftovers of a flush or merge that a crash
/// interrupted, or runs a merge replaced. Index files are derived; log files are never touched.
fn remove_unnamed_runs(dir: &Path, keep: &[(u64, u64)]) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_prefix("run-").and_then(|n| n.split('.').next()) else {
            continue;
        };
        let named = stem
            .split_once('-')
            .and_then(|(f, e)| Some((f.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
            .is_some_and(|fe| keep.contains(&fe));
        if !named {
            fs::remove_file(entry.path()).map_err(|e| StoreError::io(&entry.path(), e))?;
        }
    }
    Ok(())
}
