//! A log in PostgreSQL, behind the storage contract (`sealog-store`'s `contract` module): the second
//! backend, sharing no storage code with the embedded store and passing the same
//! conformance suite.
//!
//! One serialization point for every server: each append transaction locks the log's
//! counter row (`sealog_log_state ... FOR UPDATE`) first, so seqs are assigned in commit
//! order, dense, and admission sees every record committed before, whichever server wrote
//! it. The same transaction inserts the records, their ids and keys, and the tree nodes they
//! complete, so the tree always holds exactly the committed records. Each server
//! group-commits: a writer thread takes the requests waiting, up to a bound, and commits them
//! as one transaction. Checkpoints are signed one at a time under a per-log advisory lock, taken
//! with the transaction that records them (a dead holder's lock goes with its session).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::{MaybeDone, maybe_done};
use sealog_merkle::note::{self, Signer, Verifier};
use sealog_merkle::{Frontier, Hash, leaf_hash};
use sealog_store::{
    Admission, Entry, Id, Indexer, Key, LIMIT_MAX, LogRead, LogView, LogWrite, Outcome, Outcomes,
    Page, Postings, Scan, Stats, Verdict, WithLeaf,
};
use sealog_store::{
    CoordinationRow, Prune, Recovery, SignedCheckpoint, StoreError, Stub, TableRow, open_checkpoint,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::conn::{Conn, connect_on, unavailable};
use crate::tree::{self, LogName, Reader};
use crate::{block_on, keys, said};

/// How a PostgreSQL log is opened.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// libpq connection string or `postgresql://` URL.
    pub conninfo: String,
    pub log: LogName,
    /// The signing key's file (C2SP signer key, owner-only), the same on every server; made
    /// for a new log. Required to write.
    pub signing_key: PathBuf,
    /// How often the writer signs a checkpoint while appends arrive; one is always signed on
    /// close.
    pub checkpoint_interval: Duration,
    /// Once a transaction holds this many events it takes no more requests. Small on
    /// purpose: the database does most of a group's work, so while one producer's batch is
    /// committed the next producer prepares its own instead of both waiting on one big group
    /// and the database then waiting on both (a single request larger than this is still one
    /// transaction).
    pub batch_events_max: usize,
    /// Event windows holding fewer records of a scan's range than this are read through the
    /// event-time index (which carries each record's seq) and sorted into log order; wider
    /// ones are filtered along the log, where a page's worth of matches comes sooner than
    /// reading the whole window.
    pub narrow_window: i64,
    /// A line each checkpoint this log signs carries after its root.
    pub extension: Option<sealog_store::Extension>,
}

impl PgConfig {
    pub fn new(conninfo: &str, log: LogName, signing_key: PathBuf) -> Self {
        PgConfig {
            conninfo: conninfo.to_string(),
            log,
            signing_key,
            checkpoint_interval: Duration::from_secs(1),
            batch_events_max: 1_000,
            narrow_window: 20_000,
            extension: None,
        }
    }
}

fn i64_of(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::InvalidArgument(format!("{n} is out of range")))
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).expect("a stored seq or size is not negative")
}

fn hash_of(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupted(format!("{what} is not 32 bytes")))
}

/// Microseconds since the epoch as a `timestamptz` expression over parameter `$n`.
fn ts(n: usize) -> String {
    format!("('epoch'::timestamptz + ${n}::bigint * interval '1 microsecond')")
}

/// A `timestamptz` column as microseconds since the epoch.
fn us(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000000)::bigint")
}

/// The verifier key a log signs with now: its first key, or the last a rotation finished.
const CURRENT_KEY: &str = "SELECT vkey FROM sealog_log_keys WHERE log = $1
    AND event IN ('created', 'finished') ORDER BY n DESC LIMIT 1";

/// The newest checkpoint note of log `$1` (of two at one size, the one kept last).
const NEWEST_NOTE: &str =
    "SELECT note FROM sealog_checkpoints WHERE log = $1 ORDER BY size DESC, n DESC LIMIT 1";

/// Adds event `$2` of verifier key `$3` to log `$1`'s key history, numbered next.
const ADD_KEY_EVENT: &str = "INSERT INTO sealog_log_keys (log, n, event, vkey)
    SELECT $1, COALESCE(max(n), -1) + 1, $2, $3 FROM sealog_log_keys WHERE log = $1";

/// The postings of a key: its runs `k`, each unnested into seqs `s`.
const POSTINGS: &str = "sealog_key_runs k CROSS JOIN LATERAL unnest(k.seqs) AS s(seq)";

/// A posting of a pruned record counts only if its stub keeps that key.
const LIVE_KEY: &str = "NOT EXISTS (SELECT 1 FROM sealog_pruned p
    WHERE p.log = k.log AND p.seq = s.seq AND NOT (uuid_send(k.key) = ANY (p.kept)))";

/// Whether the record `r` has a posting under the key `$n` (`$n` replaced): its run is the
/// first of the key's runs not ending below it.
const HAS_KEY: &str = "EXISTS (SELECT 1 FROM (SELECT k.first_seq, k.seqs FROM sealog_key_runs k
    WHERE k.log = r.log AND k.key = $n AND k.last_seq >= r.seq ORDER BY k.last_seq LIMIT 1) k
    WHERE k.first_seq <= r.seq AND r.seq = ANY (k.seqs))";

/// Each key of `$2` with the lowest seq below `$3` indexed under it (keys without one are left
/// out): one index probe per key, a nested loop the planner cannot turn into a scan of the
/// table, whatever its statistics say while a fresh log fills.
fn firsts_sql() -> String {
    format!(
        "SELECT a.key, f.seq FROM unnest($2::uuid[]) AS a(key)
         CROSS JOIN LATERAL (SELECT s.seq FROM {POSTINGS}
           WHERE k.log = $1 AND k.key = a.key AND k.first_seq < $3 AND s.seq < $3
             AND {LIVE_KEY}
           ORDER BY k.last_seq, s.seq LIMIT 1) f"
    )
}

struct Shared {
    rt: tokio::runtime::Runtime,
    conn: Conn,
    log: LogName,
    /// The key that signs (when writing) and its verifier key; a rotation changes both.
    signer: std::sync::RwLock<Option<Signer>>,
    verifier: std::sync::RwLock<Verifier>,
    key_path: PathBuf,
    /// The highest count of records this opening has seen committed: `len` never decreases.
    len: AtomicU64,
    latest: Mutex<Option<(SignedCheckpoint, SystemTime)>>,
    commits: AtomicU64,
    committed_events: AtomicU64,
    narrow_window: i64,
    extension: Option<sealog_store::Extension>,
}

/// What the writer thread is asked to do.
enum Request<A: Admission> {
    Append {
        entries: Vec<Entry<A::Claim>>,
        reply: mpsc::SyncSender<Result<Outcomes<A>, StoreError>>,
    },
    /// Sign a checkpoint of everything committed, unless one as large is signed.
    Sign {
        reply: mpsc::SyncSender<Result<SignedCheckpoint, StoreError>>,
    },
    Prune {
        records: Vec<Prune>,
        reply: mpsc::SyncSender<Result<u64, StoreError>>,
    },
    /// Hand signing over to the prepared key; answers the retired verifier key.
    FinishRotation {
        reply: mpsc::SyncSender<Result<String, StoreError>>,
    },
}

/// A log in PostgreSQL (see the module's documentation).
pub struct PgLog<A: Admission> {
    shared: Arc<Shared>,
    tx: Option<Sender<Request<A>>>,
    writer: Option<JoinHandle<Result<(), StoreError>>>,
}

