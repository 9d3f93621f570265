//! Tamper campaign against the real `sealog verify`.
//!
//! PRODUCT §7: any flipped byte, truncation, reordering or deleted record must be found *and
//! located*, and `verify --since OLD_CHECKPOINT` must prove the log only grew. Each test damages
//! a copy of a pristine log of a few thousand records spread over many sealed segments and
//! dozens of signed checkpoints, then holds the binary's report to the exact place it damaged.
//!
//! The random trials are reproducible: set `SEALOG_TAMPER_SEED` to the seed printed in a
//! failure message. With `CI` set, the campaigns run hundreds of trials instead of dozens.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sealog_ledger::{
    Author, Durability, IngestResult, Ledger, LedgerConfig, Packs, StoreConfig, Undeclared,
};
use sealog_merkle::Frontier;
use sealog_merkle::note::{Signer, Verifier};
use sealog_model::jcs;
use sealog_testkit::files::{copy_dir, make_writable, truncate};
use sealog_testkit::format::{HEADER_BYTES, encode_frame, forge, frames};
use sealog_testkit::{Cli, Rng, Run};
use serde_json::{Value, json};
use tempfile::TempDir;

const RECORDS: u64 = 3_000;
/// Small segments, so the log has many sealed ones and damage can hit any of them.
const SEGMENT_BYTES_MAX: u64 = 64 * 1024;
const DEFAULT_SEED: u64 = 0x5ea1_0600_7a3e_0001;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/// Uniform in `0..n`, as an index.
fn index(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

fn seed() -> u64 {
    match std::env::var("SEALOG_TAMPER_SEED") {
        Ok(s) => {
            let s = s.trim();
            s.strip_prefix("0x")
                .map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16))
                .expect("SEALOG_TAMPER_SEED must be a u64 (decimal or 0x-hex)")
        }
        Err(_) => DEFAULT_SEED,
    }
}

fn trials(local: usize, ci: usize) -> usize {
    if sealog_testkit::under_ci() {
        ci
    } else {
        local
    }
}

// ---------------------------------------------------------------------------------------------
// Building logs

/// An order event of about 300 bytes; `history` tells apart logs with different pasts.
fn event(history: &str, i: u64) -> Value {
    let statuses = ["placed", "paid", "shipped", "delivered", "refunded"];
    json!({
        "specversion": "1.0",
        "id": format!("{history}-{i:06}"),
        "source": "shop/checkout",
        "type": "tamper.order",
        "time": format!(
            "2026-01-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            1 + i % 28, i % 24, i % 60, (i * 7) % 60, i % 1000
        ),
        "tenant": format!("tenant-{}", i % 5),
        "subject": format!("order-{}", i % 97),
        "actor": {"type": "service", "id": "checkout-7"},
        "data": {
            "order_id": format!("o-{history}-{i}"),
            "amount_cents": (i * 7919) % 100_000,
            "currency": "ZAR",
            "status": statuses[(i % 5) as usize],
            "note": format!("geprüft ✓ {i}"),
            "lines": [{"sku": format!("SKU-{:05}", i % 1234), "qty": 1 + i % 3}],
        },
    })
}

fn config() -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig {
            // What reaches the files is the same either way; skipping fsync keeps setup quick.
            durability: Durability::Os,
            segment_bytes_max: SEGMENT_BYTES_MAX,
            // Frames are attacked where they lie, so sealed segments stay plain; damage to
            // compressed ones is damage.rs's and the store's compression tests'.
            compress_sealed: false,
            // A checkpoint per commit: many signed tree heads along the log.
            checkpoint_interval: Duration::ZERO,
            ..StoreConfig::default()
        },
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    }
}

/// Appends events `range` of `history` in commits of random sizes, over two ledger sessions.
fn build_log(dir: &Path, history: &str, range: Range<u64>, rng: &mut Rng) {
    let middle = range.start + (range.end - range.start) / 2;
    for session in [range.start..middle, middle..range.end] {
        let ledger = Ledger::open(dir, config()).expect("open the ledger");
        let mut next = session.start;
        while next < session.end {
            let n = (1 + rng.below(120)).min(session.end - next);
            let texts: Vec<String> = (next..next + n)
                .map(|i| event(history, i).to_string())
                .collect();
            let raws: Vec<_> = texts.iter().map(|t| Ok(t.as_bytes())).collect();
            let results = ledger.ingest(&raws, &Author::ANYONE).expect("append");
            assert!(
                results
                    .iter()
                    .all(|r| matches!(r, IngestResult::Appended { .. })),
                "{results:?}"
            );
            next += n;
        }
        ledger.close().expect("close the ledger");
    }
}

/// Sealed segments are read-only (0444); the tests stand for an attacker or a failing disk,
/// neither of which respects that.
fn write_file(path: &Path, bytes: &[u8]) {
    make_writable(path);
    fs::write(path, bytes).unwrap();
}

/// Flips one bit, where the test kit's `flip_byte` flips all eight: a checksum must catch
/// the smallest change.
fn flip(path: &Path, offset: u64, bit: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 1 << bit;
    write_file(path, &bytes);
}

/// A log built once per test and left untouched; trials damage copies of it.
struct Fixture {
    tmp: TempDir,
    pristine: PathBuf,
    seed: u64,
}

impl Fixture {
    fn new() -> Self {
        let seed = seed();
        eprintln!("tamper seed {seed:#x} (replay with SEALOG_TAMPER_SEED={seed:#x})");
        let tmp = TempDir::new().unwrap();
        let pristine = tmp.path().join("pristine");
        build_log(&pristine, "genuine", 0..RECORDS, &mut Rng::new(seed));
        let fx = Fixture {
            tmp,
            pristine,
            seed,
        };
        let segments = segments(&fx.pristine);
        assert!(
            segments.len() >= 10,
            "the fixture should span many segments, has {}",
            segments.len()
        );
        assert!(
            checkpoint_sizes(&fx.pristine).len() >= 10,
            "the fixture should hold many checkpoints"
        );
        // The control: an untouched copy verifies, so every failure below is the damage's.
        let untouched = fx.copy("untouched");
        let report = intact(&untouched, &[]);
        assert_eq!(report["records"], RECORDS);
        assert_eq!(report["segments"], segments.len());
        assert_eq!(report["checkpoints"], checkpoint_sizes(&fx.pristine).len());
        fs::remove_dir_all(&untouched).unwrap();
        fx
    }

