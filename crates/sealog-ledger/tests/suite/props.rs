//! The ledger against a model, under random sequences of operations: batches mixing new
//! events, events sent again (appended, quarantined or rejected before, in an earlier batch
//! or earlier in the same one), corrections that name the head of their chain, a superseded
//! record, a record of another chain or a record that does not exist (any of them possibly
//! appended earlier in the same batch), and events with a broken envelope; clean reopens; queries by tenant,
//! subject and event time through both views, as of a size, page by page; reads by seq and
//! by record id; roots, inclusion and consistency proofs and checkpoints; and `verify`.
//!
//! The model is a `Vec` of records and `HashMap`s from event to seq and from target to the
//! record superseding it, with the ledger's rules written out plainly: a duplicate is
//! answered with the first seq; a correction must name an existing record of its own chain
//! (tenant, scope = tenant, subject) that nothing supersedes yet, or it is quarantined with
//! the reason; the same refusal again is the same quarantine record.
//!
//! Cases come from a fixed seed; `PROPTEST_RNG_SEED=<n>` explores others and
//! `PROPTEST_CASES=<n>` runs more. A failing case is shrunk, printed and saved in
//! `tests/proptest-regressions/props.txt`, which every later run replays first.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use sealog_ledger::{
    Author, Durability, IngestResult, Ledger, LedgerConfig, Packs, Query, StoreConfig, Undeclared,
    VerifyOptions, View,
};
use sealog_merkle::Hash;
use sealog_merkle::note::{self, Verifier};
use sealog_model::RecordId;
use serde_json::Value;

const SEED: u64 = 0x5EA1_0720;
/// 2026-01-01T00:00:00Z in nanoseconds.
const JAN_2026_NS: i64 = 1_767_225_600_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;
/// A record id no record has.
const MISSING: RecordId = RecordId([7; 32]);

fn config() -> ProptestConfig {
    sealog_testkit::props::config(96, SEED)
}

/// An event, by the few things that vary; equal events have one record id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Ev {
    n: u8,
    tenant: u8,
    subject: u8,
    day: u8,
    supersedes: Option<RecordId>,
}

impl Ev {
    fn text(&self) -> String {
        let link = self
            .supersedes
            .map_or(String::new(), |r| format!(r#","supersedes":"{r}""#));
        format!(
            r#"{{"id":"e{}","source":"props","type":"test.chain","time":"2026-01-{:02}T00:00:00Z","tenant":"t{}","subject":"s{}","data":{{"n":{}}}{link}}}"#,
            self.n,
            self.day + 1,
            self.tenant,
            self.subject,
            self.n
        )
    }
}

/// Something sent: an event, or one whose envelope lacks its `source` (rejected, nothing
/// stored).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sent {
    Event(Ev),
    Broken(u8),
}

impl Sent {
    fn text(&self) -> String {
        match self {
            Sent::Event(e) => e.text(),
            Sent::Broken(n) => format!(
                r#"{{"id":"b{n}","type":"test.chain","time":"2026-01-01T00:00:00Z","data":{{}}}}"#
            ),
        }
    }
}

/// What a correction names, resolved when it is sent.
#[derive(Debug, Clone)]
enum Target {
    /// A record of the event's own chain: its head, or one superseded already.
    Chain(Index),
    /// A record of the log, picked among all of them (mostly of other chains).
    Record(Index),
    Missing,
}

#[derive(Debug, Clone)]
enum Pick {
    New {
        n: u8,
        tenant: u8,
        subject: u8,
        day: u8,
        target: Option<Target>,
    },
    /// Something sent before in this case, again.
    Again(Index),
    Broken(u8),
}

#[derive(Debug, Clone)]
struct Question {
    tenant: Option<u8>,
    subject: Option<u8>,
    days: Option<(u8, u8)>,
    as_of: Option<Index>,
    current: bool,
    limit: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Ingest(Vec<Pick>),
    Query(Question),
    Get(u8),
    Lookup(Index),
    Prove(Index, Index, Index),
    Checkpoint,
    Reopen,
}

fn pick() -> impl Strategy<Value = Pick> {
    let target = prop::option::weighted(
        0.4,
        prop_oneof![
            4 => any::<Index>().prop_map(Target::Chain),
            2 => any::<Index>().prop_map(Target::Record),
            1 => Just(Target::Missing),
        ],
    );
    prop_oneof![
        6 => (0u8..10, 0u8..2, 0u8..3, 0u8..4, target).prop_map(
            |(n, tenant, subject, day, target)| Pick::New { n, tenant, subject, day, target }
        ),
        2 => any::<Index>().prop_map(Pick::Again),
        1 => (0u8..3).prop_map(Pick::Broken),
    ]
}

fn question() -> impl Strategy<Value = Question> {
    (
        prop::option::weighted(0.5, 0u8..3),
        prop::option::weighted(0.5, 0u8..4),
        prop::option::weighted(0.25, (0u8..5, 0u8..5)),
        prop::option::weighted(0.25, any::<Index>()),
        any::<bool>(),
        prop_oneof![Just(1000usize), 1usize..4],
    )
        .prop_map(|(tenant, subject, days, as_of, current, limit)| Question {
            tenant,
            subject,
            days,
            as_of,
            current,
            limit,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(pick(), 1..8).prop_map(Op::Ingest),
        4 => question().prop_map(Op::Query),
        1 => any::<u8>().prop_map(Op::Get),
        1 => any::<Index>().prop_map(Op::Lookup),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Op::Prove(a, b, c)),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ]
}

fn ledger_config(memtable: u64) -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig {
            durability: Durability::Os,
            memtable_records_max: memtable,
            segment_bytes_max: 2048,
            ..StoreConfig::default()
        },
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    }
}

