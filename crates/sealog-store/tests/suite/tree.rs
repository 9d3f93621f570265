//! The Merkle tree the store keeps beside its log, through the public API.
//!
//! The tree files are derived data: whatever happens to them (a clean reopen, deletion, a
//! crash that leaves them shorter than the index promised), the roots, proofs and tiles the
//! store serves afterwards must be exactly those of the tree over the log's records. The
//! reference here is rebuilt in memory from the record bytes the store returns.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sealog_merkle::note::Verifier;
use sealog_merkle::tiles::tile_width;
use sealog_merkle::{Frontier, Hash, NodeReader, ReadError};
use sealog_model::LogLayout;
use sealog_store::conformance::{TestKeys, Unique, entry};
use sealog_store::{
    Config, Durability, Entry, Key, LogRead, LogWrite, Store, StoreError, open_checkpoint,
    read_checkpoint_log,
};
use sealog_testkit::files::{copy_dir, settled_index_end, truncate};
use sealog_testkit::wait_for;
use tempfile::TempDir;

type TestStore = Store<Unique>;

fn event(i: u64) -> Entry<Option<Key>> {
    let decision = if i.is_multiple_of(2) { "allow" } else { "deny" };
    entry(
        &serde_json::json!({
            "id": format!("tree-{i:05}"),
            "source": "tree-tests",
            "type": "coordination.decision",
            "time": format!("2026-03-01T10:{:02}:{:02}.{:03}Z", (i / 60) % 60, i % 60, i % 1000),
            "tenant": format!("t{}", i % 3),
            "subject": format!("envelope-{}", i % 41),
            "actor": {"type": "system", "id": "router"},
            "data": {"envelope_id": format!("env-{i}"), "decision": decision,
                     "weight": i * 3, "why": "policy 7 – Grenzwert überschritten"},
        })
        .to_string(),
    )
}

fn config(checkpoint_interval: Duration) -> Config {
    Config {
        durability: Durability::Os,
        // Several sealed segments, so node reads and record reads cross files.
        segment_bytes_max: 32 * 1024,
        checkpoint_interval,
        ..Config::default()
    }
}

/// Checkpoints only when asked for, or on close.
fn manual_checkpoints() -> Config {
    config(Duration::from_secs(24 * 3600))
}

fn try_open(dir: &Path, config: Config) -> Result<TestStore, StoreError> {
    Store::open(&LogLayout::new(dir), config, Arc::new(TestKeys), Unique)
}

fn open(dir: &Path, config: Config) -> TestStore {
    try_open(dir, config).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn close(store: TestStore) {
    store.close().unwrap();
}

/// Appends events `from..to` in commits of uneven sizes; returns how many commits it took.
fn fill(store: &TestStore, from: u64, to: u64) -> usize {
    let mut next = from;
    let mut commits = 0;
    let mut k = 0;
    while next < to {
        let n = [1, 7, 64, 3, 129, 31][k % 6].min(to - next);
        store
            .append((next..next + n).map(event).collect())
            .expect("append");
        next += n;
        k += 1;
        commits += 1;
    }
    assert_eq!(store.len(), to);
    commits
}

/// Every node of the tree over some leaves, built in memory as the reference.
struct MemTree {
    levels: Vec<Vec<Hash>>,
}

impl MemTree {
    fn of_leaves(leaves: &[Hash]) -> Self {
        let mut frontier = Frontier::new();
        let mut levels: Vec<Vec<Hash>> = Vec::new();
        for leaf in leaves {
            for (level, index, hash) in frontier.push(*leaf) {
                let level = usize::from(level);
                if levels.len() <= level {
                    levels.resize_with(level + 1, Vec::new);
                }
                assert_eq!(levels[level].len() as u64, index);
                levels[level].push(hash);
            }
        }
        MemTree { levels }
    }

    fn of_store(store: &TestStore) -> Self {
        Self::of_leaves(&leaf_hashes(store))
    }

    fn root(&self, size: u64) -> Hash {
        sealog_merkle::root(size, self).unwrap()
    }
}

impl NodeReader for MemTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        self.levels
            .get(usize::from(level))
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or(ReadError::Missing { level, index })
    }
}

