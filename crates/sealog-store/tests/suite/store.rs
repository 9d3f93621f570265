//! The store through its public API and its files: round trips, idempotency under
//! concurrency, every scan shape against a naive model, segment rolling, crash recovery
//! (torn tails, torn segment headers), damage that must be refused, and the process lock.
//!
//! The store knows nothing of events, so these tests bring their own indexer (keys on the
//! envelope's attributes, the way a caller would find records) and the conformance suite's
//! admission rule (`Unique`: dedupe by record id).
//!
//! A crash is simulated by copying a live data directory while no append is in flight: the
//! copy holds exactly what the disk held at that moment (acknowledged frames, the index as
//! last flushed), and a torn write is then added by hand to the copy's last segment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use sealog_model::json::Json;
use sealog_model::record::{Stored, read_stored};
use sealog_model::{Canonical, Envelope, LogLayout};
use sealog_store::conformance::{Unique, key};
use sealog_store::{
    Config, Cut, Durability, Entry, Id, Indexer, Key, LIMIT_MAX, LogRead, LogWrite, Outcome, Scan,
    Store, StoreError,
};
use sealog_testkit::files::{
    NOBODY, append_bytes, chown_tree, copy_dir, current_exe_for_another_user, flip_byte,
    opens_for_writing, settled_index_end, truncate,
};
use sealog_testkit::format::{FRAME_HEADER_BYTES, HEADER_BYTES, frames};
use sealog_testkit::{Rng, wait_for};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z in Unix seconds.
const JAN_2026: i64 = 1_767_225_600;

type TestStore = Store<Unique>;
type TestOutcome = Outcome<Option<Key>, u64>;

// ---------------------------------------------------------------------------------------
// Events, entries and keys.

/// The envelope attributes these tests find records by; the scope is the tenant, "" without.
const AXES: [&str; 7] = [
    "scope", "tenant", "subject", "type", "source", "actor", "id",
];

fn envelope_axes<'a>(env: &Envelope<'a>) -> [(&'static str, Option<&'a str>); 7] {
    [
        ("scope", Some(env.tenant.unwrap_or(""))),
        ("tenant", env.tenant),
        ("subject", env.subject),
        ("type", Some(env.event_type)),
        ("source", Some(env.source)),
        ("actor", env.actor_id),
        ("id", Some(env.id)),
    ]
}

fn envelope_keys(env: &Envelope<'_>) -> Vec<Key> {
    let mut keys: Vec<Key> = envelope_axes(env)
        .into_iter()
        .filter_map(|(a, v)| Some(key(a, v?)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Keys a stored record again exactly as [`entry_text`] keyed its event.
struct EnvelopeKeys;

impl Indexer for EnvelopeKeys {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        envelope_keys(stored.envelope)
    }

    fn fingerprint(&self) -> String {
        "store-tests-envelope-keys-1".into()
    }
}

fn entry_text(text: &str) -> Entry<Option<Key>> {
    let tree = Json::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
    let env = Envelope::parse(&tree).unwrap_or_else(|e| panic!("test event {text}: {e}"));
    Entry {
        event: Canonical::of_event(&tree).unwrap(),
        keys: envelope_keys(&env),
        event_ns: env.time_nanos,
        claim: None,
        row: None,
    }
}

fn entry(v: &Value) -> Entry<Option<Key>> {
    entry_text(&v.to_string())
}

fn simple(id: &str) -> Value {
    json!({"id": id, "source": "tests", "type": "test.simple", "time": "2026-01-03T12:34:56.123Z",
           "tenant": "acme", "data": {"n": 1, "text": "héllo ✓"}})
}

fn open_with(dir: &Path, config: Config, indexer: Arc<dyn Indexer>) -> TestStore {
    Store::open(&LogLayout::new(dir), config, indexer, Unique)
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn open(dir: &Path, config: Config) -> TestStore {
    open_with(dir, config, Arc::new(EnvelopeKeys))
}

/// Closes cleanly: commits, makes the derived files durable and signs a final checkpoint.
fn close(store: TestStore) {
    store.close().unwrap();
}

fn open_err(dir: &Path) -> String {
    match Store::open(&LogLayout::new(dir), fast(), Arc::new(EnvelopeKeys), Unique) {
        Ok(s) => panic!("open succeeded with {} records", s.len()),
        Err(e) => e.to_string(),
    }
}

fn fast() -> Config {
    Config {
        durability: Durability::Os,
        ..Config::default()
    }
}

fn append(store: &TestStore, events: &[Value]) -> Vec<TestOutcome> {
    store.append(events.iter().map(entry).collect()).unwrap()
}

/// What an outcome says, comparable: ("appended" | "duplicate", seq, id).
fn said(outcomes: &[TestOutcome]) -> Vec<(&'static str, u64, Id)> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Appended { seq, id } => ("appended", *seq, *id),
            Outcome::Duplicate { seq, id } => ("duplicate", *seq, *id),
            Outcome::Refused { refusal, .. } => panic!("refused with {refusal}"),
        })
        .collect()
}

fn appended(outcomes: &[TestOutcome]) -> Vec<u64> {
    said(outcomes)
        .into_iter()
        .map(|(what, seq, _)| {
            assert_eq!(what, "appended", "seq {seq}");
            seq
        })
        .collect()
}

fn record(store: &TestStore, seq: u64) -> Value {
    let bytes = store
        .get(seq)
        .unwrap()
        .unwrap_or_else(|| panic!("record {seq} is missing"));
    serde_json::from_slice(&bytes).unwrap()
}

/// The event a stored record was made from, with the server fields taken off again.
fn event_of(record: &Value) -> Value {
    let mut ev = record.as_object().unwrap().clone();
    for f in ["seq", "record_id", "ingested_at"] {
        assert!(ev.remove(f).is_some(), "record lacks {f}: {record}");
    }
    Value::Object(ev)
}

fn ingested_ns(store: &TestStore, seq: u64) -> i64 {
    read_stored(&store.get(seq).unwrap().unwrap(), |s| s.ingested_ns).unwrap()
}

/// A scan of every record carrying all of `equals`.
fn scan(equals: &[(&str, &str)]) -> Scan {
    Scan {
        keys: equals.iter().map(|(a, v)| key(a, v)).collect(),
        limit: LIMIT_MAX,
        ..Scan::default()
    }
}

fn seqs(store: &TestStore, s: &Scan) -> Vec<u64> {
    store.scan(s).unwrap().records.iter().map(|r| r.0).collect()
}

/// Runs `s` page by page with `limit` until the store says there is no more.
fn paged(store: &TestStore, s: &Scan, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut s = Scan { limit, ..s.clone() };
    loop {
        let page = store.scan(&s).unwrap();
        assert!(page.records.len() <= limit);
        out.extend(page.records.iter().map(|r| r.0));
        match page.next_after {
            Some(after) => {
                assert_eq!(page.records.len(), limit, "only a full page promises more");
                assert_eq!(
                    Some(after),
                    page.records.last().map(|r| r.0),
                    "the cursor is the last seq"
                );
                s.after = Some(after);
            }
            None => return out,
        }
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    sealog_testkit::format::segments(&dir.join("log"))
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// The byte spans of a segment's frames from `from`, which must run to its very end.
fn whole_frames(bytes: &[u8], from: u64) -> Vec<(u64, u64)> {
    let spans: Vec<(u64, u64)> = frames(bytes, from as usize)
        .into_iter()
        .map(|r| (r.start, r.end))
        .collect();
    let end = spans.last().map_or(from, |s| s.1);
    assert_eq!(end, bytes.len() as u64, "bytes after the last whole frame");
    spans
}

// ---------------------------------------------------------------------------------------
// Round trips, duplicates, concurrency.

#[test]
fn append_get_seq_of_and_scan_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Config::default());
    assert!(store.is_empty());
    assert_eq!(store.recovery().records, 0);
    assert_eq!(store.recovery().cut, None);
    assert!(
        store.append(Vec::new()).unwrap().is_empty(),
        "an empty batch is a no-op"
    );

    let events = [simple("a"), simple("b"), simple("c")];
    let outcomes = append(&store, &events);
    assert_eq!(appended(&outcomes), [0, 1, 2]);
    assert_eq!(store.len(), 3);
    for (seq, (ev, (_, _, id))) in events.iter().zip(said(&outcomes)).enumerate() {
        let seq = seq as u64;
        let rid = entry(ev).event.record_id;
        assert_eq!(id, rid.0);
        assert_eq!(store.seq_of(&id).unwrap(), Some(seq));
        let rec = record(&store, seq);
        assert_eq!(rec["seq"], json!(seq));
        assert_eq!(rec["record_id"], json!(rid.to_string()));
        assert_eq!(
            event_of(&rec),
            *ev,
            "the record is the event plus server fields"
        );
        // The stored text is canonical, so it hashes back to its own id.
        assert_eq!(entry(&event_of(&rec)).id(), id);
        let bytes = store.get(seq).unwrap().unwrap();
        assert_eq!(read_stored(&bytes, |s| s.seq), Ok(seq));
    }
    assert_eq!(store.get(3).unwrap(), None);
    assert_eq!(store.get(u64::MAX).unwrap(), None);
    assert_eq!(store.seq_of(&[7; 32]).unwrap(), None);

    assert_eq!(seqs(&store, &scan(&[("id", "b")])), [1]);
    assert_eq!(seqs(&store, &scan(&[("tenant", "acme")])), [0, 1, 2]);
    assert_eq!(
        seqs(&store, &scan(&[("tenant", "other")])),
        Vec::<u64>::new()
    );
    let page = store.scan(&scan(&[("id", "c")])).unwrap();
    assert_eq!(page.records, vec![(2, store.get(2).unwrap().unwrap())]);
    assert_eq!(page.next_after, None);
}

#[test]
fn ingest_time_never_decreases_along_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast());
    for i in 0..50 {
        append(&store, &[simple(&format!("e{i}"))]);
    }
    let times: Vec<i64> = (0..50).map(|s| ingested_ns(&store, s)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(store.size_at(times[49]).unwrap(), 50);
    assert_eq!(store.size_at(times[0] - 1).unwrap(), 0);
}

