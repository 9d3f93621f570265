//! From an event's tree to what the log stores: its RFC 8785 bytes, its `record_id`, and the
//! record text with the server fields spliced in; and back, from a stored record to the
//! facts it carries, checked against its own content.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::canonical_text::{self, CanonicalObject};
use crate::envelope::{Envelope, EnvelopeError, SERVER_FIELDS};
use crate::input::InputError;
use crate::jcs::{self, JcsError};
use crate::json::{Json, ParseError};

/// `sha256:` + hex(SHA-256(JCS(event))).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 32]);

/// Each byte's value as a lowercase hex digit, or 0x10 when it is none.
static LOWER_HEX: [u8; 256] = {
    let mut table = [0x10u8; 256];
    let mut d = 0;
    while d < 10 {
        table[b'0' as usize + d] = d as u8;
        d += 1;
    }
    while d < 16 {
        table[b'a' as usize + d - 10] = d as u8;
        d += 1;
    }
    table
};

impl RecordId {
    pub const PREFIX: &'static str = "sha256:";

    pub fn of_canonical(canonical: &[u8]) -> Self {
        RecordId(Sha256::digest(canonical).into())
    }

    /// Parses the textual form; only lowercase hex is accepted so that each id has one spelling.
    pub fn parse(text: &str) -> Option<Self> {
        let hex_part = text.strip_prefix(Self::PREFIX)?.as_bytes();
        if hex_part.len() != 64 {
            return None;
        }
        // Ids are read back with every record: a table and one check at the end, rather
        // than a branch on each digit.
        let mut out = [0u8; 32];
        let mut invalid = 0u8;
        for (byte, pair) in out.iter_mut().zip(hex_part.chunks_exact(2)) {
            let (hi, lo) = (
                LOWER_HEX[usize::from(pair[0])],
                LOWER_HEX[usize::from(pair[1])],
            );
            invalid |= (hi | lo) & 0x10;
            *byte = hi << 4 | (lo & 0x0f);
        }
        (invalid == 0).then_some(RecordId(out))
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: an id is printed for every result line.
        let mut hex = [0u8; 64];
        hex::encode_to_slice(self.0, &mut hex).expect("32 bytes are 64 hex digits");
        f.write_str(Self::PREFIX)?;
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why bytes could not become an event: they are not one at all, its envelope is invalid,
/// or it holds a number RFC 8785 cannot reproduce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Canonical(#[from] JcsError),
    #[error(
        "its record would be up to {bytes} bytes, over the {limit} a record may have (a tlog-tiles entry's length is 16 bits, and every record must be readable there)"
    )]
    RecordTooLarge { bytes: usize, limit: usize },
}

impl PrepareError {
    pub fn code(&self) -> &'static str {
        match self {
            PrepareError::Input(e) => e.code(),
            PrepareError::Parse(ParseError::DuplicateMember(_)) => "DUPLICATE_KEY",
            PrepareError::Parse(ParseError::UnrepresentableNumber { .. }) => {
                "UNREPRESENTABLE_NUMBER"
            }
            PrepareError::Parse(_) => "NOT_JSON",
            PrepareError::Envelope(_) => "INVALID_ENVELOPE",
            PrepareError::Canonical(_) => "UNREPRESENTABLE_NUMBER",
            PrepareError::RecordTooLarge { .. } => "TOO_LARGE",
        }
    }

    /// The JSON pointer of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            PrepareError::Envelope(e) => Some(&e.field),
            PrepareError::Parse(
                ParseError::DuplicateMember(p)
                | ParseError::UnrepresentableNumber { pointer: p, .. },
            ) => Some(p),
            PrepareError::Canonical(JcsError::UnsafeInteger(_, p) | JcsError::NonFinite(_, p)) => {
                Some(p)
            }
            _ => None,
        }
    }
}

/// An event's RFC 8785 bytes, its `record_id`, and where the server fields go, so that the
/// writer can make the record without canonicalizing anything again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub record_id: RecordId,
    bytes: Vec<u8>,
    /// Byte offset in `bytes` where each top-level member starts (at its key's quote).
    member_starts: Vec<u32>,
    /// For each server field, how many event members sort before it.
    server_slots: [u32; 3],
}