fn leaf_hashes(store: &TestStore) -> Vec<Hash> {
    (0..store.len())
        .map(|seq| sealog_merkle::leaf_hash(&store.get(seq).unwrap().unwrap()))
        .collect()
}

/// Tree sizes where proofs change shape: around powers of two, and the ends.
fn interesting_sizes(len: u64) -> Vec<u64> {
    let mut sizes: Vec<u64> = [
        1, 2, 3, 4, 5, 7, 8, 9, 127, 128, 129, 255, 256, 257, 511, 512,
    ]
    .into_iter()
    .chain([len / 3, len / 2, len - 1, len])
    .filter(|&s| s >= 1 && s <= len)
    .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// What a client can see of the tree: every root, and proofs over a spread of sizes.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    roots: Vec<Hash>,
    inclusion: Vec<(u64, u64, Vec<Hash>)>,
    consistency: Vec<(u64, u64, Vec<Hash>)>,
}

fn observe(store: &TestStore) -> Observed {
    let len = store.len();
    let sizes = interesting_sizes(len);
    let mut inclusion = Vec::new();
    for &size in &sizes {
        let mut seqs: Vec<u64> = (0..size).step_by(41).collect();
        seqs.push(size - 1);
        for seq in seqs {
            inclusion.push((seq, size, store.inclusion_proof(seq, size).unwrap()));
        }
    }
    let mut consistency = Vec::new();
    for (i, &old) in sizes.iter().enumerate() {
        for &new in &sizes[i..] {
            consistency.push((old, new, store.consistency_proof(old, new).unwrap()));
        }
    }
    Observed {
        roots: (0..=len).map(|s| store.root(s).unwrap()).collect(),
        inclusion,
        consistency,
    }
}

/// Checks what the store serves against the tree rebuilt from its records.
fn check_against_reference(store: &TestStore, seen: &Observed) {
    let reference = MemTree::of_store(store);
    let leaves = &reference.levels[0];
    for (size, root) in seen.roots.iter().enumerate() {
        assert_eq!(*root, reference.root(size as u64), "root of size {size}");
    }
    for (seq, size, proof) in &seen.inclusion {
        sealog_merkle::verify_inclusion(
            &leaves[*seq as usize],
            *seq,
            *size,
            &reference.root(*size),
            proof,
        )
        .unwrap_or_else(|e| panic!("inclusion of {seq} in {size}: {e}"));
    }
    for (old, new, proof) in &seen.consistency {
        sealog_merkle::verify_consistency(
            *old,
            *new,
            &reference.root(*old),
            &reference.root(*new),
            proof,
        )
        .unwrap_or_else(|e| panic!("consistency {old} → {new}: {e}"));
    }
}