#[test]
fn scans_refuse_limits_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast());
    for limit in [0, LIMIT_MAX + 1] {
        let err = store
            .scan(&Scan {
                limit,
                ..Scan::default()
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidArgument(_)),
            "limit {limit}: {err:?}"
        );
    }
}

#[test]
fn duplicates_answer_with_the_original_seq_in_a_batch_across_batches_and_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = simple("a");
    let b = simple("b");
    // Same content, other member order (top level and nested), whitespace, escapes and
    // number spelling: the same record. It stays text up to the parse that keeps members as
    // sent; a `Value` would have sorted them again.
    let a_again = format!(
        "{{ \"type\":\"test.simple\", \"id\":\"a\",\n \"data\": {{\"text\":\"h\\u00e9llo ✓\", \"n\":1.0}}, \
         \"time\":\"{}\", \"source\":\"tests\", \"tenant\":\"acme\" }}",
        a["time"].as_str().unwrap()
    );
    let mut spelled = a.clone();
    spelled["data"]["n"] = json!(1.0);
    assert_eq!(serde_json::from_str::<Value>(&a_again).unwrap(), spelled);
    assert_eq!(
        sealog_testkit::shuffle::unsorted_objects(&a_again),
        ["", "/data"],
        "the text presents other member orders than a `Value` would"
    );
    assert!(sealog_testkit::shuffle::unsorted_objects(&a.to_string()).is_empty());
    let rid_a = entry(&a).id();
    let rid_b = entry(&b).id();
    assert_eq!(entry_text(&a_again).id(), rid_a);
    {
        let store = open(dir.path(), Config::default());
        let out = store
            .append(vec![entry(&a), entry_text(&a_again), entry(&b)])
            .unwrap();
        assert_eq!(
            said(&out),
            [
                ("appended", 0, rid_a),
                ("duplicate", 0, rid_a),
                ("appended", 1, rid_b)
            ]
        );
        let out = append(&store, &[b.clone(), a.clone()]);
        assert_eq!(
            said(&out),
            [("duplicate", 1, rid_b), ("duplicate", 0, rid_a)]
        );
        assert_eq!(store.len(), 2);
        close(store);
    }
    let store = open(dir.path(), Config::default());
    assert_eq!(store.len(), 2);
    let c = simple("c");
    let out = store
        .append(vec![entry_text(&a_again), entry(&c), entry(&b)])
        .unwrap();
    assert_eq!(
        said(&out),
        [
            ("duplicate", 0, rid_a),
            ("appended", 2, entry(&c).id()),
            ("duplicate", 1, rid_b)
        ]
    );
    assert_eq!(store.len(), 3);

    // Another tenant is another event: the same body there is a new record.
    let mut other = a.clone();
    other["tenant"] = json!("globex");
    assert_eq!(appended(&append(&store, &[other])), [3]);
}

#[test]
fn concurrent_appends_of_the_same_events_store_each_exactly_once() {
    const EVENTS: usize = 2000;
    const THREADS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), Config::default()));
    let events: Arc<Vec<Value>> = Arc::new(
        (0..EVENTS)
            .map(|i| {
                json!({"id": format!("c{i}"), "source": "tests", "type": "test.concurrent",
                       "time": "2026-01-03T12:34:56Z", "tenant": format!("t{}", i % 3),
                       "data": {"i": i}})
            })
            .collect(),
    );
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, events, start) = (store.clone(), events.clone(), start.clone());
            std::thread::spawn(move || {
                // Each thread its own order and batch size, so batches overlap partially.
                let mut order: Vec<usize> = (0..EVENTS).collect();
                order.rotate_left(t * EVENTS / THREADS);
                if t % 2 == 1 {
                    order.reverse();
                }
                let batch = [1, 3, 7, 16, 50, 128, 500, EVENTS][t];
                let entries: Vec<_> = order.iter().map(|&i| entry(&events[i])).collect();
                start.wait();
                let mut seen = Vec::with_capacity(EVENTS);
                for (chunk, idx) in entries.chunks(batch).zip(order.chunks(batch)) {
                    let out = store.append(chunk.to_vec()).unwrap();
                    assert_eq!(out.len(), chunk.len());
                    for ((what, seq, id), (e, &i)) in
                        said(&out).into_iter().zip(chunk.iter().zip(idx))
                    {
                        assert_eq!(id, e.id(), "outcomes come back in request order");
                        seen.push((i, what, seq));
                    }
                }
                seen
            })
        })
        .collect();
    let mut seq_of_event: HashMap<usize, u64> = HashMap::new();
    let mut appends: HashMap<usize, usize> = HashMap::new();
    for t in threads {
        for (i, what, seq) in t.join().unwrap() {
            let first = *seq_of_event.entry(i).or_insert(seq);
            assert_eq!(first, seq, "event {i} was given two seqs");
            if what == "appended" {
                *appends.entry(i).or_default() += 1;
            }
        }
    }
    assert_eq!(store.len(), EVENTS as u64);
    assert_eq!(seq_of_event.len(), EVENTS);
    assert!(
        appends.values().all(|&n| n == 1),
        "each event is appended by exactly one caller"
    );
    assert_eq!(appends.len(), EVENTS);
    let all: HashSet<u64> = seq_of_event.values().copied().collect();
    assert_eq!(all, (0..EVENTS as u64).collect(), "seqs are dense");
    for (&i, &seq) in &seq_of_event {
        let rec = record(&store, seq);
        assert_eq!(rec["id"], json!(format!("c{i}")));
        assert_eq!(store.seq_of(&entry(&events[i]).id()).unwrap(), Some(seq));
    }
}

// ---------------------------------------------------------------------------------------
// Scans against a model.

/// One generated event and what the model needs to know about it.
#[derive(Clone)]
struct Ev {
    json: Value,
    tenant: Option<String>,
    subject: Option<String>,
    event_type: String,
    source: String,
    actor: Option<String>,
    id: String,
    time_ns: i64,
}

impl Ev {
    fn axis(&self, axis: &str) -> Option<&str> {
        match axis {
            "scope" => Some(self.tenant.as_deref().unwrap_or("")),
            "tenant" => self.tenant.as_deref(),
            "subject" => self.subject.as_deref(),
            "type" => Some(&self.event_type),
            "source" => Some(&self.source),
            "actor" => self.actor.as_deref(),
            "id" => Some(&self.id),
            other => panic!("no axis {other}"),
        }
    }
}

