//! The storage conformance suite: what every backend must do, as functions any backend's
//! tests call with a way to open it. Each check takes `open`, which opens the same, initially
//! empty log every time it is called (a fresh directory or database per check), and panics
//! with what it found when the backend breaks the contract in `contract`.
//!
//! The suite brings its own admission rule ([`Unique`]: dedupe by id, and at most one record
//! per unique key) and indexer ([`TestKeys`]), so that it tests the backend, not the ledger.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Barrier};

use sealog_merkle::note::{self, Verifier};
use sealog_merkle::{Frontier, leaf_hash, verify_consistency, verify_inclusion};
use sealog_model::json::Json;
use sealog_model::record::{Stored, read_stored};
use sealog_model::{Canonical, Envelope};
use sha2::{Digest, Sha256};

use crate::contract::{
    Admission, Entry, Id, Indexer, Key, LIMIT_MAX, LogRead, LogView, LogWrite, Outcome, Scan,
    Verdict,
};
use crate::{StoreError, open_checkpoint};

/// Opens the log under test (the same one on every call).
pub type Open<'a> = &'a dyn Fn() -> Box<dyn LogWrite<Unique>>;

/// One check of the suite.
pub type Check = fn(Open<'_>);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "appends_get_dense_seqs_and_read_back",
        appends_get_dense_seqs_and_read_back,
    ),
    (
        "admission_sees_one_order_within_and_across_groups",
        admission_sees_one_order_within_and_across_groups,
    ),
    (
        "racing_appends_have_exactly_one_winner",
        racing_appends_have_exactly_one_winner,
    ),
    ("scans_agree_with_a_model", scans_agree_with_a_model),
    (
        "time_windows_agree_with_a_model",
        time_windows_agree_with_a_model,
    ),
    (
        "reopening_keeps_everything_and_continues",
        reopening_keeps_everything_and_continues,
    ),
    (
        "proofs_and_checkpoints_verify",
        proofs_and_checkpoints_verify,
    ),
    ("bad_arguments_are_refused", bad_arguments_are_refused),
    (
        "pruning_keeps_every_proof_and_hides_only_the_pruned",
        pruning_keeps_every_proof_and_hides_only_the_pruned,
    ),
    (
        "cosigned_checkpoints_are_kept_only_for_this_tree",
        cosigned_checkpoints_are_kept_only_for_this_tree,
    ),
];

/// A key as the suite computes it: (axis, value) hashed.
pub fn key(axis: &str, value: &str) -> Key {
    let d = Sha256::new()
        .chain_update(axis.as_bytes())
        .chain_update([0])
        .chain_update(value.as_bytes())
        .finalize();
    d[..16].try_into().expect("16 bytes")
}

/// The suite's admission rule: an entry whose id is in the log (or earlier in its group) is
/// a duplicate; an entry claiming a unique key another record already carries is refused
/// with that record's seq.
pub struct Unique;

#[derive(Default)]
pub struct UniqueGroup {
    ids: HashMap<Id, u64>,
    claimed: HashMap<Key, u64>,
}

impl Admission for Unique {
    type Claim = Option<Key>;
    type Refusal = u64;
    type Group = UniqueGroup;

    fn admit(
        &self,
        group: &mut UniqueGroup,
        entry: &Entry<Option<Key>>,
        seq: u64,
        log: &dyn LogView,
    ) -> Result<Verdict<u64>, StoreError> {
        let id = entry.id();
        if let Some(&s) = group.ids.get(&id) {
            return Ok(Verdict::Duplicate(s));
        }
        if let Some(s) = log.seq_of(&id)? {
            return Ok(Verdict::Duplicate(s));
        }
        if let Some(k) = entry.claim {
            if let Some(&s) = group.claimed.get(&k) {
                return Ok(Verdict::Refuse(s));
            }
            if let Some(s) = log.first_with(&k)? {
                debug_assert!(log.has(&k, s)?, "first_with and has agree");
                return Ok(Verdict::Refuse(s));
            }
            group.claimed.insert(k, seq);
        }
        group.ids.insert(id, seq);
        Ok(Verdict::Admit)
    }
}

/// The suite's indexer: a record is found by its tenant, type and subject, and by its
/// `data.unique` when it has one.
pub struct TestKeys;

