//! The plain segment reader and crash recovery on a damaged log. A small log of valid
//! events, signed at its full size, is copied and its last segment damaged by the input;
//! the ledger is then opened (recovery runs) and read.
//!
//! Part 0 flips bytes of the segment (see `apply_edits`). Part 1, when present, cuts up to
//! its first two bytes' worth (little-endian) from the segment's end and appends the rest:
//! a torn tail, trailing garbage or forged frames. Part 2, when present, removes the log's
//! derived files (index, positions, tree), so that recovery replays every frame rather than
//! only those past the index.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sealog_ledger::{
    Author, IngestResult, Ledger, LedgerConfig, Packs, StoreConfig, Undeclared, VerifyOptions,
};
use sealog_model::Layout;

use super::{apply_edits, parts};

struct Template {
    /// Kept for the life of the process: every input starts from a copy of it.
    dir: tempfile::TempDir,
    /// The canonical records by seq, all covered by the newest signed checkpoint.
    records: Vec<Vec<u8>>,
}

fn config() -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig::default(),
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    }
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = crate::tempdir();
        let ledger = Ledger::open(dir.path(), config()).expect("open the template ledger");
        let author = Author::Producer { tenant: None };
        // Three groups, so the segment holds frames of three commits.
        let events: Vec<Vec<u8>> = crate::events::examples()
            .iter()
            .take(9)
            .map(|e| e.to_string().into_bytes())
            .collect();
        for group in events.chunks(3) {
            let raws: Vec<_> = group.iter().map(|e| Ok(e.as_slice())).collect();
            ledger.ingest(&raws, &author).expect("ingest the template");
        }
        let size = ledger.len();
        assert!(size >= 3, "the template holds {size} records");
        ledger.checkpoint().expect("sign the template");
        let records = (0..size)
            .map(|seq| {
                ledger
                    .get(seq)
                    .expect("read the template")
                    .expect("a record")
            })
            .collect();
        ledger.close().expect("close the template");
        Template { dir, records }
    })
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(Layout::new(dir).canonical().segments())
        .expect("the segments directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a plain segment")
}

/// Opening a damaged log never panics and never answers with other bytes: a refused open
/// leaves the segment as it found it; an accepted one still holds every signed record, each
/// read back as written or refused, and takes and reads back a new event; and `verify`
/// fails whenever a signed record's bytes were changed.
pub fn recovery(data: &[u8]) {
    let template = template();
    let signed = template.records.len() as u64;
    let dir = crate::tempdir();
    crate::files::copy_dir(template.dir.path(), dir.path());
    let layout = Layout::new(dir.path()).canonical();
    let segment = last_segment(dir.path());
    let original = std::fs::read(&segment).expect("read the segment");
    let parts = parts(data);
    let mut bytes = original.clone();
    apply_edits(&mut bytes, parts[0]);
    if let Some(tail) = parts.get(1) {
        let (cut, extra) = match tail {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (0, &tail[..]),
        };
        bytes.truncate(bytes.len().saturating_sub(cut));
        bytes.extend_from_slice(extra);
    }
    if parts.get(2).is_some() {
        for derived in [layout.index(), layout.tree()] {
            let _ = std::fs::remove_dir_all(derived);
        }
        let _ = std::fs::remove_file(layout.positions());
    }
    std::fs::write(&segment, &bytes).expect("write the damaged segment");
    // Where the signed records end in the original: a change before it is a changed record.
    let signed_end = original.len();
    let changed = bytes.len() < signed_end || bytes[..signed_end] != original[..];

    match Ledger::open(dir.path(), config()) {
        Err(_) => {
            let after = std::fs::read(&segment).expect("read the segment again");
            assert!(after == bytes, "a refused open changed the segment");
        }
        Ok(ledger) => {
            assert!(
                ledger.len() >= signed,
                "recovery left {} records of {signed} a signed checkpoint covers",
                ledger.len()
            );
            let mut wrong = Vec::new();
            for seq in 0..signed {
                if let Ok(Some(got)) = ledger.get(seq)
                    && got != template.records[seq as usize]
                {
                    wrong.push(seq);
                }
            }
            for seq in signed..ledger.len() {
                let _ = ledger.get(seq);
            }
            assert!(
                wrong.is_empty() || changed,
                "records {wrong:?} read back changed"
            );
            let event = crate::events::event("fuzz-after", None, "fuzz/subject", "fuzz.after");
            let raw = event.to_string().into_bytes();
            let author = Author::Producer { tenant: None };
            if let Ok(results) = ledger.ingest(&[Ok(raw.as_slice())], &author)
                && let Some(IngestResult::Appended { seq, record_id }) = results.first()
            {
                assert!(*seq >= signed, "a new record took signed seq {seq}");
                assert_eq!(
                    ledger.seq_of(record_id).expect("find the new record"),
                    Some(*seq),
                    "the record appended after recovery is not at its seq"
                );
            }
            let _ = ledger.close();
        }
    }
    if changed {
        let verdict = Ledger::verify(dir.path(), &VerifyOptions::default());
        assert!(
            verdict.is_err(),
            "verify passed a log whose signed records were changed"
        );
    }
}
