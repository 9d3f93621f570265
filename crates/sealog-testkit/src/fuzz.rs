//! The bodies of the fuzz targets in `fuzz/`. Each takes the fuzzer's bytes, drives one of
//! Sealog's readers with them and panics when a property fails. They live here, not in
//! `fuzz/`, so that `tests/suite/fuzz_replay.rs` replays the committed corpora and crash
//! reproducers through the very code the fuzzer ran, under plain `cargo test`.
//!
//! Inputs that need several parts (a file and the edits made to it, a manifest and its
//! schemas) separate them with [`SEP`], so a corpus file stays readable and a fuzzer's
//! dictionary can hold the separator.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::path::Path;

use sealog_merkle::checkpoint::Checkpoint;
use sealog_merkle::cosignature::{self, Cosigner};
use sealog_merkle::note::{self, Signer};
use sealog_merkle::witness::AddCheckpoint;
use sealog_merkle::{Hash, NodeReader, ReadError};
use sealog_model::json::Json;
use sealog_model::record::read_stored;
use sealog_model::{Canonical, Envelope, canonical_text, input, jcs, limits, time};
use sha2::{Digest, Sha256};

mod recovery;
pub use recovery::recovery;

/// A target's body: the fuzzer's bytes in, a panic out when a property fails.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("splitter", splitter),
    ("canonical", canonical),
    ("segment", segment),
    ("note", note),
    ("proof", proof),
    ("manifest", manifest),
    ("http", http),
    ("spool", spool),
    ("recovery", recovery),
];

/// What separates the parts of a multi-part input.
pub const SEP: &[u8] = b"\n--8<--\n";

fn parts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

fn is_within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// The input splitter and the envelope parser: splitting never panics and hands out pieces
/// of the input; an event the envelope accepts keeps its envelope and its record identity
/// through canonicalization, and its record reads back as written.
pub fn splitter(data: &[u8]) {
    let Ok(events) = input::split(data) else {
        return;
    };
    assert!(!events.is_empty(), "split returned no events and no error");
    for raw in events.into_iter().flatten() {
        assert!(
            is_within(data, raw),
            "an event that is not part of the input"
        );
        let Ok(text) = input::check_event_bytes(raw) else {
            continue;
        };
        assert!(text.len() <= limits::EVENT_BYTES_MAX);
        let Ok(tree) = Json::parse_str(text) else {
            continue;
        };
        let Ok(envelope) = Envelope::parse(&tree) else {
            continue;
        };
        assert_eq!(
            time::parse_rfc3339(&time::format_nanos(envelope.time_nanos)),
            Ok(envelope.time_nanos),
            "the event's time does not survive formatting"
        );
        let Ok(canonical) = Canonical::of_event(&tree) else {
            continue;
        };
        let again = Json::parse(canonical.bytes()).expect("canonical bytes parse");
        assert_eq!(
            Envelope::parse(&again).as_ref(),
            Ok(&envelope),
            "the canonical form changed the envelope"
        );
        let twice = Canonical::of_event(&again).expect("canonical bytes canonicalize");
        assert_eq!(twice.bytes(), canonical.bytes());
        assert_eq!(twice.record_id, canonical.record_id);
        let mut record = Vec::new();
        canonical.write_record(7, "2026-01-02T03:04:05.123456789Z", &mut record);
        let (seq, id) = read_stored(&record, |s| (s.seq, s.record_id))
            .unwrap_or_else(|e| panic!("a record just written does not read back: {e}"));
        assert_eq!((seq, id), (7, canonical.record_id));
    }
}

/// The event parser refuses what `serde_json` refuses and, where both read a value, reads the
/// same one. It refuses more only by Sealog's own rules: a repeated member name (which
/// `serde_json` resolves by keeping the last) and a number RFC 8785 would not write back.
fn parses_as_serde_json(data: &[u8], ours: &Result<Json<'_>, sealog_model::json::ParseError>) {
    use sealog_model::json::ParseError;
    match (ours, serde_json::from_slice::<serde_json::Value>(data)) {
        (Ok(tree), Ok(value)) => assert!(
            tree.to_value() == value,
            "the parser read {} where serde_json read {value}",
            tree.to_value()
        ),
        (Ok(tree), Err(e)) => panic!(
            "the parser accepted text serde_json refuses ({e}): {}",
            tree.to_value()
        ),
        (Err(ParseError::NotJson(why)), Ok(value)) => {
            panic!("the parser refused JSON serde_json reads as {value}: {why}")
        }
        (Err(_), _) => {}
    }
}

