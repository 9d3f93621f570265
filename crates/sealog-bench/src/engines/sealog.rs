//! Sealog embedded, in-process and durable (every commit fdatasync'd). Events go through the
//! ledger as in production: the decision-log pack validates, normalizes and indexes them
//! (its axes included), dedupe and the supersedes rules apply. The 100-byte entries have no
//! pack; they go to a second ledger that accepts undeclared types after envelope checks
//! alone, like immudb's key/value entries. Everything this comparison knows about Sealog's
//! API lives in this file.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sealog_ledger::{
    Author, DataLayout, IngestResult, Ledger, LedgerConfig, Query, StoreConfig as Config,
    Undeclared, VerifyOptions, View,
};
use sealog_model::json::Json;
use sealog_model::{Canonical, RecordId};
use serde_json::Value;

use super::{Attempt, Engine, Hits, Tamper};
use crate::workload::Entry;

pub struct Sealog {
    dir: PathBuf,
    /// `None` only while `settle` reopens it.
    events: Option<Ledger>,
    entries: Ledger,
    config: Config,
}

impl Sealog {
    /// Opens (creating) an events store and an entries store under `dir`, compressing
    /// sealed segments or not.
    pub fn open(dir: &Path, compress_sealed: bool) -> anyhow::Result<Self> {
        let config = Config {
            compress_sealed,
            ..Config::default()
        };
        anyhow::ensure!(
            config.durability == sealog_ledger::Durability::Fsync,
            "the comparison runs Sealog durable"
        );
        let events = open_ledger(&dir.join("events"), &config, Undeclared::Quarantine)?;
        let entries = open_ledger(&dir.join("entries"), &config, Undeclared::Accept)?;
        Ok(Sealog {
            dir: dir.to_path_buf(),
            events: Some(events),
            entries,
            config,
        })
    }

    fn ledger(&self) -> &Ledger {
        self.events.as_ref().expect("the events ledger is open")
    }
}

fn open_ledger(dir: &Path, config: &Config, undeclared: Undeclared) -> anyhow::Result<Ledger> {
    Ok(Ledger::open(
        dir,
        LedgerConfig {
            store: config.clone(),
            packs: sealog_ledger::Packs::builtin(),
            undeclared,
        },
    )?)
}

/// Appends through the ledger; the workload's events are all valid, so anything not
/// appended or a duplicate is a failure of the benchmark, not a figure.
fn ingest(ledger: &Ledger, events: &[String]) -> anyhow::Result<u64> {
    let prepared = events
        .iter()
        .map(|e| ledger.prepare(e.as_bytes(), &Author::ANYONE))
        .collect();
    let mut appended = 0;
    for r in ledger.commit(prepared)? {
        match r {
            IngestResult::Appended { .. } => appended += 1,
            IngestResult::Duplicate { .. } => {}
            other => anyhow::bail!("a workload event was not accepted: {}", other.to_json()),
        }
    }
    Ok(appended)
}

fn ingest_one(ledger: &Ledger, event: &str) -> anyhow::Result<IngestResult> {
    let prepared = vec![ledger.prepare(event.as_bytes(), &Author::ANYONE)];
    ledger
        .commit(prepared)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no result for one event"))
}

/// The event a stored record was made from (its server fields left out), with one value
/// changed that its pack leaves free, so the event stays valid: what someone rewriting the
/// record would send.
fn changed_event(record: &[u8]) -> anyhow::Result<Value> {
    let mut event: Value = serde_json::from_slice(record)?;
    let members = event
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("a record is a JSON object"))?;
    for server_field in ["seq", "record_id", "ingested_at"] {
        members.remove(server_field);
    }
    let policy = event
        .pointer_mut("/data/df_provenance/df_policy_ref")
        .ok_or_else(|| anyhow::anyhow!("the first record is not a decision-log event"))?;
    *policy = Value::from("df_policy_rewritten");
    Ok(event)
}

/// The first segment file's frame layout (docs/format.md): a 16-byte header, then frames of
/// `len u32 LE | crc32c(len LE ‖ payload) u32 LE | payload`.
const SEGMENT_HEADER_BYTES: usize = 16;
const FRAME_HEADER_BYTES: usize = 8;

