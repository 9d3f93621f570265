//! The checks that need no other record, in the pipeline's order, on one parse:
//!
//! size and UTF-8 → parse (one strict tree; a repeated member refused here) → who may write
//! it (tenant, reserved types) → envelope → pack lookup → forbidden fields → completeness →
//! schema → normalization (in the tree) → canonical bytes and `record_id` → index keys.
//!
//! Every later step reads the tree the first parse built; nothing is parsed again, not even
//! an event that is refused.

use sealog_model::input::check_event_bytes;
use sealog_model::json::Json;
use sealog_model::limits::RECORD_BYTES_MAX;
use sealog_model::{Canonical, Envelope, PrepareError};
use sealog_packs::{Derived, Personal, ReasonCode};
use sealog_store::{Entry, Key, LogRead, StoreError};
use serde_json::Value;

use crate::keys::{Deriver, EventKeys};
use crate::privacy::{Privacy, Unsealable};
use crate::quarantine::{Correlation, Finding, Packed};
use crate::result::Rejection;
use crate::rules::Claim;
use crate::{Author, Undeclared};

/// Event types only Sealog's own code paths write: records of what people and keys did
/// (`audit.*`) and of what the log did (`sealog.*`), all declared by the `audit` pack.
pub const RESERVED_TYPE_PREFIXES: [&str; 2] = ["audit.", "sealog."];

/// One event after preparation, before it is appended anywhere.
#[derive(Debug)]
pub enum Prepared {
    /// Passed its pack: for the canonical log (the supersedes rules are still to come).
    Event(Box<Entry<Claim>>),
    /// Failed its pack: for the quarantine log, with the raw bytes as evidence (unless the
    /// reason is a forbidden field).
    Quarantine {
        correlation: Box<Correlation>,
        finding: Finding,
        payload: Option<Vec<u8>>,
    },
    /// Not an event at all, an invalid envelope, or not the author's to write: refused,
    /// nothing stored.
    Rejected(Rejection),
}

pub(crate) struct Pipeline<'a> {
    pub(crate) deriver: &'a Deriver,
    pub(crate) privacy: &'a Privacy,
    /// Read to tell a data subject the log already knows from a new one.
    pub(crate) canonical: &'a dyn LogRead,
    pub(crate) undeclared: Undeclared,
}

