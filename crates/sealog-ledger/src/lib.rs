//! Sealog's ledger: the one door to a data directory. Every event — a producer's, or one of
//! Sealog's own `audit.*` records — goes in through [`Ledger::prepare`] and [`Ledger::commit`]:
//!
//! who may write it → envelope → pack (forbidden fields → completeness → schema →
//! normalization) → `record_id` and index keys → dedupe → supersedes rules → append,
//!
//! and gets exactly one result, in order. Events that cannot become canonical go to the
//! quarantine log, a second log with its own Merkle tree, with their reason; their raw bytes
//! go to a restricted payload area. Reads, views, rebuilt state, proofs, tiles, checkpoints
//! and verification come out through the same type.
//!
//! *Invariants*: nothing reaches the canonical log without passing its type's pack; an event
//! is parsed once; a result is returned only once what it reports is durable; a forbidden
//! payload is written nowhere; only Sealog's own code paths write `audit.*` / `sealog.*`.

mod anchor;
mod aside;
mod delivered;
mod facts;
mod holds;
mod keys;
mod log_key;
mod own;
mod payloads;
mod personal;
mod prepare;
mod privacy;
pub mod quarantine;
mod query;
mod result;
mod retention;
mod rules;
mod slice;
mod state;
mod tables;
mod tally;
mod verify;
mod verify_db;

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use sealog_merkle::Hash;
use sealog_model::input::RawEvent;
use sealog_model::json::Json;
use sealog_model::{Canonical, Envelope, Layout, PrepareError, RecordId};
use sealog_store::{Entry, LogRead, LogWrite, Outcome, Store, WithLeaf};

pub use delivered::{Delivery, Tenancy};
pub use holds::{HOLD_PLACED_TYPE, HOLD_RELEASED_TYPE, Hold, HoldAct, HoldError, HoldScope};
pub use log_key::{KeyRotation, LOG_KEY_ROTATED_TYPE};
pub use own::{Act, OwnResult};
pub use personal::{EraseError, Erased, Erasure, LEGAL_ERASURE_TYPE, PAYLOAD_DELETED_TYPE};
pub use prepare::{Prepared, RESERVED_TYPE_PREFIXES};
pub use privacy::Sight;
pub use quarantine::{Correlation, Finding, QUARANTINE_TYPE};
pub use query::{Query, View};
pub use result::{IngestResult, Rejection};
pub use retention::{Due, RETENTION_APPLIED_TYPE, RetentionReport};
pub use rules::{ChainRefusal, Claim};
pub use sealog_model::{Layout as DataLayout, LogLayout};
pub use sealog_packs::axes::ENVELOPE_AXES;
pub use sealog_packs::{PackError, Packs, ReasonCode};
pub use sealog_store::verify::{Failure as VerifyFailure, Report as VerifyReport};
/// The compressed sealed segment's reader and writer, for tools that read or forge a
/// segment file as docs/format.md describes it.
pub use sealog_store::zseg;

/// The bytes `verify` reads from a log directory's segments: their uncompressed length.
pub fn segment_bytes(log_dir: &std::path::Path) -> u64 {
    sealog_store::segment::plain_bytes(log_dir)
}
pub use sealog_store::{
    Config as StoreConfig, Cut, Durability, LIMIT_MAX, Page, Recovery, SignedCheckpoint, Stats,
    StoreError as Error, prepare_below_the_writer,
};
pub use slice::{Located, Placed, Selection, Slice, Unplaced, locate, place, satisfies};
pub use state::{StateError, StateQuery};
pub use tally::Log;
pub use verify::VerifyOptions;

use keys::{CanonicalKeys, Deriver, QuarantineKeys};
use privacy::Privacy;
use rules::{CanonicalRules, Dedupe};

/// The pseudonym that names `data_subject` in the data directory `dir` (PRODUCT §8): what
/// Sealog writes wherever it would name a person, without opening the log.
pub fn pseudonym_in(dir: &Path, data_subject: &str) -> Result<String, Error> {
    privacy::pseudonym_in(&Layout::new(dir), data_subject)
}

/// How the ledger treats event types no pack declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Undeclared {
    /// Quarantined as UNKNOWN_EVENT_TYPE: the default, so every canonical record passed a pack.
    #[default]
    Quarantine,
    /// Appended after envelope validation only (scope = tenant, no pack axes).
    Accept,
}