fn gen_event(i: usize, rng: &mut Rng) -> Ev {
    let pick = |rng: &mut Rng, n: u64, absent_one_in: u64| -> Option<u64> {
        (rng.below(absent_one_in) != 0).then(|| rng.below(n))
    };
    let tenant = pick(rng, 5, 6).map(|n| format!("tenant-{n}"));
    let subject = pick(rng, 40, 5).map(|n| format!("subj-{n}"));
    let event_type = format!(
        "type.{}",
        ["created", "modified", "deleted", "viewed"][rng.below(4) as usize]
    );
    let source = format!("svc-{}", rng.below(3));
    let actor = pick(rng, 6, 4).map(|n| format!("actor-{n}"));
    let id = format!("ev-{i:05}");
    // Event times are not in seq order, some repeat, some carry nanoseconds or an offset.
    let day = rng.below(28) as i64;
    let sec_of_day = (rng.below(24) * 3600 + rng.below(4) * 900) as i64;
    let nanos = [0, 123_000_000, 123_456_789, 999_999_999][rng.below(4) as usize];
    let offset_min = [0i64, 120, -330][rng.below(3) as usize];
    let utc = JAN_2026 + day * 86_400 + sec_of_day;
    let local = utc + offset_min * 60;
    let (ld, ls) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let date = match ld - (JAN_2026 / 86_400) {
        d @ 0..=30 => format!("2026-01-{:02}", d + 1),
        d @ 31..=58 => format!("2026-02-{:02}", d - 30),
        -1 => "2025-12-31".to_string(),
        d => unreachable!("day {d}"),
    };
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}")
    };
    let zone = match offset_min {
        0 => "Z".to_string(),
        m => format!(
            "{}{:02}:{:02}",
            if m < 0 { '-' } else { '+' },
            m.abs() / 60,
            m.abs() % 60
        ),
    };
    let time = format!(
        "{date}T{:02}:{:02}:{:02}{frac}{zone}",
        ls / 3600,
        ls % 3600 / 60,
        ls % 60
    );
    let note = "x".repeat(rng.below(40) as usize);
    let mut json = json!({
        "specversion": "1.0", "id": id, "source": source, "type": event_type, "time": time,
        "data": {"i": i, "note": note},
    });
    if let Some(t) = &tenant {
        json["tenant"] = json!(t);
    }
    if let Some(s) = &subject {
        json["subject"] = json!(s);
    }
    match &actor {
        Some(a) => json["actor"] = json!({"type": "human", "id": a}),
        None if i.is_multiple_of(2) => json["actor"] = json!({"type": "system"}),
        None => {}
    }
    Ev {
        json,
        tenant,
        subject,
        event_type,
        source,
        actor,
        id,
        time_ns: utc * 1_000_000_000 + nanos,
    }
}

/// A scan as the model reads it: (axis, value) equalities and the scan's other bounds.
#[derive(Debug, Clone, Default)]
struct Shape {
    equals: Vec<(String, String)>,
    bounds: Scan,
}

impl Shape {
    fn scan(&self, limit: usize) -> Scan {
        Scan {
            keys: self.equals.iter().map(|(a, v)| key(a, v)).collect(),
            limit,
            ..self.bounds.clone()
        }
    }
}

struct Model {
    events: Vec<Ev>,
    ingested_ns: Vec<i64>,
}

impl Model {
    fn answer(&self, shape: &Shape) -> Vec<u64> {
        let q = &shape.bounds;
        let n = self.events.len() as u64;
        let end = q.below.map_or(n, |s| s.min(n));
        (0..end)
            .filter(|&s| q.after.is_none_or(|a| s > a))
            .filter(|&s| {
                let ev = &self.events[s as usize];
                let t = self.ingested_ns[s as usize];
                shape
                    .equals
                    .iter()
                    .all(|(a, v)| ev.axis(a) == Some(v.as_str()))
                    && q.event_from.is_none_or(|f| ev.time_ns >= f)
                    && q.event_to.is_none_or(|e| ev.time_ns < e)
                    && q.ingest_from.is_none_or(|f| t >= f)
                    && q.ingest_to.is_none_or(|e| t < e)
            })
            .collect()
    }
}

fn eq(pairs: &[(&str, &str)]) -> Shape {
    Shape {
        equals: pairs
            .iter()
            .map(|(a, v)| (a.to_string(), v.to_string()))
            .collect(),
        ..Shape::default()
    }
}

fn with(shape: Shape, bounds: Scan) -> Shape {
    Shape { bounds, ..shape }
}

fn shapes(model: &Model) -> Vec<Shape> {
    let ev = |s: usize| &model.events[s];
    let n = model.events.len();
    let mut shapes = vec![Shape::default()];
    for a in AXES {
        let mut values: Vec<String> = [0, 17, n / 2, n - 1]
            .iter()
            .filter_map(|&s| ev(s).axis(a).map(str::to_string))
            .collect();
        values.push("no-such-value".into());
        values.dedup();
        for v in values {
            shapes.push(eq(&[(a, &v)]));
        }
    }
    shapes.extend([
        eq(&[("tenant", "tenant-1"), ("type", "type.created")]),
        eq(&[("subject", "subj-3"), ("source", "svc-2")]),
        eq(&[("scope", "tenant-0"), ("actor", "actor-2")]),
        eq(&[("type", "type.viewed"), ("actor", "actor-5")]),
        eq(&[("scope", ""), ("type", "type.deleted")]),
        eq(&[("tenant", "tenant-2"), ("subject", "subj-7")]),
        eq(&[("id", &ev(42).id), ("source", &ev(42).source)]),
        eq(&[("id", &ev(42).id), ("source", "svc-none")]),
        eq(&[("tenant", "tenant-1"), ("tenant", "tenant-2")]),
        eq(&[
            ("tenant", "tenant-3"),
            ("type", "type.modified"),
            ("source", "svc-0"),
        ]),
    ]);
    // Event-time windows, with bounds on exact event times to pin [from, to).
    let (t1, t2) = (ev(100).time_ns, ev(n - 200).time_ns);
    let (lo, hi) = (t1.min(t2), t1.max(t2));
    let window = |from: Option<i64>, to: Option<i64>| Scan {
        event_from: from,
        event_to: to,
        ..Scan::default()
    };
    let all = Shape::default;
    shapes.extend([
        with(all(), window(Some(lo), Some(hi))),
        with(all(), window(Some(lo), None)),
        with(all(), window(None, Some(hi))),
        with(all(), window(Some(hi), Some(hi))),
        with(all(), window(Some(hi), Some(hi + 1))),
        with(all(), window(Some(i64::MIN), Some(i64::MAX))),
        with(eq(&[("type", "type.created")]), window(Some(lo), Some(hi))),
        with(eq(&[("tenant", "tenant-4")]), window(None, Some(hi))),
    ]);
    // Equality keys with windows whose bounds are the matching record's own event time.
    for k in [100, n - 200] {
        let t = ev(k).time_ns;
        for a in ["id", "type", "scope"] {
            let own = eq(&[(a, ev(k).axis(a).unwrap())]);
            shapes.push(with(own.clone(), window(None, Some(t))));
            shapes.push(with(own.clone(), window(Some(t), Some(t + 1))));
            shapes.push(with(own, window(Some(t + 1), None)));
        }
    }
    // Ingest-time windows from the ingest times the records really got.
    let (i1, i2) = (model.ingested_ns[n / 4], model.ingested_ns[3 * n / 4]);
    let ingest = |from: Option<i64>, to: Option<i64>| Scan {
        ingest_from: from,
        ingest_to: to,
        ..Scan::default()
    };
    shapes.extend([
        with(all(), ingest(Some(i1), Some(i2))),
        with(all(), ingest(Some(i1), None)),
        with(all(), ingest(None, Some(i2))),
        with(all(), ingest(Some(i2), Some(i1))),
        with(all(), ingest(Some(i2 + 1), None)),
        with(eq(&[("source", "svc-1")]), ingest(Some(i1), Some(i2))),
        with(
            all(),
            Scan {
                event_from: Some(lo),
                ..ingest(None, Some(i2))
            },
        ),
    ]);
    // The log as it was, and cursors.
    for size in [0, 1, 999, n as u64 - 1, n as u64, 10 * n as u64] {
        let below = Scan {
            below: Some(size),
            ..Scan::default()
        };
        shapes.push(with(all(), below.clone()));
        shapes.push(with(eq(&[("source", "svc-0")]), below));
    }
    for after in [0, 1499, n as u64 - 2, n as u64 - 1, u64::MAX] {
        let after = Scan {
            after: Some(after),
            ..Scan::default()
        };
        shapes.push(with(all(), after.clone()));
        shapes.push(with(eq(&[("tenant", "tenant-0")]), after));
    }
    shapes.push(with(
        eq(&[("type", "type.modified")]),
        Scan {
            after: Some(300),
            below: Some(2000),
            event_from: Some(lo),
            ..Scan::default()
        },
    ));
    shapes
}

