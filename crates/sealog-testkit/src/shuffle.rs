//! The same JSON value spelled another way: members in a seeded random order, arrays kept in
//! theirs, whitespace sprinkled between tokens.
//!
//! Such text has to be handed to the code under test as text. serde_json is built here
//! without `preserve_order`, so a `serde_json::Value` keeps its members sorted: parsing the
//! shuffled text back into a `Value` (or building a `Map` in another order) hands on the
//! sorted order again and proves nothing about member order.

use serde_json::Value;

use crate::Rng;

/// What may stand between tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whitespace {
    /// Nothing: compact text.
    None,
    /// Spaces and tabs, so that each value stays on one NDJSON line.
    Inline,
    /// Spaces, tabs, line feeds and carriage returns.
    Any,
}

/// `value` as JSON text with the members of every object in an order drawn from `rng`, never
/// the sorted one: every object with two or more members is written out of sorted order, so
/// a caller is never handed the spelling a `Value` would give by chance.
pub fn shuffled(value: &Value, rng: &mut Rng, whitespace: Whitespace) -> String {
    let mut out = String::new();
    write(value, rng, whitespace, &mut out);
    out
}

/// The seed of a randomized test: `var` from the environment when set (decimal or 0x-hex),
/// else `default`. Printed with how to replay it, so a failure can be run again as it was.
pub fn seed(var: &str, default: u64) -> u64 {
    let seed = std::env::var(var).map_or(default, |s| {
        let s = s.trim();
        s.strip_prefix("0x")
            .map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16))
            .unwrap_or_else(|_| panic!("{var} must be a u64 (decimal or 0x-hex), not {s:?}"))
    });
    eprintln!("seed {seed:#x}: replay with {var}={seed:#x}");
    seed
}

fn space(rng: &mut Rng, whitespace: Whitespace, out: &mut String) {
    let choices: &[char] = match whitespace {
        Whitespace::None => return,
        Whitespace::Inline => &[' ', '\t'],
        Whitespace::Any => &[' ', '\t', '\n', '\r'],
    };
    for _ in 0..rng.below(3) {
        out.push(*rng.pick(choices));
    }
}

fn write(value: &Value, rng: &mut Rng, ws: Whitespace, out: &mut String) {
    space(rng, ws, out);
    match value {
        Value::Object(map) => {
            // A map iterates in sorted order; a draw that left it so is rotated, and a
            // rotation of a sorted list of distinct names is never sorted.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            rng.shuffle(&mut members);
            if members.len() >= 2 && members.iter().zip(map.iter()).all(|(a, b)| a.0 == b.0) {
                let by = 1 + rng.below(members.len() as u64 - 1) as usize;
                members.rotate_left(by);
            }
            out.push('{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(rng, ws, out);
                out.push_str(&Value::String(name.clone()).to_string());
                space(rng, ws, out);
                out.push(':');
                write(item, rng, ws, out);
            }
            space(rng, ws, out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, rng, ws, out);
            }
            space(rng, ws, out);
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
    space(rng, ws, out);
}

/// The RFC 6901 pointer of every object in `text` whose members are not written in sorted
/// order, read from the text itself (not through a `Value`, which would sort them).
pub fn unsorted_objects(text: &str) -> Vec<String> {
    member_orders(text)
        .into_iter()
        .filter(|(_, names)| names.windows(2).any(|w| w[0] > w[1]))
        .map(|(pointer, _)| pointer)
        .collect()
}

/// Every object in `text`, in document order: its RFC 6901 pointer and its member names as
/// written.
pub fn member_orders(text: &str) -> Vec<(String, Vec<String>)> {
    if let Err(e) = serde_json::from_str::<Value>(text) {
        panic!("not one JSON value ({e}): {text}");
    }
    let mut reader = Reader {
        text: text.as_bytes(),
        at: 0,
        found: Vec::new(),
    };
    reader.value(String::new());
    reader.found
}

/// Reads text already known to be one JSON value, noting each object's member names in the
/// order the text has them.
struct Reader<'t> {
    text: &'t [u8],
    at: usize,
    found: Vec<(String, Vec<String>)>,
}