impl<A: Admission> PgLog<A> {
    /// Opens the log for writing: its signing key is read from `config.signing_key` (made,
    /// with the log's first key row, for a new log) and must be the key the database names.
    /// The empty tree is signed at creation, like the embedded store's.
    pub fn open(
        config: PgConfig,
        indexer: Arc<dyn Indexer>,
        admission: A,
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared::open(&config, true)?);
        let (tx, rx) = mpsc::channel();
        let writer = {
            let shared = shared.clone();
            let indexer = indexer.clone();
            let conninfo = config.conninfo.clone();
            std::thread::Builder::new()
                .name(format!("sealog-pg-{}", config.log.as_str()))
                .spawn(move || {
                    Writer {
                        shared,
                        indexer,
                        conninfo,
                        client: None,
                        statements: None,
                        frontier: None,
                        admission,
                        batch_events_max: config.batch_events_max.max(1),
                        checkpoint_interval: config.checkpoint_interval,
                    }
                    .run(rx)
                })
                .map_err(|e| StoreError::Poisoned(format!("cannot start the writer: {e}")))?
        };
        let log = PgLog {
            shared,
            tx: Some(tx),
            writer: Some(writer),
        };
        // A new log signs its empty tree, so that a log with records and no checkpoint is
        // one that lost them.
        log.ask_sign()?;
        Ok(log)
    }

    fn ask_sign(&self) -> Result<SignedCheckpoint, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, answer) = mpsc::sync_channel(1);
        tx.send(Request::Sign { reply })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Opens the log to read and verify only (no key needed): appends are refused.
    pub fn open_read_only(config: PgConfig) -> Result<Self, StoreError> {
        Ok(PgLog {
            shared: Arc::new(Shared::open(&config, false)?),
            tx: None,
            writer: None,
        })
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        drop(self.tx.take());
        match self.writer.take() {
            Some(w) => w
                .join()
                .map_err(|_| StoreError::Poisoned("the writer thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl<A: Admission> Drop for PgLog<A> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Shared {
    fn open(config: &PgConfig, write: bool) -> Result<Shared, StoreError> {
        let rt = crate::conn::io_runtime()?;
        let conn = Conn::open(&rt, &config.conninfo)?;
        let log = config.log;
        let (signer, verifier) = Self::keys(&rt, &conn, log, &config.signing_key, write)?;
        let shared = Shared {
            rt,
            conn,
            log,
            signer: std::sync::RwLock::new(signer),
            verifier: std::sync::RwLock::new(verifier),
            key_path: config.signing_key.clone(),
            len: AtomicU64::new(0),
            latest: Mutex::new(None),
            commits: AtomicU64::new(0),
            committed_events: AtomicU64::new(0),
            narrow_window: config.narrow_window,
            extension: config.extension.clone(),
        };
        shared.refresh_len()?;
        let latest = shared.latest_from_db()?;
        if latest.is_none() && shared.len() > 0 {
            return Err(StoreError::Corrupted(format!(
                "the {} log has {} records but no signed checkpoint: its checkpoints were deleted",
                log.as_str(),
                shared.len()
            )));
        }
        Ok(shared)
    }

    /// The signer (when writing) and the verifier key of the log, from the key file and the
    /// database: a new log's first key is recorded there; a log that has one never takes
    /// another in its place.
    fn keys(
        rt: &tokio::runtime::Runtime,
        conn: &Conn,
        log: LogName,
        path: &std::path::Path,
        write: bool,
    ) -> Result<(Option<Signer>, Verifier), StoreError> {
        let session = conn.session(rt)?;
        let client = &session.client;
        let known = |client: &Client| -> Result<Option<String>, StoreError> {
            let row = block_on(rt, client.query_opt(CURRENT_KEY, &[&log.as_str()]))
                .map_err(unavailable)?;
            Ok(row.map(|r| r.get(0)))
        };
        let parse = |vkey: &str| {
            Verifier::parse(vkey).map_err(|e| {
                StoreError::Corrupted(format!("the database's verifier key {vkey:?}: {e}"))
            })
        };
        let mut on_file = keys::read_signer(path)?;
        // A rotation that committed but stopped before the key file was handed over.
        if let (Some(vkey), Some(current)) = (known(client)?, on_file.as_ref())
            && current.verifier().to_vkey() != vkey
            && let Some(next) = keys::read_signer(&keys::next_path(path))?
            && next.verifier().to_vkey() == vkey
            && write
        {
            keys::hand_over(path)?;
            on_file = Some(next);
        }
        match (known(client)?, on_file) {
            (Some(vkey), Some(signer)) if signer.verifier().to_vkey() != vkey => {
                Err(StoreError::InvalidArgument(format!(
                    "{} is not the signing key of the {} log in this database, which names {vkey}",
                    path.display(),
                    log.as_str()
                )))
            }
            (Some(vkey), signer) => {
                if write && signer.is_none() {
                    return Err(StoreError::NoSigningKey(format!(
                        "{} is missing: the {} log in this database is signed by {vkey}; give every server that writes it the same key file",
                        path.display(),
                        log.as_str()
                    )));
                }
                Ok((signer.filter(|_| write), parse(&vkey)?))
            }
            (None, _) if !write => Err(StoreError::InvalidArgument(format!(
                "the {} log in this database has no key yet: a server opening it for writing makes one",
                log.as_str()
            ))),
            (None, signer) => {
                let signed = block_on(
                    rt,
                    client.query_opt(
                        "SELECT 1 FROM sealog_checkpoints WHERE log = $1 LIMIT 1",
                        &[&log.as_str()],
                    ),
                )
                .map_err(unavailable)?;
                if signed.is_some() {
                    return Err(StoreError::Corrupted(format!(
                        "the {} log has signed checkpoints but no key row: sealog_log_keys was emptied",
                        log.as_str()
                    )));
                }
                let signer = match signer {
                    Some(s) => s,
                    None => keys::create_signer(path)?,
                };
                let vkey = signer.verifier().to_vkey();
                block_on(
                    rt,
                    client.execute(
                        "INSERT INTO sealog_log_keys (log, n, event, vkey) VALUES ($1, 0, 'created', $2)
                         ON CONFLICT DO NOTHING",
                        &[&log.as_str(), &vkey],
                    ),
                )
                .map_err(unavailable)?;
                // Two servers making a new log at once: the first row wins.
                match known(client)? {
                    Some(k) if k == vkey => Ok((Some(signer), parse(&k)?)),
                    Some(k) => Err(StoreError::InvalidArgument(format!(
                        "another server made the {} log's key first ({k}): give this server its key file instead of {}",
                        log.as_str(),
                        path.display()
                    ))),
                    None => Err(StoreError::Corrupted(
                        "the key row just written is gone".into(),
                    )),
                }
            }
        }
    }

    fn verifier(&self) -> Verifier {
        self.verifier.read().expect("key lock").clone()
    }

    /// The key events of this log, oldest first: (n, event, verifier key).
    fn key_events(&self) -> Result<Vec<(i32, String, String)>, StoreError> {
        let rows = self.query(
            "SELECT n, event, vkey FROM sealog_log_keys WHERE log = $1 ORDER BY n",
            &[&self.log.as_str()],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// The verifier key of a prepared, unfinished rotation.
    fn pending_rotation(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .key_events()?
            .pop()
            .filter(|(_, event, _)| event == "prepared")
            .map(|(_, _, vkey)| vkey))
    }

    fn add_key_event(&self, event: &str, vkey: &str) -> Result<(), StoreError> {
        self.query(ADD_KEY_EVENT, &[&self.log.as_str(), &event, &vkey])?;
        Ok(())
    }

    fn session(&self) -> Result<Arc<crate::conn::Session>, StoreError> {
        self.conn.session(&self.rt)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.conn.query(&self.rt, sql, params)
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(StoreError::Corrupted(format!(
                "{} rows where one was expected",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Reads the committed count (every server's appends) and remembers it.
    fn refresh_len(&self) -> Result<u64, StoreError> {
        let row = self
            .query_opt(
                "SELECT next_seq FROM sealog_log_state WHERE log = $1",
                &[&self.log.as_str()],
            )?
            .ok_or_else(|| {
                StoreError::Corrupted(format!(
                    "sealog_log_state has no row for the {} log: run sealog migrate",
                    self.log.as_str()
                ))
            })?;
        let n = u64_of(row.get(0));
        Ok(self.len.fetch_max(n, Ordering::AcqRel).max(n))
    }

    fn check_size(&self, size: u64) -> Result<u64, StoreError> {
        let len = self.refresh_len()?;
        if size > len {
            return Err(StoreError::InvalidArgument(format!(
                "tree size {size} is larger than the log ({len} records)"
            )));
        }
        Ok(len)
    }

    /// Runs `f` with a reader of the stored tree (node reads prepared on the connection).
    fn with_tree<T>(&self, f: impl FnOnce(&Reader<'_, Client>) -> T) -> Result<T, StoreError> {
        let session = self.session()?;
        let node = session.prepared(&self.rt, tree::NODE)?;
        Ok(f(&Reader {
            rt: &self.rt,
            client: &session.client,
            log: self.log,
            prepared: Some(&node),
        }))
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Reader<'_, Client>) -> Result<T, sealog_merkle::ProofError>,
    ) -> Result<T, StoreError> {
        self.with_tree(f)?.map_err(|e| match e {
            sealog_merkle::ProofError::Read(sealog_merkle::ReadError::Other(m))
                if m.contains("connection") || m.contains("closed") =>
            {
                StoreError::Unavailable(m)
            }
            other => StoreError::Corrupted(format!("the {} tree: {other}", self.log.as_str())),
        })
    }

    fn raw_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.with_reader(|r| sealog_merkle::root(size, r))
    }

    /// The root of `size`, checked against the newest signed checkpoint (equal to its root,
    /// or consistent with it either way).
    fn trusted_root(&self, size: u64) -> Result<Hash, StoreError> {
        let computed = self.raw_root(size)?;
        let Some(cp) = self.latest_from_db()? else {
            return Ok(computed);
        };
        let disagree = |what: &str| {
            StoreError::Corrupted(format!(
                "the stored {} tree of size {size} {what} the signed checkpoint of size {}",
                self.log.as_str(),
                cp.size
            ))
        };
        let (old, new, old_root, new_root) = match size.cmp(&cp.size) {
            _ if size == 0 => return Ok(computed),
            std::cmp::Ordering::Equal if computed == cp.root => return Ok(computed),
            std::cmp::Ordering::Equal => return Err(disagree("does not match")),
            std::cmp::Ordering::Less => (size, cp.size, computed, cp.root),
            std::cmp::Ordering::Greater if cp.size == 0 => return Ok(computed),
            std::cmp::Ordering::Greater => (cp.size, size, cp.root, computed),
        };
        let proof = self.with_reader(|r| sealog_merkle::consistency_proof(old, new, r))?;
        sealog_merkle::verify_consistency(old, new, &old_root, &new_root, &proof)
            .map_err(|_| disagree("is not consistent with"))?;
        Ok(computed)
    }

    fn verifiers(&self) -> Result<Vec<Verifier>, StoreError> {
        let rows = self.query(
            "SELECT vkey FROM sealog_log_keys WHERE log = $1 AND event IN ('created', 'finished') ORDER BY n",
            &[&self.log.as_str()],
        )?;
        rows.iter()
            .map(|r| {
                let vkey: String = r.get(0);
                Verifier::parse(&vkey)
                    .map_err(|e| StoreError::Corrupted(format!("verifier key {vkey:?}: {e}")))
            })
            .collect()
    }

    fn open_note(&self, text: &str) -> Result<SignedCheckpoint, StoreError> {
        let mut last = String::new();
        for v in std::iter::once(self.verifier()).chain(self.verifiers()?) {
            match open_checkpoint(text, &v) {
                Ok(cp) => return Ok(cp),
                Err(e) => last = e,
            }
        }
        Err(StoreError::Corrupted(format!(
            "a checkpoint of the {} log is not signed by its key: {last}",
            self.log.as_str()
        )))
    }

    /// The newest signed checkpoint in the database, checked against the log's key.
    fn latest_from_db(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        let row = self.query_opt(NEWEST_NOTE, &[&self.log.as_str()])?;
        let Some(row) = row else {
            return Ok(None);
        };
        let cp = open_checkpoint(&row.get::<_, String>(0), &self.verifier()).map_err(|e| {
            StoreError::Corrupted(format!(
                "the newest checkpoint of the {} log is not signed by its key: {e}",
                self.log.as_str()
            ))
        })?;
        let mut latest = self.latest.lock().expect("checkpoint lock");
        if latest.as_ref().is_none_or(|(l, _)| l.size < cp.size) {
            *latest = Some((cp.clone(), SystemTime::now()));
        }
        Ok(Some(cp))
    }
}

/// An error again, for each request of a group that failed together.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupted(m) => StoreError::Corrupted(m.clone()),
        StoreError::InvalidArgument(m) => StoreError::InvalidArgument(m.clone()),
        StoreError::ReadOnly => StoreError::ReadOnly,
        other => StoreError::Poisoned(other.to_string()),
    }
}

/// What admission may ask, answered inside the append transaction (after the counter row
/// is locked, so every server's commits before it are visible).
struct TxView<'a, C: GenericClient> {
    rt: &'a tokio::runtime::Runtime,
    tx: &'a C,
    log: LogName,
    /// The seqs of the group's own ids, fetched in one query (absent: not in the log).
    prefetched: HashMap<Id, Option<u64>>,
    /// `first_with` of the keys admission said it would ask about, fetched in one query.
    first_with: HashMap<Key, Option<u64>>,
}

impl<C: GenericClient + Sync> TxView<'_, C> {
    fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<u64>, StoreError> {
        let row = block_on(self.rt, self.tx.query_opt(sql, params)).map_err(unavailable)?;
        Ok(row.map(|r| u64_of(r.get(0))))
    }
}

impl<C: GenericClient + Sync> LogView for TxView<'_, C> {
    fn seq_of(&self, id: &Id) -> Result<Option<u64>, StoreError> {
        if let Some(known) = self.prefetched.get(id) {
            return Ok(*known);
        }
        let rows = block_on(
            self.rt,
            self.tx.query(SEQ_OF_ID, &[&self.log.as_str(), &&id[..]]),
        )
        .map_err(unavailable)?;
        once_each(&rows)?;
        rows.first().map(|row| held_by(row, id)).transpose()
    }

    fn first_with(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        if let Some(known) = self.first_with.get(key) {
            return Ok(*known);
        }
        self.one(
            &format!(
                "SELECT s.seq FROM {POSTINGS} WHERE k.log = $1 AND k.key = $2 AND {LIVE_KEY}
                 ORDER BY k.last_seq, s.seq LIMIT 1"
            ),
            &[&self.log.as_str(), &Uuid::from_bytes(*key)],
        )
    }

    fn has(&self, key: &Key, seq: u64) -> Result<bool, StoreError> {
        let found = self.one(
            &format!(
                "SELECT s.seq FROM (SELECT k.log, k.key, k.first_seq, k.seqs FROM sealog_key_runs k
                   WHERE k.log = $1 AND k.key = $2 AND k.last_seq >= $3
                   ORDER BY k.last_seq LIMIT 1) k, (SELECT $3::bigint AS seq) s
                 WHERE k.first_seq <= s.seq AND s.seq = ANY (k.seqs) AND {LIVE_KEY}"
            ),
            &[&self.log.as_str(), &Uuid::from_bytes(*key), &i64_of(seq)?],
        )?;
        Ok(found.is_some())
    }
}

enum Decided<R> {
    Appended(u64),
    Duplicate(u64),
    Refused(R),
}

/// The append transaction's statements, prepared once per connection: each then costs one
/// message, not a parse first.
struct Statements {
    lock_state: tokio_postgres::Statement,
    ids: tokio_postgres::Statement,
    firsts: tokio_postgres::Statement,
    records: tokio_postgres::Statement,
    record_ids: tokio_postgres::Statement,
    keys: tokio_postgres::Statement,
    nodes: tokio_postgres::Statement,
    coordination: tokio_postgres::Statement,
    state: tokio_postgres::Statement,
}

impl Statements {
    fn prepare(rt: &tokio::runtime::Runtime, client: &Client) -> Result<Self, StoreError> {
        let lock_state = format!(
            "SELECT next_seq, {}, {} FROM sealog_log_state WHERE log = $1 FOR UPDATE",
            us("last_ingested_at"),
            us("clock_timestamp()")
        );
        let firsts = firsts_sql();
        let records = format!(
            "INSERT INTO sealog_records (log, seq, record_id, ingested_at, event_ns, leaf, body)
             SELECT $1, s, r, {}, e, l, b
             FROM unnest($3::bigint[], $4::bytea[], $5::bigint[], $6::bytea[], $7::bytea[])
               AS u(s, r, e, l, b)",
            ts(2)
        );
        let state = format!(
            "UPDATE sealog_log_state SET next_seq = $2, last_ingested_at = {} WHERE log = $1",
            ts(3)
        );
        let coordination = insert_coordination_rows();
        let (lock_state, ids, firsts, records, record_ids, keys, nodes, coordination, state) =
            block_on(rt, async {
                tokio::try_join!(
                    client.prepare(&lock_state),
                    // One index probe per id, as `firsts_sql` makes one per key, and one
                    // more for each id found (a duplicate), for the record it names.
                    client.prepare(
                        "SELECT i.record_id, i.seq, r.record_id FROM unnest($2::bytea[]) AS u(id)
                         CROSS JOIN LATERAL (SELECT record_id, seq FROM sealog_record_ids
                           WHERE log = $1 AND record_id = u.id LIMIT 1) i
                         LEFT JOIN LATERAL (SELECT r.record_id FROM sealog_records r
                           WHERE r.log = $1 AND r.seq = i.seq LIMIT 1) r ON true"
                    ),
                    client.prepare(&firsts),
                    client.prepare(&records),
                    client.prepare(
                        "INSERT INTO sealog_record_ids (log, record_id, seq)
                         SELECT $1, r, s FROM unnest($2::bytea[], $3::bigint[]) AS u(r, s)"
                    ),
                    client.prepare(
                        "INSERT INTO sealog_key_runs (log, key, first_seq, last_seq, seqs)
                         SELECT $1, k, ($4::bigint[])[o], ($4::bigint[])[e], ($4::bigint[])[o:e]
                         FROM unnest($2::uuid[], $3::int[], $5::int[]) AS u(k, o, e)"
                    ),
                    client.prepare(tree::INSERT_NODES),
                    client.prepare(&coordination),
                    client.prepare(&state),
                )
            })
            .map_err(unavailable)?;
        Ok(Statements {
            lock_state,
            ids,
            firsts,
            records,
            record_ids,
            keys,
            nodes,
            coordination,
            state,
        })
    }
}

/// The one thread of a server that writes the log: group commits, checkpoints, pruning.
struct Writer<A: Admission> {
    shared: Arc<Shared>,
    indexer: Arc<dyn Indexer>,
    conninfo: String,
    client: Option<Client>,
    /// Prepared on `client`; made again with it.
    statements: Option<Statements>,
    /// The tree's right edge after this writer's last commit; loaded again when another
    /// server has committed since (or a commit failed).
    frontier: Option<Frontier>,
    admission: A,
    batch_events_max: usize,
    checkpoint_interval: Duration,
}

impl<A: Admission> Writer<A> {
    fn run(mut self, rx: Receiver<Request<A>>) -> Result<(), StoreError> {
        let mut last_signed = Instant::now();
        let mut unsigned = false;
        loop {
            let first = if unsigned {
                let wait = self
                    .checkpoint_interval
                    .saturating_sub(last_signed.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(r) => Some(r),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                }
            };
            let mut appends = Vec::new();
            let mut signs = Vec::new();
            let mut events = 0;
            let mut next = first;
            while let Some(request) = next {
                match request {
                    Request::Append { entries, reply } => {
                        events += entries.len();
                        appends.push((entries, reply));
                    }
                    Request::Sign { reply } => signs.push(reply),
                    Request::Prune { records, reply } => {
                        let _ = reply.send(self.prune(&records));
                    }
                    Request::FinishRotation { reply } => {
                        let _ = reply.send(self.finish_rotation());
                    }
                }
                next = if events < self.batch_events_max {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !appends.is_empty() {
                self.commit(appends);
                unsigned = true;
            }
            if !signs.is_empty() || (unsigned && last_signed.elapsed() >= self.checkpoint_interval)
            {
                let signed = self.sign();
                if signed.is_ok() {
                    unsigned = false;
                    last_signed = Instant::now();
                }
                for reply in signs {
                    let _ = reply.send(signed.as_ref().map(Clone::clone).map_err(again));
                }
            }
        }
        self.sign().map(drop)
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        connected(&mut self.client, &self.shared.rt, &self.conninfo)
    }

    /// Commits every request of the group in one transaction and answers each.
    fn commit(&mut self, requests: Vec<Pending<A>>) {
        let all: Vec<&Entry<A::Claim>> = requests.iter().flat_map(|(e, _)| e).collect();
        let decided = self.write_group(&all);
        drop(all);
        match decided {
            Err(e) => {
                self.frontier = None;
                // The group's transaction may still be open on it: closing the connection
                // ends it (nothing of it was committed), and the next group connects afresh.
                self.client = None;
                self.statements = None;
                for (_, reply) in requests {
                    let _ = reply.send(Err(again(&e)));
                }
            }
            Ok(decided) => {
                let mut decided = decided.into_iter();
                for (entries, reply) in requests {
                    let outcomes = entries
                        .into_iter()
                        .zip(decided.by_ref())
                        .map(|(entry, d)| match d {
                            Decided::Appended(seq) => Outcome::Appended {
                                seq,
                                id: entry.id(),
                            },
                            Decided::Duplicate(seq) => Outcome::Duplicate {
                                seq,
                                id: entry.id(),
                            },
                            Decided::Refused(refusal) => Outcome::Refused { refusal, entry },
                        })
                        .collect();
                    let _ = reply.send(Ok(outcomes));
                }
            }
        }
    }

    /// One group in one transaction. Statements that do not wait on each other's answers
    /// are sent together (the connection pipelines them; the server runs them in order), so
    /// a group costs two round trips and the commit's WAL flush, whatever its size (three
    /// when the tree's right edge must be read again after another server committed).
    fn write_group(
        &mut self,
        entries: &[&Entry<A::Claim>],
    ) -> Result<Vec<Decided<A::Refusal>>, StoreError> {
        let shared = self.shared.clone();
        let (rt, log) = (&shared.rt, shared.log);
        let name = log.as_str();
        let cached = self.frontier.take();
        let mut asked: Vec<Key> = entries
            .iter()
            .flat_map(|e| self.admission.asks(e))
            .collect();
        asked.sort_unstable();
        asked.dedup();
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements = None;
        }
        let client = connected(&mut self.client, rt, &self.conninfo)?;
        if self.statements.is_none() {
            self.statements = Some(Statements::prepare(rt, client)?);
        }
        let st = self.statements.as_ref().expect("just prepared");
        let tx: &Client = client;
        let ids: Vec<&[u8]> = entries.iter().map(|e| &e.event.record_id.0[..]).collect();
        let asked_keys: Vec<Uuid> = asked.iter().map(|k| Uuid::from_bytes(*k)).collect();
        let by_log: [&(dyn ToSql + Sync); 1] = [&name];
        let by_ids: [&(dyn ToSql + Sync); 2] = [&name, &ids];
        let unbounded = i64::MAX;
        let by_keys: [&(dyn ToSql + Sync); 3] = [&name, &asked_keys, &unbounded];
        // One round trip. Every statement is prepared, so each is sent when first polled, in
        // this order, and the server runs them in that order: the counter row is locked
        // before the lookups start, and each lookup's snapshot (read committed: one per
        // statement) holds every commit of every server before the lock was granted.
        let (_, state, known, firsts) = block_on(rt, async {
            tokio::try_join!(
                tx.batch_execute("BEGIN"),
                tx.query_one(&st.lock_state, &by_log),
                tx.query(&st.ids, &by_ids),
                tx.query(&st.firsts, &by_keys),
            )
        })
        .map_err(unavailable)?;
        let next = u64_of(state.get(0));
        let last_us: Option<i64> = state.get(1);
        // Ingest time never decreases along the log, whichever server's clock (the
        // database's, here) says what.
        let ingested_us = state.get::<_, i64>(2).max(last_us.unwrap_or(i64::MIN));
        let mut prefetched: HashMap<Id, Option<u64>> =
            entries.iter().map(|e| (e.id(), None)).collect();
        for r in known {
            let id = hash_of(r.get(0), "a record id")?;
            let held: Option<&[u8]> = r.get(2);
            if held != Some(&id[..]) {
                return Err(mapped_elsewhere(&id, u64_of(r.get(1))));
            }
            prefetched.insert(id, Some(u64_of(r.get(1))));
        }
        let mut first_with: HashMap<Key, Option<u64>> = asked.iter().map(|k| (*k, None)).collect();
        for r in firsts {
            let key: Key = r.get::<_, Uuid>(0).into_bytes();
            first_with.insert(key, Some(u64_of(r.get(1))));
        }
        let view = TxView {
            rt,
            tx,
            log,
            prefetched,
            first_with,
        };
        let mut group = A::Group::default();
        let mut decided = Vec::with_capacity(entries.len());
        let mut fresh: Vec<&Entry<A::Claim>> = Vec::new();
        for entry in entries {
            let seq = next + fresh.len() as u64;
            match self.admission.admit(&mut group, entry, seq, &view)? {
                Verdict::Admit => {
                    fresh.push(entry);
                    decided.push(Decided::Appended(seq));
                }
                Verdict::Duplicate(s) => decided.push(Decided::Duplicate(s)),
                Verdict::Refuse(r) => decided.push(Decided::Refused(r)),
            }
        }
        if fresh.is_empty() {
            block_on(rt, tx.batch_execute("COMMIT")).map_err(unavailable)?;
            self.frontier = cached;
            return Ok(decided);
        }
        let ingested_at = sealog_model::time::format_micros(ingested_us.saturating_mul(1000));
        let end = next + fresh.len() as u64;
        let seqs = (next..end).map(i64_of).collect::<Result<Vec<i64>, _>>()?;
        let postings: Vec<(&Key, i64)> = fresh
            .iter()
            .zip(&seqs)
            .flat_map(|(entry, &seq)| entry.keys.iter().map(move |k| (k, seq)))
            .collect();
        let runs = Runs::of(postings)?;
        let fresh_ids: Vec<&[u8]> = fresh.iter().map(|e| &e.event.record_id.0[..]).collect();
        let end_i64 = i64_of(end)?;
        let rows = coordination_rows(&fresh);
        let id_params: [&(dyn ToSql + Sync); 3] = [&name, &fresh_ids, &seqs];
        let key_params: [&(dyn ToSql + Sync); 5] =
            [&name, &runs.keys, &runs.starts, &runs.seqs, &runs.ends];
        let state_params: [&(dyn ToSql + Sync); 3] = [&name, &end_i64, &ingested_us];
        // The statements that need no record's bytes go first, and the server runs them
        // (the index's runs are most of a group's database time) while this thread builds
        // the records and hashes their leaves. The counter moves before the records go in:
        // the database takes a record only at a seq its transaction moved the counter over.
        let mut early = Box::pin(maybe_done(async {
            let (keys, record_ids, coordination, state) = tokio::join!(
                tx.execute(&st.keys, &key_params),
                tx.execute(&st.record_ids, &id_params),
                rows.insert(tx, &st.coordination, ingested_us),
                tx.execute(&st.state, &state_params),
            );
            keys.and(record_ids).and(coordination).and(state)
        }));
        block_on(rt, send(early.as_mut()));
        let mut event_ns = Vec::with_capacity(fresh.len());
        let mut bodies = Vec::with_capacity(fresh.len());
        let mut leaves = Vec::with_capacity(fresh.len());
        for (entry, seq) in fresh.iter().zip(next..) {
            let mut body = Vec::with_capacity(entry.event.bytes().len() + 128);
            entry.event.write_record(seq, &ingested_at, &mut body);
            leaves.push(leaf_hash(&body));
            bodies.push(body);
            event_ns.push(entry.event_ns);
        }
        let loaded = match cached.filter(|f| f.size() == next) {
            Some(f) => Ok(f),
            None => tree::load_frontier(rt, tx, log, next).map_err(pg_error),
        };
        let mut frontier = match loaded {
            Ok(f) => f,
            Err(e) => {
                // A statement sent before may have failed first (and the read with it).
                block_on(rt, early.as_mut());
                early_answer(early.as_mut()).map_err(unavailable)?;
                return Err(e);
            }
        };
        let nodes = tree::Nodes::pushed(&mut frontier, &leaves);
        let leaf_bytes: Vec<&[u8]> = leaves.iter().map(|l| &l[..]).collect();
        let body_bytes: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let record_params: [&(dyn ToSql + Sync); 7] = [
            &name,
            &ingested_us,
            &seqs,
            &fresh_ids,
            &event_ns,
            &leaf_bytes,
            &body_bytes,
        ];
        // Every answer is awaited, and the first failure in the order the statements ran is
        // the one reported: a failed insert aborts the transaction, so each statement after
        // it (and the COMMIT, answered with a rollback) fails too, and which of those answers
        // a join would see first is not fixed.
        let ((), records, tree, commit) = block_on(rt, async {
            tokio::join!(
                early.as_mut(),
                tx.execute(&st.records, &record_params),
                nodes.insert(tx, &st.nodes, log),
                tx.batch_execute("COMMIT"),
            )
        });
        early_answer(early.as_mut())
            .and(records)
            .and(tree)
            .and(commit.map(|()| 0))
            .map_err(unavailable)?;
        self.frontier = Some(frontier);
        shared.len.fetch_max(end, Ordering::AcqRel);
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared
            .committed_events
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        Ok(decided)
    }

    /// Signs a checkpoint of everything committed, one signer at a time across servers,
    /// after checking the tree extends the newest checkpoint; returns the newest.
    fn sign(&mut self) -> Result<SignedCheckpoint, StoreError> {
        let shared = self.shared.clone();
        let signer = shared.signer.read().expect("key lock").clone();
        let signer = signer.as_ref().ok_or(StoreError::ReadOnly)?;
        let (rt, log) = (&shared.rt, shared.log);
        let name = log.as_str();
        let client = self.client()?;
        let tx = block_on(rt, client.transaction()).map_err(unavailable)?;
        let signed = async {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&(log.lock_key() | 0x0100_0000_0000_0000)],
            )
            .await?;
            let size = tx
                .query_one(
                    "SELECT next_seq FROM sealog_log_state WHERE log = $1",
                    &[&name],
                )
                .await?;
            let newest = tx.query_opt(NEWEST_NOTE, &[&name]).await?;
            let key = tx.query_opt(CURRENT_KEY, &[&name]).await?;
            Ok::<_, tokio_postgres::Error>((
                u64_of(size.get(0)),
                newest.map(|r| r.get(0)),
                key.map(|r| r.get::<_, String>(0)),
            ))
        };
        let (size, newest, key): (u64, Option<String>, Option<String>) =
            block_on(rt, signed).map_err(unavailable)?;
        if key.as_deref() != Some(signer.verifier().to_vkey().as_str()) {
            return Err(StoreError::InvalidArgument(format!(
                "the {name} log's signing key was rotated by another server: give this server the new key file ({}) and restart it",
                shared.key_path.display()
            )));
        }
        let newest = newest.map(|n| shared.open_note(&n)).transpose()?;
        if let Some(n) = newest.as_ref().filter(|n| n.size >= size) {
            return Ok(n.clone());
        }
        let reader = Reader {
            rt,
            client: &tx,
            log,
            prepared: None,
        };
        let tree_error =
            |e: sealog_merkle::ProofError| StoreError::Corrupted(format!("the {name} tree: {e}"));
        let root = sealog_merkle::root(size, &reader).map_err(tree_error)?;
        if let Some(n) = newest.as_ref().filter(|n| n.size > 0) {
            let proof =
                sealog_merkle::consistency_proof(n.size, size, &reader).map_err(tree_error)?;
            sealog_merkle::verify_consistency(n.size, size, &n.root, &root, &proof).map_err(
                |_| {
                    StoreError::Corrupted(format!(
                        "the {name} tree of {size} does not extend the signed checkpoint of {}: refusing to sign it",
                        n.size
                    ))
                },
            )?;
        }
        let lines = shared.extension.as_ref().and_then(|e| (e.0)());
        let note_text =
            note::sign_tree_head_with(size, root, lines.into_iter().collect(), &[signer])
                .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        keep_note(&shared, tx, size, root, note_text, None)
    }

    /// Hands signing over to the prepared key: the newest tree head is signed by the old
    /// key, then by both (that note and the key's `finished` row in one transaction), and
    /// only then does the key file name the new key. A crash after the commit is finished by
    /// the next opening (the key file is handed over where the database names the new key).
    fn finish_rotation(&mut self) -> Result<String, StoreError> {
        let shared = self.shared.clone();
        let next = keys::read_signer(&keys::next_path(&shared.key_path))?
            .ok_or_else(|| StoreError::InvalidArgument("no key rotation is prepared".into()))?;
        let old = shared
            .signer
            .read()
            .expect("key lock")
            .clone()
            .ok_or(StoreError::ReadOnly)?;
        let cp = self.sign()?;
        let (rt, log) = (&shared.rt, shared.log);
        // The same checkpoint, its extension lines kept: one size, one body.
        let note_text = note::sign_tree_head_with(
            cp.size,
            cp.root,
            sealog_store::extensions_of(&cp.note),
            &[&old, &next],
        )
        .map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let client = self.client()?;
        let tx = block_on(rt, client.transaction()).map_err(unavailable)?;
        let next_key = next.verifier().to_vkey();
        block_on(rt, async {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&(log.lock_key() | 0x0100_0000_0000_0000)],
            )
            .await?;
            tx.execute(ADD_KEY_EVENT, &[&log.as_str(), &"finished", &next_key])
                .await
        })
        .map_err(unavailable)?;
        let handed = keep_note(
            &shared,
            tx,
            cp.size,
            cp.root,
            note_text,
            Some(&shared.key_path),
        )?;
        *shared.signer.write().expect("key lock") = Some(next);
        *shared.verifier.write().expect("key lock") = Verifier::parse(&next_key)
            .map_err(|e| StoreError::Corrupted(format!("the new verifier key: {e}")))?;
        *shared.latest.lock().expect("checkpoint lock") = Some((handed, SystemTime::now()));
        Ok(old.verifier().to_vkey())
    }

    /// Retention through the database's one sanctioned function, all in one transaction.
    fn prune(&mut self, records: &[Prune]) -> Result<u64, StoreError> {
        let shared = self.shared.clone();
        let (rt, name) = (&shared.rt, shared.log.as_str());
        let len = shared.refresh_len()?;
        if let Some(p) = records.iter().find(|p| p.seq >= len) {
            return Err(StoreError::InvalidArgument(format!(
                "record {} is past the log ({len} records)",
                p.seq
            )));
        }
        let indexer = self.indexer.clone();
        let client = self.client()?;
        let tx = block_on(rt, client.transaction()).map_err(unavailable)?;
        let mut pruned = 0;
        for p in records {
            let row = block_on(
                rt,
                tx.query_one(
                    &format!(
                        "SELECT leaf, record_id, {}, event_ns FROM sealog_records WHERE log = $1 AND seq = $2",
                        us("ingested_at")
                    ),
                    &[&name, &i64_of(p.seq)?],
                ),
            )
            .map_err(unavailable)?;
            let stub = Stub {
                seq: p.seq,
                leaf: hash_of(row.get(0), "a leaf")?,
                id: hash_of(row.get(1), "a record id")?,
                ingested_ns: row.get::<_, i64>(2).saturating_mul(1000),
                event_ns: row.get(3),
                link: p.link,
                key: p.key,
            };
            let kept: Vec<Vec<u8>> = indexer
                .stub_keys(&stub)
                .iter()
                .map(|k| k.to_vec())
                .collect();
            let link = p.link.map(|l| l.to_vec());
            let key = p.key.map(|k| k.to_vec());
            let done = block_on(
                rt,
                tx.query_one(
                    "SELECT sealog_prune($1, $2, $3, $4, $5)",
                    &[&name, &i64_of(p.seq)?, &link, &key, &kept],
                ),
            )
            .map_err(unavailable)?;
            if done.get::<_, bool>(0) {
                pruned += 1;
            }
        }
        block_on(rt, tx.commit()).map_err(unavailable)?;
        Ok(pruned)
    }
}