fn check_scans(store: &TestStore, model: &Model, stage: &str) {
    assert_eq!(store.len(), model.events.len() as u64, "{stage}");
    for shape in shapes(model) {
        let want = model.answer(&shape);
        let page = store.scan(&shape.scan(LIMIT_MAX)).unwrap();
        let got: Vec<u64> = page.records.iter().map(|r| r.0).collect();
        assert_eq!(got, want, "{stage}: {shape:?}");
        assert_eq!(
            page.next_after, None,
            "{stage}: everything fit in one page: {shape:?}"
        );
        for (seq, bytes) in &page.records {
            let rec: Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(rec["seq"], json!(seq), "{stage}");
            assert_eq!(rec["id"], json!(model.events[*seq as usize].id), "{stage}");
        }
        let limit = if want.len() <= 40 { 1 } else { 97 };
        assert_eq!(
            paged(store, &shape.scan(limit), limit),
            want,
            "{stage}: paged by {limit}: {shape:?}"
        );
    }
}

/// The events' seed: fixed, printed, and replaced by `SEALOG_STORE_SEED` to replay another.
fn scan_seed() -> u64 {
    let seed = std::env::var("SEALOG_STORE_SEED").map_or(0x5EA1_0600, |s| {
        let s = s.trim();
        s.strip_prefix("0x")
            .map_or_else(|| s.parse(), |hex| u64::from_str_radix(hex, 16))
            .expect("SEALOG_STORE_SEED must be a u64 (decimal or 0x-hex)")
    });
    eprintln!("scan model seed {seed:#x} (replay with SEALOG_STORE_SEED={seed:#x})");
    seed
}

#[test]
fn every_scan_shape_agrees_with_a_model_across_flushes_merges_reopen_and_rebuild() {
    const N: usize = 2500;
    const MEMTABLE: u64 = 100;
    let seed = scan_seed();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        memtable_records_max: MEMTABLE,
        ..fast()
    };
    let mut rng = Rng::new(seed);
    let events: Vec<Ev> = (0..N).map(|i| gen_event(i, &mut rng)).collect();
    let store = open(dir.path(), config.clone());
    let mut next = 0;
    let mut batch = 1;
    while next < N {
        let end = (next + batch).min(N);
        let out = store
            .append(events[next..end].iter().map(|e| entry(&e.json)).collect())
            .unwrap();
        assert_eq!(
            appended(&out),
            (next as u64..end as u64).collect::<Vec<_>>()
        );
        next = end;
        batch = batch % 37 + 1;
    }
    let ingested = (0..N as u64).map(|s| ingested_ns(&store, s)).collect();
    let model = Model {
        events,
        ingested_ns: ingested,
    };
    let stage = |what: &str| format!("{what} (events from seed {seed:#x})");
    check_scans(&store, &model, &stage("live"));

    // What a crash now would leave: the index as last flushed, the rest replayed from the log.
    // A commit that fills the memtable hands it to the background flusher, so once that has
    // written its run, fewer than a memtable's records are left out of the index; until then
    // the copy could catch a flush or merge half done.
    let indexed = wait_for(30, "the index flush of the last full memtable", || {
        settled_index_end(&LogLayout::new(dir.path())).filter(|&end| N as u64 - end < MEMTABLE)
    });
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    close(store);
    assert_eq!(
        settled_index_end(&LogLayout::new(crashed.path())),
        Some(indexed),
        "the copy holds the index as it was flushed"
    );
    let store = open(crashed.path(), config.clone());
    assert_eq!(
        store.recovery().replayed,
        N as u64 - indexed,
        "the index covered the first {indexed} records: only the rest are replayed"
    );
    check_scans(&store, &model, &stage("after a crash"));
    drop(store);

    let store = open(dir.path(), config.clone());
    assert_eq!(
        store.recovery().replayed,
        0,
        "a clean close leaves nothing to replay"
    );
    assert_eq!(store.recovery().records, N as u64);
    check_scans(&store, &model, &stage("reopened"));
    close(store);

    fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = open(dir.path(), config.clone());
    assert_eq!(
        store.recovery().replayed,
        N as u64,
        "the whole index is rebuilt from the log"
    );
    assert_eq!(store.recovery().cut, None);
    check_scans(&store, &model, &stage("index rebuilt"));
    for e in model.events.iter().step_by(97) {
        let seq = store.seq_of(&entry(&e.json).id()).unwrap();
        assert_eq!(
            seq.map(|s| model.events[s as usize].id.clone()),
            Some(e.id.clone())
        );
    }
    close(store);

    // An index of an earlier format (its manifest names the version, checksum intact) is
    // rebuilt from the log rather than read as this one.
    let manifest = dir.path().join("index/MANIFEST");
    let text = fs::read_to_string(&manifest).unwrap();
    let body = text[..text.rfind("crc ").unwrap()].replacen("sealog-index 6", "sealog-index 5", 1);
    fs::write(
        &manifest,
        format!("{body}crc {:08x}\n", crc32c::crc32c(body.as_bytes())),
    )
    .unwrap();
    let store = open(dir.path(), config);
    let why = store.recovery().rebuilt.clone().unwrap_or_default();
    assert!(why.contains("not a sealog-index 6 manifest"), "{why:?}");
    assert_eq!(store.recovery().replayed, N as u64);
    check_scans(&store, &model, &stage("an earlier index format rebuilt"));
}

/// A tiny memtable makes a run every few records and merges them again and again; every
/// merge must keep each tenant's postings, under both the scope and the tenant key.
#[test]
fn postings_survive_many_small_flushes_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        memtable_records_max: 7,
        ..fast()
    };
    let mut store = open(dir.path(), config.clone());
    let mut by_tenant: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..60u64 {
        let mut ev = simple(&format!("m{i}"));
        let tenant = format!("t{}", i % 4);
        ev["tenant"] = json!(tenant);
        let seq = append(&store, &[ev])[0].seq().unwrap();
        by_tenant.entry(tenant).or_default().push(seq);
    }
    for round in ["live", "reopened"] {
        for (tenant, want) in &by_tenant {
            assert_eq!(&seqs(&store, &scan(&[("scope", tenant)])), want, "{round}");
            assert_eq!(&seqs(&store, &scan(&[("tenant", tenant)])), want, "{round}");
            assert_eq!(
                &paged(&store, &scan(&[("tenant", tenant)]), 4),
                want,
                "{round}"
            );
        }
        close(store);
        store = open(dir.path(), config.clone());
        assert_eq!(store.recovery().replayed, 0);
    }
}