fn frame_crc(payload: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in (payload.len() as u32).to_le_bytes().iter().chain(payload) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame_crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Rewrites seq 0 in its segment file as `event` — the record made whole again as a forger
/// would make it: the new event's `record_id`, the same seq and ingest time, canonical bytes,
/// a valid frame checksum — then cuts it out instead, running `verify` after each; puts the
/// file back as it was in any case. Returns verify's refusal of each (`None`: it passed).
fn edit_first_record(
    dir: &Path,
    original: &[u8],
    event: &Value,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let segments = DataLayout::new(dir).canonical().segments();
    let compressed = segments.join(sealog_ledger::zseg::file_name(0));
    // Sealed, seq 0's segment is compressed: the forger edits its plain bytes and compresses
    // them again, index and checksums valid.
    let (segment, bytes) = if compressed.exists() {
        let plain = sealog_ledger::zseg::Zseg::open(&compressed, 0)?.plain()?;
        (compressed, plain)
    } else {
        let plain = segments.join(format!("{:020}.seg", 0));
        let bytes = std::fs::read(&plain)?;
        (plain, bytes)
    };
    let write = |plain: &[u8]| -> anyhow::Result<()> {
        if segment.extension().is_some_and(|x| x == "zseg") {
            let mut out = Vec::new();
            sealog_ledger::zseg::write(plain, 0, &mut out).map_err(anyhow::Error::msg)?;
            std::fs::write(&segment, out)?;
        } else {
            std::fs::write(&segment, plain)?;
        }
        Ok(())
    };
    let payload_at = SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES;
    let frame_end = payload_at + original.len();
    anyhow::ensure!(
        bytes.get(..8) == Some(&b"SEALOGS1"[..])
            && bytes.get(SEGMENT_HEADER_BYTES..frame_end) == Some(&frame(original)[..]),
        "{} does not start with seq 0's frame as docs/format.md describes it",
        segment.display()
    );
    let ingested_at = serde_json::from_slice::<Value>(original)?["ingested_at"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("a record has its ingest time"))?;
    let canonical = Canonical::of_event(&Json::from_value(event))
        .map_err(|e| anyhow::anyhow!("the changed event has no canonical form: {e}"))?;
    let mut forged = Vec::new();
    canonical.write_record(0, &ingested_at, &mut forged);

    let head = &bytes[..SEGMENT_HEADER_BYTES];
    let rest = &bytes[frame_end..];
    let rewritten = [head, &frame(&forged), rest].concat();
    let removed = [head, rest].concat();

    let mode = std::fs::metadata(&segment)?.permissions().mode();
    // Sealed segments are read-only; whoever edits the file has to lift that first.
    std::fs::set_permissions(&segment, Permissions::from_mode(mode | 0o200))?;
    let original_file = std::fs::read(&segment)?;
    let outcome = (|| -> anyhow::Result<_> {
        write(&rewritten)?;
        let rewrite = refused_at_seq_0(dir)?;
        write(&removed)?;
        Ok((rewrite, refused_at_seq_0(dir)?))
    })();
    let restored = std::fs::write(&segment, &original_file)
        .and_then(|()| std::fs::set_permissions(&segment, Permissions::from_mode(mode)));
    restored?;
    outcome
}

/// What `verify` says of the data directory: `None` if it passes, its refusal if it names
/// seq 0, and an error if it refuses something else (then the edit is not what it found).
fn refused_at_seq_0(dir: &Path) -> anyhow::Result<Option<String>> {
    match Ledger::verify(dir, &VerifyOptions::default()) {
        Ok(_) => Ok(None),
        Err(f) if f.location.ends_with("(seq 0)") => {
            // Its first clause: the rest names files of this machine.
            let what = f.message.split("; ").next().unwrap_or(&f.message);
            Ok(Some(what.to_string()))
        }
        Err(f) => anyhow::bail!("verify refused something other than the edit of seq 0: {f}"),
    }
}

fn query(ledger: &Ledger, equals: Vec<(String, String)>, limit: usize) -> anyhow::Result<Hits> {
    let page = ledger.query(&Query {
        equals,
        limit,
        ..Query::default()
    })?;
    Ok(Hits::Found(page.records.len()))
}

/// The reads both Sealog engines answer the same way, whatever holds the log.
fn record_id(ledger: &Ledger, event: &str) -> anyhow::Result<Vec<u8>> {
    match ledger.prepare(event.as_bytes(), &Author::ANYONE) {
        sealog_ledger::Prepared::Event(ev) => Ok(ev.id().to_vec()),
        _ => anyhow::bail!("a workload event does not pass its pack"),
    }
}

fn get(ledger: &Ledger, record_id: &[u8]) -> anyhow::Result<bool> {
    let id = RecordId(record_id.try_into()?);
    Ok(ledger.get_by_id(&id)?.is_some())
}

/// The decision's current view: the head of its supersedes chain (the workload writes no
/// corrections, so it is the one record).
fn subject_history(ledger: &Ledger, subject: &str, limit: usize) -> anyhow::Result<Hits> {
    let q = Query {
        equals: vec![("subject".into(), subject.into())],
        view: View::Current,
        limit,
        ..Query::default()
    };
    Ok(Hits::Found(ledger.query(&q)?.records.len()))
}

/// The decision-log pack's `feature_keys_used` axis (`key_type:key_id`).
fn by_feature_key(
    ledger: &Ledger,
    key_type: &str,
    key_id: &str,
    limit: usize,
) -> anyhow::Result<Hits> {
    query(
        ledger,
        vec![("feature_keys_used".into(), format!("{key_type}:{key_id}"))],
        limit,
    )
}

fn time_window(ledger: &Ledger, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
    let page = ledger.query(&Query {
        event_from: Some(from_ns),
        event_to: Some(to_ns),
        limit,
        ..Query::default()
    })?;
    Ok(Hits::Found(page.records.len()))
}

impl Engine for Sealog {
    fn name(&self) -> &'static str {
        "sealog"
    }

    fn setup(&self) -> String {
        format!(
            "embedded ledger, durability {:?} (fdatasync per group commit); every event parsed, \
             checked by the decision-log pack (completeness, forbidden fields, JSON Schema), \
             normalized, canonicalized (RFC 8785), hashed, deduplicated, indexed on its envelope \
             and pack axes (feature_keys_used among them) and added to the Merkle tree; the \
             100-byte entries go to a second ledger as an undeclared type (envelope checks, no pack)",
            self.config.durability
        )
    }

    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64> {
        ingest(self.ledger(), events)
    }

    fn append_one(&self, event: &str) -> anyhow::Result<bool> {
        Ok(ingest(self.ledger(), std::slice::from_ref(&event.to_string()))? == 1)
    }

    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64> {
        let texts: Vec<String> = entries.iter().map(|e| e.text.clone()).collect();
        ingest(&self.entries, &texts)
    }

    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>> {
        record_id(self.ledger(), event)
    }

    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool> {
        get(self.ledger(), record_id)
    }

    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits> {
        subject_history(self.ledger(), subject, limit)
    }

    fn by_feature_key(&self, key_type: &str, key_id: &str, limit: usize) -> anyhow::Result<Hits> {
        by_feature_key(self.ledger(), key_type, key_id, limit)
    }

    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
        time_window(self.ledger(), from_ns, to_ns, limit)
    }

    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        Ok((self.ledger().len(), self.entries.len()))
    }

    /// Closes the events ledger (writing its index memtables as runs, as on any shutdown)
    /// and reopens it.
    fn settle(&mut self) -> anyhow::Result<u64> {
        if let Some(ledger) = self.events.take() {
            // Measured at rest: every sealed segment compressed, as it is once ingest pauses.
            ledger.await_compression(std::time::Duration::from_secs(300));
            ledger.close()?;
        }
        let dir = self.dir.join("events");
        let bytes = super::dir_bytes(&dir);
        self.events = Some(open_ledger(&dir, &self.config, Undeclared::Quarantine)?);
        Ok(bytes)
    }

    /// Sealog has no UPDATE or DELETE, so each is reported as not applicable, with what the
    /// nearest real attempts came to: the first record's event sent again with other content
    /// (the only way in), and the record rewritten or cut out of its segment file (the way
    /// around), each followed by `verify`. The file is put back as it was afterwards.
    fn tamper(&mut self) -> anyhow::Result<Tamper> {
        let ledger = self.ledger();
        let original = ledger
            .get(0)?
            .ok_or_else(|| anyhow::anyhow!("the events log is empty"))?;
        let event = changed_event(&original)?;
        let answer = match ingest_one(ledger, &event.to_string())? {
            IngestResult::Appended { seq, .. } => format!("was appended as seq {seq}"),
            IngestResult::Duplicate { seq, .. } => format!("was a duplicate of seq {seq}"),
            IngestResult::Quarantined { finding, .. } => {
                format!("was quarantined {}", finding.reason_code)
            }
            IngestResult::Rejected(r) => format!("was rejected {}", r.code),
            IngestResult::Deferred { reason_code, .. } => format!("was deferred {reason_code}"),
        };
        let stored = ledger
            .get(0)?
            .ok_or_else(|| anyhow::anyhow!("seq 0 is gone"))?;

        // The way around the ledger: the files themselves, with no process holding them.
        if let Some(ledger) = self.events.take() {
            ledger.close()?;
        }
        let dir = self.dir.join("events");
        let edits = edit_first_record(&dir, &stored, &event);
        self.events = Some(open_ledger(&dir, &self.config, Undeclared::Quarantine)?);
        let (rewritten, removed) = edits?;
        let update = match rewritten {
            _ if stored != original => Attempt::Allowed(format!(
                "seq 0 sent again with other content {answer}, and seq 0 changed"
            )),
            Some(refusal) => Attempt::NotApplicable(format!(
                "no update operation exists; seq 0 sent again with other content {answer}, \
                 seq 0 unchanged; seq 0 rewritten in its segment file with a matching record_id \
                 and frame checksum is refused by verify: {refusal}"
            )),
            None => {
                Attempt::Allowed("seq 0 rewritten in its segment file passed verify".to_string())
            }
        };
        let delete = match removed {
            Some(refusal) => Attempt::NotApplicable(format!(
                "no delete operation exists; seq 0 cut out of its segment file is refused by \
                 verify: {refusal}"
            )),
            None => Attempt::Allowed("seq 0 cut out of its segment file passed verify".to_string()),
        };
        Ok(Tamper { update, delete })
    }

    fn close(mut self: Box<Self>) -> anyhow::Result<()> {
        if let Some(ledger) = self.events.take() {
            ledger.close()?;
        }
        self.entries.close()?;
        Ok(())
    }
}

