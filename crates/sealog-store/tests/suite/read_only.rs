//! Opening a log read-only, beside the process that writes it or after it closed: the reader
//! sees exactly the records the writer had made durable when it opened — those its index
//! runs cover and those after them, across segments — proves them like the writer would,
//! and neither appends, signs nor changes a byte of any file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sealog_merkle::note::Verifier;
use sealog_merkle::{Frontier, Hash, leaf_hash, verify_consistency, verify_inclusion};
use sealog_model::LogLayout;
use sealog_model::json::Json;
use sealog_model::record::{Stored, read_stored};
use sealog_store::conformance::{TestKeys, Unique, entry, event, key};
use sealog_store::{
    Config, Durability, Entry, Indexer, Key, LIMIT_MAX, LogRead, LogWrite, Outcome, Scan, Store,
    StoreError, open_checkpoint,
};
use sealog_testkit::files::{all_files, settled_index_end};
use sealog_testkit::{tempdir, wait_for};

type TestStore = Store<Unique>;

const MEMTABLE: u64 = 16;

/// Small segments and index runs; checkpoints only when asked for, or on close. Sealed
/// segments stay plain, so a reader is shown to change nothing on disk while the writer,
/// once its index is flushed, changes nothing either (a reader beside a compressing writer:
/// tests/suite/compression.rs).
fn config() -> Config {
    Config {
        durability: Durability::Os,
        segment_bytes_max: 4096,
        compress_sealed: false,
        memtable_records_max: MEMTABLE,
        checkpoint_interval: Duration::from_secs(24 * 3600),
        ..Config::default()
    }
}

fn open_writer(layout: &LogLayout) -> TestStore {
    Store::open(layout, config(), Arc::new(TestKeys), Unique).unwrap()
}

fn open_reader(layout: &LogLayout, indexer: Arc<dyn Indexer>) -> TestStore {
    let reader = Store::open_read_only(layout, &config(), indexer).unwrap();
    assert!(!reader.is_writable());
    reader
}

fn test_event(n: u64) -> Entry<Option<Key>> {
    entry(&event(
        n,
        &format!("t{}", n % 3),
        &format!("s{}", n % 5),
        None,
    ))
}

/// Appends events `from..to`, one commit each, so the index freezes a run every
/// `MEMTABLE` records.
fn append_one_by_one(writer: &TestStore, from: u64, to: u64) {
    for n in from..to {
        let out = writer.append(vec![test_event(n)]).unwrap();
        assert!(
            matches!(out[0], Outcome::Appended { seq, .. } if seq == n),
            "{out:?}"
        );
    }
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn assert_unchanged(before: &BTreeMap<PathBuf, Vec<u8>>, dir: &Path, what: &str) {
    let after = snapshot(dir);
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&after),
        names(before),
        "{what}: files were added or removed"
    );
    for (path, bytes) in before {
        assert!(after[path] == *bytes, "{what}: {} changed", path.display());
    }
}

/// Tree roots of every size over `records`, as the reference the reader's must equal.
fn reference_roots(records: &[Vec<u8>]) -> (Vec<Hash>, Vec<Hash>) {
    let mut frontier = Frontier::new();
    let mut roots = vec![frontier.root()];
    let mut leaves = Vec::new();
    for r in records {
        let leaf = leaf_hash(r);
        leaves.push(leaf);
        frontier.push(leaf);
        roots.push(frontier.root());
    }
    (leaves, roots)
}

fn seqs(log: &TestStore, scan: &Scan) -> Vec<u64> {
    let mut out = Vec::new();
    let mut s = scan.clone();
    loop {
        let page = log.scan(&s).unwrap();
        out.extend(page.records.iter().map(|r| r.0));
        match page.next_after {
            Some(a) => s.after = Some(a),
            None => return out,
        }
    }
}