fn level_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir.join("tree"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn truncate_by(path: &Path, bytes: u64) {
    let len = fs::metadata(path).unwrap().len();
    truncate(path, len - bytes);
}

const RECORDS: u64 = 1_000;

/// A closed store of `RECORDS` records, and what it served before closing.
fn closed_store(dir: &Path) -> Observed {
    let store = open(dir, config(Duration::ZERO));
    fill(&store, 0, RECORDS / 2);
    close(store);
    let store = open(dir, config(Duration::ZERO));
    fill(&store, RECORDS / 2, RECORDS);
    let seen = observe(&store);
    check_against_reference(&store, &seen);
    close(store);
    seen
}

// ---------------------------------------------------------------------------------------------

#[test]
fn roots_and_proofs_are_the_same_after_reopen() {
    let tmp = TempDir::new().unwrap();
    let before = closed_store(tmp.path());
    let store = open(tmp.path(), config(Duration::ZERO));
    assert_eq!(
        store.recovery().replayed,
        0,
        "a clean close leaves nothing to replay"
    );
    assert_eq!(observe(&store), before);
}

#[test]
fn a_tree_rebuilt_from_the_log_equals_the_original() {
    let tmp = TempDir::new().unwrap();
    let before = closed_store(tmp.path());
    let files_before = level_files(tmp.path());
    assert!(files_before.len() >= 10, "a 1,000-leaf tree has 10 levels");

    fs::remove_dir_all(tmp.path().join("tree")).unwrap();
    fs::remove_dir_all(tmp.path().join("index")).unwrap();
    let store = open(tmp.path(), config(Duration::ZERO));
    assert_eq!(store.recovery().replayed, RECORDS);
    let after = observe(&store);
    assert_eq!(after, before);
    check_against_reference(&store, &after);
    close(store);
    assert_eq!(
        level_files(tmp.path()),
        files_before,
        "the rebuilt level files are byte for byte the originals"
    );
}

#[test]
fn a_tree_shorter_than_the_index_promised_is_rebuilt_on_open() {
    // (what is cut, by how many bytes, whether the index manifest survives)
    let cases = [
        ("level-00", 32 * 5 + 7, false),
        ("level-00", 32 * 5 + 7, true),
        ("level-00", 1, true),
        ("level-03", 32, true),
        ("level-09", 32, false),
    ];
    for (file, cut, keep_manifest) in cases {
        let ctx = format!("{file} cut by {cut} bytes, manifest kept: {keep_manifest}");
        let tmp = TempDir::new().unwrap();
        let before = closed_store(tmp.path());
        let files_before = level_files(tmp.path());
        truncate_by(&tmp.path().join("tree").join(file), cut);
        if !keep_manifest {
            fs::remove_file(tmp.path().join("index/MANIFEST")).unwrap();
        }
        let store = open(tmp.path(), config(Duration::ZERO));
        let after = observe(&store);
        assert_eq!(after, before, "{ctx}");
        check_against_reference(&store, &after);

        // The signed checkpoints still vouch for the repaired tree.
        let verifier = Verifier::parse(&store.verifier_key()).unwrap();
        let (notes, _) = read_checkpoint_log(&tmp.path().join("checkpoints/log")).unwrap();
        for note in &notes {
            let cp = open_checkpoint(note, &verifier).unwrap();
            assert_eq!(store.root(cp.size).unwrap(), cp.root, "{ctx}");
            for seq in [0, cp.size / 2, cp.size.saturating_sub(1)]
                .into_iter()
                .filter(|&s| s < cp.size)
            {
                sealog_merkle::verify_inclusion(
                    &sealog_merkle::leaf_hash(&store.get(seq).unwrap().unwrap()),
                    seq,
                    cp.size,
                    &cp.root,
                    &store.inclusion_proof(seq, cp.size).unwrap(),
                )
                .unwrap_or_else(|e| panic!("{ctx}: inclusion of {seq} in {}: {e}", cp.size));
            }
        }

        // Appending after the repair extends the same tree.
        fill(&store, RECORDS, RECORDS + 77);
        let grown = observe(&store);
        check_against_reference(&store, &grown);
        assert_eq!(
            &grown.roots[..=RECORDS as usize],
            &before.roots[..],
            "{ctx}"
        );
        close(store);
        let files_after = level_files(tmp.path());
        // More records may add levels, never take one away.
        assert!(
            files_after.len() >= files_before.len(),
            "{ctx}: level files before {files_before:?}, after {files_after:?}",
            files_before = files_before.iter().map(|f| &f.0).collect::<Vec<_>>(),
            files_after = files_after.iter().map(|f| &f.0).collect::<Vec<_>>(),
        );
        for ((name, old), (after, new)) in files_before.iter().zip(&files_after) {
            assert_eq!(name, after, "{ctx}: a level file is missing");
            assert!(new.starts_with(old), "{ctx}: {name} lost or changed nodes");
        }
    }
}

#[test]
fn a_crash_between_index_flushes_loses_no_tree_node() {
    // Index runs every 100 records, so a crash finds the manifest vouching for only part of
    // the tree, and the unsynced tail of the level files may be missing.
    let small_runs = Config {
        memtable_records_max: 100,
        ..config(Duration::ZERO)
    };
    let tmp = TempDir::new().unwrap();
    let live = tmp.path().join("live");
    let store = open(&live, small_runs.clone());
    fill(&store, 0, RECORDS + 50);
    let before = observe(&store);
    // Until the flusher has written the run of the last full memtable, a copy could catch a
    // flush or merge half done, which no crash leaves behind.
    wait_for(30, "the index flush of the last full memtable", || {
        settled_index_end(&LogLayout::new(&live)).filter(|&end| RECORDS + 50 - end < 100)
    });

    // (nodes lost from the end of every level file, as a power cut could leave them)
    for lost in [0u64, 1, 37, 130] {
        let ctx = format!("{lost} leaf hashes lost");
        let crashed = tmp.path().join(format!("crash-{lost}"));
        // No append or flush is in flight: the copy holds what the disk would hold after a
        // crash.
        copy_dir(&live, &crashed);
        for (name, bytes) in level_files(&crashed) {
            let level: u32 = name["level-".len()..].parse().unwrap();
            let nodes = (bytes.len() / 32) as u64;
            let keep = nodes.saturating_sub(lost.div_ceil(1 << level));
            truncate_by(&crashed.join("tree").join(&name), (nodes - keep) * 32);
        }
        let reopened = open(&crashed, small_runs.clone());
        assert_eq!(reopened.len(), RECORDS + 50, "{ctx}");
        let after = observe(&reopened);
        assert_eq!(after, before, "{ctx}");
        check_against_reference(&reopened, &after);
        close(reopened);
    }
    close(store);
}

// ---------------------------------------------------------------------------------------------
// Tiles

#[test]
fn tiles_and_entry_bundles_serve_the_tree_of_every_signed_checkpoint() {
    let tmp = TempDir::new().unwrap();
    let store = open(tmp.path(), manual_checkpoints());
    fill(&store, 0, RECORDS);

    // No checkpoint yet: nothing to serve.
    for (level, index, width) in [(0, 0, 1), (0, 0, 256), (1, 0, 3)] {
        assert!(store.tile(level, index, width).is_err());
    }
    assert!(store.entry_bundle(0, 256).is_err());

    assert_eq!(store.checkpoint().unwrap().size, RECORDS);
    let reference = MemTree::of_store(&store);
    let leaves = &reference.levels[0];

    // Level 0: the leaf hashes themselves; entry bundles: the records behind them.
    for (index, width) in [(0u64, 256u16), (1, 256), (2, 256), (3, 232)] {
        assert_eq!(tile_width(0, index, RECORDS), Some(width));
        let first = (index * 256) as usize;
        let expected: Vec<u8> = leaves[first..first + usize::from(width)]
            .iter()
            .flatten()
            .copied()
            .collect();
        assert_eq!(
            store.tile(0, index, width).unwrap(),
            expected,
            "tile 0/{index}"
        );

        let mut bundle = Vec::new();
        for seq in index * 256..index * 256 + u64::from(width) {
            let record = store.get(seq).unwrap().unwrap();
            bundle.extend_from_slice(&u16::try_from(record.len()).unwrap().to_be_bytes());
            bundle.extend_from_slice(&record);
        }
        assert_eq!(
            store.entry_bundle(index, width).unwrap(),
            bundle,
            "bundle {index}"
        );
    }

    // Level 1: tree level 8, each node the head of 256 leaves.
    assert_eq!(tile_width(1, 0, RECORDS), Some(3));
    let expected: Vec<u8> = (0..3)
        .flat_map(|j| {
            let subtree = MemTree::of_leaves(&leaves[j * 256..(j + 1) * 256]);
            subtree.root(256)
        })
        .collect();
    assert_eq!(store.tile(1, 0, 3).unwrap(), expected);

    // A prefix of a tile is the partial tile of a smaller tree, which an earlier checkpoint
    // may have signed: it is served.
    for (level, index, width) in [(0, 0, 255), (0, 0, 1), (0, 3, 231), (1, 0, 2)] {
        let whole = store
            .tile(level, index, tile_width(level, index, RECORDS).unwrap())
            .unwrap();
        assert_eq!(
            store.tile(level, index, width).unwrap(),
            whole[..usize::from(width) * 32],
            "tile {level}/{index} width {width}"
        );
    }
    let whole = store.entry_bundle(3, 232).unwrap();
    let prefix = store.entry_bundle(3, 231).unwrap();
    assert!(whole.starts_with(&prefix) && prefix.len() < whole.len());
    // Widths past what the signed tree holds are refused.
    for (level, index, width) in [
        (0, 3, 233),
        (0, 3, 256),
        (0, 4, 1),
        (1, 0, 4),
        (1, 1, 1),
        (2, 0, 1),
    ] {
        let r = store.tile(level, index, width);
        assert!(
            matches!(r, Err(StoreError::InvalidArgument(_))),
            "tile {level}/{index} width {width}: {r:?}"
        );
    }
    for (index, width) in [(3, 233), (3, 256), (4, 1)] {
        let r = store.entry_bundle(index, width);
        assert!(
            matches!(r, Err(StoreError::InvalidArgument(_))),
            "bundle {index} width {width}: {}",
            r.map_or_else(|e| e.to_string(), |b| format!("{} bytes", b.len()))
        );
    }

    // Records past the latest checkpoint are not served as tiles until it moves.
    fill(&store, RECORDS, RECORDS + 40);
    assert!(store.tile(0, 3, 232).is_ok());
    assert!(store.tile(0, 3, 256).is_err());
    assert!(store.tile(0, 4, 8).is_err());
    assert!(store.entry_bundle(3, 256).is_err());
    assert_eq!(store.checkpoint().unwrap().size, RECORDS + 40);
    let leaves = leaf_hashes(&store);
    // The earlier checkpoint's partial tiles stay served, for clients that read it.
    assert_eq!(store.tile(0, 3, 232).unwrap(), leaves[768..1000].concat());
    assert!(store.entry_bundle(3, 232).is_ok());
    assert_eq!(
        store.tile(0, 3, 256).unwrap(),
        leaves[768..1024].concat(),
        "the partial tile grew into a full one"
    );
    assert_eq!(store.tile(0, 4, 16).unwrap(), leaves[1024..1040].concat());
    assert!(store.tile(1, 0, 4).is_ok());
    assert!(store.tile(1, 0, 3).is_ok());
    assert!(store.tile(1, 0, 5).is_err());
    assert!(store.entry_bundle(4, 16).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and keys

#[test]
fn every_checkpoint_is_kept_signed_and_consistent_with_the_next() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let cp_log = dir.join("checkpoints/log");

    let store = open(dir, config(Duration::ZERO));
    let commits = fill(&store, 0, 400);
    let verifier_key = store.verifier_key();
    close(store);
    let (first_notes, torn) = read_checkpoint_log(&cp_log).unwrap();
    assert_eq!(torn, None);
    assert_eq!(
        first_notes.len(),
        commits + 1,
        "the creation's and one checkpoint per commit"
    );

    let store = open(dir, config(Duration::ZERO));
    assert_eq!(
        store.verifier_key(),
        verifier_key,
        "the key outlives the process"
    );
    let commits = fill(&store, 400, 900);
    let (notes, torn) = read_checkpoint_log(&cp_log).unwrap();
    assert_eq!(torn, None);
    assert_eq!(notes.len(), first_notes.len() + commits);
    assert_eq!(
        notes[..first_notes.len()],
        first_notes[..],
        "checkpoints are only ever added"
    );

    let verifier = Verifier::parse(&verifier_key).unwrap();
    let checkpoints: Vec<_> = notes
        .iter()
        .map(|n| open_checkpoint(n, &verifier).unwrap_or_else(|e| panic!("{e}: {n}")))
        .collect();
    let reference = MemTree::of_store(&store);
    for cp in &checkpoints {
        assert_eq!(
            cp.root,
            reference.root(cp.size),
            "checkpoint of {}",
            cp.size
        );
        assert_eq!(store.root(cp.size).unwrap(), cp.root);
    }
    assert_eq!(
        checkpoints[0].size, 0,
        "the creation's checkpoint signs the empty tree"
    );
    for pair in checkpoints[1..].windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        assert!(old.size < new.size, "{} then {}", old.size, new.size);
        let proof = store.consistency_proof(old.size, new.size).unwrap();
        sealog_merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
            .unwrap_or_else(|e| panic!("{} → {}: {e}", old.size, new.size));
    }
    let latest = store.checkpoint().unwrap();
    assert_eq!(&latest, checkpoints.last().unwrap());
    assert_eq!(
        fs::read_to_string(dir.join("checkpoints/latest")).unwrap(),
        latest.note
    );
    assert_eq!(
        fs::read_to_string(dir.join("keys/log.pub")).unwrap(),
        format!("{verifier_key}\n")
    );

    // A checkpoint signed by another log's key is not this log's.
    let other = TempDir::new().unwrap();
    let other_key = open(other.path(), config(Duration::ZERO)).verifier_key();
    let other_verifier = Verifier::parse(&other_key).unwrap();
    assert!(open_checkpoint(&latest.note, &other_verifier).is_err());
    close(store);
}

#[test]
fn checkpoint_signs_only_when_the_log_grew() {
    let tmp = TempDir::new().unwrap();
    let store = open(tmp.path(), manual_checkpoints());
    fill(&store, 0, 10);
    let first = store.checkpoint().unwrap();
    assert_eq!(
        store.checkpoint().unwrap(),
        first,
        "nothing new, nothing signed"
    );
    fill(&store, 10, 11);
    let second = store.checkpoint().unwrap();
    assert_eq!(second.size, 11);
    close(store);
    let (notes, _) = read_checkpoint_log(&tmp.path().join("checkpoints/log")).unwrap();
    let key = fs::read_to_string(tmp.path().join("keys/log.pub")).unwrap();
    let creation = open_checkpoint(&notes[0], &Verifier::parse(key.trim()).unwrap()).unwrap();
    assert_eq!(creation.size, 0, "a new log signs its empty tree");
    assert_eq!(
        notes[1..],
        [first.note, second.note],
        "close had nothing to add"
    );
}

#[test]
fn the_signing_key_is_private_and_a_readable_one_is_refused() {
    let tmp = TempDir::new().unwrap();
    let key = tmp.path().join("keys/log.key");
    let store = open(tmp.path(), config(Duration::ZERO));
    fill(&store, 0, 5);
    let vkey = store.verifier_key();
    close(store);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    for mode in [0o640, 0o604, 0o644, 0o660, 0o606, 0o610, 0o601] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        match try_open(tmp.path(), config(Duration::ZERO)) {
            Ok(_) => panic!("opened with keys/log.key mode {mode:o}"),
            Err(e) => assert!(
                matches!(e, StoreError::InvalidArgument(_)) && e.to_string().contains("chmod 600"),
                "mode {mode:o}: {e}"
            ),
        }
    }
    // Owner-only access of any kind is private enough.
    for mode in [0o400, 0o600] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        let store = open(tmp.path(), config(Duration::ZERO));
        assert_eq!(store.verifier_key(), vkey, "mode {mode:o}");
        close(store);
    }
}

