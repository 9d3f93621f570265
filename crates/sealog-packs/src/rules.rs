//! A pack's manifest compiled into rules: pointers parsed, schema compiled, every declaration
//! checked once at load so ingest never meets a malformed rule.

use sealog_model::json::Json;
use serde_json::Value;

use crate::error::PackError;
use crate::manifest::{Manifest, Op, TypeDecl};
use crate::paths::Readers;
use crate::pointer::{Pointer, Segment};

pub(crate) struct TypeRules {
    pub(crate) pack: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) validator: crate::schema::Validator,
    /// The schema's file name in its pack and its text, as read.
    pub(crate) schema: (String, String),
    pub(crate) actor_required: bool,
    pub(crate) actor_types: Option<Vec<String>>,
    pub(crate) required: Vec<Pointer>,
    pub(crate) required_when: Vec<(Condition, Vec<Pointer>)>,
    pub(crate) forbidden: Vec<Pointer>,
    pub(crate) equal: Vec<Vec<Pointer>>,
    pub(crate) distinct: Vec<Vec<Pointer>>,
    /// Deepest arrays first, so an outer sort's tie-break sees inner arrays already in order.
    pub(crate) sorts: Vec<(Pointer, Vec<Pointer>)>,
    pub(crate) defaults: Vec<(Pointer, String, Value)>,
    pub(crate) subject: Option<Pointer>,
    /// What kind of resource the subject names: the pack and the field it is read from.
    /// Two types' records chain and fold together only when their kinds are the same.
    pub(crate) kind: std::sync::Arc<str>,
    pub(crate) scope: Option<Pointer>,
    pub(crate) data_subject: Option<Pointer>,
    pub(crate) supersedes: Option<Pointer>,
    pub(crate) unique_per_subject: bool,
    pub(crate) axes: Vec<Axis>,
    pub(crate) personal: Vec<Pointer>,
    /// Whether each personal field is also an axis (its sealed form then carries a keyed
    /// hash to be found by), decided once rather than on every sealed event.
    pub(crate) personal_indexed: Vec<bool>,
    /// The personal fields in one walk, unless two of them overlap (then they are walked one
    /// after another, in the pack's order, which decides what is sealed inside what).
    pub(crate) personal_walk: Option<crate::pointer::Merged>,
    pub(crate) retention: Retention,
    pub(crate) quarantine_retention: Retention,
    pub(crate) state: StateRule,
    /// Where the checks and the derivation read, found in one walk of an event.
    pub(crate) paths: crate::paths::Paths,
}

/// How long a type's records are kept, by ingest time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retention {
    /// Never pruned (Sealog's own records that later proofs rest on).
    Forever,
    /// Pruned once older than this; the text as the manifest gave it.
    For(sealog_model::time::Period, String),
}

/// Seven years: seed 003 INV-C005-06's default.
pub const DEFAULT_RETENTION: &str = "P7Y";

impl Retention {
    pub(crate) fn parse(text: &str) -> Result<Retention, String> {
        if text == "forever" {
            return Ok(Retention::Forever);
        }
        let p =
            sealog_model::time::Period::parse(text).map_err(|m| format!("{m}, or \"forever\""))?;
        Ok(Retention::For(p, text.to_string()))
    }

    pub fn default_period() -> Retention {
        Retention::parse(DEFAULT_RETENTION).expect("the default parses")
    }

    /// Records ingested before this instant are due at `now` (ns); `None`: never.
    pub fn cutoff(&self, now: i64) -> Option<i64> {
        match self {
            Retention::Forever => None,
            Retention::For(p, _) => Some(p.before(now)),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Retention::Forever => "forever",
            Retention::For(_, t) => t,
        }
    }
}

pub(crate) struct Condition {
    pub(crate) pointer: Pointer,
    pub(crate) equals: Option<Value>,
    pub(crate) not_equals: Option<Value>,
}