/// Checks that `reader` serves exactly `records` (bytes by seq): reads, ids, scans, roots
/// and proofs.
fn check_serves_exactly(reader: &TestStore, records: &[Vec<u8>], what: &str) {
    let len = records.len() as u64;
    assert_eq!(reader.len(), len, "{what}");
    assert_eq!(reader.get(len).unwrap(), None, "{what}");
    let mut tenants: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (seq, bytes) in records.iter().enumerate() {
        let seq = seq as u64;
        assert_eq!(
            reader.get(seq).unwrap().as_ref(),
            Some(bytes),
            "{what}: record {seq}"
        );
        let (id, tenant) = read_stored(bytes, |s| {
            (s.record_id.0, s.envelope.tenant.unwrap().to_string())
        })
        .unwrap();
        assert_eq!(
            reader.seq_of(&id).unwrap(),
            Some(seq),
            "{what}: seq_of {seq}"
        );
        tenants.entry(tenant).or_default().push(seq);
    }
    for (tenant, want) in &tenants {
        for limit in [7, LIMIT_MAX] {
            let scan = Scan {
                keys: vec![key("tenant", tenant)],
                limit,
                ..Scan::default()
            };
            assert_eq!(
                &seqs(reader, &scan),
                want,
                "{what}: tenant {tenant} by {limit}"
            );
        }
    }
    let all = Scan {
        limit: 33,
        ..Scan::default()
    };
    assert_eq!(seqs(reader, &all), (0..len).collect::<Vec<_>>(), "{what}");

    let (leaves, roots) = reference_roots(records);
    for size in 0..=len {
        assert_eq!(
            reader.root(size).unwrap(),
            roots[size as usize],
            "{what}: root {size}"
        );
    }
    assert!(
        reader.root(len + 1).is_err(),
        "{what}: no root past the log"
    );
    for size in [1, 2, 17, len / 2, len - 1, len] {
        for seq in [0, size / 3, size - 1] {
            let proof = reader.inclusion_proof(seq, size).unwrap();
            verify_inclusion(
                &leaves[seq as usize],
                seq,
                size,
                &roots[size as usize],
                &proof,
            )
            .unwrap_or_else(|e| panic!("{what}: inclusion of {seq} in {size}: {e}"));
        }
        let old = size / 2;
        if old > 0 {
            let proof = reader.consistency_proof(old, size).unwrap();
            verify_consistency(
                old,
                size,
                &roots[old as usize],
                &roots[size as usize],
                &proof,
            )
            .unwrap_or_else(|e| panic!("{what}: consistency {old} → {size}: {e}"));
        }
    }
}

/// Appends nothing, and answers with the newest checkpoint the writer signed.
fn check_appends_and_signs_nothing(reader: &TestStore, signed_size: u64, roots: &[Hash]) {
    let err = LogWrite::append(reader, vec![test_event(99_999)]).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly), "{err:?}");
    let cp = reader.checkpoint().unwrap();
    assert_eq!(
        cp.size, signed_size,
        "the reader signed no checkpoint of its own"
    );
    assert_eq!(cp.root, roots[signed_size as usize]);
    assert_eq!(reader.latest_checkpoint(), Some(cp.clone()));
    let verifier = Verifier::parse(&reader.verifier_key()).unwrap();
    assert_eq!(open_checkpoint(&cp.note, &verifier).unwrap(), cp);
}

fn records_of(log: &TestStore) -> Vec<Vec<u8>> {
    (0..log.len())
        .map(|s| log.get(s).unwrap().unwrap())
        .collect()
}

