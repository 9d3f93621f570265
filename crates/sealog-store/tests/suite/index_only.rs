//! "Queries walk an index, never the log": a query reads the log only for the records it
//! returns.
//!
//! A log of 10,000 records holds five "needles" (one rare subject, the only events of a
//! month), spread over index runs on disk and the memtable. Each query that finds them is
//! watched by the kernel, not by the store: inotify reports reads of segment files (reads of
//! one file back to back merge into one event, so a record's frame header and payload count
//! once, and a scan would count at least once per segment), and the thread's own I/O
//! accounting (`/proc/thread-self/io`) counts every byte it read from any file. Index runs
//! are memory-mapped, so walking them costs no read(2) at all: what a query may read is its
//! records' frames, their positions and leaf hashes, a position for each candidate a time
//! window is checked on, and a binary search of the positions for an ingest window.
//!
//! Damage shows the same from the other side: damaged records the query does not return
//! change nothing, while a damaged block of the postings it walks fails it.
//!
//! The log's events come from a fixed seed (`SEED`); nothing here depends on timing.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use sealog_model::LogLayout;
use sealog_model::record::read_stored;
use sealog_store::conformance::{TestKeys, Unique, entry, key};
use sealog_store::{Config, Durability, LIMIT_MAX, LogRead, LogWrite, Scan, Store, StoreError};
use sealog_testkit::Rng;

const RECORDS: u64 = 10_000;
const SEED: u64 = 0x1DE7_0001;
/// Where the needles are, by seq: in different runs, and the last one in the memtable.
const NEEDLES: [u64; 5] = [17, 2_048, 5_003, 9_001, 9_777];
/// Records appended before the store is closed and reopened: they end up in index runs,
/// the rest stay in the memtable.
const BEFORE_REOPEN: u64 = 9_500;
/// 2027-03-01T00:00:00Z and 2027-04-01T00:00:00Z: only the needles happened in between.
const MARCH_2027: (i64, i64) = (1_803_859_200_000_000_000, 1_806_537_600_000_000_000);

fn config() -> Config {
    Config {
        durability: Durability::Os,
        segment_bytes_max: 512 << 10,
        memtable_records_max: 1_000,
        // What a read costs is counted in bytes of plain frames; a compressed segment's
        // read is one block (tests/suite/compression.rs).
        compress_sealed: false,
        ..Config::default()
    }
}

fn open(dir: &Path) -> Store<Unique> {
    Store::open(&LogLayout::new(dir), config(), Arc::new(TestKeys), Unique).unwrap()
}

/// Record `n`'s event: a needle has subject `rare`, tenant `t1` and a time in March 2027;
/// the others spread over 2026, seven tenants and 500 subjects.
fn event_text(n: u64, rng: &mut Rng) -> String {
    let tenant = if NEEDLES.contains(&n) {
        "t1".to_string()
    } else {
        format!("t{}", n % 7)
    };
    let pad = "x".repeat(rng.below(200) as usize);
    let (subject, time) = if NEEDLES.contains(&n) {
        let day = 1 + NEEDLES.iter().position(|&s| s == n).unwrap() * 5;
        ("rare".to_string(), format!("2027-03-{day:02}T10:00:00Z"))
    } else {
        let (month, day) = (1 + rng.below(12), 1 + rng.below(28));
        (
            format!("s{}", rng.below(500)),
            format!("2026-{month:02}-{day:02}T{:02}:00:00Z", rng.below(24)),
        )
    };
    format!(
        r#"{{"id":"r{n}","source":"index-only","type":"test.t{}","time":"{time}","tenant":"{tenant}","subject":"{subject}","data":{{"pad":"{pad}"}}}}"#,
        n % 3
    )
}

/// What the test knows of each record, read back before anything is measured.
struct Known {
    tenant: Vec<String>,
    subject: Vec<String>,
    event_ns: Vec<i64>,
    ingested_ns: Vec<i64>,
    payload: Vec<u64>,
}

impl Known {
    fn answer(&self, q: &Scan, equals: &[(&str, &str)]) -> Vec<u64> {
        (0..RECORDS)
            .filter(|&s| {
                let i = s as usize;
                equals.iter().all(|(a, v)| match *a {
                    "tenant" => self.tenant[i] == *v,
                    "subject" => self.subject[i] == *v,
                    other => panic!("no axis {other} here"),
                }) && q.event_from.is_none_or(|f| self.event_ns[i] >= f)
                    && q.event_to.is_none_or(|t| self.event_ns[i] < t)
                    && q.ingest_from.is_none_or(|f| self.ingested_ns[i] >= f)
                    && q.ingest_to.is_none_or(|t| self.ingested_ns[i] < t)
                    && q.after.is_none_or(|a| s > a)
            })
            .collect()
    }
}