/// Keys every record by one axis, named at construction, on the value of its `data.v`.
struct AxisFromV(&'static str);

impl Indexer for AxisFromV {
    fn keys(&self, stored: &Stored<'_, '_>) -> Vec<Key> {
        let v = stored.record.get("data").and_then(|d| d.get("v"));
        v.and_then(Json::as_str)
            .map(|v| key(self.0, v))
            .into_iter()
            .collect()
    }

    fn fingerprint(&self) -> String {
        format!("axis-from-v:{}", self.0)
    }
}

/// A run's filter rewritten to admit nothing, its sum made to agree so that opening the run
/// refuses nothing, is still found by a full `verify`, at the run's first record: an id the
/// filter hides is missing from the index, and a key it hides fails the key filter check.
#[test]
fn a_full_verify_finds_a_run_filter_that_leaves_out_what_the_run_holds() {
    // Where each filter's CRC-32C lies from the end of `.sum`: the key filter's just before
    // the file's own sum, the id filter's before the key filter's counts and sum.
    for (ext, crc_from_end, says) in [
        ("bloom", 28, "record 0's id sha256:"),
        ("kbloom", 8, "of run 64..80 does not admit key"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            memtable_records_max: 16,
            ..fast()
        };
        let store = open(dir.path(), config);
        // Five memtables: the first four merged into one run, the fifth a run of its own.
        let events: Vec<Value> = (0..80).map(|i| simple(&format!("f{i}"))).collect();
        for group in events.chunks(8) {
            append(&store, group);
        }
        close(store);
        let full_verify = || {
            sealog_store::verify::verify(
                &LogLayout::new(dir.path()),
                &sealog_store::verify::Options {
                    indexer: Some(&EnvelopeKeys),
                    full: true,
                    ..Default::default()
                },
            )
        };
        full_verify().unwrap_or_else(|f| panic!("before the damage: {f}"));
        // Runs by first seq; the id filter of the first, the key filter of the last.
        let run_file = |suffix: &str| {
            let mut runs: Vec<PathBuf> = fs::read_dir(dir.path().join("index"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_str().unwrap().ends_with(suffix))
                .collect();
            runs.sort();
            assert_eq!(runs.len(), 2, "runs 0..64 and 64..80: {runs:?}");
            match ext {
                "bloom" => runs.remove(0),
                _ => runs.pop().unwrap(),
            }
        };
        let filter = run_file(&format!(".{ext}"));
        let empty = vec![0u8; fs::metadata(&filter).unwrap().len() as usize];
        fs::write(&filter, &empty).unwrap();
        let sum = run_file(".sum");
        let mut bytes = fs::read(&sum).unwrap();
        let n = bytes.len();
        bytes[n - crc_from_end..n - crc_from_end + 4]
            .copy_from_slice(&crc32c::crc32c(&empty).to_le_bytes());
        let own = crc32c::crc32c(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&own.to_le_bytes());
        fs::write(&sum, &bytes).unwrap();
        let found = full_verify().expect_err("a filter that admits nothing is found");
        assert!(
            found.message.contains(says),
            ".{ext}: {} {}",
            found.location,
            found.message
        );
    }
}

#[test]
fn reopening_with_another_indexer_rebuilds_the_index_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        memtable_records_max: 4,
        ..fast()
    };
    let keyed_by =
        |axis: &'static str| open_with(dir.path(), config.clone(), Arc::new(AxisFromV(axis)));
    let hits = |store: &TestStore, axis: &str, v: &str| seqs(store, &scan(&[(axis, v)])).len();
    let store = keyed_by("old");
    let entries: Vec<_> = (0..10)
        .map(|i| {
            let ev = json!({"id": format!("e{i}"), "source": "s", "type": "t",
                            "time": "2026-01-03T12:00:00Z", "data": {"v": "x"}});
            Entry {
                keys: vec![key("old", "x")],
                ..entry(&ev)
            }
        })
        .collect();
    appended(&store.append(entries).unwrap());
    assert_eq!(hits(&store, "old", "x"), 10);
    close(store);

    let store = keyed_by("new");
    assert_eq!(store.recovery().replayed, 10, "every record is keyed again");
    assert_eq!(
        hits(&store, "new", "x"),
        10,
        "the new key covers old records"
    );
    assert_eq!(
        hits(&store, "old", "x"),
        0,
        "keys of the old indexer are gone"
    );
    close(store);
    let store = keyed_by("new");
    assert_eq!(store.recovery().replayed, 0, "the rebuilt index is kept");
    assert_eq!(hits(&store, "new", "x"), 10);
}

// ---------------------------------------------------------------------------------------
// Segments.

#[test]
fn segments_roll_are_sealed_read_only_and_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        segment_bytes_max: 4096,
        compress_sealed: false,
        ..Config::default()
    };
    let ids: Vec<String> = (0..400).map(|i| format!("r{i}")).collect();
    {
        let store = open(dir.path(), config.clone());
        for chunk in ids.chunks(5) {
            let events: Vec<Value> = chunk.iter().map(|id| simple(id)).collect();
            append(&store, &events);
        }
        close(store);
    }
    let segs = segments(dir.path());
    assert!(segs.len() > 20, "only {} segments", segs.len());
    let mut next_seq = 0u64;
    for (i, path) in segs.iter().enumerate() {
        let bytes = fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"SEALOGS1", "{}", path.display());
        let first = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        assert_eq!(
            first,
            next_seq,
            "{}: segments continue the seqs",
            path.display()
        );
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("{first:020}.seg")
        );
        let spans = whole_frames(&bytes, HEADER_BYTES);
        for (k, (start, end)) in spans.iter().enumerate() {
            let payload = &bytes[(start + FRAME_HEADER_BYTES) as usize..*end as usize];
            let rec: Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(rec["seq"], json!(first + k as u64));
        }
        next_seq += spans.len() as u64;
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        if i + 1 < segs.len() {
            assert_eq!(mode, 0o444, "{} is sealed", path.display());
            // A segment is sealed once it passes the limit, which one group may overshoot.
            assert!(
                bytes.len() >= 4096 && bytes.len() < 4096 + 5 * 400,
                "{}",
                bytes.len()
            );
        } else {
            assert_ne!(mode & 0o200, 0, "the active segment stays writable");
        }
    }
    assert_eq!(next_seq, 400);

    let store = open(dir.path(), config);
    assert_eq!(store.recovery().replayed, 0);
    assert_eq!(store.len(), 400);
    for (seq, id) in ids.iter().enumerate() {
        assert_eq!(record(&store, seq as u64)["id"], json!(id));
    }
    assert_eq!(
        paged(&store, &Scan::default(), 33),
        (0..400).collect::<Vec<_>>()
    );
    assert_eq!(appended(&append(&store, &[simple("after-reopen")])), [400]);
    assert_eq!(record(&store, 400)["id"], json!("after-reopen"));
}

/// The data directory and record count [`a_crash_right_after_sealing_leaves_a_store_that_opens`]
/// hands to itself run as `nobody`.
const SEALED_DIR_ENV: &str = "SEALOG_TEST_SEALED_DIR";
const SEALED_RECORDS_ENV: &str = "SEALOG_TEST_SEALED_RECORDS";

/// A crash between sealing a full segment and creating the next leaves a full, read-only
/// last segment. Nothing is damaged, so opening must work without writing to it, or even
/// opening it for writing: the 0o444 mode makes that an error. Root may open a 0o444 file
/// for writing, so when the test runs as root the opening and the append are made by this
/// test binary run again as `nobody`, whom the mode binds.
#[test]
fn a_crash_right_after_sealing_leaves_a_store_that_opens() {
    let config = Config {
        segment_bytes_max: 4096,
        compress_sealed: false,
        ..fast()
    };
    if let (Ok(dir), Ok(n)) = (
        std::env::var(SEALED_DIR_ENV),
        std::env::var(SEALED_RECORDS_ENV),
    ) {
        open_beside_a_sealed_last_segment(Path::new(&dir), config, n.parse().unwrap());
        println!("opened and appended as uid {}", process_uid());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    {
        let store = open(dir.path(), config.clone());
        // Stop once the active segment has passed the limit: the next commit seals it,
        // and a crash right after that seal leaves this very file read-only and last.
        while segments(dir.path()).len() < 2
            || fs::metadata(segments(dir.path()).pop().unwrap())
                .unwrap()
                .len()
                < 4096
        {
            append(&store, &[simple(&format!("s{n}"))]);
            n += 1;
        }
        close(store);
    }
    let last = segments(dir.path()).pop().unwrap();
    fs::set_permissions(&last, fs::Permissions::from_mode(0o444)).unwrap();
    let sealed_bytes = fs::read(&last).unwrap();
    if opens_for_writing(&last) {
        chown_tree(dir.path(), NOBODY, NOBODY);
        // The name libtest knows: the module path without the test binary's crate.
        let test = format!(
            "{}::a_crash_right_after_sealing_leaves_a_store_that_opens",
            module_path!().split_once("::").map_or("", |(_, m)| m)
        );
        let (_exe_dir, exe) = current_exe_for_another_user();
        let out = std::process::Command::new(&exe)
            .args(["--exact", &test, "--nocapture", "--test-threads=1"])
            .env(SEALED_DIR_ENV, dir.path())
            .env(SEALED_RECORDS_ENV, n.to_string())
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap_or_else(|e| panic!("run this test again as nobody (uid {NOBODY}): {e}"));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "as nobody: {said}");
        assert!(
            said.contains(&format!("opened and appended as uid {NOBODY}")),
            "the run as nobody did not reach the store: {said}"
        );
    } else {
        open_beside_a_sealed_last_segment(dir.path(), config, n);
    }
    assert_eq!(
        fs::read(&last).unwrap(),
        sealed_bytes,
        "a sealed segment was written to"
    );
    assert_eq!(
        segments(dir.path()).len(),
        3,
        "the next record went into a new segment"
    );
}

