//! The store through its public API and its files: round trips, idempotency under
//! concurrency, every query shape against a naive model, segment rolling, crash recovery
//! (torn tails, torn segment headers), damage that must be refused, and the process lock.
//!
//! A crash is simulated by copying a live data directory while no append is in flight: the
//! copy holds exactly what the disk held at that moment (acknowledged frames, the index as
//! last flushed), and a torn write is then added by hand to the copy's last segment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use sealog_model::{PreparedEvent, RecordId};
use sealog_store::{Config, Cut, Durability, LIMIT_MAX, Outcome, Query, Store, StoreError};
use serde_json::{Value, json};

const HEADER_BYTES: u64 = 16;
const FRAME_HEADER_BYTES: usize = 8;
/// 2026-01-01T00:00:00Z in Unix seconds.
const JAN_2026: i64 = 1_767_225_600;

fn prepared(v: &Value) -> PreparedEvent {
    PreparedEvent::from_value(v).unwrap_or_else(|e| panic!("test event {v} is invalid: {e}"))
}

fn simple(id: &str) -> Value {
    json!({"id": id, "source": "tests", "type": "test.simple", "time": "2026-01-03T12:34:56.123Z",
           "tenant": "acme", "data": {"n": 1, "text": "héllo ✓"}})
}

fn open(dir: &Path, config: Config) -> Store {
    Store::open(dir, config).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn fast() -> Config {
    Config {
        durability: Durability::Os,
        ..Config::default()
    }
}

fn app(seq: u64, record_id: RecordId) -> Outcome {
    Outcome::Appended { seq, record_id }
}

fn dup(seq: u64, record_id: RecordId) -> Outcome {
    Outcome::Duplicate { seq, record_id }
}

fn appended(outcomes: &[Outcome]) -> Vec<u64> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Appended { seq, .. } => *seq,
            _ => panic!("expected appended, got {o:?}"),
        })
        .collect()
}

