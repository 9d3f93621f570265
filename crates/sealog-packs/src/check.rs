//! The ingest checks a pack applies after the envelope, in a fixed order: forbidden fields,
//! completeness, schema and constraints, then normalization. Each stage sees only events
//! that passed the one before, so evidence is about one kind of failure.

use std::borrow::Cow;

use sealog_model::json::Json;

use crate::paths::{Found, Readers};
use crate::pointer::{Node, canonical_bytes, to_dotted, to_pointer, write_canonical};
use crate::reason::{Quarantine, ReasonCode, Violation};
use crate::rules::TypeRules;
use crate::schema::TreeNode;

impl TypeRules {
    pub(crate) fn check(&self, event: &mut Json<'_>) -> Result<(), Quarantine> {
        let found = self.paths.resolve(&*event, Readers::CHECK);
        let forbidden = self.forbidden_present(&found);
        if !forbidden.is_empty() {
            let mut q = Quarantine::new(ReasonCode::ForbiddenField);
            q.forbidden_fields = forbidden;
            return Err(q);
        }
        let missing = self.missing(&found);
        if !missing.is_empty() {
            let mut q = Quarantine::new(ReasonCode::IncompleteProvenance);
            q.missing_fields = missing;
            return Err(q);
        }
        let violations = self.violations(&found);
        if !violations.is_empty() {
            let mut q = Quarantine::new(ReasonCode::SchemaViolation);
            q.violations = violations;
            return Err(q);
        }
        self.normalize(event);
        Ok(())
    }

    /// Present means the member exists, even as null: the rule is about the field's place.
    fn forbidden_present(&self, event: &Found<'_, Json<'_>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.forbidden {
            event.visit(p, &mut |path, v| {
                if v.is_some() {
                    out.push(to_pointer(path));
                }
            });
        }
        out.dedup();
        out
    }

    fn missing(&self, event: &Found<'_, Json<'_>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.actor_required {
            let id = event.root().get("actor").and_then(|a| a.get("id"));
            if id.is_none_or(Json::is_null) {
                out.push("actor.id".into());
            }
        }
        let mut absent = |p: &crate::pointer::Pointer, blank_too: bool| {
            event.visit(p, &mut |path, v| {
                if is_missing(v, blank_too) {
                    out.push(to_dotted(path));
                }
            });
        };
        self.required.iter().for_each(|p| absent(p, false));
        // Personal values are sealed under their data subject's key: without one there is
        // nobody to seal them for, and a blank one names nobody whose data could be erased or
        // read back. Only an event without its data subject is asked whether it holds any, so
        // the personal fields are not looked for in the others.
        if let Some(ds) = &self.data_subject {
            let mut without = false;
            event.visit(ds, &mut |_, v| without |= is_missing(v, true));
            if without && self.carries_personal(event) {
                absent(ds, true);
            }
        }
        for (cond, required) in &self.required_when {
            if cond.holds(event) {
                required.iter().for_each(|p| absent(p, false));
            }
        }
        if out.is_empty() {
            return out;
        }
        // A missing block stands for its members: listing both says the same thing twice.
        let all = out.clone();
        out.retain(|m| {
            !all.iter().any(|a| {
                m.len() > a.len() && m.starts_with(a.as_str()) && m[a.len()..].starts_with('.')
            })
        });
        let mut seen = std::collections::HashSet::new();
        out.retain(|m| seen.insert(m.clone()));
        out
    }

    /// Whether the event holds a value (not null) in any of its type's personal fields.
    pub(crate) fn carries_personal<N: Node>(&self, event: &Found<'_, N>) -> bool {
        let mut found = false;
        for p in &self.personal {
            event.visit(p, &mut |_, v| found |= v.is_some_and(|v| !v.is_null()));
            if found {
                return true;
            }
        }
        false
    }