fn open(dir: &Path, memtable: u64) -> Ledger {
    Ledger::open(dir, ledger_config(memtable))
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// What the ledger should answer for one event.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Appended(u64),
    Duplicate(u64),
    /// The reason code, and what sets this refusal apart from the event's other ones.
    Quarantined(&'static str, String),
    Rejected,
}

#[derive(Default)]
struct Model {
    events: Vec<Ev>,
    seq_of: HashMap<Ev, u64>,
    by_id: HashMap<RecordId, u64>,
    ids: Vec<RecordId>,
    /// Target seq → the seq of the record superseding it.
    superseded_by: HashMap<u64, u64>,
    /// Each distinct refusal (event and reason) and its quarantine record's id.
    quarantined: HashMap<(Ev, String), RecordId>,
    /// Each record as the ledger handed it back after its append: it never changes.
    bytes: Vec<Vec<u8>>,
    sent: Vec<Sent>,
}

impl Model {
    fn len(&self) -> u64 {
        self.events.len() as u64
    }

    fn resolve(&self, pick: &Pick) -> Option<Sent> {
        Some(match pick {
            Pick::New {
                n,
                tenant,
                subject,
                day,
                target,
            } => Sent::Event(Ev {
                n: *n,
                tenant: *tenant,
                subject: *subject,
                day: *day,
                supersedes: match target {
                    None => None,
                    Some(Target::Missing) => Some(MISSING),
                    Some(Target::Record(i)) if !self.ids.is_empty() => {
                        Some(self.ids[i.index(self.ids.len())])
                    }
                    Some(Target::Record(_)) => None,
                    Some(Target::Chain(i)) => {
                        let chain: Vec<RecordId> = (0..self.events.len())
                            .filter(|&s| {
                                let e = &self.events[s];
                                (e.tenant, e.subject) == (*tenant, *subject)
                            })
                            .map(|s| self.ids[s])
                            .collect();
                        (!chain.is_empty()).then(|| chain[i.index(chain.len())])
                    }
                },
            }),
            Pick::Again(i) if !self.sent.is_empty() => self.sent[i.index(self.sent.len())].clone(),
            Pick::Again(_) => return None,
            Pick::Broken(n) => Sent::Broken(*n),
        })
    }

    /// The rules, one event at a time: seqs are taken as events are admitted, so a group
    /// needs no rules of its own.
    fn decide(&mut self, sent: &Sent) -> Want {
        let Sent::Event(ev) = sent else {
            return Want::Rejected;
        };
        if let Some(&seq) = self.seq_of.get(ev) {
            return Want::Duplicate(seq);
        }
        if let Some(target) = ev.supersedes {
            let Some(&t) = self.by_id.get(&target) else {
                return Want::Quarantined("INVALID_SUPERSEDES_LINK", "missing".into());
            };
            let of = &self.events[t as usize];
            if (of.tenant, of.subject) != (ev.tenant, ev.subject) {
                return Want::Quarantined("INVALID_SUPERSEDES_LINK", "another chain".into());
            }
            if let Some(&by) = self.superseded_by.get(&t) {
                return Want::Quarantined("STALE_SUPERSEDES_LINK", format!("by {by}"));
            }
            self.superseded_by.insert(t, self.len());
        }
        let seq = self.len();
        let text: Value = serde_json::from_str(&ev.text()).expect("an event is JSON");
        let id = RecordId(sealog_testkit::events::oracle_record_id(&text));
        self.events.push(ev.clone());
        self.seq_of.insert(ev.clone(), seq);
        self.ids.push(id);
        self.by_id.insert(id, seq);
        Want::Appended(seq)
    }

    /// RFC 9162's tree hash of the first `size` records, by its recursive definition.
    fn root(&self, size: u64) -> Hash {
        sealog_testkit::tree::root_of(&self.bytes[..size as usize])
    }

    fn query(&self, q: &Question) -> Query {
        let mut equals = Vec::new();
        equals.extend(q.tenant.map(|t| ("tenant".to_string(), format!("t{t}"))));
        equals.extend(q.subject.map(|s| ("subject".to_string(), format!("s{s}"))));
        let day = |d: u8| JAN_2026_NS + i64::from(d) * DAY_NS;
        Query {
            equals,
            event_from: q.days.map(|(a, _)| day(a)),
            event_to: q.days.map(|(_, b)| day(b)),
            as_of_size: q
                .as_of
                .as_ref()
                .map(|i| i.index(self.events.len() + 2) as u64),
            view: if q.current {
                View::Current
            } else {
                View::History
            },
            limit: q.limit,
            ..Query::default()
        }
    }

    /// Every seq the question matches through its view, ignoring its limit.
    fn answer(&self, q: &Question, query: &Query) -> Vec<u64> {
        let end = query.as_of_size.unwrap_or(self.len());
        (0..end)
            .filter(|&seq| {
                let ev = &self.events[seq as usize];
                let t = JAN_2026_NS + i64::from(ev.day) * DAY_NS;
                q.tenant.is_none_or(|x| x == ev.tenant)
                    && q.subject.is_none_or(|x| x == ev.subject)
                    && query.event_from.is_none_or(|f| t >= f)
                    && query.event_to.is_none_or(|e| t < e)
                    && (!q.current || self.superseded_by.get(&seq).is_none_or(|&by| by >= end))
            })
            .collect()
    }
}

fn ingest(ledger: &Ledger, model: &mut Model, picks: &[Pick]) {
    let first_new = model.len();
    // Picks are resolved and decided one at a time, so that an event sent again, or a
    // correction, may name what came earlier in the same batch.
    let mut sent = Vec::new();
    let mut want = Vec::new();
    for pick in picks {
        let Some(s) = model.resolve(pick) else {
            continue;
        };
        model.sent.push(s.clone());
        want.push(model.decide(&s));
        sent.push(s);
    }
    if sent.is_empty() {
        return;
    }
    let texts: Vec<String> = sent.iter().map(Sent::text).collect();
    let raws: Vec<_> = texts.iter().map(|t| Ok(t.as_bytes())).collect();
    let results = ledger.ingest(&raws, &Author::ANYONE).unwrap();
    assert_eq!(results.len(), sent.len(), "one result per event");
    for ((result, want), s) in results.iter().zip(&want).zip(&sent) {
        match (result, want) {
            (IngestResult::Appended { seq, record_id }, Want::Appended(w)) => {
                assert_eq!(seq, w, "{s:?}");
                assert_eq!(*record_id, model.ids[*seq as usize], "{s:?}");
            }
            (IngestResult::Duplicate { seq, record_id }, Want::Duplicate(w)) => {
                assert_eq!(seq, w, "{s:?}");
                assert_eq!(model.ids[*seq as usize], *record_id, "{s:?}");
            }
            (
                IngestResult::Quarantined {
                    quarantine_id,
                    finding,
                },
                Want::Quarantined(code, detail),
            ) => {
                assert_eq!(finding.reason_code, *code, "{s:?}");
                let Sent::Event(ev) = s else {
                    panic!("only events are quarantined: {s:?}")
                };
                let known = model
                    .quarantined
                    .entry((ev.clone(), detail.clone()))
                    .or_insert(*quarantine_id);
                assert_eq!(
                    known, quarantine_id,
                    "the same refusal is one record: {s:?}"
                );
            }
            (IngestResult::Rejected(_), Want::Rejected) => {}
            (got, want) => panic!("{s:?}: got {}, want {want:?}", got.to_json()),
        }
    }
    let distinct: HashSet<_> = model.quarantined.values().collect();
    assert_eq!(
        distinct.len(),
        model.quarantined.len(),
        "different refusals are different records"
    );
    assert_eq!(ledger.quarantine_len(), model.quarantined.len() as u64);
    assert_eq!(ledger.len(), model.len());
    for seq in first_new..model.len() {
        let bytes = ledger.get(seq).unwrap().expect("an appended record");
        let mut record: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record["seq"], seq, "record {seq}");
        assert_eq!(
            record["record_id"],
            model.ids[seq as usize].to_string(),
            "record {seq}"
        );
        let m = record.as_object_mut().unwrap();
        for f in ["seq", "record_id", "ingested_at"] {
            assert!(m.remove(f).is_some(), "record {seq} has {f}");
        }
        let ev: Value = serde_json::from_str(&model.events[seq as usize].text()).unwrap();
        assert_eq!(record, ev, "record {seq} holds its event");
        model.bytes.push(bytes);
    }
}

