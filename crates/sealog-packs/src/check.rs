//! The ingest checks a pack applies after the envelope, in a fixed order: forbidden fields,
//! completeness, schema and constraints, then normalization. Each stage sees only events
//! that passed the one before, so evidence is about one kind of failure.

use std::borrow::Cow;

use sealog_model::json::Json;

use crate::paths::{Found, Readers};
use crate::pointer::{Node, canonical_bytes, to_dotted, to_pointer};
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
        let mut absent = |p: &crate::pointer::Pointer| {
            event.visit(p, &mut |path, v| {
                if v.is_none_or(Node::is_null) {
                    out.push(to_dotted(path));
                }
            });
        };
        self.required.iter().for_each(&mut absent);
        // Personal values are sealed under their data subject's key: without one there is
        // nobody to seal them for.
        if let Some(ds) = &self.data_subject
            && self.carries_personal(event)
        {
            absent(ds);
        }
        for (cond, required) in &self.required_when {
            if cond.holds(event) {
                required.iter().for_each(&mut absent);
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
            let mut first: Option<(&str, Vec<u8>)> = None;
            for p in group {
                let Some(v) = found.get(p).filter(|v| !v.is_null()) else {
                    continue;
                };
                let bytes = canonical_bytes(v);
                match &first {
                    None => first = Some((&p.text, bytes)),
                    Some((name, b)) if *b != bytes => out.push(Violation {
                        pointer: p.text.clone(),
                        message: format!("must equal {name}"),
                    }),
                    Some(_) => {}
                }
            }
        }
        for group in &self.distinct {
            let mut seen: Vec<(&str, Vec<u8>)> = Vec::new();
            for p in group {
                let Some(v) = found.get(p).filter(|v| !v.is_null()) else {
                    continue;
                };
                let bytes = canonical_bytes(v);
                if let Some((name, _)) = seen.iter().find(|(_, b)| *b == bytes) {
                    out.push(Violation {
                        pointer: p.text.clone(),
                        message: format!("must differ from {name}"),
                    });
                }
                seen.push((&p.text, bytes));
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