/// Builds the log: runs on disk for the first records, the memtable for the rest.
fn build(dir: &Path) -> (Store<Unique>, Known) {
    let mut rng = Rng::new(SEED);
    let texts: Vec<String> = (0..RECORDS).map(|n| event_text(n, &mut rng)).collect();
    // Groups of 50, each needle in a group of its own: its ingest time is its own.
    let append = |store: &Store<Unique>, range: std::ops::Range<u64>| {
        let seqs: Vec<u64> = range.collect();
        let groups = seqs
            .chunk_by(|&a, &b| a / 50 == b / 50 && !NEEDLES.contains(&a) && !NEEDLES.contains(&b));
        for chunk in groups {
            let entries = chunk.iter().map(|&n| entry(&texts[n as usize])).collect();
            let out = store.append(entries).unwrap();
            let seqs: Vec<_> = out.iter().map(|o| o.seq().unwrap()).collect();
            assert_eq!(seqs, chunk);
        }
    };
    let store = open(dir);
    append(&store, 0..BEFORE_REOPEN);
    store.close().unwrap();
    let store = open(dir);
    append(&store, BEFORE_REOPEN..RECORDS);
    let mut known = Known {
        tenant: Vec::new(),
        subject: Vec::new(),
        event_ns: Vec::new(),
        ingested_ns: Vec::new(),
        payload: Vec::new(),
    };
    for seq in 0..RECORDS {
        let bytes = store.get(seq).unwrap().unwrap();
        let (tenant, subject, event_ns, ingested_ns) = read_stored(&bytes, |s| {
            (
                s.envelope.tenant.unwrap().to_string(),
                s.envelope.subject.unwrap().to_string(),
                s.envelope.time_nanos,
                s.ingested_ns,
            )
        })
        .unwrap();
        known.tenant.push(tenant);
        known.subject.push(subject);
        known.event_ns.push(event_ns);
        known.ingested_ns.push(ingested_ns);
        known.payload.push(bytes.len() as u64);
    }
    (store, known)
}

/// This thread's read(2) calls and bytes so far, as the kernel counts them.
fn thread_reads() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/thread-self/io: {text}"))
    };
    (field("syscr:"), field("rchar:"))
}

/// Every read(2) of a file in the watched directories, as inotify reports them.
struct Watch {
    fd: i32,
    dirs: BTreeMap<i32, String>,
}

impl Watch {
    #[allow(unsafe_code)]
    fn new(dirs: &[(&str, &Path)]) -> Watch {
        // SAFETY: inotify_init1 takes flags only.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify: {}", std::io::Error::last_os_error());
        let mut watched = BTreeMap::new();
        for (name, dir) in dirs {
            let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
            // SAFETY: `path` is a NUL-terminated string that outlives the call.
            let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_ACCESS) };
            assert!(
                wd >= 0,
                "watch {}: {}",
                dir.display(),
                std::io::Error::last_os_error()
            );
            watched.insert(wd, name.to_string());
        }
        Watch { fd, dirs: watched }
    }

    /// The reads reported since the last call, as "dir/file" names in order; "overflow"
    /// where the kernel's queue was full and dropped the rest.
    #[allow(unsafe_code)]
    fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                let e = std::io::Error::last_os_error();
                assert!(
                    n == 0 || e.kind() == std::io::ErrorKind::WouldBlock,
                    "inotify read: {e}"
                );
                return out;
            }
            let mut at = 0usize;
            while at < n as usize {
                let word = |i: usize| {
                    u32::from_ne_bytes(buf[at + 4 * i..at + 4 * i + 4].try_into().unwrap())
                };
                let (wd, mask, len) = (word(0) as i32, word(1), word(3) as usize);
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    out.push("overflow".into());
                } else {
                    let name = &buf[at + 16..at + 16 + len];
                    let name = String::from_utf8_lossy(name)
                        .trim_end_matches('\0')
                        .to_string();
                    out.push(format!("{}/{name}", self.dirs[&wd]));
                }
                at += 16 + len;
            }
        }
    }
}

