//! Sealed segments compressed in the background: every record reads back the same, by seq,
//! in scans and after reopening; proofs and `verify` are untouched by it; damage to the
//! compressed bytes is found and located; a crash at any step of a compression leaves one
//! whole version; retention rewrites a compressed segment and keeps it compressed; a reader
//! beside a compressing writer reads everything.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealog_model::LogLayout;
use sealog_store::conformance::{TestKeys, Unique, entry, event, key};
use sealog_store::zseg::Zseg;
use sealog_store::{
    Config, Durability, Entry, Key, LIMIT_MAX, LogRead, LogWrite, Scan, Store, StoreError,
};
use sealog_testkit::{tempdir, wait_for};

type TestStore = Store<Unique>;

fn config() -> Config {
    Config {
        durability: Durability::Os,
        segment_bytes_max: 8 << 10,
        memtable_records_max: 64,
        ..Config::default()
    }
}

fn open(dir: &Path) -> TestStore {
    Store::open(&LogLayout::new(dir), config(), Arc::new(TestKeys), Unique).unwrap()
}

fn test_event(n: u64) -> Entry<Option<Key>> {
    entry(&event(
        n,
        &format!("t{}", n % 3),
        &format!("s{}", n % 7),
        None,
    ))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// Appends `n` records one group at a time and waits until every sealed segment is
/// compressed; returns the records as read back before any was.
fn filled(dir: &Path, n: u64) -> (TestStore, Vec<Vec<u8>>) {
    let store = open(dir);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let outcomes = store
            .append(chunk.iter().map(|&i| test_event(i)).collect())
            .unwrap();
        assert_eq!(outcomes.len(), chunk.len());
    }
    let records: Vec<Vec<u8>> = (0..n).map(|s| store.get(s).unwrap().unwrap()).collect();
    wait_for(30, "every sealed segment compressed", || {
        (files(dir, "seg").len() == 1 && store.stats().compressed_segments > 0).then_some(())
    });
    assert_eq!(store.stats().compress_failed, None);
    (store, records)
}

fn verify(dir: &Path) -> Result<sealog_store::verify::Report, sealog_store::verify::Failure> {
    sealog_store::verify::verify(
        &LogLayout::new(dir),
        &sealog_store::verify::Options {
            indexer: Some(&TestKeys),
            full: true,
            ..Default::default()
        },
    )
}

fn check_reads(store: &TestStore, records: &[Vec<u8>], when: &str) {
    for (seq, want) in records.iter().enumerate() {
        assert_eq!(
            &store.get(seq as u64).unwrap().unwrap(),
            want,
            "{when}: record {seq}"
        );
    }
    let page = store
        .scan(&Scan {
            keys: vec![key("tenant", "t1")],
            limit: LIMIT_MAX,
            ..Scan::default()
        })
        .unwrap();
    let want: Vec<u64> = (0..records.len() as u64).filter(|n| n % 3 == 1).collect();
    let got: Vec<u64> = page.records.iter().map(|r| r.0).collect();
    assert_eq!(got, want, "{when}: a scan across compressed segments");
    for (seq, bytes) in &page.records {
        assert_eq!(
            bytes, &records[*seq as usize],
            "{when}: scanned record {seq}"
        );
    }
}

#[test]
fn compressed_segments_read_back_every_record_and_verify_in_full() {
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 300);
    let compressed = files(dir.path(), "zseg");
    assert!(compressed.len() >= 3, "{compressed:?}");
    for z in &compressed {
        assert!(
            fs::metadata(z).unwrap().permissions().readonly(),
            "{}",
            z.display()
        );
    }
    let plain: u64 = records.iter().map(|r| r.len() as u64 + 8).sum();
    let on_disk: u64 = compressed
        .iter()
        .chain(&files(dir.path(), "seg"))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        on_disk < plain,
        "{on_disk} bytes on disk for {plain} of frames"
    );
    check_reads(&store, &records, "beside the compressor");
    let cp = store.checkpoint().unwrap();
    let proof = store.inclusion_proof(5, cp.size).unwrap();
    sealog_merkle::verify_inclusion(
        &sealog_merkle::leaf_hash(&records[5]),
        5,
        cp.size,
        &cp.root,
        &proof,
    )
    .unwrap();
    store.close().unwrap();

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.records, 300);
    assert_eq!(
        sealog_store::segment::plain_bytes(&dir.path().join("log")),
        report.bytes,
        "what verify reads is the segments' uncompressed length"
    );
    let store = open(dir.path());
    assert_eq!(
        store.recovery().replayed,
        0,
        "a clean close leaves nothing to replay"
    );
    check_reads(&store, &records, "after reopening");
    store.close().unwrap();
}

