//! From a validated event to what the log stores: its canonical bytes, its `record_id`, the
//! index postings it contributes, and the record text with the server fields spliced in.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::{Envelope, EnvelopeError};
use crate::input::{self, InputError};
use crate::jcs::{self, JcsError};

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
            PrepareError::Canonical(_) => "UNREPRESENTABLE_NUMBER",
        }
    }

    /// The JSON pointer of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            PrepareError::Envelope(e) => Some(&e.field),
            PrepareError::Canonical(JcsError::UnsafeInteger(_, p) | JcsError::NonFinite(_, p)) => {
                Some(p)
            }
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
}

impl PreparedEvent {
    /// Parses, validates and canonicalizes one event's raw bytes.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, PrepareError> {
        let value = input::parse_event(raw)?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Self, PrepareError> {
        let env = Envelope::parse(value)?;
        let obj = value
            .as_object()
            .expect("the envelope checked it is an object");
        let mut keys: Vec<&String> = obj.keys().collect();
        keys.sort_by(|a, b| jcs::cmp_keys(a, b));
        let mut canonical = Vec::with_capacity(512);
        let mut member_starts = Vec::with_capacity(keys.len());
        canonical.push(b'{');
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                canonical.push(b',');
            }
            member_starts.push(u32::try_from(canonical.len()).expect("events are far below 4 GiB"));
            jcs::write_string(k, &mut canonical);
            canonical.push(b':');
            jcs::write_value(&obj[k.as_str()], &mut canonical).map_err(|e| relocate(e, k))?;
        }
        canonical.push(b'}');
        let server_slots = crate::envelope::SERVER_FIELDS
            .map(|f| keys.iter().filter(|k| jcs::cmp_keys(k, f).is_lt()).count() as u32);
        let scope = env.default_scope().to_string();
        let mut postings = Vec::with_capacity(BUILTIN_AXES.len());
        postings.push(posting("scope", &scope));
        for (axis, value) in [
            ("tenant", env.tenant),
            ("subject", env.subject),
            ("type", Some(env.event_type)),
            ("source", Some(env.source)),
            ("actor", env.actor_id),
            ("id", Some(env.id)),
        ] {
            if let Some(v) = value {
                postings.push(posting(axis, v));
            }
        }
        Ok(PreparedEvent {
            record_id: RecordId::of_canonical(&canonical),
            scope,
            subject: env.subject.map(str::to_string),
            supersedes: env.supersedes.and_then(RecordId::parse),
            event_time_nanos: env.time_nanos,
            canonical,
            member_starts,
            server_slots,
            postings,
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
                    out.extend_from_slice(self.record_id.to_string().as_bytes());
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

/// Prefixes an error's pointer with the top-level member it was found under.
fn relocate(e: JcsError, key: &str) -> JcsError {
    let prefix = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
    match e {
        JcsError::UnsafeInteger(n, p) => JcsError::UnsafeInteger(n, prefix + &p),
        JcsError::NonFinite(n, p) => JcsError::NonFinite(n, prefix + &p),
    }
}

/// Splits a stored record back into its server fields and the event it was made from.
/// Used by verification: the event's canonical hash must equal the stored `record_id`.
pub fn split_record(record: &Value) -> Option<(u64, RecordId, &str, Value)> {
    let obj = record.as_object()?;
    let seq = obj.get("seq")?.as_u64()?;
    let id = RecordId::parse(obj.get("record_id")?.as_str()?)?;
    let ingested_at = obj.get("ingested_at")?.as_str()?;
    let mut event = obj.clone();
    for f in crate::envelope::SERVER_FIELDS {
        event.remove(f);
    }
    Some((seq, id, ingested_at, Value::Object(event)))
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
            let parsed: Value = serde_json::from_slice(&rec).unwrap();
            let (seq, id, _, event) = split_record(&parsed).unwrap();
            assert_eq!((seq, id), (41, p.record_id));
            assert_eq!(
                RecordId::of_canonical(&jcs::to_vec(&event).unwrap()),
                p.record_id
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
    fn unsafe_integers_are_refused_with_their_path() {
        let mut v = ev();
        v["data"]["n"] = json!(9_007_199_254_740_993u64);
        let e = PreparedEvent::from_value(&v).unwrap_err();
        assert_eq!(e.field(), Some("/data/n"));
    }
}
