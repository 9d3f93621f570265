//! Sealog's ingest semantics over the embedded store: every event goes through
//! envelope → pack lookup → forbidden fields → completeness → schema → normalization →
//! `record_id` → dedupe → supersedes rules → append, and gets exactly one result, in order.
//! Events that cannot become canonical go to the quarantine log, a second store with its
//! own Merkle tree, with their reason; their raw bytes go to a restricted payload area.
//!
//! *Invariants*: nothing reaches the canonical log without passing its type's pack; a result
//! is returned only once what it reports is durable; a forbidden payload is written nowhere.

mod payloads;
pub mod quarantine;
mod state;
mod strict;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use sealog_model::input::{self, InputError};
use sealog_model::jcs::JcsError;
use sealog_model::json::Json;
use sealog_model::record::PrepareError;
use sealog_model::{Deriver, Envelope, PreparedEvent, RecordId};
use sealog_packs::{Packs, ReasonCode};
use sealog_store::{Config, Outcome, Page, Query, Store, StoreError};

pub use quarantine::{Correlation, Finding, QUARANTINE_TYPE};
pub use state::StateError;

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
    /// The canonical store's settings; the quarantine log shares them. The deriver is set
    /// by the ledger (the packs).
    pub store: Config,
    pub packs: Packs,
    pub undeclared: Undeclared,
}

/// One event after preparation, before it is appended anywhere.
pub enum Prepared {
    /// Passed its pack: for the canonical log (the supersedes rules are still to come).
    Event(PreparedEvent),
    /// Failed its pack: for the quarantine log, with the raw bytes as evidence (unless the
    /// reason is a forbidden field).
    Quarantine {
        correlation: Correlation,
        finding: Finding,
        payload: Option<Vec<u8>>,
    },
    /// Not an event at all (or an invalid envelope): refused, nothing stored.
    Rejected(PrepareError),
}

/// The one result each event gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestResult {
    Appended {
        seq: u64,
        record_id: RecordId,
    },
    Duplicate {
        seq: u64,
        record_id: RecordId,
    },
    Quarantined {
        quarantine_id: RecordId,
        finding: Finding,
    },
    Rejected(PrepareError),
}

impl IngestResult {
    pub fn to_json(&self) -> Value {
        match self {
            IngestResult::Appended { seq, record_id } => {
                json!({"status": "appended", "seq": seq, "record_id": record_id.to_string()})
            }
            IngestResult::Duplicate { seq, record_id } => {
                json!({"status": "duplicate", "seq": seq, "record_id": record_id.to_string()})
            }
            IngestResult::Quarantined {
                quarantine_id,
                finding,
            } => {
                let mut m = serde_json::Map::new();
                m.insert("status".into(), json!("quarantined"));
                m.insert("quarantine_id".into(), json!(quarantine_id.to_string()));
                m.extend(finding.members());
                Value::Object(m)
            }
            IngestResult::Rejected(e) => {
                let mut error = json!({"code": e.code(), "message": e.to_string()});
                if let Some(f) = e.field() {
                    error["field"] = json!(f);
                }
                json!({"status": "rejected", "error": error})
            }
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            IngestResult::Appended { .. } => "appended",
            IngestResult::Duplicate { .. } => "duplicate",
            IngestResult::Quarantined { .. } => "quarantined",
            IngestResult::Rejected(_) => "rejected",
        }
    }
}

/// Which records a query sees of each supersedes chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Every canonical record, in append order.
    #[default]
    History,
    /// Per chain, only its head: records nothing (as of the query's size) supersedes.
    Current,
}

pub struct Ledger {
    canonical: Store,
    quarantine: Store,
    payloads: payloads::Payloads,
    packs: Arc<Packs>,
    undeclared: Undeclared,
    dir: PathBuf,
}