fn record(store: &Store, seq: u64) -> Value {
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

fn every(q: Query) -> Query {
    Query {
        limit: LIMIT_MAX,
        ..q
    }
}

fn axis(axis: &str, value: &str) -> Query {
    every(Query {
        equals: vec![(axis.into(), value.into())],
        ..Query::default()
    })
}

fn seqs(store: &Store, q: &Query) -> Vec<u64> {
    store
        .query(q)
        .unwrap()
        .records
        .iter()
        .map(|r| r.0)
        .collect()
}

#[test]
fn append_get_seq_of_and_query_round_trip() {
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
    let outcomes = store.append(events.iter().map(prepared).collect()).unwrap();
    assert_eq!(appended(&outcomes), [0, 1, 2]);
    assert_eq!(store.len(), 3);
    for (seq, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
        let seq = seq as u64;
        let Outcome::Appended { record_id, .. } = outcome else {
            unreachable!()
        };
        assert_eq!(*record_id, prepared(ev).record_id);
        assert_eq!(store.seq_of(record_id), Some(seq));
        let rec = record(&store, seq);
        assert_eq!(rec["seq"], json!(seq));
        assert_eq!(rec["record_id"], json!(record_id.to_string()));
        assert_eq!(
            event_of(&rec),
            *ev,
            "the record is the event plus server fields"
        );
        // The stored text is canonical, so it hashes back to its own id.
        assert_eq!(prepared(&event_of(&rec)).record_id, *record_id);
    }
    assert_eq!(store.get(3).unwrap(), None);
    assert_eq!(store.get(u64::MAX).unwrap(), None);
    assert_eq!(store.seq_of(&RecordId([7; 32])), None);

    assert_eq!(seqs(&store, &axis("id", "b")), [1]);
    assert_eq!(seqs(&store, &axis("tenant", "acme")), [0, 1, 2]);
    assert_eq!(seqs(&store, &axis("tenant", "other")), Vec::<u64>::new());
    let page = store.query(&axis("id", "c")).unwrap();
    assert_eq!(page.records, vec![(2, store.get(2).unwrap().unwrap())]);
    assert_eq!(page.next_after, None);
}

#[test]
fn ingest_time_never_decreases_along_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast());
    for i in 0..50 {
        store
            .append(vec![prepared(&simple(&format!("e{i}")))])
            .unwrap();
    }
    let times: Vec<i64> = (0..50)
        .map(|s| {
            let text = record(&store, s)["ingested_at"]
                .as_str()
                .unwrap()
                .to_string();
            sealog_model::time::parse_rfc3339(&text).unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(store.size_at(times[49]).unwrap(), 50);
    assert_eq!(store.size_at(times[0] - 1).unwrap(), 0);
}

#[test]
fn queries_refuse_limits_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), fast());
    for limit in [0, LIMIT_MAX + 1] {
        let err = store
            .query(&Query {
                limit,
                ..Query::default()
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
    // Same content, other key order and whitespace: the same record.
    let a_again: Value = serde_json::from_str(&format!(
        "{{ \"data\": {{\"text\":\"héllo ✓\",\"n\":1.0}}, \"tenant\":\"acme\", \"time\":\"{}\", \
         \"type\":\"test.simple\", \"source\":\"tests\", \"id\":\"a\" }}",
        a["time"].as_str().unwrap()
    ))
    .unwrap();
    let rid_a = prepared(&a).record_id;
    let rid_b = prepared(&b).record_id;
    assert_eq!(prepared(&a_again).record_id, rid_a);
    {
        let store = open(dir.path(), Config::default());
        let out = store
            .append(vec![prepared(&a), prepared(&a_again), prepared(&b)])
            .unwrap();
        assert_eq!(out, [app(0, rid_a), dup(0, rid_a), app(1, rid_b)]);
        let out = store.append(vec![prepared(&b), prepared(&a)]).unwrap();
        assert_eq!(out, [dup(1, rid_b), dup(0, rid_a)]);
        assert_eq!(store.len(), 2);
        store.close().unwrap();
    }
    let store = open(dir.path(), Config::default());
    assert_eq!(store.len(), 2);
    let c = simple("c");
    let out = store
        .append(vec![prepared(&a_again), prepared(&c), prepared(&b)])
        .unwrap();
    assert_eq!(
        out,
        [dup(0, rid_a), app(2, prepared(&c).record_id), dup(1, rid_b)]
    );
    assert_eq!(store.len(), 3);

    // Another tenant is another scope: the same body there is a new record.
    let mut other = a.clone();
    other["tenant"] = json!("globex");
    let out = store.append(vec![prepared(&other)]).unwrap();
    assert_eq!(appended(&out), [3]);
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
                let prepared: Vec<PreparedEvent> =
                    order.iter().map(|&i| prepared(&events[i])).collect();
                start.wait();
                let mut seen = Vec::with_capacity(EVENTS);
                for (chunk, idx) in prepared.chunks(batch).zip(order.chunks(batch)) {
                    let out = store.append(chunk.to_vec()).unwrap();
                    assert_eq!(out.len(), chunk.len());
                    for ((o, ev), &i) in out.iter().zip(chunk).zip(idx) {
                        assert_eq!(
                            o.record_id(),
                            ev.record_id,
                            "outcomes come back in request order"
                        );
                        seen.push((i, *o));
                    }
                }
                seen
            })
        })
        .collect();
    let mut seq_of_event: HashMap<usize, u64> = HashMap::new();
    let mut appends: HashMap<usize, usize> = HashMap::new();
    for t in threads {
        for (i, o) in t.join().unwrap() {
            let seq = o.seq().expect("no supersedes rules apply here");
            let first = *seq_of_event.entry(i).or_insert(seq);
            assert_eq!(first, seq, "event {i} was given two seqs");
            if matches!(o, Outcome::Appended { .. }) {
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
        assert_eq!(store.seq_of(&prepared(&events[i]).record_id), Some(seq));
    }
}

// ---------------------------------------------------------------------------------------
// Queries against a model.

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
            // The scope defaults to the tenant, and to "" without one.
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

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
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

struct Model {
    events: Vec<Ev>,
    ingested_ns: Vec<i64>,
}

impl Model {
    fn answer(&self, q: &Query) -> Vec<u64> {
        let end = q.as_of_size.map_or(self.events.len() as u64, |s| {
            s.min(self.events.len() as u64)
        });
        (0..end)
            .filter(|&s| q.after.is_none_or(|a| s > a))
            .filter(|&s| {
                let ev = &self.events[s as usize];
                let t = self.ingested_ns[s as usize];
                q.equals.iter().all(|(a, v)| ev.axis(a) == Some(v.as_str()))
                    && q.event_from.is_none_or(|f| ev.time_ns >= f)
                    && q.event_to.is_none_or(|e| ev.time_ns < e)
                    && q.ingest_from.is_none_or(|f| t >= f)
                    && q.ingest_to.is_none_or(|e| t < e)
            })
            .collect()
    }
}

/// Runs `q` page by page with `limit` until the store says there is no more.
fn paged(store: &Store, q: &Query, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut q = Query { limit, ..q.clone() };
    loop {
        let page = store.query(&q).unwrap();
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
                q.after = Some(after);
            }
            None => return out,
        }
    }
}

