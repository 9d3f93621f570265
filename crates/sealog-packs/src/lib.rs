//! Event-type packs: what each event type must, may and must not carry, how it is normalized
//! before hashing, which subject, scope and axes it files under, and how it changes its
//! subject's state. Packs are data (a manifest plus JSON Schemas); six are built in, one per
//! seed design and `audit` for Sealog's own records, and users add theirs as directories.
//!
//! Boundary: no I/O beyond reading pack directories at load; checks and derivation are pure
//! functions of the event.

pub mod axes;
mod builtin;
mod check;
mod consistency;
mod derive;
mod error;
mod manifest;
mod paths;
mod pointer;
mod reason;
mod rules;
mod schema;
mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use sealog_model::Envelope;
use sealog_model::json::Json;
use serde_json::Value;

pub use consistency::{
    ANOMALY_KINDS, CheckKind, CheckRule, Criticality, CriticalityBy, Deadline, Done, FieldPointer,
    ReconcileSide, Resolve,
};
pub use error::PackError;
pub use reason::{Quarantine, ReasonCode, Violation};
pub use rules::{DEFAULT_RETENTION, Retention};
pub use state::UNREADABLE;

use rules::TypeRules;
use sha2::{Digest, Sha256};

/// A loaded set of packs. Cloning is cheap (shared, immutable).
#[derive(Clone)]
pub struct Packs {
    inner: Arc<Inner>,
}

struct Inner {
    /// Pack names in load order, each with its type names.
    packs: Vec<(String, Vec<String>)>,
    types: HashMap<String, Arc<TypeRules>>,
    /// Each pack's manifest text, by pack name: what derivation depends on.
    manifests: Vec<(String, String)>,
    personal_axes: BTreeSet<String>,
    /// Every pack's consistency rules, in load order.
    checks: Vec<Arc<CheckRule>>,
    /// Every axis a query may name, sorted: asked on every query, so made once.
    axis_names: Vec<String>,
}

/// The personal fields of one event type (see [`Packs::personal`]).
#[derive(Clone, Copy)]
pub struct Personal<'p>(&'p TypeRules);

impl Personal<'_> {
    /// Whether an event holds a value (not null) in one of these fields.
    pub fn carried_by(&self, event: &Json<'_>) -> bool {
        self.0.carries_personal(&paths::Found::unresolved(event))
    }

    /// The data subject of an event of this type, as its pack reads it.
    pub fn data_subject(&self, event: &Json<'_>) -> Option<String> {
        self.0.data_subject(event)
    }

    /// Whom an event that passed its type's check is sealed for: its data subject, when it
    /// carries personal values. It carries them exactly when its data subject is there: that
    /// field is itself personal, the check asks for it beside any other, and no default adds
    /// one afterwards (a pack whose default would is refused when it loads). So one read
    /// answers both, where looking for every personal field would walk the event again.
    pub fn sealed_for(&self, checked: &Json<'_>) -> Option<String> {
        let subject = self.data_subject(checked);
        debug_assert_eq!(subject.is_some(), self.carried_by(checked));
        subject
    }

    /// Applies `f` to every personal value (not null) an event holds, in place, saying
    /// whether an axis of the type reads that field. Fields that overlap are met in the order
    /// the pack lists them (inside one already changed, a field is not met at all).
    pub fn for_each<'a>(&self, event: &mut Json<'a>, f: &mut dyn FnMut(&mut Json<'a>, bool)) {
        let r = self.0;
        if let Some(walk) = &r.personal_walk {
            walk.for_each_mut(event, &mut |n, v| {
                if !v.is_null() {
                    f(v, r.personal_indexed[n])
                }
            });
            return;
        }
        for (p, &indexed) in r.personal.iter().zip(&r.personal_indexed) {
            p.for_each_mut(event, &mut |v| {
                if !v.is_null() {
                    f(v, indexed)
                }
            });
        }
    }
}

impl Inner {
    /// The packs as loaded, with what is derived from all of them.
    fn done(mut self) -> Packs {
        let mut names: Vec<String> = axes::ENVELOPE_AXES.iter().map(|a| a.to_string()).collect();
        names.extend(
            self.types
                .values()
                .flat_map(|r| r.axes.iter().map(|a| a.name.clone())),
        );
        names.sort_unstable();
        names.dedup();
        self.axis_names = names;
        Packs {
            inner: Arc::new(self),
        }
    }
}

impl std::fmt::Debug for Packs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packs")
            .field("packs", &self.inner.packs)
            .finish()
    }
}

