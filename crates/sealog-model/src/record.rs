//! From a validated event to what the log stores: its canonical bytes, its `record_id`, the
//! index postings it contributes, and the record text with the server fields spliced in.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::{Envelope, EnvelopeError};
use crate::input::{self, InputError};
use crate::jcs::{self, JcsError};
use crate::json::Json;

/// `sha256:` + hex(SHA-256(JCS(event))).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 32]);

impl RecordId {
    pub const PREFIX: &'static str = "sha256:";

    pub fn of_canonical(canonical: &[u8]) -> Self {
        RecordId(Sha256::digest(canonical).into())
    }

    /// Parses the textual form; only lowercase hex is accepted so that each id has one spelling.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix(Self::PREFIX)?;
        if hex_part.len() != 64 || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).ok()?;
        Some(RecordId(out))
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex::encode(self.0))
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A key in an equality index: a hash of (axis name, value). Fixed width keeps index runs
/// flat arrays; a collision can only add candidates, which readers re-check.
pub type Posting = [u8; 16];

pub fn posting(axis: &str, value: &str) -> Posting {
    let mut h = Sha256::new();
    h.update(axis.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The axes every record is indexed on, by envelope attribute.
pub const BUILTIN_AXES: [&str; 7] = [
    "scope", "tenant", "subject", "type", "source", "actor", "id",
];

/// What an event type's pack derives from an event beyond its envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    /// The idempotency and supersession scope; `None` means the default, the tenant (or "").
    pub scope: Option<String>,
    /// The subject, used when the envelope gives none.
    pub subject: Option<String>,
    /// Pack-declared axes as (axis name, value); each becomes an index posting.
    pub axes: Vec<(String, String)>,
    /// A second record for the same (tenant, scope, subject) must name what it supersedes.
    pub unique_per_subject: bool,
    /// A supersedes target the body carries (decision-log's `supersedes_audit_record_id`),
    /// used when the envelope's `supersedes` is absent.
    pub supersedes: Option<String>,
}

/// Derives pack facts from an event or a stored record (whose server fields it ignores).
/// It must be a pure function of the event: the index is rebuilt from the log with it.
pub trait Deriver: Send + Sync {
    fn derive(&self, event: &Json<'_>, envelope: &Envelope<'_>) -> Derived;

    /// Names the derivation: when it changes, indexes built with the old one are rebuilt.
    fn fingerprint(&self) -> String {
        "envelope-only".to_string()
    }
}

/// Envelope-only derivation: scope = tenant, no extra axes.
pub struct EnvelopeOnly;

impl Deriver for EnvelopeOnly {
    fn derive(&self, _: &Json<'_>, _: &Envelope<'_>) -> Derived {
        Derived::default()
    }
}

/// Posting of the (tenant, scope, subject) triple a supersedes chain lives in.
pub fn chain_posting(tenant: Option<&str>, scope: &str, subject: &str) -> Posting {
    let mut key = String::with_capacity(scope.len() + subject.len() + 32);
    key.push_str(tenant.unwrap_or(""));
    key.push('\0');
    key.push_str(scope);
    key.push('\0');
    key.push_str(subject);
    posting("chain", &key)
}

/// Posting that marks a record as the correction of `target`.
pub fn supersedes_posting(target: &RecordId) -> Posting {
    posting("supersedes", &target.to_string())
}

/// Why an event could not be prepared for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Canonical(#[from] JcsError),
}

impl PrepareError {
    pub fn code(&self) -> &'static str {
        match self {
            PrepareError::Input(e) => e.code(),
            PrepareError::Envelope(_) => "INVALID_ENVELOPE",
            PrepareError::Canonical(JcsError::DuplicateKey(_)) => "DUPLICATE_KEY",
            PrepareError::Canonical(_) => "UNREPRESENTABLE_NUMBER",
        }
    }

    /// The JSON pointer of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            PrepareError::Envelope(e) => Some(&e.field),
            PrepareError::Canonical(
                JcsError::UnsafeInteger(_, p)
                | JcsError::NonFinite(_, p)
                | JcsError::DuplicateKey(p),
            ) => Some(p),
            _ => None,
        }
    }
}