#[test]
fn a_flipped_byte_in_a_compressed_segment_is_found_by_verify_and_by_the_read() {
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 200);
    store.close().unwrap();
    let z = files(dir.path(), "zseg")[1].clone();
    let len = fs::metadata(&z).unwrap().len();
    sealog_testkit::files::flip_byte(&z, len / 2);
    let e = verify(dir.path()).expect_err("a flipped byte is found");
    let name = z.file_name().unwrap().to_str().unwrap();
    assert!(e.to_string().contains(name), "{e}");

    // The index is intact, so the store opens; the damaged block's records are refused
    // where they are read, the others still read.
    let store = open(dir.path());
    let first: u64 = name[..20].parse().unwrap();
    let refused = (first..records.len() as u64)
        .filter(|&s| matches!(store.get(s), Err(StoreError::Corrupted(_))))
        .count();
    assert!(refused > 0, "no record of the damaged block was refused");
    assert_eq!(store.get(0).unwrap().unwrap(), records[0]);
    drop(store);
}

#[test]
fn a_crash_at_any_step_of_a_compression_leaves_one_whole_version() {
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 200);
    store.close().unwrap();
    let log = dir.path().join("log");
    let z = files(dir.path(), "zseg")[0].clone();
    let stem = z.file_stem().unwrap().to_str().unwrap().to_string();
    let plain = log.join(format!("{stem}.seg"));
    let part = log.join(format!("{stem}.zseg.part"));
    let plain_segment = Zseg::open(&z, stem.parse().unwrap())
        .unwrap()
        .plain()
        .unwrap();
    let mut half = fs::read(&z).unwrap();
    half.truncate(half.len() / 2);

    // Killed while writing it: a part-written file beside the plain segment.
    sealog_testkit::files::make_writable(&z);
    fs::remove_file(&z).unwrap();
    fs::write(&plain, &plain_segment).unwrap();
    fs::write(&part, &half).unwrap();
    // Opened first without the compressor, which would write a new part file of its own
    // as soon as the store is open: what is checked here is what opening removes.
    let resting = Config {
        compress_sealed: false,
        ..config()
    };
    let store = Store::<Unique>::open(
        &LogLayout::new(dir.path()),
        resting,
        Arc::new(TestKeys),
        Unique,
    )
    .unwrap();
    assert!(
        !part.exists(),
        "the part-written file is removed on opening"
    );
    check_reads(&store, &records, "after a kill during the write");
    store.close().unwrap();
    let store = open(dir.path());
    check_reads(&store, &records, "reopened with the compressor");
    wait_for(30, "the segment compressed again", || {
        (z.exists() && !plain.exists()).then_some(())
    });
    store.close().unwrap();
    assert_eq!(verify(dir.path()).unwrap().records, 200);

    // Killed after the rename, before the plain segment was removed: both are there.
    fs::write(&plain, &plain_segment).unwrap();
    let store = open(dir.path());
    assert!(
        !plain.exists(),
        "the plain segment a compressed one replaced is removed"
    );
    check_reads(
        &store,
        &records,
        "after a kill between the rename and the removal",
    );
    store.close().unwrap();
    assert_eq!(verify(dir.path()).unwrap().records, 200);
}

#[test]
fn retention_rewrites_a_compressed_segment_and_keeps_it_compressed() {
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 200);
    let z = files(dir.path(), "zseg")[0].clone();
    let pruned = store
        .prune(&[
            sealog_store::Prune {
                seq: 1,
                link: None,
                key: None,
            },
            sealog_store::Prune {
                seq: 2,
                link: None,
                key: None,
            },
        ])
        .unwrap();
    assert_eq!(pruned, 2);
    assert!(z.exists() && files(dir.path(), "seg").len() == 1);
    assert!(matches!(store.get(1), Err(StoreError::Pruned(s)) if s.seq == 1));
    assert_eq!(store.get(3).unwrap().unwrap(), records[3]);
    store.close().unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(
        report.stubs.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    let store = open(dir.path());
    assert!(matches!(store.get(2), Err(StoreError::Pruned(_))));
    assert_eq!(store.get(0).unwrap().unwrap(), records[0]);
    store.close().unwrap();
}

#[test]
fn a_reader_beside_a_compressing_writer_reads_every_record() {
    let dir = tempdir();
    let layout = LogLayout::new(dir.path());
    let writer = open(dir.path());
    let mut records = Vec::new();
    for round in 0..20u64 {
        let group: Vec<_> = (round * 15..round * 15 + 15).map(test_event).collect();
        writer.append(group).unwrap();
        records.extend((round * 15..round * 15 + 15).map(|s| writer.get(s).unwrap().unwrap()));
        // Opened while segments are being compressed and their plain files removed.
        let reader =
            Store::<Unique>::open_read_only(&layout, &config(), Arc::new(TestKeys)).unwrap();
        for (seq, want) in records.iter().enumerate() {
            assert_eq!(
                &reader.get(seq as u64).unwrap().unwrap(),
                want,
                "round {round}, record {seq}"
            );
        }
    }
    writer.close().unwrap();
}

