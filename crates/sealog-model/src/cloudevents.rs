//! CloudEvents binary content mode mapped to the one structured form (PRODUCT.md §2): the
//! attributes travel as `ce-*` headers and the body is the event's data. The structured
//! event built here is what every later step sees, so an event sent in binary mode and its
//! structured twin have the same canonical bytes and the same `record_id`.
//!
//! Header values are taken as given: a transport that percent-encodes them (HTTP) decodes
//! before calling.

use std::borrow::Cow;

use base64::Engine;
use serde_json::value::RawValue;

use crate::envelope::EnvelopeError;
use crate::json::Json;

/// The prefix of a CloudEvents attribute's header.
const PREFIX: &str = "ce-";

/// Attributes that name the data or the server's fields: never headers.
const NOT_HEADERS: [&str; 5] = ["data", "data_base64", "ingested_at", "record_id", "seq"];

/// Whether `headers` carry an event in binary mode: a `ce-specversion` header is what says so.
pub fn is_binary<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    headers
        .into_iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("ce-specversion"))
}

/// Why a binary-mode message is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BinaryError(pub String);

/// The structured JSON event of a binary-mode message: each `ce-NAME` header becomes the
/// attribute `NAME` (Sealog's `actortype` and `actorid` become `actor` {type, id}); the
/// `Content-Type` becomes `datacontenttype` unless it is `application/json`; a JSON body
/// becomes `data` as sent, any other body `data_base64`.
pub fn structured_from_binary<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Result<Vec<u8>, BinaryError> {
    let fail = |m: String| Err(BinaryError(m));
    let mut attributes: Vec<(String, &str)> = Vec::new();
    let mut content_type = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-type") {
            if content_type.replace(value).is_some() {
                return fail("more than one Content-Type header".into());
            }
            continue;
        }
        let Some(attribute) = name
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| name[PREFIX.len()..].to_ascii_lowercase())
        else {
            continue;
        };
        if attribute.is_empty() || !attribute.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return fail(format!(
                "header {name}: a CloudEvents attribute name is lower-case letters and digits"
            ));
        }
        if NOT_HEADERS.contains(&attribute.as_str()) {
            return fail(format!("header {name}: {attribute} is not an attribute"));
        }
        if attributes.iter().any(|(a, _)| *a == attribute) {
            return fail(format!("header {name} is given more than once"));
        }
        attributes.push((attribute, value));
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    out.push(b'{');
    let member = |out: &mut Vec<u8>, name: &str, value: &str| {
        if out.len() > 1 {
            out.push(b',');
        }
        push_string(out, name);
        out.push(b':');
        push_string(out, value);
    };
    let (mut actor_type, mut actor_id) = (None, None);
    for (name, value) in &attributes {
        match name.as_str() {
            "actortype" => actor_type = Some(*value),
            "actorid" => actor_id = Some(*value),
            "datacontenttype" => {
                return fail(
                    "header ce-datacontenttype: in binary mode the Content-Type header says it"
                        .into(),
                );
            }
            _ => member(&mut out, name, value),
        }
    }
    if actor_type.is_some() || actor_id.is_some() {
        out.extend_from_slice(b",\"actor\":{");
        let mut first = true;
        for (name, value) in [("type", actor_type), ("id", actor_id)] {
            if let Some(v) = value {
                if !first {
                    out.push(b',');
                }
                first = false;
                push_string(&mut out, name);
                out.push(b':');
                push_string(&mut out, v);
            }
        }
        out.push(b'}');
    }
    let json_body = content_type.is_none_or(is_json_media);
    if let Some(ct) = content_type.filter(|ct| media_type(ct) != "application/json") {
        member(&mut out, "datacontenttype", ct);
    }
    if json_body {
        // One JSON value and nothing else: a body may not add members of its own.
        let text = std::str::from_utf8(body)
            .map_err(|e| BinaryError(format!("the JSON body is not UTF-8: {e}")))?;
        let value: &RawValue = serde_json::from_str(text)
            .map_err(|e| BinaryError(format!("the body is not one JSON value: {e}")))?;
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(value.get().as_bytes());
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        member(&mut out, "data_base64", &encoded);
    }
    out.push(b'}');
    Ok(out)
}

