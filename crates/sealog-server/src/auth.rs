//! Who is asking and what they may do: bearer keys looked up by hash, roles, tenant scope.
//!
//! The key file is re-read whenever it changes on disk (checked on every request by its
//! inode, size and modification time), so `sealog keys create|revoke` takes effect on the
//! next request without a restart.
//!
//! *Invariant*: the server runs in open mode (no authentication) only while the key file has
//! never held a key. Once it has seen one, it requires keys until it stops, whatever later
//! happens to the file; an unreadable or damaged file, or one that would widen a loaded key
//! (see `key_history`), keeps the previous keys rather than opening the server. Across
//! restarts the log carries the same rule: a start refuses a key file the log's key records
//! contradict (`App::new`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sealog_ledger::{Ledger, Sight};
use sealog_model::Envelope;
use sealog_model::json::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::key_watch::{KeyFileWatch, Seen};
use crate::keys::{self, KeyRecord, Role};

/// Whether every change to the key file shows in its directory, as the ring's watch needs:
/// not when the file is a symbolic link (its target may be written elsewhere) or has another
/// name (a write through that name is told to that name's directory alone).
fn changes_show_in_its_directory(file: &std::path::Path) -> bool {
    match std::fs::symlink_metadata(file) {
        Ok(m) => !m.file_type().is_symlink() && m.nlink() <= 1,
        // No file yet: its first version will be made in the directory.
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's public id, or `open` in open mode.
    pub key_id: String,
    pub roles: Vec<Role>,
    /// `None`: every tenant, including records that have none.
    pub tenant: Option<String>,
    /// For the subject role: the one data subject whose records it may read.
    pub data_subject: Option<String>,
}

/// What a route does, for the role check and the access record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Append,
    GetRecord,
    QueryRecords,
    GetState,
    QueryQuarantine,
    GetQuarantinePayload,
    ProveInclusion,
    ProveConsistency,
    Checkpoint,
    HashTile,
    EntryBundle,
    Metrics,
    KeysCreate,
    KeysList,
    KeysRevoke,
    ExportCreate,
    ExportRead,
    ExportApprove,
    Erase,
    HoldsChange,
    HoldsList,
    RetentionStatus,
    RetentionApply,
    ConflictsList,
    ConflictsResolve,
    ChecksRun,
    SessionStart,
    SessionEnd,
    Reports,
    Integrity,
    VerifyStart,
    Dashboard,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Append => "events.append",
            Action::GetRecord => "records.get",
            Action::QueryRecords => "records.query",
            Action::GetState => "subjects.state",
            Action::QueryQuarantine => "quarantine.query",
            Action::GetQuarantinePayload => "quarantine.payload",
            Action::ProveInclusion => "proofs.inclusion",
            Action::ProveConsistency => "proofs.consistency",
            Action::Checkpoint => "checkpoint.get",
            Action::HashTile => "tiles.hashes",
            Action::EntryBundle => "tiles.entries",
            Action::Metrics => "metrics.get",
            Action::KeysCreate => "keys.create",
            Action::KeysList => "keys.list",
            Action::KeysRevoke => "keys.revoke",
            Action::ExportCreate => "exports.create",
            Action::ExportRead => "exports.read",
            Action::ExportApprove => "exports.approve",
            Action::Erase => "erasures.create",
            Action::HoldsChange => "holds.change",
            Action::HoldsList => "holds.list",
            Action::RetentionStatus => "retention.status",
            Action::RetentionApply => "retention.apply",
            Action::ConflictsList => "conflicts.list",
            Action::ConflictsResolve => "conflicts.resolve",
            Action::ChecksRun => "checks.run",
            Action::SessionStart => "session.start",
            Action::SessionEnd => "session.end",
            Action::Reports => "reports.get",
            Action::Integrity => "integrity.get",
            Action::VerifyStart => "verify.start",
            Action::Dashboard => "dashboard.get",
        }
    }

    /// Roles that may perform the action (admin may do everything).
    fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::Append => &[Writer],
            Action::GetRecord | Action::QueryRecords | Action::GetState => {
                &[Reader, Auditor, Subject]
            }
            Action::QueryQuarantine | Action::GetQuarantinePayload => &[Auditor],
            // A writer verifies what it wrote (PRODUCT §9): the checkpoints, how they grew,
            // and the inclusion of a record it names by record_id (the route enforces that).
            Action::ProveInclusion | Action::ProveConsistency | Action::Checkpoint => {
                &[Auditor, Writer]
            }
            Action::HashTile | Action::EntryBundle | Action::Metrics => &[Auditor],
            // A subject key exports its own records only (its forced filter), like it reads.
            Action::ExportCreate | Action::ExportRead => &[Auditor, Subject],
            Action::KeysCreate
            | Action::KeysList
            | Action::KeysRevoke
            | Action::ExportApprove
            | Action::Erase
            | Action::HoldsChange
            | Action::RetentionStatus
            | Action::RetentionApply => &[],
            Action::HoldsList => &[Auditor],
            // Seed 003 §5.3: a reviewer settles what the checks found; running them is an
            // operator's.
            Action::ConflictsList | Action::ConflictsResolve => &[Auditor],
            Action::ChecksRun => &[],
            // Any key may sign in to the console; it then sees what its roles allow.
            Action::SessionStart | Action::SessionEnd => &[Writer, Reader, Auditor, Subject],
            // PRODUCT §9: reports are the auditor's; a tenant-scoped one counts its tenant.
            Action::Reports => &[Auditor],
            Action::Integrity | Action::Dashboard => &[Auditor],
            Action::VerifyStart => &[],
        }
    }

    /// Actions that expose every tenant's data or volume at once, so a tenant-scoped key may
    /// not perform them whatever its role.
    fn needs_every_tenant(self) -> bool {
        matches!(
            self,
            Action::EntryBundle
                | Action::Metrics
                | Action::RetentionStatus
                | Action::RetentionApply
                | Action::ChecksRun
                | Action::Integrity
                | Action::VerifyStart
                | Action::Dashboard
        )
    }
}