impl TestKeys {
    fn keys_of(env: &Envelope<'_>, event: &Json<'_>) -> Vec<Key> {
        let mut keys = vec![key("type", env.event_type)];
        keys.extend(env.tenant.map(|t| key("tenant", t)));
        keys.extend(env.subject.map(|s| key("subject", s)));
        let unique = event.get("data").and_then(|d| d.get("unique"));
        keys.extend(unique.and_then(Json::as_str).map(|u| key("unique", u)));
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

impl Indexer for TestKeys {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        Self::keys_of(stored.envelope, stored.record)
    }

    fn stub_keys(&self, stub: &crate::Stub) -> Vec<Key> {
        stub.key.into_iter().collect()
    }

    fn fingerprint(&self) -> String {
        "conformance-test-keys-1".into()
    }
}

/// An entry for an event given as JSON text; its claim is its `data.unique` key.
pub fn entry(text: &str) -> Entry<Option<Key>> {
    let tree = Json::parse(text.as_bytes()).expect("a test event is JSON");
    let env = Envelope::parse(&tree).expect("a test event has a valid envelope");
    let keys = TestKeys::keys_of(&env, &tree);
    let unique = tree
        .get("data")
        .and_then(|d| d.get("unique"))
        .and_then(Json::as_str)
        .map(|u| key("unique", u));
    Entry {
        event: Canonical::of_event(&tree).expect("a test event is canonical"),
        keys,
        event_ns: env.time_nanos,
        claim: unique,
        row: None,
    }
}

/// Test event `n`: tenant, subject and time vary with `n`; `unique` optional.
pub fn event(n: u64, tenant: &str, subject: &str, unique: Option<&str>) -> String {
    let unique = unique.map_or(String::new(), |u| format!(r#","unique":"{u}""#));
    format!(
        r#"{{"id":"e{n}","source":"conformance","type":"test.t{}","time":"2026-01-{:02}T00:00:{:02}Z","tenant":"{tenant}","subject":"{subject}","data":{{"n":{n}{unique}}}}}"#,
        n % 3,
        1 + n % 28,
        n % 60
    )
}

fn appended<C, R: std::fmt::Debug>(outcomes: &[Outcome<C, R>]) -> Vec<u64> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Appended { seq, .. } => *seq,
            Outcome::Duplicate { seq, .. } => panic!("expected appended, got duplicate of {seq}"),
            Outcome::Refused { refusal, .. } => {
                panic!("expected appended, got refused {refusal:?}")
            }
        })
        .collect()
}

/// The facts a stored record states about itself (checked against its content).
fn stored_facts(bytes: &[u8]) -> (u64, Id, i64) {
    read_stored(bytes, |s| (s.seq, s.record_id.0, s.ingested_ns))
        .unwrap_or_else(|e| panic!("a stored record does not read back: {e}"))
}

pub fn appends_get_dense_seqs_and_read_back(open: Open<'_>) {
    let log = open();
    assert!(log.is_empty());
    assert!(
        log.append(Vec::new()).unwrap().is_empty(),
        "an empty append is a no-op"
    );
    let texts: Vec<String> = (0..5).map(|n| event(n, "acme", "s", None)).collect();
    let entries: Vec<_> = texts.iter().map(|t| entry(t)).collect();
    let ids: Vec<Id> = entries.iter().map(Entry::id).collect();
    let outcomes = log.append(entries.clone()).unwrap();
    assert_eq!(appended(&outcomes), [0, 1, 2, 3, 4]);
    assert_eq!(log.len(), 5);
    let mut last_ingested = i64::MIN;
    for (seq, (e, id)) in entries.iter().zip(&ids).enumerate() {
        let bytes = log
            .get(seq as u64)
            .unwrap()
            .expect("an appended record reads back");
        let (stored_seq, stored_id, ingested_ns) = stored_facts(&bytes);
        assert_eq!((stored_seq, &stored_id), (seq as u64, id));
        assert!(ingested_ns >= last_ingested, "ingest time never decreases");
        last_ingested = ingested_ns;
        let ingested_at = read_stored(&bytes, |s| s.ingested_at.to_string()).unwrap();
        let mut expected = Vec::new();
        e.event
            .write_record(seq as u64, &ingested_at, &mut expected);
        assert_eq!(
            bytes, expected,
            "the record is the event with its server fields"
        );
        assert_eq!(log.seq_of(id).unwrap(), Some(seq as u64));
        assert_eq!(log.get_by_id(id).unwrap(), Some(bytes), "read by its id");
    }
    assert_eq!(log.get(5).unwrap(), None);
    assert_eq!(log.seq_of(&[7; 32]).unwrap(), None);
    assert_eq!(log.get_by_id(&[7; 32]).unwrap(), None);
    assert_eq!(log.size_at(i64::MAX).unwrap(), 5);
    assert_eq!(log.size_at(last_ingested - 1).unwrap(), 0);
    assert_eq!(log.size_at(last_ingested).unwrap(), 5);
    log.close().unwrap();
}

