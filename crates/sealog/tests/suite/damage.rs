//! Damage to every kind of file in a data directory, and what Sealog makes of it.
//!
//! A tamper-evident log must never answer wrongly while `verify` says "intact". Each trial
//! damages one file of one kind in a copy of a pristine data directory (a flipped bit, a
//! truncation, two entries swapped, the file deleted) and holds Sealog to three things:
//!
//! 1. **Found and named**: `sealog verify --full` reports the damage and names the file.
//! 2. **No wrong answer**: opened read-only (as beside a running server) and then as the
//!    writer, every answer is the pristine directory's answer or an error; re-sending an
//!    event the log holds answers `duplicate`, never `appended`.
//! 3. **Derived files are rebuilt**: after `verify` named a file derived from the log, the
//!    next opening rebuilds it and says so, every answer is right again, and the directory
//!    verifies.
//!
//! What a kind is exempt from, and why, is in [`Kind::expect`]. The trials are reproducible:
//! set `SEALOG_DAMAGE_SEED` to the seed a failure prints.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sealog_ledger::{
    Author, Durability, IngestResult, LIMIT_MAX, Ledger, LedgerConfig, Packs, Query, StoreConfig,
    Undeclared,
};
use sealog_testkit::files::{all_files, copy_dir, make_writable};
use sealog_testkit::{Cli, Rng, Run};
use serde_json::{Value, json};
use tempfile::TempDir;

const RECORDS: u64 = 400;
const QUARANTINED: u64 = 90;
const DEFAULT_SEED: u64 = 0x5ea1_0d4a_3a6e_0011;

fn seed() -> u64 {
    std::env::var("SEALOG_DAMAGE_SEED").map_or(DEFAULT_SEED, |s| {
        let s = s.trim();
        s.strip_prefix("0x")
            .map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16))
            .expect("SEALOG_DAMAGE_SEED must be a u64 (decimal or 0x-hex)")
    })
}

// ---------------------------------------------------------------------------------------------
// The pristine directory

fn config() -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig {
            // What reaches the files is the same either way; skipping fsync keeps setup quick.
            durability: Durability::Os,
            // Many segments, several index runs, a checkpoint per commit.
            segment_bytes_max: 16 * 1024,
            memtable_records_max: 64,
            checkpoint_interval: Duration::ZERO,
            ..StoreConfig::default()
        },
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    }
}

/// A canonical event with its own event time, tenant and subject.
fn event(i: u64) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("order-{i:05}"),
        "source": "shop/checkout",
        "type": "damage.order",
        "time": format!("2026-03-{:02}T{:02}:{:02}:{:02}Z", 1 + i % 28, i % 24, i % 60, (i / 60) % 60),
        "tenant": format!("tenant-{}", i % 5),
        "subject": format!("customer-{}", i % 37),
        "data": {"amount_cents": i * 7919 % 100_000, "note": format!("geprüft ✓ {i}")},
    })
}

/// An event of a built-in type without the fields its pack requires: quarantined, with its
/// raw bytes kept as evidence (its pack declares no personal field, so they are kept as sent).
fn incomplete(i: u64) -> Value {
    let mut e = sealog_testkit::events::example("coordination.decision");
    e["id"] = json!(format!("broken-{i:05}"));
    e["data"] = json!({"note": format!("incomplete {i}")});
    e
}

fn ingest(ledger: &Ledger, events: &[Value]) -> Vec<IngestResult> {
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    let raws: Vec<_> = texts.iter().map(|t| Ok(t.as_bytes())).collect();
    ledger.ingest(&raws, &Author::ANYONE).expect("ingest")
}