impl Principal {
    pub fn open() -> Self {
        Principal {
            key_id: "open".into(),
            roles: vec![Role::Admin],
            tenant: None,
            data_subject: None,
        }
    }

    pub fn may(&self, action: Action) -> bool {
        self.roles_allow(action) && !self.scope_forbids(action)
    }

    /// Whether one of the key's roles allows the action.
    pub fn roles_allow(&self, action: Action) -> bool {
        self.roles
            .iter()
            .any(|r| *r == Role::Admin || action.roles().contains(r))
    }

    /// Whether the key's tenant scope forbids the action, whatever its roles: it shows every
    /// tenant's data or volume at once.
    pub fn scope_forbids(&self, action: Action) -> bool {
        action.needs_every_tenant() && self.tenant.is_some()
    }

    /// Whether a record with this tenant and this pack-derived data subject is within this
    /// principal's reach. A subject-role key reaches only records whose data subject is its
    /// own: the customer, never the envelope `subject` (an email id, an order id).
    pub fn sees(&self, tenant: Option<&str>, data_subject: Option<&str>) -> bool {
        let tenant_ok = match &self.tenant {
            None => true,
            Some(t) => tenant == Some(t.as_str()),
        };
        let subject_ok = match &self.data_subject {
            None => true,
            Some(s) => data_subject == Some(s.as_str()),
        };
        tenant_ok && subject_ok
    }