pub fn admission_sees_one_order_within_and_across_groups(open: Open<'_>) {
    let log = open();
    let a = entry(&event(1, "acme", "s", Some("u1")));
    let b = entry(&event(2, "acme", "s", Some("u1")));
    let c = entry(&event(3, "acme", "s", None));
    let out = log
        .append(vec![a.clone(), a.clone(), b.clone(), c.clone()])
        .unwrap();
    assert!(
        matches!(out[0], Outcome::Appended { seq: 0, .. }),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(out[1], Outcome::Duplicate { seq: 0, .. }),
        "{:?}",
        out[1]
    );
    match &out[2] {
        Outcome::Refused { refusal, entry } => {
            assert_eq!(*refusal, 0, "refused with the seq holding the key");
            assert_eq!(entry.id(), b.id(), "the refused entry is handed back");
        }
        other => panic!("expected refused, got {other:?}"),
    }
    assert!(
        matches!(out[3], Outcome::Appended { seq: 1, .. }),
        "a refusal takes no seq: {:?}",
        out[3]
    );
    let again = log.append(vec![c, b, a]).unwrap();
    assert!(matches!(again[0], Outcome::Duplicate { seq: 1, .. }));
    assert!(matches!(again[1], Outcome::Refused { refusal: 0, .. }));
    assert!(matches!(again[2], Outcome::Duplicate { seq: 0, .. }));
    assert_eq!(log.len(), 2);
    log.close().unwrap();
}