#[test]
fn a_reader_beside_the_writer_sees_exactly_what_was_durable_when_it_opened() {
    const SIGNED: u64 = 100;
    const N: u64 = 150;
    let dir = tempdir();
    let layout = LogLayout::new(dir.path());
    let writer = open_writer(&layout);
    append_one_by_one(&writer, 0, SIGNED);
    assert_eq!(writer.checkpoint().unwrap().size, SIGNED);
    append_one_by_one(&writer, SIGNED, N);
    let segments = sealog_testkit::format::segments(&layout.segments());
    assert!(
        segments.len() > 2,
        "{} segments: the log must roll",
        segments.len()
    );

    // Each commit of one record fills the memtable by one, so the runs end at the last
    // multiple of its size; once the background flush has written them and removed what it
    // merged away, the writer writes nothing until the next append.
    let past_runs = N % MEMTABLE;
    wait_for(30, "the writer's index flush to finish", || {
        settled_index_end(&layout).filter(|&end| end == N - past_runs)
    });

    let records = records_of(&writer);
    let (_, roots) = reference_roots(&records);
    let before = snapshot(dir.path());
    let reader = open_reader(&layout, Arc::new(TestKeys));
    assert_eq!(
        reader.recovery().replayed,
        past_runs,
        "records past the last index run are indexed in memory"
    );
    assert_eq!(reader.recovery().cut, None);
    check_serves_exactly(&reader, &records, "beside the writer");
    check_appends_and_signs_nothing(&reader, SIGNED, &roots);
    assert_unchanged(&before, dir.path(), "reading beside the writer");

    // What the writer appends later is not the reader's: it keeps the log as it opened it.
    append_one_by_one(&writer, N, N + 20);
    let later = test_event(N + 5).id();
    assert_eq!(writer.seq_of(&later).unwrap(), Some(N + 5));
    assert_eq!(reader.seq_of(&later).unwrap(), None);
    check_serves_exactly(&reader, &records, "after the writer appended more");
    check_appends_and_signs_nothing(&reader, SIGNED, &roots);

    let records = records_of(&writer);
    let (_, roots) = reference_roots(&records);
    writer.close().unwrap();
    let before = snapshot(dir.path());
    let reader = open_reader(&layout, Arc::new(TestKeys));
    check_serves_exactly(&reader, &records, "after the writer closed");
    check_appends_and_signs_nothing(&reader, N + 20, &roots);
    drop(reader);
    assert_unchanged(&before, dir.path(), "reading after the writer closed");
}

/// Keys each record by the parity of its `data.n`: another derivation than the writer's.
struct Parity;

impl Indexer for Parity {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        let n = stored.record.get("data").and_then(|d| d.get("n"));
        n.and_then(Json::as_u64)
            .map(|n| key("parity", if n % 2 == 0 { "even" } else { "odd" }))
            .into_iter()
            .collect()
    }

    fn fingerprint(&self) -> String {
        "read-only-tests-parity-1".into()
    }
}

#[test]
fn a_reader_with_another_indexer_reindexes_the_log_in_memory_only() {
    const N: u64 = 40;
    let dir = tempdir();
    let layout = LogLayout::new(dir.path());
    let writer = open_writer(&layout);
    append_one_by_one(&writer, 0, N);
    let records = records_of(&writer);
    writer.close().unwrap();

    let before = snapshot(dir.path());
    let reader = open_reader(&layout, Arc::new(Parity));
    assert_eq!(
        reader.recovery().replayed,
        N,
        "the whole log is indexed again"
    );
    let by = |k: Key| Scan {
        keys: vec![k],
        limit: LIMIT_MAX,
        ..Scan::default()
    };
    let even: Vec<u64> = (0..N).filter(|n| n % 2 == 0).collect();
    assert_eq!(seqs(&reader, &by(key("parity", "even"))), even);
    assert_eq!(
        seqs(&reader, &by(key("tenant", "t1"))),
        Vec::<u64>::new(),
        "the writer's keys are not this reader's"
    );
    for (seq, bytes) in records.iter().enumerate() {
        assert_eq!(reader.get(seq as u64).unwrap().as_ref(), Some(bytes));
    }
    drop(reader);
    assert_unchanged(&before, dir.path(), "reindexing in memory");

    let reader = open_reader(&layout, Arc::new(TestKeys));
    assert_eq!(
        reader.recovery().replayed,
        0,
        "the writer's index is as it was"
    );
    check_serves_exactly(&reader, &records, "with the writer's indexer");
}

#[test]
fn a_directory_without_a_log_cannot_be_opened_read_only() {
    let dir = tempdir();
    let result =
        Store::<Unique>::open_read_only(&LogLayout::new(dir.path()), &config(), Arc::new(TestKeys));
    assert!(matches!(result, Err(StoreError::InvalidArgument(_))));
    assert!(all_files(dir.path()).is_empty(), "nothing was created");
}