pub struct LedgerConfig {
    /// How both logs' engines run.
    pub store: StoreConfig,
    pub packs: Packs,
    pub undeclared: Undeclared,
}

/// Who is writing an event, which decides what it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author<'a> {
    /// A producer, limited to one tenant's events when `tenant` is set. Never writes the
    /// reserved types.
    Producer { tenant: Option<&'a str> },
    /// Sealog's own code paths (the server, the CLI): only the reserved types of the `audit`
    /// pack.
    Sealog,
}

impl Author<'_> {
    /// Any producer, with no tenant limit (the local CLI, an unscoped key).
    pub const ANYONE: Author<'static> = Author::Producer { tenant: None };

    fn is_producer(&self) -> bool {
        matches!(self, Author::Producer { .. })
    }

    /// Checked first, on the parsed tree, before the envelope or any pack work.
    fn may_write(&self, tree: &Json<'_>) -> Result<(), Rejection> {
        let kind = tree.get("type").and_then(Json::as_str);
        let reserved =
            kind.is_some_and(|t| RESERVED_TYPE_PREFIXES.iter().any(|p| t.starts_with(p)));
        match self {
            Author::Producer { .. } if reserved => Err(Rejection::denied(
                "RESERVED_TYPE",
                format!(
                    "event types starting with {} are written only by Sealog itself",
                    RESERVED_TYPE_PREFIXES.join(" or ")
                ),
                "/type",
            )),
            Author::Producer { tenant: Some(own) } => {
                let tenant = tree.get("tenant").and_then(Json::as_str);
                if tenant == Some(own) {
                    Ok(())
                } else {
                    Err(Rejection::denied(
                        "FORBIDDEN_TENANT",
                        format!("this key writes only events with \"tenant\": {own:?}"),
                        "/tenant",
                    ))
                }
            }
            Author::Producer { tenant: None } => Ok(()),
            Author::Sealog if reserved => Ok(()),
            Author::Sealog => Err(Rejection::denied(
                "NOT_RESERVED_TYPE",
                "Sealog's own records are of the audit pack's types".into(),
                "/type",
            )),
        }
    }
}

/// How a ledger opens its data directory.
#[derive(Clone, Copy)]
enum Access {
    Write,
    ReadOnly,
}

type CanonicalLog = Box<dyn LogWrite<CanonicalRules>>;
type QuarantineLog = Box<dyn LogWrite<Dedupe>>;

pub struct Ledger {
    canonical: CanonicalLog,
    quarantine: QuarantineLog,
    payloads: payloads::Payloads,
    deriver: Deriver,
    privacy: Arc<Privacy>,
    undeclared: Undeclared,
    layout: Layout,
    /// Taken by erasure, retention's application and hold changes, each from the reading of
    /// the holds or keys it decides by through the changes it makes: a hold placed while an
    /// erasure or a pruning is under way would otherwise not stop it, though recorded before
    /// it, and two erasures of one subject would both succeed. Servers sharing one
    /// PostgreSQL database take the database's lock of it too (`database`).
    governance: std::sync::Mutex<()>,
    /// Read by each append of quarantine records from the check of its payloads' keys
    /// through their appending; written by an erasure from destroying the keys through
    /// finding the payloads sealed for them. A payload sealed before an erasure and appended
    /// after it would otherwise stay, named by no deletion record.
    erasing: std::sync::RwLock<()>,
    /// The database the log is in, if it is: where the governance lock of every server
    /// sharing it is.
    database: Option<Arc<sealog_pg::Erasable>>,
}

/// The governance lock (see [`Ledger`]'s field), held until dropped: this process's, then the
/// database's, if the log is in one.
pub(crate) struct Governing<'a> {
    _database: Option<sealog_pg::Governing>,
    _process: std::sync::MutexGuard<'a, ()>,
}