#[test]
fn proofs_outside_the_log_are_refused() {
    let tmp = TempDir::new().unwrap();
    let store = open(tmp.path(), config(Duration::ZERO));
    fill(&store, 0, 20);
    assert!(store.root(21).is_err());
    assert!(store.inclusion_proof(20, 20).is_err());
    assert!(store.inclusion_proof(0, 21).is_err());
    assert!(store.inclusion_proof(0, 0).is_err());
    assert!(store.consistency_proof(5, 21).is_err());
    assert!(store.consistency_proof(6, 5).is_err());
    assert!(store.consistency_proof(0, 5).is_err());
    assert_eq!(store.consistency_proof(5, 5).unwrap(), Vec::<Hash>::new());
    assert_eq!(store.root(0).unwrap(), sealog_merkle::empty_root());
}

/// A verification, and a read-only opening, beside a writer that publishes a checkpoint with
/// every commit (the server verifies its own directory on request). Each publication
/// appends to the log, then replaces `latest`: read between the two, the files disagree for
/// a moment, which must never be reported as damage.
#[test]
fn verify_and_readers_beside_a_writer_publishing_checkpoints_never_find_them_disagreeing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const BEFORE: u64 = 2_000;
    const COMMITS: u64 = 600;
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let store = open(dir, config(Duration::ZERO));
    // A long checkpoint log first, so reading it takes long enough to meet a publication.
    for next in 0..BEFORE {
        store.append(vec![event(next)]).expect("append");
    }
    let done = AtomicBool::new(false);
    let runs = std::thread::scope(|s| {
        s.spawn(|| {
            // One event a commit, each commit a checkpoint; a bounded log keeps each reading
            // beside it short.
            for next in BEFORE..BEFORE + COMMITS {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                store.append(vec![event(next)]).expect("append");
            }
            done.store(true, Ordering::Relaxed);
        });
        let mut runs = 0;
        while !done.load(Ordering::Relaxed) {
            let layout = LogLayout::new(dir);
            let verified = sealog_store::verify::verify(&layout, &Default::default());
            // Openings are quicker than a verification: several, to meet a publication.
            let reader = (0..8).try_for_each(|_| {
                Store::open_read_only(&layout, &Config::default(), Arc::new(TestKeys))
                    .map(|r: TestStore| drop(r.latest_checkpoint()))
            });
            if verified.is_err() || reader.is_err() {
                done.store(true, Ordering::Relaxed);
            }
            if let Err(f) = verified {
                panic!("verification {runs} beside the writer: {f}");
            }
            if let Err(e) = reader {
                panic!("read-only opening {runs} beside the writer: {e}");
            }
            runs += 1;
        }
        runs
    });
    assert!(runs > 0, "nothing was read beside the writer");
    assert_eq!(store.len(), BEFORE + COMMITS);
    close(store);
}