impl Drop for Watch {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// What running one query cost, as the kernel saw it.
struct Cost {
    /// Reads of segment files (a frame's header and payload read back to back count once);
    /// `None` when there were more reads than the kernel's queue holds.
    segment_reads: Option<usize>,
    /// Reads of any other file of the log's directory, by name.
    other_reads: Vec<String>,
    syscalls: u64,
    bytes: u64,
}

fn measure(watch: &Watch, run: impl FnOnce()) -> Cost {
    // Reading the counters costs reads of its own; measured with nothing between, it is
    // taken off.
    let (c0, b0) = thread_reads();
    let (c1, b1) = thread_reads();
    let (own_calls, own_bytes) = (c1 - c0, b1 - b0);
    watch.drain();
    let before = thread_reads();
    run();
    let after = thread_reads();
    let events = watch.drain();
    let overflow = events.iter().any(|e| e == "overflow");
    let (segment, other): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| e.ends_with(".seg"));
    Cost {
        segment_reads: (!overflow).then_some(segment.len()),
        other_reads: other,
        syscalls: (after.0 - before.0).saturating_sub(own_calls),
        bytes: (after.1 - before.1).saturating_sub(own_bytes),
    }
}

/// One query and what it may cost: `candidates` is the number of records its rarest key
/// names when it also has an event-time window (each one's position is read to check it).
struct Case {
    name: &'static str,
    equals: &'static [(&'static str, &'static str)],
    scan: Scan,
    candidates: u64,
}

fn cases(known: &Known) -> Vec<Case> {
    let march = Scan {
        event_from: Some(MARCH_2027.0),
        event_to: Some(MARCH_2027.1),
        ..Scan::default()
    };
    let last = NEEDLES[4] as usize;
    let t1 = known.tenant.iter().filter(|t| *t == "t1").count() as u64;
    vec![
        Case {
            name: "a rare subject",
            equals: &[("subject", "rare")],
            scan: Scan::default(),
            candidates: 0,
        },
        Case {
            name: "a rare subject within a common tenant",
            equals: &[("tenant", "t1"), ("subject", "rare")],
            scan: Scan::default(),
            candidates: 0,
        },
        Case {
            name: "an event-time window",
            equals: &[],
            scan: march.clone(),
            candidates: 0,
        },
        Case {
            name: "a common tenant within an event-time window",
            equals: &[("tenant", "t1")],
            scan: march.clone(),
            candidates: t1,
        },
        Case {
            name: "an ingest-time window",
            equals: &[],
            scan: Scan {
                ingest_from: Some(known.ingested_ns[last]),
                ingest_to: Some(known.ingested_ns[last] + 1),
                ..Scan::default()
            },
            candidates: 0,
        },
        Case {
            name: "the second page of a rare subject, two by two",
            equals: &[("subject", "rare")],
            scan: Scan {
                after: Some(NEEDLES[1]),
                limit: 2,
                ..Scan::default()
            },
            candidates: 0,
        },
    ]
}