/// Opens a store whose last segment is sealed, as a user the segment's mode binds, and
/// appends to it.
fn open_beside_a_sealed_last_segment(dir: &Path, config: Config, n: u64) {
    let last = segments(dir).pop().unwrap();
    assert!(
        !opens_for_writing(&last),
        "this user may write a 0o444 file, so the mode proves nothing here"
    );
    let store = open(dir, config);
    assert_eq!(store.len(), n);
    assert_eq!(appended(&append(&store, &[simple("next")])), [n]);
    assert_eq!(record(&store, n)["id"], json!("next"));
    close(store);
}

/// The effective uid this process runs as: the owner of its `/proc/self`.
fn process_uid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

// ---------------------------------------------------------------------------------------
// Crash recovery.

/// A live store of `base` records copied as it stands (the state a crash would find), and
/// the frame bytes of three more records the live store then committed one at a time: a
/// torn write of them is any prefix of those bytes added to the copy.
struct TornSetup {
    _live: tempfile::TempDir,
    snapshot: tempfile::TempDir,
    segment_name: std::ffi::OsString,
    /// Length of the snapshot's last segment.
    base_len: u64,
    base: u64,
    tail: Vec<u8>,
    /// End offsets of the three new frames within `tail`.
    ends: Vec<usize>,
    /// Every record the live store ended with, by seq.
    records: Vec<Vec<u8>>,
}

fn torn_setup(config: &Config) -> TornSetup {
    let live = tempfile::tempdir().unwrap();
    let snapshot = tempfile::tempdir().unwrap();
    let base = 40u64;
    let store = open(live.path(), config.clone());
    let events: Vec<Value> = (0..base).map(|i| simple(&format!("base{i}"))).collect();
    for chunk in events.chunks(8) {
        append(&store, chunk);
    }
    copy_dir(live.path(), snapshot.path());
    let seg = segments(snapshot.path()).pop().unwrap();
    let base_len = fs::metadata(&seg).unwrap().len();
    for i in 0..3 {
        let mut ev = simple(&format!("torn{i}"));
        ev["data"]["pad"] = json!("p".repeat(100 * (i + 1)));
        append(&store, &[ev]);
    }
    let records = (0..base + 3)
        .map(|s| store.get(s).unwrap().unwrap())
        .collect();
    close(store);
    let live_seg = live.path().join("log").join(seg.file_name().unwrap());
    let tail = fs::read(live_seg).unwrap()[base_len as usize..].to_vec();
    let ends: Vec<usize> = whole_frames(&tail, 0)
        .iter()
        .map(|s| s.1 as usize)
        .collect();
    assert_eq!(
        ends.len(),
        3,
        "the three records went into the same segment"
    );
    TornSetup {
        segment_name: seg.file_name().unwrap().to_owned(),
        _live: live,
        snapshot,
        base_len,
        base,
        tail,
        ends,
        records,
    }
}

fn check_torn_tail(setup: &TornSetup, config: &Config, written: usize, junk: &[u8], what: &str) {
    let what = format!("{written} bytes of the new frames then {what}");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(setup.snapshot.path(), dir.path());
    let seg = dir.path().join("log").join(&setup.segment_name);
    let mut extra = setup.tail[..written].to_vec();
    extra.extend_from_slice(junk);
    append_bytes(&seg, &extra);

    let whole = setup.ends.iter().filter(|&&e| e <= written).count();
    let boundary = if whole == 0 { 0 } else { setup.ends[whole - 1] };
    let expected = setup.base + whole as u64;
    let store = open(dir.path(), config.clone());
    assert_eq!(store.len(), expected, "{what}");
    assert_eq!(store.recovery().records, expected, "{what}");
    let cut = store.recovery().cut.clone();
    // Zeros are what the writer lays down ahead of its frames: cut without a report.
    let dropped = setup.tail[boundary..written].iter().chain(junk);
    if dropped.clone().all(|&b| b == 0) {
        assert_eq!(cut, None, "{what}");
    } else {
        let Some(Cut {
            segment,
            offset,
            bytes,
            reason,
        }) = cut
        else {
            panic!("{what}: no cut reported")
        };
        assert_eq!(segment, seg, "{what}");
        assert_eq!(offset, setup.base_len + boundary as u64, "{what}");
        assert_eq!(bytes, (written - boundary + junk.len()) as u64, "{what}");
        assert!(!reason.is_empty(), "{what}");
    }
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        setup.base_len + boundary as u64,
        "{what}: the tail is gone from the file"
    );
    for seq in 0..expected {
        assert_eq!(
            store.get(seq).unwrap().as_ref(),
            Some(&setup.records[seq as usize]),
            "{what}: record {seq}"
        );
    }
    assert_eq!(store.get(expected).unwrap(), None, "{what}");
    let fresh = simple("after-recovery");
    assert_eq!(
        appended(&append(&store, std::slice::from_ref(&fresh))),
        [expected],
        "{what}: the next append takes the next seq"
    );
    close(store);

    let store = open(dir.path(), config.clone());
    assert_eq!(
        store.recovery().cut,
        None,
        "{what}: the second open finds a clean log"
    );
    assert_eq!(store.len(), expected + 1, "{what}");
    assert_eq!(
        record(&store, expected)["id"],
        json!("after-recovery"),
        "{what}"
    );
    assert_eq!(
        store.seq_of(&entry(&fresh).id()).unwrap(),
        Some(expected),
        "{what}"
    );
}

#[test]
fn a_torn_tail_is_cut_back_to_the_last_whole_frame() {
    // With the index covering nothing (all replayed) and covering most of the log.
    for config in [
        fast(),
        Config {
            memtable_records_max: 16,
            ..fast()
        },
    ] {
        let setup = torn_setup(&config);
        let [e1, e2, e3] = setup.ends[..] else {
            unreachable!()
        };
        let mut cuts: Vec<usize> =
            vec![0, e1 / 2, e1 - 1, e1, (e1 + e2) / 2, e2 - 1, e2, e3 - 1, e3];
        // Every length that ends inside a frame header, and just past one.
        for start in [0, e1, e2] {
            cuts.extend((1..=FRAME_HEADER_BYTES as usize + 1).map(|k| start + k));
        }
        cuts.sort_unstable();
        cuts.dedup();
        for &written in &cuts {
            check_torn_tail(&setup, &config, written, &[], "nothing");
        }
        for (seed, &written) in [0, e1 + 3, e2, e3 - 1, e3].iter().enumerate() {
            check_torn_tail(&setup, &config, written, &[0; 7], "7 zeros");
            check_torn_tail(&setup, &config, written, &[0; 4096], "4096 zeros");
            check_torn_tail(&setup, &config, written, &[0xff; 8], "8 bytes 0xff");
            let junk = Rng::new(seed as u64).bytes(300);
            let what = format!("300 random bytes of seed {seed}");
            check_torn_tail(&setup, &config, written, &junk, &what);
        }
    }
}