/// A group's postings as runs, one per key: its seqs in order, as slices `starts[i]..=ends[i]`
/// (1-based, as SQL arrays count) of one flat array.
struct Runs {
    keys: Vec<Uuid>,
    starts: Vec<i32>,
    ends: Vec<i32>,
    seqs: Vec<i64>,
}

impl Runs {
    /// From `(key, seq)` pairs in seq order.
    fn of(mut postings: Vec<(&Key, i64)>) -> Result<Self, StoreError> {
        // Stable: each key's seqs stay in order.
        postings.sort_by_key(|p| p.0);
        let mut runs = Runs {
            keys: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            seqs: Vec::with_capacity(postings.len()),
        };
        for (key, seq) in postings {
            let key = Uuid::from_bytes(*key);
            if runs.keys.last() != Some(&key) {
                if !runs.keys.is_empty() {
                    runs.ends.push(array_index(runs.seqs.len())?);
                }
                runs.keys.push(key);
                runs.starts.push(array_index(runs.seqs.len() + 1)?);
            }
            runs.seqs.push(seq);
        }
        if !runs.keys.is_empty() {
            runs.ends.push(array_index(runs.seqs.len())?);
        }
        Ok(runs)
    }
}

/// Polls `statements` once, which sends each to the server (a prepared statement goes out
/// when first polled), without waiting for any answer; an answer already there is kept.
async fn send<F: Future>(mut statements: Pin<&mut MaybeDone<F>>) {
    std::future::poll_fn(|cx| {
        let _ = statements.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
}

/// What statements sent with [`send`] and awaited since answered.
fn early_answer<T, F: Future<Output = Result<T, tokio_postgres::Error>>>(
    statements: Pin<&mut MaybeDone<F>>,
) -> Result<T, tokio_postgres::Error> {
    statements
        .take_output()
        .expect("the statements were awaited before their answer is taken")
}

/// An index into a group's flat array of seqs (SQL arrays count in 32 bits).
fn array_index(n: usize) -> Result<i32, StoreError> {
    i32::try_from(n).map_err(|_| {
        StoreError::InvalidArgument(format!(
            "a group of {n} postings is too large for one append"
        ))
    })
}

/// The table rows of the records appended, for their transaction: seed 004's
/// `coordination_audit_records`, `created_at` the records' ingest time. A row already there
/// (its `audit_id` is derived from the record id) is left as it is.
struct CoordinationRows<'a> {
    rows: Vec<&'a CoordinationRow>,
}

fn coordination_rows<'a, C>(fresh: &[&'a Entry<C>]) -> CoordinationRows<'a> {
    CoordinationRows {
        rows: fresh
            .iter()
            .filter_map(|e| e.row.as_ref().map(|TableRow::Coordination(r)| &**r))
            .collect(),
    }
}