impl Packs {
    /// The six built-in packs (one per seed, and `audit` for Sealog's own records), compiled
    /// in. Compiled once per process.
    pub fn builtin() -> Packs {
        static BUILTIN: OnceLock<Packs> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut inner = Inner {
                    packs: Vec::new(),
                    types: HashMap::new(),
                    manifests: Vec::new(),
                    personal_axes: BTreeSet::new(),
                    checks: Vec::new(),
                    axis_names: Vec::new(),
                };
                for pack in builtin::PACKS {
                    let read = |name: &str| pack.file(name);
                    let compiled = rules::compile_pack(pack.dir, pack.manifest, &read)
                        .and_then(|c| inner.add(c, pack.dir, pack.manifest));
                    if let Err(e) = compiled {
                        panic!("built-in pack is broken: {e}");
                    }
                }
                inner.done()
            })
            .clone()
    }

    /// The built-in packs plus one user pack per directory (`manifest.json` + schemas).
    pub fn load(user_pack_dirs: &[&Path]) -> Result<Packs, PackError> {
        let builtin = Self::builtin();
        let mut inner = Inner {
            packs: builtin.inner.packs.clone(),
            types: builtin.inner.types.clone(),
            manifests: builtin.inner.manifests.clone(),
            personal_axes: builtin.inner.personal_axes.clone(),
            checks: builtin.inner.checks.clone(),
            axis_names: Vec::new(),
        };
        for dir in user_pack_dirs {
            let label = dir.display().to_string();
            let manifest = std::fs::read_to_string(dir.join("manifest.json"))
                .map_err(|e| PackError::new(&label, "manifest.json", "file", e.to_string()))?;
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name)).map_err(|e| format!("cannot read: {e}"))
            };
            let compiled = rules::compile_pack(&label, &manifest, &read)?;
            inner.add(compiled, &label, &manifest)?;
        }
        Ok(inner.done())
    }

    pub fn pack_names(&self) -> Vec<&str> {
        self.inner.packs.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The event types one pack declares, sorted.
    pub fn pack_types(&self, pack: &str) -> Vec<&str> {
        self.inner
            .packs
            .iter()
            .find(|(n, _)| n == pack)
            .map(|(_, t)| t.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn declares(&self, event_type: &str) -> bool {
        self.inner.types.contains_key(event_type)
    }

    /// The kind of resource an event type's subject is ([`Derived::kind`]), `None` for a
    /// type no pack declares.
    pub fn kind_of(&self, event_type: &str) -> Option<&str> {
        self.rules(event_type).map(|r| &*r.kind)
    }

    /// The first declared type (by name) whose subject is of `kind`: what names a kind to
    /// [`Packs::kind_of`]'s callers.
    pub fn type_of_kind(&self, kind: &str) -> Option<&str> {
        let mut types: Vec<&str> = (self.inner.types.iter())
            .filter(|(_, r)| &*r.kind == kind)
            .map(|(t, _)| t.as_str())
            .collect();
        types.sort_unstable();
        types.first().copied()
    }

    /// The pack that declares an event type.
    pub fn pack_of(&self, event_type: &str) -> Option<&str> {
        self.rules(event_type).map(|r| r.pack.as_str())
    }

    /// A type's description from its manifest, for help texts.
    pub fn describe(&self, event_type: &str) -> Option<&str> {
        self.rules(event_type)?.description.as_deref()
    }

    /// Whether a type's pack derives a subject from the body (used when the envelope has
    /// none).
    pub fn derives_subject(&self, event_type: &str) -> bool {
        self.rules(event_type).is_some_and(|r| r.subject.is_some())
    }

    /// A type's JSON Schema: its file name in its pack and its text, as the pack holds it.
    pub fn schema(&self, event_type: &str) -> Option<(&str, &str)> {
        let (file, text) = &self.rules(event_type)?.schema;
        Some((file, text))
    }

    /// Ingest checks after the envelope, in this order: pack lookup (UNKNOWN_EVENT_TYPE) →
    /// forbidden fields → completeness (required fields, actor if required) → JSON Schema and
    /// the manifest's constraints → normalization (defaults, then declared arrays sorted in
    /// place). The caller has already validated the envelope; `event_type` is its type.
    pub fn check(&self, event_type: &str, event: &mut Json<'_>) -> Result<(), Quarantine> {
        match self.inner.types.get(event_type) {
            None => Err(Quarantine::new(ReasonCode::UnknownEventType)),
            Some(rules) => rules.check(event),
        }
    }

    /// What an event's pack derives from it beyond its envelope: scope, subject, data
    /// subject, axes and supersedes target. A pure function of the event, so a fresh event
    /// and its stored record give the same; nothing for a type no pack declares.
    pub fn derive(&self, event: &Json<'_>, envelope: &Envelope<'_>) -> Derived {
        self.rules(envelope.event_type)
            .map(|r| r.derive(event))
            .unwrap_or_default()
    }

    /// [`Packs::derive`] with each axis value handed to `axis` (its name and value) as it
    /// is found, possibly repeated, instead of collected into `axes`, which is left empty:
    /// the ingest path hashes each into its index key without a string of its own.
    pub fn derive_each(
        &self,
        event: &Json<'_>,
        envelope: &Envelope<'_>,
        axis: impl FnMut(&str, &str),
    ) -> Derived {
        self.rules(envelope.event_type)
            .map(|r| r.derive_each(event, axis))
            .unwrap_or_default()
    }

    /// The data subject an event's pack declares for it (PRODUCT §8, §9): whose personal
    /// data it is, the person a subject-role key stands for. `None` for a type that declares
    /// none, a type no pack declares, or an event whose pointer finds nothing.
    pub fn data_subject(&self, event: &Json<'_>, envelope: &Envelope<'_>) -> Option<String> {
        self.rules(envelope.event_type)?.data_subject(event)
    }

    /// The pointer an event type's data subject is read from, as its manifest spells it.
    pub fn data_subject_pointer(&self, event_type: &str) -> Option<&str> {
        self.rules(event_type)?
            .data_subject
            .as_ref()
            .map(|p| p.text.as_str())
    }

    /// Every axis a query may name: the envelope's and every pack's, sorted, no repeats.
    pub fn axis_names(&self) -> &[String] {
        &self.inner.axis_names
    }

    /// Names the derivation: it depends on the manifests (subject, scope, axes), not on the
    /// schemas, so a changed manifest makes the index be rebuilt.
    pub fn fingerprint(&self) -> String {
        let mut manifests: Vec<&(String, String)> = self.inner.manifests.iter().collect();
        manifests.sort();
        let mut h = Sha256::new();
        for (name, text) in manifests {
            for part in [name.as_bytes(), text.as_bytes()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        format!("packs-sha256:{}", hex::encode(h.finalize()))
    }

    /// Rebuilds a subject's state from its canonical records (full stored records in seq
    /// order, superseded ones already removed). See the crate README for the shape.
    pub fn fold_state(&self, records: &[Value]) -> Value {
        state::fold(self, records)
    }

    /// Every pack's consistency rules, in load order.
    pub fn checks(&self) -> &[Arc<CheckRule>] {
        &self.inner.checks
    }

    /// The state field a type's `state.set` fills from the pointer spelt `pointer`.
    pub fn state_field_of(&self, event_type: &str, pointer: &str) -> Option<&str> {
        self.rules(event_type)?
            .state
            .set
            .iter()
            .find(|(_, p)| p.text == pointer)
            .map(|(f, _)| f.as_str())
    }

    /// The values an axis of an event type can take, when its schema enumerates them (a
    /// report counts each one from the index).
    pub fn axis_values(&self, event_type: &str, axis: &str) -> Option<Vec<String>> {
        let rules = self.rules(event_type)?;
        let pointer = &rules.axes.iter().find(|a| a.name == axis)?.pointer.text;
        let schema: serde_json::Value = serde_json::from_str(&rules.schema.1).ok()?;
        // Schemas describe `data`; each step below it is a property.
        let mut node = &schema;
        for step in pointer.strip_prefix("/data/")?.split('/') {
            node = node.get("properties")?.get(step)?;
        }
        let values = node.get("enum")?.as_array()?;
        values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// Every declared axis as (pack, event type, axis name), sorted and without repeats.
    pub fn axes(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .inner
            .types
            .values()
            .flat_map(|r| {
                r.axes
                    .iter()
                    .map(|a| (r.pack.clone(), r.name.clone(), a.name.clone()))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Pointers of the personal fields an event type declares (`*` for every element), for
    /// per-data-subject encryption and erasure.
    pub fn personal_fields(&self, event_type: &str) -> Vec<&str> {
        self.rules(event_type)
            .map(|r| r.personal.iter().map(|p| p.text.as_str()).collect())
            .unwrap_or_default()
    }

    /// Whether what is sent as `event_type` may hold personal values even where none sits in
    /// a declared personal field: a type that declares some (a value sent under a misspelt
    /// field name is still the person's), or a type no pack declares whose namespace (before
    /// its first `.`, in any case) is that of a pack declaring some (`comms.emial`). A
    /// quarantined payload of such an event is kept only sealed for its data subject.
    pub fn may_carry_personal(&self, event_type: &str) -> bool {
        if self.declares(event_type) {
            return self.personal(event_type).is_some();
        }
        let namespace = |t: &str| t.split('.').next().unwrap_or(t).to_ascii_lowercase();
        let wanted = namespace(event_type);
        self.inner
            .types
            .iter()
            .filter(|(t, _)| namespace(t) == wanted)
            .any(|(_, r)| {
                self.inner
                    .types
                    .values()
                    .any(|o| o.pack == r.pack && !o.personal.is_empty())
            })
    }

    /// Whether an event holds a value in one of its type's personal fields.
    pub fn carries_personal(&self, event_type: &str, event: &Json<'_>) -> bool {
        self.personal(event_type)
            .is_some_and(|p| p.carried_by(event))
    }

    /// Applies `f` to every personal value (not null) an event holds, in place, saying
    /// whether an axis of the type reads that field (so its sealed form must let it be
    /// found by a keyed hash of the value).
    pub fn for_each_personal<'a>(
        &self,
        event_type: &str,
        event: &mut Json<'a>,
        f: &mut dyn FnMut(&mut Json<'a>, bool),
    ) {
        if let Some(p) = self.personal(event_type) {
            p.for_each(event, f);
        }
    }

    /// An event type's personal fields and data subject, found once for everything sealing
    /// an event asks of them; `None` for a type that declares no personal field.
    pub fn personal(&self, event_type: &str) -> Option<Personal<'_>> {
        self.rules(event_type)
            .filter(|r| !r.personal.is_empty())
            .map(Personal)
    }

    /// How long records of `event_type` are kept (seven years for a type no pack declares).
    pub fn retention(&self, event_type: &str) -> Retention {
        self.rules(event_type)
            .map_or_else(Retention::default_period, |r| r.retention.clone())
    }

    /// How long quarantine records about `event_type` are kept.
    pub fn quarantine_retention(&self, event_type: &str) -> Retention {
        self.rules(event_type)
            .map_or_else(Retention::default_period, |r| {
                r.quarantine_retention.clone()
            })
    }

    /// Every declared type's (retention, quarantine retention), by type.
    pub fn retention_policy(&self) -> BTreeMap<String, (Retention, Retention)> {
        self.inner
            .types
            .iter()
            .map(|(t, r)| {
                (
                    t.clone(),
                    (r.retention.clone(), r.quarantine_retention.clone()),
                )
            })
            .collect()
    }

    /// Axes with a value from a personal field in some type: they index a keyed hash of the
    /// value, never the value, whichever type a record is of.
    pub fn personal_axes(&self) -> &BTreeSet<String> {
        &self.inner.personal_axes
    }

    fn rules(&self, event_type: &str) -> Option<&TypeRules> {
        self.inner.types.get(event_type).map(|r| &**r)
    }
}

impl Inner {
    fn add(
        &mut self,
        rules::Compiled {
            pack,
            types,
            checks,
        }: rules::Compiled,
        label: &str,
        manifest: &str,
    ) -> Result<(), PackError> {
        if self.packs.iter().any(|(n, _)| *n == pack) {
            return Err(PackError::new(
                label,
                "manifest.json",
                "pack",
                format!("a pack named \"{pack}\" is already loaded"),
            ));
        }
        let mut names = Vec::with_capacity(types.len());
        for rules in &types {
            if let Some(other) = self.types.get(&rules.name) {
                return Err(PackError::new(
                    &pack,
                    "manifest.json",
                    format!("types.\"{}\"", rules.name),
                    format!("type already declared by pack \"{}\"", other.pack),
                ));
            }
            names.push(rules.name.clone());
        }
        for rules in types {
            for a in &rules.axes {
                if rules.is_personal(&a.pointer) {
                    self.personal_axes.insert(a.name.clone());
                }
            }
            self.types.insert(rules.name.clone(), Arc::new(rules));
        }
        if let Some(c) = checks
            .iter()
            .find(|c| self.checks.iter().any(|o| o.name == c.name))
        {
            return Err(PackError::new(
                &pack,
                "manifest.json",
                "checks",
                format!("rule \"{}\" is already declared by another pack", c.name),
            ));
        }
        self.checks.extend(checks.into_iter().map(Arc::new));
        self.manifests.push((pack.clone(), manifest.to_string()));
        self.packs.push((pack, names));
        Ok(())
    }
}

/// What a pack derives from an event beyond its envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    /// The idempotency and supersession scope; `None` means the default, the tenant (or "").
    pub scope: Option<String>,
    /// The subject, used when the envelope gives none.
    pub subject: Option<String>,
    /// What kind of resource the subject is (its pack and the field the type reads it
    /// from; `None` for a type no pack declares): a supersedes chain and a subject's state
    /// hold one kind, so an order and a knowledge chunk that share an id stay apart.
    pub kind: Option<std::sync::Arc<str>>,
    /// Whose personal data the record is, from the type's `data_subject` pointer; the
    /// envelope has no say in it.
    pub data_subject: Option<String>,
    /// Pack-declared axes as (axis name, value), sorted, no repeats.
    pub axes: Vec<(String, String)>,
    /// A second record for the same (tenant, scope, subject) must name what it supersedes.
    pub unique_per_subject: bool,
    /// A supersedes target the body carries (decision-log's `supersedes_audit_record_id`),
    /// used when the envelope's `supersedes` is absent.
    pub supersedes: Option<String>,
}