/// `checkpoints/latest` is what tlog clients fetch: an older (or foreign) note there must
/// not pass verification, and records after the newest checkpoint are reported unsigned.
#[test]
fn verify_checks_the_latest_file_and_counts_unsigned_records() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let store = open(dir, manual_checkpoints());
    fill(&store, 0, 50);
    let first = store.checkpoint().unwrap();
    fill(&store, 50, 80);
    close(store);

    let report = sealog_store::verify::verify(&LogLayout::new(dir), &Default::default()).unwrap();
    assert_eq!(
        (report.records, report.signed_records),
        (80, 80),
        "close signs a checkpoint"
    );

    let latest = dir.join("checkpoints/latest");
    let newest = fs::read_to_string(&latest).unwrap();
    fs::write(&latest, &first.note).unwrap();
    let failure =
        sealog_store::verify::verify(&LogLayout::new(dir), &Default::default()).unwrap_err();
    assert_eq!(failure.location, latest.display().to_string());
    fs::write(&latest, newest).unwrap();

    // A log is signed when it is created: records without any checkpoint lost them.
    fs::remove_dir_all(dir.join("checkpoints")).unwrap();
    let failure =
        sealog_store::verify::verify(&LogLayout::new(dir), &Default::default()).unwrap_err();
    assert_eq!(
        failure.location,
        dir.join("checkpoints/log").display().to_string()
    );
    assert!(failure.message.contains("removed"), "{failure}");
    let refused = try_open(dir, config(Duration::ZERO))
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("checkpoints were removed"),
        "opening does not start a new series over them: {refused}"
    );
}