/// Sealog on its PostgreSQL backend: `servers` ledgers in this process on one database, as
/// that many servers would be (each group-commits its own appends; the database's counter
/// row orders them all), taking batches and single events in turn. Events and entries go
/// to two databases of the cluster, made afresh and migrated.
pub struct SealogPg {
    name: &'static str,
    owner: String,
    state: PathBuf,
    servers: Vec<Ledger>,
    entries: Ledger,
    next: std::sync::atomic::AtomicUsize,
    config: Config,
}

const EVENTS_DB: &str = "sealog_bench_events";
const ENTRIES_DB: &str = "sealog_bench_entries";

fn with_db(conninfo: &str, db: &str) -> String {
    format!("{conninfo} dbname={db}")
}

impl SealogPg {
    /// `owner` is the cluster's (libpq key=value) connection as a role that may create
    /// databases; `state` this engine's directory for the logs' keys.
    pub fn open(owner: &str, state: &Path, servers: usize) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(owner, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            for db in [EVENTS_DB, ENTRIES_DB] {
                // One statement each: neither may run in a transaction block.
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
                    .await?;
                client
                    .batch_execute(&format!("CREATE DATABASE {db}"))
                    .await?;
            }
            anyhow::Ok(())
        })?;
        for db in [EVENTS_DB, ENTRIES_DB] {
            sealog_pg::migrate(&with_db(owner, db), sealog_pg::APP_ROLE)?;
        }
        let config = Config::default();
        let mut engine = SealogPg {
            name: if servers > 1 {
                "sealog-pg-2"
            } else {
                "sealog-pg"
            },
            owner: owner.to_string(),
            state: state.to_path_buf(),
            servers: Vec::new(),
            entries: open_database(
                &with_db(owner, ENTRIES_DB),
                &state.join("entries"),
                &config,
                Undeclared::Accept,
            )?,
            next: Default::default(),
            config,
        };
        engine.open_servers(servers)?;
        Ok(engine)
    }

    fn open_servers(&mut self, servers: usize) -> anyhow::Result<()> {
        for _ in 0..servers {
            // Every server with the same key files, as an operator copies them.
            self.servers.push(open_database(
                &with_db(&self.owner, EVENTS_DB),
                &self.state.join("events"),
                &self.config,
                Undeclared::Quarantine,
            )?);
        }
        Ok(())
    }

    fn ledger(&self) -> &Ledger {
        &self.servers[0]
    }

    /// The next server in turn.
    fn writer(&self) -> &Ledger {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.servers[n % self.servers.len()]
    }

    fn sql(&self, sql: &str) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let conninfo = with_db(&self.owner, EVENTS_DB);
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            Ok(client.query(sql, &[]).await?)
        })
    }
}