/// A forger who knows the format: a record edited, its frame's checksum made right, the
/// segment compressed again with a valid index and block checksums. Only the tree can tell,
/// and it does, at the record.
#[test]
fn a_record_edited_and_compressed_again_with_valid_checksums_is_found_at_its_seq() {
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 200);
    store.close().unwrap();
    let z = files(dir.path(), "zseg")[1].clone();
    let mut plain = sealog_testkit::format::read_segment(&z);
    let frames = sealog_testkit::format::frames(&plain, 16);
    let r = frames[3].clone();
    let payload_at = r.start as usize + 8;
    let edited: Vec<u8> = String::from_utf8(plain[payload_at..r.end as usize].to_vec())
        .unwrap()
        .replacen("\"t", "\"T", 1)
        .into_bytes();
    let mut frame = Vec::new();
    sealog_testkit::format::encode_frame(&edited, &mut frame);
    plain.splice(r.start as usize..r.end as usize, frame);
    sealog_testkit::format::write_segment(&z, &plain);
    let first: u64 = z.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let seq = first + 3;
    let e = verify(dir.path()).expect_err("the edit is found");
    assert!(e.to_string().contains(&format!("seq {seq}")), "{e}");
    let store = open(dir.path());
    assert!(
        matches!(store.get(seq), Err(StoreError::Corrupted(_))),
        "the edited record is refused where it is read"
    );
    assert_eq!(
        store.get(seq + 1).unwrap().unwrap(),
        records[seq as usize + 1]
    );
    drop(store);
}

/// The compressed segments' files this process has open, by what /proc says each descriptor
/// names.
fn open_compressed(dir: &Path) -> usize {
    let log = fs::canonicalize(dir.join("log")).unwrap();
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(&log) && target.extension().is_some_and(|x| x == "zseg")
        })
        .count()
}

/// A long-lived process must not hold a descriptor per segment its log ever sealed.
#[test]
fn a_long_log_keeps_only_a_few_compressed_segments_open() {
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 2_000);
    let compressed = files(dir.path(), "zseg").len();
    let limit = sealog_store::handles::OPEN_MAX;
    assert!(compressed > 2 * limit, "{compressed} compressed segments");
    for round in ["first", "second"] {
        check_reads(&store, &records, round);
        let open = open_compressed(dir.path());
        assert!(
            open <= limit,
            "{round} reading: {open} of {compressed} compressed segments open"
        );
    }
    store.close().unwrap();
    assert_eq!(verify(dir.path()).unwrap().records, 2_000);
}

/// Retention renames each rewritten segment over the old one while readers, whose handles to
/// the old one may have been closed meanwhile, read on: each read gives the record or its
/// stub, never the new file's bytes through the old one's index.
#[test]
fn readers_beside_retention_rewriting_compressed_segments_get_records_or_stubs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Stops the readers however the pruning ends, so a failed prune fails the test.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let dir = tempdir();
    let (store, records) = filled(dir.path(), 2_000);
    let n = records.len() as u64;
    let pruned = |seq: u64| seq.is_multiple_of(5);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for reader in 0..2 {
            let (store, records, done) = (&store, &records, &done);
            s.spawn(move || {
                // The two readers walk in opposite directions, so both touch every segment.
                let order = (0..n).map(|i| if reader == 0 { i } else { n - 1 - i });
                for seq in order.cycle() {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    match store.get(seq) {
                        Ok(Some(bytes)) => assert_eq!(bytes, records[seq as usize], "record {seq}"),
                        Err(StoreError::Pruned(stub)) if pruned(seq) => assert_eq!(stub.seq, seq),
                        other => panic!("record {seq}: {other:?}"),
                    }
                }
            });
        }
        let _stop = Stop(&done);
        let sealed = files(dir.path(), "zseg");
        // Every sealed segment but the newest, pruned in one rewrite each.
        let firsts: Vec<u64> = sealed
            .iter()
            .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
            .collect();
        for w in firsts.windows(2) {
            let prunes: Vec<_> = (w[0]..w[1])
                .filter(|&s| pruned(s))
                .map(|seq| sealog_store::Prune {
                    seq,
                    link: None,
                    key: None,
                })
                .collect();
            store.prune(&prunes).unwrap();
        }
    });
    store.close().unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.stubs.len() > 300, "{} stubs", report.stubs.len());
}

/// Each of this process's threads named `name`, with its nice value.
fn threads_named(name: &str) -> Vec<i64> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let stat = fs::read_to_string(t.ok()?.path().join("stat")).ok()?;
            // "tid (comm) state ppid …": the name may hold spaces, so fields count from the
            // last parenthesis; nice is the 19th field, the 17th after the name.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            (comm == name).then(|| rest.split_whitespace().nth(16)?.parse().ok())?
        })
        .collect()
}

#[test]
fn the_compressor_runs_at_a_lower_priority_than_the_writer() {
    let dir = tempdir();
    let store = open(dir.path());
    // The kernel keeps 15 bytes of a thread's name. Other tests' stores run beside this one,
    // so some compressor has lowered itself below every writer (whose priority nothing
    // changes), unless the process already runs at the lowest.
    let writer = *threads_named("sealog-writer")
        .iter()
        .max()
        .expect("a writer thread");
    wait_for(10, "a compressor below the writers", || {
        threads_named("sealog-compress")
            .into_iter()
            .any(|nice| nice > writer || nice == 19)
            .then_some(())
    });
    drop(store);
}