impl Pipeline<'_> {
    pub(crate) fn raw(&self, raw: &[u8], author: &Author<'_>) -> Prepared {
        let text = match check_event_bytes(raw) {
            Ok(t) => t,
            Err(e) => return Prepared::Rejected(PrepareError::from(e).into()),
        };
        match Json::parse_str(text) {
            Ok(mut tree) => self.tree(&mut tree, author, Some(raw)),
            Err(e) => Prepared::Rejected(PrepareError::from(e).into()),
        }
    }

    pub(crate) fn value(&self, value: &Value, author: &Author<'_>) -> Prepared {
        let mut tree = Json::from_value(value);
        self.tree(&mut tree, author, None)
    }

    /// `raw`, when the event came as bytes, is the quarantine evidence; otherwise the tree's
    /// own text is.
    pub(crate) fn tree(
        &self,
        tree: &mut Json<'_>,
        author: &Author<'_>,
        raw: Option<&[u8]>,
    ) -> Prepared {
        if let Err(r) = author.may_write(tree) {
            return Prepared::Rejected(r);
        }
        if let Err(e) = sealog_model::cloudevents::normalize_data(tree) {
            return Prepared::Rejected(PrepareError::from(e).into());
        }
        let env = match Envelope::parse(tree) {
            Ok(env) => env,
            Err(e) => return Prepared::Rejected(PrepareError::from(e).into()),
        };
        let declared = self.deriver.declares(env.event_type);
        if !declared && self.undeclared == Undeclared::Accept && author.is_producer() {
            return entry(tree, &env, Derived::default(), Vec::new(), false, raw);
        }
        // The pack edits the tree, so the envelope's view of it ends here and is read again
        // after normalization (which never touches it).
        let event_type = env.event_type.to_string();
        match self.deriver.check(&event_type, tree) {
            Ok(()) => {
                let sealing = (self.deriver.packs.personal(&event_type))
                    .and_then(|p| Some((p, p.sealed_for(tree)?)));
                let sealed_for = match sealing {
                    Some((p, subject)) => match self.seal(&event_type, p, &subject, tree) {
                        Ok(ps) => Some(ps),
                        Err(refused) => return *refused,
                    },
                    None => None,
                };
                let env = Envelope::fields(tree).expect("checked above; sealing keeps it");
                let (derived, axis_keys) =
                    self.deriver.derive_keyed(tree, &env, sealed_for.as_ref());
                entry(tree, &env, derived, axis_keys, sealed_for.is_some(), raw)
            }
            Err(q) => {
                // A failed check leaves the event as it was sent (normalization runs last).
                let env = Envelope::fields(tree).expect("checked above");
                let derived = if declared {
                    self.deriver.derive(tree, &env)
                } else {
                    Derived::default()
                };
                let forbidden = q.reason == ReasonCode::ForbiddenField;
                let personal = self.deriver.carries_personal(&event_type, tree)
                    || self.deriver.packs.may_carry_personal(&event_type);
                let raw_bytes = || match raw {
                    Some(r) => r.to_vec(),
                    None => tree.to_value().to_string().into_bytes(),
                };
                // The payload holds the forbidden content: it is kept nowhere. One that may
                // hold personal values (some outside the fields that declare them, or of a
                // type misspelt in a personal pack's namespace) is kept sealed for its data
                // subject, or not at all: never in clear, and never where erasure cannot reach.
                let payload = if forbidden {
                    None
                } else if personal {
                    self.deriver
                        .packs
                        .data_subject(tree, &env)
                        .and_then(|subject| {
                            self.privacy
                                .seal_payload(env.tenant, &subject, &raw_bytes(), &|ps| {
                                    self.knows(env.tenant, ps)
                                })
                                .ok()
                        })
                } else {
                    Some(raw_bytes())
                };
                let mut correlation = Correlation::of(&env, tree, &derived);
                if payload.is_none() || !personal {
                    correlation.data_subject = None;
                }
                Prepared::Quarantine {
                    correlation: Box::new(correlation),
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
                        delivery: None,
                    },
                    payload,
                }
            }
        }
    }

    /// Whether the log holds a record sealed for `pseudonym` in `tenant`.
    fn knows(&self, tenant: Option<&str>, pseudonym: &str) -> Result<bool, StoreError> {
        Ok(crate::personal::count_sealed_for(self.canonical, tenant, pseudonym, 1)? > 0)
    }

    /// Seals the personal values of an event that passed its pack, answering the pseudonym
    /// they were sealed for; what it answers instead when they cannot be sealed.
    fn seal(
        &self,
        event_type: &str,
        personal: Personal<'_>,
        subject: &str,
        tree: &mut Json<'_>,
    ) -> Result<[u8; 16], Box<Prepared>> {
        // The envelope was checked: its tenant is a string or absent (null reads as absent).
        let tenant = tree
            .get("tenant")
            .and_then(Json::as_str)
            .map(str::to_string);
        let refused = |reason: Unsealable, tree: &Json<'_>| {
            let env = Envelope::fields(tree).expect("checked above");
            match reason {
                // Kept nowhere, like forbidden content: holding it would bring back in clear
                // what the erasure destroyed.
                Unsealable::Erased => Prepared::Quarantine {
                    correlation: Box::new(Correlation::of(
                        &env,
                        tree,
                        &self.deriver.derive(tree, &env),
                    )),
                    finding: Finding {
                        reason_code: ReasonCode::DataSubjectErased.as_str(),
                        message: Some(
                            "this event's data subject was erased: its personal fields are not kept"
                                .into(),
                        ),
                        missing_fields: Vec::new(),
                        violations: Vec::new(),
                        forbidden_fields: Vec::new(),
                        delivery: None,
                    },
                    payload: None,
                },
                Unsealable::Lost => Prepared::Rejected(Rejection {
                    code: "SUBJECT_KEY_MISSING",
                    message: "the log holds records sealed for this event's data subject, but the key store has no key for them: restore privacy/subject-keys and the master key from backup".into(),
                    field: self.deriver.data_subject_pointer(event_type).map(str::to_string),
                    denied: false,
                }),
                Unsealable::Failed(e) => Prepared::Rejected(Rejection {
                    code: "KEY_STORE_FAILED",
                    message: format!("the data subject's key could not be made durable: {e}"),
                    field: None,
                    denied: false,
                }),
            }
        };
        let sealed = self
            .privacy
            .seal_event(personal, tree, tenant.as_deref(), subject, &|ps| {
                self.knows(tenant.as_deref(), ps)
            });
        sealed.map_err(|r| Box::new(refused(r, tree)))
    }
}

/// The entry for an event that passed its pack (or, accepted undeclared, its envelope).
fn entry(
    tree: &Json<'_>,
    env: &Envelope<'_>,
    derived: Derived,
    axis_keys: Vec<Key>,
    sealed: bool,
    raw: Option<&[u8]>,
) -> Prepared {
    // Room for the canonical form: the event as sent, a sealed one's values about a half
    // longer (base64, a synthetic IV, the pseudonym).
    let size = raw.map_or(
        1024,
        |r| if sealed { r.len() * 3 / 2 } else { r.len() } + 64,
    );
    let event = match Canonical::of_event_sized(tree, size) {
        Ok(c) => c,
        Err(e) => return Prepared::Rejected(PrepareError::from(e).into()),
    };
    if event.record_len_max() > RECORD_BYTES_MAX {
        return Prepared::Rejected(
            PrepareError::RecordTooLarge {
                bytes: event.record_len_max(),
                limit: RECORD_BYTES_MAX,
            }
            .into(),
        );
    }
    let unique_per_subject = derived.unique_per_subject;
    let at_risk = unique_per_subject || env.supersedes.is_some() || derived.supersedes.is_some();
    // The actor's canonical text is already written: cut from the event's, not written again.
    let correlation = at_risk.then(|| {
        let actor = event.member_value("actor").filter(|a| a.starts_with('{'));
        Packed::of(env, actor, &derived)
    });
    let keyed = EventKeys::of(env, derived, axis_keys);
    let claim = Claim {
        supersedes: keyed.supersedes,
        chain: keyed.chain,
        unique_per_subject,
        correlation,
        may_wait: false,
    };
    let row = crate::tables::row_of(env, tree, &event.record_id.0);
    Prepared::Event(Box::new(Entry {
        event,
        keys: keyed.keys,
        event_ns: env.time_nanos,
        claim,
        row,
    }))
}