/// Seed 004's rows for the group's coordination records (`$1` their ingest time).
fn insert_coordination_rows() -> String {
    format!(
        "INSERT INTO coordination_audit_records (audit_id, envelope_id, envelope_class,
             decision, reason, decision_timestamp, created_at, conflicting_envelope_id,
             preempting_envelope_id, active_envelopes_count, tenant_id)
         SELECT a::uuid, e, c, d, r, 'epoch'::timestamptz + t * interval '1 microsecond',
             {}, ce, pe, n, tn
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::bigint[], $8::text[], $9::text[], $10::int4[], $11::text[])
           AS u(a, e, c, d, r, t, ce, pe, n, tn)
         ON CONFLICT (audit_id) DO NOTHING",
        ts(1)
    )
}

impl CoordinationRows<'_> {
    /// Inserts them with [`insert_coordination_rows`] prepared as `statement`; sends nothing
    /// when there are none.
    async fn insert<C: GenericClient + Sync>(
        &self,
        tx: &C,
        statement: &tokio_postgres::Statement,
        ingested_us: i64,
    ) -> Result<u64, tokio_postgres::Error> {
        let rows = &self.rows;
        if rows.is_empty() {
            return Ok(0);
        }
        let text =
            |f: fn(&CoordinationRow) -> &str| -> Vec<&str> { rows.iter().map(|r| f(r)).collect() };
        let optional = |f: fn(&CoordinationRow) -> Option<&str>| -> Vec<Option<&str>> {
            rows.iter().map(|r| f(r)).collect()
        };
        let decided: Vec<i64> = rows
            .iter()
            .map(|r| r.decision_ns.div_euclid(1000))
            .collect();
        let counts: Vec<i32> = rows.iter().map(|r| r.active_envelopes_count).collect();
        tx.execute(
            statement,
            &[
                &ingested_us,
                &text(|r| &r.audit_id),
                &text(|r| &r.envelope_id),
                &text(|r| &r.envelope_class),
                &text(|r| &r.decision),
                &text(|r| &r.reason),
                &decided,
                &optional(|r| r.conflicting_envelope_id.as_deref()),
                &optional(|r| r.preempting_envelope_id.as_deref()),
                &counts,
                &optional(|r| r.tenant_id.as_deref()),
            ],
        )
        .await
    }
}