impl Reader<'_> {
    fn skip_space(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b" \t\n\r".contains(b))
        {
            self.at += 1;
        }
    }

    /// Consumes `b` if it comes next (after whitespace).
    fn eat(&mut self, b: u8) -> bool {
        self.skip_space();
        let next = self.text.get(self.at) == Some(&b);
        if next {
            self.at += 1;
        }
        next
    }

    fn value(&mut self, pointer: String) {
        self.skip_space();
        match self.text[self.at] {
            b'{' => {
                self.at += 1;
                // Reserved before the members are read, so that parents come before children.
                let slot = self.found.len();
                self.found.push((pointer.clone(), Vec::new()));
                let mut first = true;
                while !self.eat(b'}') {
                    if !first {
                        assert!(self.eat(b','));
                    }
                    first = false;
                    self.skip_space();
                    let name = self.string();
                    assert!(self.eat(b':'));
                    let token = name.replace('~', "~0").replace('/', "~1");
                    self.value(format!("{pointer}/{token}"));
                    self.found[slot].1.push(name);
                }
            }
            b'[' => {
                self.at += 1;
                let mut i = 0;
                while !self.eat(b']') {
                    if i > 0 {
                        assert!(self.eat(b','));
                    }
                    self.value(format!("{pointer}/{i}"));
                    i += 1;
                }
            }
            b'"' => {
                self.string();
            }
            _ => {
                while self
                    .text
                    .get(self.at)
                    .is_some_and(|b| !b",]} \t\n\r".contains(b))
                {
                    self.at += 1;
                }
            }
        }
    }

    /// The string literal that starts here, decoded.
    fn string(&mut self) -> String {
        let start = self.at;
        self.at += 1;
        while self.text[self.at] != b'"' {
            self.at += if self.text[self.at] == b'\\' { 2 } else { 1 };
        }
        self.at += 1;
        serde_json::from_slice(&self.text[start..self.at]).expect("a string literal")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested() -> Value {
        json!({
            "b": 1, "a": [{"y": true, "x": null, "z": "s"}, 2.5],
            "c": {"q": {"n": -1, "m": "é\"\\", "o": [], "p": {}}, "p": 0}
        })
    }

    #[test]
    fn the_text_means_the_same_value_with_every_object_out_of_sorted_order() {
        let value = nested();
        let mut rng = Rng::new(seed("SEALOG_SHUFFLE_SEED", 0x5EA1_5F0F_0000_0001));
        for ws in [Whitespace::None, Whitespace::Inline, Whitespace::Any] {
            for _ in 0..32 {
                let text = shuffled(&value, &mut rng, ws);
                let back: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(back, value, "{text}");
                if ws == Whitespace::Inline {
                    assert!(!text.contains(['\n', '\r']), "{text}");
                }
                // Every object with two or more members, and only those ("/c/q/p" is empty).
                let mut unsorted = unsorted_objects(&text);
                unsorted.sort();
                assert_eq!(unsorted, ["", "/a/0", "/c", "/c/q"], "{text}");
            }
        }
        // Two members have one unsorted order; the sorted one is never drawn.
        for _ in 0..16 {
            let text = shuffled(&json!({"a": 1, "b": 2}), &mut rng, Whitespace::None);
            assert_eq!(text, r#"{"b":2,"a":1}"#);
        }
    }

    #[test]
    fn all_orders_but_the_sorted_one_are_drawn() {
        let mut rng = Rng::new(seed("SEALOG_SHUFFLE_SEED", 0x5EA1_5F0F_0000_0002));
        let value = json!({"a": 0, "b": 0, "c": 0});
        let drawn: std::collections::BTreeSet<String> = (0..200)
            .map(|_| shuffled(&value, &mut rng, Whitespace::None))
            .collect();
        let orders: Vec<String> = drawn
            .iter()
            .map(|t| member_orders(t)[0].1.concat())
            .collect();
        assert_eq!(orders, ["acb", "bac", "bca", "cab", "cba"]);
    }

    #[test]
    fn member_orders_read_the_text_not_a_sorted_map() {
        let orders = member_orders(r#"{"z":{"b/~":1,"a":[{"d":0,"c":0}]},"y":{}}"#);
        let expect = |p: &str, names: &[&str]| {
            (
                p.to_string(),
                names.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            orders,
            [
                expect("", &["z", "y"]),
                expect("/z", &["b/~", "a"]),
                expect("/z/a/0", &["d", "c"]),
                expect("/y", &[]),
            ]
        );
        assert_eq!(unsorted_objects(r#"{"a":{"c":0,"b":0},"b":1}"#), ["/a"]);
    }
}
