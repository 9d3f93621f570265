//! Proofs and checkpoints from the `sealog` binary, checked by a verifier written here from
//! RFC 9162 and the C2SP specs alone.
//!
//! Nothing below calls Sealog's Merkle or note code: hashing is SHA-256 by hand, the tree
//! head is the recursive MTH of RFC 9162 §2.1.1, proofs are verified with the algorithms of
//! §2.1.3.2 and §2.1.4.2, and checkpoint notes are parsed and their Ed25519 signatures
//! checked per C2SP signed-note. A shared misreading of the RFC could otherwise hide in both
//! the producer and the checker.

use std::fs;
use std::ops::Range;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use sealog_testkit::{Cli, Run};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

type Hash = [u8; 32];

// ---------------------------------------------------------------------------------------------
// RFC 9162, independently

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn leaf_hash(record: &[u8]) -> Hash {
    sha256(&[&[0x00], record])
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The largest power of two strictly smaller than `n` (`n > 1`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]), §2.1.1.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]), §2.1.3.1.
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    let (mut p, sibling) = if m < k {
        (path(m, &leaves[..k]), mth(&leaves[k..]))
    } else {
        (path(m - k, &leaves[k..]), mth(&leaves[..k]))
    };
    p.push(sibling);
    p
}

/// SUBPROOF(m, D[n], b), §2.1.4.1; PROOF(m, D[n]) is `subproof(m, leaves, true)`.
fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = split(n);
    let (mut p, sibling) = if m <= k {
        (subproof(m, &leaves[..k], b), mth(&leaves[k..]))
    } else {
        (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
    };
    p.push(sibling);
    p
}

/// §2.1.3.2, step by step.
fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf: &Hash,
    inclusion_path: &[Hash],
    root: &Hash,
) -> bool {
    if leaf_index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn) = (leaf_index, tree_size - 1);
    let mut r = *leaf;
    for p in inclusion_path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// §2.1.4.2, step by step. Defined for `0 < first < second`; equal sizes need no proof.
fn verify_consistency(
    first: u64,
    second: u64,
    first_hash: &Hash,
    second_hash: &Hash,
    consistency_path: &[Hash],
) -> bool {
    if first == 0 || first >= second || consistency_path.is_empty() {
        return false;
    }
    let mut path = consistency_path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_hash);
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_hash && sr == *second_hash && sn == 0
}

// ---------------------------------------------------------------------------------------------
// C2SP signed note and tlog-checkpoint, independently

