//! Parses event text straight into a `serde_json::Value`, refusing duplicate member names
//! that a map would silently resolve. One parse serves the envelope (borrowed as a `Json`),
//! the pack checks and canonicalization.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why the text is not a strict JSON value.
pub(crate) enum StrictError {
    NotJson(String),
    /// A member name repeats; the caller locates it (a rare, slow path).
    Duplicate,
}

const DUPLICATE: &str = "sealog: duplicate member name";

pub(crate) fn parse(text: &str) -> Result<Value, StrictError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    v.map_err(|e| {
        if e.to_string().starts_with(DUPLICATE) {
            StrictError::Duplicate
        } else {
            StrictError::NotJson(e.to_string())
        }
    })
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let v = access.next_value_seed(Strict)?;
            if map.insert(key, v).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0));
        while let Some(v) = access.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_serde_json_and_refuses_duplicates() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808],"b":{"c":null,"d":true},"e":"\u00e9\ud83d\ude00"}"#,
            r#"[{"x":0.1},{"x":2.5e-10}]"#,
            r#""just a string""#,
        ] {
            let mine = parse(text).ok().expect("valid JSON");
            assert_eq!(mine, serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
        assert!(matches!(
            parse(r#"{"a":{"b":1,"b":1}}"#),
            Err(StrictError::Duplicate)
        ));
        assert!(matches!(parse(r#"{"a":1}x"#), Err(StrictError::NotJson(_))));
        assert!(matches!(parse(r#"{"a":"#), Err(StrictError::NotJson(_))));
    }
}