/// Records a signed note of the tree of `size` with `root` and commits `tx`; with
/// `hand_over`, then puts the next key in that key file's place.
fn keep_note(
    shared: &Shared,
    tx: tokio_postgres::Transaction<'_>,
    size: u64,
    root: Hash,
    note_text: String,
    hand_over: Option<&std::path::Path>,
) -> Result<SignedCheckpoint, StoreError> {
    let (rt, name) = (&shared.rt, shared.log.as_str());
    block_on(rt, async {
        tx.execute(
            "INSERT INTO sealog_checkpoints (log, size, note) VALUES ($1, $2, $3)",
            &[&name, &i64_of(size).expect("a size fits"), &note_text],
        )
        .await?;
        tx.commit().await
    })
    .map_err(unavailable)?;
    if let Some(path) = hand_over {
        keys::hand_over(path)?;
    }
    let cp = SignedCheckpoint {
        size,
        root,
        note: note_text,
    };
    *shared.latest.lock().expect("checkpoint lock") = Some((cp.clone(), SystemTime::now()));
    Ok(cp)
}

/// The writer's connection, made again when the server dropped it.
fn connected<'a>(
    slot: &'a mut Option<Client>,
    rt: &tokio::runtime::Runtime,
    conninfo: &str,
) -> Result<&'a mut Client, StoreError> {
    if slot.as_ref().is_none_or(Client::is_closed) {
        *slot = Some(connect_on(rt, conninfo)?);
    }
    Ok(slot.as_mut().expect("just connected"))
}

type AppendReply<A> = mpsc::SyncSender<Result<Outcomes<A>, StoreError>>;
/// An append waiting for its group's commit.
type Pending<A> = (Vec<Entry<<A as Admission>::Claim>>, AppendReply<A>);

fn pg_error(e: crate::PgError) -> StoreError {
    match e {
        crate::PgError::Connect(m) => StoreError::Unavailable(m),
        other => StoreError::Corrupted(other.to_string()),
    }
}

/// One record row: the columns `RECORD_COLUMNS` selects (with [`Ids::Mapped`], then the id
/// `sealog_record_ids` gives its seq).
const RECORD_COLUMNS: &str = "r.seq, r.body, r.leaf, t.hash, p.seq IS NOT NULL, p.link, p.key,
    r.record_id, (extract(epoch from r.ingested_at) * 1000000)::bigint, r.event_ns";

/// Whether a read of records also reads each one's entry in `sealog_record_ids`, to hold the
/// map to it: reads by seq and by id do (what `verify` reads every record through, and what
/// dedupe and `get_by_id` answer from); a scan, which never goes through the map, does not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ids {
    Mapped,
    Unread,
}