fn open_database(
    url: &str,
    state: &Path,
    config: &Config,
    undeclared: Undeclared,
) -> anyhow::Result<Ledger> {
    Ok(Ledger::open_database(
        url,
        state,
        LedgerConfig {
            store: config.clone(),
            packs: sealog_ledger::Packs::builtin(),
            undeclared,
        },
    )?)
}

impl Engine for SealogPg {
    fn name(&self) -> &'static str {
        self.name
    }

    fn setup(&self) -> String {
        format!(
            "the ledger as in the embedded engine, its logs in PostgreSQL (the same cluster and \
             settings as the postgres engine): {} server(s) in this process on one database, each \
             group-committing its appends in one transaction under the log's counter row, records, \
             ids, index keys and tree nodes inserted in it, synchronous_commit on",
            self.servers.len()
        )
    }

    fn append_batch(&self, events: &[String]) -> anyhow::Result<u64> {
        ingest(self.writer(), events)
    }

    fn append_one(&self, event: &str) -> anyhow::Result<bool> {
        Ok(ingest(self.writer(), std::slice::from_ref(&event.to_string()))? == 1)
    }

    fn append_entries(&self, entries: &[Entry]) -> anyhow::Result<u64> {
        let texts: Vec<String> = entries.iter().map(|e| e.text.clone()).collect();
        ingest(&self.entries, &texts)
    }

    fn record_id(&self, event: &str) -> anyhow::Result<Vec<u8>> {
        record_id(self.ledger(), event)
    }

    fn get(&self, record_id: &[u8]) -> anyhow::Result<bool> {
        get(self.ledger(), record_id)
    }

    fn subject_history(&self, subject: &str, limit: usize) -> anyhow::Result<Hits> {
        subject_history(self.ledger(), subject, limit)
    }

    fn by_feature_key(&self, key_type: &str, key_id: &str, limit: usize) -> anyhow::Result<Hits> {
        by_feature_key(self.ledger(), key_type, key_id, limit)
    }

    fn time_window(&self, from_ns: i64, to_ns: i64, limit: usize) -> anyhow::Result<Hits> {
        time_window(self.ledger(), from_ns, to_ns, limit)
    }

    fn counts(&self) -> anyhow::Result<(u64, u64)> {
        Ok((self.ledger().len(), self.entries.len()))
    }

    /// Closes and reopens the servers; the bytes are the events database's Sealog tables
    /// with their indexes and TOAST.
    fn settle(&mut self) -> anyhow::Result<u64> {
        let servers = self.servers.len();
        for ledger in self.servers.drain(..) {
            ledger.close()?;
        }
        self.open_servers(servers)?;
        let rows = self.sql(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
             WHERE c.relkind = 'r' AND (c.relname LIKE 'sealog\\_%' OR c.relname = 'coordination_audit_records')",
        )?;
        Ok(u64::try_from(rows[0].get::<_, i64>(0))?)
    }

    /// The database refuses both, by its triggers, even for the owner.
    fn tamper(&mut self) -> anyhow::Result<Tamper> {
        let attempt = |sql: &str| match self.sql(sql) {
            Ok(_) => Attempt::Allowed(format!("{sql} went through")),
            Err(e) => Attempt::Refused(
                e.downcast_ref::<tokio_postgres::Error>()
                    .and_then(|e| e.as_db_error())
                    .map_or(e.to_string(), |d| d.message().to_string()),
            ),
        };
        Ok(Tamper {
            update: attempt(
                "UPDATE sealog_records SET body = body WHERE log = 'canonical' AND seq = 0",
            ),
            delete: attempt("DELETE FROM sealog_records WHERE log = 'canonical' AND seq = 0"),
        })
    }

    fn close(mut self: Box<Self>) -> anyhow::Result<()> {
        for ledger in self.servers.drain(..) {
            ledger.close()?;
        }
        self.entries.close()?;
        Ok(())
    }
}