pub fn racing_appends_have_exactly_one_winner(open: Open<'_>) {
    let log: Arc<dyn LogWrite<Unique>> = Arc::from(open());
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (log, barrier) = (log.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut outcomes = Vec::new();
                // Each thread: the same 50 shared events, and its own claim on one key.
                for n in 0..50 {
                    let shared = entry(&event(n, "acme", "shared", None));
                    let mine = entry(&event(1000 + t * 100 + n, "acme", "mine", Some("the-one")));
                    outcomes.extend(log.append(vec![shared, mine]).unwrap());
                }
                outcomes
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut shared_seqs: BTreeMap<Id, Vec<u64>> = BTreeMap::new();
    let mut refused_with = Vec::new();
    for h in handles {
        for (i, o) in h.join().unwrap().into_iter().enumerate() {
            match (i % 2, o) {
                (0, Outcome::Appended { seq, id } | Outcome::Duplicate { seq, id }) => {
                    shared_seqs.entry(id).or_default().push(seq)
                }
                (1, Outcome::Appended { seq, .. }) => winners.push(seq),
                (1, Outcome::Refused { refusal, .. }) => refused_with.push(refusal),
                (_, other) => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one claim on a key wins: {winners:?}"
    );
    assert!(refused_with.iter().all(|s| *s == winners[0]));
    assert_eq!(shared_seqs.len(), 50);
    for (id, seqs) in &shared_seqs {
        assert!(
            seqs.iter().all(|s| *s == seqs[0]),
            "one seq per id: {seqs:?}"
        );
        assert_eq!(log.seq_of(id).unwrap(), Some(seqs[0]));
    }
    assert_eq!(
        log.len(),
        51,
        "seqs are dense: 50 shared records and one winner"
    );
    for seq in 0..51 {
        assert_eq!(stored_facts(&log.get(seq).unwrap().unwrap()).0, seq);
    }
}

/// A small deterministic generator (xorshift64*), seeded, so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// (seq, tenant, subject, type, event time) of a record the model holds.
type ModelRow = (u64, String, String, String, i64);

pub fn scans_agree_with_a_model(open: Open<'_>) {
    let log = open();
    const SEED: u64 = 0x5EA1_0600_0000_0001;
    let mut rng = Rng(SEED);
    let mut model: Vec<ModelRow> = Vec::new();
    let mut n = 0u64;
    for _batch in 0..12 {
        let mut entries = Vec::new();
        for _ in 0..1 + rng.below(60) {
            let tenant = format!("t{}", rng.below(4));
            let subject = format!("s{}", rng.below(9));
            let text = event(n, &tenant, &subject, None);
            let e = entry(&text);
            model.push((n, tenant, subject, format!("test.t{}", n % 3), e.event_ns));
            entries.push(e);
            n += 1;
        }
        appended(&log.append(entries).unwrap());
    }
    let total = model.len() as u64;
    let mut scans: Vec<(Scan, Vec<u64>)> = Vec::new();
    let all = |f: &dyn Fn(&ModelRow) -> bool| -> Vec<u64> {
        model.iter().filter(|r| f(r)).map(|r| r.0).collect()
    };
    let base = Scan {
        limit: LIMIT_MAX,
        ..Scan::default()
    };
    scans.push((base.clone(), all(&|_| true)));
    for t in 0..4 {
        let tenant = format!("t{t}");
        let s = Scan {
            keys: vec![key("tenant", &tenant)],
            ..base.clone()
        };
        scans.push((s, all(&|r| r.1 == tenant)));
        for sub in [0, 3, 8] {
            let subject = format!("s{sub}");
            let s = Scan {
                keys: vec![key("tenant", &tenant), key("subject", &subject)],
                ..base.clone()
            };
            let (tn, sb) = (tenant.clone(), subject.clone());
            scans.push((s, all(&|r| r.1 == tn && r.2 == sb)));
        }
    }
    let (from, to) = (model[total as usize / 4].4, model[total as usize / 2].4);
    let s = Scan {
        keys: vec![key("type", "test.t1")],
        event_from: Some(from),
        event_to: Some(to),
        ..base.clone()
    };
    scans.push((s, all(&|r| r.3 == "test.t1" && r.4 >= from && r.4 < to)));
    let s = Scan {
        event_from: Some(from),
        event_to: Some(to),
        ..base.clone()
    };
    scans.push((s, all(&|r| r.4 >= from && r.4 < to)));
    let below = total / 3;
    let s = Scan {
        keys: vec![key("tenant", "t1")],
        after: Some(5),
        below: Some(below),
        ..base.clone()
    };
    scans.push((s, all(&|r| r.1 == "t1" && r.0 > 5 && r.0 < below)));
    let s = Scan {
        keys: vec![key("tenant", "nobody")],
        ..base.clone()
    };
    scans.push((s, Vec::new()));
    for (scan, expected) in &scans {
        for limit in [1, 7, LIMIT_MAX] {
            let got = paged(&*log, scan, limit);
            assert_eq!(
                &got, expected,
                "scan {scan:?} paged by {limit} (model seed {SEED:#x})"
            );
        }
    }
    // Each tenant's key, one twice, and a key nothing holds.
    let tenant_keys: Vec<Key> = ["t2", "t0", "nobody", "t3", "t1", "t2"]
        .iter()
        .map(|t| key("tenant", t))
        .collect();
    for t in 0..4 {
        let tenant = format!("t{t}");
        let first = model.iter().find(|r| r.1 == tenant).map(|r| r.0);
        assert_eq!(
            log.first_with(&key("tenant", &tenant), total).unwrap(),
            first
        );
        if let Some(f) = first {
            assert_eq!(log.first_with(&key("tenant", &tenant), f).unwrap(), None);
        }
        firsts_agree(&*log, &tenant_keys, total);
        // Counts and seqs from the index alone agree with the model over any seq range.
        for (from, below) in [(0, total), (total / 3, total / 2), (5, 5), (0, total + 10)] {
            let want: Vec<u64> = model
                .iter()
                .filter(|r| r.1 == tenant && (from..below).contains(&r.0))
                .map(|r| r.0)
                .collect();
            let k = key("tenant", &tenant);
            assert_eq!(
                log.seqs_with(&k, from, below).unwrap(),
                want,
                "{tenant} {from}..{below}"
            );
            assert_eq!(log.count_with(&k, from, below).unwrap(), want.len() as u64);
        }
    }
    log.close().unwrap();
}

/// The seqs a scan finds, read `limit` at a time to its last page; each page no longer than
/// the limit, each record's bytes stating its own seq.
fn paged(log: &dyn LogRead, scan: &Scan, limit: usize) -> Vec<u64> {
    let mut got = Vec::new();
    let mut s = Scan {
        limit,
        ..scan.clone()
    };
    loop {
        let page = log.scan(&s).unwrap();
        assert!(page.records.len() <= limit);
        for (seq, bytes) in &page.records {
            assert_eq!(
                stored_facts(bytes).0,
                *seq,
                "a page holds its records' bytes"
            );
            got.push(*seq);
        }
        match page.next_after {
            Some(a) => s.after = Some(a),
            None => return got,
        }
    }
}

/// (seq, tenant, event_ns, ingested_ns)
type WindowRow = (u64, String, i64, i64);
/// Which rows of the model a window should find.
type Wanted = Box<dyn Fn(&WindowRow) -> bool>;

/// Event-time and ingest-time windows, narrow and wide (a backend may read the two
/// differently), alone and with a key, paged: the seqs a model of the log expects.
pub fn time_windows_agree_with_a_model(open: Open<'_>) {
    let log = open();
    let mut model: Vec<WindowRow> = Vec::new();
    for batch in 0..13u64 {
        let entries: Vec<_> = (0..200)
            .map(|i| {
                let n = batch * 200 + i;
                entry(&event(n, &format!("t{}", n % 2), "s", None))
            })
            .collect();
        let events: Vec<i64> = entries.iter().map(|e| e.event_ns).collect();
        for (seq, event_ns) in appended(&log.append(entries).unwrap())
            .into_iter()
            .zip(events)
        {
            let bytes = log
                .get(seq)
                .unwrap()
                .expect("an appended record reads back");
            let (_, _, ingested_ns) = stored_facts(&bytes);
            model.push((seq, format!("t{}", seq % 2), event_ns, ingested_ns));
        }
    }
    let day = |d: i64| {
        model
            .iter()
            .find(|r| r.0 == d as u64 - 1)
            .map(|r| r.2)
            .unwrap()
    };
    let ingested = |seq: usize| model[seq].3;
    let mut windows: Vec<(Scan, Wanted)> = Vec::new();
    // Events of day d are those with n % 28 == d - 1: a day is about 90 events, 20 days most.
    for (from, to) in [(day(3), day(4)), (day(2), day(22)), (i64::MIN, i64::MAX)] {
        let s = Scan {
            event_from: Some(from),
            event_to: Some(to),
            ..Scan::default()
        };
        windows.push((s.clone(), Box::new(move |r| r.2 >= from && r.2 < to)));
        let s = Scan {
            keys: vec![key("tenant", "t1")],
            ..s
        };
        windows.push((s, Box::new(move |r| r.1 == "t1" && r.2 >= from && r.2 < to)));
    }
    for (from, to) in [
        (ingested(400), ingested(600)),
        (ingested(200), ingested(2_400)),
    ] {
        let s = Scan {
            ingest_from: Some(from),
            ingest_to: Some(to),
            ..Scan::default()
        };
        windows.push((s, Box::new(move |r| r.3 >= from && r.3 < to)));
    }
    let (from, to) = (day(2), day(22));
    let (ifrom, ito) = (ingested(200), ingested(2_000));
    let s = Scan {
        event_from: Some(from),
        event_to: Some(to),
        ingest_from: Some(ifrom),
        ingest_to: Some(ito),
        after: Some(300),
        below: Some(2_300),
        ..Scan::default()
    };
    windows.push((
        s,
        Box::new(move |r| {
            r.2 >= from && r.2 < to && r.3 >= ifrom && r.3 < ito && r.0 > 300 && r.0 < 2_300
        }),
    ));
    for (scan, wanted) in &windows {
        let expected: Vec<u64> = model.iter().filter(|r| wanted(r)).map(|r| r.0).collect();
        for limit in [100, LIMIT_MAX] {
            let got = paged(&*log, scan, limit);
            assert_eq!(got, expected, "scan {scan:?} paged by {limit}");
        }
    }
    // The event-time window's seqs from the index alone, below a cut.
    for ((from, to), below) in [((day(3), day(4)), 2_600), ((day(2), day(22)), 1_000)] {
        let expected: Vec<u64> = model
            .iter()
            .filter(|r| r.2 >= from && r.2 < to && r.0 < below)
            .map(|r| r.0)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(
            log.seqs_in_event_window(from, to, below).unwrap(),
            expected,
            "[{from}, {to}) below {below}"
        );
    }
    log.close().unwrap();
}

pub fn reopening_keeps_everything_and_continues(open: Open<'_>) {
    let log = open();
    let first: Vec<_> = (0..40)
        .map(|n| entry(&event(n, "acme", "s", None)))
        .collect();
    appended(&log.append(first.clone()).unwrap());
    let records: Vec<Vec<u8>> = (0..40).map(|s| log.get(s).unwrap().unwrap()).collect();
    let root = log.root(40).unwrap();
    log.close().unwrap();

    let log = open();
    assert_eq!(log.len(), 40);
    let cp = log
        .latest_checkpoint()
        .expect("closing signs a final checkpoint");
    assert_eq!((cp.size, cp.root), (40, root));
    for (seq, r) in records.iter().enumerate() {
        assert_eq!(&log.get(seq as u64).unwrap().unwrap(), r);
    }
    let again = log.append(first.clone()).unwrap();
    assert!(
        again
            .iter()
            .enumerate()
            .all(|(i, o)| o.seq() == Some(i as u64))
    );
    assert_eq!(log.len(), 40, "nothing appended twice across a reopen");
    let more: Vec<_> = (40..50)
        .map(|n| entry(&event(n, "acme", "s", None)))
        .collect();
    assert_eq!(
        appended(&log.append(more).unwrap()),
        (40..50).collect::<Vec<_>>()
    );
    let page = log
        .scan(&Scan {
            keys: vec![key("tenant", "acme")],
            limit: LIMIT_MAX,
            ..Scan::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 50, "the index spans the reopen");
    log.close().unwrap();
}

pub fn proofs_and_checkpoints_verify(open: Open<'_>) {
    let log = open();
    let mut frontier = Frontier::new();
    let mut roots = vec![sealog_merkle::empty_root()];
    let mut leaves = Vec::new();
    for batch in 0..6u64 {
        let entries: Vec<_> = (0..1 + batch * 7)
            .map(|i| entry(&event(batch * 100 + i, "acme", "p", None)))
            .collect();
        appended(&log.append(entries).unwrap());
        while frontier.size() < log.len() {
            let leaf = leaf_hash(&log.get(frontier.size()).unwrap().unwrap());
            leaves.push(leaf);
            frontier.push(leaf);
            roots.push(frontier.root());
        }
    }
    let size = log.len();
    let verifier = Verifier::parse(&log.verifier_key()).expect("a C2SP verifier key");
    let cp = log.checkpoint().unwrap();
    assert_eq!(cp.size, size, "a checkpoint covers the whole log");
    assert_eq!(cp.root, roots[size as usize]);
    note::open(&cp.note, &[&verifier]).expect("the checkpoint is signed by the log's key");
    assert_eq!(open_checkpoint(&cp.note, &verifier).unwrap(), cp);
    for s in 1..=size {
        assert_eq!(log.root(s).unwrap(), roots[s as usize], "root of size {s}");
    }
    for s in [1, 2, 5, size / 2, size] {
        for i in [0, s / 2, s - 1] {
            let proof = log.inclusion_proof(i, s).unwrap();
            verify_inclusion(&leaves[i as usize], i, s, &roots[s as usize], &proof)
                .unwrap_or_else(|e| panic!("inclusion of {i} in {s}: {e}"));
        }
    }
    for old in [1, 3, size / 2] {
        let proof = log.consistency_proof(old, size).unwrap();
        verify_consistency(
            old,
            size,
            &roots[old as usize],
            &roots[size as usize],
            &proof,
        )
        .unwrap_or_else(|e| panic!("consistency {old} → {size}: {e}"));
    }
    log.close().unwrap();
}

/// A checkpoint with witnesses' cosignatures is kept across a reopen, the newest each witness
/// cosigned; one this log did not sign, or whose root is not its tree's, is refused.
pub fn cosigned_checkpoints_are_kept_only_for_this_tree(open: Open<'_>) {
    let log = open();
    let entries: Vec<_> = (0..9)
        .map(|n| entry(&event(n, "acme", "c", None)))
        .collect();
    appended(&log.append(entries).unwrap());
    let cp = log.checkpoint().unwrap();
    let witness = sealog_merkle::cosignature::Cosigner::from_seed("w.example/1", [5; 32]).unwrap();
    let (text, _) = sealog_merkle::cosignature::split_note(&cp.note).unwrap();
    let cosigned =
        sealog_merkle::cosignature::add_signatures(&cp.note, &witness.cosign(text, 1_700_000_000));
    log.add_cosigned(&cosigned).unwrap();
    assert_eq!(log.cosigned().unwrap(), vec![cosigned.clone()]);
    // Another log's checkpoint of another tree: refused, nothing kept.
    let stranger =
        note::Signer::from_seed(log.verifier_key().split('+').next().unwrap(), [9; 32]).unwrap();
    let origin = text.lines().next().unwrap();
    let forged_body = format!("{origin}\n9\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
    let forged = note::sign(&forged_body, &[&stranger]).unwrap();
    assert!(log.add_cosigned(&forged).is_err());
    let own_key = Verifier::parse(&log.verifier_key()).unwrap();
    assert!(note::open(&forged, &[&own_key]).is_err());
    // A newer checkpoint cosigned by the same witness replaces the older; another witness's
    // cosignature of the older one keeps that one too.
    let more: Vec<_> = (9..12)
        .map(|n| entry(&event(n, "acme", "c", None)))
        .collect();
    appended(&log.append(more).unwrap());
    let cp2 = log.checkpoint().unwrap();
    let (text2, _) = sealog_merkle::cosignature::split_note(&cp2.note).unwrap();
    let newer = sealog_merkle::cosignature::add_signatures(
        &cp2.note,
        &witness.cosign(text2, 1_700_000_001),
    );
    log.add_cosigned(&newer).unwrap();
    assert_eq!(log.cosigned().unwrap(), vec![newer.clone()]);
    let other = sealog_merkle::cosignature::Cosigner::from_seed("w.example/2", [6; 32]).unwrap();
    let by_other =
        sealog_merkle::cosignature::add_signatures(&cp.note, &other.cosign(text, 1_700_000_002));
    log.add_cosigned(&by_other).unwrap();
    assert_eq!(
        log.cosigned().unwrap(),
        vec![newer.clone(), by_other.clone()]
    );
    log.close().unwrap();
    let log = open();
    assert_eq!(log.cosigned().unwrap(), vec![newer, by_other]);
    log.close().unwrap();
}

pub fn bad_arguments_are_refused(open: Open<'_>) {
    let log = open();
    appended(
        &log.append(vec![entry(&event(1, "acme", "s", None))])
            .unwrap(),
    );
    for limit in [0, LIMIT_MAX + 1] {
        let err = log
            .scan(&Scan {
                limit,
                ..Scan::default()
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
    }
    assert!(matches!(log.root(2), Err(StoreError::InvalidArgument(_))));
    assert!(matches!(
        log.inclusion_proof(0, 2),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        log.consistency_proof(1, 2),
        Err(StoreError::InvalidArgument(_))
    ));
    log.close().unwrap();
}

/// Retention's rewrite: pruned records read as pruned and leave scans, everything else reads
/// as before, every proof made before still verifies (and new ones of pruned leaves too), a
/// second prune changes nothing, and all of it holds across a reopen.
pub fn pruning_keeps_every_proof_and_hides_only_the_pruned(open: Open<'_>) {
    let log = open();
    // Records 0 and 4 claim unique keys: once pruned, neither holds its claim.
    let unique = |n: u64| {
        [(0, "u0"), (4, "u4")]
            .iter()
            .find(|c| c.0 == n)
            .map(|c| c.1)
    };
    let entries: Vec<_> = (0..30)
        .map(|n| entry(&event(n, "acme", "s", unique(n))))
        .collect();
    let ids: Vec<Id> = entries.iter().map(Entry::id).collect();
    appended(&log.append(entries).unwrap());
    let records: Vec<Vec<u8>> = (0..30).map(|s| log.get(s).unwrap().unwrap()).collect();
    let before = log.checkpoint().unwrap();
    let proofs: Vec<_> = (0..30)
        .map(|s| log.inclusion_proof(s, 30).unwrap())
        .collect();
    let pruned = [0u64, 3, 4, 17, 29];
    let link = [9u8; 32];
    let prune: Vec<_> = pruned
        .iter()
        .map(|&seq| crate::Prune {
            seq,
            link: (seq == 17).then_some(link),
            // Pruned records stay found by one key their caller keeps.
            key: (seq == 4).then(|| key("tenant", "acme")),
        })
        .collect();
    assert_eq!(log.prune(&prune).unwrap(), pruned.len() as u64);
    assert_eq!(
        log.prune(&prune).unwrap(),
        0,
        "pruning twice changes nothing"
    );
    // The admission rule asks the log at once: record 0's claim is free again.
    let more: Vec<_> = (30..35)
        .map(|n| entry(&event(n, "acme", "s", (n == 30).then_some("u0"))))
        .collect();
    appended(&log.append(more).unwrap());

    let check = |log: &dyn LogWrite<Unique>, when: &str| {
        for seq in 0..30u64 {
            let got = log.get(seq);
            if pruned.contains(&seq) {
                match got {
                    Err(StoreError::Pruned(stub)) => {
                        assert_eq!((stub.seq, stub.id), (seq, ids[seq as usize]), "{when}");
                        assert_eq!(stub.link, (seq == 17).then_some(link), "{when}");
                        assert_eq!(stub.key.is_some(), seq == 4, "{when}");
                    }
                    other => panic!("{when}: pruned record {seq} read as {other:?}"),
                }
                assert_eq!(
                    log.seq_of(&ids[seq as usize]).unwrap(),
                    Some(seq),
                    "{when}: a pruned record's id still dedupes"
                );
                assert!(
                    matches!(log.get_by_id(&ids[seq as usize]), Err(StoreError::Pruned(s)) if s.seq == seq),
                    "{when}: a pruned record read by its id is its stub"
                );
            } else {
                assert_eq!(
                    log.get(seq).unwrap().unwrap(),
                    records[seq as usize],
                    "{when}: record {seq}"
                );
            }
            let leaf = leaf_hash(&records[seq as usize]);
            verify_inclusion(&leaf, seq, 30, &before.root, &proofs[seq as usize])
                .unwrap_or_else(|e| panic!("{when}: a proof made before of {seq}: {e}"));
            let fresh = log.inclusion_proof(seq, 30).unwrap();
            verify_inclusion(&leaf, seq, 30, &before.root, &fresh)
                .unwrap_or_else(|e| panic!("{when}: a proof made after of {seq}: {e}"));
        }
        assert_eq!(log.root(30).unwrap(), before.root, "{when}");
        let now = log.checkpoint().unwrap();
        let proof = log.consistency_proof(30, now.size).unwrap();
        verify_consistency(30, now.size, &before.root, &now.root, &proof)
            .unwrap_or_else(|e| panic!("{when}: consistency from before: {e}"));
        let page = log
            .scan(&Scan {
                keys: vec![key("tenant", "acme")],
                limit: LIMIT_MAX,
                ..Scan::default()
            })
            .unwrap();
        let seqs: Vec<u64> = page.records.iter().map(|r| r.0).collect();
        let kept: Vec<u64> = (0..35).filter(|s| !pruned.contains(s)).collect();
        assert_eq!(seqs, kept, "{when}: a scan passes over pruned records");
        // A pruned record is found by its stub's keys alone, at once and after reopening.
        let acme = key("tenant", "acme");
        assert_eq!(
            log.first_with(&acme, 35).unwrap(),
            Some(1),
            "{when}: seq 0 was pruned without its key"
        );
        assert_eq!(log.first_with(&acme, 1).unwrap(), None, "{when}");
        let keys = [
            (
                acme,
                (0..35).filter(|s| ![0, 3, 17, 29].contains(s)).collect(),
            ),
            (key("type", "test.t0"), (6..35).step_by(3).collect()),
            (key("unique", "u0"), vec![30]),
            (key("unique", "u4"), vec![]),
        ];
        for (k, live) in &keys {
            assert_eq!(&log.seqs_with(k, 0, 35).unwrap(), live, "{when}");
            assert_eq!(
                log.first_with(k, 35).unwrap(),
                live.first().copied(),
                "{when}"
            );
            for (from, below) in [(0, 35), (0, 5), (3, 5), (4, 5), (5, 18), (17, 18), (18, 35)] {
                let n = live.iter().filter(|s| (from..below).contains(*s)).count();
                assert_eq!(
                    log.count_with(k, from, below).unwrap(),
                    n as u64,
                    "{when}: count in [{from}, {below})"
                );
            }
        }
        let all: Vec<Key> = keys.iter().map(|(k, _)| *k).collect();
        firsts_agree(log, &all, 35);
        firsts_agree(log, &[acme, key("tenant", "nobody"), acme], 35);
        // An event window too, however it is paged.
        let window = Scan {
            event_from: Some(i64::MIN),
            event_to: Some(i64::MAX),
            ..Scan::default()
        };
        for limit in [1, 3, LIMIT_MAX] {
            assert_eq!(
                paged(log, &window, limit),
                kept,
                "{when}: an event window paged by {limit} passes over pruned records"
            );
        }
        let many = log.get_many_with_leaves(&[1, 2]).unwrap();
        assert_eq!(many.len(), 2);
        assert!(
            matches!(log.get_many_with_leaves(&[1, 3]), Err(StoreError::Pruned(s)) if s.seq == 3),
            "{when}"
        );
        assert!(
            log.prune(&[crate::Prune {
                seq: 99,
                link: None,
                key: None
            }])
            .is_err(),
            "{when}: a seq past the log is refused"
        );
    };
    check(&*log, "after pruning");
    log.close().unwrap();
    let log = open();
    check(&*log, "after reopening");
    log.close().unwrap();
}

/// `firsts_with` answers as `first_with` does, key by key, at every bound from empty to past
/// the log.
fn firsts_agree(log: &dyn LogRead, keys: &[Key], len: u64) {
    assert_eq!(
        log.firsts_with(&[], len).unwrap(),
        Vec::<Option<u64>>::new()
    );
    for below in [0, 1, len / 3, len / 2, len, len + 10] {
        let one_by_one: Vec<Option<u64>> = keys
            .iter()
            .map(|k| log.first_with(k, below).unwrap())
            .collect();
        assert_eq!(
            log.firsts_with(keys, below).unwrap(),
            one_by_one,
            "firsts below {below}"
        );
    }
}