impl TypeRules {
    /// Every pointer from the event's root that the checks and the derivation read, with who
    /// reads it.
    fn read_places(&mut self) -> impl Iterator<Item = (&mut Pointer, Readers)> {
        let TypeRules {
            required,
            required_when,
            forbidden,
            equal,
            distinct,
            subject,
            scope,
            data_subject,
            supersedes,
            axes,
            ..
        } = self;
        let checked = required
            .iter_mut()
            .chain(
                required_when
                    .iter_mut()
                    .flat_map(|(c, ps)| std::iter::once(&mut c.pointer).chain(ps.iter_mut())),
            )
            .chain(forbidden.iter_mut())
            .chain(equal.iter_mut().chain(distinct.iter_mut()).flatten())
            .map(|p| (p, Readers::CHECK));
        let both = [subject, data_subject, supersedes]
            .into_iter()
            .filter_map(Option::as_mut)
            .map(|p| (p, Readers::BOTH));
        let derived = scope
            .as_mut()
            .into_iter()
            .chain(axes.iter_mut().map(|a| &mut a.pointer))
            .map(|p| (p, Readers::DERIVE));
        checked.chain(both).chain(derived)
    }
}

impl Condition {
    pub(crate) fn holds(&self, event: &crate::paths::Found<'_, Json<'_>>) -> bool {
        let v = event.get(&self.pointer);
        let equals = |w: &Value| v.is_some_and(|v| v.same_value(w));
        match (&self.equals, &self.not_equals) {
            (Some(e), _) => equals(e),
            (_, Some(n)) => !equals(n),
            (None, None) => unreachable!("checked at load: one of equals / not_equals"),
        }
    }
}

pub(crate) struct Axis {
    pub(crate) name: String,
    pub(crate) pointer: Pointer,
    pub(crate) join: Vec<Pointer>,
}

pub(crate) struct StateRule {
    pub(crate) op: Op,
    pub(crate) set: Vec<(String, Pointer)>,
    pub(crate) unset: Vec<String>,
    pub(crate) expect: Vec<(String, Pointer)>,
}

/// Reads a pack's schema files: from the binary for built-ins, from its directory otherwise.
pub(crate) type ReadFile<'a> = &'a dyn Fn(&str) -> Result<String, String>;

const MANIFEST: &str = "manifest.json";
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Compiles one pack. `label` names it in errors until its manifest says its name.
pub(crate) fn compile_pack(
    label: &str,
    manifest_text: &str,
    read: ReadFile<'_>,
) -> Result<Compiled, PackError> {
    let manifest: Manifest = serde_json::from_str(manifest_text)
        .map_err(|e| PackError::new(label, MANIFEST, json_location(&e), json_message(&e)))?;
    let pack = manifest.pack.clone();
    let err = |at: String, msg: String| PackError::new(&pack, MANIFEST, at, msg);
    if pack.is_empty()
        || !pack
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(err(
            "pack".into(),
            format!("\"{pack}\" is not a pack name (lowercase letters, digits, '-', '_')"),
        ));
    }
    let _ = (&manifest.version, &manifest.description);
    if manifest.types.is_empty() {
        return Err(err(
            "types".into(),
            "a pack declares at least one type".into(),
        ));
    }
    let mut types = Vec::with_capacity(manifest.types.len());
    for (name, decl) in &manifest.types {
        let at = format!("types.\"{name}\"");
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(
                at,
                "a type name is non-empty and has no whitespace".into(),
            ));
        }
        let retention = |at: &str, text: Option<&str>, or: Retention| match text {
            None => Ok(or),
            Some(t) => Retention::parse(t).map_err(|m| err(at.into(), m)),
        };
        let pack_retention = retention(
            "retention",
            manifest.retention.as_deref(),
            Retention::default_period(),
        )?;
        let own = retention(
            &format!("{at}.retention"),
            decl.retention.as_deref(),
            pack_retention,
        )?;
        let quarantine = retention(
            "quarantine_retention",
            manifest.quarantine_retention.as_deref(),
            own.clone(),
        )?;
        types.push(
            compile_type(&pack, name, decl, read, &at, (own, quarantine)).map_err(|e| match e {
                Located::Manifest(at, msg) => err(at, msg),
                Located::Pack(e) => e,
            })?,
        );
    }
    let axes_of = |t: &str| -> Vec<String> {
        types
            .iter()
            .find(|r| r.name == t)
            .map(|r| r.axes.iter().map(|a| a.name.clone()).collect())
            .unwrap_or_default()
    };
    let checks = crate::consistency::compile(&pack, &manifest, &axes_of)
        .map_err(|(at, msg)| err(at, msg))?;
    Ok(Compiled {
        pack,
        types,
        checks,
    })
}