impl Canonical {
    /// The canonical form of an event whose envelope was checked (an object without server
    /// fields, no member repeated).
    pub fn of_event(event: &Json<'_>) -> Result<Self, JcsError> {
        Self::of_event_sized(event, 1024)
    }

    /// [`Canonical::of_event`] for an event about `size` bytes long in canonical form, so its
    /// bytes are written without growing their buffer.
    pub fn of_event_sized(event: &Json<'_>, size: usize) -> Result<Self, JcsError> {
        Self::build(event, size)
    }

    fn build(value: &Json<'_>, size: usize) -> Result<Self, JcsError> {
        let Json::Object(members) = value else {
            unreachable!("the envelope checked that an event is an object")
        };
        let mut bytes = Vec::with_capacity(size);
        let mut member_starts = Vec::with_capacity(members.len());
        jcs::write_object_marking(value, &mut bytes, &mut member_starts)?;
        let server_slots = SERVER_FIELDS.map(|f| {
            members
                .iter()
                .filter(|(k, _)| jcs::cmp_keys(k, f).is_lt())
                .count() as u32
        });
        Ok(Canonical {
            record_id: RecordId::of_canonical(&bytes),
            bytes,
            member_starts,
            server_slots,
        })
    }

    /// The event's RFC 8785 bytes; `record_id` is their hash.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The longest its record can be, whatever `seq` and `ingested_at` the log gives it.
    pub fn record_len_max(&self) -> usize {
        // `,"ingested_at":"…"` with six fractional digits, `,"record_id":"sha256:…"`, and
        // `,"seq":` with the longest u64.
        const SERVER_FIELDS_LEN_MAX: usize = (2 + 11 + 3 + 27 + 1) + (2 + 9 + 3 + 71 + 1) + 27;
        self.bytes.len() + SERVER_FIELDS_LEN_MAX
    }

    /// The canonical text of the value of the event's top-level member `name` (a name RFC
    /// 8785 writes without escapes), if the event has one.
    pub fn member_value(&self, name: &str) -> Option<&str> {
        let member = (0..self.member_starts.len())
            .map(|i| self.member(i))
            .find(|m| {
                m[1..].starts_with(name.as_bytes()) && m.get(name.len() + 1) == Some(&b'"')
            })?;
        // `"name":` comes first; the cut is at member boundaries, so never inside a character.
        let value = &member[name.len() + 3..];
        Some(std::str::from_utf8(value).expect("canonical text is UTF-8"))
    }

    /// The `i`th top-level member's bytes, from its name's opening quote to the end of its
    /// value.
    fn member(&self, i: usize) -> &[u8] {
        let start = self.member_starts[i] as usize;
        let stop = self
            .member_starts
            .get(i + 1)
            .map_or(self.bytes.len() - 1, |&s| s as usize - 1);
        &self.bytes[start..stop]
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Writes the record: the event's canonical members with `ingested_at`, `record_id` and
    /// `seq` merged in at their sorted places, which is itself RFC 8785 canonical JSON.
    pub fn write_record(&self, seq: u64, ingested_at: &str, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        let mut next = 0usize;
        for (slot, field) in self.server_slots.iter().zip(SERVER_FIELDS) {
            while next < *slot as usize {
                sep(out);
                out.extend_from_slice(self.member(next));
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
                    write_decimal(seq, out);
                }
            }
        }
        while next < self.member_starts.len() {
            sep(out);
            out.extend_from_slice(self.member(next));
            next += 1;
        }
        out.push(b'}');
    }
}

/// What a stored record says about itself, after checking that its bytes are exactly the
/// record of its own event.
pub struct Stored<'a, 'j> {
    /// The whole record (server fields included).
    pub record: &'j Json<'a>,
    /// Its event's envelope.
    pub envelope: &'j Envelope<'j>,
    pub seq: u64,
    pub record_id: RecordId,
    pub ingested_at: &'j str,
    pub ingested_ns: i64,
}

/// Reads a stored record back: checks that its bytes are canonical (RFC 8785) while parsing
/// them, and that its `record_id` is the hash of its event, then hands its facts to `f`.
pub fn read_stored<T>(payload: &[u8], f: impl FnOnce(&Stored<'_, '_>) -> T) -> Result<T, String> {
    read(payload, None, f)
}