    /// Whether a stored record (canonical or quarantine) is within this principal's reach,
    /// read from the record itself: index postings are hashes, so what a query or a seq
    /// lookup found is checked again before it leaves. The data subject is the pseudonym the
    /// ledger derives exactly as its index keys were; a record that does not read back as an
    /// event is out of everyone's reach but an unscoped key's.
    pub fn sees_record(&self, ledger: &Ledger, record: &[u8]) -> bool {
        if self.sees_every_record() {
            return true;
        }
        if self.data_subject.is_none() {
            // Only the tenant matters: read that one member rather than the whole record.
            #[derive(Deserialize)]
            struct Tenant<'a> {
                #[serde(borrow, default)]
                tenant: Option<Cow<'a, str>>,
            }
            return serde_json::from_slice::<Tenant<'_>>(record)
                .is_ok_and(|r| self.sees(r.tenant.as_deref(), None));
        }
        let Ok(json) = Json::parse(record) else {
            return false;
        };
        let Ok(env) = Envelope::parse_object(&json, false) else {
            return false;
        };
        let data_subject = ledger.data_subject_of(record);
        let own = self.data_subject.as_deref().map(|s| ledger.pseudonym(s));
        let tenant_ok = self.tenant.is_none() || env.tenant == self.tenant.as_deref();
        tenant_ok && own.is_some() && data_subject == own
    }

    /// Whether every record is within this principal's reach (no tenant, no data subject):
    /// the only reach that covers a pruned record, whose stub keeps neither.
    pub fn sees_every_record(&self) -> bool {
        self.tenant.is_none() && self.data_subject.is_none()
    }

    /// Whether this principal may have the proof of any record in its reach, named by seq
    /// (auditors, admins); a writer has only those of records it names by record_id.
    pub fn proves_any_record(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Auditor))
    }

    /// What this principal may see of personal values (PRODUCT §8): admins and auditors
    /// read them, a subject-role key only its own, everyone else a marker.
    pub fn sight(&self, ledger: &Ledger) -> Sight {
        if self
            .roles
            .iter()
            .any(|r| matches!(r, Role::Admin | Role::Auditor))
        {
            Sight::All
        } else if let Some(s) = &self.data_subject {
            Sight::Own(ledger.pseudonym(s))
        } else {
            Sight::Nothing
        }
    }

    /// The equality filters every query of this principal carries: its tenant, and for the
    /// subject role its data subject on the `data_subject` axis the packs derive.
    pub fn forced_filters(&self) -> Vec<(String, String)> {
        let mut f = Vec::new();
        if let Some(t) = &self.tenant {
            f.push(("tenant".to_string(), t.clone()));
        }
        if let Some(s) = &self.data_subject {
            f.push(("data_subject".to_string(), s.clone()));
        }
        f
    }

    pub fn to_json(&self) -> Value {
        json!({
            "key_id": self.key_id,
            "roles": self.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "tenant": self.tenant,
            "data_subject": self.data_subject,
        })
    }
}