/// The record, the tree's leaf and the pruned stub (`RECORD_COLUMNS`) of each seq `w.seq` of
/// `driving`, each looked up by its index: `OFFSET 0` keeps the planner from turning a lookup
/// into a scan of the table when a fresh log's statistics say it is empty.
fn records_of(driving: &str, ids: Ids) -> String {
    let (mapped, map) = match ids {
        Ids::Mapped => (
            ", i.record_id",
            "LEFT JOIN LATERAL (SELECT i.record_id FROM sealog_record_ids i
               WHERE i.log = $1 AND i.seq = w.seq OFFSET 0) i ON true",
        ),
        Ids::Unread => ("", ""),
    };
    format!(
        "SELECT {RECORD_COLUMNS}{mapped} FROM {driving}
         CROSS JOIN LATERAL (SELECT * FROM sealog_records r
           WHERE r.log = $1 AND r.seq = w.seq OFFSET 0) r
         LEFT JOIN LATERAL (SELECT t.hash FROM sealog_tree_nodes t
           WHERE t.log = $1 AND t.level = 0 AND t.idx = w.seq OFFSET 0) t ON true
         LEFT JOIN LATERAL (SELECT p.seq, p.link, p.key FROM sealog_pruned p
           WHERE p.log = $1 AND p.seq = w.seq OFFSET 0) p ON true
         {map}"
    )
}

/// A record row read back, checked: its bytes hash to its leaf and the tree's leaf is the
/// same (a pruned record's stub keeps that leaf); its columns say what its bytes say; and,
/// where the row carries it, `sealog_record_ids` gives its seq its id.
fn record_of(row: &tokio_postgres::Row) -> Result<WithLeaf, StoreError> {
    let seq = u64_of(row.get(0));
    let leaf = hash_of(row.get(2), "a leaf")?;
    let tree: Option<&[u8]> = row.get(3);
    if tree != Some(&leaf[..]) {
        return Err(StoreError::Corrupted(format!(
            "record {seq}: its leaf is not the tree's leaf at {seq}"
        )));
    }
    let id = hash_of(row.get(7), "a record id")?;
    let ingested_us: i64 = row.get(8);
    let event_ns: i64 = row.get(9);
    let pruned = row.get::<_, bool>(4);
    let body: Vec<u8> = if pruned { Vec::new() } else { row.get(1) };
    if !pruned {
        if leaf_hash(&body) != leaf {
            return Err(StoreError::Corrupted(format!(
                "record {seq}: its bytes do not hash to its leaf (the row was altered)"
            )));
        }
        said::check(seq, &body, &id, ingested_us, event_ns)?;
    }
    if row.len() > RECORD_COLUMNS_LEN {
        let mapped: Option<&[u8]> = row.get(RECORD_COLUMNS_LEN);
        if mapped != Some(&id[..]) {
            return Err(StoreError::Corrupted(format!(
                "record {seq}: {} (the map was altered)",
                match mapped {
                    Some(other) => format!(
                        "sealog_record_ids gives its seq the id sha256:{}, not its own",
                        hex::encode(other)
                    ),
                    None => "sealog_record_ids has no id for its seq".to_string(),
                }
            )));
        }
    }
    if pruned {
        let link: Option<&[u8]> = row.get(5);
        let key: Option<&[u8]> = row.get(6);
        return Err(StoreError::Pruned(Box::new(Stub {
            seq,
            leaf,
            id,
            ingested_ns: ingested_us.saturating_mul(1000),
            event_ns,
            link: link.map(|l| hash_of(l, "a link")).transpose()?,
            key: key
                .map(|k| {
                    k.try_into()
                        .map_err(|_| StoreError::Corrupted("a stub's key is not 16 bytes".into()))
                })
                .transpose()?,
        })));
    }
    Ok((body, leaf))
}

/// How many columns `RECORD_COLUMNS` selects.
const RECORD_COLUMNS_LEN: usize = 10;

/// Refuses rows that hold one seq twice: the partitioned table's key cannot, and the database
/// refuses such an insert (migration 9) unless a superuser switched its triggers off.
fn once_each(rows: &[tokio_postgres::Row]) -> Result<(), StoreError> {
    let mut seen: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        *seen.entry(row.get(0)).or_default() += 1;
    }
    match seen.into_iter().filter(|(_, n)| *n > 1).min() {
        Some((seq, n)) => Err(StoreError::Corrupted(format!(
            "record {seq}: sealog_records holds {n} rows for it (one was inserted beside it)"
        ))),
        None => Ok(()),
    }
}

/// The seq `sealog_record_ids` gives the id `$2` of log `$1`, with the id of the record at that
/// seq (`NULL` where there is none).
const SEQ_OF_ID: &str = "SELECT i.seq, r.record_id FROM sealog_record_ids i
    LEFT JOIN LATERAL (SELECT r.record_id FROM sealog_records r
      WHERE r.log = i.log AND r.seq = i.seq OFFSET 0) r ON true
    WHERE i.log = $1 AND i.record_id = $2";

/// The seq of a row of [`SEQ_OF_ID`] (its first column; the record's id its second), once the
/// record there is shown to be the one with `id`: an altered map never answers another
/// record's seq (dedupe would call a new event a duplicate of it).
fn held_by(row: &tokio_postgres::Row, id: &Id) -> Result<u64, StoreError> {
    let seq = u64_of(row.get(0));
    let held: Option<&[u8]> = row.get(1);
    match held {
        Some(h) if h == &id[..] => Ok(seq),
        Some(_) => Err(mapped_elsewhere(id, seq)),
        None => Err(StoreError::Corrupted(format!(
            "sealog_record_ids maps sha256:{} to record {seq}, which the log does not hold (the map was altered)",
            hex::encode(id)
        ))),
    }
}

fn mapped_elsewhere(id: &Id, seq: u64) -> StoreError {
    StoreError::Corrupted(format!(
        "sealog_record_ids maps sha256:{} to record {seq}, which is another record (the map was altered)",
        hex::encode(id)
    ))
}

/// Nanoseconds to the microseconds stored, rounding up: `ns >= from` of a stored time (a
/// whole number of microseconds) exactly when its microseconds are at least this.
fn micros_ceil(ns: i64) -> i64 {
    ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) != 0)
}

/// A scan's upper bound: the caller's (`$3`), within the records committed when the
/// statement's snapshot was taken (the counter read in that snapshot, not in a round trip of
/// its own).
const BELOW: &str = "LEAST($3, (SELECT st.next_seq FROM sealog_log_state st WHERE st.log = $1))";

impl<A: Admission> PgLog<A> {
    /// How many records were ingested before `us` (microseconds): ingest time never
    /// decreases along the log, so they are a prefix.
    fn ingested_before(&self, us: i64) -> Result<u64, StoreError> {
        let row = self.shared.query_opt(
            &format!(
                "SELECT seq FROM sealog_records WHERE log = $1 AND ingested_at < {}
                 ORDER BY ingested_at DESC, seq DESC LIMIT 1",
                ts(2)
            ),
            &[&self.shared.log.as_str(), &us],
        )?;
        Ok(row.map_or(0, |r| u64_of(r.get(0)) + 1))
    }

    /// Whether an event window (`filters` on `r`, over the scan's `params`) holds fewer than
    /// `narrow_window` records of the seq range: counted through the event-time index,
    /// stopping at that many.
    fn window_is_narrow(
        &self,
        params: &[&(dyn ToSql + Sync)],
        filters: &str,
    ) -> Result<bool, StoreError> {
        let row = self.shared.query_opt(
            &format!(
                "SELECT count(*) FROM (SELECT 1 FROM sealog_records r
                   WHERE r.log = $1 AND r.seq + 0 > $2 AND r.seq + 0 < {BELOW} AND $4::bigint > 0
                     {filters} ORDER BY r.event_ns LIMIT {}) w",
                self.shared.narrow_window
            ),
            params,
        )?;
        Ok(row.is_some_and(|r| r.get::<_, i64>(0) < self.shared.narrow_window))
    }
}