impl Ledger {
    /// Opens (creating on first use) the ledger in `dir`: the canonical store there, the
    /// quarantine log in `dir/quarantine`.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Self, StoreError> {
        let packs = Arc::new(config.packs);
        let canonical = Store::open(
            dir,
            Config {
                deriver: packs.clone(),
                ..config.store.clone()
            },
        )?;
        let qdir = dir.join("quarantine");
        let quarantine = Store::open(
            &qdir,
            Config {
                deriver: Arc::new(quarantine::QuarantineAxes),
                ..config.store
            },
        )?;
        let payloads = payloads::Payloads::open(&qdir.join("payloads"))?;
        Ok(Ledger {
            canonical,
            quarantine,
            payloads,
            packs,
            undeclared: config.undeclared,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The canonical log: reads, proofs, checkpoints and appends of Sealog's own records.
    pub fn store(&self) -> &Store {
        &self.canonical
    }

    /// The quarantine log, with its own tree and checkpoints.
    pub fn quarantine_store(&self) -> &Store {
        &self.quarantine
    }

    pub fn packs(&self) -> &Packs {
        &self.packs
    }

    /// Runs every check that needs no other record. Pure and thread-safe: callers prepare
    /// in parallel, then `commit` in input order.
    pub fn prepare(&self, raw: &[u8]) -> Prepared {
        prepare(&self.packs, self.undeclared, raw)
    }

    /// Prepares and commits, one result per raw event in order.
    pub fn ingest(&self, raws: &[input::RawEvent<'_>]) -> Result<Vec<IngestResult>, StoreError> {
        let prepared = raws
            .iter()
            .map(|r| match r {
                Ok(bytes) => self.prepare(bytes),
                Err(e) => Prepared::Rejected(PrepareError::Input(e.clone())),
            })
            .collect();
        self.commit(prepared)
    }

    /// Appends prepared events: canonical ones first (the writer applies dedupe and the
    /// supersedes rules), then every quarantine record (payloads synced before them), and
    /// answers once all of it is durable.
    pub fn commit(&self, prepared: Vec<Prepared>) -> Result<Vec<IngestResult>, StoreError> {
        let mut events = Vec::new();
        // Only events the supersedes rules may refuse need keeping for their evidence.
        let mut at_risk: Vec<Option<Vec<u8>>> = Vec::new();
        let mut slots = Vec::with_capacity(prepared.len());
        let mut quarantined = Vec::new();
        for p in prepared {
            match p {
                Prepared::Event(ev) => {
                    slots.push(Slot::Canonical(events.len()));
                    at_risk.push(
                        (ev.supersedes.is_some() || ev.unique_per_subject)
                            .then(|| ev.canonical.clone()),
                    );
                    events.push(ev);
                }
                Prepared::Quarantine {
                    correlation,
                    finding,
                    payload,
                } => {
                    slots.push(Slot::Quarantine(quarantined.len()));
                    quarantined.push((correlation, finding, payload));
                }
                Prepared::Rejected(e) => slots.push(Slot::Rejected(e)),
            }
        }
        let outcomes = self.canonical.append(events)?;
        let mut canonical_slots = Vec::with_capacity(outcomes.len());
        for (outcome, evidence) in outcomes.iter().zip(at_risk) {
            match outcome {
                Outcome::Refused { refusal, .. } => {
                    let canonical = evidence.expect("only at-risk events are refused");
                    let correlation = correlation_of_canonical(&self.packs, &canonical);
                    let finding = Finding {
                        reason_code: refusal.code(),
                        message: Some(refusal.message()),
                        missing_fields: Vec::new(),
                        violations: Vec::new(),
                        forbidden_fields: Vec::new(),
                    };
                    canonical_slots.push(Some(quarantined.len()));
                    quarantined.push((correlation, finding, Some(canonical)));
                }
                _ => canonical_slots.push(None),
            }
        }

        let q_ids = self.append_quarantine(&quarantined)?;
        let mut results = Vec::with_capacity(slots.len());
        let mut quarantined = quarantined
            .into_iter()
            .map(|(_, f, _)| Some(f))
            .collect::<Vec<_>>();
        for slot in slots {
            let result = match slot {
                Slot::Canonical(i) => match (outcomes[i], canonical_slots[i]) {
                    (Outcome::Appended { seq, record_id }, _) => {
                        IngestResult::Appended { seq, record_id }
                    }
                    (Outcome::Duplicate { seq, record_id }, _) => {
                        IngestResult::Duplicate { seq, record_id }
                    }
                    (Outcome::Refused { .. }, Some(q)) => IngestResult::Quarantined {
                        quarantine_id: q_ids[q],
                        finding: quarantined[q]
                            .take()
                            .expect("each quarantine slot is answered once"),
                    },
                    (Outcome::Refused { .. }, None) => unreachable!("refusals are quarantined"),
                },
                Slot::Quarantine(q) => IngestResult::Quarantined {
                    quarantine_id: q_ids[q],
                    finding: quarantined[q]
                        .take()
                        .expect("each quarantine slot is answered once"),
                },
                Slot::Rejected(e) => IngestResult::Rejected(e),
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

    fn append_quarantine(
        &self,
        entries: &[(Correlation, Finding, Option<Vec<u8>>)],
    ) -> Result<Vec<RecordId>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.payloads
            .append_all(entries.iter().filter_map(|(_, _, p)| p.as_deref()))?;
        let events = entries
            .iter()
            .map(|(corr, finding, payload)| {
                let reference = payload.as_deref().map(payloads::payload_ref);
                let ev = quarantine::record_event(corr, finding, reference.as_deref());
                PreparedEvent::from_json_with(&Json::from_value(&ev), &quarantine::QuarantineAxes)
                    .map_err(|e| {
                        StoreError::InvalidArgument(format!(
                            "cannot form the quarantine record for event {}: {e}",
                            corr.id
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .quarantine
            .append(events)?
            .iter()
            .map(Outcome::record_id)
            .collect())
    }

    /// Canonical records, through a view.
    pub fn query(&self, q: &Query, view: View) -> Result<Page, StoreError> {
        let q = Query {
            current_only: view == View::Current,
            ..q.clone()
        };
        self.canonical.query(&q)
    }

    /// Quarantine records; `equals` may use `reason`, `event_type`, `id`, `tenant`, `subject`.
    pub fn quarantine_query(&self, q: &Query) -> Result<Page, StoreError> {
        self.quarantine.query(q)
    }

    /// The raw payload a quarantine record's `payload_ref` names (restricted evidence).
    pub fn quarantine_payload(&self, payload_ref: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.payloads.get(payload_ref)
    }

    /// A subject's state rebuilt from its canonical records as of a log size.
    pub fn state(
        &self,
        subject: &str,
        scope: Option<&str>,
        tenant: Option<&str>,
        as_of_size: Option<u64>,
    ) -> Result<Value, StateError> {
        state::rebuild(self, subject, scope, tenant, as_of_size)
    }

    /// Closes both logs, signing a final checkpoint of each.
    pub fn close(self) -> Result<(), StoreError> {
        let Ledger {
            canonical,
            quarantine,
            ..
        } = self;
        let a = canonical.close();
        let b = quarantine.close();
        a.and(b)
    }
}

enum Slot {
    Canonical(usize),
    Quarantine(usize),
    Rejected(PrepareError),
}

fn correlation_of_canonical(packs: &Packs, canonical: &[u8]) -> Correlation {
    let json = Json::parse(canonical).expect("a prepared event's canonical bytes are JSON");
    let env = Envelope::parse(&json).expect("a prepared event's envelope is valid");
    Correlation::of(&env, &json, &packs.derive(&json, &env))
}

/// The checks that need no other record, in the pipeline's order.
pub fn prepare(packs: &Packs, undeclared: Undeclared, raw: &[u8]) -> Prepared {
    let rejected = |e: PrepareError| Prepared::Rejected(e);
    let text = match input::check_event_bytes(raw) {
        Ok(t) => t,
        Err(e) => return rejected(e.into()),
    };
    let mut value = match strict::parse(text) {
        Ok(v) => v,
        Err(strict::StrictError::NotJson(m)) => return rejected(InputError::NotJson(m).into()),
        Err(strict::StrictError::Duplicate) => return rejected(locate_duplicate(text)),
    };
    let declared = {
        let json = Json::from_value(&value);
        let env = match Envelope::parse(&json) {
            Ok(env) => env,
            Err(e) => return rejected(e.into()),
        };
        let declared = packs.declares(env.event_type);
        if !declared && undeclared == Undeclared::Accept {
            return match PreparedEvent::from_json_with(&json, packs) {
                Ok(ev) => Prepared::Event(ev),
                Err(e) => rejected(e),
            };
        }
        declared
    };
    match packs.check(&mut value) {
        Ok(()) => match PreparedEvent::from_json_with(&Json::from_value(&value), packs) {
            Ok(ev) => Prepared::Event(ev),
            Err(e) => rejected(e),
        },
        Err(q) => {
            // A failed check leaves the event as it was sent (normalization runs last).
            let json = Json::from_value(&value);
            let env = Envelope::parse(&json).expect("checked above");
            let derived = if declared {
                packs.derive(&json, &env)
            } else {
                sealog_model::Derived::default()
            };
            let forbidden = q.reason == ReasonCode::ForbiddenField;
            Prepared::Quarantine {
                correlation: Correlation::of(&env, &json, &derived),
                finding: Finding {
                    reason_code: q.reason.as_str(),
                    message: None,
                    missing_fields: q.missing_fields,
                    violations: q
                        .violations
                        .into_iter()
                        .map(|v| (v.pointer, v.message))
                        .collect(),
                    forbidden_fields: q.forbidden_fields,
                },
                // The payload holds the forbidden content: it is not kept anywhere.
                payload: (!forbidden).then(|| raw.to_vec()),
            }
        }
    }
}

/// The duplicate member's pointer, from a second, slower parse that keeps every member.
fn locate_duplicate(text: &str) -> PrepareError {
    let pointer = Json::parse_str(text)
        .ok()
        .and_then(|json| duplicate_pointer(&json, &mut String::new()))
        .unwrap_or_default();
    PrepareError::Canonical(JcsError::DuplicateKey(pointer))
}

/// The pointer of the first member whose name repeats in its object.
fn duplicate_pointer(j: &Json<'_>, path: &mut String) -> Option<String> {
    let len = path.len();
    let found = match j {
        Json::Object(members) => {
            let mut seen = std::collections::HashSet::new();
            members.iter().find_map(|(k, v)| {
                path.truncate(len);
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                if !seen.insert(k.as_ref()) {
                    return Some(path.clone());
                }
                duplicate_pointer(v, path)
            })
        }
        Json::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.truncate(len);
            path.push_str(&format!("/{i}"));
            duplicate_pointer(v, path)
        }),
        _ => None,
    };
    path.truncate(len);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_refused_with_their_pointer_before_any_pack_check() {
        let packs = Packs::builtin();
        let raw = br#"{"id":"k","source":"s","type":"knowledge.chunk_created","time":"2026-01-03T12:00:00Z","data":{"a":{"x/y":[1,{"b":1,"b":2}]}}}"#;
        match prepare(&packs, Undeclared::Quarantine, raw) {
            Prepared::Rejected(e) => {
                assert_eq!(e.code(), "DUPLICATE_KEY");
                assert_eq!(e.field(), Some("/data/a/x~1y/1/b"));
            }
            _ => panic!("a duplicate member must be refused"),
        }
    }
}