fn shapes(model: &Model) -> Vec<Query> {
    let ev = |s: usize| &model.events[s];
    let n = model.events.len();
    let mut shapes = vec![Query::default()];
    for a in sealog_model::record::BUILTIN_AXES {
        let mut values: Vec<String> = [0, 17, n / 2, n - 1]
            .iter()
            .filter_map(|&s| ev(s).axis(a).map(str::to_string))
            .collect();
        values.push("no-such-value".into());
        values.dedup();
        for v in values {
            shapes.push(Query {
                equals: vec![(a.into(), v)],
                ..Query::default()
            });
        }
    }
    let eq = |pairs: &[(&str, &str)]| Query {
        equals: pairs
            .iter()
            .map(|(a, v)| (a.to_string(), v.to_string()))
            .collect(),
        ..Query::default()
    };
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
    let window = |from: Option<i64>, to: Option<i64>| Query {
        event_from: from,
        event_to: to,
        ..Query::default()
    };
    shapes.extend([
        window(Some(lo), Some(hi)),
        window(Some(lo), None),
        window(None, Some(hi)),
        window(Some(hi), Some(hi)),
        window(Some(hi), Some(hi + 1)),
        window(Some(i64::MIN), Some(i64::MAX)),
        Query {
            equals: vec![("type".into(), "type.created".into())],
            ..window(Some(lo), Some(hi))
        },
        Query {
            equals: vec![("tenant".into(), "tenant-4".into())],
            ..window(None, Some(hi))
        },
    ]);
    // Equality keys with windows whose bounds are the matching record's own event time.
    for k in [100, n - 200] {
        let t = ev(k).time_ns;
        let own = |a: &str| (a.to_string(), ev(k).axis(a).unwrap().to_string());
        for a in ["id", "type", "scope"] {
            shapes.push(Query {
                equals: vec![own(a)],
                ..window(None, Some(t))
            });
            shapes.push(Query {
                equals: vec![own(a)],
                ..window(Some(t), Some(t + 1))
            });
            shapes.push(Query {
                equals: vec![own(a)],
                ..window(Some(t + 1), None)
            });
        }
    }
    // Ingest-time windows from the ingest times the records really got.
    let (i1, i2) = (model.ingested_ns[n / 4], model.ingested_ns[3 * n / 4]);
    let ingest = |from: Option<i64>, to: Option<i64>| Query {
        ingest_from: from,
        ingest_to: to,
        ..Query::default()
    };
    shapes.extend([
        ingest(Some(i1), Some(i2)),
        ingest(Some(i1), None),
        ingest(None, Some(i2)),
        ingest(Some(i2), Some(i1)),
        ingest(Some(i2 + 1), None),
        Query {
            equals: vec![("source".into(), "svc-1".into())],
            ..ingest(Some(i1), Some(i2))
        },
        Query {
            event_from: Some(lo),
            ..ingest(None, Some(i2))
        },
    ]);
    // The log as it was, and cursors.
    for size in [0, 1, 999, n as u64 - 1, n as u64, 10 * n as u64] {
        shapes.push(Query {
            as_of_size: Some(size),
            ..Query::default()
        });
        shapes.push(Query {
            as_of_size: Some(size),
            ..eq(&[("source", "svc-0")])
        });
    }
    for after in [0, 1499, n as u64 - 2, n as u64 - 1, u64::MAX] {
        shapes.push(Query {
            after: Some(after),
            ..Query::default()
        });
        shapes.push(Query {
            after: Some(after),
            ..eq(&[("tenant", "tenant-0")])
        });
    }
    shapes.push(Query {
        after: Some(300),
        as_of_size: Some(2000),
        event_from: Some(lo),
        ..eq(&[("type", "type.modified")])
    });
    shapes
}