impl<A: Admission> LogRead for PgLog<A> {
    fn len(&self) -> u64 {
        self.shared
            .refresh_len()
            .unwrap_or_else(|_| self.shared.len())
    }

    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_with_leaf(seq)?.map(|(b, _)| b))
    }

    fn get_with_leaf(&self, seq: u64) -> Result<Option<WithLeaf>, StoreError> {
        let Ok(s) = i64::try_from(seq) else {
            return Ok(None);
        };
        let rows = self.shared.query(
            &records_of("(SELECT $2::bigint AS seq) w", Ids::Mapped),
            &[&self.shared.log.as_str(), &s],
        )?;
        once_each(&rows)?;
        rows.first().map(record_of).transpose()
    }

    fn get_many_with_leaves(&self, seqs: &[u64]) -> Result<Vec<Option<WithLeaf>>, StoreError> {
        let wanted: Vec<i64> = seqs.iter().filter_map(|&s| i64::try_from(s).ok()).collect();
        let rows = self.shared.query(
            &records_of("unnest($2::bigint[]) AS w(seq)", Ids::Mapped),
            &[&self.shared.log.as_str(), &wanted],
        )?;
        once_each(&rows)?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(u64_of(row.get(0)), record_of(row)?);
        }
        Ok(seqs.iter().map(|s| found.remove(s)).collect())
    }

    fn get_by_id(&self, id: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.shared.query(
            &records_of(
                "(SELECT seq FROM sealog_record_ids WHERE log = $1 AND record_id = $2) w",
                Ids::Mapped,
            ),
            &[&self.shared.log.as_str(), &&id[..]],
        )?;
        once_each(&rows)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        // The map led here; the record must be the one asked for, whatever the map says.
        let held = hash_of(row.get(7), "a record id")?;
        if held != *id {
            return Err(mapped_elsewhere(id, u64_of(row.get(0))));
        }
        Ok(Some(record_of(row)?.0))
    }

    fn seq_of(&self, id: &Id) -> Result<Option<u64>, StoreError> {
        let rows = self
            .shared
            .query(SEQ_OF_ID, &[&self.shared.log.as_str(), &&id[..]])?;
        once_each(&rows)?;
        rows.first().map(|row| held_by(row, id)).transpose()
    }

    fn first_with(&self, key: &Key, below: u64) -> Result<Option<u64>, StoreError> {
        let row = self.shared.query_opt(
            &format!(
                "SELECT s.seq FROM {POSTINGS}
                 WHERE k.log = $1 AND k.key = $2 AND k.first_seq < $3 AND s.seq < $3
                   AND {LIVE_KEY}
                 ORDER BY k.last_seq, s.seq LIMIT 1"
            ),
            &[
                &self.shared.log.as_str(),
                &Uuid::from_bytes(*key),
                &i64::try_from(below).unwrap_or(i64::MAX),
            ],
        )?;
        Ok(row.map(|r| u64_of(r.get(0))))
    }

    fn firsts_with(&self, keys: &[Key], below: u64) -> Result<Vec<Option<u64>>, StoreError> {
        // One key costs less in the simpler statement.
        if keys.len() < 2 {
            return keys.iter().map(|k| self.first_with(k, below)).collect();
        }
        let uuids: Vec<Uuid> = keys.iter().map(|k| Uuid::from_bytes(*k)).collect();
        let rows = self.shared.query(
            &firsts_sql(),
            &[
                &self.shared.log.as_str(),
                &uuids,
                &i64::try_from(below).unwrap_or(i64::MAX),
            ],
        )?;
        let found: HashMap<Uuid, u64> = rows.iter().map(|r| (r.get(0), u64_of(r.get(1)))).collect();
        Ok(uuids.iter().map(|k| found.get(k).copied()).collect())
    }

    fn count_with(&self, key: &Key, from: u64, below: u64) -> Result<u64, StoreError> {
        let row = self.shared.query_opt(
            &format!(
                "SELECT count(*) FROM {POSTINGS}
                 WHERE k.log = $1 AND k.key = $2 AND k.last_seq >= $3 AND k.first_seq < $4
                   AND s.seq >= $3 AND s.seq < $4 AND {LIVE_KEY}"
            ),
            &[
                &self.shared.log.as_str(),
                &Uuid::from_bytes(*key),
                &i64::try_from(from).unwrap_or(i64::MAX),
                &i64::try_from(below).unwrap_or(i64::MAX),
            ],
        )?;
        Ok(row.map_or(0, |r| u64_of(r.get(0))))
    }

    fn seqs_with(&self, key: &Key, from: u64, below: u64) -> Result<Vec<u64>, StoreError> {
        let rows = self.shared.query(
            &format!(
                "SELECT s.seq FROM {POSTINGS}
                 WHERE k.log = $1 AND k.key = $2 AND k.last_seq >= $3 AND k.first_seq < $4
                   AND s.seq >= $3 AND s.seq < $4 AND {LIVE_KEY}
                 ORDER BY k.last_seq, s.seq"
            ),
            &[
                &self.shared.log.as_str(),
                &Uuid::from_bytes(*key),
                &i64::try_from(from).unwrap_or(i64::MAX),
                &i64::try_from(below).unwrap_or(i64::MAX),
            ],
        )?;
        Ok(rows.iter().map(|r| u64_of(r.get(0))).collect())
    }

    fn seqs_in_event_window(&self, from: i64, to: i64, below: u64) -> Result<Vec<u64>, StoreError> {
        let rows = self.shared.query(
            "SELECT seq FROM sealog_records
             WHERE log = $1 AND event_ns >= $2 AND event_ns < $3 AND seq < $4
             ORDER BY seq",
            &[
                &self.shared.log.as_str(),
                &from,
                &to,
                &i64::try_from(below).unwrap_or(i64::MAX),
            ],
        )?;
        Ok(rows.iter().map(|r| u64_of(r.get(0))).collect())
    }

    fn scan(&self, scan: &Scan) -> Result<Page, StoreError> {
        if scan.limit == 0 || scan.limit > LIMIT_MAX {
            return Err(StoreError::InvalidArgument(format!(
                "a page holds 1 to {LIMIT_MAX} records, not {}",
                scan.limit
            )));
        }
        let mut after = scan.after.map_or(Ok(-1), i64_of)?;
        let mut below = scan.below.map_or(Ok(i64::MAX), i64_of)?;
        // Ingest time never decreases along the log, so an ingest window is a seq range.
        if let Some(from) = scan.ingest_from {
            after = after.max(i64_of(self.ingested_before(micros_ceil(from))?)? - 1);
        }
        if let Some(to) = scan.ingest_to {
            below = below.min(i64_of(self.ingested_before(micros_ceil(to))?)?);
        }
        if after + 1 >= below {
            return Ok(Page {
                records: Vec::new(),
                next_after: None,
            });
        }
        let name = self.shared.log.as_str();
        let limit = i64_of(scan.limit as u64)?;
        let keys: Vec<Uuid> = scan.keys.iter().map(|k| Uuid::from_bytes(*k)).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&name, &after, &below, &limit];
        let mut event = Vec::new();
        for (bound, op) in [(&scan.event_from, ">="), (&scan.event_to, "<")] {
            if let Some(b) = bound {
                params.push(b);
                event.push(format!(" AND r.event_ns {op} ${}", params.len()));
            }
        }
        let event = event.concat();
        // Every plan is pinned by the query's shape: a fresh log's tables have no statistics
        // yet, and a planner guessing from none turned millisecond scans into seconds.
        let (driving, mut filters) = match keys.first() {
            // The first key's postings drive the scan in seq order (its runs' index), never
            // the whole log; the others are checked per posting.
            Some(first) => {
                params.push(first);
                let driving = format!(
                    "(SELECT k.last_seq AS run, s.seq FROM {POSTINGS}
                      WHERE k.log = $1 AND k.key = ${} AND k.last_seq > $2 AND k.first_seq < {BELOW}
                        AND s.seq > $2 AND s.seq < {BELOW}) w",
                    params.len()
                );
                (driving, event)
            }
            // A narrow event window is read through its index and sorted, and the page is cut
            // from it before any record is read (stubs left out first, by one hashed look at
            // the few there are); a wide one is filtered along the log, which finds a page's
            // worth sooner. (`+ 0` keeps a column's index out of a plan.)
            None if !event.is_empty() && self.window_is_narrow(&params, &event)? => (
                format!(
                    "(SELECT 0 AS run, r.seq FROM sealog_records r
                      WHERE r.log = $1 AND r.seq + 0 > $2 AND r.seq + 0 < {BELOW}{event}
                        AND r.seq NOT IN (SELECT p.seq FROM sealog_pruned p WHERE p.log = $1)
                      ORDER BY r.seq + 0 LIMIT $4) w"
                ),
                String::new(),
            ),
            None => (
                format!(
                    "(SELECT 0 AS run, r.seq FROM sealog_records r
                      WHERE r.log = $1 AND r.seq > $2 AND r.seq < {BELOW}{}) w",
                    event.replace("r.event_ns", "r.event_ns + 0")
                ),
                String::new(),
            ),
        };
        for k in keys.iter().skip(1) {
            params.push(k);
            filters.push_str(" AND ");
            filters.push_str(&HAS_KEY.replace("$n", &format!("${}", params.len())));
        }
        let sql = format!(
            "{} WHERE p.seq IS NULL{filters} ORDER BY w.run, w.seq LIMIT $4",
            records_of(&driving, Ids::Unread)
        );
        let rows = self.shared.query(&sql, &params)?;
        once_each(&rows)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq = u64_of(row.get(0));
            let body = if scan.skip_leaf_check {
                row.get(1)
            } else {
                record_of(row)?.0
            };
            records.push((seq, body));
        }
        let next_after = (records.len() == scan.limit).then(|| records.last().map(|r| r.0));
        Ok(Page {
            records,
            next_after: next_after.flatten(),
        })
    }

    fn postings_digests(
        &self,
        from: u64,
        below: u64,
        width: u64,
    ) -> Result<Option<Vec<Postings>>, StoreError> {
        if width == 0 {
            return Err(StoreError::InvalidArgument("a bucket of no seqs".into()));
        }
        let buckets = below.saturating_sub(from).div_ceil(width);
        let mut digests = vec![Postings::default(); usize::try_from(buckets).unwrap_or(0)];
        if digests.is_empty() {
            return Ok(Some(digests));
        }
        // Each posting's SHA-256 split into two 64-bit lanes as `Postings::add` does; the sum
        // of the second lane taken unsigned.
        let rows = self.shared.query(
            &format!(
                "SELECT b, count(*), coalesce(bit_xor(l1), 0),
                   coalesce(sum(l2::numeric + CASE WHEN l2 < 0 THEN 18446744073709551616 ELSE 0 END), 0)::text
                 FROM (SELECT (s.seq - $2) / $4 AS b,
                         ('x' || encode(substring(h FROM 1 FOR 8), 'hex'))::bit(64)::bigint AS l1,
                         ('x' || encode(substring(h FROM 9 FOR 8), 'hex'))::bit(64)::bigint AS l2
                       FROM (SELECT s.seq, sha256(uuid_send(k.key) || int8send(s.seq)) AS h FROM {POSTINGS}
                             WHERE k.log = $1 AND k.last_seq >= $2 AND k.first_seq < $3
                               AND s.seq >= $2 AND s.seq < $3 AND {LIVE_KEY}) s) p
                 GROUP BY b"
            ),
            &[
                &self.shared.log.as_str(),
                &i64_of(from)?,
                &i64_of(below)?,
                &i64_of(width)?,
            ],
        )?;
        for row in rows {
            let bucket = usize::try_from(row.get::<_, i64>(0))
                .ok()
                .and_then(|b| digests.get_mut(b))
                .ok_or_else(|| StoreError::Corrupted("a posting outside its range".into()))?;
            let sum: &str = row.get(3);
            *bucket = Postings {
                count: u64_of(row.get(1)),
                xor: row.get::<_, i64>(2) as u64,
                sum: sum
                    .parse()
                    .map_err(|_| StoreError::Corrupted(format!("a postings sum {sum}")))?,
            };
        }
        Ok(Some(digests))
    }

    fn size_at(&self, t: i64) -> Result<u64, StoreError> {
        let len = self.shared.refresh_len()?;
        let row = self.shared.query_opt(
            &format!(
                "SELECT seq FROM sealog_records WHERE log = $1 AND ingested_at <= {}
                 ORDER BY ingested_at DESC, seq DESC LIMIT 1",
                ts(2)
            ),
            &[&self.shared.log.as_str(), &t.div_euclid(1000)],
        )?;
        Ok(row.map_or(0, |r| (u64_of(r.get(0)) + 1).min(len)))
    }

    fn root(&self, size: u64) -> Result<Hash, StoreError> {
        self.shared.check_size(size)?;
        self.shared.trusted_root(size)
    }

    /// Checked before it leaves: the record's own leaf, through the proof, to a root the
    /// newest signed checkpoint vouches for.
    fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.shared.check_size(size)?;
        if seq >= size {
            return Err(StoreError::InvalidArgument(format!(
                "record {seq} is not in a tree of {size}"
            )));
        }
        let proof = self
            .shared
            .with_reader(|r| sealog_merkle::inclusion_proof(seq, size, r))?;
        let leaf = match self.get_with_leaf(seq) {
            Ok(Some((_, leaf))) => leaf,
            Err(StoreError::Pruned(stub)) => stub.leaf,
            Ok(None) => {
                return Err(StoreError::Corrupted(format!(
                    "record {seq} is missing below the log's size"
                )));
            }
            Err(e) => return Err(e),
        };
        let root = self.shared.trusted_root(size)?;
        sealog_merkle::verify_inclusion(&leaf, seq, size, &root, &proof).map_err(|e| {
            StoreError::Corrupted(format!(
                "the stored tree gives a wrong inclusion proof of {seq} in {size}: {e}"
            ))
        })?;
        Ok(proof)
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        self.shared.check_size(new)?;
        if old > new {
            return Err(StoreError::InvalidArgument(format!(
                "no consistency proof from {old} back to {new}"
            )));
        }
        let proof = self
            .shared
            .with_reader(|r| sealog_merkle::consistency_proof(old, new, r))?;
        if old > 0 {
            let (a, b) = (
                self.shared.trusted_root(old)?,
                self.shared.trusted_root(new)?,
            );
            sealog_merkle::verify_consistency(old, new, &a, &b, &proof).map_err(|e| {
                StoreError::Corrupted(format!(
                    "the stored tree gives a wrong consistency proof from {old} to {new}: {e}"
                ))
            })?;
        }
        Ok(proof)
    }

    fn multiproof(&self, seqs: &[u64], size: u64) -> Result<Vec<Hash>, StoreError> {
        self.shared.check_size(size)?;
        if seqs.windows(2).any(|w| w[0] >= w[1]) || seqs.last().is_some_and(|&s| s >= size) {
            return Err(StoreError::InvalidArgument(format!(
                "a multiproof needs strictly increasing seqs below {size}"
            )));
        }
        self.shared
            .with_reader(|r| sealog_merkle::multiproof(seqs, size, r))
    }

    fn checkpoint(&self) -> Result<SignedCheckpoint, StoreError> {
        let len = self.shared.refresh_len()?;
        let latest = self.shared.latest_from_db()?;
        if let Some(l) = latest.as_ref().filter(|l| l.size >= len) {
            return Ok(l.clone());
        }
        if self.tx.is_none() {
            return latest.ok_or_else(|| {
                StoreError::InvalidArgument("the log has no signed checkpoint yet".into())
            });
        }
        self.ask_sign()
    }

    fn checkpoint_source(&self) -> sealog_store::CheckpointSource {
        let shared = self.shared.clone();
        Arc::new(move || {
            let latest = shared.latest.lock().expect("checkpoint lock");
            latest.as_ref().map(|(cp, _)| cp.clone())
        })
    }

    fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        match self.shared.latest_from_db() {
            Ok(Some(cp)) => Some(cp),
            _ => self
                .shared
                .latest
                .lock()
                .expect("checkpoint lock")
                .as_ref()
                .map(|(cp, _)| cp.clone()),
        }
    }

    fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let len = self.shared.refresh_len()?;
        let rows = self.shared.query(
            "SELECT note FROM sealog_checkpoints WHERE log = $1 AND size <= $2 ORDER BY size, n",
            &[&self.shared.log.as_str(), &i64_of(len)?],
        )?;
        rows.iter()
            .map(|r| self.shared.open_note(&r.get::<_, String>(0)))
            .collect()
    }

    fn cosigned(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.shared.query(
            "SELECT note FROM sealog_cosigned WHERE log = $1 ORDER BY n",
            &[&self.shared.log.as_str()],
        )?;
        let notes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let verifier = self.shared.verifier();
        Ok(
            sealog_merkle::cosignature::newest_per_cosigner(&notes, verifier.name())
                .into_iter()
                .cloned()
                .collect(),
        )
    }

    fn verifier_key(&self) -> String {
        self.shared.verifier().to_vkey()
    }

    fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, StoreError> {
        let cp = self.shared.latest_from_db()?;
        let size = cp.as_ref().map_or(0, |c| c.size);
        if !signed_prefix(level, index, width, size) {
            return Err(StoreError::InvalidArgument(format!(
                "no tile {level}/{index} of width {width} in a tree of {size}"
            )));
        }
        let first = i64_of(index * 256)?;
        let rows = self.shared.query(
            "SELECT hash FROM sealog_tree_nodes WHERE log = $1 AND level = $2 AND idx >= $3 AND idx < $4
             ORDER BY idx",
            &[
                &self.shared.log.as_str(),
                &(i16::from(level) * 8),
                &first,
                &(first + i64::from(width)),
            ],
        )?;
        let nodes = rows
            .iter()
            .map(|r| hash_of(r.get(0), "a tree node"))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_tile(level, index, &nodes, cp)?;
        Ok(nodes.concat())
    }

    fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, StoreError> {
        let cp = self.shared.latest_from_db()?;
        let size = cp.as_ref().map_or(0, |c| c.size);
        if !signed_prefix(0, index, width, size) {
            return Err(StoreError::InvalidArgument(format!(
                "no entry bundle {index} of width {width} in a tree of {size}"
            )));
        }
        let seqs: Vec<u64> = (index * 256..index * 256 + u64::from(width)).collect();
        let mut out = Vec::new();
        let mut leaves = Vec::with_capacity(seqs.len());
        for (seq, record) in seqs.iter().zip(self.get_many_with_leaves(&seqs)?) {
            let (body, leaf) = record.ok_or_else(|| {
                StoreError::Corrupted(format!("record {seq} is missing below the checkpoint"))
            })?;
            let len = u16::try_from(body.len()).map_err(|_| {
                StoreError::InvalidArgument(format!(
                    "record {seq} is {} bytes, too long for a tlog-tiles entry bundle",
                    body.len()
                ))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&body);
            leaves.push(leaf);
        }
        self.check_tile(0, index, &leaves, cp)?;
        Ok(out)
    }

    fn stats(&self) -> Stats {
        let latest = self.shared.latest.lock().expect("checkpoint lock").clone();
        Stats {
            records: self.shared.len(),
            commits: self.shared.commits.load(Ordering::Relaxed),
            committed_events: self.shared.committed_events.load(Ordering::Relaxed),
            checkpoint_size: latest.as_ref().map(|(cp, _)| cp.size),
            checkpoint_at: latest.map(|(_, at)| at),
            ..Stats::default()
        }
    }

    fn recovery(&self) -> Recovery {
        Recovery {
            records: self.shared.len(),
            ..Recovery::default()
        }
    }
}