/// One pack, compiled.
pub(crate) struct Compiled {
    pub(crate) pack: String,
    pub(crate) types: Vec<TypeRules>,
    pub(crate) checks: Vec<crate::consistency::CheckRule>,
}

enum Located {
    Manifest(String, String),
    Pack(PackError),
}

fn compile_type(
    pack: &str,
    name: &str,
    decl: &TypeDecl,
    read: ReadFile<'_>,
    at: &str,
    (retention, quarantine_retention): (Retention, Retention),
) -> Result<TypeRules, Located> {
    let bad = |field: String, msg: String| Located::Manifest(format!("{at}.{field}"), msg);
    let ptr = |field: String, text: &str, wildcard: bool| -> Result<Pointer, Located> {
        let p = Pointer::parse(text, false).map_err(|m| bad(field.clone(), m))?;
        if !wildcard && p.has_wildcard() {
            return Err(bad(field, format!("\"{text}\": '*' is not allowed here")));
        }
        if let Some(first) = p.first_key()
            && sealog_model::envelope::SERVER_FIELDS.contains(&first)
        {
            return Err(bad(
                field,
                format!("\"{text}\" points into /{first}, which the server sets"),
            ));
        }
        Ok(p)
    };
    let rel = |field: String, text: &str| -> Result<Pointer, Located> {
        let p = Pointer::parse(text, true).map_err(|m| bad(field.clone(), m))?;
        if p.has_wildcard() {
            return Err(bad(field, format!("\"{text}\": '*' is not allowed here")));
        }
        Ok(p)
    };
    let list = |field: &str, items: &[String], wildcard: bool| -> Result<Vec<Pointer>, Located> {
        items
            .iter()
            .enumerate()
            .map(|(i, t)| ptr(format!("{field}[{i}]"), t, wildcard))
            .collect()
    };

    let (validator, schema_text) =
        compile_schema(pack, &decl.schema, read, &format!("{at}.schema")).map_err(Located::Pack)?;

    if let Some(types) = &decl.actor_types {
        for (i, t) in types.iter().enumerate() {
            if !sealog_model::envelope::ACTOR_TYPES.contains(&t.as_str()) {
                return Err(bad(
                    format!("actor_types[{i}]"),
                    format!(
                        "\"{t}\" is not an actor type ({})",
                        sealog_model::envelope::ACTOR_TYPES.join(", ")
                    ),
                ));
            }
        }
    }

    let mut required_when = Vec::new();
    for (i, rw) in decl.required_when.iter().enumerate() {
        let field = format!("required_when[{i}]");
        if rw.when.equals.is_some() == rw.when.not_equals.is_some() {
            return Err(bad(
                format!("{field}.when"),
                "give exactly one of equals / not_equals (a non-null JSON value)".into(),
            ));
        }
        let cond = Condition {
            pointer: ptr(format!("{field}.when.pointer"), &rw.when.pointer, false)?,
            equals: rw.when.equals.clone(),
            not_equals: rw.when.not_equals.clone(),
        };
        required_when.push((
            cond,
            list(&format!("{field}.required"), &rw.required, true)?,
        ));
    }

    let groups = |field: &str, groups: &[Vec<String>]| -> Result<Vec<Vec<Pointer>>, Located> {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if g.len() < 2 {
                    return Err(bad(
                        format!("{field}[{i}]"),
                        "a group compares at least two pointers".into(),
                    ));
                }
                list(&format!("{field}[{i}]"), g, false)
            })
            .collect()
    };

    // Normalization edits only the body: the envelope, checked before it, stays as sent.
    let under_data = |p: &Pointer, at: String| match p.first_key() {
        Some("data") if p.segments.len() > 1 => Ok(()),
        _ => Err(bad(
            at,
            format!("\"{}\": normalization applies only under /data", p.text),
        )),
    };
    let mut sorts = Vec::new();
    for (i, s) in decl.normalize.sort.iter().enumerate() {
        let field = format!("normalize.sort[{i}]");
        let array = ptr(format!("{field}.array"), &s.array, true)?;
        under_data(&array, format!("{field}.array"))?;
        let by =
            s.by.iter()
                .enumerate()
                .map(|(j, t)| rel(format!("{field}.by[{j}]"), t))
                .collect::<Result<Vec<_>, _>>()?;
        sorts.push((array, by));
    }
    sorts.sort_by_key(|(p, _)| std::cmp::Reverse(p.segments.len()));

    let mut defaults = Vec::new();
    for (i, d) in decl.normalize.defaults.iter().enumerate() {
        let field = format!("normalize.defaults[{i}].pointer");
        let mut p = ptr(field.clone(), &d.pointer, true)?;
        under_data(&p, field.clone())?;
        let Some(Segment::Key(key)) = p.segments.pop() else {
            return Err(bad(field, "a default names a member, not '*'".into()));
        };
        defaults.push((p, key, d.value.clone()));
    }

    let mut axes: Vec<Axis> = Vec::new();
    for (i, a) in decl.axes.iter().enumerate() {
        let field = format!("axes[{i}]");
        let valid = !a.name.is_empty()
            && a.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(bad(
                format!("{field}.name"),
                format!(
                    "\"{}\" is not an axis name (letters, digits, '_', '-', '.')",
                    a.name
                ),
            ));
        }
        if crate::axes::is_reserved(&a.name) {
            return Err(bad(
                format!("{field}.name"),
                format!(
                    "\"{}\" is a built-in axis and cannot be declared by a pack",
                    a.name
                ),
            ));
        }
        let axis = Axis {
            name: a.name.clone(),
            pointer: ptr(format!("{field}.pointer"), &a.pointer, true)?,
            join: a
                .join
                .iter()
                .enumerate()
                .map(|(j, t)| rel(format!("{field}.join[{j}]"), t))
                .collect::<Result<_, _>>()?,
        };
        if axes
            .iter()
            .any(|x| x.name == axis.name && x.pointer == axis.pointer && x.join == axis.join)
        {
            return Err(bad(field, format!("axis \"{}\" is declared twice", a.name)));
        }
        axes.push(axis);
    }

    let state = &decl.state;
    let changes = !state.set.is_empty() || !state.unset.is_empty();
    if changes && matches!(state.op, Op::Observe | Op::Delete) {
        return Err(bad(
            "state".into(),
            format!(
                "op \"{}\" changes no fields; set/unset need create or update",
                state.op.as_str()
            ),
        ));
    }
    let fields = |field: &str, m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| Ok((k.clone(), ptr(format!("state.{field}.{k}"), v, false)?)))
            .collect::<Result<Vec<_>, Located>>()
    };

    let mut rules = TypeRules {
        pack: pack.to_string(),
        name: name.to_string(),
        description: decl.description.clone(),
        validator,
        schema: (decl.schema.clone(), schema_text),
        actor_required: decl.actor_required,
        actor_types: decl.actor_types.clone(),
        required: list("required", &decl.required, true)?,
        required_when,
        forbidden: list("forbidden", &decl.forbidden, true)?,
        equal: groups("equal", &decl.equal)?,
        distinct: groups("distinct", &decl.distinct)?,
        sorts,
        defaults,
        subject: decl
            .subject
            .as_deref()
            .map(|t| ptr("subject".into(), t, false))
            .transpose()?,
        kind: format!("{pack}{}", decl.subject.as_deref().unwrap_or("")).into(),
        scope: decl
            .scope
            .as_deref()
            .map(|t| ptr("scope".into(), t, false))
            .transpose()?,
        data_subject: decl
            .data_subject
            .as_deref()
            .map(|t| ptr("data_subject".into(), t, false))
            .transpose()?,
        supersedes: decl
            .supersedes
            .as_deref()
            .map(|t| ptr("supersedes".into(), t, false))
            .transpose()?,
        unique_per_subject: decl.unique_per_subject,
        axes,
        personal: list("personal", &decl.personal, true)?,
        personal_indexed: Vec::new(),
        personal_walk: None,
        retention,
        quarantine_retention,
        state: StateRule {
            op: state.op,
            set: fields("set", &state.set)?,
            unset: state.unset.clone(),
            expect: fields("expect", &state.expect)?,
        },
        paths: Default::default(),
    };
    // Sealing rewrites what it names, and the envelope is what Sealog orders, isolates and
    // finds records by (a sealed tenant would leave its tenant, a sealed time or actor no
    // envelope at all): personal values and their data subject are read from the event's data.
    for (at, p) in (rules.personal.iter().enumerate())
        .map(|(i, p)| (format!("personal[{i}]"), p))
        .chain(
            rules
                .data_subject
                .iter()
                .map(|p| ("data_subject".into(), p)),
        )
    {
        if !(p.first_key() == Some("data") && p.segments.len() > 1) {
            return Err(bad(
                at,
                format!(
                    "\"{}\" is not under /data: personal fields and the data subject are read from the event's data, never its envelope",
                    p.text
                ),
            ));
        }
    }
    // Who the record is about is itself personal: sealed like the fields it names, it is
    // still known without any key, from the pseudonym its sealed form carries.
    if let Some(ds) = &rules.data_subject
        && !rules.is_personal(ds)
    {
        rules.personal.push(ds.clone());
    }
    rules.personal_indexed = rules
        .personal
        .iter()
        .map(|p| rules.axes.iter().any(|a| a.pointer == *p))
        .collect();
    rules.personal_walk = crate::pointer::Merged::of(&rules.personal);
    // A personal value is sealed under its data subject's key, so it needs one; and what a
    // record is keyed by (subject, scope, supersedes) must read the same after erasure.
    if !rules.personal.is_empty() && rules.data_subject.is_none() {
        return Err(bad(
            "personal".into(),
            "a type with personal fields must declare its data_subject".into(),
        ));
    }
    // A personal field is sealed whole before the record's axes are read, so an axis can index
    // a personal field itself (a keyed hash of it) but finds nothing inside one.
    for (i, axis) in rules.axes.iter().enumerate() {
        let reads =
            std::iter::once(axis.pointer.segments.clone()).chain(axis.join.iter().map(|j| {
                let mut path = axis.pointer.segments.clone();
                path.extend(j.segments.iter().cloned());
                path
            }));
        for path in reads {
            if let Some(q) = rules
                .personal_holding(&path)
                .find(|q| q.segments.len() < path.len())
            {
                return Err(bad(
                    format!("axes[{i}]"),
                    format!(
                        "axis \"{}\" reads inside the personal field \"{}\", which is sealed whole: an axis may read a personal field itself, not a field inside one",
                        axis.name, q.text
                    ),
                ));
            }
        }
    }
    // Defaults are added after the check that asks for the data subject beside any personal
    // value, so one that put a personal value into an event would leave it nobody to be
    // sealed for. A default inside a personal field is fine: that field was there already.
    for (i, (parent, key, value)) in rules.defaults.iter().enumerate() {
        let mut place = parent.segments.clone();
        place.push(Segment::Key(key.clone()));
        if let Some(q) = rules.personal.iter().find(|q| {
            q.segments.len() >= place.len()
                && may_meet(&place, &q.segments[..place.len()])
                && crate::pointer::reaches_a_value(value, &q.segments[place.len()..])
        }) {
            return Err(bad(
                format!("normalize.defaults[{i}].pointer"),
                format!(
                    "the default would put a value into the personal field \"{}\": a personal value must come with the event, which names its data subject",
                    q.text
                ),
            ));
        }
    }
    for (field, p) in [
        ("subject", &rules.subject),
        ("scope", &rules.scope),
        ("supersedes", &rules.supersedes),
    ] {
        if let Some(p) = p
            && rules.is_personal(p)
        {
            return Err(bad(
                field.into(),
                format!(
                    "\"{}\" is a personal field: it cannot be the {field}",
                    p.text
                ),
            ));
        }
    }
    // Declarations in name order make an event's derived axes come out nearly sorted, and the
    // sort every event's axes get (a set: no order may leak into what is indexed) then only
    // confirms it, where declaration order cost it ten moves an event. Stable, so two axes
    // of one name keep their declared order.
    rules.axes.sort_by(|a, b| a.name.cmp(&b.name));
    rules.paths = crate::paths::Paths::assign(rules.read_places());
    Ok(rules)
}

