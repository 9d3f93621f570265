//! The store against a model, under random sequences of operations: batches mixing new
//! events, duplicates (of records, of events earlier in the batch, of refused events) and
//! claims the admission rule refuses; clean reopens and crashes (the directory copied as it
//! lies, with the index unflushed); scans by key, event and ingest time, cursor and size,
//! page by page; reads by seq and by record id; roots, inclusion and consistency proofs and
//! checkpoints, checked against a tree the model computes from the records it was handed.
//!
//! The model is a `Vec` of records and a `HashMap` from event to seq, with the suite's rule
//! (`Unique`: a duplicate is answered with the first seq, a claimed key refuses with its
//! holder). `tests/suite/store.rs` checks every scan shape on one fixed log; this checks that any
//! order of operations keeps the store and the model equal.
//!
//! Cases come from a fixed seed; `PROPTEST_RNG_SEED=<n>` explores others and
//! `PROPTEST_CASES=<n>` runs more. A failing case is shrunk, printed and saved in
//! `tests/proptest-regressions/props.txt`, which every later run replays first.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use sealog_merkle::note::Verifier;
use sealog_merkle::{Hash, empty_root};
use sealog_model::LogLayout;
use sealog_model::record::read_stored;
use sealog_store::conformance::{TestKeys, Unique, entry, key};
use sealog_store::{
    Config, Durability, Id, LIMIT_MAX, LogRead, LogWrite, Outcome, Scan, Store, open_checkpoint,
};
use serde_json::Value;

const SEED: u64 = 0x5EA1_0710;
/// 2026-01-01T00:00:00Z in nanoseconds.
const JAN_2026_NS: i64 = 1_767_225_600_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;

fn config() -> ProptestConfig {
    sealog_testkit::props::config(128, SEED)
}

/// An event, by the few things that vary. Equal specs are the same event (the same
/// record id); a `unique` claim is refused once another record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Spec {
    n: u8,
    tenant: u8,
    subject: u8,
    kind: u8,
    day: u8,
    unique: Option<u8>,
}

impl Spec {
    fn text(&self) -> String {
        let unique = self
            .unique
            .map_or(String::new(), |u| format!(r#","unique":"u{u}""#));
        format!(
            r#"{{"id":"e{}","source":"props","type":"test.k{}","time":"2026-01-{:02}T00:00:00Z","tenant":"t{}","subject":"s{}","data":{{"n":{}{unique}}}}}"#,
            self.n,
            self.kind,
            self.day + 1,
            self.tenant,
            self.subject,
            self.n
        )
    }

    fn id(&self) -> Id {
        entry(&self.text()).id()
    }

    fn event_ns(&self) -> i64 {
        JAN_2026_NS + i64::from(self.day) * DAY_NS
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..12,
        0u8..3,
        0u8..4,
        0u8..2,
        0u8..5,
        prop::option::weighted(0.2, 0u8..4),
    )
        .prop_map(|(n, tenant, subject, kind, day, unique)| Spec {
            n,
            tenant,
            subject,
            kind,
            day,
            unique,
        })
}

#[derive(Debug, Clone)]
enum Pick {
    New(Spec),
    /// An event sent before in this case (appended or not), again.
    Again(Index),
}

/// A scan as the model reads it; indexes pick ingest times the records really got.
#[derive(Debug, Clone)]
struct Query {
    tenant: Option<u8>,
    subject: Option<u8>,
    kind: Option<u8>,
    days: Option<(u8, u8)>,
    ingest: Option<(Index, Index)>,
    after: Option<u8>,
    below: Option<u8>,
    limit: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Pick>),
    Scan(Query),
    Get(u8),
    Lookup(Index),
    Prove(Index, Index, Index),
    Checkpoint,
    Reopen,
    Crash,
}

fn query() -> impl Strategy<Value = Query> {
    (
        (
            prop::option::weighted(0.35, 0u8..4),
            prop::option::weighted(0.35, 0u8..5),
            prop::option::weighted(0.35, 0u8..3),
            prop::option::weighted(0.3, (0u8..6, 0u8..6)),
        ),
        (
            prop::option::weighted(0.2, (any::<Index>(), any::<Index>())),
            prop::option::weighted(0.2, 0u8..60),
            prop::option::weighted(0.2, 0u8..60),
            prop_oneof![Just(LIMIT_MAX), 1usize..5],
        ),
    )
        .prop_map(
            |((tenant, subject, kind, days), (ingest, after, below, limit))| Query {
                tenant,
                subject,
                kind,
                days,
                ingest,
                after,
                below,
                limit,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let pick =
        prop_oneof![3 => spec().prop_map(Pick::New), 1 => any::<Index>().prop_map(Pick::Again)];
    prop_oneof![
        8 => prop::collection::vec(pick, 1..10).prop_map(Op::Append),
        4 => query().prop_map(Op::Scan),
        1 => any::<u8>().prop_map(Op::Get),
        1 => any::<Index>().prop_map(Op::Lookup),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Op::Prove(a, b, c)),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// How the store runs in a case: index runs every few records, segments rolled often or not.
fn store_config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(2u64), Just(5), Just(64)],
        prop_oneof![Just(700u64), Just(1 << 20)],
    )
        .prop_map(|(memtable, segment)| Config {
            durability: Durability::Os,
            memtable_records_max: memtable,
            segment_bytes_max: segment,
            ..Config::default()
        })
}

/// What the store should hold.
#[derive(Default)]
struct Model {
    specs: Vec<Spec>,
    seq_of: HashMap<Spec, u64>,
    claimed: HashMap<u8, u64>,
    /// Each record as the store handed it back right after its append: it never changes.
    bytes: Vec<Vec<u8>>,
    ingested_ns: Vec<i64>,
    /// Every event sent in this case, appended or not.
    sent: Vec<Spec>,
}

/// What the store should answer for one entry: appended, a duplicate of, or refused by the
/// record holding its claim.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Appended(u64),
    Duplicate(u64),
    Refused(u64),
}