    fn violations(&self, found: &Found<'_, Json<'_>>) -> Vec<Violation> {
        static NULL: Json<'static> = Json::Null;
        let event = found.root();
        let mut out = Vec::new();
        // The schema reads the event's own tree. Most events are valid: errors are collected
        // only for the ones that fail.
        let data = TreeNode::of(event.get("data").unwrap_or(&NULL));
        let errors = (!self.validator.is_valid(data)).then(|| self.validator.iter_errors(data));
        for e in errors.into_iter().flatten() {
            out.push(Violation {
                pointer: format!("/data{}", e.instance_path()),
                // Masked: quarantine evidence names the place and the rule, not the content.
                message: e.masked().to_string(),
            });
        }
        if let (Some(allowed), Some(t)) = (
            &self.actor_types,
            event
                .get("actor")
                .and_then(|a| a.get("type"))
                .and_then(Json::as_str),
        ) && !allowed.iter().any(|a| a == t)
        {
            out.push(Violation {
                pointer: "/actor/type".into(),
                message: format!("must be one of {} for {}", allowed.join(", "), self.name),
            });
        }
        for group in &self.equal {
            let mut first: Option<(&str, &Json<'_>)> = None;
            let mut tenant_absent = false;
            for p in group {
                let Some(v) = found.get(p).filter(|v| !v.is_null()) else {
                    tenant_absent |= p.text == "/tenant";
                    continue;
                };
                match first {
                    None => first = Some((&p.text, v)),
                    Some((name, f)) if !same_canonical(f, v) => out.push(Violation {
                        pointer: p.text.clone(),
                        message: format!("must equal {name}"),
                    }),
                    Some(_) => {}
                }
            }
            // A body that names its tenant (C4's `tenant_id`, CM-2.5's instructor) without the
            // envelope's would land outside the tenant whose keys must see it.
            if let (true, Some((name, _))) = (tenant_absent, first) {
                out.push(Violation {
                    pointer: "/tenant".into(),
                    message: format!("must be given, equal to {name}"),
                });
            }
        }
        for group in &self.distinct {
            let mut seen: Vec<(&str, &Json<'_>)> = Vec::new();
            for p in group {
                let Some(v) = found.get(p).filter(|v| !v.is_null()) else {
                    continue;
                };
                if let Some((name, _)) = seen.iter().find(|(_, b)| same_canonical(b, v)) {
                    out.push(Violation {
                        pointer: p.text.clone(),
                        message: format!("must differ from {name}"),
                    });
                }
                seen.push((&p.text, v));
            }
        }
        if let (Some(p), Some(given)) = (&self.subject, event.get("subject").and_then(Json::as_str))
            && let Some(derived) = found.get(p).and_then(Node::text)
            && derived != given
        {
            out.push(Violation {
                pointer: "/subject".into(),
                message: format!("must equal the subject this type derives from {}", p.text),
            });
        }
        if let Some(p) = &self.supersedes
            && let Some(body) = found.get(p).filter(|v| !v.is_null())
        {
            match body.as_str().and_then(sealog_model::RecordId::parse) {
                None => out.push(Violation {
                    pointer: p.text.clone(),
                    message: "must be a record id (\"sha256:\" and 64 lowercase hex digits)".into(),
                }),
                Some(_) => {
                    let envelope = event.get("supersedes").and_then(Json::as_str);
                    if envelope.is_some_and(|e| Some(e) != body.as_str()) {
                        out.push(Violation {
                            pointer: p.text.clone(),
                            message: "differs from /supersedes; a correction names one target"
                                .into(),
                        });
                    }
                }
            }
        }
        out.dedup();
        out
    }

    fn normalize(&self, event: &mut Json<'_>) {
        for (parent, key, value) in &self.defaults {
            parent.for_each_mut(event, &mut |v| {
                if let Json::Object(m) = v
                    && !m.iter().any(|(k, _)| k == key)
                {
                    m.push((Cow::Owned(key.clone()), Json::owned(value)));
                }
            });
        }
        for (array, by) in &self.sorts {
            array.for_each_mut(event, &mut |v| {
                if let Json::Array(items) = v {
                    sort_elements(items, by);
                }
            });
        }
    }
}

/// Sorts by the declared keys' RFC 8785 bytes (absent or null first), then by the whole
/// element's RFC 8785 bytes, so every permutation of the same elements lands in one order.
pub(crate) fn sort_elements<'a>(items: &mut Vec<Json<'a>>, by: &[crate::pointer::Pointer]) {
    if items.len() < 2 {
        return;
    }
    // Elements usually come in order already: found so without a buffer per element, and
    // with room for most elements' canonical bytes, so that comparing never grows them.
    let (mut x, mut y) = (Vec::with_capacity(256), Vec::with_capacity(256));
    if items
        .windows(2)
        .all(|w| in_order(&w[0], &w[1], by, &mut x, &mut y))
    {
        return;
    }
    type Keyed<'a> = (Vec<Option<Vec<u8>>>, Vec<u8>, Json<'a>);
    let mut keyed: Vec<Keyed<'a>> = items
        .drain(..)
        .map(|item| {
            let keys = by
                .iter()
                .map(|k| k.get(&item).filter(|v| !v.is_null()).map(canonical_bytes))
                .collect();
            (keys, canonical_bytes(&item), item)
        })
        .collect();
    keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    items.extend(keyed.into_iter().map(|(_, _, item)| item));
}