/// RFC 8785: canonical(parse(canonical(x))) == canonical(x); the reader of canonical text
/// accepts exactly what the writer writes; and an independent canonicalizer agrees. And the
/// parser of events, ours, reads JSON as `serde_json` does.
pub fn canonical(data: &[u8]) {
    let parsed = Json::parse(data);
    parses_as_serde_json(data, &parsed);
    if let Ok(obj) = canonical_text::parse_object(data) {
        let mut again = Vec::new();
        jcs::write_json(&obj.tree, &mut again).expect("canonical text canonicalizes");
        assert_eq!(
            again, data,
            "the canonical reader accepted text in another form"
        );
    }
    let Ok(tree) = parsed else {
        return;
    };
    let mut first = Vec::new();
    if jcs::write_json(&tree, &mut first).is_err() {
        return;
    }
    let reparsed = Json::parse(&first).expect("canonical output parses");
    let mut second = Vec::new();
    jcs::write_json(&reparsed, &mut second).expect("canonical output canonicalizes");
    assert_eq!(first, second, "canonicalization is not idempotent");
    let value = tree.to_value();
    let mut via_value = Vec::new();
    jcs::write_value(&value, &mut via_value).expect("the same value canonicalizes");
    assert_eq!(via_value, first, "the two trees canonicalize differently");
    if matches!(tree, Json::Object(_)) {
        let obj = canonical_text::parse_object(&first)
            .unwrap_or_else(|e| panic!("canonical output refused by the canonical reader: {e}"));
        // Its tree, not `value`: -0 is written as 0, so the trees may differ where the
        // canonical forms do not.
        let mut read_back = Vec::new();
        jcs::write_json(&obj.tree, &mut read_back).expect("a canonical tree canonicalizes");
        assert_eq!(read_back, first);
        // The record writer's form: the same bytes, each member found where the reader
        // finds it.
        let (mut marked, mut starts) = (Vec::new(), Vec::new());
        jcs::write_object_marking(&tree, &mut marked, &mut starts).expect("as write_json");
        assert_eq!(marked, first, "the marking writer writes other bytes");
        let read: Vec<u32> = obj.members.iter().map(|m| m.start as u32).collect();
        assert_eq!(
            starts, read,
            "members marked where the reader does not find them"
        );
    }
    // The oracle rounds integers beyond ±(2^53-1) where Sealog refuses them, so only values
    // both accept are compared (write_json refused those above). The oracle is handed the
    // value the strict parser built, so both see the same numbers.
    if let Ok(oracle) = serde_json_canonicalizer::to_vec(&value) {
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&oracle),
            "Sealog and the independent canonicalizer disagree"
        );
    }
}

/// Applies edits to `bytes`: each 3 bytes of `edits` XOR one byte at a 16-bit position.
fn apply_edits(bytes: &mut [u8], edits: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % bytes.len();
        bytes[at] ^= e[2];
    }
}

/// The compressed segment's trailer checksum, recomputed after edits to its header or index
/// as someone forging a file would: it only locates damage, it authenticates nothing, so
/// the readers behind it must stand on their own.
fn reseal_zseg(file: &mut [u8]) {
    const HEADER: usize = 24;
    const TRAILER: usize = 28;
    const ENTRY: usize = 28;
    if file.len() < HEADER + TRAILER {
        return;
    }
    let t = file.len() - TRAILER;
    let count = u64::from_le_bytes(file[t..t + 8].try_into().expect("8 bytes"));
    let Some(index_len) = count
        .checked_mul(ENTRY as u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= t - HEADER)
    else {
        return;
    };
    let mut crc = crc32c::crc32c(&file[..HEADER]);
    crc = crc32c::crc32c_append(crc, &file[t - index_len..t]);
    crc = crc32c::crc32c_append(crc, &file[t..t + 16]);
    file[t + 16..t + 20].copy_from_slice(&crc.to_le_bytes());
}