/// Like [`read_stored`], with every byte checked and the id checked against the content,
/// for readers that need the envelope and server fields but not the body: `data` is not
/// built, and `record` holds it as an empty object. Nothing may be derived from it.
pub fn read_stored_head<T>(
    payload: &[u8],
    f: impl FnOnce(&Stored<'_, '_>) -> T,
) -> Result<T, String> {
    read(payload, Some("data"), f)
}

fn read<T>(
    payload: &[u8],
    left: Option<&str>,
    f: impl FnOnce(&Stored<'_, '_>) -> T,
) -> Result<T, String> {
    let CanonicalObject {
        tree: record,
        members: spans,
        depth,
    } = canonical_text::parse_object_leaving(payload, left)
        .map_err(|e| format!("record bytes are not in canonical (RFC 8785) form: {e}"))?;
    let seq = record
        .get("seq")
        .and_then(Json::as_u64)
        .ok_or("record lacks a numeric seq")?;
    let record_id = record
        .get("record_id")
        .and_then(Json::as_str)
        .and_then(RecordId::parse)
        .ok_or("record lacks a valid record_id")?;
    let ingested_at = record
        .get("ingested_at")
        .and_then(Json::as_str)
        .ok_or("record lacks ingested_at")?;
    let ingested_ns = crate::time::parse_rfc3339(ingested_at)?;
    let envelope =
        Envelope::of_record(&record, depth).map_err(|e| format!("stored event is invalid: {e}"))?;
    // The text is canonical, so the event's canonical text is the record's with the server
    // fields' members cut out: hashed in place, never written again.
    let mut event = Sha256::new();
    event.update(b"{");
    let mut first = true;
    for span in spans {
        // A member's text starts with its name in quotes; no server field's name has escapes.
        let is_server = SERVER_FIELDS.iter().any(|f| {
            payload[span.start + 1..].starts_with(f.as_bytes())
                && payload.get(span.start + 1 + f.len()) == Some(&b'"')
        });
        if is_server {
            continue;
        }
        if !std::mem::take(&mut first) {
            event.update(b",");
        }
        event.update(&payload[span]);
    }
    event.update(b"}");
    let content_id = RecordId(event.finalize().into());
    if content_id != record_id {
        return Err(format!(
            "record_id {record_id} does not match the record's content ({content_id})"
        ));
    }
    Ok(f(&Stored {
        record: &record,
        envelope: &envelope,
        seq,
        record_id,
        ingested_at,
        ingested_ns,
    }))
}