/// Why a request could not be authenticated; the message is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthFailure {
    pub message: &'static str,
    /// The key's id when the caller presented a known (revoked) key.
    pub key_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileSig {
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

struct Snapshot {
    sig: Option<FileSig>,
    by_hash: HashMap<[u8; 32], Arc<KeyRecord>>,
    keys: Vec<KeyRecord>,
}

/// The server's view of the key file.
pub(crate) struct KeyRing {
    data_dir: PathBuf,
    snapshot: RwLock<Arc<Snapshot>>,
    auth_required: AtomicBool,
    /// A version of the file that was refused, not read again until it changes.
    refused: std::sync::Mutex<Option<FileSig>>,
    /// The log's key records and every key loaded since: no later version may widen them.
    history: std::sync::Mutex<crate::key_history::History>,
    /// Bumped whenever the loaded keys change.
    generation: AtomicU64,
    /// Tells whether the file's directory changed, so that a request compares the file's
    /// signature only then; `None`, or blind, where it cannot tell.
    watch: Option<KeyFileWatch>,
    blind: AtomicBool,
    /// Held, while the watch is followed, as its queue is read and what it told is loaded
    /// (see `refresh`).
    turn: std::sync::Mutex<()>,
}

impl KeyRing {
    pub(crate) fn load(data_dir: PathBuf) -> Result<Self, keys::KeyError> {
        // The file's directory is made if missing (an open-mode server gets its first key
        // later) and watched before the first read, so that no change after it goes unseen.
        // Where either fails, the ring compares the file's signature on every request.
        let file = keys::file_path(&data_dir);
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let watch = KeyFileWatch::new(&file);
        let ring = KeyRing {
            data_dir,
            snapshot: RwLock::new(Arc::new(Snapshot {
                sig: None,
                by_hash: HashMap::new(),
                keys: Vec::new(),
            })),
            auth_required: AtomicBool::new(false),
            refused: Default::default(),
            history: Default::default(),
            generation: AtomicU64::new(0),
            watch,
            blind: AtomicBool::new(!changes_show_in_its_directory(&file)),
            turn: Default::default(),
        };
        ring.reload()?;
        Ok(ring)
    }

    pub(crate) fn open_mode(&self) -> bool {
        !self.auth_required.load(Ordering::Acquire)
    }

    fn sig(&self) -> Option<FileSig> {
        let m = std::fs::metadata(keys::file_path(&self.data_dir)).ok()?;
        Some(FileSig {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        })
    }

    /// Re-reads the file if it changed; returns whether it did.
    pub(crate) fn refresh(&self) -> bool {
        // While the watch is followed, one refresh at a time reads its queue and loads what it
        // told: a request that finds the queue empty because another emptied it waits here
        // until that one has loaded the change, so none is served by the keys from before it.
        // Without the watch each request compares the file itself and needs no turn.
        let mut _turn = None;
        if let Some(watch) = self.watch.as_ref()
            && !self.blind.load(Ordering::Acquire)
        {
            _turn = Some(self.turn.lock().expect("key ring lock"));
            match watch.seen() {
                Seen::Nothing => return false,
                Seen::Something
                    if changes_show_in_its_directory(&keys::file_path(&self.data_dir)) => {}
                Seen::Something | Seen::Blind => self.blind.store(true, Ordering::Release),
            }
        }
        let loaded = self.snapshot.read().expect("key ring lock").sig;
        let sig = self.sig();
        let refused = *self.refused.lock().expect("key ring lock");
        if sig == loaded || (sig.is_some() && sig == refused) {
            return false;
        }
        match self.reload() {
            Ok(changed) => changed,
            Err(e) => {
                // Logged once per version of the file, not on every request.
                tracing::error!(error = %e, "refusing this version of the key file; keeping the keys loaded before");
                *self.refused.lock().expect("key ring lock") = sig;
                false
            }
        }
    }

    fn reload(&self) -> Result<bool, keys::KeyError> {
        // The signature is taken before reading, so a change racing the read is seen next time.
        let sig = self.sig();
        let path = keys::file_path(&self.data_dir);
        let list = keys::parse_file(&path)?;
        let mut history = self.history.lock().expect("key ring lock");
        if let Some(why) = history.widened_by(&list) {
            return Err(keys::KeyError::Corrupted {
                path,
                message: format!("it grants more than the keys loaded or recorded before: {why}"),
            });
        }
        history.absorb(&list);
        drop(history);
        let mut by_hash = HashMap::with_capacity(list.len());
        for k in &list {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&k.sha256, &mut digest).map_err(|_| {
                keys::KeyError::Corrupted {
                    path: path.clone(),
                    message: format!("key {} has a malformed sha256", k.id),
                }
            })?;
            by_hash.insert(digest, Arc::new(k.clone()));
        }
        if !list.is_empty() {
            self.auth_required.store(true, Ordering::Release);
        }
        let mut snap = self.snapshot.write().expect("key ring lock");
        let changed = snap.keys != list;
        if changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        *snap = Arc::new(Snapshot {
            sig,
            by_hash,
            keys: list,
        });
        Ok(changed)
    }

    /// Adds the log's key records to what later versions of the file are checked against.
    pub(crate) fn remember(&self, log: crate::key_history::History) {
        self.history.lock().expect("key ring lock").merge(log);
    }

    /// Changes whenever the loaded keys change.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every key ever created, in creation order.
    pub(crate) fn keys(&self) -> Vec<KeyRecord> {
        self.snapshot.read().expect("key ring lock").keys.clone()
    }

    /// The tenant of the key named by id, revoked or not: a refused attempt made with it
    /// belongs to that tenant's record of access, where its auditors read it.
    pub(crate) fn tenant_of(&self, key_id: &str) -> Option<String> {
        let snapshot = self.snapshot.read().expect("key ring lock");
        snapshot
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .and_then(|k| k.tenant.clone())
    }

    /// The principal of a key named by id (a session's key), if it still exists unrevoked.
    pub(crate) fn principal_of_id(&self, key_id: &str) -> Result<Principal, AuthFailure> {
        self.refresh();
        if self.open_mode() {
            return Ok(Principal::open());
        }
        let snap = self.snapshot.read().expect("key ring lock").clone();
        let ended = |message| AuthFailure {
            message,
            key_id: Some(key_id.to_string()),
        };
        let key = snap
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(ended("the session's key no longer exists; sign in again"))?;
        if key.is_revoked() {
            return Err(ended("the session's key has been revoked"));
        }
        Ok(Principal {
            key_id: key.id.clone(),
            roles: key.roles.clone(),
            tenant: key.tenant.clone(),
            data_subject: key.data_subject.clone(),
        })
    }

    /// Resolves an `Authorization` header value (or its absence) to a principal.
    pub(crate) fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, AuthFailure> {
        self.refresh();
        let fail = |message| AuthFailure {
            message,
            key_id: None,
        };
        if self.open_mode() {
            return Ok(Principal::open());
        }
        let header = header.ok_or(fail("an API key is required: Authorization: Bearer KEY"))?;
        let text = std::str::from_utf8(header)
            .map_err(|_| fail("the Authorization header is not valid text"))?;
        let (scheme, secret) = text
            .split_once(' ')
            .ok_or(fail("the Authorization header must be: Bearer KEY"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(fail("the Authorization header must be: Bearer KEY"));
        }
        let digest = keys::hash_secret(secret.trim());
        let snap = self.snapshot.read().expect("key ring lock").clone();
        let key = snap.by_hash.get(&digest).ok_or(fail("unknown API key"))?;
        if key.is_revoked() {
            return Err(AuthFailure {
                message: "this API key has been revoked",
                key_id: Some(key.id.clone()),
            });
        }
        Ok(Principal {
            key_id: key.id.clone(),
            roles: key.roles.clone(),
            tenant: key.tenant.clone(),
            data_subject: key.data_subject.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(roles: &[Role], tenant: Option<&str>) -> Principal {
        Principal {
            key_id: "k".into(),
            roles: roles.to_vec(),
            tenant: tenant.map(str::to_string),
            data_subject: None,
        }
    }

    #[test]
    fn tenant_keys_never_see_other_or_unscoped_records() {
        let a = p(&[Role::Admin], Some("a"));
        assert!(a.sees(Some("a"), None));
        assert!(!a.sees(Some("b"), None));
        assert!(
            !a.sees(None, None),
            "records without a tenant are not any tenant's"
        );
        assert!(p(&[Role::Reader], None).sees(None, None));
    }

    fn subject_key(tenant: Option<&str>, data_subject: &str) -> Principal {
        Principal {
            data_subject: Some(data_subject.into()),
            ..p(&[Role::Subject], tenant)
        }
    }

    /// A ledger holding an email to each (tenant, customer), and their stored records in
    /// that order; the envelope subject of each is the email.
    fn emails(dir: &std::path::Path, to: &[(&str, &str)]) -> (Ledger, Vec<Vec<u8>>) {
        let config = sealog_ledger::LedgerConfig {
            store: sealog_ledger::StoreConfig {
                durability: sealog_ledger::Durability::Os,
                ..sealog_ledger::StoreConfig::default()
            },
            packs: sealog_ledger::Packs::builtin(),
            undeclared: sealog_ledger::Undeclared::Quarantine,
        };
        let ledger = Ledger::open(dir, config).unwrap();
        let events: Vec<Vec<u8>> = to
            .iter()
            .enumerate()
            .map(|(i, (tenant, customer))| {
                json!({"specversion": "1.0", "id": format!("m{i}"), "source": "mailer",
                       "type": "comms.email", "time": "2026-04-10T07:30:00Z", "tenant": tenant,
                       "subject": "<a1@shop>",
                       "data": {"email_id": "<a1@shop>", "event_type": "delivered",
                                "recipient_details": {"customer_id": customer}}})
                .to_string()
                .into_bytes()
            })
            .collect();
        let raws: Vec<_> = events.iter().map(|e| Ok(e.as_slice())).collect();
        let results = ledger
            .ingest(&raws, &sealog_ledger::Author::ANYONE)
            .unwrap();
        let records = results
            .iter()
            .map(|r| ledger.get(r.seq().expect("appended")).unwrap().unwrap())
            .collect();
        (ledger, records)
    }

    #[test]
    fn a_subject_key_reaches_the_records_whose_data_subject_is_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let (ledger, r) = emails(
            tmp.path(),
            &[("shop", "cust-a"), ("shop", "cust-b"), ("other", "cust-a")],
        );
        let a = subject_key(Some("shop"), "cust-a");
        assert!(a.sees_record(&ledger, &r[0]));
        assert!(!a.sees_record(&ledger, &r[1]));
        assert!(!a.sees_record(&ledger, &r[2]), "the tenant still holds");
        assert!(
            !subject_key(Some("shop"), "<a1@shop>").sees_record(&ledger, &r[0]),
            "the envelope subject is not the data subject"
        );
        assert!(subject_key(None, "cust-a").sees_record(&ledger, &r[0]));
        assert!(subject_key(None, "cust-a").sees_record(&ledger, &r[2]));
        let pseudonymous = subject_key(Some("shop"), &ledger.pseudonym("cust-a"));
        assert!(
            pseudonymous.sees_record(&ledger, &r[0]),
            "a key holds the pseudonym"
        );
        assert!(p(&[Role::Reader], Some("shop")).sees_record(&ledger, &r[1]));
        assert!(!p(&[Role::Reader], Some("x")).sees_record(&ledger, &r[1]));
        assert!(!a.sees_record(&ledger, b"not a record"));
        assert_eq!(
            a.forced_filters(),
            [
                ("tenant".to_string(), "shop".to_string()),
                ("data_subject".to_string(), "cust-a".to_string())
            ]
        );
        assert_eq!(a.sight(&ledger), Sight::Own(ledger.pseudonym("cust-a")));
        assert_eq!(p(&[Role::Auditor], None).sight(&ledger), Sight::All);
        assert_eq!(
            p(&[Role::Reader, Role::Writer], None).sight(&ledger),
            Sight::Nothing
        );
    }

    #[test]
    fn no_quarantine_record_is_any_data_subjects() {
        // A quarantined email of cust-a: its correlation names the email, never the customer.
        let record = json!({"specversion": "1.0", "id": "m1", "source": "mailer",
            "type": "sealog.quarantine", "time": "2026-04-10T07:30:00Z", "tenant": "shop",
            "subject": "cust-a", "actor": {"type": "service", "id": "sealog"},
            "data": {"reason_code": "SCHEMA_VIOLATION", "event_type": "comms.email",
                     "scope": "shop", "payload_ref": null, "customer_id": "cust-a"},
            "seq": 0, "record_id": format!("sha256:{}", "b".repeat(64)),
            "ingested_at": "2026-04-10T07:30:01Z"})
        .to_string()
        .into_bytes();
        let tmp = tempfile::tempdir().unwrap();
        let (ledger, _) = emails(tmp.path(), &[]);
        assert!(!subject_key(Some("shop"), "cust-a").sees_record(&ledger, &record));
        assert!(p(&[Role::Auditor], Some("shop")).sees_record(&ledger, &record));
    }

    #[test]
    fn tenant_scoped_keys_cannot_read_the_whole_log() {
        assert!(p(&[Role::Auditor], None).may(Action::EntryBundle));
        assert!(!p(&[Role::Auditor], Some("a")).may(Action::EntryBundle));
        assert!(!p(&[Role::Admin], Some("a")).may(Action::Metrics));
        assert!(p(&[Role::Admin], Some("a")).may(Action::KeysCreate));
        assert!(!p(&[Role::Writer], None).may(Action::GetRecord));
        assert!(p(&[Role::Writer], None).may(Action::Checkpoint));
        assert!(!p(&[Role::Writer], None).proves_any_record());
        assert!(p(&[Role::Writer, Role::Auditor], None).proves_any_record());
        assert!(!p(&[Role::Reader], None).may(Action::Append));
    }

    /// On Linux the ring learns of a change to the key file from its watch, and a key added or
    /// revoked on disk counts from the next request on, in open mode and after.
    #[test]
    fn keys_changed_on_disk_count_from_the_next_request_through_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(dir.path().to_path_buf()).unwrap();
        #[cfg(target_os = "linux")]
        assert!(
            ring.watch.is_some(),
            "a fresh directory's key file is watched"
        );
        let spec = |roles: Vec<Role>| keys::KeySpec {
            roles,
            ..Default::default()
        };
        let bearer = |k: &keys::NewKey| format!("Bearer {}", k.secret);
        let admin = keys::create(dir.path(), spec(vec![Role::Admin]), "test").unwrap();
        assert!(ring.authenticate(Some(bearer(&admin).as_bytes())).is_ok());
        assert!(ring.authenticate(None).is_err(), "open mode ended");
        let reader = keys::create(dir.path(), spec(vec![Role::Reader]), "test").unwrap();
        assert!(ring.authenticate(Some(bearer(&reader).as_bytes())).is_ok());
        for _ in 0..3 {
            assert!(!ring.refresh(), "nothing changed since");
        }
        keys::revoke(dir.path(), &reader.record.id, "test", None).unwrap();
        assert!(ring.authenticate(Some(bearer(&reader).as_bytes())).is_err());
        assert!(ring.authenticate(Some(bearer(&admin).as_bytes())).is_ok());
        assert!(
            !ring.blind.load(Ordering::Acquire),
            "the watch still follows the directory"
        );
    }

    /// A key file that is a symbolic link, or has a second name, can change without its
    /// directory hearing of it: the ring then compares the file on every request, and a key
    /// revoked through the link's target is refused at the next one.
    #[test]
    fn a_key_file_kept_elsewhere_is_compared_on_every_request() {
        let (kept, served) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let spec = keys::KeySpec {
            roles: vec![Role::Reader],
            ..Default::default()
        };
        let k = keys::create(kept.path(), spec, "test").unwrap();
        let link = keys::file_path(served.path());
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(keys::file_path(kept.path()), &link).unwrap();
        let ring = KeyRing::load(served.path().to_path_buf()).unwrap();
        assert!(
            ring.blind.load(Ordering::Acquire),
            "a linked file is not left to the watch"
        );
        let bearer = format!("Bearer {}", k.secret);
        assert!(ring.authenticate(Some(bearer.as_bytes())).is_ok());
        keys::revoke(kept.path(), &k.record.id, "test", None).unwrap();
        assert!(ring.authenticate(Some(bearer.as_bytes())).is_err());

        let other = tempfile::tempdir().unwrap();
        let file = keys::file_path(other.path());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::hard_link(keys::file_path(kept.path()), &file).unwrap();
        let ring = KeyRing::load(other.path().to_path_buf()).unwrap();
        assert!(
            ring.blind.load(Ordering::Acquire),
            "a file with two names is not left to the watch"
        );
    }

    #[test]
    fn open_mode_ends_with_the_first_key_and_never_returns() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(dir.path().to_path_buf()).unwrap();
        assert!(ring.open_mode());
        assert_eq!(ring.authenticate(None), Ok(Principal::open()));
        let spec = keys::KeySpec {
            roles: vec![Role::Reader],
            ..Default::default()
        };
        let k = keys::create(dir.path(), spec, "test").unwrap();
        let bearer = format!("Bearer {}", k.secret);
        assert_eq!(
            ring.authenticate(Some(bearer.as_bytes())).unwrap().key_id,
            k.record.id
        );
        assert!(ring.authenticate(None).is_err());
        keys::revoke(dir.path(), &k.record.id, "test", None).unwrap();
        assert!(ring.authenticate(Some(bearer.as_bytes())).is_err());
        std::fs::remove_file(keys::file_path(dir.path())).unwrap();
        assert!(
            ring.authenticate(None).is_err(),
            "a deleted file does not open the server"
        );
    }
}