/// With every group synced, the active segment is zeroed ahead of its frames, so that a small
/// group's sync writes no inode. What a power cut leaves of those zeros is no record: `verify`
/// stops at them, recovery cuts them without reporting a torn tail, and neither a seal nor a
/// clean close leaves any behind. Zeros where the writer had acknowledged records are a cut
/// recovery reports.
#[test]
fn the_zeros_ahead_of_the_active_segment_are_never_records() {
    let live = tempfile::tempdir().unwrap();
    let config = Config {
        segment_bytes_max: 32 << 10,
        compress_sealed: false,
        // No checkpoint but the first: the last record is acknowledged, not signed.
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..Config::default()
    };
    let store = open(live.path(), config.clone());
    let n = 300u64;
    for i in 0..n {
        append(&store, &[simple(&format!("zeros{i}"))]);
    }
    let segs = segments(live.path());
    assert!(segs.len() >= 3, "segments rolled: {segs:?}");
    for sealed in &segs[..segs.len() - 1] {
        whole_frames(&fs::read(sealed).unwrap(), HEADER_BYTES);
    }
    let active = segs.last().unwrap();
    let bytes = fs::read(active).unwrap();
    let end = frames(&bytes, HEADER_BYTES as usize)
        .last()
        .map_or(HEADER_BYTES, |f| f.end) as usize;
    assert!(bytes.len() > end, "no zeros ahead of the frames");
    assert!(
        bytes[end..].iter().all(|&b| b == 0),
        "past the frames: zeros only"
    );

    // A power cut now leaves the files as they are.
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(live.path(), crashed.path());
    let report = sealog_store::verify::verify(
        &LogLayout::new(crashed.path()),
        &sealog_store::verify::Options::default(),
    )
    .unwrap_or_else(|f| panic!("{}: {}", f.location, f.message));
    assert_eq!(report.records, n);
    assert_eq!(
        sealog_store::segment::plain_bytes(&crashed.path().join("log")),
        report.bytes,
        "the bytes a progress bar expects are the bytes verify reads"
    );
    let reopened = open(crashed.path(), config.clone());
    assert_eq!(reopened.recovery().cut, None, "zeros are not a torn tail");
    assert_eq!(reopened.len(), n);
    let copy = crashed.path().join("log").join(active.file_name().unwrap());
    assert_eq!(
        fs::metadata(&copy).unwrap().len(),
        end as u64,
        "the zeros are cut"
    );
    let more = simple("after-the-cut");
    assert_eq!(
        appended(&append(&reopened, std::slice::from_ref(&more))),
        [n]
    );
    close(reopened);
    let reopened = open(crashed.path(), config.clone());
    assert_eq!(reopened.recovery().cut, None);
    assert_eq!(record(&reopened, n)["id"], json!("after-the-cut"));
    drop(reopened);

    // The last acknowledged record's frame zeroed, as if lost: the cut is reported.
    let zeroed = tempfile::tempdir().unwrap();
    copy_dir(live.path(), zeroed.path());
    let copy = zeroed.path().join("log").join(active.file_name().unwrap());
    let mut bytes = fs::read(&copy).unwrap();
    let last = frames(&bytes, HEADER_BYTES as usize).pop().unwrap();
    bytes[last.start as usize..last.end as usize].fill(0);
    fs::write(&copy, &bytes).unwrap();
    let reopened = open(zeroed.path(), config.clone());
    assert_eq!(reopened.len(), n - 1);
    let cut = reopened.recovery().cut.clone().expect("a reported cut");
    assert_eq!(cut.offset, last.start);
    drop(reopened);

    close(store);
    whole_frames(&fs::read(active).unwrap(), HEADER_BYTES);
}

/// A crash after a new segment file was created but before its header was durable.
#[test]
fn a_new_segment_with_a_torn_header_is_replaced() {
    let config = Config {
        segment_bytes_max: 4096,
        compress_sealed: false,
        ..fast()
    };
    for header_bytes in [0usize, 1, 8, 15] {
        let live = tempfile::tempdir().unwrap();
        let store = open(live.path(), config.clone());
        for i in 0..30 {
            append(&store, &[simple(&format!("h{i}"))]);
        }
        let dir = tempfile::tempdir().unwrap();
        copy_dir(live.path(), dir.path());
        drop(store);
        let mut header = b"SEALOGS1".to_vec();
        header.extend_from_slice(&30u64.to_le_bytes());
        let torn = dir.path().join("log").join(format!("{:020}.seg", 30));
        fs::write(&torn, &header[..header_bytes]).unwrap();

        let store = open(dir.path(), config.clone());
        assert_eq!(store.len(), 30, "{header_bytes} header bytes");
        for seq in 0..30 {
            assert_eq!(record(&store, seq)["id"], json!(format!("h{seq}")));
        }
        assert_eq!(appended(&append(&store, &[simple("next")])), [30]);
        close(store);
        let bytes = fs::read(&torn).unwrap();
        assert_eq!(
            &bytes[..HEADER_BYTES as usize],
            &header[..],
            "the segment was recreated with its header"
        );
        let store = open(dir.path(), config.clone());
        assert_eq!(store.len(), 31);
        assert_eq!(record(&store, 30)["id"], json!("next"));
    }
}

/// Recovery resumes after the records the index holds, inside the segment the writer will
/// append to next; that segment's header is still checked, so a damaged one is refused
/// before anything is appended behind it.
#[test]
fn a_damaged_header_of_the_segment_recovery_resumes_in_is_refused() {
    let live = tempfile::tempdir().unwrap();
    let store = open(live.path(), fast());
    for i in 0..20 {
        append(&store, &[simple(&format!("r{i}"))]);
    }
    close(store);
    let layout = LogLayout::new(live.path());
    assert_eq!(
        settled_index_end(&layout),
        Some(20),
        "the index holds every record, so recovery resumes after them"
    );
    for (at, says) in [(0, "bad magic"), (8, "header says first seq")] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(live.path(), dir.path());
        let damaged = dir.path().join("log").join(format!("{:020}.seg", 0));
        flip_byte(&damaged, at);
        let before = fs::read(&damaged).unwrap();
        let err = open_err(dir.path());
        assert!(err.contains(says), "byte {at}: {err}");
        assert_eq!(
            fs::read(&damaged).unwrap(),
            before,
            "byte {at}: the segment was changed"
        );
    }
    assert_eq!(
        open(live.path(), fast()).len(),
        20,
        "the undamaged copy opens"
    );
}

/// A segment cut inside its header looks like one created just before a crash, which
/// recovery replaces; when a signed checkpoint covers records in it, it is damage instead,
/// refused with the file left as it is.
#[test]
fn a_torn_header_under_signed_records_is_refused_not_replaced() {
    let live = tempfile::tempdir().unwrap();
    let store = open(live.path(), fast());
    for i in 0..5 {
        append(&store, &[simple(&format!("t{i}"))]);
    }
    close(store);
    let layout = LogLayout::new(live.path());
    // Without the derived files, recovery reads the segment from its header.
    fs::remove_dir_all(layout.index()).unwrap();
    let segment = live.path().join("log").join(format!("{:020}.seg", 0));
    truncate(&segment, 9);
    let before = fs::read(&segment).unwrap();
    let err = open_err(live.path());
    assert!(
        err.contains("a torn header, yet a signed checkpoint covers 5 records"),
        "{err}"
    );
    assert_eq!(
        fs::read(&segment).unwrap(),
        before,
        "the segment was replaced"
    );
}

fn closed_store(dir: &Path, config: &Config, n: usize) {
    let store = open(dir, config.clone());
    for i in 0..n {
        append(&store, &[simple(&format!("d{i}"))]);
    }
    close(store);
}

/// A bad frame with whole frames after it is damage, not a torn write: cutting there would
/// drop acknowledged records, so opening refuses and leaves the files as they were.
///
/// Opening re-reads only frames the index does not cover, so the index is deleted first to
/// make it read them all; `verify` is what checks frames the index covers.
#[test]
fn damage_before_whole_frames_in_the_active_segment_is_refused_not_cut() {
    let config = fast();
    for (what, at_in_frame) in [
        ("payload", FRAME_HEADER_BYTES + 10),
        ("checksum", 5),
        ("length", 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        closed_store(dir.path(), &config, 30);
        fs::remove_dir_all(dir.path().join("index")).unwrap();
        let seg = segments(dir.path()).pop().unwrap();
        let before = fs::read(&seg).unwrap();
        let (start, _) = whole_frames(&before, HEADER_BYTES)[5];
        flip_byte(&seg, start + at_in_frame);

        let message = open_err(dir.path());
        assert!(
            message.contains(&seg.display().to_string()),
            "{what}: {message}"
        );
        assert!(
            message.contains(&format!("offset {start}")),
            "{what}: {message}"
        );
        assert_eq!(
            fs::read(&seg).unwrap().len(),
            before.len(),
            "{what}: nothing was cut"
        );

        flip_byte(&seg, start + at_in_frame);
        let store = open(dir.path(), config.clone());
        assert_eq!(
            store.len(),
            30,
            "{what}: once repaired, every record is there"
        );
        assert_eq!(store.recovery().cut, None);
    }
}

#[test]
fn damage_in_a_sealed_segment_is_refused() {
    let config = Config {
        segment_bytes_max: 4096,
        compress_sealed: false,
        ..fast()
    };
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), &config, 100);
    fs::remove_dir_all(dir.path().join("index")).unwrap();
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let sealed = &segs[1];
    let bytes = fs::read(sealed).unwrap();
    let spans = whole_frames(&bytes, HEADER_BYTES);
    // Even the last frame of a sealed segment: it was fsynced before the next one began.
    for (start, end) in [spans[2], spans[spans.len() - 1]] {
        flip_byte(sealed, end - 3);
        let message = open_err(dir.path());
        assert!(message.contains(&sealed.display().to_string()), "{message}");
        assert!(message.contains(&format!("offset {start}")), "{message}");
        assert_eq!(fs::read(sealed).unwrap().len(), bytes.len());
        flip_byte(sealed, end - 3);
    }
    assert_eq!(open(dir.path(), config).len(), 100);
}