/// `n` in decimal digits, as RFC 8785 writes an integer, without a string of its own: the
/// writer appends one per record.
fn write_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ev() -> Value {
        json!({"id":"e1","source":"s","type":"t","time":"2026-01-03T12:34:56Z","tenant":"acme","data":{"b":[2,1],"a":"é"}})
    }

    fn canonical(v: &Value) -> Canonical {
        Canonical::of_event(&Json::from_value(v)).unwrap()
    }

    #[test]
    fn a_record_is_never_longer_than_its_events_longest_record() {
        for v in [
            ev(),
            json!({"id":"e","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{}}),
        ] {
            let c = canonical(&v);
            let ingested_at = crate::time::format_micros(i64::MAX);
            assert_eq!(ingested_at.len(), 27, "{ingested_at}");
            for seq in [0, 41, u64::MAX] {
                let mut rec = Vec::new();
                c.write_record(seq, &ingested_at, &mut rec);
                assert!(rec.len() <= c.record_len_max(), "seq {seq}");
            }
            let mut rec = Vec::new();
            c.write_record(u64::MAX, &ingested_at, &mut rec);
            assert!(c.record_len_max() - rec.len() <= 2, "the bound is tight");
        }
    }

    #[test]
    fn record_is_the_canonical_form_of_event_plus_server_fields() {
        for v in [
            ev(),
            json!({"id":"e","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{},"zzz":1,"aaa":0}),
        ] {
            let c = canonical(&v);
            let mut rec = Vec::new();
            c.write_record(41, "2026-11-23T00:00:00.000001Z", &mut rec);
            let mut full = v.clone();
            full["seq"] = json!(41);
            full["record_id"] = json!(c.record_id.to_string());
            full["ingested_at"] = json!("2026-11-23T00:00:00.000001Z");
            assert_eq!(
                String::from_utf8(rec.clone()).unwrap(),
                String::from_utf8(jcs::to_vec(&full).unwrap()).unwrap()
            );
            let facts = read_stored(&rec, |s| {
                (
                    s.seq,
                    s.record_id,
                    s.ingested_at.to_string(),
                    s.envelope.id.to_string(),
                )
            })
            .unwrap();
            assert_eq!(
                facts,
                (
                    41,
                    c.record_id,
                    "2026-11-23T00:00:00.000001Z".into(),
                    v["id"].as_str().unwrap().into()
                )
            );
        }
    }

    #[test]
    fn seqs_are_written_as_their_decimal_digits() {
        let mut powers: Vec<u64> = (0..20).map(|k| 10u64.pow(k)).collect();
        powers.extend(powers.clone().iter().map(|p| p - 1));
        powers.extend([41, u64::MAX, u64::MAX / 2]);
        for n in powers {
            let mut out = b"x".to_vec();
            write_decimal(n, &mut out);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn a_member_value_is_its_canonical_text_cut_from_the_event() {
        let c = canonical(&ev());
        assert_eq!(c.member_value("tenant"), Some("\"acme\""));
        assert_eq!(c.member_value("data"), Some(r#"{"a":"é","b":[2,1]}"#));
        // The last member, and names that only begin or end like one.
        assert_eq!(c.member_value("type"), Some("\"t\""));
        assert_eq!(c.member_value("tenan"), None);
        assert_eq!(c.member_value("enant"), None);
        assert_eq!(c.member_value("actor"), None);
    }

    #[test]
    fn a_stored_record_that_is_not_its_own_canonical_record_is_refused() {
        let c = canonical(&ev());
        let mut rec = Vec::new();
        c.write_record(3, "2026-11-23T00:00:00Z", &mut rec);
        let text = String::from_utf8(rec).unwrap();
        let spaced = text.replacen(",", ", ", 1);
        assert!(
            read_stored(spaced.as_bytes(), |_| ())
                .unwrap_err()
                .contains("canonical")
        );
        let changed = text.replace("acme", "acmf");
        assert!(
            read_stored(changed.as_bytes(), |_| ())
                .unwrap_err()
                .contains("does not match")
        );
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_id() {
        let a = br#"{"id":"e1","source":"s","type":"t","time":"2026-01-03T12:34:56Z","data":{"x":1,"y":[1,2]}}"#;
        let b = b"{ \"data\" : {\"y\":[1, 2], \"x\":1.0},\n\"time\":\"2026-01-03T12:34:56Z\",\"type\":\"t\",\"source\":\"s\",\"id\":\"e1\" }";
        let id = |t: &[u8]| {
            Canonical::of_event(&Json::parse(t).unwrap())
                .unwrap()
                .record_id
        };
        assert_eq!(id(a), id(b));
    }

    #[test]
    fn record_id_text_round_trips_and_refuses_other_spellings() {
        let id = canonical(&ev()).record_id;
        assert_eq!(RecordId::parse(&id.to_string()), Some(id));
        assert_eq!(RecordId::parse(&id.to_string().to_uppercase()), None);
        assert_eq!(RecordId::parse("sha256:abc"), None);
        assert_eq!(RecordId::parse(&id.to_string()[7..]), None);
    }

    #[test]
    fn unsafe_integers_are_refused_with_their_path() {
        let mut v = ev();
        v["data"]["n"] = json!(9_007_199_254_740_993u64);
        let e = PrepareError::from(Canonical::of_event(&Json::from_value(&v)).unwrap_err());
        assert_eq!(
            (e.code(), e.field()),
            ("UNREPRESENTABLE_NUMBER", Some("/data/n"))
        );
        // At the top level too, its name escaped as a pointer's token.
        let mut v = ev();
        v["a/b~"] = json!(-9_007_199_254_740_993i64);
        let e = PrepareError::from(Canonical::of_event(&Json::from_value(&v)).unwrap_err());
        assert_eq!(e.field(), Some("/a~1b~0"));
    }
}