/// An event ready to append: everything the writer needs, computed off the writer's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEvent {
    pub record_id: RecordId,
    pub scope: String,
    pub subject: Option<String>,
    pub supersedes: Option<RecordId>,
    pub event_time_nanos: i64,
    /// RFC 8785 bytes of the event; `record_id` is their hash.
    pub canonical: Vec<u8>,
    /// Byte offset in `canonical` where each top-level member starts (at its key's quote).
    member_starts: Vec<u32>,
    /// For each server field, how many event members sort before it.
    server_slots: [u32; 3],
    pub postings: Vec<Posting>,
    /// The (tenant, scope, subject) chain this record belongs to, when it has a subject.
    pub chain: Option<Posting>,
    pub unique_per_subject: bool,
}

impl PreparedEvent {
    /// Parses, validates and canonicalizes one event's raw bytes.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, PrepareError> {
        let text = input::check_event_bytes(raw)?;
        let json = Json::parse_str(text)
            .map_err(|e| PrepareError::Input(InputError::NotJson(e.to_string())))?;
        Self::from_json(&json)
    }

    pub fn from_value(value: &Value) -> Result<Self, PrepareError> {
        Self::from_json(&Json::from_value(value))
    }

    pub fn from_json(value: &Json<'_>) -> Result<Self, PrepareError> {
        Self::build(value, false, Some(&EnvelopeOnly))
    }

    /// Like `from_json`, with a pack's derivation of scope, subject and axes.
    pub fn from_json_with(value: &Json<'_>, deriver: &dyn Deriver) -> Result<Self, PrepareError> {
        Self::build(value, false, Some(deriver))
    }

    /// Re-derives a stored record's event: the record minus its server fields. Returns the
    /// prepared event with the record's seq, stored `record_id` and `ingested_at`, for the
    /// caller to check against what it expects. Without `index`, postings are left empty
    /// (verification needs none).
    pub fn from_record<'a>(
        record: &'a Json<'a>,
        index: bool,
    ) -> Result<(Self, u64, RecordId, &'a str), String> {
        let deriver: Option<&dyn Deriver> = if index { Some(&EnvelopeOnly) } else { None };
        Self::from_record_with(record, deriver)
    }

    /// `from_record` with the derivation the log was written with (`None`: no postings).
    pub fn from_record_with<'a>(
        record: &'a Json<'a>,
        deriver: Option<&dyn Deriver>,
    ) -> Result<(Self, u64, RecordId, &'a str), String> {
        let seq = record
            .get("seq")
            .and_then(Json::as_u64)
            .ok_or("record lacks a numeric seq")?;
        let id = record
            .get("record_id")
            .and_then(Json::as_str)
            .and_then(RecordId::parse)
            .ok_or("record lacks a valid record_id")?;
        let ingested_at = record
            .get("ingested_at")
            .and_then(Json::as_str)
            .ok_or("record lacks ingested_at")?;
        let ev = Self::build(record, true, deriver)
            .map_err(|e| format!("stored event is invalid: {e}"))?;
        Ok((ev, seq, id, ingested_at))
    }

    fn build(
        value: &Json<'_>,
        is_record: bool,
        deriver: Option<&dyn Deriver>,
    ) -> Result<Self, PrepareError> {
        let env = Envelope::parse_object(value, !is_record)?;
        let derived = deriver.map(|d| d.derive(value, &env)).unwrap_or_default();
        let Json::Object(members) = value else {
            unreachable!("the envelope checked it is an object")
        };
        let server = crate::envelope::SERVER_FIELDS;
        let mut sorted: Vec<(&str, &Json<'_>)> = members
            .iter()
            .map(|(k, v)| (k.as_ref(), v))
            .filter(|(k, _)| !is_record || !server.contains(k))
            .collect();
        sorted.sort_unstable_by(|a, b| jcs::cmp_keys(a.0, b.0));
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PrepareError::Canonical(JcsError::DuplicateKey(pointer_of(
                w[0].0,
            ))));
        }
        let mut canonical = Vec::with_capacity(1024);
        let mut member_starts = Vec::with_capacity(sorted.len());
        canonical.push(b'{');
        for (i, (k, v)) in sorted.iter().enumerate() {
            if i > 0 {
                canonical.push(b',');
            }
            member_starts.push(u32::try_from(canonical.len()).expect("events are far below 4 GiB"));
            jcs::write_string(k, &mut canonical);
            canonical.push(b':');
            jcs::write_json(v, &mut canonical).map_err(|e| relocate(e, k))?;
        }
        canonical.push(b'}');
        let server_slots = server.map(|f| {
            sorted
                .iter()
                .filter(|(k, _)| jcs::cmp_keys(k, f).is_lt())
                .count() as u32
        });
        let scope = derived
            .scope
            .unwrap_or_else(|| env.default_scope().to_string());
        let subject = env.subject.map(str::to_string).or(derived.subject);
        let supersedes = env
            .supersedes
            .or(derived.supersedes.as_deref())
            .and_then(RecordId::parse);
        let chain = subject
            .as_deref()
            .map(|s| chain_posting(env.tenant, &scope, s));
        let mut postings = Vec::with_capacity(BUILTIN_AXES.len() + derived.axes.len() + 2);
        if deriver.is_some() {
            postings.push(posting("scope", &scope));
            let axes = [
                ("tenant", env.tenant),
                ("subject", subject.as_deref()),
                ("type", Some(env.event_type)),
                ("source", Some(env.source)),
                ("actor", env.actor_id),
                ("id", Some(env.id)),
            ];
            postings.extend(
                axes.into_iter()
                    .filter_map(|(axis, v)| Some(posting(axis, v?))),
            );
            postings.extend(derived.axes.iter().map(|(a, v)| posting(a, v)));
            postings.extend(chain);
            postings.extend(supersedes.as_ref().map(supersedes_posting));
            postings.sort_unstable();
            postings.dedup();
        }
        Ok(PreparedEvent {
            record_id: RecordId::of_canonical(&canonical),
            scope,
            subject,
            supersedes,
            event_time_nanos: env.time_nanos,
            canonical,
            member_starts,
            server_slots,
            postings,
            chain,
            unique_per_subject: derived.unique_per_subject,
        })
    }

    /// Writes the record: the event's canonical members with `ingested_at`, `record_id` and
    /// `seq` merged in at their sorted places, which is itself RFC 8785 canonical JSON.
    pub fn write_record(&self, seq: u64, ingested_at: &str, out: &mut Vec<u8>) {
        let end = self.canonical.len() - 1;
        let member = |i: usize| {
            let start = self.member_starts[i] as usize;
            let stop = self
                .member_starts
                .get(i + 1)
                .map_or(end, |&s| s as usize - 1);
            &self.canonical[start..stop]
        };
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        let mut next = 0usize;
        for (slot, field) in self.server_slots.iter().zip(crate::envelope::SERVER_FIELDS) {
            while next < *slot as usize {
                sep(out);
                out.extend_from_slice(member(next));
                next += 1;
            }
            sep(out);
            match field {
                "ingested_at" => {
                    out.extend_from_slice(b"\"ingested_at\":");
                    jcs::write_string(ingested_at, out);
                }
                "record_id" => {
                    out.extend_from_slice(b"\"record_id\":\"");
                    let mut hex = [0u8; 64];
                    hex::encode_to_slice(self.record_id.0, &mut hex)
                        .expect("64 hex digits for 32 bytes");
                    out.extend_from_slice(RecordId::PREFIX.as_bytes());
                    out.extend_from_slice(&hex);
                    out.push(b'"');
                }
                _ => {
                    out.extend_from_slice(b"\"seq\":");
                    out.extend_from_slice(seq.to_string().as_bytes());
                }
            }
        }
        while next < self.member_starts.len() {
            sep(out);
            out.extend_from_slice(member(next));
            next += 1;
        }
        out.push(b'}');
    }
}