fn check_queries(store: &Store, model: &Model, stage: &str) {
    assert_eq!(store.len(), model.events.len() as u64, "{stage}");
    for q in shapes(model) {
        let want = model.answer(&q);
        let page = store.query(&every(q.clone())).unwrap();
        let got: Vec<u64> = page.records.iter().map(|r| r.0).collect();
        assert_eq!(got, want, "{stage}: {q:?}");
        assert_eq!(
            page.next_after, None,
            "{stage}: everything fit in one page: {q:?}"
        );
        for (seq, bytes) in &page.records {
            let rec: Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(rec["seq"], json!(seq), "{stage}");
            assert_eq!(rec["id"], json!(model.events[*seq as usize].id), "{stage}");
        }
        let limit = if want.len() <= 40 { 1 } else { 97 };
        assert_eq!(
            paged(store, &q, limit),
            want,
            "{stage}: paged by {limit}: {q:?}"
        );
    }
}

#[test]
fn every_query_shape_agrees_with_a_model_across_flushes_merges_reopen_and_rebuild() {
    const N: usize = 2500;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        memtable_records_max: 100,
        ..fast()
    };
    let mut rng = Rng(0x5EA1_0600);
    let events: Vec<Ev> = (0..N).map(|i| gen_event(i, &mut rng)).collect();
    let store = open(dir.path(), config.clone());
    let mut next = 0;
    let mut batch = 1;
    while next < N {
        let end = (next + batch).min(N);
        let out = store
            .append(
                events[next..end]
                    .iter()
                    .map(|e| prepared(&e.json))
                    .collect(),
            )
            .unwrap();
        assert_eq!(
            appended(&out),
            (next as u64..end as u64).collect::<Vec<_>>()
        );
        next = end;
        batch = batch % 37 + 1;
    }
    let ingested_ns = (0..N as u64)
        .map(|s| {
            sealog_model::time::parse_rfc3339(record(&store, s)["ingested_at"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    let model = Model {
        events,
        ingested_ns,
    };
    check_queries(&store, &model, "live");

    // What a crash now would leave: the index as last flushed, the rest replayed from the log.
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    store.close().unwrap();
    let store = open(crashed.path(), config.clone());
    let replayed = store.recovery().replayed;
    assert!(
        replayed < 100 + 37,
        "the index covered all but the memtable, yet {replayed} were replayed"
    );
    check_queries(&store, &model, "after a crash");
    drop(store);

    let store = open(dir.path(), config.clone());
    assert_eq!(
        store.recovery().replayed,
        0,
        "a clean close leaves nothing to replay"
    );
    assert_eq!(store.recovery().records, N as u64);
    check_queries(&store, &model, "reopened");
    store.close().unwrap();

    fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = open(dir.path(), config);
    assert_eq!(
        store.recovery().replayed,
        N as u64,
        "the whole index is rebuilt from the log"
    );
    assert_eq!(store.recovery().cut, None);
    check_queries(&store, &model, "index rebuilt");
    for e in model.events.iter().step_by(97) {
        let rid = prepared(&e.json).record_id;
        assert_eq!(
            store
                .seq_of(&rid)
                .map(|s| model.events[s as usize].id.clone()),
            Some(e.id.clone())
        );
    }
}

// ---------------------------------------------------------------------------------------
// Files.

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            // `fs::copy` keeps the mode: sealed segments stay read-only, the key stays private.
            // The store's background flusher may delete a merged-away index run between the
            // listing and the copy; a crash at that moment would not have it either.
            match fs::copy(entry.path(), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copy {}: {e}", entry.path().display()),
            }
        }
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    out.sort();
    out
}

/// Frame starts and ends in a segment's bytes, read by the documented layout.
fn frame_spans(bytes: &[u8], from: usize) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = from;
    while at + FRAME_HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + FRAME_HEADER_BYTES + len;
        assert!(len > 0 && end <= bytes.len(), "not a whole frame at {at}");
        spans.push((at, end));
        at = end;
    }
    assert_eq!(at, bytes.len(), "trailing bytes after the last frame");
    spans
}