/// The segment and frame readers on arbitrary bytes. Part 0 is a plain segment's body
/// (after its header), which the store compresses only if every frame in it is whole; the
/// compressed file is then damaged by part 1's edits (its trailer resealed when part 2 says
/// so) and read back. Whatever is read must be the plain segment's own bytes: damage
/// yields errors, never other data.
pub fn segment(data: &[u8]) {
    use sealog_ledger::zseg::{self, Zseg};
    let parts = parts(data);
    let first_seq = 5;
    let dir = crate::tempdir();
    let plain_path = dir.path().join(format!("{first_seq:020}.seg"));
    let mut plain = b"SEALOGS1".to_vec();
    plain.extend_from_slice(&u64::to_le_bytes(first_seq));
    plain.extend_from_slice(parts[0]);
    std::fs::write(&plain_path, &plain).expect("write the segment");
    let frames = crate::format::frames(&plain, 16);
    let whole = frames.last().map_or(16, |f| f.end as usize) == plain.len();
    let compressed = match zseg::compress_file(&plain_path, first_seq, &|| false) {
        Ok(Some((path, z))) => (path, z),
        Ok(None) => panic!("compression stopped unasked"),
        Err(_) => {
            assert!(
                !whole || frames.is_empty(),
                "a segment of whole frames was not compressed"
            );
            return;
        }
    };
    assert!(whole, "a segment with damage was compressed");
    let (zpath, z) = compressed;
    let check = |z: &Zseg, damaged: bool| {
        match z.plain() {
            Ok(p) => assert_eq!(p, plain, "the compressed segment reads back other bytes"),
            Err(e) => assert!(damaged, "an undamaged compressed segment: {e}"),
        }
        for (i, f) in frames.iter().enumerate() {
            let mut buf = Vec::new();
            match z.read_frame(first_seq + i as u64, f.start, &mut buf) {
                Ok(()) => assert_eq!(
                    buf,
                    plain[f.start as usize + 8..f.end as usize],
                    "record {i} reads back as other bytes"
                ),
                Err(e) => assert!(damaged, "record {i} of an undamaged segment: {e:?}"),
            }
        }
        if let Some(f) = frames.get(frames.len() / 2) {
            let mut rest = Vec::new();
            if let Ok(mut r) = z.reader_at(f.start)
                && std::io::Read::read_to_end(&mut r, &mut rest).is_ok()
            {
                assert_eq!(rest, plain[f.start as usize..], "reading on from a record");
            }
        }
    };
    check(&z, false);
    drop(z);
    let Some(edits) = parts.get(1) else {
        return;
    };
    let mut bytes = std::fs::read(&zpath).expect("read the compressed segment");
    let original = bytes.clone();
    apply_edits(&mut bytes, edits);
    if parts.get(2).is_some() {
        reseal_zseg(&mut bytes);
    }
    let damaged_path = dir.path().join(zseg::file_name(first_seq));
    let _ = std::fs::remove_file(&damaged_path);
    std::fs::write(&damaged_path, &bytes).expect("write the damaged segment");
    if let Ok(z) = Zseg::open(&damaged_path, first_seq) {
        check(&z, bytes != original);
    }
}

/// The fixed keys of the note target: their names, seeds and ids are in its corpus.
fn note_keys() -> (Signer, Cosigner) {
    (
        Signer::from_seed("log.example/fuzz", [7; 32]).expect("a signer"),
        Cosigner::from_seed("witness.example/fuzz", [9; 32]).expect("a cosigner"),
    )
}

/// Signed notes, checkpoints, cosignatures and witness requests. Part 0 is parsed as each;
/// a checkpoint has exactly one text; a note opened by a key says what that key signed.
/// When part 1 is present, part 0 is signed and part 1's edits are applied to the note: a
/// note that opens after edits still carries the signed text.
pub fn note(data: &[u8]) {
    let parts = parts(data);
    let Ok(text) = std::str::from_utf8(parts[0]) else {
        return;
    };
    let (signer, cosigner) = note_keys();
    let verifier = signer.verifier();
    if let Ok(c) = Checkpoint::parse(text) {
        assert_eq!(c.to_body(), text, "a checkpoint with two spellings");
    }
    if let Ok(opened) = note::open(text, &[&verifier]) {
        assert!(text.starts_with(&opened.text));
        assert_eq!(opened.verified_by, [signer.name()]);
    }
    if let Ok(add) = AddCheckpoint::parse(text) {
        assert_eq!(
            AddCheckpoint::parse(&add.to_body()),
            Ok(add.clone()),
            "a witness request does not survive writing"
        );
    }
    let _ = cosignature::split_note(text);
    let _ = sealog_merkle::witness::origin_of(text);
    let _ = note::Verifier::parse(text);
    let _ = cosignature::CosignatureVerifier::parse(text);
    if let Some((body, rest)) = text.split_once("\n\n") {
        let body = format!("{body}\n");
        let _ = cosigner.verifier().find(&body, text);
        let _ = rest;
    }
    let Some(edits) = parts.get(1) else {
        return;
    };
    let Ok(signed) = note::sign(text, &[&signer]) else {
        return;
    };
    let opened = note::open(&signed, &[&verifier]).expect("a note just signed opens");
    assert_eq!(opened.text, text);
    let cosigned = cosignature::add_signatures(&signed, &cosigner.cosign(text, 1_700_000_000));
    assert_eq!(
        cosigner.verifier().find(text, &cosigned),
        Ok(Some(1_700_000_000))
    );
    let mut bytes = cosigned.clone().into_bytes();
    apply_edits(&mut bytes, edits);
    let Ok(edited) = String::from_utf8(bytes) else {
        return;
    };
    if let Ok(o) = note::open(&edited, &[&verifier]) {
        assert_eq!(o.text, text, "an edited note opened with other text");
    }
    if edited != cosigned
        && let Some(at) = edited.rfind("\n\n")
        && let Ok(Some(_)) = cosigner.verifier().find(&edited[..=at], &edited)
    {
        assert_eq!(
            &edited[..=at],
            text,
            "an edited cosignature covers other text"
        );
    }
}