fn pointer_of(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Prefixes an error's pointer with the top-level member it was found under.
fn relocate(e: JcsError, key: &str) -> JcsError {
    let prefix = pointer_of(key);
    match e {
        JcsError::UnsafeInteger(n, p) => JcsError::UnsafeInteger(n, prefix + &p),
        JcsError::NonFinite(n, p) => JcsError::NonFinite(n, prefix + &p),
        JcsError::DuplicateKey(p) => JcsError::DuplicateKey(prefix + &p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev() -> Value {
        json!({"id":"e1","source":"s","type":"t","time":"2026-01-03T12:34:56Z","tenant":"acme","data":{"b":[2,1],"a":"é"}})
    }

    #[test]
    fn record_is_the_canonical_form_of_event_plus_server_fields() {
        for v in [
            ev(),
            json!({"id":"e","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{},"zzz":1,"aaa":0}),
        ] {
            let p = PreparedEvent::from_value(&v).unwrap();
            let mut rec = Vec::new();
            p.write_record(41, "2026-11-23T00:00:00.000001Z", &mut rec);
            let mut full = v.clone();
            full["seq"] = json!(41);
            full["record_id"] = json!(p.record_id.to_string());
            full["ingested_at"] = json!("2026-11-23T00:00:00.000001Z");
            assert_eq!(
                String::from_utf8(rec.clone()).unwrap(),
                String::from_utf8(jcs::to_vec(&full).unwrap()).unwrap()
            );
            let parsed = Json::parse(&rec).unwrap();
            let (again, seq, id, at) = PreparedEvent::from_record(&parsed, true).unwrap();
            assert_eq!(
                (seq, id, at),
                (41, p.record_id, "2026-11-23T00:00:00.000001Z")
            );
            assert_eq!(
                again, p,
                "a record re-derives exactly the event it was made from"
            );
        }
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_id() {
        let a = PreparedEvent::from_bytes(br#"{"id":"e1","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{"x":1,"y":[1,2]}}"#);
        let b = PreparedEvent::from_bytes(b"{ \"data\" : {\"y\":[1, 2], \"x\":1.0},\n\"time\":\"2026-01-03T12:34:56Z\",\"type\":\"t\",\"source\":\"s\",\"id\":\"e1\" }");
        assert_eq!(a.unwrap().record_id, b.unwrap().record_id);
    }

    #[test]
    fn record_id_text_round_trips_and_refuses_other_spellings() {
        let id = PreparedEvent::from_value(&ev()).unwrap().record_id;
        assert_eq!(RecordId::parse(&id.to_string()), Some(id));
        assert_eq!(RecordId::parse(&id.to_string().to_uppercase()), None);
        assert_eq!(RecordId::parse("sha256:abc"), None);
        assert_eq!(RecordId::parse(&id.to_string()[7..]), None);
    }

    #[test]
    fn duplicate_members_are_refused_not_resolved() {
        let top = PreparedEvent::from_bytes(br#"{"id":"e","id":"f","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{}}"#);
        assert_eq!(top.unwrap_err().field(), Some("/id"));
        let deep = PreparedEvent::from_bytes(br#"{"id":"e","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{"a":{"b":1,"b":2}}}"#);
        let e = deep.unwrap_err();
        assert_eq!((e.code(), e.field()), ("DUPLICATE_KEY", Some("/data/a/b")));
    }

    #[test]
    fn unsafe_integers_are_refused_with_their_path() {
        let mut v = ev();
        v["data"]["n"] = json!(9_007_199_254_740_993u64);
        let e = PreparedEvent::from_value(&v).unwrap_err();
        assert_eq!(e.field(), Some("/data/n"));
    }
}