/// Whether tile `index` of `level` holds at least `width` nodes in the tree of the newest
/// signed checkpoint's `size`: a partial tile of any size signed before it is a prefix of
/// what the tree has (C2SP tlog-tiles: partial tiles of every size a checkpoint was made
/// for are served).
fn signed_prefix(level: u8, index: u64, width: u16, size: u64) -> bool {
    sealog_merkle::tiles::tile_width(level, index, size).is_some_and(|w| (1..=w).contains(&width))
}

impl<A: Admission> PgLog<A> {
    fn check_tile(
        &self,
        level: u8,
        index: u64,
        nodes: &[Hash],
        cp: Option<SignedCheckpoint>,
    ) -> Result<(), StoreError> {
        let Some(cp) = cp else {
            return Ok(());
        };
        self.shared
            .with_tree(|reader| {
                sealog_merkle::tiles::verify_tile(level, index, nodes, cp.size, &cp.root, reader)
            })?
            .map_err(|e| {
                StoreError::Corrupted(format!(
                    "tile {level}/{index} does not agree with the signed checkpoint of size {} ({e}): the stored tree is damaged",
                    cp.size
                ))
            })
    }
}

impl<A: Admission> LogWrite<A> for PgLog<A> {
    fn append(&self, entries: Vec<Entry<A::Claim>>) -> Result<Outcomes<A>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, answer) = mpsc::sync_channel(1);
        tx.send(Request::Append { entries, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn prune(&self, records: &[Prune]) -> Result<u64, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, answer) = mpsc::sync_channel(1);
        tx.send(Request::Prune {
            records: records.to_vec(),
            reply,
        })
        .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn add_cosigned(&self, note: &str) -> Result<(), StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let cp =
            open_checkpoint(note, &self.shared.verifier()).map_err(StoreError::InvalidArgument)?;
        let len = self.shared.refresh_len()?;
        if cp.size > len || self.shared.trusted_root(cp.size)? != cp.root {
            return Err(StoreError::InvalidArgument(format!(
                "the cosigned checkpoint of size {} is not one of this log's tree",
                cp.size
            )));
        }
        self.shared.query(
            "INSERT INTO sealog_cosigned (log, size, note) VALUES ($1, $2, $3)",
            &[&self.shared.log.as_str(), &i64_of(cp.size)?, &note],
        )?;
        Ok(())
    }

    /// The next key goes to `<key file>.next` beside the key file (every other server needs
    /// it too once the rotation is finished); the database records its verifier key.
    fn prepare_key_rotation(&self) -> Result<String, StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let path = keys::next_path(&self.shared.key_path);
        if let Some(pending) = self.shared.pending_rotation()? {
            return match keys::read_signer(&path)? {
                Some(next) if next.verifier().to_vkey() == pending => Ok(pending),
                _ => Err(StoreError::InvalidArgument(format!(
                    "a rotation to {pending} is prepared, but {} does not hold that key (another server prepared it?)",
                    path.display()
                ))),
            };
        }
        let origin = self.shared.verifier().name().to_string();
        let next = keys::create_next(&origin, &path)?;
        let vkey = next.verifier().to_vkey();
        self.shared.add_key_event("prepared", &vkey)?;
        Ok(vkey)
    }

    fn finish_key_rotation(&self) -> Result<String, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::ReadOnly)?;
        let (reply, answer) = mpsc::sync_channel(1);
        tx.send(Request::FinishRotation { reply })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn abandon_key_rotation(&self) -> Result<(), StoreError> {
        if self.tx.is_none() {
            return Err(StoreError::ReadOnly);
        }
        if let Some(pending) = self.shared.pending_rotation()? {
            self.shared.add_key_event("abandoned", &pending)?;
        }
        let path = keys::next_path(&self.shared.key_path);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    fn pending_key_rotation(&self) -> Result<Option<String>, StoreError> {
        self.shared.pending_rotation()
    }

    fn close(mut self: Box<Self>) -> Result<(), StoreError> {
        self.shutdown()
    }
}
