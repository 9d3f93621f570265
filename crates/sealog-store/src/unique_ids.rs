//! Whether any record id appears twice in a log, checked in bounded memory. Verification
//! needs every id of the log at once; held in one vector they took 40 bytes a record (400 MB
//! at ten million records). Here ids are kept in sorted runs of at most `run_max`; a full run
//! goes to a scratch file outside the data directory (verification writes nothing there), and
//! the runs are merged at the end, in id order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crate::contract::Id;

/// Ids held in memory before a run is written out: 40 MB.
pub(crate) const RUN_MAX: usize = 1 << 20;

/// One id and its seq as written to the scratch file.
const ENTRY: usize = 40;

/// An id seen twice: the id, the first seq it is at and the next.
pub(crate) type Repeat = (Id, u64, u64);

pub(crate) struct UniqueIds {
    run_max: usize,
    run: Vec<(Id, u64)>,
    scratch: Option<Scratch>,
}

/// The runs written out: one file, removed when dropped.
struct Scratch {
    path: PathBuf,
    file: BufWriter<File>,
    /// Where each run starts, and how many ids it holds.
    runs: Vec<(u64, u64)>,
    written: u64,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Scratch {
    fn create() -> io::Result<Scratch> {
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|e| io::Error::other(e.to_string()))?;
        let path = std::env::temp_dir().join(format!(
            "sealog-verify-ids-{}-{}",
            std::process::id(),
            u64::from_le_bytes(tag)
        ));
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?
        };
        Ok(Scratch {
            path,
            file: BufWriter::with_capacity(1 << 16, file),
            runs: Vec::new(),
            written: 0,
        })
    }
}

/// Where the merge reads a run from.
enum Source {
    /// A run written out, and how many of its ids are still to read: a file shorter than
    /// what was written is an error, never a run that ends early.
    File(BufReader<File>, u64),
    Memory(std::vec::IntoIter<(Id, u64)>),
}

impl Source {
    fn next(&mut self) -> io::Result<Option<(Id, u64)>> {
        match self {
            Source::Memory(ids) => Ok(ids.next()),
            Source::File(_, 0) => Ok(None),
            Source::File(reader, left) => {
                let mut entry = [0u8; ENTRY];
                reader.read_exact(&mut entry)?;
                *left -= 1;
                let (id, seq) = entry.split_at(32);
                Ok(Some((
                    id.try_into().expect("32 bytes"),
                    u64::from_le_bytes(seq.try_into().expect("8 bytes")),
                )))
            }
        }
    }
}

impl UniqueIds {
    pub(crate) fn new(run_max: usize) -> UniqueIds {
        UniqueIds {
            run_max: run_max.max(1),
            run: Vec::new(),
            scratch: None,
        }
    }

    pub(crate) fn push(&mut self, id: Id, seq: u64) -> io::Result<()> {
        self.run.push((id, seq));
        if self.run.len() >= self.run_max {
            self.write_run()?;
        }
        Ok(())
    }

    fn write_run(&mut self) -> io::Result<()> {
        self.run.sort_unstable();
        let scratch = match &mut self.scratch {
            Some(s) => s,
            None => self.scratch.insert(Scratch::create()?),
        };
        for (id, seq) in &self.run {
            scratch.file.write_all(id)?;
            scratch.file.write_all(&seq.to_le_bytes())?;
        }
        let len = self.run.len() as u64;
        scratch.runs.push((scratch.written, len));
        scratch.written += len * ENTRY as u64;
        self.run.clear();
        Ok(())
    }

    /// The first id, in id order, that appears twice (with its two lowest seqs), or `None`.
    pub(crate) fn first_repeat(mut self) -> io::Result<Option<Repeat>> {
        self.run.sort_unstable();
        let mut sources = Vec::new();
        if let Some(scratch) = self.scratch.as_mut() {
            scratch.file.flush()?;
            for &(offset, len) in &scratch.runs {
                let mut file = File::open(&scratch.path)?;
                file.seek(SeekFrom::Start(offset))?;
                sources.push(Source::File(BufReader::with_capacity(1 << 16, file), len));
            }
        }
        sources.push(Source::Memory(std::mem::take(&mut self.run).into_iter()));
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some((id, seq)) = source.next()? {
                heap.push(Reverse((id, seq, i)));
            }
        }
        let mut last: Option<(Id, u64)> = None;
        while let Some(Reverse((id, seq, i))) = heap.pop() {
            if let Some((last_id, last_seq)) = last
                && last_id == id
            {
                return Ok(Some((id, last_seq, seq)));
            }
            last = Some((id, seq));
            if let Some((id, seq)) = sources[i].next()? {
                heap.push(Reverse((id, seq, i)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Id {
        let mut id = [0u8; 32];
        // Ids in an order unlike their seqs'.
        id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        id
    }

    /// The answer of one vector sorted in memory, as verification gave before.
    fn in_memory(ids: &[(Id, u64)]) -> Option<Repeat> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.windows(2)
            .find(|w| w[0].0 == w[1].0)
            .map(|w| (w[0].0, w[0].1, w[1].1))
    }

    fn checked(ids: &[(Id, u64)], run_max: usize) -> Option<Repeat> {
        let mut check = UniqueIds::new(run_max);
        for &(id, seq) in ids {
            check.push(id, seq).unwrap();
        }
        check.first_repeat().unwrap()
    }

    #[test]
    fn runs_written_out_give_the_answer_one_vector_gives() {
        let mut rng: u64 = 0x5ea1_0900;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for case in 0..200u64 {
            let len = (next() % 300) as usize;
            let mut ids: Vec<(Id, u64)> =
                (0..len as u64).map(|s| (id(s + case * 1000), s)).collect();
            // Two cases in three repeat some earlier id later in the log, anywhere.
            for _ in 0..(case % 3) {
                if len > 1 {
                    let from = (next() % len as u64) as usize;
                    let to = (next() % len as u64) as usize;
                    ids[to].0 = ids[from].0;
                }
            }
            let want = in_memory(&ids);
            for run_max in [1, 2, 3, 7, 64, 1 << 20] {
                assert_eq!(
                    checked(&ids, run_max),
                    want,
                    "case {case}, runs of {run_max}"
                );
            }
        }
    }

    #[test]
    fn a_repeat_in_two_runs_names_both_seqs_and_the_scratch_file_goes() {
        let ids: Vec<(Id, u64)> = (0..10).map(|s| (id(s), s)).chain([(id(2), 10)]).collect();
        let mut check = UniqueIds::new(4);
        for &(id, seq) in &ids {
            check.push(id, seq).unwrap();
        }
        let path = check
            .scratch
            .as_ref()
            .expect("runs were written out")
            .path
            .clone();
        assert!(path.starts_with(std::env::temp_dir()));
        assert!(path.exists());
        assert_eq!(check.first_repeat().unwrap(), Some((id(2), 2, 10)));
        assert!(!path.exists(), "the scratch file is removed");
    }

    #[test]
    fn a_scratch_file_cut_short_is_an_error_not_a_shorter_check() {
        let mut check = UniqueIds::new(4);
        for seq in 0..10 {
            check.push(id(seq), seq).unwrap();
        }
        let scratch = check.scratch.as_mut().expect("runs were written out");
        scratch.file.flush().unwrap();
        scratch.file.get_ref().set_len(5 * ENTRY as u64).unwrap();
        let e = check.first_repeat().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