impl Ledger {
    /// Opens (creating on first use) the ledger in `dir`, recovering both logs from any
    /// crash. Holds both logs' locks until closed.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Self, Error> {
        Self::open_as(dir, config, Access::Write)
    }

    /// Opens the ledger in `dir` for reading beside the process that writes it: takes no
    /// lock, changes no file, and sees what that process had made durable. Appends fail.
    pub fn open_read_only(dir: &Path, config: LedgerConfig) -> Result<Self, Error> {
        Self::open_as(dir, config, Access::ReadOnly)
    }

    fn open_as(dir: &Path, config: LedgerConfig, access: Access) -> Result<Self, Error> {
        if matches!(access, Access::Write) && !dir.exists() {
            // Made the owner's alone: it holds the keys, and records other users have no
            // business reading (an existing directory keeps the permissions it was given).
            owner_only_dir(dir)?;
        }
        let layout = Layout::new(dir);
        // Every writing opening takes the quarantine log's lock before anything else, so the
        // privacy files a directory's first opening makes (the master key, the subject key
        // store) are made under it by one process alone: two first openings making them at
        // once could each make a master key and leave the key store made under the other's.
        // The quarantine log keeps its own key in its directory; the canonical log's
        // checkpoints carry its newest head.
        let writing_quarantine = match access {
            Access::Write => Some(Store::open(
                &layout.quarantine(),
                StoreConfig {
                    signing_key: None,
                    ..config.store.clone()
                },
                Arc::new(QuarantineKeys),
                Dedupe,
            )?),
            Access::ReadOnly => None,
        };
        let privacy = Arc::new(Privacy::open(&layout, matches!(access, Access::Write))?);
        let deriver = Deriver {
            packs: config.packs,
            privacy: Some(privacy.clone()),
        };
        let canonical_keys = Arc::new(CanonicalKeys(deriver.clone()));
        let payloads_path = layout.quarantine_payloads();
        let (canonical, quarantine, payloads): (CanonicalLog, QuarantineLog, _) =
            match writing_quarantine {
                Some(quarantine) => {
                    let canonical = Store::open(
                        &layout.canonical(),
                        StoreConfig {
                            extension: Some(anchor::extension(quarantine.checkpoint_source())),
                            ..config.store
                        },
                        canonical_keys,
                        CanonicalRules,
                    )?;
                    let payloads = payloads::Payloads::open(&payloads_path, &|r| {
                        payload_named(&quarantine, r).map(|s| s.is_some())
                    })?;
                    (Box::new(canonical), Box::new(quarantine), payloads)
                }
                None => (
                    Box::new(Store::<CanonicalRules>::open_read_only(
                        &layout.canonical(),
                        &config.store,
                        canonical_keys,
                    )?),
                    Box::new(Store::<Dedupe>::open_read_only(
                        &layout.quarantine(),
                        &config.store,
                        Arc::new(QuarantineKeys),
                    )?),
                    payloads::Payloads::open_read_only(&payloads_path),
                ),
            };
        let ledger = Ledger {
            canonical,
            quarantine,
            payloads,
            deriver,
            privacy,
            undeclared: config.undeclared,
            layout,
            governance: std::sync::Mutex::new(()),
            erasing: std::sync::RwLock::new(()),
            database: None,
        };
        ledger.finish_opening(access)
    }

    /// Opens (creating on first use) the ledger whose two logs are in the PostgreSQL database
    /// `url`, migrated by `sealog migrate`. `state` is this server's own directory: the logs'
    /// signing keys and the master key (the same files on every server of the database: the
    /// database holds verifier keys and the master key's check only), and what the server
    /// keeps beside the log (its API keys, exports). Several servers may open one database.
    pub fn open_database(url: &str, state: &Path, config: LedgerConfig) -> Result<Self, Error> {
        Self::open_database_as(url, state, config, Access::Write)
    }

    /// Opens the database to read and verify only: no key is needed and nothing is written.
    pub fn open_database_read_only(
        url: &str,
        state: &Path,
        config: LedgerConfig,
    ) -> Result<Self, Error> {
        Self::open_database_as(url, state, config, Access::ReadOnly)
    }

    fn open_database_as(
        url: &str,
        state: &Path,
        config: LedgerConfig,
        access: Access,
    ) -> Result<Self, Error> {
        let pg = |e: sealog_pg::PgError| match e {
            sealog_pg::PgError::Connect(m) => Error::Unavailable(m),
            other => Error::InvalidArgument(other.to_string()),
        };
        let pending = sealog_pg::pending(url).map_err(pg)?;
        if !pending.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the database lacks migration(s) {pending:?}: run `sealog migrate` with this --data first"
            )));
        }
        let write = matches!(access, Access::Write);
        if write && !state.exists() {
            // It holds secrets: the signing keys and the master key.
            owner_only_dir(state)?;
        }
        let layout = Layout::new(state);
        let db = Arc::new(sealog_pg::Erasable::connect(url)?);
        let key_file = |log: &sealog_model::LogLayout| -> Result<std::path::PathBuf, Error> {
            let dir = log.keys();
            if write {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            Ok(log.signer_key())
        };
        let privacy = Arc::new(Privacy::open_database(&layout, db.clone(), write)?);
        let deriver = Deriver {
            packs: config.packs,
            privacy: Some(privacy.clone()),
        };
        let pg_config = |log: sealog_pg::LogName, key: std::path::PathBuf| sealog_pg::PgConfig {
            checkpoint_interval: config.store.checkpoint_interval,
            ..sealog_pg::PgConfig::new(url, log, key)
        };
        let canonical_key = match &config.store.signing_key {
            Some(k) => k.clone(),
            None => key_file(&layout.canonical())?,
        };
        let canonical_config = pg_config(sealog_pg::LogName::Canonical, canonical_key);
        let quarantine_config = pg_config(
            sealog_pg::LogName::Quarantine,
            key_file(&layout.quarantine())?,
        );
        let (canonical, quarantine): (CanonicalLog, QuarantineLog) = if write {
            let quarantine =
                sealog_pg::PgLog::open(quarantine_config, Arc::new(QuarantineKeys), Dedupe)?;
            let canonical_config = sealog_pg::PgConfig {
                extension: Some(anchor::extension(quarantine.checkpoint_source())),
                ..canonical_config
            };
            (
                Box::new(sealog_pg::PgLog::open(
                    canonical_config,
                    Arc::new(CanonicalKeys(deriver.clone())),
                    CanonicalRules,
                )?),
                Box::new(quarantine),
            )
        } else {
            (
                Box::new(sealog_pg::PgLog::<CanonicalRules>::open_read_only(
                    canonical_config,
                )?),
                Box::new(sealog_pg::PgLog::<Dedupe>::open_read_only(
                    quarantine_config,
                )?),
            )
        };
        let ledger = Ledger {
            canonical,
            quarantine,
            payloads: payloads::Payloads::database(db.clone()),
            deriver,
            privacy,
            undeclared: config.undeclared,
            layout,
            governance: std::sync::Mutex::new(()),
            erasing: std::sync::RwLock::new(()),
            database: Some(db),
        };
        ledger.finish_opening(access)
    }

    /// What a writable opening finishes, whatever holds the logs: erasures, retention and a
    /// key rotation a crash interrupted.
    fn finish_opening(self, access: Access) -> Result<Self, Error> {
        if matches!(access, Access::Write) {
            self.finish_erasures()?;
            self.finish_retention()?;
            self.finish_key_rotation()?;
        }
        Ok(self)
    }

    /// Whether another process holds the data directory (so it can be read only).
    pub fn is_locked_elsewhere(e: &Error) -> bool {
        sealog_store::is_locked_elsewhere(e)
    }

    /// Whether the directory's signing key is missing (so it can be read only).
    pub fn lacks_signing_key(e: &Error) -> bool {
        matches!(e, Error::NoSigningKey(_))
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn packs(&self) -> &Packs {
        &self.deriver.packs
    }

    pub(crate) fn deriver(&self) -> &Deriver {
        &self.deriver
    }

    /// Every axis a query may name.
    pub fn axis_names(&self) -> &[String] {
        self.deriver.axis_names()
    }

    /// What opening found and repaired: the canonical log's, then the quarantine log's.
    pub fn recovery(&self) -> (Recovery, Recovery) {
        (self.canonical.recovery(), self.quarantine.recovery())
    }

    /// The canonical log's figures, then the quarantine log's.
    pub fn stats(&self) -> (Stats, Stats) {
        (self.canonical.stats(), self.quarantine.stats())
    }

    /// Waits up to `timeout` until no sealed segment of either log waits to be compressed,
    /// for a benchmark that measures a log at rest; whether none does.
    pub fn await_compression(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (c, q) = self.stats();
            if c.compress_pending + q.compress_pending == 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn pipeline(&self) -> prepare::Pipeline<'_> {
        prepare::Pipeline {
            deriver: &self.deriver,
            privacy: &self.privacy,
            canonical: &*self.canonical,
            undeclared: self.undeclared,
        }
    }

    /// Runs every check that needs no other record, on one parse of `raw`, and seals its
    /// personal values (making its data subject's key on first use). Thread-safe: callers
    /// prepare in parallel, then `commit` in input order.
    pub fn prepare(&self, raw: &[u8], author: &Author<'_>) -> Prepared {
        self.pipeline().raw(raw, author)
    }

    /// Like `prepare`, for a message a bus delivered: what `prepare` would refuse is instead
    /// quarantined (`NOT_AN_EVENT`, `TENANT_MISMATCH`), unless it is no fault of the message's
    /// (the key store), and a correction whose target is absent may wait (`deferred`).
    pub fn prepare_delivered(&self, raw: &[u8], delivery: &Delivery<'_>) -> Prepared {
        self.pipeline().delivered(raw, delivery)
    }

    /// The `NOT_AN_EVENT` record of a message a bus delivered that its transport could not
    /// even read as an event (`why`), kept like any other: the payload's hash and size only.
    pub fn prepare_not_an_event(
        &self,
        raw: &[u8],
        delivery: &Delivery<'_>,
        why: String,
    ) -> Prepared {
        delivery.not_an_event(raw, why)
    }

    /// Like `prepare`, for an event Sealog built itself as a value.
    pub fn prepare_value(&self, event: &Value, author: &Author<'_>) -> Prepared {
        self.pipeline().value(event, author)
    }

    /// Prepares and commits, one result per raw event in order.
    pub fn ingest(
        &self,
        raws: &[RawEvent<'_>],
        author: &Author<'_>,
    ) -> Result<Vec<IngestResult>, Error> {
        let prepared = raws
            .iter()
            .map(|r| match r {
                Ok(bytes) => self.prepare(bytes, author),
                Err(e) => Prepared::Rejected(PrepareError::Input(e.clone()).into()),
            })
            .collect();
        self.commit(prepared)
    }

    /// Appends prepared events: canonical ones first (the writer applies dedupe and the
    /// supersedes rules), then every quarantine record (payloads synced before them), and
    /// answers once all of it is durable.
    pub fn commit(&self, prepared: Vec<Prepared>) -> Result<Vec<IngestResult>, Error> {
        // Keys made while these were prepared are durable before anything sealed under them.
        self.privacy.sync()?;
        let mut entries = Vec::new();
        let mut slots = Vec::with_capacity(prepared.len());
        let mut quarantined: Vec<Quarantined> = Vec::new();
        for p in prepared {
            match p {
                Prepared::Event(entry) => {
                    slots.push(Slot::Canonical(entries.len()));
                    entries.push(*entry);
                }
                Prepared::Quarantine {
                    correlation,
                    finding,
                    payload,
                } => {
                    slots.push(Slot::Quarantine(quarantined.len()));
                    quarantined.push((correlation, finding, payload));
                }
                Prepared::Rejected(r) => slots.push(Slot::Rejected(r)),
            }
        }
        let outcomes = self.canonical.append(entries)?;
        // Each canonical outcome: the seq, or the quarantine slot of its refusal.
        let mut canonical: Vec<Result<IngestResult, usize>> = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            canonical.push(match outcome {
                Outcome::Appended { seq, id } => Ok(IngestResult::Appended {
                    seq,
                    record_id: RecordId(id),
                }),
                Outcome::Duplicate { seq, id } => Ok(IngestResult::Duplicate {
                    seq,
                    record_id: RecordId(id),
                }),
                Outcome::Refused { refusal, entry }
                    if refusal == ChainRefusal::AbsentTarget && entry.claim.may_wait =>
                {
                    Ok(IngestResult::Deferred {
                        record_id: RecordId(entry.id()),
                        reason_code: refusal.code(),
                        message: format!(
                            "{}: to be delivered again, in case its target arrives",
                            refusal.message()
                        ),
                    })
                }
                Outcome::Refused { refusal, entry } => {
                    let correlation = Box::new(
                        entry
                            .claim
                            .correlation
                            .expect("only events with a correlation can be refused")
                            .unpack(),
                    );
                    let finding = Finding {
                        reason_code: refusal.code(),
                        message: Some(refusal.message()),
                        missing_fields: Vec::new(),
                        violations: Vec::new(),
                        forbidden_fields: Vec::new(),
                        delivery: None,
                    };
                    quarantined.push((correlation, finding, Some(entry.event.into_bytes())));
                    Err(quarantined.len() - 1)
                }
            });
        }

        let q_ids = self.append_quarantine(&mut quarantined)?;
        let mut findings: Vec<Option<Finding>> =
            quarantined.into_iter().map(|(_, f, _)| Some(f)).collect();
        let mut take = |q: usize| IngestResult::Quarantined {
            quarantine_id: q_ids[q],
            finding: findings[q]
                .take()
                .expect("each quarantine slot is answered once"),
        };
        let mut results = Vec::with_capacity(slots.len());
        for slot in slots {
            let result = match slot {
                Slot::Canonical(i) => match &canonical[i] {
                    Ok(r) => r.clone(),
                    Err(q) => take(*q),
                },
                Slot::Quarantine(q) => take(q),
                Slot::Rejected(r) => IngestResult::Rejected(r),
            };
            metrics::counter!("sealog_ingest_events_total", "status" => result.status())
                .increment(1);
            if let IngestResult::Quarantined { finding, .. } = &result {
                metrics::counter!("sealog_quarantine_total", "reason" => finding.reason_code)
                    .increment(1);
            }
            results.push(result);
        }
        Ok(results)
    }

    fn append_quarantine(&self, entries: &mut [Quarantined]) -> Result<Vec<RecordId>, Error> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let _erasing = self.erasing.read().unwrap_or_else(|p| p.into_inner());
        // Sealed for a data subject erased since: kept nowhere, like the payload of an
        // event that arrives after the erasure.
        for (corr, _, payload) in entries.iter_mut() {
            let tenant = corr.tenant.as_deref().unwrap_or("");
            if payload
                .as_deref()
                .is_some_and(|p| self.privacy.payload_erased(tenant, p))
            {
                *payload = None;
            }
        }
        self.payloads
            .append_all(entries.iter().filter_map(|(_, _, p)| p.as_deref()))?;
        let records = entries
            .iter()
            .map(|(corr, finding, payload)| {
                let reference = payload.as_deref().map(payloads::payload_ref);
                let ev = quarantine::record_event(corr, finding, reference.as_deref());
                self.quarantine_entry(&ev).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "cannot form the quarantine record for event {}: {e}",
                        corr.id
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .quarantine
            .append(records)?
            .iter()
            .map(|o| match o {
                Outcome::Appended { id, .. } | Outcome::Duplicate { id, .. } => RecordId(*id),
                Outcome::Refused { refusal, .. } => match *refusal {},
            })
            .collect())
    }

    /// A quarantine record's entry: Sealog's own event, checked by the `audit` pack.
    fn quarantine_entry(&self, event: &Value) -> Result<Entry<()>, String> {
        let mut tree = Json::from_value(event);
        self.deriver
            .check(QUARANTINE_TYPE, &mut tree)
            .map_err(|q| format!("{} {:?}", q.reason, q.violations))?;
        let env = Envelope::parse(&tree).map_err(|e| e.to_string())?;
        Ok(Entry {
            event: Canonical::of_event(&tree).map_err(|e| e.to_string())?,
            keys: QuarantineKeys::of(&env, &tree),
            event_ns: env.time_nanos,
            claim: (),
            row: None,
        })
    }

    /// Records in the canonical log.
    pub fn len(&self) -> u64 {
        self.canonical.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records in the quarantine log.
    pub fn quarantine_len(&self) -> u64 {
        self.quarantine.len()
    }

    /// One canonical record by seq.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        self.canonical.get(seq)
    }

    /// One canonical record and its leaf hash, of exactly those bytes, *not* compared with
    /// the stored tree: for a caller that proves what it reads against a signed root.
    pub fn get_with_leaf(&self, seq: u64) -> Result<Option<(Vec<u8>, Hash)>, Error> {
        self.canonical.get_with_leaf(seq)
    }

    /// [`Ledger::get_with_leaf`] for each of `seqs`, in the order given, read together.
    pub fn get_many_with_leaves(&self, seqs: &[u64]) -> Result<Vec<Option<WithLeaf>>, Error> {
        self.canonical.get_many_with_leaves(seqs)
    }

    /// One canonical record by its id (a pruned one is [`Error::Pruned`]).
    pub fn get_by_id(&self, id: &RecordId) -> Result<Option<Vec<u8>>, Error> {
        self.canonical.get_by_id(&id.0)
    }

    pub fn seq_of(&self, id: &RecordId) -> Result<Option<u64>, Error> {
        self.canonical.seq_of(&id.0)
    }

    /// The canonical log's size at an ingest time (ns).
    pub fn size_at(&self, t: i64) -> Result<u64, Error> {
        self.canonical.size_at(t)
    }

    /// Canonical records matching a query, through its view.
    pub fn query(&self, q: &Query) -> Result<Page, Error> {
        let mut q = q.clone();
        let personal = self.pseudonymise_filters(&mut q.equals);
        let mut page = query::canonical(&*self.canonical, &self.deriver, &q)?;
        if personal {
            // The index still holds an erased subject's keyed hashes; what was erased is
            // found by none of them.
            page.records
                .retain(|(_, bytes)| !self.sealed_for_erased(bytes));
        }
        Ok(page)
    }

    /// Quarantine records; `equals` may use `reason`, `event_type`, `id`, `tenant`,
    /// `subject`, `type`, `source`, `actor`; windows are on quarantine ingest time.
    pub fn quarantine_query(&self, q: &Query) -> Result<Page, Error> {
        query::quarantine(&*self.quarantine, q)
    }

    /// The raw payload a quarantine record's `payload_ref` names (restricted evidence).
    /// `None` when no quarantine record names it, an `audit.payload_deleted` record says it
    /// was deleted (with its data subject's erasure), or a retention record prunes the
    /// record: any other named payload that is gone is damage, answered as an error.
    pub fn quarantine_payload(&self, payload_ref: &str) -> Result<Option<Vec<u8>>, Error> {
        if let Some(bytes) = self.payloads.get(payload_ref)? {
            return Ok(Some(bytes));
        }
        match payload_named(&*self.quarantine, payload_ref)? {
            Some(_) if self.payload_deleted(payload_ref)? => Ok(None),
            Some(seq) if self.retention_prunes_quarantine(seq)? => Ok(None),
            Some(seq) => Err(Error::Corrupted(format!(
                "quarantine record {seq} names payload {payload_ref}, but {} does not hold it: evidence was lost (run `sealog verify`)",
                self.layout.quarantine_payloads().display()
            ))),
            None => Ok(None),
        }
    }

    /// A subject's state rebuilt from its canonical records, on both clocks.
    pub fn state(&self, q: &StateQuery) -> Result<Value, StateError> {
        state::rebuild(self, q)
    }

    /// A subject's records in the order its state folds them, each with the state after it
    /// (`steps`), and those a later record superseded: a timeline with before and after.
    pub fn timeline(&self, q: &StateQuery) -> Result<Value, StateError> {
        state::timeline(self, q)
    }

    /// The newest signed checkpoint of the canonical log, signing one first if the log has
    /// grown past it (read-only: the newest there is).
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        self.canonical.checkpoint()
    }

    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.canonical.latest_checkpoint()
    }

    /// Every stored signed checkpoint of the canonical log, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, Error> {
        self.canonical.checkpoints()
    }

    /// Every checkpoint of the canonical log kept with witnesses' cosignatures, oldest first.
    pub fn cosigned(&self) -> Result<Vec<String>, Error> {
        self.canonical.cosigned()
    }

    /// Keeps a checkpoint of the canonical log with the cosignatures witnesses returned.
    pub fn add_cosigned(&self, note: &str) -> Result<(), Error> {
        self.canonical.add_cosigned(note)
    }

    /// An export's records in export order, and the checkpoint that proves them.
    pub fn slice(&self, sel: &Selection) -> Result<Slice, Error> {
        let mut sel = sel.clone();
        self.pseudonymise_filters(&mut sel.query.equals);
        slice::select(&*self.canonical, &self.deriver, &sel)
    }

    /// One proof of the records at `seqs` (strictly increasing) in the tree of `size`; its
    /// caller checks it against the signed root with the leaves it read.
    pub fn multiproof(&self, seqs: &[u64], size: u64) -> Result<Vec<Hash>, Error> {
        self.canonical.multiproof(seqs, size)
    }

    /// The canonical log's verifier key (C2SP note format).
    pub fn verifier_key(&self) -> String {
        self.canonical.verifier_key()
    }

    pub fn root(&self, size: u64) -> Result<Hash, Error> {
        self.canonical.root(size)
    }

    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.canonical.inclusion_proof(seq, size)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        self.canonical.consistency_proof(old, new)
    }

    /// A C2SP tlog-tiles hash tile of the canonical log.
    pub fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, Error> {
        self.canonical.tile(level, index, width)
    }

    /// A C2SP tlog-tiles entry bundle of the canonical log.
    pub fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, Error> {
        self.canonical.entry_bundle(index, width)
    }

    /// Rebuilds everything in a data directory from its files and checks it against the
    /// signed checkpoints, offline: the canonical log, then the quarantine log (with its own
    /// key) and the payloads its records name. Needs no opening and takes no lock.
    pub fn verify(
        dir: &Path,
        opts: &VerifyOptions<'_>,
    ) -> Result<(VerifyReport, Option<VerifyReport>), VerifyFailure> {
        verify::verify(dir, opts)
    }

    /// Verifies a ledger in PostgreSQL (`open_database`'s `url` and `state`) through the
    /// storage contract, both logs; no key is needed, and nothing is written.
    pub fn verify_database(
        url: &str,
        state: &Path,
        opts: &VerifyOptions<'_>,
    ) -> Result<(VerifyReport, Option<VerifyReport>), VerifyFailure> {
        let config = LedgerConfig {
            store: StoreConfig::default(),
            packs: opts.packs.cloned().unwrap_or_else(Packs::builtin),
            undeclared: Undeclared::Quarantine,
        };
        let ledger =
            Self::open_database_read_only(url, state, config).map_err(|e| VerifyFailure {
                location: sealog_pg::redacted(url),
                message: e.to_string(),
            })?;
        let mut retention = Vec::new();
        let mut canonical = verify_db::verify_log(
            &*ledger.canonical,
            "canonical",
            opts,
            opts.key.as_deref(),
            &CanonicalKeys(ledger.deriver.clone()),
            &mut |stored| retention.extend(verify::retention_record(stored)),
            Vec::new(),
        )?;
        let quarantine_heads = anchor::heads(&canonical.extensions)?;
        let mut quarantine = verify_db::verify_log(
            &*ledger.quarantine,
            "quarantine",
            &VerifyOptions {
                since: None,
                trusted: Vec::new(),
                witnesses: Vec::new(),
                witness_quorum: None,
                ..opts.clone()
            },
            None,
            &QuarantineKeys,
            &mut |_| {},
            quarantine_heads.clone(),
        )?;
        quarantine.files.push((
            "anchored in the canonical log".into(),
            anchor::summary(&quarantine_heads),
        ));
        // One transaction prunes all an application names, or none; applications of servers
        // sharing the database may overlap.
        let summary = verify::check_stubs(&retention, &canonical, Some(&quarantine), false)?;
        canonical.files.push(("retention stubs".into(), summary));
        Ok((canonical, Some(quarantine)))
    }

    /// The governance lock (see the field), waited for.
    fn governing(&self) -> Result<Governing<'_>, Error> {
        let process = self.governance.lock().unwrap_or_else(|p| p.into_inner());
        let database = self.database.as_ref().map(|d| d.governing()).transpose()?;
        Ok(Governing {
            _database: database,
            _process: process,
        })
    }

    /// Closes both logs, signing a final checkpoint of each.
    pub fn close(self) -> Result<(), Error> {
        let Ledger {
            canonical,
            quarantine,
            ..
        } = self;
        // The quarantine log first: the canonical log's final checkpoint carries its final
        // head.
        let b = quarantine.close();
        let a = canonical.close();
        a.and(b)
    }
}

type Quarantined = (Box<Correlation>, Finding, Option<Vec<u8>>);

/// Creates `dir` (and its parents) readable by its owner alone.
fn owner_only_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

/// The quarantine record that names a payload, if one does.
fn payload_named(quarantine: &dyn LogRead, payload_ref: &str) -> Result<Option<u64>, Error> {
    let q = Query {
        equals: vec![("payload_ref".into(), payload_ref.into())],
        limit: 1,
        ..Query::default()
    };
    Ok(query::quarantine(quarantine, &q)?
        .records
        .first()
        .map(|(seq, _)| *seq))
}

enum Slot {
    Canonical(usize),
    Quarantine(usize),
    Rejected(Rejection),
}