    fn copy(&self, name: &str) -> PathBuf {
        let dir = self.tmp.path().join(name);
        copy_dir(&self.pristine, &dir);
        dir
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the files as the format describes them

struct Segment {
    path: PathBuf,
    first_seq: u64,
    len: u64,
    /// Byte range of every whole frame, header included.
    frames: Vec<Range<u64>>,
}

impl Segment {
    fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn end_seq(&self) -> u64 {
        self.first_seq + self.frames.len() as u64
    }

    fn frame_of(&self, offset: u64) -> Option<(u64, &Range<u64>)> {
        self.frames
            .iter()
            .enumerate()
            .find(|(_, r)| r.contains(&offset))
            .map(|(k, r)| (self.first_seq + k as u64, r))
    }
}

fn segments(dir: &Path) -> Vec<Segment> {
    sealog_testkit::format::segments(&dir.join("log"))
        .into_iter()
        .map(|(first_seq, path)| {
            let bytes = fs::read(&path).unwrap();
            let frames = frames(&bytes, HEADER_BYTES as usize);
            assert_eq!(
                frames.last().map_or(HEADER_BYTES, |f| f.end),
                bytes.len() as u64,
                "{} is whole frames",
                path.display()
            );
            Segment {
                first_seq,
                len: bytes.len() as u64,
                frames,
                path,
            }
        })
        .collect()
}

/// Where record `seq` sits: its segment and its frame's byte range.
fn locate(dir: &Path, seq: u64) -> (PathBuf, Range<u64>) {
    let segs = segments(dir);
    let s = segs
        .iter()
        .find(|s| (s.first_seq..s.end_seq()).contains(&seq))
        .unwrap_or_else(|| panic!("no segment holds seq {seq}"));
    (
        s.path.clone(),
        s.frames[(seq - s.first_seq) as usize].clone(),
    )
}

/// Tree sizes of the signed checkpoints, in the order `checkpoints/log` holds them.
fn checkpoint_sizes(dir: &Path) -> Vec<u64> {
    let (notes, torn) = sealog_testkit::format::checkpoint_notes(&dir.join("checkpoints/log"));
    assert_eq!(torn, None);
    notes
        .iter()
        .map(|n| n.lines().nth(1).unwrap().parse().unwrap())
        .collect()
}

fn payload(bytes: &[u8], frame: &Range<u64>) -> Vec<u8> {
    bytes[frame.start as usize + 8..frame.end as usize].to_vec()
}

/// Signs a checkpoint of the log as it now is with the log's own key and makes it the only
/// one, as the holder of `keys/log.key` covering a forgery would.
fn re_sign(dir: &Path) {
    let mut frontier = Frontier::new();
    for s in segments(dir) {
        let bytes = fs::read(&s.path).unwrap();
        for f in &s.frames {
            frontier.push(sealog_merkle::leaf_hash(&payload(&bytes, f)));
        }
    }
    let key = fs::read_to_string(dir.join("keys/log.key")).unwrap();
    let signer = Signer::parse(key.trim()).unwrap();
    let body = sealog_merkle::checkpoint::Checkpoint {
        origin: signer.name().to_string(),
        size: frontier.size(),
        root: frontier.root(),
        extensions: Vec::new(),
    }
    .to_body();
    let note = sealog_merkle::note::sign(&body, &[&signer]).unwrap();
    let mut log = Vec::new();
    encode_frame(note.as_bytes(), &mut log);
    fs::create_dir_all(dir.join("checkpoints")).unwrap();
    fs::write(dir.join("checkpoints/log"), log).unwrap();
    fs::write(dir.join("checkpoints/latest"), note).unwrap();
}

/// Rewrites every tree level file from the log, as an attacker covering a forgery would.
fn rebuild_tree_files(dir: &Path) {
    let mut frontier = Frontier::new();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    for s in segments(dir) {
        let bytes = fs::read(&s.path).unwrap();
        for f in &s.frames {
            for (level, index, hash) in frontier.push(sealog_merkle::leaf_hash(&payload(&bytes, f)))
            {
                let level = usize::from(level);
                if levels.len() <= level {
                    levels.resize_with(level + 1, Vec::new);
                }
                assert_eq!(levels[level].len() as u64, index * 32);
                levels[level].extend_from_slice(&hash);
            }
        }
    }
    let tree = dir.join("tree");
    fs::remove_dir_all(&tree).unwrap();
    fs::create_dir(&tree).unwrap();
    for (level, nodes) in levels.iter().enumerate() {
        fs::write(tree.join(format!("level-{level:02}")), nodes).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary

fn sealog(dir: &Path, args: &[&str]) -> Run {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir)
        .accepting_undeclared()
        .run(args, b"")
}

fn describe(out: &Run) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        out.code, out.stdout, out.stderr
    )
}

fn verify_out(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    sealog(dir, &args)
}

fn json_line(out: &Run) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", describe(out)))
}

/// Asserts that `verify` finds the log intact and returns its report.
fn intact(dir: &Path, extra: &[&str]) -> Value {
    let out = verify_out(dir, extra);
    assert_eq!(
        out.code,
        0,
        "verify of an intact log failed: {}",
        describe(&out)
    );
    let report = json_line(&out);
    assert_eq!(report["status"], "intact", "{}", describe(&out));
    report
}