/// A tree held in memory: every perfect subtree's hash, by level.
struct MemTree(Vec<Vec<Hash>>);

impl MemTree {
    fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().expect("a level");
            let up = below
                .chunks_exact(2)
                .map(|p| sealog_merkle::node_hash(&p[0], &p[1]))
                .collect();
            levels.push(up);
        }
        MemTree(levels)
    }
}

impl NodeReader for MemTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        Ok(self.0[usize::from(level)][index as usize])
    }
}

/// Edits a proof: each 4 bytes of `edits` are an operation and its arguments.
fn edit_proof(proof: &mut Vec<Hash>, index: &mut u64, edits: &[u8]) {
    for e in edits.chunks_exact(4) {
        let at = |len: usize| usize::from(e[1]) % len.max(1);
        match e[0] % 7 {
            0 if !proof.is_empty() => {
                let i = at(proof.len());
                proof[i][usize::from(e[2]) % 32] ^= e[3].max(1);
            }
            1 if !proof.is_empty() => {
                proof.remove(at(proof.len()));
            }
            2 if !proof.is_empty() => {
                let h = proof[at(proof.len())];
                proof.insert(usize::from(e[2]) % (proof.len() + 1), h);
            }
            3 if proof.len() > 1 => {
                let (i, j) = (at(proof.len()), usize::from(e[2]) % proof.len());
                proof.swap(i, j);
            }
            4 => proof.insert(at(proof.len() + 1), sealog_merkle::leaf_hash(&e[2..])),
            5 => *index ^= u64::from(e[2]),
            6 => proof.truncate(at(proof.len() + 1)),
            _ => {}
        }
    }
}

/// Proof verification: a real tree from the input, its valid inclusion and consistency
/// proofs verified, then edited by the input's tail; an edited proof, one that differs
/// from the valid one, is never accepted.
pub fn proof(data: &[u8]) {
    let [n, i, o, rest @ ..] = data else {
        return;
    };
    let size = 1 + u64::from(*n) % 70;
    let index = u64::from(*i) % size;
    let old = 1 + u64::from(*o) % size;
    let leaves: Vec<Hash> = (0..size)
        .map(|k| sealog_merkle::leaf_hash(&k.to_le_bytes()))
        .collect();
    let tree = MemTree::new(leaves.clone());
    let root = sealog_merkle::root(size, &tree).expect("the root");
    let old_root = sealog_merkle::root(old, &tree).expect("the old root");
    let leaf = leaves[index as usize];
    let inclusion = sealog_merkle::inclusion_proof(index, size, &tree).expect("a proof");
    sealog_merkle::verify_inclusion(&leaf, index, size, &root, &inclusion)
        .expect("the valid inclusion proof");
    let consistency = sealog_merkle::consistency_proof(old, size, &tree).expect("a proof");
    sealog_merkle::verify_consistency(old, size, &old_root, &root, &consistency)
        .expect("the valid consistency proof");

    let (mut p, mut at) = (inclusion.clone(), index);
    edit_proof(&mut p, &mut at, rest);
    if (p.as_slice(), at) != (inclusion.as_slice(), index) {
        assert!(
            sealog_merkle::verify_inclusion(&leaf, at, size, &root, &p).is_err(),
            "an edited inclusion proof was accepted: leaf {index}→{at} of {size}, {p:?}"
        );
    }
    let (mut c, mut unused) = (consistency.clone(), 0);
    edit_proof(&mut c, &mut unused, rest);
    if c != consistency {
        assert!(
            sealog_merkle::verify_consistency(old, size, &old_root, &root, &c).is_err(),
            "an edited consistency proof was accepted: {old}→{size}, {c:?}"
        );
    }
}

