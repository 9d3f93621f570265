//! Several servers on one PostgreSQL log, against a real server: appends from both land in
//! one dense order with one winner per claim; a server with another key is refused; a row a
//! superuser altered is found where it is read; a database restart answers "unavailable",
//! never a wrong answer, and nothing acknowledged is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};

use sealog_merkle::note::Verifier;
use sealog_model::record::read_stored;
use sealog_pg::{APP_ROLE, LogName, PgConfig, PgLog, migrate};
use sealog_store::conformance::{TestKeys, Unique, entry, event};
use sealog_store::{LogRead, LogWrite, Outcome, StoreError, open_checkpoint};
use sealog_testkit::pg::{Cluster, Sql};

struct Setup {
    cluster: Cluster,
    config: PgConfig,
    _keys: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let cluster = Cluster::start()?;
    migrate(&cluster.conninfo, APP_ROLE).unwrap();
    let keys = sealog_testkit::tempdir();
    let config = PgConfig::new(
        &cluster.conninfo,
        LogName::Canonical,
        keys.path().join("log.key"),
    );
    Some(Setup {
        cluster,
        config,
        _keys: keys,
    })
}

fn open(config: &PgConfig) -> PgLog<Unique> {
    PgLog::open(config.clone(), Arc::new(TestKeys), Unique).unwrap()
}

#[test]
fn two_servers_append_in_one_dense_order_with_one_winner_per_claim() {
    let Some(s) = setup() else {
        return;
    };
    let servers: Vec<Arc<PgLog<Unique>>> =
        vec![Arc::new(open(&s.config)), Arc::new(open(&s.config))];
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let log = servers[t as usize % 2].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut out = Vec::new();
                for n in 0..40 {
                    let shared = entry(&event(n, "acme", "shared", None));
                    let mine = entry(&event(10_000 + t * 100 + n, "acme", "m", Some("the-one")));
                    out.extend(log.append(vec![shared, mine]).unwrap());
                }
                out
            })
        })
        .collect();
    let mut seqs_by_id: BTreeMap<[u8; 32], BTreeSet<u64>> = BTreeMap::new();
    let mut winners = Vec::new();
    for h in handles {
        for (i, o) in h.join().unwrap().into_iter().enumerate() {
            match (i % 2, o) {
                (0, Outcome::Appended { seq, id } | Outcome::Duplicate { seq, id }) => {
                    seqs_by_id.entry(id).or_default().insert(seq);
                }
                (1, Outcome::Appended { seq, .. }) => winners.push(seq),
                (1, Outcome::Refused { .. }) => {}
                (_, other) => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "one claim wins across servers: {winners:?}"
    );
    assert_eq!(seqs_by_id.len(), 40);
    assert!(
        seqs_by_id.values().all(|s| s.len() == 1),
        "one seq per id across servers"
    );
    let len = servers[0].len();
    assert_eq!(len, 41, "dense: 40 shared records and one winner");
    assert_eq!(
        servers[1].len(),
        len,
        "each server sees every server's records"
    );
    let mut last = i64::MIN;
    for seq in 0..len {
        let a = servers[0].get(seq).unwrap().unwrap();
        assert_eq!(Some(&a), servers[1].get(seq).unwrap().as_ref());
        let (stored_seq, ingested) = read_stored(&a, |r| (r.seq, r.ingested_ns)).unwrap();
        assert_eq!(stored_seq, seq);
        assert!(
            ingested >= last,
            "ingest time never decreases along the log"
        );
        last = ingested;
    }
    // Either server signs; both serve the same checkpoint and proofs against it.
    let cp = servers[1].checkpoint().unwrap();
    assert_eq!(cp.size, len);
    let verifier = Verifier::parse(&servers[0].verifier_key()).unwrap();
    assert_eq!(open_checkpoint(&cp.note, &verifier).unwrap(), cp);
    assert_eq!(servers[0].checkpoint().unwrap(), cp);
    let leaf = sealog_merkle::leaf_hash(&servers[0].get(7).unwrap().unwrap());
    let proof = servers[0].inclusion_proof(7, len).unwrap();
    sealog_merkle::verify_inclusion(&leaf, 7, len, &cp.root, &proof).unwrap();
    for log in servers {
        Arc::into_inner(log).unwrap().close_now();
    }
}

trait CloseNow {
    fn close_now(self);
}

impl CloseNow for PgLog<Unique> {
    fn close_now(self) {
        LogWrite::close(Box::new(self)).unwrap();
    }
}

#[test]
fn a_server_with_another_key_is_refused_and_one_without_reads_only() {
    let Some(s) = setup() else {
        return;
    };
    let first = open(&s.config);
    first
        .append(vec![entry(&event(1, "acme", "s", None))])
        .unwrap();
    let other_dir = sealog_testkit::tempdir();
    let other = PgConfig {
        signing_key: other_dir.path().join("other.key"),
        ..s.config.clone()
    };
    // A key file of another log: made by a log elsewhere, then offered here.
    let elsewhere = Cluster::start().unwrap();
    migrate(&elsewhere.conninfo, APP_ROLE).unwrap();
    open(&PgConfig {
        conninfo: elsewhere.conninfo.clone(),
        ..other.clone()
    })
    .close_now();
    let err = PgLog::open(other.clone(), Arc::new(TestKeys), Unique)
        .err()
        .expect("another key is refused");
    assert!(
        matches!(&err, StoreError::InvalidArgument(m) if m.contains("is not the signing key")),
        "{err}"
    );
    // Without a key file: no writing, but reading and verifying.
    let missing = PgConfig {
        signing_key: other_dir.path().join("absent.key"),
        ..s.config.clone()
    };
    let err = PgLog::open(missing.clone(), Arc::new(TestKeys), Unique)
        .err()
        .expect("no key, no writing");
    assert!(matches!(err, StoreError::NoSigningKey(_)), "{err}");
    let reader = PgLog::<Unique>::open_read_only(missing).unwrap();
    assert_eq!(reader.len(), 1);
    assert!(matches!(
        reader.append(vec![entry(&event(2, "acme", "s", None))]),
        Err(StoreError::ReadOnly)
    ));
    assert_eq!(reader.verifier_key(), first.verifier_key());
    first.close_now();
}

#[test]
fn a_row_altered_by_a_superuser_is_found_where_it_is_read() {
    let Some(s) = setup() else {
        return;
    };
    let log = open(&s.config);
    let entries = (0..5)
        .map(|n| entry(&event(n, "acme", "s", None)))
        .collect();
    log.append(entries).unwrap();
    let sql = Sql::connect(&s.cluster.conninfo);
    // The triggers stop everyone but a superuser who turns them off.
    sql.exec(
        "SET session_replication_role = replica;
         UPDATE sealog_records
           SET body = convert_to(replace(convert_from(body, 'UTF8'), 'acme', 'acmf'), 'UTF8')
           WHERE log = 'canonical' AND seq = 3;
         RESET session_replication_role;",
    )
    .unwrap();
    for read in [log.get(3).map(drop), log.inclusion_proof(3, 5).map(drop)] {
        let err = read.expect_err("an altered record is never served");
        assert!(
            matches!(&err, StoreError::Corrupted(m) if m.contains("record 3")),
            "{err}"
        );
    }
    assert!(log.get(2).unwrap().is_some(), "the others still read");
    log.close_now();
}

#[test]
fn a_database_restart_answers_unavailable_and_loses_nothing_acknowledged() {
    let Some(s) = setup() else {
        return;
    };
    let log = Arc::new(open(&s.config));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut acknowledged, mut refused, mut n) = (Vec::new(), 0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || acknowledged.len() < 20 {
                let e = entry(&event(n, "acme", "r", None));
                let id = e.id();
                match log.append(vec![e]) {
                    Ok(out) => acknowledged.push((id, out[0].seq().unwrap())),
                    Err(StoreError::Unavailable(_)) => refused += 1,
                    Err(other) => panic!("a restart is unavailable, never {other}"),
                }
                n += 1;
            }
            (acknowledged, refused, n)
        })
    };
    s.cluster.restart();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, _refused, sent) = writer.join().unwrap();
    for (id, seq) in &acknowledged {
        assert_eq!(log.seq_of(id).unwrap(), Some(*seq), "acknowledged, so kept");
    }
    // Sending everything again appends only what was not acknowledged, once.
    let again: Vec<_> = (0..sent)
        .map(|n| entry(&event(n, "acme", "r", None)))
        .collect();
    log.append(again).unwrap();
    assert_eq!(log.len(), sent);
    let cp = log.checkpoint().unwrap();
    assert_eq!(cp.size, sent);
    Arc::into_inner(log).unwrap().close_now();
}