fn check_query(ledger: &Ledger, model: &Model, q: &Question) {
    let query = model.query(q);
    if query.as_of_size.is_some_and(|s| s > model.len()) {
        let err = ledger.query(&query).expect_err("a size the log never had");
        assert!(err.to_string().contains("past the end of the log"), "{err}");
        return;
    }
    let all = model.answer(q, &query);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ledger
            .query(&Query {
                after,
                ..query.clone()
            })
            .unwrap();
        assert!(page.records.len() <= q.limit, "{q:?}");
        for (seq, bytes) in &page.records {
            assert_eq!(
                bytes, &model.bytes[*seq as usize],
                "record {seq} as queried"
            );
            seen.push(*seq);
        }
        match page.next_after {
            Some(a) => {
                assert_eq!(
                    page.records.len(),
                    q.limit,
                    "only a full page promises more"
                );
                assert_eq!(Some(a), seen.last().copied());
                after = Some(a);
            }
            None => break,
        }
    }
    assert_eq!(seen, all, "{q:?} as {query:?}");
}

fn check_proofs(ledger: &Ledger, model: &Model, a: &Index, b: &Index, c: &Index) {
    let len = model.len();
    if len == 0 {
        return;
    }
    let size = 1 + a.index(len as usize) as u64;
    let index = b.index(size as usize) as u64;
    let old = 1 + c.index(size as usize) as u64;
    sealog_testkit::tree::check_proofs(
        &model.bytes,
        (size, index, old),
        |s| ledger.root(s),
        |i, s| ledger.inclusion_proof(i, s),
        |o, s| ledger.consistency_proof(o, s),
    );
}