/// Builds the pristine directory over two sessions, in commits of uneven sizes.
fn build(dir: &Path, rng: &mut Rng) {
    let mut i = 0;
    let mut q = 0;
    for end in [RECORDS / 2, RECORDS] {
        let ledger = Ledger::open(dir, config()).expect("open");
        while i < end {
            let n = (1 + rng.below(40)).min(end - i);
            let mut events: Vec<Value> = (i..i + n).map(event).collect();
            if q < QUARANTINED && rng.chance(60) {
                let k = (1 + rng.below(6)).min(QUARANTINED - q);
                events.extend((q..q + k).map(incomplete));
                q += k;
            }
            for r in ingest(&ledger, &events) {
                assert!(
                    matches!(
                        r,
                        IngestResult::Appended { .. } | IngestResult::Quarantined { .. }
                    ),
                    "{r:?}"
                );
            }
            i += n;
        }
        if end == RECORDS {
            let rest: Vec<Value> = (q..QUARANTINED).map(incomplete).collect();
            ingest(&ledger, &rest);
            q = QUARANTINED;
        }
        // Sealed segments compressed before the close, so every trial starts from the same
        // files: compressed ones and the last one plain.
        assert!(
            ledger.await_compression(Duration::from_secs(60)),
            "sealed segments compressed"
        );
        ledger.close().expect("close");
    }
}

struct Pristine {
    _tmp: TempDir,
    dir: PathBuf,
    truth: Answers,
    plan: Plan,
}