/// `verify` beside a live writer checks the records the writer made durable and stops there,
/// since frames after them may be half-written; once the writer has closed, nobody writes the
/// log, so everything in it is checked again (a closed log must not name its last writer).
#[test]
fn verify_stops_at_the_writers_durable_count_only_while_a_writer_holds_the_log() {
    let dir = tempdir();
    let layout = LogLayout::new(dir.path());
    let writer = open_writer(&layout);
    append_one_by_one(&writer, 0, 10);
    let segments = layout.segments();
    let (_, active) = sealog_testkit::format::segments(&segments)
        .pop()
        .expect("an active segment");
    // A frame the writer has begun and not finished: not durable, not damage.
    sealog_testkit::files::append_bytes(&active, &[0x40, 0, 0, 0, 1, 2]);
    let beside = sealog_store::verify::verify(&layout, &Default::default())
        .unwrap_or_else(|f| panic!("verify beside the writer: {f}"));
    assert_eq!((beside.records, beside.writer_durable), (10, Some(10)));

    sealog_testkit::files::truncate(&active, std::fs::metadata(&active).unwrap().len() - 6);
    writer.close().unwrap();
    assert_eq!(
        std::fs::read(layout.lock()).unwrap(),
        b"",
        "a closed log's lock names no writer"
    );
    let closed = sealog_store::verify::verify(&layout, &Default::default())
        .unwrap_or_else(|f| panic!("verify after close: {f}"));
    assert_eq!((closed.records, closed.writer_durable), (10, None));
    sealog_testkit::files::append_bytes(&active, &[0x40, 0, 0, 0, 1, 2]);
    let torn = sealog_store::verify::verify(&layout, &Default::default());
    assert!(
        torn.is_err(),
        "with no writer, a torn frame is found: {torn:?}"
    );
}

/// A reader opened beside a writer that pruned records since its index files were built
/// answers them as the writer does (by their stubs' keys alone), from the list the writer
/// keeps in `index/PRUNED`; so does the writer once reopened.
#[test]
fn a_reader_beside_a_writer_that_pruned_answers_the_pruned_as_the_writer_does() {
    const N: u64 = 60;
    let dir = tempdir();
    let layout = LogLayout::new(dir.path());
    let writer = open_writer(&layout);
    append_one_by_one(&writer, 0, N);
    wait_for(30, "the writer's index flush to finish", || {
        settled_index_end(&layout).filter(|&end| end == N - N % MEMTABLE)
    });
    // Two prunes, the second listed after the first: records of tenant t1 and subject s2 are
    // among them, one keeping its tenant key.
    let tenant = key("tenant", "t1");
    for batch in [&[1u64, 4, 7, 12][..], &[22, 25, 37]] {
        let prune: Vec<_> = batch
            .iter()
            .map(|&seq| sealog_store::Prune {
                seq,
                link: None,
                key: (seq == 7).then_some(tenant),
            })
            .collect();
        assert_eq!(writer.prune(&prune).unwrap(), batch.len() as u64);
    }
    let keys = [
        tenant,
        key("tenant", "t0"),
        key("subject", "s2"),
        key("type", "test.t1"),
    ];
    let answers = |log: &TestStore| -> Vec<(Option<u64>, u64, Vec<u64>)> {
        keys.iter()
            .flat_map(|k| {
                [(0, N), (0, 10), (10, 30), (30, N)].map(|(from, below)| {
                    (
                        log.first_with(k, below).unwrap(),
                        log.count_with(k, from, below).unwrap(),
                        log.seqs_with(k, from, below).unwrap(),
                    )
                })
            })
            .collect()
    };
    let expected = answers(&writer);
    assert!(
        !expected[0].2.contains(&1) && expected[0].2.contains(&7),
        "the writer hides what a pruned record's stub does not keep: {:?}",
        expected[0]
    );
    let reader = open_reader(&layout, Arc::new(TestKeys));
    assert_eq!(answers(&reader), expected, "a reader beside the writer");
    drop(reader);
    writer.close().unwrap();
    let writer = open_writer(&layout);
    assert!(
        writer.recovery().rebuilt.is_some(),
        "the writer's next opening rebuilds the index"
    );
    assert_eq!(answers(&writer), expected, "the writer, reopened");
    writer.close().unwrap();
}