impl TypeRules {
    /// Whether `p` names a personal field or lies inside one.
    pub(crate) fn is_personal(&self, p: &Pointer) -> bool {
        self.personal_holding(&p.segments).next().is_some()
    }

    /// The personal fields that `path` names or lies inside.
    fn personal_holding<'a>(&'a self, path: &'a [Segment]) -> impl Iterator<Item = &'a Pointer> {
        self.personal
            .iter()
            .filter(move |q| path.starts_with(&q.segments))
    }
}

/// Whether two paths of one length can name the same place: `*` meets any element, and a
/// member name meets `*` when it is an array index.
fn may_meet(a: &[Segment], b: &[Segment]) -> bool {
    a.iter().zip(b).all(|(x, y)| match (x, y) {
        (Segment::Key(x), Segment::Key(y)) => x == y,
        (Segment::Key(k), Segment::Each) | (Segment::Each, Segment::Key(k)) => {
            crate::pointer::index(k).is_some()
        }
        (Segment::Each, Segment::Each) => true,
    })
}

fn compile_schema(
    pack: &str,
    file: &str,
    read: ReadFile<'_>,
    manifest_at: &str,
) -> Result<(crate::schema::Validator, String), PackError> {
    let plain = !file.is_empty()
        && !file.contains(['/', '\\'])
        && file != "."
        && file != ".."
        && file.ends_with(".json");
    if !plain {
        return Err(PackError::new(
            pack,
            MANIFEST,
            manifest_at,
            format!("\"{file}\" must be a .json file name inside the pack directory"),
        ));
    }
    let text = read(file).map_err(|m| PackError::new(pack, file, "file", m))?;
    let schema: Value = serde_json::from_str(&text)
        .map_err(|e| PackError::new(pack, file, json_location(&e), json_message(&e)))?;
    match schema.get("$schema") {
        None => {}
        Some(Value::String(s)) if s.trim_end_matches('#') == DRAFT_2020_12 => {}
        Some(_) => {
            return Err(PackError::new(
                pack,
                file,
                "/$schema",
                format!("packs use JSON Schema 2020-12 (\"{DRAFT_2020_12}\")"),
            ));
        }
    }
    let validator = crate::schema::compile(&schema).map_err(|e| {
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        PackError::new(pack, file, at, format!("invalid schema: {e}"))
    })?;
    Ok((validator, text))
}

fn json_location(e: &serde_json::Error) -> String {
    format!("line {} column {}", e.line(), e.column())
}

/// serde_json's message without the position it appends, which the location already gives.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}