fn make_writable(path: &Path) -> u32 {
    let mode = fs::metadata(path).unwrap().permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o200)).unwrap();
    mode
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mode = make_writable(path);
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn flip_byte(path: &Path, at: usize) {
    let mode = make_writable(path);
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn open_err(dir: &Path) -> String {
    match Store::open(dir, fast()) {
        Ok(s) => panic!("open succeeded with {} records", s.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn segments_roll_are_sealed_read_only_and_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        segment_bytes_max: 4096,
        ..Config::default()
    };
    let ids: Vec<String> = (0..400).map(|i| format!("r{i}")).collect();
    {
        let store = open(dir.path(), config.clone());
        for chunk in ids.chunks(5) {
            store
                .append(chunk.iter().map(|id| prepared(&simple(id))).collect())
                .unwrap();
        }
        store.close().unwrap();
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
        let frames = frame_spans(&bytes, HEADER_BYTES as usize);
        for (k, (start, end)) in frames.iter().enumerate() {
            let rec: Value =
                serde_json::from_slice(&bytes[start + FRAME_HEADER_BYTES..*end]).unwrap();
            assert_eq!(rec["seq"], json!(first + k as u64));
        }
        next_seq += frames.len() as u64;
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
        paged(&store, &Query::default(), 33),
        (0..400).collect::<Vec<_>>()
    );
    let out = store
        .append(vec![prepared(&simple("after-reopen"))])
        .unwrap();
    assert_eq!(appended(&out), [400]);
    assert_eq!(record(&store, 400)["id"], json!("after-reopen"));
}

/// A crash between sealing a full segment and creating the next leaves a full, read-only
/// last segment. Nothing is damaged, so opening must work without writing to it. Root may
/// open a 0o444 file for writing, so this fails only when run as another user.
#[test]
fn a_crash_right_after_sealing_leaves_a_store_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        segment_bytes_max: 4096,
        ..fast()
    };
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
            store
                .append(vec![prepared(&simple(&format!("s{n}")))])
                .unwrap();
            n += 1;
        }
        store.close().unwrap();
    }
    let last = segments(dir.path()).pop().unwrap();
    fs::set_permissions(&last, fs::Permissions::from_mode(0o444)).unwrap();
    let sealed_bytes = fs::read(&last).unwrap();
    let store = open(dir.path(), config);
    assert_eq!(store.len(), n);
    let out = store.append(vec![prepared(&simple("next"))]).unwrap();
    assert_eq!(appended(&out), [n]);
    assert_eq!(record(&store, n)["id"], json!("next"));
    store.close().unwrap();
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
    let events: Vec<PreparedEvent> = (0..base)
        .map(|i| prepared(&simple(&format!("base{i}"))))
        .collect();
    for chunk in events.chunks(8) {
        store.append(chunk.to_vec()).unwrap();
    }
    copy_dir(live.path(), snapshot.path());
    let seg = segments(snapshot.path()).pop().unwrap();
    let base_len = fs::metadata(&seg).unwrap().len();
    for i in 0..3 {
        let mut ev = simple(&format!("torn{i}"));
        ev["data"]["pad"] = json!("p".repeat(100 * (i + 1)));
        store.append(vec![prepared(&ev)]).unwrap();
    }
    let records = (0..base + 3)
        .map(|s| store.get(s).unwrap().unwrap())
        .collect();
    store.close().unwrap();
    let live_seg = live.path().join("log").join(seg.file_name().unwrap());
    let tail = fs::read(live_seg).unwrap()[base_len as usize..].to_vec();
    let ends: Vec<usize> = frame_spans(&tail, 0).iter().map(|s| s.1).collect();
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

fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.next() as u8).collect()
}