impl Model {
    fn len(&self) -> u64 {
        self.specs.len() as u64
    }

    fn decide(&mut self, spec: &Spec) -> Want {
        if let Some(&seq) = self.seq_of.get(spec) {
            return Want::Duplicate(seq);
        }
        if let Some(&holder) = spec.unique.and_then(|u| self.claimed.get(&u)) {
            return Want::Refused(holder);
        }
        let seq = self.len();
        self.specs.push(spec.clone());
        self.seq_of.insert(spec.clone(), seq);
        if let Some(u) = spec.unique {
            self.claimed.insert(u, seq);
        }
        Want::Appended(seq)
    }

    /// RFC 9162's tree hash of the first `size` records, by its recursive definition.
    fn root(&self, size: u64) -> Hash {
        sealog_testkit::tree::root_of(&self.bytes[..size as usize])
    }

    fn scan(&self, q: &Query) -> Scan {
        let mut keys = Vec::new();
        keys.extend(q.tenant.map(|t| key("tenant", &format!("t{t}"))));
        keys.extend(q.subject.map(|s| key("subject", &format!("s{s}"))));
        keys.extend(q.kind.map(|k| key("type", &format!("test.k{k}"))));
        let day = |d: u8| JAN_2026_NS + i64::from(d) * DAY_NS;
        let ingest = q
            .ingest
            .as_ref()
            .filter(|_| !self.specs.is_empty())
            .map(|(a, b)| {
                (
                    self.ingested_ns[a.index(self.specs.len())],
                    self.ingested_ns[b.index(self.specs.len())] + 1,
                )
            });
        Scan {
            keys,
            event_from: q.days.map(|(a, _)| day(a)),
            event_to: q.days.map(|(_, b)| day(b)),
            ingest_from: ingest.map(|i| i.0),
            ingest_to: ingest.map(|i| i.1),
            after: q.after.map(u64::from),
            below: q.below.map(u64::from),
            limit: q.limit,
            // Both ways of reading give the same records.
            skip_leaf_check: q.limit.is_multiple_of(2),
        }
    }

    /// Every seq the scan matches, ignoring its limit.
    fn answer(&self, s: &Scan, q: &Query) -> Vec<u64> {
        let end = s.below.map_or(self.len(), |b| b.min(self.len()));
        (0..end)
            .filter(|&seq| {
                let spec = &self.specs[seq as usize];
                let t = spec.event_ns();
                let ingested = self.ingested_ns[seq as usize];
                q.tenant.is_none_or(|x| x == spec.tenant)
                    && q.subject.is_none_or(|x| x == spec.subject)
                    && q.kind.is_none_or(|x| x == spec.kind)
                    && s.event_from.is_none_or(|f| t >= f)
                    && s.event_to.is_none_or(|e| t < e)
                    && s.ingest_from.is_none_or(|f| ingested >= f)
                    && s.ingest_to.is_none_or(|e| ingested < e)
                    && s.after.is_none_or(|a| seq > a)
            })
            .collect()
    }
}