/// A group whose inserts fail part-way (here a trigger the owner added refuses one run of
/// index keys) is neither acknowledged nor half-committed: none of its rows are there, the
/// counter has not moved, and the next group commits on a fresh connection, dense.
#[test]
fn a_group_failing_part_way_leaves_nothing_and_the_next_commits() {
    let Some(s) = setup() else {
        return;
    };
    let log = open(&s.config);
    let first: Vec<_> = (0..3)
        .map(|n| entry(&event(n, "acme", "s", None)))
        .collect();
    assert_eq!(log.append(first).unwrap().len(), 3);
    let owner = Sql::connect(&s.cluster.conninfo);
    owner
        .exec(
            "CREATE FUNCTION refuse_seq_4() RETURNS TRIGGER AS $$
             BEGIN
                 IF 4 = ANY (NEW.seqs) THEN RAISE EXCEPTION 'refused for the test'; END IF;
                 RETURN NEW;
             END; $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_seq_4 BEFORE INSERT ON sealog_key_runs
                 FOR EACH ROW EXECUTE FUNCTION refuse_seq_4();",
        )
        .unwrap();
    let group: Vec<_> = (3..6)
        .map(|n| entry(&event(n, "acme", "s", None)))
        .collect();
    let e = log.append(group).unwrap_err();
    assert!(e.to_string().contains("refused for the test"), "{e}");
    assert_eq!(log.len(), 3);
    let counts = owner.strings(
        "SELECT (SELECT count(*) FROM sealog_records)::text,
                (SELECT count(*) FROM sealog_record_ids)::text,
                (SELECT count(*) FROM sealog_tree_nodes WHERE level = 0)::text,
                (SELECT next_seq FROM sealog_log_state WHERE log = 'canonical')::text",
    );
    assert_eq!(
        counts,
        [[
            Some("3".into()),
            Some("3".into()),
            Some("3".into()),
            Some("3".into())
        ]]
    );
    owner
        .exec("DROP TRIGGER refuse_seq_4 ON sealog_key_runs")
        .unwrap();
    let again: Vec<_> = (3..6)
        .map(|n| entry(&event(n, "acme", "s", None)))
        .collect();
    let seqs: Vec<u64> = log
        .append(again)
        .unwrap()
        .iter()
        .map(|o| match o {
            Outcome::Appended { seq, .. } => *seq,
            other => panic!("expected appended, got {other:?}"),
        })
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    let page = log
        .scan(&sealog_store::Scan {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 6);
    Box::new(log).close().unwrap();
}