/// The pack manifest loader. Part 0 is `manifest.json`; every later part is a file beside
/// it, its first line its name. A pack that loads is then used on an event of each of its
/// types, which must not panic either; a part named `data` that is JSON is those events'
/// `data`.
pub fn manifest(data: &[u8]) {
    let parts = parts(data);
    let dir = crate::tempdir();
    std::fs::write(dir.path().join("manifest.json"), parts[0]).expect("write the manifest");
    let mut event_data =
        serde_json::json!({"id": "x", "status": "open", "amount": 1, "items": [], "note": "n"});
    for part in &parts[1..] {
        let (name, body) = match part.iter().position(|&b| b == b'\n') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (&part[..], &[][..]),
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        // A name no file system takes is not a pack file the loader could meet.
        if name.is_empty() || name.starts_with('.') || name.len() > 255 || !name.chars().all(plain)
        {
            continue;
        }
        if name == "data"
            && let Ok(v) = serde_json::from_slice(body)
        {
            event_data = v;
            continue;
        }
        std::fs::write(dir.path().join(name), body).expect("write a pack file");
    }
    let Ok(packs) = sealog_ledger::Packs::load(&[dir.path()]) else {
        return;
    };
    let again = sealog_ledger::Packs::load(&[dir.path()]).expect("a pack that loaded loads");
    assert_eq!(packs.fingerprint(), again.fingerprint());
    let sample = |t: &str| {
        serde_json::json!({
            "specversion": "1.0", "id": "e1", "source": "fuzz", "type": t,
            "time": "2026-01-02T03:04:05Z", "tenant": "acme", "subject": "s1",
            "actor": {"type": "human", "id": "u1"},
            "data": event_data
        })
    };
    let names: Vec<String> = packs
        .pack_names()
        .iter()
        .flat_map(|p| packs.pack_types(p))
        .map(str::to_string)
        .collect();
    static BUILTIN: std::sync::OnceLock<sealog_ledger::Packs> = std::sync::OnceLock::new();
    let builtin = BUILTIN.get_or_init(sealog_ledger::Packs::builtin);
    let own: Vec<&String> = (names.iter()).filter(|t| !builtin.declares(t)).collect();
    // An event of each of the pack's own types goes the whole way in (checked, sealed, keyed,
    // stored), which a pack that loaded must never make panic; what is appended reads back.
    if !own.is_empty() {
        use sealog_ledger::{Author, Durability, IngestResult, Ledger, LedgerConfig, StoreConfig};
        let data = crate::tempdir();
        let config = LedgerConfig {
            store: StoreConfig {
                durability: Durability::Os,
                ..StoreConfig::default()
            },
            packs: packs.clone(),
            undeclared: sealog_ledger::Undeclared::Quarantine,
        };
        let ledger = Ledger::open(data.path(), config).expect("open a ledger");
        let prepared = (own.iter())
            .map(|t| ledger.prepare_value(&sample(t), &Author::ANYONE))
            .collect();
        for r in ledger.commit(prepared).expect("commit") {
            if let IngestResult::Appended { seq, .. } = r {
                let record = ledger.get(seq).expect("read").expect("an appended record");
                let _ = ledger.reveal(&record, &sealog_ledger::Sight::All);
            }
        }
        ledger.close().expect("close the ledger");
    }
    for t in names {
        let value = sample(&t);
        let mut event = Json::owned(&value);
        if packs.check(&t, &mut event).is_ok() {
            // What sealing relies on to skip a walk: a checked event carries personal values
            // exactly when its data subject is there.
            let subject = packs.personal(&t).and_then(|p| p.data_subject(&event));
            assert_eq!(
                packs.carries_personal(&t, &event),
                subject.is_some(),
                "a checked event of {t} carries personal values without its data subject, or the reverse"
            );
        }
        // Sealing's walk reaches every personal value the type's check finds: with each one
        // it meets made null, the event carries none (one left would be kept in clear).
        let mut sealed = Json::owned(&value);
        packs.for_each_personal(&t, &mut sealed, &mut |v, _| *v = Json::Null);
        assert!(
            !packs.carries_personal(&t, &sealed),
            "a personal value of {t} escaped sealing's walk"
        );
        let fixed = Json::owned(&value);
        if let Ok(envelope) = Envelope::parse(&fixed) {
            let _ = packs.derive(&fixed, &envelope);
            let _ = packs.data_subject(&fixed, &envelope);
        }
        let _ = packs.retention(&t);
    }
}