/// Asserts that `verify` reports damage and returns (location, message).
fn damaged(dir: &Path, extra: &[&str], ctx: &str) -> (String, String) {
    let out = verify_out(dir, extra);
    assert_eq!(
        out.code,
        1,
        "{ctx}: verify did not report damage: {}",
        describe(&out)
    );
    let report = json_line(&out);
    assert_eq!(report["status"], "damaged", "{ctx}: {}", describe(&out));
    (
        report["location"].as_str().unwrap().to_string(),
        report["message"].as_str().unwrap().to_string(),
    )
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

fn is_frame_damage(message: &str) -> bool {
    [
        "frame checksum mismatch",
        "impossible frame length",
        "file ends inside a frame",
    ]
    .iter()
    .any(|m| message.contains(m))
}

// ---------------------------------------------------------------------------------------------
// Random bit flips

#[test]
fn every_flipped_bit_in_a_segment_is_found_at_its_frame() {
    let fx = Fixture::new();
    let mut rng = Rng::new(fx.seed ^ 0x5e6);
    let segs = segments(&fx.pristine);
    for trial in 0..trials(40, 300) {
        let s = &segs[index(&mut rng, segs.len())];
        let offset = rng.below(s.len);
        let bit = rng.below(8);
        let ctx = format!(
            "seed {:#x} trial {trial}: bit {bit} of byte {offset} of {}",
            fx.seed,
            s.name()
        );
        let dir = fx.copy(&format!("segment-flip-{trial}"));
        let path = dir.join("log").join(s.name());
        flip(&path, offset, bit);
        let (location, message) = damaged(&dir, &[], &ctx);
        if offset < HEADER_BYTES {
            assert_eq!(location, shown(&path), "{ctx}: {message}");
            assert!(
                message.contains("bad magic") || message.contains("header says first seq"),
                "{ctx}: {message}"
            );
        } else {
            let (seq, frame) = s
                .frame_of(offset)
                .expect("every byte past the header is framed");
            assert_eq!(
                location,
                format!("{} at offset {} (seq {seq})", shown(&path), frame.start),
                "{ctx}: {message}"
            );
            assert!(is_frame_damage(&message), "{ctx}: {message}");
        }
        if trial < 4 {
            // Putting the bit back must make the log whole again: the report was about that bit.
            flip(&path, offset, bit);
            intact(&dir, &[]);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn every_flipped_bit_in_a_tree_level_file_names_the_node() {
    let fx = Fixture::new();
    let mut rng = Rng::new(fx.seed ^ 0x7ee);
    let mut levels: Vec<(String, u64)> = fs::read_dir(fx.pristine.join("tree"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    levels.sort();
    assert!(levels.len() >= 11, "a 3,000-leaf tree has 12 levels");
    for trial in 0..trials(20, 100) {
        let (name, len) = &levels[index(&mut rng, levels.len())];
        let offset = rng.below(*len);
        let bit = rng.below(8);
        let ctx = format!(
            "seed {:#x} trial {trial}: bit {bit} of byte {offset} of tree/{name}",
            fx.seed
        );
        let dir = fx.copy(&format!("tree-flip-{trial}"));
        let path = dir.join("tree").join(name);
        flip(&path, offset, bit);
        let (location, message) = damaged(&dir, &[], &ctx);
        assert_eq!(
            location,
            format!("{} node {}", shown(&path), offset / 32),
            "{ctx}: {message}"
        );
        assert!(
            message.contains("stored tree node differs"),
            "{ctx}: {message}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn every_flipped_bit_in_the_checkpoint_log_names_the_frame() {
    let fx = Fixture::new();
    let mut rng = Rng::new(fx.seed ^ 0xc4e);
    let bytes = fs::read(fx.pristine.join("checkpoints/log")).unwrap();
    let notes = frames(&bytes, 0);
    for trial in 0..trials(20, 150) {
        // The last frame is hit on purpose once: it alone may pass for a torn write.
        let offset = match trial {
            0 => notes.last().unwrap().start + 20,
            _ => rng.below(bytes.len() as u64),
        };
        let bit = rng.below(8);
        let ctx = format!(
            "seed {:#x} trial {trial}: bit {bit} of byte {offset} of checkpoints/log",
            fx.seed
        );
        let k = notes.iter().position(|r| r.contains(&offset)).unwrap();
        let dir = fx.copy(&format!("checkpoint-flip-{trial}"));
        let path = dir.join("checkpoints/log");
        flip(&path, offset, bit);
        let (location, message) = damaged(&dir, &[], &ctx);
        let at = format!("{} at offset {}", shown(&path), notes[k].start);
        if k + 1 == notes.len() {
            // Could be a torn write: reported as a damaged last frame.
            assert_eq!(location, at, "{ctx}: {message}");
            assert_eq!(message, "damaged checkpoint frame", "{ctx}");
        } else {
            // Whole checkpoints follow, so this is damage; the frame is named in the message.
            assert_eq!(location, shown(&path), "{ctx}: {message}");
            assert!(
                message.contains(&format!("{at}: "))
                    && message.contains(&format!(
                        "yet a whole checkpoint follows at offset {}",
                        notes[k + 1].start
                    )),
                "{ctx}: {message}"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Structural damage to the log

/// A sealed segment in the middle of the log (neither the first nor the last).
fn middle_segment(segs: &[Segment]) -> usize {
    segs.len() / 2
}

#[test]
fn a_deleted_record_is_found_where_it_was() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let i = middle_segment(&segs);
    let s = &segs[i];
    let name = s.name();

    // A record from the middle of a sealed segment: its successor now sits at its offset.
    let k = s.frames.len() / 2;
    let dir = fx.copy("delete-middle-record");
    let path = dir.join("log").join(&name);
    let mut bytes = fs::read(&path).unwrap();
    let frame = s.frames[k].clone();
    bytes.drain(frame.start as usize..frame.end as usize);
    write_file(&path, &bytes);
    let seq = s.first_seq + k as u64;
    let (location, message) = damaged(&dir, &[], "deleted record");
    assert_eq!(
        location,
        format!("{} at offset {} (seq {seq})", shown(&path), frame.start)
    );
    assert!(
        message.contains(&format!("record says seq {}", seq + 1)),
        "{message}"
    );

    // The last record of a sealed segment: the gap shows where the next segment starts.
    let dir = fx.copy("delete-last-record-of-sealed-segment");
    let path = dir.join("log").join(&name);
    let last = s.frames.last().unwrap();
    truncate(&path, last.start);
    let next = dir.join("log").join(segs[i + 1].name());
    let (location, message) = damaged(&dir, &[], "deleted last record of a sealed segment");
    assert_eq!(location, shown(&next));
    assert_eq!(
        message,
        format!(
            "segment starts at seq {}, expected {}",
            segs[i + 1].first_seq,
            segs[i + 1].first_seq - 1
        )
    );

    // The first record of the whole log.
    let dir = fx.copy("delete-first-record");
    let path = dir.join("log").join(segs[0].name());
    let mut bytes = fs::read(&path).unwrap();
    bytes.drain(HEADER_BYTES as usize..segs[0].frames[0].end as usize);
    write_file(&path, &bytes);
    let (location, message) = damaged(&dir, &[], "deleted first record");
    assert_eq!(
        location,
        format!("{} at offset {HEADER_BYTES} (seq 0)", shown(&path))
    );
    assert!(message.contains("record says seq 1"), "{message}");
}

#[test]
fn swapped_records_are_found_at_the_first_of_them() {
    let fx = Fixture::new();
    let mut rng = Rng::new(fx.seed ^ 0x5a9);
    let segs = segments(&fx.pristine);
    for trial in 0..trials(4, 20) {
        let s = &segs[index(&mut rng, segs.len())];
        let k = index(&mut rng, s.frames.len() - 1);
        let (a, b) = (s.frames[k].clone(), s.frames[k + 1].clone());
        let ctx = format!(
            "seed {:#x} trial {trial}: swap frames {k} and {} of {}",
            fx.seed,
            k + 1,
            s.name()
        );
        let dir = fx.copy(&format!("swap-{trial}"));
        let path = dir.join("log").join(s.name());
        let bytes = fs::read(&path).unwrap();
        let mut swapped = bytes[..a.start as usize].to_vec();
        swapped.extend_from_slice(&bytes[b.start as usize..b.end as usize]);
        swapped.extend_from_slice(&bytes[a.start as usize..a.end as usize]);
        swapped.extend_from_slice(&bytes[b.end as usize..]);
        assert_eq!(swapped.len(), bytes.len());
        write_file(&path, &swapped);
        let seq = s.first_seq + k as u64;
        let (location, message) = damaged(&dir, &[], &ctx);
        assert_eq!(
            location,
            format!("{} at offset {} (seq {seq})", shown(&path), a.start),
            "{ctx}"
        );
        assert!(
            message.contains(&format!("record says seq {}", seq + 1)),
            "{ctx}: {message}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_replayed_record_is_found() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let s = &segs[middle_segment(&segs)];
    let k = s.frames.len() / 3;
    let frame = s.frames[k].clone();
    let dir = fx.copy("replay");
    let path = dir.join("log").join(s.name());
    let mut bytes = fs::read(&path).unwrap();
    let copy = bytes[frame.start as usize..frame.end as usize].to_vec();
    bytes.splice(frame.end as usize..frame.end as usize, copy);
    write_file(&path, &bytes);
    let seq = s.first_seq + k as u64 + 1;
    let (location, message) = damaged(&dir, &[], "replayed record");
    assert_eq!(
        location,
        format!("{} at offset {} (seq {seq})", shown(&path), frame.end)
    );
    assert!(
        message.contains(&format!("record says seq {}", seq - 1)),
        "{message}"
    );
}

#[test]
fn truncated_segments_are_found() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let i = middle_segment(&segs);
    let sealed = &segs[i];
    let last = segs.last().unwrap();

    // Mid-frame: the torn frame itself is reported, sealed segment or last one alike.
    for s in [sealed, last] {
        let k = s.frames.len() / 2;
        let frame = s.frames[k].clone();
        let dir = fx.copy(&format!("truncate-mid-frame-{}", s.name()));
        let path = dir.join("log").join(s.name());
        truncate(&path, frame.start + 11);
        let (location, message) = damaged(&dir, &[], &format!("{} cut mid-frame", s.name()));
        assert_eq!(
            location,
            format!(
                "{} at offset {} (seq {})",
                shown(&path),
                frame.start,
                s.first_seq + k as u64
            )
        );
        assert_eq!(message, "file ends inside a frame");
    }

    // At a frame boundary of a sealed segment: the next segment no longer follows on.
    let dir = fx.copy("truncate-sealed-at-boundary");
    let path = dir.join("log").join(sealed.name());
    truncate(&path, sealed.frames[sealed.frames.len() - 3].start);
    let next = &segs[i + 1];
    let (location, message) = damaged(&dir, &[], "sealed segment cut at a frame boundary");
    assert_eq!(location, shown(&dir.join("log").join(next.name())));
    assert_eq!(
        message,
        format!(
            "segment starts at seq {}, expected {}",
            next.first_seq,
            next.first_seq - 3
        )
    );

    // At a frame boundary of the last segment: only the signed checkpoints know what is
    // missing.
    let dir = fx.copy("truncate-last-at-boundary");
    let path = dir.join("log").join(last.name());
    truncate(&path, last.frames[last.frames.len() - 2].start);
    let (location, message) = damaged(&dir, &[], "last segment cut at a frame boundary");
    assert_eq!(
        location,
        format!("{} (end of log)", shown(&dir.join("log")))
    );
    assert!(
        message.contains(&format!("the log holds {} records", RECORDS - 2))
            && message.contains("records were removed"),
        "{message}"
    );

    // Down to its header, and to nothing at all.
    for (len, what) in [(HEADER_BYTES, "header"), (0, "empty")] {
        let dir = fx.copy(&format!("truncate-sealed-{what}"));
        let path = dir.join("log").join(sealed.name());
        truncate(&path, len);
        let (location, message) = damaged(&dir, &[], &format!("sealed segment cut to {what}"));
        assert_eq!(location, shown(&path), "sealed segment cut to {what}");
        let expected = if len == 0 {
            "bad magic"
        } else {
            "a sealed segment holds no records"
        };
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn deleted_segment_files_are_found() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let i = middle_segment(&segs);

    let dir = fx.copy("delete-sealed-segment");
    fs::remove_file(dir.join("log").join(segs[i].name())).unwrap();
    let (location, message) = damaged(&dir, &[], "deleted sealed segment");
    assert_eq!(location, shown(&dir.join("log").join(segs[i + 1].name())));
    assert_eq!(
        message,
        format!(
            "segment starts at seq {}, expected {}",
            segs[i + 1].first_seq,
            segs[i].first_seq
        )
    );

    let dir = fx.copy("delete-first-segment");
    fs::remove_file(dir.join("log").join(segs[0].name())).unwrap();
    let (location, message) = damaged(&dir, &[], "deleted first segment");
    assert_eq!(location, shown(&dir.join("log").join(segs[1].name())));
    assert!(message.contains("expected 0"), "{message}");

    let dir = fx.copy("delete-last-segment");
    fs::remove_file(dir.join("log").join(segs.last().unwrap().name())).unwrap();
    let (location, message) = damaged(&dir, &[], "deleted last segment");
    assert_eq!(
        location,
        format!("{} (end of log)", shown(&dir.join("log")))
    );
    assert!(message.contains("records were removed"), "{message}");

    // Renaming two segments into each other's place reorders whole runs of records.
    let dir = fx.copy("swap-segment-files");
    let (a, b) = (
        dir.join("log").join(segs[i].name()),
        dir.join("log").join(segs[i + 1].name()),
    );
    let tmp = dir.join("log/swap.tmp");
    fs::rename(&a, &tmp).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&tmp, &b).unwrap();
    let (location, message) = damaged(&dir, &[], "swapped segment files");
    assert_eq!(location, shown(&a));
    assert!(message.contains("header says first seq"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Forgery

/// Replaces the payload of record `seq` by `edit(old payload)`, in a frame with a correct
/// checksum; the rest of the segment moves to make room. Returns where the new frame is.
fn rewrite_record(dir: &Path, seq: u64, edit: impl FnOnce(&[u8]) -> Vec<u8>) -> (PathBuf, u64) {
    let (path, frame) = locate(dir, seq);
    let bytes = fs::read(&path).unwrap();
    let mut rewritten = bytes[..frame.start as usize].to_vec();
    encode_frame(&edit(&payload(&bytes, &frame)), &mut rewritten);
    rewritten.extend_from_slice(&bytes[frame.end as usize..]);
    write_file(&path, &rewritten);
    (path, frame.start)
}

/// Applies `edit` to the parsed record and writes it back canonically.
fn edit_json(payload: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut record: Value = serde_json::from_slice(payload).unwrap();
    edit(&mut record);
    jcs::to_vec(&record).unwrap()
}

fn change_event(record: &mut Value) {
    record["data"]["amount_cents"] = json!(1);
    record["data"]["note"] = json!("refund approved by the finance director, no further checks");
}

/// Replaces record `seq` by a well-formed record of a changed event: canonical bytes, correct
/// `record_id`, correct frame checksum, the rest of the segment shifted to make room.
fn forge_record(dir: &Path, seq: u64) {
    let (path, frame) = locate(dir, seq);
    rewrite_record(dir, seq, |old| {
        let forged = forge(old, change_event);
        assert_ne!(
            serde_json::from_slice::<Value>(&forged).unwrap()["record_id"],
            serde_json::from_slice::<Value>(old).unwrap()["record_id"]
        );
        assert_ne!(
            forged.len() as u64 + 8,
            frame.end - frame.start,
            "the forgery should shift the offsets after it"
        );
        forged
    });
    assert_eq!(locate(dir, seq).0, path);
}

#[test]
fn records_edited_behind_a_valid_checksum_are_caught() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let s = &segs[middle_segment(&segs) + 1];
    let seq = s.first_seq + 3;
    let at_record =
        |path: &Path, offset: u64| format!("{} at offset {offset} (seq {seq})", shown(path));

    // The event changed, its record_id left alone.
    let dir = fx.copy("edit-keeps-id");
    let (path, offset) = rewrite_record(&dir, seq, |old| edit_json(old, change_event));
    let (location, message) = damaged(&dir, &[], "event edited, id kept");
    assert_eq!(location, at_record(&path, offset));
    assert!(
        message.contains("does not match the record's content"),
        "{message}"
    );

    // The same record, spelled differently: the leaf is the canonical bytes and nothing else.
    let dir = fx.copy("edit-not-canonical");
    let (path, offset) = rewrite_record(&dir, seq, |old| {
        let text = String::from_utf8(old.to_vec()).unwrap();
        text.replacen(",\"", ", \"", 1).into_bytes()
    });
    let (location, message) = damaged(&dir, &[], "non-canonical spelling");
    assert_eq!(location, at_record(&path, offset));
    assert!(message.contains("canonical"), "{message}");

    // A record claiming another place in the log.
    let dir = fx.copy("edit-seq");
    let (path, offset) = rewrite_record(&dir, seq, |old| {
        edit_json(old, |r| r["seq"] = json!(seq + 1))
    });
    let (location, message) = damaged(&dir, &[], "seq changed");
    assert_eq!(location, at_record(&path, offset));
    assert!(
        message.contains(&format!("record says seq {}", seq + 1)),
        "{message}"
    );

    // A consistent record (new id) with the stored tree left as it was: the log no longer
    // matches the next checkpoint, and the stored tree shows which record changed.
    let dir = fx.copy("edit-with-new-id");
    let (path, offset) = locate(&dir, seq);
    forge_record(&dir, seq);
    let (location, message) = damaged(&dir, &[], "forged record, tree untouched");
    assert_eq!(location, at_record(&path, offset.start));
    assert!(message.contains("does not match checkpoint #"), "{message}");
    assert!(
        message.contains("derived from the log disagree"),
        "{message}"
    );

    // `ingested_at` is outside the record_id, so only the tree and the checkpoints protect it.
    let dir = fx.copy("edit-ingested-at");
    let (path, offset) = rewrite_record(&dir, seq, |old| {
        edit_json(old, |r| {
            r["ingested_at"] = json!("2020-01-01T00:00:00.000000Z")
        })
    });
    let (location, message) = damaged(&dir, &[], "ingested_at changed, tree untouched");
    assert_eq!(location, at_record(&path, offset));
    assert!(
        message.contains("derived from the log disagree"),
        "{message}"
    );
    // With the tree rebuilt over the change, the positions still remember the old time.
    rebuild_tree_files(&dir);
    let (location, message) = damaged(&dir, &[], "ingested_at changed, tree rebuilt");
    assert_eq!(location, at_record(&path, offset));
    assert!(message.contains("ingested"), "{message}");
    // With every derived file gone, only the signed checkpoints can tell, at the next one.
    fs::remove_dir_all(dir.join("index")).unwrap();
    let (location, message) = damaged(&dir, &[], "ingested_at changed, derived files rebuilt");
    let size = checkpoint_sizes(&dir)
        .into_iter()
        .find(|&c| c > seq)
        .unwrap();
    let (path, frame) = locate(&dir, size - 1);
    assert_eq!(
        location,
        format!(
            "{} at offset {} (seq {})",
            shown(&path),
            frame.start,
            size - 1
        )
    );
    assert!(message.contains("does not match checkpoint #"), "{message}");
}

#[test]
fn a_consistent_forgery_is_caught_by_the_signed_checkpoints() {
    let fx = Fixture::new();
    let sizes = checkpoint_sizes(&fx.pristine);
    let segs = segments(&fx.pristine);
    let victim = &segs[middle_segment(&segs)];
    let seq = victim.first_seq + victim.frames.len() as u64 / 2;

    let dir = fx.copy("forgery");
    forge_record(&dir, seq);
    rebuild_tree_files(&dir);
    fs::remove_dir_all(dir.join("index")).unwrap();

    // Without its checkpoints the forged log is self-consistent, but a log is signed when it
    // is created: records without any checkpoint have lost them.
    let unsigned = fx.tmp.path().join("forgery-without-checkpoints");
    copy_dir(&dir, &unsigned);
    fs::remove_dir_all(unsigned.join("checkpoints")).unwrap();
    let (location, message) = damaged(&unsigned, &[], "forgery, checkpoints removed");
    assert_eq!(location, shown(&unsigned.join("checkpoints/log")));
    assert!(
        message.contains("the checkpoints were removed"),
        "{message}"
    );

    let (i, size) = sizes
        .iter()
        .enumerate()
        .find(|(_, s)| **s > seq)
        .map(|(i, s)| (i, *s))
        .unwrap();
    let (path, frame) = locate(&dir, size - 1);
    let (location, message) = damaged(&dir, &[], "consistent forgery");
    assert_eq!(
        location,
        format!(
            "{} at offset {} (seq {})",
            shown(&path),
            frame.start,
            size - 1
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "the log's tree of size {size} does not match checkpoint #{i}"
        )),
        "{message}"
    );

    // The ledger itself refuses to serve a history its own checkpoints contradict.
    let err = Ledger::open(&dir, config())
        .err()
        .expect("open must refuse");
    assert!(err.to_string().contains("records were changed"), "{err}");
}

#[test]
fn a_forgery_re_signed_with_the_log_key_is_caught_by_an_old_checkpoint() {
    let fx = Fixture::new();
    let old = fx.tmp.path().join("old.checkpoint");
    fs::copy(fx.pristine.join("checkpoints/latest"), &old).unwrap();
    let old_arg = shown(&old);

    let dir = fx.copy("forgery-re-signed");
    forge_record(&dir, RECORDS / 3);
    // Whoever holds keys/log.key can sign anything: drop the checkpoints and derived files,
    // sign the forged history's tree with the log's key, and let the ledger rebuild the rest.
    for sub in ["checkpoints", "index", "tree"] {
        fs::remove_dir_all(dir.join(sub)).unwrap();
    }
    re_sign(&dir);
    Ledger::open(&dir, config()).unwrap().close().unwrap();
    let report = intact(&dir, &[]);
    assert_eq!(report["records"], RECORDS);

    let (path, frame) = locate(&dir, RECORDS - 1);
    let (location, message) = damaged(&dir, &["--since", &old_arg], "re-signed forgery");
    assert_eq!(
        location,
        format!(
            "{} at offset {} (seq {})",
            shown(&path),
            frame.start,
            RECORDS - 1
        )
    );
    assert!(
        message.contains("does not match --since checkpoint"),
        "{message}"
    );
}

#[test]
fn forged_checkpoints_are_refused() {
    let fx = Fixture::new();
    let cp_bytes = fs::read(fx.pristine.join("checkpoints/log")).unwrap();
    let notes = frames(&cp_bytes, 0);
    let k = notes.len() / 2;
    let note = String::from_utf8(payload(&cp_bytes, &notes[k])).unwrap();

    // A note whose root was changed and re-framed with a good checksum: the signature fails.
    let mut lines: Vec<String> = note.split('\n').map(str::to_string).collect();
    lines[2] = {
        let mut root = lines[2].clone().into_bytes();
        root[0] = if root[0] == b'A' { b'B' } else { b'A' };
        String::from_utf8(root).unwrap()
    };
    let tampered = lines.join("\n");
    let dir = fx.copy("checkpoint-root-changed");
    let mut bytes = cp_bytes[..notes[k].start as usize].to_vec();
    encode_frame(tampered.as_bytes(), &mut bytes);
    bytes.extend_from_slice(&cp_bytes[notes[k].end as usize..]);
    write_file(&dir.join("checkpoints/log"), &bytes);
    let (location, message) = damaged(&dir, &[], "checkpoint with a changed root");
    assert_eq!(
        location,
        format!("{} checkpoint #{k}", shown(&dir.join("checkpoints/log")))
    );
    assert!(message.starts_with("signature"), "{message}");

    // A checkpoint signed by another key under the log's own name is not the log's.
    let pub_key = fs::read_to_string(fx.pristine.join("keys/log.pub")).unwrap();
    let name = Verifier::parse(pub_key.trim()).unwrap().name().to_string();
    let impostor = Signer::from_seed(&name, [7; 32]).unwrap();
    let size = checkpoint_sizes(&fx.pristine).last().copied().unwrap();
    let body = format!("{name}\n{size}\n{}\n", "A".repeat(43) + "=");
    let forged = sealog_merkle::note::sign(&body, &[&impostor]).unwrap();
    let dir = fx.copy("checkpoint-by-impostor");
    let mut bytes = cp_bytes.clone();
    encode_frame(forged.as_bytes(), &mut bytes);
    write_file(&dir.join("checkpoints/log"), &bytes);
    let (location, message) = damaged(&dir, &[], "checkpoint signed by another key");
    assert_eq!(
        location,
        format!(
            "{} checkpoint #{}",
            shown(&dir.join("checkpoints/log")),
            notes.len()
        )
    );
    assert!(message.starts_with("signature"), "{message}");

    // Reordered checkpoints claim the tree shrank.
    let dir = fx.copy("checkpoints-reordered");
    let (a, b) = (notes[k].clone(), notes[k + 1].clone());
    let mut bytes = cp_bytes[..a.start as usize].to_vec();
    bytes.extend_from_slice(&cp_bytes[b.start as usize..b.end as usize]);
    bytes.extend_from_slice(&cp_bytes[a.start as usize..a.end as usize]);
    bytes.extend_from_slice(&cp_bytes[b.end as usize..]);
    write_file(&dir.join("checkpoints/log"), &bytes);
    let (location, message) = damaged(&dir, &[], "reordered checkpoints");
    assert_eq!(
        location,
        format!(
            "{} checkpoint #{}",
            shown(&dir.join("checkpoints/log")),
            k + 1
        )
    );
    assert!(message.contains("smaller than the previous"), "{message}");

    // A verifier key swapped for another: no checkpoint is the log's any more.
    let dir = fx.copy("verifier-key-swapped");
    write_file(
        &dir.join("keys/log.pub"),
        format!("{}\n", impostor.verifier().to_vkey()).as_bytes(),
    );
    let (location, message) = damaged(&dir, &[], "swapped verifier key");
    assert_eq!(location, shown(&dir.join("keys/log.pub")));
    assert!(message.contains("it was replaced"), "{message}");
    // Without the signing key to tell, no checkpoint is the log's any more.
    fs::remove_file(dir.join("keys/log.key")).unwrap();
    let (location, _) = damaged(&dir, &[], "swapped verifier key, no signing key");
    assert_eq!(
        location,
        format!("{} checkpoint #0", shown(&dir.join("checkpoints/log")))
    );
}

// ---------------------------------------------------------------------------------------------
// Rewritten history and `--since`

fn events_file(path: &Path, history: &str, range: Range<u64>) {
    let mut text = String::new();
    for i in range {
        text.push_str(&event(history, i).to_string());
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

fn wipe(dir: &Path, subdirs: &[&str]) {
    for sub in subdirs {
        fs::remove_dir_all(dir.join(sub)).unwrap();
    }
}

#[test]
fn since_proves_the_genuine_log_only_grew() {
    let fx = Fixture::new();
    let old = fx.tmp.path().join("old.checkpoint");
    fs::copy(fx.pristine.join("checkpoints/latest"), &old).unwrap();
    let old_key = fs::read_to_string(fx.pristine.join("keys/log.pub")).unwrap();
    let old_key = old_key.trim();

    let dir = fx.copy("genuine-grown");
    let more = fx.tmp.path().join("more.ndjson");
    for (n, range) in [(1, 0..40), (2, 40..41), (3, 41..300)] {
        events_file(&more, &format!("later-{n}"), range);
        let out = sealog(&dir, &["append", &shown(&more)]);
        assert_eq!(out.code, 0, "{}", describe(&out));
    }
    for extra in [
        vec!["--since", old.to_str().unwrap()],
        vec!["--since", old.to_str().unwrap(), "--verifier-key", old_key],
    ] {
        let report = intact(&dir, &extra);
        assert_eq!(report["since_size"], RECORDS);
        assert_eq!(report["records"], RECORDS + 300);
    }
}

#[test]
fn a_history_rewritten_under_a_new_key_fails_since_and_the_old_key() {
    let fx = Fixture::new();
    let old = fx.tmp.path().join("old.checkpoint");
    fs::copy(fx.pristine.join("checkpoints/latest"), &old).unwrap();
    let old_arg = shown(&old);
    let old_key = fs::read_to_string(fx.pristine.join("keys/log.pub")).unwrap();
    let old_key = old_key.trim();

    let dir = fx.copy("rewritten-new-key");
    wipe(&dir, &["keys", "checkpoints", "log", "tree", "index"]);
    build_log(
        &dir,
        "rewritten",
        0..RECORDS + 100,
        &mut Rng::new(fx.seed ^ 0x1),
    );
    let new_key = fs::read_to_string(dir.join("keys/log.pub")).unwrap();
    assert_ne!(new_key.trim(), old_key);
    // On its own, the rewritten log is a perfectly good log.
    intact(&dir, &[]);

    let (location, message) = damaged(&dir, &["--since", &old_arg], "--since, new key");
    assert_eq!(location, "--since checkpoint");
    assert!(message.contains("was the log re-keyed?"), "{message}");

    let (location, message) = damaged(
        &dir,
        &["--verifier-key", old_key],
        "--verifier-key of the old log",
    );
    assert_eq!(
        location,
        format!("{} checkpoint #0", shown(&dir.join("checkpoints/log")))
    );
    assert!(message.starts_with("signature"), "{message}");

    let (location, _) = damaged(
        &dir,
        &["--since", &old_arg, "--verifier-key", old_key],
        "--since and --verifier-key of the old log",
    );
    assert_eq!(
        location,
        format!("{} checkpoint #0", shown(&dir.join("checkpoints/log")))
    );
}

#[test]
fn a_history_rewritten_under_the_same_key_fails_since() {
    let fx = Fixture::new();
    let old = fx.tmp.path().join("old.checkpoint");
    fs::copy(fx.pristine.join("checkpoints/latest"), &old).unwrap();
    let old_arg = shown(&old);

    // Longer than before: the old tree head is passed and does not match.
    let dir = fx.copy("rewritten-same-key-longer");
    wipe(&dir, &["checkpoints", "log", "tree", "index"]);
    build_log(
        &dir,
        "rewritten",
        0..RECORDS + 100,
        &mut Rng::new(fx.seed ^ 0x2),
    );
    intact(&dir, &[]);
    let (path, frame) = locate(&dir, RECORDS - 1);
    let (location, message) = damaged(&dir, &["--since", &old_arg], "rewritten, same key");
    assert_eq!(
        location,
        format!(
            "{} at offset {} (seq {})",
            shown(&path),
            frame.start,
            RECORDS - 1
        )
    );
    assert!(
        message.contains(&format!(
            "tree of size {RECORDS} does not match --since checkpoint"
        )),
        "{message}"
    );

    // The same events ingested again: only their ingest times differ, and that is enough.
    let dir = fx.copy("rewritten-same-events");
    wipe(&dir, &["checkpoints", "log", "tree", "index"]);
    build_log(&dir, "genuine", 0..RECORDS, &mut Rng::new(fx.seed));
    intact(&dir, &[]);
    damaged(&dir, &["--since", &old_arg], "same events re-ingested");

    // Shorter than before: the old checkpoint covers records that are gone.
    let dir = fx.copy("rewritten-same-key-shorter");
    wipe(&dir, &["checkpoints", "log", "tree", "index"]);
    build_log(
        &dir,
        "rewritten",
        0..RECORDS / 2,
        &mut Rng::new(fx.seed ^ 0x3),
    );
    intact(&dir, &[]);
    let (location, message) = damaged(&dir, &["--since", &old_arg], "shorter rewrite");
    assert_eq!(
        location,
        format!("{} (end of log)", shown(&dir.join("log")))
    );
    assert!(
        message.contains(&format!("--since checkpoint covers {RECORDS}")),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Damage must survive the next command that opens the store

#[test]
fn a_damaged_checkpoint_log_is_not_silently_cut_by_the_next_command() {
    let fx = Fixture::new();
    let dir = fx.copy("checkpoint-damage-then-open");
    let path = dir.join("checkpoints/log");
    flip(&path, 20, 0);
    let damaged_bytes = fs::read(&path).unwrap();
    damaged(&dir, &[], "damaged first checkpoint frame");

    // A read-only command, as an operator would run next.
    let out = sealog(&dir, &["get", "0"]);
    let after = fs::read(&path).unwrap();
    assert!(
        after == damaged_bytes,
        "opening the store rewrote checkpoints/log from {} to {} bytes ({})",
        damaged_bytes.len(),
        after.len(),
        describe(&out)
    );
    let (location, _) = damaged(
        &dir,
        &[],
        "damaged first checkpoint frame, after `sealog get`",
    );
    assert_eq!(location, shown(&path));
}

#[test]
fn a_damaged_frame_is_located_by_its_own_seq() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let s = &segs[middle_segment(&segs)];
    let k = s.frames.len() / 2;
    let frame = s.frames[k].clone();
    let dir = fx.copy("frame-seq");
    let path = dir.join("log").join(s.name());
    flip(&path, frame.start + 40, 3);
    let (location, _) = damaged(&dir, &[], "flip in a frame");
    assert_eq!(
        location,
        format!(
            "{} at offset {} (seq {})",
            shown(&path),
            frame.start,
            s.first_seq + k as u64
        )
    );
}

#[test]
fn opening_the_store_never_cuts_a_record_a_checkpoint_covers() {
    let fx = Fixture::new();
    let segs = segments(&fx.pristine);
    let last = segs.last().unwrap();
    let frame = last.frames.last().unwrap().clone();
    let dir = fx.copy("last-record-damage-then-open");
    let path = dir.join("log").join(last.name());
    flip(&path, frame.end - 3, 1);
    // The index is derived data that may be lost at any time; without it, the damaged record
    // looks like a torn write to recovery.
    fs::remove_dir_all(dir.join("index")).unwrap();
    let before = fs::read(&path).unwrap();
    let out = sealog(&dir, &["get", "0"]);
    assert_ne!(out.code, 0, "{}", describe(&out));
    assert_eq!(
        fs::read(&path).unwrap().len(),
        before.len(),
        "the damaged record was cut: {}",
        describe(&out)
    );
    let (location, message) = damaged(&dir, &[], "damaged last record after an open");
    assert_eq!(
        location,
        format!(
            "{} at offset {} (seq {})",
            shown(&path),
            frame.start,
            RECORDS - 1
        ),
        "{message}"
    );
}