/// Whether `a` sorts before `b` or with it in [`sort_elements`]'s order; `x` and `y` are
/// scratch room for canonical bytes.
fn in_order(
    a: &Json<'_>,
    b: &Json<'_>,
    by: &[crate::pointer::Pointer],
    x: &mut Vec<u8>,
    y: &mut Vec<u8>,
) -> bool {
    let mut cmp = |p: &Json<'_>, q: &Json<'_>| {
        x.clear();
        y.clear();
        write_canonical(p, x);
        write_canonical(q, y);
        x.cmp(&y)
    };
    for k in by {
        let key = |e| k.get(e).filter(|v: &&Json<'_>| !v.is_null());
        let order = match (key(a), key(b)) {
            (None, None) => continue,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(p), Some(q)) => cmp(p, q),
        };
        if order.is_ne() {
            return order.is_lt();
        }
    }
    cmp(a, b).is_le()
}

/// Whether two values have the same RFC 8785 bytes; two strings do exactly when they are
/// equal, so they are compared without writing them.
fn same_canonical(a: &Json<'_>, b: &Json<'_>) -> bool {
    match (a, b) {
        (Json::String(a), Json::String(b)) => a == b,
        _ => canonical_bytes(a) == canonical_bytes(b),
    }
}

/// Whether a field's value is missing: absent or null, and with `blank_too` also a string of
/// nothing but whitespace.
fn is_missing(v: Option<&Json<'_>>, blank_too: bool) -> bool {
    v.is_none_or(|v| v.is_null() || (blank_too && names_nobody(v)))
}

/// A data subject of nothing but whitespace, which `sealog erase` and subject keys refuse to
/// name: it stands for nobody.
pub(crate) fn names_nobody(v: &Json<'_>) -> bool {
    matches!(v, Json::String(s) if is_blank(s))
}

/// The text of a data subject that names nobody.
pub(crate) fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::Pointer;

    /// Every permutation of the same elements sorts to one order, including permutations the
    /// order check must not take for sorted: strings whose bytes order differently from
    /// their canonical text ("a" before "a!" as bytes, after it as `"a"` and `"a!"`), an
    /// escaped quote, a control character, nulls, missing keys, numbers written two ways,
    /// and ties broken by the whole element.
    #[test]
    fn every_permutation_sorts_to_one_order() {
        let pool = r#"[{"k":"a"},{"k":"a!"},{"k":"a\""},{"k":"a\u0001"},{"k":null},{},
            {"k":1},{"k":1.0,"j":0},{"k":"a","j":2},{"k":"a","j":1}]"#;
        let pool = Json::parse_str(pool).unwrap();
        let Json::Array(pool) = pool else {
            unreachable!()
        };
        let by = [Pointer::parse("/k", true).unwrap()];
        let canonical = |items: &Vec<Json<'_>>| {
            let mut out = Vec::new();
            for i in items {
                write_canonical(i, &mut out);
                out.push(b'\n');
            }
            out
        };
        let mut rng = 0x5ea1_0c0du64;
        let mut first = None;
        for _ in 0..2_000 {
            let mut items = pool.clone();
            for i in (1..items.len()).rev() {
                rng = rng
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                items.swap(i, (rng >> 33) as usize % (i + 1));
            }
            // Pairs too: the order check runs on them alone.
            for n in [2, 3, items.len()] {
                let mut part = items[..n].to_vec();
                let mut reversed = part.clone();
                reversed.reverse();
                sort_elements(&mut part, &by);
                sort_elements(&mut reversed, &by);
                assert_eq!(canonical(&part), canonical(&reversed));
            }
            sort_elements(&mut items, &by);
            let sorted = canonical(&items);
            let first = first.get_or_insert_with(|| sorted.clone());
            assert_eq!(
                String::from_utf8_lossy(first),
                String::from_utf8_lossy(&sorted)
            );
        }
    }
}