/// When the index covers a damaged frame, opening does not read it, but reading it must
/// fail loudly rather than return other bytes.
#[test]
fn damage_under_the_index_fails_the_read_of_that_record_only() {
    let config = fast();
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), &config, 30);
    let seg = segments(dir.path()).pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let (start, _) = whole_frames(&bytes, HEADER_BYTES)[7];
    flip_byte(&seg, start + FRAME_HEADER_BYTES + 3);
    let store = open(dir.path(), config);
    assert_eq!(store.len(), 30);
    assert!(
        matches!(store.get(7), Err(StoreError::Corrupted(_))),
        "{:?}",
        store.get(7)
    );
    assert!(store.scan(&scan(&[("id", "d7")])).is_err());
    assert_eq!(record(&store, 6)["id"], json!("d6"));
    assert_eq!(record(&store, 8)["id"], json!("d8"));
}

/// Many records asked at once, in any order, with repeats and seqs past the end, come back
/// as each would alone, read across segments; damage among them fails the read.
#[test]
fn many_records_read_together_are_each_what_it_is_alone() {
    let config = Config {
        segment_bytes_max: 4096,
        compress_sealed: false,
        ..fast()
    };
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), &config, 60);
    assert!(
        segments(dir.path()).len() > 3,
        "the records span several segments"
    );
    let store = open(dir.path(), config.clone());
    let mut rng = Rng::new(0x5ea1_0901);
    let mut asked: Vec<u64> = (0..60).collect();
    for i in (1..asked.len()).rev() {
        asked.swap(i, rng.below(i as u64 + 1) as usize);
    }
    asked.extend([7, 7, 59, 60, 1000, 0]);
    asked.sort_by_key(|s| s / 5);
    let together = store.get_many_with_leaves(&asked).unwrap();
    assert_eq!(together.len(), asked.len());
    for (seq, got) in asked.iter().zip(&together) {
        assert_eq!(got, &store.get_with_leaf(*seq).unwrap(), "record {seq}");
        assert_eq!(got.is_some(), *seq < 60);
    }
    close(store);
    let seg = segments(dir.path())[1].clone();
    let bytes = fs::read(&seg).unwrap();
    let (start, _) = whole_frames(&bytes, HEADER_BYTES)[1];
    flip_byte(&seg, start + FRAME_HEADER_BYTES + 3);
    let store = open(dir.path(), config);
    assert!(matches!(
        store.get_many_with_leaves(&asked),
        Err(StoreError::Corrupted(_))
    ));
}

/// A scan reads a run of consecutive records with one read; damage inside the run still
/// fails the scan naming that record, checked against the tree or not, and the records
/// around it still read whole.
#[test]
fn a_run_read_at_once_still_finds_damage_in_its_middle() {
    let config = fast();
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), &config, 30);
    let all = |skip_leaf_check: bool, after: Option<u64>, below: Option<u64>| Scan {
        limit: LIMIT_MAX,
        skip_leaf_check,
        after,
        below,
        ..Scan::default()
    };
    {
        let store = open(dir.path(), config.clone());
        for skip in [false, true] {
            let page = store.scan(&all(skip, None, None)).unwrap();
            assert_eq!(page.records.len(), 30);
            for (seq, bytes) in &page.records {
                assert_eq!(bytes, &store.get(*seq).unwrap().unwrap(), "record {seq}");
            }
        }
        close(store);
    }
    let seg = segments(dir.path()).pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let (start, _) = whole_frames(&bytes, HEADER_BYTES)[12];
    flip_byte(&seg, start + FRAME_HEADER_BYTES + 3);
    let store = open(dir.path(), config);
    for skip in [false, true] {
        let err = store.scan(&all(skip, None, None)).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupted(m) if m.contains("record 12")),
            "{err:?}"
        );
        let before = store.scan(&all(skip, None, Some(12))).unwrap();
        assert_eq!(before.records.len(), 12);
        let after = store.scan(&all(skip, Some(12), None)).unwrap();
        assert_eq!(
            after.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            (13..30).collect::<Vec<_>>()
        );
    }
}

/// Records the index vouches for were acknowledged; a log that no longer holds them is
/// damaged, and opening refuses rather than silently cutting them away.
#[test]
fn a_clean_log_that_lost_acknowledged_records_is_refused() {
    let config = fast();
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), &config, 20);
    let seg = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    truncate(&seg, len - 1);
    let message = open_err(dir.path());
    assert!(message.contains("corrupted"), "{message}");
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        len - 1,
        "nothing more was cut"
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), Config::default());
    append(&first, &[simple("x")]);
    let err = Store::open(
        &LogLayout::new(dir.path()),
        Config::default(),
        Arc::new(EnvelopeKeys),
        Unique,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("in use by another sealog process"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    // The refused open disturbed nothing.
    assert_eq!(appended(&append(&first, &[simple("y")])), [1]);
    close(first);

    let second = open(dir.path(), Config::default());
    assert_eq!(second.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Retention's stubs.

/// A stub changed on disk is damage like a changed record: its kept leaf no longer matches
/// the tree, so a read and `verify` refuse it, never answer from it.
#[test]
fn a_changed_stub_is_found_by_reads_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plain = || Config {
        segment_bytes_max: 2048,
        compress_sealed: false,
        ..fast()
    };
    let store = open(dir, plain());
    let events: Vec<Value> = (0..20).map(|i| simple(&format!("s-{i}"))).collect();
    appended(&append(&store, &events));
    let prune = |seq, link| sealog_store::Prune {
        seq,
        link,
        key: None,
    };
    assert_eq!(
        store
            .prune(&[prune(1, None), prune(2, Some([7; 32]))])
            .unwrap(),
        2
    );
    let verify = |dir: &Path| {
        sealog_store::verify::verify(
            &LogLayout::new(dir),
            &sealog_store::verify::Options {
                indexer: Some(&EnvelopeKeys),
                full: true,
                ..Default::default()
            },
        )
    };
    close(store);
    let report = verify(dir).unwrap();
    assert_eq!(
        report
            .stubs
            .iter()
            .map(|s| (s.seq, s.link))
            .collect::<Vec<_>>(),
        [(1, None), (2, Some([7; 32]))]
    );
    assert!(
        report.files.iter().any(|(f, _)| f == "index/PRUNED"),
        "{:?}",
        report.files
    );
    // Reopening rebuilds the index without the pruned records' keys: verify agrees in full.
    close(open(dir, plain()));
    let report = verify(dir).unwrap();
    assert!(!report.files.iter().any(|(f, _)| f == "index/PRUNED"));

    // The stub of record 1 keeps a different leaf, its frame checksum made right again.
    let seg = dir.join("log").join("00000000000000000000.seg");
    let mut bytes = fs::read(&seg).unwrap();
    let r = frames(&bytes, HEADER_BYTES as usize)[1].clone();
    let payload_at = (r.start + FRAME_HEADER_BYTES) as usize;
    bytes[payload_at + 16] ^= 1;
    let mut frame = Vec::new();
    sealog_testkit::format::encode_frame(&bytes[payload_at..r.end as usize], &mut frame);
    bytes[r.start as usize..r.end as usize].copy_from_slice(&frame);
    sealog_testkit::files::make_writable(&seg);
    fs::write(&seg, &bytes).unwrap();
    let e = verify(dir).expect_err("a changed stub is found");
    assert!(e.to_string().contains("history was changed"), "{e}");
    let store = open(dir, plain());
    match store.get(1) {
        Err(StoreError::Corrupted(why)) => {
            assert!(why.contains("does not keep the tree's leaf"), "{why}")
        }
        other => panic!("a changed stub was answered: {other:?}"),
    }
    assert!(matches!(store.get(2), Err(StoreError::Pruned(s)) if s.seq == 2));
}