struct VerifierKey {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

/// `<name>+<hex key id>+<base64(0x01 ‖ public key)>`; the key id must be
/// SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4].
fn parse_vkey(text: &str) -> VerifierKey {
    let mut parts = text.trim_end_matches('\n').splitn(3, '+');
    let (name, id_hex, material) = (
        parts.next().unwrap(),
        parts.next().expect("key id"),
        parts.next().expect("key material"),
    );
    let material = B64.decode(material).expect("key material is base64");
    assert_eq!(material.len(), 33, "type byte and a 32-byte Ed25519 key");
    assert_eq!(material[0], 0x01, "Ed25519 signature type");
    let public: [u8; 32] = material[1..].try_into().unwrap();
    let id = sha256(&[name.as_bytes(), b"\n", &[0x01], &public]);
    let key_id: [u8; 4] = id[..4].try_into().unwrap();
    let hex: String = key_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(id_hex, hex, "key id of {name}");
    VerifierKey {
        name: name.to_string(),
        key_id,
        key: VerifyingKey::from_bytes(&public).expect("valid Ed25519 key"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
}

/// Opens a signed checkpoint note with `key`, or says why not.
fn open_checkpoint(note: &str, key: &VerifierKey) -> Result<Checkpoint, String> {
    let split = note.rfind("\n\n").ok_or("no blank line")?;
    // The signed message is the text before the blank line, including its final newline.
    let text = &note[..=split];
    let signatures = note[split + 2..]
        .strip_suffix('\n')
        .ok_or("note does not end in a newline")?;
    let mut verified = false;
    for line in signatures.split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| format!("signature line {line:?} lacks the em dash"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or("signature line has no key name")?;
        let blob = B64
            .decode(b64)
            .map_err(|e| format!("signature base64: {e}"))?;
        if name != key.name || blob.len() < 4 || blob[..4] != key.key_id {
            continue;
        }
        let sig: [u8; 64] = blob[4..]
            .try_into()
            .map_err(|_| "Ed25519 signature must be 64 bytes")?;
        key.key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|e| format!("signature does not verify: {e}"))?;
        verified = true;
    }
    if !verified {
        return Err("no signature by the log's key".into());
    }
    let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
    if lines.len() < 3 {
        return Err(format!("checkpoint body has {} lines", lines.len()));
    }
    let size = lines[1]
        .parse::<u64>()
        .map_err(|e| format!("tree size {:?}: {e}", lines[1]))?;
    if lines[1] != size.to_string() {
        return Err(format!("tree size {:?} is not canonical decimal", lines[1]));
    }
    let root: Hash = B64
        .decode(lines[2])
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("root hash is not 32 bytes of base64")?;
    Ok(Checkpoint {
        origin: lines[0].to_string(),
        size,
        root,
    })
}

// ---------------------------------------------------------------------------------------------
// The log under test

fn sealog(dir: &Path, args: &[&str]) -> Run {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir)
        .accepting_undeclared()
        .run(args, b"")
}

fn ok(run: Run, what: &str) -> Vec<u8> {
    assert_eq!(
        run.code, 0,
        "{what}: exit {}, stderr: {}",
        run.code, run.stderr
    );
    run.stdout.into_bytes()
}

fn json_of<S: AsRef<str>>(dir: &Path, args: &[S]) -> Value {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let stdout = ok(sealog(dir, &args), &args.join(" "));
    serde_json::from_slice(&stdout).expect("JSON")
}

fn hash_of(v: &Value) -> Hash {
    B64.decode(v.as_str().expect("base64 string"))
        .expect("base64")
        .try_into()
        .expect("32 bytes")
}

fn hashes_of(v: &Value) -> Vec<Hash> {
    v.as_array().expect("array").iter().map(hash_of).collect()
}

/// Sizes after each `append` run. Powers of two and their neighbours are where RFC 9162's
/// proofs change shape.
const RUNS: [usize; 7] = [1, 1, 3, 59, 100, 92, 44];
const SIZES: [usize; 7] = [1, 2, 5, 64, 164, 256, 300];

/// Copies of the data directory that answer requests side by side, most of each command's
/// time being spent waiting on the disk: on a copy of its own, each opens the log as its only
/// writer, as a command run alone does.
const WORKERS: usize = 4;

struct Log {
    /// A writer holding each directory, so every read here opens it read-only and the log
    /// stays exactly as built: a read a writer could record would append its access record.
    holders: Vec<std::process::Child>,
    _tmp: TempDir,
    dir: std::path::PathBuf,
    copies: Vec<std::path::PathBuf>,
    key: VerifierKey,
    /// One signed checkpoint per append run, as `sealog checkpoint` printed it.
    notes: Vec<String>,
    /// Record bytes by seq.
    records: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
}

fn event(i: usize) -> Value {
    json!({
        "id": format!("evt-{i:05}"),
        "source": "proof-test",
        "type": "proofs.chunk_modified",
        "time": format!("2026-02-{:02}T08:{:02}:00.{:06}Z", 1 + i % 28, i % 60, i * 13),
        "tenant": "kb",
        "subject": format!("chunk-{}", i % 11),
        "actor": {"type": "agent", "id": "curator"},
        "data": {"revision": i, "text": format!("paragraph {i} – ünïcødé and \"quotes\"")},
    })
}

/// A writer (`sealog append -` with its input left open) holding `dir`'s lock.
fn hold(dir: &Path) -> std::process::Child {
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared();
    let child = cli.spawn(&["append", "-"]);
    let lock = dir.join("LOCK");
    sealog_testkit::wait_for(60, "the holder to take the lock", || {
        fs::read_to_string(&lock)
            .is_ok_and(|pid| pid.trim() == child.id().to_string())
            .then_some(())
    });
    child
}

impl Drop for Log {
    fn drop(&mut self) {
        for h in &mut self.holders {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

impl Log {
    fn build() -> Self {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("data");
        let input = tmp.path().join("events.ndjson");
        let mut next = 0;
        let mut notes = Vec::new();
        for run in RUNS {
            let text: String = (next..next + run)
                .map(|i| format!("{}\n", event(i)))
                .collect();
            fs::write(&input, text).unwrap();
            ok(sealog(&dir, &["append", input.to_str().unwrap()]), "append");
            next += run;
            let note = String::from_utf8(ok(sealog(&dir, &["checkpoint"]), "checkpoint")).unwrap();
            notes.push(note);
        }
        let vkey =
            String::from_utf8(ok(sealog(&dir, &["checkpoint", "--verifier-key"]), "key")).unwrap();
        assert_eq!(
            vkey,
            fs::read_to_string(dir.join("keys/log.pub")).unwrap(),
            "`checkpoint --verifier-key` prints the data directory's verifier key"
        );
        let key = parse_vkey(&vkey);
        let copies: Vec<std::path::PathBuf> = (0..WORKERS)
            .map(|w| {
                let copy = tmp.path().join(format!("copy-{w}"));
                sealog_testkit::files::copy_dir(&dir, &copy);
                copy
            })
            .collect();
        let holders = std::iter::once(&dir)
            .chain(&copies)
            .map(|d| hold(d))
            .collect();
        let listed = ok(sealog(&dir, &["query", "--limit", "1000"]), "query");
        let records: Vec<Vec<u8>> = listed
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(records.len(), next);
        let leaves = records.iter().map(|r| leaf_hash(r)).collect();
        Log {
            holders,
            _tmp: tmp,
            dir,
            copies,
            key,
            notes,
            records,
            leaves,
        }
    }

    fn checkpoints(&self) -> Vec<Checkpoint> {
        self.notes
            .iter()
            .map(|n| open_checkpoint(n, &self.key).expect("checkpoint opens"))
            .collect()
    }

    fn prove_inclusion(&self, seq: usize, size: Option<usize>) -> Value {
        json_of(&self.dir, &inclusion_args(seq, size))
    }

    fn prove_consistency(&self, old: usize, new: usize) -> Value {
        json_of(&self.dir, &consistency_args(old, new))
    }

    /// Runs every request, spread over the copies, and returns the answers in request order.
    fn run_all(&self, requests: &[Vec<String>]) -> Vec<Value> {
        let per = requests.len().div_ceil(WORKERS).max(1);
        let answers: Vec<Value> = std::thread::scope(|s| {
            let workers: Vec<_> = requests
                .chunks(per)
                .zip(&self.copies)
                .map(|(chunk, dir)| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|args| json_of(dir, args))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker"))
                .collect()
        });
        assert_eq!(answers.len(), requests.len(), "one answer per request");
        answers
    }
}

fn inclusion_args(seq: usize, size: Option<usize>) -> Vec<String> {
    let mut args = vec!["prove".into(), "inclusion".into(), seq.to_string()];
    if let Some(size) = size {
        args.extend(["--size".into(), size.to_string()]);
    }
    args
}

fn consistency_args(old: usize, new: usize) -> Vec<String> {
    vec![
        "prove".into(),
        "consistency".into(),
        old.to_string(),
        new.to_string(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The verifier written here must itself be right

#[test]
fn the_independent_verifier_accepts_the_rfc_proofs_and_only_them() {
    let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    // RFC 6962's reference values for the two-leaf tree of "" and "\x00".
    let pair = [leaf_hash(b""), leaf_hash(b"\x00")];
    assert_eq!(
        B64.encode(mth(&pair)),
        B64.encode(
            (0..32)
                .map(|i| {
                    u8::from_str_radix(
                        &"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
                            [2 * i..2 * i + 2],
                        16,
                    )
                    .unwrap()
                })
                .collect::<Vec<u8>>()
        )
    );
    assert_eq!(
        mth(&[]),
        sha256(&[]),
        "the empty tree's head is SHA-256 of nothing"
    );
    for n in 1..=leaves.len() {
        let tree = &leaves[..n];
        let root = mth(tree);
        for m in 0..n {
            let p = path(m, tree);
            assert!(verify_inclusion(m as u64, n as u64, &tree[m], &p, &root));
            assert!(!verify_inclusion(m as u64, n as u64, &tree[(m + 1) % n], &p, &root) || n == 1);
        }
        for m in 1..n {
            let p = subproof(m, tree, true);
            let old = mth(&leaves[..m]);
            assert!(verify_consistency(m as u64, n as u64, &old, &root, &p));
            assert!(!verify_consistency(m as u64, n as u64, &root, &root, &p));
            assert!(!verify_consistency(
                m as u64,
                n as u64,
                &old,
                &mth(&leaves[..n - 1]),
                &p
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

#[test]
fn checkpoints_are_signed_notes_over_the_independently_computed_tree() {
    let log = Log::build();
    for (seq, record) in log.records.iter().enumerate().step_by(37) {
        let got = ok(sealog(&log.dir, &["get", &seq.to_string()]), "get");
        assert_eq!(
            got.strip_suffix(b"\n").unwrap(),
            record.as_slice(),
            "`get {seq}` prints the record bytes the listing printed"
        );
    }
    for (note, checkpoint) in log.notes.iter().zip(log.checkpoints()) {
        assert_eq!(checkpoint.origin, log.key.name, "{note}");
        assert!(
            SIZES.contains(&(checkpoint.size as usize)),
            "one checkpoint per append run: {note}"
        );
        assert_eq!(
            checkpoint.root,
            mth(&log.leaves[..checkpoint.size as usize]),
            "{note}"
        );
    }
    let sizes: Vec<u64> = log.checkpoints().iter().map(|c| c.size).collect();
    assert_eq!(sizes, SIZES.map(|s| s as u64));

    // Every checkpoint kept in `checkpoints/log` (frames of `len:u32le crc:u32le note`)
    // verifies too, the ones printed are among them, and the newest is `checkpoints/latest`.
    let (kept, torn) = sealog_testkit::format::checkpoint_notes(&log.dir.join("checkpoints/log"));
    assert_eq!(torn, None, "checkpoints/log ends in a whole frame");
    for note in &kept {
        let cp = open_checkpoint(note, &log.key).unwrap_or_else(|e| panic!("{e}: {note}"));
        assert_eq!(cp.root, mth(&log.leaves[..cp.size as usize]), "{note}");
    }
    for note in &log.notes {
        assert!(kept.contains(note), "printed but not kept: {note}");
    }
    assert_eq!(kept.last(), log.notes.last());
    let latest = fs::read_to_string(log.dir.join("checkpoints/latest")).unwrap();
    assert_eq!(&latest, log.notes.last().unwrap());

    // The check is not vacuous: a changed body, another key name or a damaged signature fail.
    let note = log.notes.last().unwrap();
    let root_line = B64.encode(mth(&log.leaves[..300]));
    let other_root = B64.encode(mth(&log.leaves[..299]));
    for (what, bad) in [
        ("changed root", note.replace(&root_line, &other_root)),
        ("changed size", note.replacen("\n300\n", "\n299\n", 1)),
        (
            "renamed signer",
            note.replace(
                &format!("\u{2014} {} ", log.key.name),
                &format!("\u{2014} {}x ", log.key.name),
            ),
        ),
        (
            "no signatures",
            note[..=note.rfind("\n\n").unwrap() + 1].to_string(),
        ),
    ] {
        assert_ne!(&bad, note, "{what}");
        assert!(open_checkpoint(&bad, &log.key).is_err(), "{what}: {bad}");
    }
    let sig_start = note.rfind(' ').unwrap() + 1;
    let mut sig = B64.decode(note[sig_start..].trim_end()).unwrap();
    sig[40] ^= 0x20;
    let bad = format!("{}{}\n", &note[..sig_start], B64.encode(&sig));
    assert!(open_checkpoint(&bad, &log.key).is_err());
}

// ---------------------------------------------------------------------------------------------
// Inclusion

fn check_inclusion(log: &Log, proof: &Value, seq: usize, size: usize, signed_root: &Hash) {
    let ctx = format!("inclusion of {seq} in {size}: {proof}");
    assert_eq!(proof["leaf_index"], seq, "{ctx}");
    assert_eq!(proof["tree_size"], size, "{ctx}");
    assert_eq!(hash_of(&proof["root"]), *signed_root, "{ctx}");
    assert_eq!(hash_of(&proof["leaf_hash"]), log.leaves[seq], "{ctx}");
    let hashes = hashes_of(&proof["hashes"]);
    assert_eq!(
        hashes,
        path(seq, &log.leaves[..size]),
        "{ctx}: not RFC 9162's PATH"
    );
    assert!(
        verify_inclusion(
            seq as u64,
            size as u64,
            &log.leaves[seq],
            &hashes,
            signed_root
        ),
        "{ctx}"
    );
}

#[test]
fn inclusion_proofs_of_every_record_verify_against_every_signed_checkpoint() {
    let log = Log::build();
    let checkpoints = log.checkpoints();
    let latest = checkpoints.last().unwrap().clone();
    let requests: Vec<(usize, &Checkpoint)> = checkpoints
        .iter()
        .flat_map(|cp| (0..cp.size as usize).map(move |seq| (seq, cp)))
        .collect();
    let args: Vec<Vec<String>> = requests
        .iter()
        .map(|(seq, cp)| inclusion_args(*seq, Some(cp.size as usize)))
        .collect();
    assert_eq!(args.len(), SIZES.iter().sum::<usize>());
    for ((seq, cp), proof) in requests.into_iter().zip(log.run_all(&args)) {
        check_inclusion(&log, &proof, seq, cp.size as usize, &cp.root);
        if cp.size == latest.size {
            let note = proof["checkpoint"].as_str().expect("the latest checkpoint");
            assert_eq!(open_checkpoint(note, &log.key).unwrap(), latest);
        } else {
            assert!(proof.get("checkpoint").is_none(), "{proof}");
        }
    }
    // Without --size, the proof is for the latest checkpoint and carries it.
    for seq in [0, 1, 150, 255, 256, 299] {
        let proof = log.prove_inclusion(seq, None);
        check_inclusion(&log, &proof, seq, 300, &latest.root);
        let note = proof["checkpoint"].as_str().unwrap();
        assert_eq!(note, log.notes.last().unwrap());
    }
}

#[test]
fn inclusion_proofs_at_sizes_without_a_checkpoint_match_the_independent_tree() {
    let log = Log::build();
    for size in [
        3, 4, 6, 7, 8, 9, 15, 16, 17, 63, 65, 127, 128, 129, 255, 257, 299,
    ] {
        let root = mth(&log.leaves[..size]);
        let mut seqs = vec![0, size / 3, size / 2, size - 1];
        seqs.extend((size >= 2).then_some(size - 2));
        seqs.sort_unstable();
        seqs.dedup();
        for seq in seqs {
            let proof = log.prove_inclusion(seq, Some(size));
            check_inclusion(&log, &proof, seq, size, &root);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consistency

const CONSISTENCY_SIZES: [usize; 29] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 164, 200,
    255, 256, 257, 299, 300,
];

fn check_consistency(log: &Log, proof: &Value, old: usize, new: usize, roots: (&Hash, &Hash)) {
    let ctx = format!("consistency {old} → {new}: {proof}");
    assert_eq!(proof["from"], old, "{ctx}");
    assert_eq!(proof["to"], new, "{ctx}");
    assert_eq!(hash_of(&proof["from_root"]), *roots.0, "{ctx}");
    assert_eq!(hash_of(&proof["to_root"]), *roots.1, "{ctx}");
    let hashes = hashes_of(&proof["hashes"]);
    assert_eq!(
        hashes,
        subproof(old, &log.leaves[..new], true),
        "{ctx}: not RFC 9162's PROOF"
    );
    if old == new {
        assert!(hashes.is_empty(), "{ctx}");
        assert_eq!(roots.0, roots.1, "{ctx}");
    } else {
        assert!(
            verify_consistency(old as u64, new as u64, roots.0, roots.1, &hashes),
            "{ctx}"
        );
    }
}

#[test]
fn consistency_proofs_between_many_sizes_verify_independently() {
    let log = Log::build();
    let roots: Vec<Hash> = (0..=300).map(|n| mth(&log.leaves[..n])).collect();
    let pairs: Vec<(usize, usize)> = CONSISTENCY_SIZES
        .iter()
        .enumerate()
        .flat_map(|(i, &old)| CONSISTENCY_SIZES[i..].iter().map(move |&new| (old, new)))
        .collect();
    let args: Vec<Vec<String>> = pairs
        .iter()
        .map(|&(old, new)| consistency_args(old, new))
        .collect();
    for ((old, new), proof) in pairs.into_iter().zip(log.run_all(&args)) {
        check_consistency(&log, &proof, old, new, (&roots[old], &roots[new]));
    }
}

#[test]
fn successive_signed_checkpoints_are_proven_consistent() {
    let log = Log::build();
    let checkpoints = log.checkpoints();
    for (i, old) in checkpoints.iter().enumerate() {
        for new in &checkpoints[i..] {
            let proof = log.prove_consistency(old.size as usize, new.size as usize);
            check_consistency(
                &log,
                &proof,
                old.size as usize,
                new.size as usize,
                (&old.root, &new.root),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutated proofs

/// Every small change to a proof that a verifier must notice.
fn mutations(hashes: &[Hash]) -> Vec<(String, Vec<Hash>)> {
    let mut out = Vec::new();
    for i in 0..hashes.len() {
        for bit in [0, 7, 255] {
            let mut h = hashes.to_vec();
            h[i][bit / 8] ^= 1 << (bit % 8);
            out.push((format!("bit {bit} of hash {i} flipped"), h));
        }
    }
    if !hashes.is_empty() {
        out.push((
            "last hash dropped".into(),
            hashes[..hashes.len() - 1].to_vec(),
        ));
        out.push(("first hash dropped".into(), hashes[1..].to_vec()));
        let mut dup = hashes.to_vec();
        dup.push(*hashes.last().unwrap());
        out.push(("last hash repeated".into(), dup));
    }
    let mut extra = hashes.to_vec();
    extra.push([0; 32]);
    out.push(("zero hash appended".into(), extra));
    for i in 1..hashes.len() {
        if hashes[i - 1] != hashes[i] {
            let mut h = hashes.to_vec();
            h.swap(i - 1, i);
            out.push((format!("hashes {} and {i} swapped", i - 1), h));
        }
    }
    let mut reversed = hashes.to_vec();
    reversed.reverse();
    if reversed != hashes {
        out.push(("reversed".into(), reversed));
    }
    out
}

fn sample(range: Range<usize>, step: usize) -> impl Iterator<Item = usize> {
    let last = range.end - 1;
    range.step_by(step).chain(std::iter::once(last))
}

#[test]
fn mutated_inclusion_proofs_fail_the_independent_verifier() {
    let log = Log::build();
    let roots: Vec<Hash> = (0..=300).map(|n| mth(&log.leaves[..n])).collect();
    let mut checked = 0;
    for size in [2, 5, 64, 65, 164, 256, 300] {
        for seq in sample(0..size, 23) {
            let proof = log.prove_inclusion(seq, Some(size));
            let hashes = hashes_of(&proof["hashes"]);
            let (leaf, root) = (log.leaves[seq], roots[size]);
            let (s, n) = (seq as u64, size as u64);
            assert!(verify_inclusion(s, n, &leaf, &hashes, &root));
            for (what, bad) in mutations(&hashes) {
                assert!(
                    !verify_inclusion(s, n, &leaf, &bad, &root),
                    "{what}: inclusion of {seq} in {size}"
                );
                checked += 1;
            }
            let mut other_leaf = leaf;
            other_leaf[31] ^= 1;
            assert!(!verify_inclusion(s, n, &other_leaf, &hashes, &root));
            assert!(!verify_inclusion(s, n, &leaf, &hashes, &roots[size - 1]));
            for other in [seq.wrapping_sub(1), seq + 1, seq ^ 2] {
                if other < size && other != seq {
                    assert!(
                        !verify_inclusion(other as u64, n, &leaf, &hashes, &root),
                        "index {other} instead of {seq} in {size}"
                    );
                }
            }
            assert!(!verify_inclusion(n, n, &leaf, &hashes, &root));
            if size < 300 {
                assert!(!verify_inclusion(
                    s,
                    n + 1,
                    &leaf,
                    &hashes,
                    &roots[size + 1]
                ));
            }
        }
    }
    assert!(checked > 500, "only {checked} mutations tried");
}

#[test]
fn mutated_consistency_proofs_fail_the_independent_verifier() {
    let log = Log::build();
    let roots: Vec<Hash> = (0..=300).map(|n| mth(&log.leaves[..n])).collect();
    let mut checked = 0;
    for (old, new) in [
        (1, 2),
        (1, 300),
        (2, 5),
        (3, 8),
        (4, 300),
        (5, 64),
        (7, 9),
        (63, 64),
        (64, 65),
        (64, 300),
        (100, 257),
        (127, 129),
        (164, 256),
        (255, 256),
        (256, 300),
        (299, 300),
    ] {
        let proof = log.prove_consistency(old, new);
        let hashes = hashes_of(&proof["hashes"]);
        let (o, n) = (old as u64, new as u64);
        assert!(verify_consistency(o, n, &roots[old], &roots[new], &hashes));
        for (what, bad) in mutations(&hashes) {
            assert!(
                !verify_consistency(o, n, &roots[old], &roots[new], &bad),
                "{what}: consistency {old} → {new}"
            );
            checked += 1;
        }
        assert!(!verify_consistency(
            o,
            n,
            &roots[old - 1],
            &roots[new],
            &hashes
        ));
        assert!(!verify_consistency(
            o,
            n,
            &roots[old],
            &roots[new - 1],
            &hashes
        ));
        if old + 1 < new {
            assert!(!verify_consistency(
                o + 1,
                n,
                &roots[old + 1],
                &roots[new],
                &hashes
            ));
        }
        if new < 300 {
            assert!(!verify_consistency(
                o,
                n + 1,
                &roots[old],
                &roots[new + 1],
                &hashes
            ));
        }
    }
    assert!(checked > 200, "only {checked} mutations tried");
}

// ---------------------------------------------------------------------------------------------
// Requests that have no proof

#[test]
fn requests_for_proofs_that_cannot_exist_are_refused() {
    let log = Log::build();
    for args in [
        vec!["prove", "inclusion", "300"],
        vec!["prove", "inclusion", "5", "--size", "5"],
        vec!["prove", "inclusion", "0", "--size", "301"],
        vec!["prove", "inclusion", "0", "--size", "0"],
        vec!["prove", "consistency", "6", "5"],
        vec!["prove", "consistency", "5", "301"],
        vec!["prove", "consistency", "0", "5"],
    ] {
        let out = sealog(&log.dir, &args);
        assert_eq!(out.code, 1, "{args:?}: stdout {}", out.stdout);
        assert!(out.stdout.is_empty(), "{args:?} printed a proof");
        assert!(!out.stderr.is_empty(), "{args:?} says nothing about why");
    }
}