/// The server the HTTP target talks to, with a key of every role but `subject` (`$KEY`)
/// and a subject's key (`$SUBJECT`); replaced by a fresh one now and then, so that the log
/// the fuzzer fills stays small.
struct Served {
    app: crate::InProcess,
    key: String,
    subject: String,
    requests: u32,
    _dir: tempfile::TempDir,
}

thread_local! {
    // Never dropped with the thread: closing the app needs the runtime's thread-locals,
    // which may be gone by then. [`http_stop`] closes it while they are not.
    static SERVED: RefCell<Option<ManuallyDrop<Served>>> = const { RefCell::new(None) };
}

/// Closes the HTTP target's server on this thread, if it started one.
pub fn http_stop() {
    if let Some(s) = SERVED.with(|cell| cell.borrow_mut().take()) {
        drop(ManuallyDrop::into_inner(s));
    }
}

fn served() -> Served {
    let dir = crate::tempdir();
    let app = crate::InProcess::start(dir.path());
    let (key, _) = app.create_key(&["writer", "reader", "auditor", "admin"], None, None);
    let (subject, _) = app.create_key(&["subject"], Some("acme"), Some("s1"));
    Served {
        app,
        key,
        subject,
        requests: 0,
        _dir: dir,
    }
}

/// The HTTP routes in process. The input is a request as text: `METHOD TARGET`, header
/// lines `Name: value`, an empty line, the body; `$KEY` and `$SUBJECT` in a header stand
/// for the server's keys. Whatever is sent, the server answers, and never with a 5xx.
pub fn http(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let Some((method, target)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    SERVED.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|s| s.requests >= 5_000) {
            if let Some(old) = cell.take() {
                drop(ManuallyDrop::into_inner(old));
            }
            *cell = Some(ManuallyDrop::new(served()));
        }
        let s = cell.as_mut().expect("a server");
        s.requests += 1;
        let mut req = axum::http::Request::builder().method(method).uri(target);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value
                .trim_start()
                .replace("$KEY", &s.key)
                .replace("$SUBJECT", &s.subject);
            req = req.header(name, value);
        }
        let Ok(req) = req.body(axum::body::Body::from(body.to_vec())) else {
            return;
        };
        let resp = s.app.request(req);
        assert!(
            resp.status < 500,
            "{method} {target} answered {}: {}",
            resp.status,
            resp.text()
        );
    });
}

/// One spool frame as docs/clients.md gives it, written independently of the client.
pub fn spool_frame(n: u64, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let sum = Sha256::new()
        .chain_update(n.to_le_bytes())
        .chain_update(len)
        .chain_update(payload)
        .finalize();
    let mut out = b"SLS1".to_vec();
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(&sum[..8]);
    out.extend_from_slice(payload);
    out
}

/// The client's spool reader. Part 0 is the `cursor` file; each later part is a spool file
/// (the k-th named for emission number 10·k). Replay must end, and hand out only events
/// whose whole, checked frame is in some file.
pub fn spool(data: &[u8]) {
    let parts = parts(data);
    let dir = crate::tempdir();
    if !parts[0].is_empty() {
        std::fs::write(dir.path().join("cursor"), parts[0]).expect("write the cursor");
    }
    let files: Vec<&[u8]> = parts[1..].iter().take(4).copied().collect();
    for (k, f) in files.iter().enumerate() {
        let name = format!("spool-{:020}.sls", 10 * k);
        std::fs::write(dir.path().join(name), f).expect("write a spool file");
    }
    let replayed = sealog_client::replay_spool(dir.path()).expect("the spool opens");
    let frames_in = |f: &[u8]| f.windows(4).filter(|w| w == b"SLS1").count();
    assert!(
        replayed.len() <= files.iter().map(|f| frames_in(f)).sum(),
        "more events than frames"
    );
    for (n, payload) in &replayed {
        let frame = spool_frame(*n, payload);
        assert!(
            files
                .iter()
                .any(|f| f.windows(frame.len()).any(|w| w == frame)),
            "event {n} replayed from no frame in the spool"
        );
    }
    let again = sealog_client::replay_spool(dir.path()).expect("the spool opens again");
    assert!(again.is_empty(), "events replayed twice: {again:?}");
}

/// Whether `dir` exists and holds at least one file.
pub fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_file())))
}