fn check_all(ledger: &Ledger, model: &Model) {
    assert_eq!(ledger.len(), model.len());
    assert_eq!(ledger.quarantine_len(), model.quarantined.len() as u64);
    for (seq, bytes) in model.bytes.iter().enumerate() {
        let got = ledger.get(seq as u64).unwrap();
        assert_eq!(got.as_ref(), Some(bytes), "record {seq}");
    }
    for (seq, id) in model.ids.iter().enumerate() {
        assert_eq!(ledger.seq_of(id).unwrap(), Some(seq as u64));
    }
}

fn run(memtable: u64, ops: &[Op]) {
    let dir = sealog_testkit::tempdir();
    let mut ledger = Some(open(dir.path(), memtable));
    let mut model = Model::default();
    for op in ops {
        let l = ledger.as_ref().unwrap();
        match op {
            Op::Ingest(picks) => ingest(l, &mut model, picks),
            Op::Query(q) => check_query(l, &model, q),
            Op::Get(seq) => {
                let seq = u64::from(*seq) % (model.len() + 3);
                assert_eq!(l.get(seq).unwrap().as_ref(), model.bytes.get(seq as usize));
            }
            Op::Lookup(i) => {
                if !model.ids.is_empty() {
                    let seq = i.index(model.ids.len());
                    assert_eq!(l.seq_of(&model.ids[seq]).unwrap(), Some(seq as u64));
                }
                assert_eq!(l.seq_of(&MISSING).unwrap(), None);
            }
            Op::Prove(a, b, c) => check_proofs(l, &model, a, b, c),
            Op::Checkpoint => {
                let cp = l.checkpoint().unwrap();
                assert_eq!((cp.size, cp.root), (model.len(), model.root(model.len())));
                let verifier = Verifier::parse(&l.verifier_key()).unwrap();
                note::open(&cp.note, &[&verifier]).expect("signed by the log's key");
            }
            Op::Reopen => {
                ledger.take().unwrap().close().unwrap();
                let l = open(dir.path(), memtable);
                check_all(&l, &model);
                ledger = Some(l);
            }
        }
    }
    let l = ledger.take().unwrap();
    check_all(&l, &model);
    l.close().unwrap();
    let packs = Packs::builtin();
    let opts = VerifyOptions {
        packs: Some(&packs),
        full: true,
        ..VerifyOptions::default()
    };
    let (canonical, quarantine) =
        Ledger::verify(dir.path(), &opts).unwrap_or_else(|f| panic!("verify: {f}"));
    assert_eq!(canonical.records, model.len());
    assert_eq!(canonical.root, model.root(model.len()));
    assert_eq!(
        quarantine.map_or(0, |q| q.records),
        model.quarantined.len() as u64
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_ledger_agrees_with_a_model_under_any_sequence_of_operations(
        memtable in prop_oneof![Just(3u64), Just(64)],
        ops in prop::collection::vec(op(), 1..32),
    ) {
        run(memtable, &ops);
    }
}