type TestStore = Store<Unique>;

fn open(dir: &Path, config: &Config) -> TestStore {
    Store::open(
        &LogLayout::new(dir),
        config.clone(),
        Arc::new(TestKeys),
        Unique,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// The event a stored record was made from, with the server fields taken off again.
fn event_of(record: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(record).unwrap();
    let m = v.as_object_mut().unwrap();
    for f in ["seq", "record_id", "ingested_at"] {
        assert!(m.remove(f).is_some(), "the record has {f}");
    }
    v
}

fn append(store: &TestStore, model: &mut Model, picks: &[Pick]) {
    let first_new = model.len();
    // Picks are resolved one at a time, so that one may send again what came earlier in the
    // same batch.
    let mut specs = Vec::new();
    for pick in picks {
        let spec = match pick {
            Pick::New(s) => s.clone(),
            Pick::Again(_) if model.sent.is_empty() => continue,
            Pick::Again(i) => model.sent[i.index(model.sent.len())].clone(),
        };
        model.sent.push(spec.clone());
        specs.push(spec);
    }
    if specs.is_empty() {
        return;
    }
    let want: Vec<Want> = specs.iter().map(|s| model.decide(s)).collect();
    let outcomes = store
        .append(specs.iter().map(|s| entry(&s.text())).collect())
        .unwrap();
    let got: Vec<Want> = outcomes
        .iter()
        .zip(&specs)
        .map(|(o, s)| match o {
            Outcome::Appended { seq, id } => {
                assert_eq!(*id, s.id(), "the id of {s:?}");
                Want::Appended(*seq)
            }
            Outcome::Duplicate { seq, id } => {
                assert_eq!(*id, s.id(), "the id of {s:?}");
                Want::Duplicate(*seq)
            }
            Outcome::Refused { refusal, entry } => {
                assert_eq!(entry.id(), s.id(), "a refusal hands the entry back");
                Want::Refused(*refusal)
            }
        })
        .collect();
    assert_eq!(got, want, "outcomes of {specs:?}");
    assert_eq!(store.len(), model.len());
    for seq in first_new..model.len() {
        let bytes = store.get(seq).unwrap().expect("an appended record");
        let spec = &model.specs[seq as usize];
        let (s, rid, ingested) =
            read_stored(&bytes, |r| (r.seq, r.record_id.0, r.ingested_ns)).unwrap();
        assert_eq!((s, rid), (seq, spec.id()), "record {seq}");
        let sent: Value = serde_json::from_str(&spec.text()).unwrap();
        assert_eq!(event_of(&bytes), sent, "record {seq} holds its event");
        assert!(
            model.ingested_ns.last().is_none_or(|&t| t <= ingested),
            "ingest time never decreases"
        );
        model.bytes.push(bytes);
        model.ingested_ns.push(ingested);
    }
}

fn check_scan(store: &TestStore, model: &Model, q: &Query) {
    let s = model.scan(q);
    let all = model.answer(&s, q);
    let page = store.scan(&s).unwrap();
    let want: Vec<u64> = all.iter().copied().take(s.limit).collect();
    let got: Vec<u64> = page.records.iter().map(|r| r.0).collect();
    assert_eq!(got, want, "first page of {q:?}");
    for (seq, bytes) in &page.records {
        assert_eq!(
            bytes, &model.bytes[*seq as usize],
            "record {seq} as scanned"
        );
    }
    let more = all.len() > s.limit;
    assert_eq!(
        page.next_after,
        more.then(|| *want.last().unwrap()),
        "a cursor exactly when more match: {q:?}"
    );
    // Page by page to the end, the cursor handed back each time.
    let mut seen = got;
    let mut cursor = page.next_after;
    while let Some(after) = cursor {
        let next = store
            .scan(&Scan {
                after: Some(after),
                ..s.clone()
            })
            .unwrap();
        assert!(!next.records.is_empty(), "a cursor promised more: {q:?}");
        seen.extend(next.records.iter().map(|r| r.0));
        cursor = next.next_after;
    }
    assert_eq!(seen, all, "every page of {q:?}");
}

fn check_proofs(store: &TestStore, model: &Model, a: &Index, b: &Index, c: &Index) {
    let len = model.len();
    if len == 0 {
        assert_eq!(store.root(0).unwrap(), empty_root());
        return;
    }
    let size = 1 + a.index(len as usize) as u64;
    let index = b.index(size as usize) as u64;
    let old = 1 + c.index(size as usize) as u64;
    sealog_testkit::tree::check_proofs(
        &model.bytes,
        (size, index, old),
        |s| store.root(s),
        |i, s| store.inclusion_proof(i, s),
        |o, s| store.consistency_proof(o, s),
    );
}

fn check_checkpoint(store: &TestStore, model: &Model) {
    let cp = store.checkpoint().unwrap();
    assert_eq!(cp.size, model.len(), "a checkpoint covers the log");
    assert_eq!(cp.root, model.root(cp.size), "and its root is the model's");
    let verifier = Verifier::parse(&store.verifier_key()).unwrap();
    assert_eq!(open_checkpoint(&cp.note, &verifier).unwrap(), cp);
}

/// Everything the model knows, read back one by one.
fn check_all(store: &TestStore, model: &Model) {
    assert_eq!(store.len(), model.len());
    for (seq, bytes) in model.bytes.iter().enumerate() {
        assert_eq!(
            store.get(seq as u64).unwrap().as_ref(),
            Some(bytes),
            "record {seq}"
        );
    }
    assert_eq!(store.get(model.len()).unwrap(), None);
    for spec in &model.sent {
        assert_eq!(
            store.seq_of(&spec.id()).unwrap(),
            model.seq_of.get(spec).copied()
        );
    }
}

fn run(config: &Config, ops: &[Op]) {
    let mut dir = sealog_testkit::tempdir();
    let mut store = Some(open(dir.path(), config));
    let mut model = Model::default();
    for op in ops {
        let s = store.as_ref().unwrap();
        match op {
            Op::Append(picks) => append(s, &mut model, picks),
            Op::Scan(q) => check_scan(s, &model, q),
            Op::Get(seq) => {
                let seq = u64::from(*seq) % (model.len() + 3);
                let got = s.get(seq).unwrap();
                assert_eq!(got.as_ref(), model.bytes.get(seq as usize), "get {seq}");
            }
            Op::Lookup(i) => {
                // An event sent in this case, or one never sent.
                let spec = match model.sent.len() {
                    0 => spec_never_sent(),
                    n => model.sent[i.index(n)].clone(),
                };
                let want = model.seq_of.get(&spec).copied();
                assert_eq!(s.seq_of(&spec.id()).unwrap(), want, "seq_of {spec:?}");
                assert_eq!(s.seq_of(&spec_never_sent().id()).unwrap(), None);
            }
            Op::Prove(a, b, c) => check_proofs(s, &model, a, b, c),
            Op::Checkpoint => check_checkpoint(s, &model),
            Op::Reopen => {
                store.take().unwrap().close().unwrap();
                let s = open(dir.path(), config);
                assert_eq!(
                    s.recovery().replayed,
                    0,
                    "a clean close leaves nothing to replay"
                );
                assert_eq!(s.recovery().cut, None);
                check_all(&s, &model);
                store = Some(s);
            }
            Op::Crash => {
                // The directory as a crash would leave it: every acknowledged frame, the
                // index as last flushed.
                let crashed = sealog_testkit::tempdir();
                sealog_testkit::files::copy_dir(dir.path(), crashed.path());
                store.take().unwrap().close().unwrap();
                dir = crashed;
                let s = open(dir.path(), config);
                assert_eq!(s.recovery().cut, None, "no append was in flight");
                check_all(&s, &model);
                store = Some(s);
            }
        }
    }
    let s = store.take().unwrap();
    check_all(&s, &model);
    s.close().unwrap();
    let report = sealog_store::verify::verify(
        &LogLayout::new(dir.path()),
        &sealog_store::verify::Options {
            indexer: Some(&TestKeys),
            full: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|f| panic!("verify: {f}"));
    assert_eq!(report.records, model.len());
    assert_eq!(report.root, model.root(model.len()));
}

/// An event the generator never makes.
fn spec_never_sent() -> Spec {
    Spec {
        n: 200,
        tenant: 0,
        subject: 0,
        kind: 0,
        day: 0,
        unique: None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_store_agrees_with_a_model_under_any_sequence_of_operations(
        config in store_config(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(&config, &ops);
    }
}