fn check_torn_tail(setup: &TornSetup, config: &Config, written: usize, junk: &[u8]) {
    let what = format!(
        "{written} bytes of the new frames then {} bytes of junk",
        junk.len()
    );
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
    if written == boundary && junk.is_empty() {
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
    let out = store.append(vec![prepared(&fresh)]).unwrap();
    assert_eq!(
        appended(&out),
        [expected],
        "{what}: the next append takes the next seq"
    );
    store.close().unwrap();

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
        store.seq_of(&prepared(&fresh).record_id),
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
            cuts.extend((1..=FRAME_HEADER_BYTES + 1).map(|k| start + k));
        }
        cuts.sort_unstable();
        cuts.dedup();
        for &written in &cuts {
            check_torn_tail(&setup, &config, written, &[]);
        }
        for (i, &written) in [0, e1 + 3, e2, e3 - 1, e3].iter().enumerate() {
            check_torn_tail(&setup, &config, written, &[0; 7]);
            check_torn_tail(&setup, &config, written, &[0; 4096]);
            check_torn_tail(&setup, &config, written, &[0xff; 8]);
            check_torn_tail(&setup, &config, written, &garbage(300, i as u64));
        }
    }
}

/// A crash after a new segment file was created but before its header was durable.
#[test]
fn a_new_segment_with_a_torn_header_is_replaced() {
    let config = Config {
        segment_bytes_max: 4096,
        ..fast()
    };
    for header_bytes in [0usize, 1, 8, 15] {
        let live = tempfile::tempdir().unwrap();
        let store = open(live.path(), config.clone());
        for i in 0..30 {
            store
                .append(vec![prepared(&simple(&format!("h{i}")))])
                .unwrap();
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
        let out = store.append(vec![prepared(&simple("next"))]).unwrap();
        assert_eq!(appended(&out), [30]);
        store.close().unwrap();
        let bytes = fs::read(&torn).unwrap();
        assert_eq!(
            &bytes[..16],
            &header[..],
            "the segment was recreated with its header"
        );
        let store = open(dir.path(), config.clone());
        assert_eq!(store.len(), 31);
        assert_eq!(record(&store, 30)["id"], json!("next"));
    }
}

fn closed_store(dir: &Path, config: &Config, n: usize) {
    let store = open(dir, config.clone());
    for i in 0..n {
        store
            .append(vec![prepared(&simple(&format!("d{i}")))])
            .unwrap();
    }
    store.close().unwrap();
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
        let (start, _) = frame_spans(&before, HEADER_BYTES as usize)[5];
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
            fs::metadata(&seg).unwrap().len(),
            before.len() as u64,
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
        ..fast()
    };
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), &config, 100);
    fs::remove_dir_all(dir.path().join("index")).unwrap();
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let sealed = &segs[1];
    let bytes = fs::read(sealed).unwrap();
    let frames = frame_spans(&bytes, HEADER_BYTES as usize);
    // Even the last frame of a sealed segment: it was fsynced before the next one began.
    for (start, end) in [frames[2], frames[frames.len() - 1]] {
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
    let (start, _) = frame_spans(&bytes, HEADER_BYTES as usize)[7];
    flip_byte(&seg, start + FRAME_HEADER_BYTES + 3);
    let store = open(dir.path(), config);
    assert_eq!(store.len(), 30);
    assert!(
        matches!(store.get(7), Err(StoreError::Corrupted(_))),
        "{:?}",
        store.get(7)
    );
    assert!(store.query(&axis("id", "d7")).is_err());
    assert_eq!(record(&store, 6)["id"], json!("d6"));
    assert_eq!(record(&store, 8)["id"], json!("d8"));
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
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
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
    first.append(vec![prepared(&simple("x"))]).unwrap();
    let err = Store::open(dir.path(), Config::default())
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
    let out = first.append(vec![prepared(&simple("y"))]).unwrap();
    assert_eq!(appended(&out), [1]);
    first.close().unwrap();

    let second = open(dir.path(), Config::default());
    assert_eq!(second.len(), 2);
}

/// A tiny memtable makes a run every few records and merges them again and again; every
/// merge must keep each tenant's postings, under both the scope and the tenant axis.
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
        let seq = store.append(vec![prepared(&ev)]).unwrap()[0].seq().unwrap();
        by_tenant.entry(tenant).or_default().push(seq);
    }
    for round in ["live", "reopened"] {
        for (tenant, want) in &by_tenant {
            assert_eq!(&seqs(&store, &axis("scope", tenant)), want, "{round}");
            assert_eq!(&seqs(&store, &axis("tenant", tenant)), want, "{round}");
            assert_eq!(&paged(&store, &axis("tenant", tenant), 4), want, "{round}");
        }
        store.close().unwrap();
        store = open(dir.path(), config.clone());
        assert_eq!(store.recovery().replayed, 0);
    }
}