#[test]
fn a_query_reads_the_log_only_for_the_records_it_returns() {
    let dir = sealog_testkit::tempdir();
    let (store, known) = build(dir.path());
    let layout = LogLayout::new(dir.path());
    let log_bytes: u64 = known.payload.iter().map(|p| p + 8).sum();
    let runs = std::fs::read_dir(layout.index())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "post")
        })
        .count();
    assert!(
        runs >= 2,
        "the needles are spread over several runs and the memtable"
    );
    let watch = Watch::new(&[
        ("log", &layout.segments()),
        ("index", &layout.index()),
        ("tree", &layout.tree()),
    ]);
    for case in cases(&known) {
        let scan = Scan {
            keys: case.equals.iter().map(|(a, v)| key(a, v)).collect(),
            limit: if case.scan.limit == 0 {
                LIMIT_MAX
            } else {
                case.scan.limit
            },
            ..case.scan.clone()
        };
        let mut want = known.answer(&scan, case.equals);
        want.truncate(scan.limit);
        assert!(
            !want.is_empty() && want.len() <= 5,
            "{}: the case finds a few records: {want:?}",
            case.name
        );
        let mut page = None;
        let cost = measure(&watch, || page = Some(store.scan(&scan).unwrap()));
        let got: Vec<u64> = page.unwrap().records.iter().map(|r| r.0).collect();
        assert_eq!(got, want, "{}", case.name);

        eprintln!(
            "{}: {} records, {:?} segment reads, {} read calls, {} bytes of a {log_bytes}-byte log",
            case.name,
            got.len(),
            cost.segment_reads,
            cost.syscalls,
            cost.bytes
        );

        let segment_reads = cost.segment_reads.unwrap_or_else(|| {
            panic!(
                "{}: the segments were read more often than the kernel's queue holds",
                case.name
            )
        });
        assert!(
            (1..=got.len()).contains(&segment_reads),
            "{}: {segment_reads} reads of segments for {} records returned",
            case.name,
            got.len()
        );
        assert!(
            cost.other_reads.iter().all(|f| !f.starts_with("log/")),
            "{}: nothing else of the log was read: {:?}",
            case.name,
            cost.other_reads
        );
        // A record costs its frame (header and payload), its position and its leaf hash; a
        // windowed key a position per candidate; an ingest window a binary search of the
        // positions (two of them, 32 bytes a step).
        let returned: u64 = got.iter().map(|&s| known.payload[s as usize]).sum();
        let allowed = returned + 72 * got.len() as u64 + 32 * case.candidates + 2 * 14 * 32;
        assert!(
            cost.bytes <= allowed,
            "{}: {} bytes read for {} records ({returned} bytes of records); allowed {allowed}, the log is {log_bytes}",
            case.name,
            cost.bytes,
            got.len()
        );
        assert!(
            cost.syscalls <= 4 * got.len() as u64 + case.candidates + 2 * 14,
            "{}: {} reads for {} records",
            case.name,
            cost.syscalls,
            got.len()
        );
    }
    store.close().unwrap();
}

/// Flips a byte inside record `seq`'s payload, in whichever segment holds it. Frames are
/// found by reading from the segment's start, so records are damaged last first.
fn damage_record(dir: &Path, seq: u64) {
    let log = LogLayout::new(dir).segments();
    let segments = sealog_testkit::format::segments(&log);
    let (first, path) = segments
        .iter()
        .rev()
        .find(|(first, _)| *first <= seq)
        .unwrap();
    let bytes = std::fs::read(path).unwrap();
    let frames =
        sealog_testkit::format::frames(&bytes, sealog_testkit::format::HEADER_BYTES as usize);
    let frame = &frames[(seq - first) as usize];
    sealog_testkit::files::flip_byte(path, frame.start + 40);
}

/// The offset of key `k` in a run's `.post` table, if it has postings there: the
/// compressed table still writes each key whole at the head of its group.
fn posting_in(table: &[u8], k: &[u8; 16]) -> Option<u64> {
    table.windows(16).position(|w| w == k).map(|i| i as u64)
}

#[test]
fn a_query_fails_on_damage_in_the_postings_it_walks_never_in_records_it_skips() {
    let dir = sealog_testkit::tempdir();
    let (store, _) = build(dir.path());
    let rare = Scan {
        keys: vec![key("subject", "rare")],
        limit: LIMIT_MAX,
        ..Scan::default()
    };
    let seqs = |store: &Store<Unique>| -> Vec<u64> {
        store
            .scan(&rare)
            .unwrap()
            .records
            .iter()
            .map(|r| r.0)
            .collect()
    };
    assert_eq!(seqs(&store), NEEDLES);
    store.close().unwrap();

    // Every record beside a needle, which a scan of the log would have to read, is damaged.
    for &n in NEEDLES.iter().rev() {
        damage_record(dir.path(), n + 1);
        damage_record(dir.path(), n - 1);
    }
    let store = open(dir.path());
    assert_eq!(
        seqs(&store),
        NEEDLES,
        "the damaged neighbours are never read"
    );
    let err = store.get(NEEDLES[0] + 1).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupted(_)),
        "the damage is real: {err}"
    );
    drop(store);

    // The run holding the needles' postings is what the query reads.
    std::fs::remove_file(LogLayout::new(dir.path()).rebuild_marker()).ok();
    let index = LogLayout::new(dir.path()).index();
    let k = key("subject", "rare");
    let (run, at) = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "post"))
        .find_map(|p| posting_in(&std::fs::read(&p).unwrap(), &k).map(|at| (p, at)))
        .expect("a run holds the rare subject's postings");
    sealog_testkit::files::flip_byte(&run, at + 17);
    let store = open(dir.path());
    let err = store.scan(&rare).unwrap_err();
    let name = run.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        matches!(&err, StoreError::Corrupted(why) if why.contains(&name)),
        "the query walks {name}: {err}"
    );
}