/// The media type of a `Content-Type` value, without its parameters, in lower case.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a string always serializes");
}

/// Whether a media type (parameters allowed) is JSON: `application/json` or `…+json`.
fn is_json_media(content_type: &str) -> bool {
    let m = media_type(content_type);
    m == "application/json" || m.ends_with("+json")
}

/// Brings a structured event's data to the one form (PRODUCT.md §2), in the tree, before its
/// envelope is read: a `datacontenttype` of `application/json` is dropped (it is the
/// default), and `data_base64` of a JSON `datacontenttype` is decoded into `data`; other
/// `data_base64` stays as sent. An event carries `data` or `data_base64`, never both.
pub fn normalize_data(tree: &mut Json<'_>) -> Result<(), EnvelopeError> {
    let Json::Object(members) = tree else {
        return Ok(());
    };
    let content_type = members
        .iter()
        .find(|(k, _)| k == "datacontenttype")
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    if let Some(at) = members.iter().position(|(k, _)| k == "data_base64") {
        let Some(encoded) = members[at].1.as_str() else {
            return Err(EnvelopeError::new(
                "/data_base64",
                "must be a base64 string",
            ));
        };
        if members.iter().any(|(k, _)| k == "data") {
            return Err(EnvelopeError::new(
                "/data_base64",
                "an event carries data or data_base64, not both",
            ));
        }
        if content_type.as_deref().is_some_and(is_json_media) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| EnvelopeError::new("/data_base64", format!("is not base64: {e}")))?;
            let data = Json::parse(&bytes)
                .map_err(|e| {
                    EnvelopeError::new("/data_base64", format!("decodes to no JSON value: {e}"))
                })?
                .to_value();
            members[at] = (Cow::Borrowed("data"), Json::owned(&data));
        }
    }
    if content_type.is_some_and(|ct| media_type(&ct) == "application/json") {
        members.retain(|(k, _)| k != "datacontenttype");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn map(headers: &[(&str, &str)], body: &[u8]) -> Result<Value, BinaryError> {
        let bytes = structured_from_binary(headers.iter().copied(), body)?;
        Ok(serde_json::from_slice(&bytes).expect("the mapping writes JSON"))
    }

    const BASE: [(&str, &str); 5] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e-1"),
        ("ce-source", "orders"),
        ("ce-type", "order.placed"),
        ("ce-time", "2026-01-03T12:34:56.123Z"),
    ];

    #[test]
    fn headers_become_attributes_and_a_json_body_becomes_data() {
        let mut h = BASE.to_vec();
        h.extend([
            ("Content-Type", "application/json; charset=utf-8"),
            ("CE-Tenant", "t1"),
            ("ce-actortype", "human"),
            ("ce-actorid", "u-7"),
            ("ce-subject", "order-9"),
            ("nats-msg-id", "ignored"),
        ]);
        let v = map(&h, br#"{"total": 12.5, "items": [1, 2]}"#).unwrap();
        assert_eq!(
            v,
            json!({
                "specversion": "1.0", "id": "e-1", "source": "orders", "type": "order.placed",
                "time": "2026-01-03T12:34:56.123Z", "tenant": "t1", "subject": "order-9",
                "actor": {"type": "human", "id": "u-7"},
                "data": {"total": 12.5, "items": [1, 2]}
            })
        );
    }

    #[test]
    fn the_body_is_kept_as_sent_and_may_not_add_members() {
        let v = structured_from_binary(BASE.iter().copied(), br#"{"n": 1.50}"#).unwrap();
        assert!(
            String::from_utf8(v)
                .unwrap()
                .ends_with(r#""data":{"n": 1.50}}"#)
        );
        for body in [&br#"{},"tenant":"other""#[..], b"{} {}", b"", b"{", b"\xff"] {
            assert!(
                structured_from_binary(BASE.iter().copied(), body).is_err(),
                "{body:?}"
            );
        }
    }

    #[test]
    fn other_content_types_are_kept_with_their_data_in_base64() {
        let mut h = BASE.to_vec();
        h.push(("content-type", "text/plain"));
        let v = map(&h, b"hello").unwrap();
        assert_eq!(v["datacontenttype"], "text/plain");
        assert_eq!(v["data_base64"], "aGVsbG8=");
        assert!(v.get("data").is_none());
        let mut h = BASE.to_vec();
        h.push(("content-type", "application/vnd.acme+json"));
        let v = map(&h, b"{}").unwrap();
        assert_eq!(v["datacontenttype"], "application/vnd.acme+json");
        assert_eq!(v["data"], json!({}));
    }

    #[test]
    fn bad_headers_are_not_an_event() {
        for extra in [
            ("ce-id", "again"),
            ("ce-data", "{}"),
            ("ce-seq", "1"),
            ("ce-Bad_Name", "x"),
            ("ce-", "x"),
            ("ce-datacontenttype", "application/json"),
        ] {
            let mut h = BASE.to_vec();
            h.push(extra);
            assert!(map(&h, b"{}").is_err(), "{extra:?}");
        }
        let mut h = BASE.to_vec();
        h.extend([("content-type", "a/b"), ("Content-Type", "c/d")]);
        assert!(map(&h, b"{}").is_err());
    }

    #[test]
    fn binary_mode_is_told_by_its_specversion_header() {
        assert!(is_binary(BASE.iter().copied()));
        assert!(is_binary([("CE-SpecVersion", "1.0")]));
        assert!(!is_binary([(
            "content-type",
            "application/cloudevents+json"
        )]));
    }

    fn normalized(event: Value) -> Result<Value, EnvelopeError> {
        let text = event.to_string();
        let mut tree = Json::parse(text.as_bytes()).unwrap();
        normalize_data(&mut tree)?;
        Ok(tree.to_value())
    }

    #[test]
    fn data_comes_to_one_form_whichever_way_it_was_sent() {
        let base = json!({"id": "1", "source": "s", "type": "t", "time": "2026-01-01T00:00:00Z"});
        let with = |extra: Value| {
            let mut e = base.clone();
            e.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            e
        };
        let plain = with(json!({"data": {"a": 1}}));
        // application/json is the default: said or not, the same event.
        assert_eq!(
            normalized(with(
                json!({"data": {"a": 1}, "datacontenttype": "application/json"})
            ))
            .unwrap(),
            plain
        );
        // JSON sent as data_base64 is decoded into data.
        let b64 = base64::engine::general_purpose::STANDARD.encode(br#"{"a":1}"#);
        assert_eq!(
            normalized(with(
                json!({"data_base64": b64, "datacontenttype": "application/json"})
            ))
            .unwrap(),
            plain
        );
        let cloud =
            with(json!({"data_base64": b64, "datacontenttype": "application/cloudevents+json"}));
        assert_eq!(normalized(cloud).unwrap()["data"], json!({"a": 1}));
        // Other bytes stay as sent.
        let bytes =
            with(json!({"data_base64": "AAEC", "datacontenttype": "application/octet-stream"}));
        assert_eq!(normalized(bytes.clone()).unwrap(), bytes);
        for (bad, says) in [
            (with(json!({"data": {}, "data_base64": "AAEC"})), "not both"),
            (with(json!({"data_base64": 7})), "base64 string"),
            (
                with(json!({"data_base64": "!!", "datacontenttype": "application/json"})),
                "not base64",
            ),
            (
                with(json!({"data_base64": "bm90IGpzb24=", "datacontenttype": "application/json"})),
                "no JSON value",
            ),
        ] {
            let e = normalized(bad.clone()).unwrap_err();
            assert!(
                e.field == "/data_base64" && e.message.contains(says),
                "{bad}: {e:?}"
            );
        }
    }
}