/// One pristine directory for every trial of this file (trials copy it).
fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        let seed = seed();
        eprintln!("damage seed {seed:#x} (replay with SEALOG_DAMAGE_SEED={seed:#x})");
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("pristine");
        let mut rng = Rng::new(seed);
        build(&dir, &mut rng);
        let ledger = Ledger::open_read_only(&dir, config()).expect("open the pristine copy");
        let plan = Plan::new(&ledger, &mut rng);
        let truth = plan.ask(&ledger);
        drop(ledger);
        let report = verify(&dir);
        assert_eq!(
            report.code, 0,
            "the pristine directory verifies: {}",
            report.stderr
        );
        let summary = report.json();
        assert_eq!(summary["records"], RECORDS);
        assert_eq!(summary["quarantine"]["records"], QUARANTINED, "{summary}");
        let runs = all_files(&dir.join("index"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rid"))
            .count();
        assert!(
            runs >= 2,
            "the index should have more than one run, has {runs}"
        );
        let bitmaps = all_files(&dir.join("index"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "bits"))
            .filter(|p| fs::metadata(p).unwrap().len() > 0)
            .count();
        assert!(bitmaps > 0, "no run holds a dense key's bitmap to damage");
        let kinds: Vec<Kind> = files_by_kind(&dir).into_iter().map(|(k, _)| k).collect();
        for kind in [Kind::Segment, Kind::CompressedSegment] {
            assert!(
                kinds.contains(&kind),
                "the pristine directory has no {kind:?}"
            );
        }
        Pristine {
            _tmp: tmp,
            dir,
            truth,
            plan,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Questions, and answers that may be errors but never wrong

/// What is asked of every opening: fixed by the pristine directory and the seed.
struct Plan {
    records: u64,
    ids: Vec<(u64, String)>,
    tenants: Vec<String>,
    subjects: Vec<String>,
    windows: Vec<(i64, i64)>,
    payload_refs: Vec<String>,
    proofs: Vec<u64>,
    resend: Vec<u64>,
}

type Answers = Vec<(String, Result<String, String>)>;

fn hexed(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Plan {
    fn new(ledger: &Ledger, rng: &mut Rng) -> Self {
        let records = ledger.len();
        let pick = |rng: &mut Rng, n: usize| -> Vec<u64> {
            let mut v: Vec<u64> = (0..n).map(|_| rng.below(records)).collect();
            v.extend([0, records - 1]);
            v.sort_unstable();
            v.dedup();
            v
        };
        let ids = pick(rng, 24)
            .into_iter()
            .map(|seq| {
                let r: Value = serde_json::from_slice(&ledger.get(seq).unwrap().unwrap()).unwrap();
                (seq, r["record_id"].as_str().unwrap().to_string())
            })
            .collect();
        let day = 86_400_000_000_000i64;
        let start = 1_772_323_200_000_000_000i64; // 2026-03-01T00:00:00Z
        let windows = (0..4)
            .map(|_| {
                let from = start + rng.below(27) as i64 * day;
                (from, from + (1 + rng.below(5) as i64) * day)
            })
            .collect();
        let all_quarantine = collect(|q| ledger.quarantine_query(q), &Query::default()).unwrap();
        let payload_refs = all_quarantine
            .iter()
            .step_by(7)
            .map(|(_, bytes)| {
                let r: Value = serde_json::from_slice(bytes).unwrap();
                r["data"]["payload_ref"].as_str().unwrap().to_string()
            })
            .collect();
        Plan {
            records,
            ids,
            tenants: (0..5).map(|t| format!("tenant-{t}")).collect(),
            subjects: (0..4)
                .map(|_| format!("customer-{}", rng.below(37)))
                .collect(),
            windows,
            payload_refs,
            proofs: pick(rng, 8),
            resend: pick(rng, 10),
        }
    }

    /// Every question, answered by `ledger`.
    fn ask(&self, ledger: &Ledger) -> Answers {
        let mut out: Answers = Vec::new();
        let mut put = |q: String, a: Result<String, String>| out.push((q, a));
        let err = |e: sealog_ledger::Error| e.to_string();
        put("len".into(), Ok(ledger.len().to_string()));
        for seq in 0..self.records {
            let a = ledger
                .get(seq)
                .map_err(err)
                .map(|b| b.map_or("none".into(), |b| String::from_utf8_lossy(&b).into_owned()));
            put(format!("get {seq}"), a);
        }
        for (seq, id) in &self.ids {
            let rid = sealog_model::RecordId::parse(id).unwrap();
            put(
                format!("seq of {id} (seq {seq})"),
                ledger.seq_of(&rid).map_err(err).map(|s| format!("{s:?}")),
            );
            let q = Query {
                equals: vec![("id".into(), format!("order-{seq:05}"))],
                ..all()
            };
            put(format!("query id of {seq}"), seqs(ledger, &q));
        }
        for axis_values in [("tenant", &self.tenants), ("subject", &self.subjects)] {
            for v in axis_values.1 {
                let q = Query {
                    equals: vec![(axis_values.0.into(), v.clone())],
                    ..all()
                };
                put(format!("query {}={v}", axis_values.0), seqs(ledger, &q));
            }
        }
        for &(from, to) in &self.windows {
            let q = Query {
                event_from: Some(from),
                event_to: Some(to),
                ..all()
            };
            put(format!("query event time {from}..{to}"), seqs(ledger, &q));
            let q = Query {
                equals: vec![("tenant".into(), "tenant-2".into())],
                as_of_size: Some(self.records / 2),
                ..q
            };
            put(
                format!("query tenant-2 {from}..{to} as of half"),
                seqs(ledger, &q),
            );
        }
        put(
            "quarantine".into(),
            collect(|q| ledger.quarantine_query(q), &Query::default())
                .map_err(err)
                .map(|r| format!("{r:?}")),
        );
        for r in &self.payload_refs {
            put(
                format!("payload {r}"),
                ledger
                    .quarantine_payload(r)
                    .map_err(err)
                    .map(|p| format!("{p:?}")),
            );
        }
        let size = self.records;
        put(
            "root".into(),
            ledger.root(size).map_err(err).map(|h| hexed(&h)),
        );
        for &seq in &self.proofs {
            put(
                format!("inclusion {seq}"),
                ledger
                    .inclusion_proof(seq, size)
                    .map_err(err)
                    .map(|p| format!("{p:?}")),
            );
            if seq > 0 {
                put(
                    format!("consistency {seq}"),
                    ledger
                        .consistency_proof(seq, size)
                        .map_err(err)
                        .map(|p| format!("{p:?}")),
                );
            }
        }
        put(
            "tile".into(),
            ledger.tile(0, 0, 256).map_err(err).map(|t| hexed(&t)),
        );
        put(
            "checkpoint".into(),
            Ok(ledger
                .latest_checkpoint()
                .map_or("none".into(), |c| format!("{} {}", c.size, hexed(&c.root)))),
        );
        out
    }

    /// Re-sends events the log holds: each is a duplicate of its original, or an error.
    fn resend(&self, ledger: &Ledger) -> Vec<String> {
        let events: Vec<Value> = self.resend.iter().map(|&i| event(i)).collect();
        let texts: Vec<String> = events.iter().map(Value::to_string).collect();
        let raws: Vec<_> = texts.iter().map(|t| Ok(t.as_bytes())).collect();
        let Ok(results) = ledger.ingest(&raws, &Author::ANYONE) else {
            return Vec::new();
        };
        let mut wrong = Vec::new();
        if results.len() != self.resend.len() {
            wrong.push(format!(
                "re-sending {} events answered {} results",
                self.resend.len(),
                results.len()
            ));
        }
        for (&i, r) in self.resend.iter().zip(results) {
            match r {
                IngestResult::Duplicate { seq, .. } if seq == i => {}
                other => wrong.push(format!("re-sending event {i} answered {other:?}")),
            }
        }
        wrong
    }
}

fn all() -> Query {
    Query {
        limit: LIMIT_MAX,
        ..Query::default()
    }
}

/// Every page of a query.
fn collect(
    run: impl Fn(&Query) -> Result<sealog_ledger::Page, sealog_ledger::Error>,
    q: &Query,
) -> Result<Vec<(u64, Vec<u8>)>, sealog_ledger::Error> {
    let mut q = Query {
        limit: LIMIT_MAX,
        ..q.clone()
    };
    let mut out = Vec::new();
    loop {
        let page = run(&q)?;
        out.extend(page.records);
        match page.next_after {
            Some(after) => q.after = Some(after),
            None => return Ok(out),
        }
    }
}

fn seqs(ledger: &Ledger, q: &Query) -> Result<String, String> {
    collect(|q| ledger.query(q), q)
        .map(|r| format!("{:?}", r.iter().map(|(s, _)| *s).collect::<Vec<_>>()))
        .map_err(|e| e.to_string())
}

/// Answers that differ from the truth without being errors.
fn wrong_answers(truth: &Answers, got: &Answers) -> Vec<String> {
    assert_eq!(truth.len(), got.len());
    truth
        .iter()
        .zip(got)
        .filter_map(|((q, want), (_, have))| match (want, have) {
            (_, Err(_)) => None,
            (Ok(w), Ok(h)) if w == h => None,
            (w, h) => Some(format!("{q}: expected {}, got {}", brief(w), brief(h))),
        })
        .collect()
}

/// Answers that are errors or differ from the truth.
fn not_right(truth: &Answers, got: &Answers) -> Vec<String> {
    assert_eq!(truth.len(), got.len());
    truth
        .iter()
        .zip(got)
        .filter(|(want, have)| want.1 != have.1)
        .map(|((q, w), (_, h))| format!("{q}: expected {}, got {}", brief(w), brief(h)))
        .collect()
}

fn brief(a: &Result<String, String>) -> String {
    let s = match a {
        Ok(s) => format!("Ok({s})"),
        Err(e) => format!("Err({e})"),
    };
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The kinds of file, and the damage done to them

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Flip,
    Truncate,
    Swap,
    Delete,
}

/// The kinds of file of a data directory, by path relative to it (`quarantine/` prefixed
/// for the quarantine log's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Segment,
    CompressedSegment,
    Positions,
    RunIds,
    RunPostings,
    RunPostingBlocks,
    RunBitmaps,
    RunTimes,
    RunSums,
    Bloom,
    KeyFilter,
    Manifest,
    Durable,
    Deriver,
    TreeLevel,
    CheckpointLog,
    LatestCheckpoint,
    VerifierKey,
    SignerKey,
    Payloads,
    MasterKey,
    SubjectKeys,
}

/// What a trial must see, beyond "no wrong answer" (which holds for every trial).
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Verify names the file; the next opening rebuilds it from the log.
    FoundAndRebuilt,
    /// Verify names the file; it is primary evidence, so nothing rebuilds it.
    Found,
    /// Not damage verify can tell apart from a state Sealog makes itself; the next opening
    /// rebuilds from the log, and the directory verifies after it.
    Rebuilt,
    /// A backup restored without secrets: the log is intact, but no writer opens it.
    NoWriter,
}

impl Kind {
    fn of(rel: &Path) -> Option<Kind> {
        let name = rel.file_name()?.to_str()?;
        let parent = rel
            .parent()?
            .file_name()
            .and_then(|p| p.to_str())
            .unwrap_or("");
        Some(match (parent, name) {
            ("log", n) if n.ends_with(".seg") => Kind::Segment,
            ("log", n) if n.ends_with(".zseg") => Kind::CompressedSegment,
            ("index", "positions") => Kind::Positions,
            ("index", n) if n.ends_with(".rid") => Kind::RunIds,
            ("index", n) if n.ends_with(".post") => Kind::RunPostings,
            ("index", n) if n.ends_with(".pidx") => Kind::RunPostingBlocks,
            ("index", n) if n.ends_with(".bits") => Kind::RunBitmaps,
            ("index", n) if n.ends_with(".time") => Kind::RunTimes,
            ("index", n) if n.ends_with(".sum") => Kind::RunSums,
            ("index", n) if n.ends_with(".bloom") => Kind::Bloom,
            ("index", n) if n.ends_with(".kbloom") => Kind::KeyFilter,
            ("index", "MANIFEST") => Kind::Manifest,
            ("index", "DURABLE") => Kind::Durable,
            ("index", "DERIVER") => Kind::Deriver,
            ("tree", n) if n.starts_with("level-") => Kind::TreeLevel,
            ("checkpoints", "log") => Kind::CheckpointLog,
            ("checkpoints", "latest") => Kind::LatestCheckpoint,
            ("keys", "log.pub") => Kind::VerifierKey,
            ("keys", "log.key") => Kind::SignerKey,
            ("quarantine", "payloads") => Kind::Payloads,
            ("privacy", "master.key") => Kind::MasterKey,
            ("privacy", "subject-keys") => Kind::SubjectKeys,
            // Locks are not data.
            (_, "LOCK") => return None,
            _ => panic!("a file of no known kind: {}", rel.display()),
        })
    }

    fn expect(self, damage: Damage) -> Expect {
        use Kind::*;
        match (self, damage) {
            // `DERIVER` names the packs the index was built with: verify cannot tell a
            // changed one from a change of packs, and either way the index is rebuilt.
            (Deriver, _) => Expect::Rebuilt,
            // No manifest is an index never flushed (a crash before its first run): the
            // opening rebuilds everything derived from the log.
            (Manifest, Damage::Delete) => Expect::Rebuilt,
            (SignerKey, Damage::Delete) => Expect::NoWriter,
            // Secrets and the keys that open personal data: nothing can rebuild them.
            (
                Segment | CompressedSegment | CheckpointLog | VerifierKey | SignerKey | Payloads
                | MasterKey | SubjectKeys,
                _,
            ) => Expect::Found,
            _ => Expect::FoundAndRebuilt,
        }
    }

    /// Entry width, so a swap exchanges two whole entries.
    fn width(self) -> usize {
        match self {
            Kind::Positions | Kind::TreeLevel => 32,
            Kind::RunIds => 40,
            // Compressed: no fixed entries; a swap moves a key's worth of bytes.
            Kind::RunPostings => 16,
            Kind::RunPostingBlocks => 32,
            Kind::RunBitmaps => 8,
            Kind::RunTimes => 16,
            _ => 8,
        }
    }

    fn damages(self) -> &'static [Damage] {
        match self {
            // Truncated and deleted segments have their own campaign (tamper.rs).
            Kind::Segment => &[Damage::Flip, Damage::Swap],
            // A deleted one is a gap verify names by the segment after it (tamper.rs).
            Kind::CompressedSegment => &[Damage::Flip, Damage::Swap, Damage::Truncate],
            _ => &[Damage::Flip, Damage::Truncate, Damage::Swap, Damage::Delete],
        }
    }
}

/// Every file of the pristine directory by kind, relative paths.
fn files_by_kind(dir: &Path) -> Vec<(Kind, Vec<PathBuf>)> {
    let mut out: Vec<(Kind, Vec<PathBuf>)> = Vec::new();
    for path in all_files(dir) {
        let rel = path.strip_prefix(dir).unwrap().to_path_buf();
        let quarantine = rel.starts_with("quarantine");
        let Some(kind) = Kind::of(&rel) else { continue };
        match out
            .iter_mut()
            .find(|(k, files)| *k == kind && files[0].starts_with("quarantine") == quarantine)
        {
            Some((_, files)) => files.push(rel),
            None => out.push((kind, vec![rel])),
        }
    }
    out
}

fn write(path: &Path, bytes: &[u8]) {
    make_writable(path);
    fs::write(path, bytes).unwrap();
}

/// Damages `path`; returns what was done, for messages. `None` when this damage cannot
/// change this file (a swap in a file of equal entries).
fn damage(path: &Path, kind: Kind, what: Damage, rng: &mut Rng) -> Option<String> {
    let mut bytes = fs::read(path).unwrap();
    let len = bytes.len();
    match what {
        Damage::Flip => {
            let at = rng.below(len as u64) as usize;
            let bit = rng.below(8);
            bytes[at] ^= 1 << bit;
            write(path, &bytes);
            Some(format!("bit {bit} of byte {at} flipped"))
        }
        Damage::Truncate => {
            let to = rng.below(len as u64) as usize;
            write(path, &bytes[..to]);
            Some(format!("cut from {len} to {to} bytes"))
        }
        Damage::Delete => {
            fs::remove_file(path).unwrap();
            Some("deleted".into())
        }
        Damage::Swap => {
            let w = kind.width();
            let n = len / w;
            for _ in 0..64 {
                let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
                if bytes[a * w..(a + 1) * w] != bytes[b * w..(b + 1) * w] {
                    let (x, y) = (a.min(b) * w, a.max(b) * w);
                    let (head, tail) = bytes.split_at_mut(y);
                    head[x..x + w].swap_with_slice(&mut tail[..w]);
                    write(path, &bytes);
                    return Some(format!("{w}-byte entries {a} and {b} swapped"));
                }
            }
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a trial

fn sealog(dir: &Path, args: &[&str]) -> Run {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).run(args, b"")
}

fn verify(dir: &Path) -> Run {
    sealog(dir, &["verify", "--full"])
}

/// The report of one opening: answers, and anything that was wrong.
fn session(
    dir: &Path,
    read_only: bool,
    plan: &Plan,
) -> Option<(Answers, Vec<String>, Option<String>)> {
    let ledger = if read_only {
        Ledger::open_read_only(dir, config())
    } else {
        Ledger::open(dir, config())
    }
    .ok()?;
    let answers = plan.ask(&ledger);
    let wrong = if read_only {
        Vec::new()
    } else {
        plan.resend(&ledger)
    };
    let (c, q) = ledger.recovery();
    let rebuilt = c.rebuilt.or(q.rebuilt);
    let _ = ledger.close();
    Some((answers, wrong, rebuilt))
}

/// Damages one file of `kind` and checks everything the file's header promises.
fn trial(
    p: &Pristine,
    kind: Kind,
    files: &[PathBuf],
    what: Damage,
    rng: &mut Rng,
    name: &str,
) -> Vec<String> {
    // A run with no dense key has an empty bitmaps file: only deleting it changes it.
    let changeable: Vec<PathBuf> = files
        .iter()
        .filter(|f| what == Damage::Delete || fs::metadata(p.dir.join(f)).unwrap().len() > 0)
        .cloned()
        .collect();
    if changeable.is_empty() {
        return Vec::new();
    }
    let rel = rng.pick(&changeable).clone();
    let work = TempDir::new().unwrap();
    let damaged = work.path().join("damaged");
    copy_dir(&p.dir, &damaged);
    let Some(done) = damage(&damaged.join(&rel), kind, what, rng) else {
        return Vec::new();
    };
    let ctx = format!("{name}: {} {done}", rel.display());
    let mut problems = Vec::new();
    let answered = work.path().join("answered");
    copy_dir(&damaged, &answered);

    // 2. No wrong answer, read-only and as the writer.
    for read_only in [true, false] {
        if let Some((answers, wrong, _)) = session(&answered, read_only, &p.plan) {
            let mode = if read_only { "read-only" } else { "writer" };
            problems.extend(
                wrong_answers(&p.truth, &answers)
                    .into_iter()
                    .chain(wrong)
                    .map(|w| format!("{ctx}: {mode} answered wrongly: {w}")),
            );
        }
    }
    if kind == Kind::SignerKey && what == Damage::Delete {
        let pub_before = fs::read(p.dir.join(rel.with_file_name("log.pub"))).unwrap();
        let pub_after = fs::read(answered.join(rel.with_file_name("log.pub"))).unwrap();
        if pub_before != pub_after {
            problems.push(format!("{ctx}: the verifier key was replaced"));
        }
    }

    // 1. Found and named.
    let report = verify(&damaged);
    let expect = kind.expect(what);
    let file_name = rel.file_name().unwrap().to_str().unwrap();
    match expect {
        Expect::Found | Expect::FoundAndRebuilt => {
            let said = format!("{}{}", report.stdout, report.stderr);
            if report.code != 1 {
                problems.push(format!(
                    "{ctx}: verify --full did not find it: {}",
                    report.stdout
                ));
            } else if !said.contains(file_name) {
                problems.push(format!(
                    "{ctx}: verify --full did not name {file_name}: {}",
                    report.stdout
                ));
            }
        }
        Expect::NoWriter => {
            if report.code != 0 {
                problems.push(format!(
                    "{ctx}: the log is intact, yet verify said: {}",
                    report.stdout
                ));
            }
            match Ledger::open(&damaged, config()) {
                Ok(_) => problems.push(format!("{ctx}: a writer opened without the signing key")),
                Err(e) if !e.to_string().contains("log.key") => problems.push(format!(
                    "{ctx}: the refusal does not say which key is missing: {e}"
                )),
                Err(_) => {}
            }
        }
        Expect::Rebuilt => {}
    }

    // 3. Rebuilt, reported, right, verified.
    if matches!(expect, Expect::FoundAndRebuilt | Expect::Rebuilt) {
        match session(&damaged, false, &p.plan) {
            None => problems.push(format!(
                "{ctx}: the opening after verify refused the directory"
            )),
            Some((answers, wrong, rebuilt)) => {
                problems.extend(
                    not_right(&p.truth, &answers)
                        .into_iter()
                        .chain(wrong)
                        .map(|w| format!("{ctx}: after the rebuild: {w}")),
                );
                let silent_rebuild = rebuilt.is_none() && expect == Expect::FoundAndRebuilt;
                let index_deleted = kind == Kind::Manifest;
                if silent_rebuild && !index_deleted {
                    problems.push(format!("{ctx}: the opening did not say what it rebuilt"));
                }
                let after = verify(&damaged);
                if after.code != 0 {
                    problems.push(format!(
                        "{ctx}: does not verify after the rebuild: {}",
                        after.stdout
                    ));
                }
            }
        }
    }
    problems
}

/// Runs `what` against one file of every kind that takes it.
fn campaign(what: Damage) {
    let p = pristine();
    let mut rng = Rng::new(seed() ^ (what as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut problems = Vec::new();
    let mut trials = 0;
    for (kind, files) in files_by_kind(&p.dir) {
        if !kind.damages().contains(&what) {
            continue;
        }
        let name = format!("{what:?} {kind:?}");
        problems.extend(trial(p, kind, &files, what, &mut rng, &name));
        trials += 1;
    }
    assert!(trials >= 20, "only {trials} kinds of file were damaged");
    assert!(
        problems.is_empty(),
        "{} problems in {trials} trials (seed {:#x}):\n{}",
        problems.len(),
        seed(),
        problems.join("\n")
    );
}

#[test]
fn a_flipped_bit_in_any_file_is_found_and_never_answers_wrongly() {
    campaign(Damage::Flip);
}

#[test]
fn a_truncated_file_of_any_kind_is_found_and_never_answers_wrongly() {
    campaign(Damage::Truncate);
}

#[test]
fn swapped_entries_in_any_file_are_found_and_never_answer_wrongly() {
    campaign(Damage::Swap);
}

#[test]
fn a_deleted_file_of_any_kind_is_found_and_never_answers_wrongly() {
    campaign(Damage::Delete);
}
