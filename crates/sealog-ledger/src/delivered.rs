//! Events a bus delivered. No caller waits for their results, so what HTTP would refuse is
//! recorded instead, and nothing is lost silently: a message that is not an event becomes a
//! `NOT_AN_EVENT` quarantine record, one whose tenant disagrees with its bus subject a
//! `TENANT_MISMATCH` record. Neither keeps the payload (it may be anything, including
//! personal data no pack has sealed), only its hash, its size and where the bus had it.
//!
//! A delivered event otherwise goes through the same pipeline as one posted over HTTP, so a
//! message and its HTTP twin are the same record.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_model::input::check_event_bytes;
use sealog_model::json::Json;
use sealog_model::{Envelope, PrepareError};
use sealog_packs::{Derived, ReasonCode};

use crate::Author;
use crate::prepare::{Pipeline, Prepared};
use crate::quarantine::{Correlation, Finding};

/// Whose events a bus subject carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenancy<'a> {
    /// Any tenant's (the event says which).
    Any,
    /// Only this tenant's: the subject names it, or the consumer serves only it.
    Only(&'a str),
    /// The consumer maps subjects to tenants, and this subject names none.
    Unnamed,
}

/// Where a bus had a message.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The bus (`nats`).
    pub transport: &'a str,
    pub stream: &'a str,
    pub subject: &'a str,
    /// The message's place in its stream: the same on every redelivery.
    pub stream_seq: u64,
    /// When the bus received it (RFC 3339).
    pub published: &'a str,
    pub tenancy: Tenancy<'a>,
    /// The bus will deliver it again if asked: a correction whose target has not arrived is
    /// answered `deferred` instead of quarantined.
    pub may_wait: bool,
}

/// Refusals that are not the event's fault: the message is delivered again later rather than
/// recorded as not an event.
const OPERATIONAL: [&str; 2] = ["SUBJECT_KEY_MISSING", "KEY_STORE_FAILED"];

impl Delivery<'_> {
    /// What a quarantine record keeps of the message: where it was, and its payload's hash
    /// and size. Nothing that changes on redelivery, so a redelivered message's record is a
    /// duplicate of the first.
    fn evidence(&self, payload: &[u8]) -> Value {
        json!({
            "transport": self.transport,
            "stream": self.stream,
            "subject": self.subject,
            "stream_seq": self.stream_seq,
            "published": self.published,
            "payload_sha256": format!("sha256:{}", hex::encode(Sha256::digest(payload))),
            "payload_bytes": payload.len(),
        })
    }

    /// The subject's tenant, when it could be an event's (no event names a longer one).
    fn tenant(&self) -> Option<&str> {
        match self.tenancy {
            Tenancy::Only(t) if fits(t) => Some(t),
            Tenancy::Only(_) | Tenancy::Any | Tenancy::Unnamed => None,
        }
    }

    fn quarantined(
        &self,
        correlation: Correlation,
        reason: ReasonCode,
        message: String,
        payload: &[u8],
    ) -> Prepared {
        Prepared::Quarantine {
            correlation: Box::new(correlation),
            finding: Finding {
                reason_code: reason.as_str(),
                message: Some(message),
                missing_fields: Vec::new(),
                violations: Vec::new(),
                forbidden_fields: Vec::new(),
                delivery: Some(self.evidence(payload)),
            },
            payload: None,
        }
    }

    /// A message that is not an event: named by where the bus had it.
    pub(crate) fn not_an_event(&self, payload: &[u8], why: String) -> Prepared {
        // The record's own envelope must be valid whatever the bus said, or the batch it is
        // in could never be committed: what does not fit an attribute stays in `delivery`.
        let source = format!("{}:{}", self.transport, self.subject);
        let correlation = Correlation {
            id: format!("{}:{}:{}", self.transport, self.stream, self.stream_seq),
            source: if fits(&source) {
                source
            } else {
                self.transport.to_string()
            },
            time: if sealog_model::time::parse_rfc3339(self.published).is_ok() {
                self.published.to_string()
            } else {
                sealog_model::time::format_nanos(0)
            },
            tenant: self.tenant().map(str::to_string),
            ..Correlation::default()
        };
        self.quarantined(correlation, ReasonCode::NotAnEvent, why, payload)
    }
}

fn fits(attribute: &str) -> bool {
    sealog_model::limits::attribute_fits(attribute)
}

impl Pipeline<'_> {
    /// Prepares a message a bus delivered (see the module's comment).
    pub(crate) fn delivered(&self, raw: &[u8], delivery: &Delivery<'_>) -> Prepared {
        let text = match check_event_bytes(raw) {
            Ok(t) => t,
            Err(e) => return delivery.not_an_event(raw, PrepareError::from(e).to_string()),
        };
        let mut tree = match Json::parse_str(text) {
            Ok(t) => t,
            Err(e) => return delivery.not_an_event(raw, PrepareError::from(e).to_string()),
        };
        let claimed = tree.get("tenant").and_then(Json::as_str);
        let mismatch = match delivery.tenancy {
            Tenancy::Any => None,
            Tenancy::Only(t) if claimed == Some(t) => None,
            Tenancy::Only(t) => Some(format!(
                "the event's tenant {claimed:?} is not {t:?}, the tenant of its subject {}",
                delivery.subject
            )),
            Tenancy::Unnamed => Some(format!(
                "its subject {} names no tenant (the event says {claimed:?})",
                delivery.subject
            )),
        };
        if let Some(why) = mismatch {
            return match Envelope::parse(&tree) {
                Ok(env) => {
                    let mut correlation = Correlation::of(&env, &tree, &Derived::default());
                    correlation.tenant = delivery.tenant().map(str::to_string);
                    correlation.scope = None;
                    delivery.quarantined(correlation, ReasonCode::TenantMismatch, why, raw)
                }
                Err(e) => delivery.not_an_event(raw, PrepareError::from(e).to_string()),
            };
        }
        let author = Author::Producer {
            tenant: delivery.tenant(),
        };
        match self.tree(&mut tree, &author, Some(raw)) {
            Prepared::Rejected(r) if OPERATIONAL.contains(&r.code) => Prepared::Rejected(r),
            Prepared::Rejected(r) => {
                delivery.not_an_event(raw, format!("{}: {}", r.code, r.message))
            }
            Prepared::Event(mut entry) => {
                entry.claim.may_wait = delivery.may_wait;
                Prepared::Event(entry)
            }
            quarantined => quarantined,
        }
    }
}
