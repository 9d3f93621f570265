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
use sealog_model::{Canonical, Envelope, PrepareError};
use sealog_packs::{Derived, Packs, ReasonCode};
use sealog_store::Entry;
use serde_json::Value;

use crate::keys::EventKeys;
use crate::quarantine::{Correlation, Finding};
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
    pub(crate) packs: &'a Packs,
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
    fn tree(&self, tree: &mut Json<'_>, author: &Author<'_>, raw: Option<&[u8]>) -> Prepared {
        if let Err(r) = author.may_write(tree) {
            return Prepared::Rejected(r);
        }
        let env = match Envelope::parse(tree) {
            Ok(env) => env,
            Err(e) => return Prepared::Rejected(PrepareError::from(e).into()),
        };
        let declared = self.packs.declares(env.event_type);
        if !declared && self.undeclared == Undeclared::Accept && author.is_producer() {
            return entry(tree, &env, Derived::default());
        }
        // The pack edits the tree, so the envelope's view of it ends here and is read again
        // after normalization (which never touches it).
        let event_type = env.event_type.to_string();
        match self.packs.check(&event_type, tree) {
            Ok(()) => {
                let env = Envelope::fields(tree).expect("checked above; normalization keeps it");
                let derived = self.packs.derive(tree, &env);
                entry(tree, &env, derived)
            }
            Err(q) => {
                // A failed check leaves the event as it was sent (normalization runs last).
                let env = Envelope::fields(tree).expect("checked above");
                let derived = if declared {
                    self.packs.derive(tree, &env)
                } else {
                    Derived::default()
                };
                let forbidden = q.reason == ReasonCode::ForbiddenField;
                // The payload holds the forbidden content: it is kept nowhere.
                let payload = (!forbidden).then(|| match raw {
                    Some(r) => r.to_vec(),
                    None => tree.to_value().to_string().into_bytes(),
                });
                Prepared::Quarantine {
                    correlation: Box::new(Correlation::of(&env, tree, &derived)),
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
                    payload,
                }
            }
        }
    }
}

/// The entry for an event that passed its pack (or, accepted undeclared, its envelope).
fn entry(tree: &Json<'_>, env: &Envelope<'_>, derived: Derived) -> Prepared {
    let event = match Canonical::of_event(tree) {
        Ok(c) => c,
        Err(e) => return Prepared::Rejected(PrepareError::from(e).into()),
    };
    let unique_per_subject = derived.unique_per_subject;
    let at_risk = unique_per_subject || env.supersedes.is_some() || derived.supersedes.is_some();
    let correlation = at_risk.then(|| Box::new(Correlation::of(env, tree, &derived)));
    let keyed = EventKeys::of(env, derived);
    let claim = Claim {
        supersedes: keyed.supersedes,
        chain: keyed.chain,
        unique_per_subject,
        correlation,
    };
    Prepared::Event(Box::new(Entry {
        event,
        keys: keyed.keys,
        event_ns: env.time_nanos,
        claim,
    }))
}
