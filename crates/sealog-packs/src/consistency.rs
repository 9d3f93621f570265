//! Consistency rules a pack declares (`checks` in its manifest), compiled once at load: what
//! `sealog check` evaluates over the log. The rules are data; evaluating them over stored
//! records is the checker's.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::manifest::{CheckDecl, Manifest};
use crate::pointer::Pointer;

/// How urgent a finding is (seed 003 §5.4), lowest first so `>=` reads "at least".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub const ALL: [Criticality; 5] = [
        Criticality::Critical,
        Criticality::High,
        Criticality::Medium,
        Criticality::Low,
        Criticality::Info,
    ];

    pub fn parse(text: &str) -> Result<Criticality, String> {
        Ok(match text {
            "critical" => Criticality::Critical,
            "high" => Criticality::High,
            "medium" => Criticality::Medium,
            "low" => Criticality::Low,
            "info" => Criticality::Info,
            other => {
                return Err(format!(
                    "\"{other}\" is not a criticality (critical, high, medium, low, info)"
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Critical => "critical",
            Criticality::High => "high",
            Criticality::Medium => "medium",
            Criticality::Low => "low",
            Criticality::Info => "info",
        }
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JSON pointer a rule reads from a stored record.
pub struct FieldPointer(Pointer);

impl FieldPointer {
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        self.0.get(record)
    }

    pub fn text(&self) -> &str {
        &self.0.text
    }
}

/// The anomalies a subject's state fold reports, by kind (see the state fold).
pub const ANOMALY_KINDS: [&str; 5] = ["expect", "unknown", "deleted", "recreated", "undeclared"];

/// One compiled rule.
pub struct CheckRule {
    pub pack: String,
    pub name: String,
    pub criticality: Criticality,
    pub message: String,
    pub description: Option<String>,
    /// The event types whose records the rule looks at.
    pub types: Vec<String>,
    pub kind: CheckKind,
}

pub enum CheckKind {
    /// An anomaly of one of these kinds in the rebuilt state of a subject of `types`, at a
    /// record of `types`.
    State { anomalies: Vec<String> },
    /// Each value at `pointers` of a live subject of `types` names a live subject of
    /// `targets`; `axis` finds the referring subjects from a target.
    Reference {
        pointers: Vec<FieldPointer>,
        targets: Vec<String>,
        axis: String,
    },
    /// Live subjects whose state holds the same `key` (found through `axis`) must agree on
    /// `value` (`same: false`, contradiction) or are reported for asserting the same value
    /// (`same: true`, redundancy).
    Claims {
        same: bool,
        axis: String,
        key: String,
        value: String,
        criticality_by: Option<CriticalityBy>,
        resolve: Option<Box<Resolve>>,
    },
    /// A live subject of `types` created longer than `within` ago that no live subject of
    /// `edges` refers to (through `axis`, at `pointers`).
    Orphan {
        within_ns: i64,
        edges: Vec<String>,
        axis: String,
        pointers: Vec<FieldPointer>,
    },
    /// A live subject of `types` not changed within `within`.
    Stale { within_ns: i64 },
    /// A subject whose first record of `types` started its deadline more than `within` ago
    /// must have met `done` by then.
    Deadline(Deadline),
    /// `threshold` or more denied requests by one key within `within` (over `audit.access`).
    DeniedBurst { within_ns: i64, threshold: u64 },
    /// One key reading `threshold` or more data subjects within `within`.
    ReadSpread { within_ns: i64, threshold: u64 },
    /// A key used from an address it was never used from before.
    NewSource,
    /// More than `percent` of the events of `types` that reached the log within `within`
    /// (at least `threshold` of them) were quarantined: their producers' audit writes are
    /// failing (seed 004 §8).
    FailureRate {
        within_ns: i64,
        percent: f64,
        threshold: u64,
    },
    /// A snapshot of the domain (`--reconcile FILE`, NDJSON rows naming the subject by `key`
    /// and its link by `value`) against the subjects' current state field `value`.
    Reconcile {
        side: ReconcileSide,
        key: String,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileSide {
    /// A link the domain holds that no audited current link matches.
    Domain,
    /// An audited current link the domain does not hold.
    Audit,
}

pub struct CriticalityBy {
    pub field: String,
    pub values: BTreeMap<String, Criticality>,
}

pub struct Done {
    pub field: String,
    /// `None`: any value counts.
    pub equals: Option<Value>,
}

impl Done {
    /// Whether a subject's state fields (a rebuilt state's `state`) say the obligation is
    /// done: the one reading the check and the reports both judge by.
    pub fn met_by(&self, fields: &Value) -> bool {
        match (
            fields.get(&self.field).filter(|v| !v.is_null()),
            &self.equals,
        ) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(want)) => v == want,
        }
    }
}

/// An obligation with a time limit: `done` within `within` of when the subject's first record
/// says it started. The rule is the one definition of that start: the check judges it and the
/// reports list it, and the two must never disagree about when a request fell due.
pub struct Deadline {
    pub within_ns: i64,
    pub done: Done,
    /// Where a record gives the moment its deadline counts from (a request's receipt, a
    /// breach's discovery); `None`: its event time.
    pub from: Option<FieldPointer>,
}

impl Deadline {
    /// When the deadline of a subject whose first record is `record` (event time `event_ns`)
    /// starts: the `from` field's time when it holds one, but never later than the record
    /// itself (a request is received before it is recorded, and a later start would let the
    /// deadline slip past what the event time allows); the event time otherwise.
    pub fn starts(&self, record: &Value, event_ns: i64) -> i64 {
        self.from
            .as_ref()
            .and_then(|from| from.get(record))
            .and_then(Value::as_str)
            .and_then(|t| sealog_model::time::parse_rfc3339(t).ok())
            .map_or(event_ns, |t| t.min(event_ns))
    }

    /// When the deadline falls for a subject whose first record is `record`.
    pub fn due(&self, record: &Value, event_ns: i64) -> i64 {
        self.starts(record, event_ns).saturating_add(self.within_ns)
    }
}

/// Seed 003 §5.3's automatic resolution.
pub struct Resolve {
    /// The state field holding a subject's authority, and its levels, highest first.
    pub authority: String,
    pub authority_order: Vec<String>,
    /// Where a record names its principal's type (`human`, `agent`).
    pub principal_type: FieldPointer,
    /// The relationship event appended for the loser: whole-string values `{loser}`,
    /// `{winner}`, `{conflict}`, `{edge}`, `{principal_type}`, `{principal_id}` are filled in.
    pub superseded_by: Value,
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::State { .. } => "state",
            CheckKind::Reference { .. } => "reference",
            CheckKind::Claims { same: false, .. } => "contradiction",
            CheckKind::Claims { same: true, .. } => "redundancy",
            CheckKind::Orphan { .. } => "orphan",
            CheckKind::Stale { .. } => "stale",
            CheckKind::Deadline(_) => "deadline",
            CheckKind::DeniedBurst { .. } => "denied_burst",
            CheckKind::ReadSpread { .. } => "read_spread",
            CheckKind::NewSource => "new_source",
            CheckKind::FailureRate { .. } => "failure_rate",
            CheckKind::Reconcile { .. } => "reconcile",
        }
    }
}

/// The type Sealog records reads in; the access rules read it.
const ACCESS_TYPE: &str = "audit.access";

/// Which optional members each kind takes (beyond name, kind, criticality, message,
/// description, types).
fn members(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "state" => &["anomalies"],
        "reference" => &["pointers", "targets", "axis"],
        "contradiction" => &["axis", "key", "value", "criticality_by", "resolve"],
        "redundancy" => &["axis", "key", "value", "criticality_by"],
        "orphan" => &["within", "edges", "axis", "pointers"],
        "stale" => &["within"],
        "deadline" => &["within", "done", "from"],
        "denied_burst" | "read_spread" => &["within", "threshold"],
        "new_source" => &[],
        "failure_rate" => &["within", "threshold", "percent"],
        "reconcile" => &["side", "key", "value"],
        _ => return None,
    })
}

fn present(d: &CheckDecl) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, yes: bool| {
        if yes {
            out.push(name);
        }
    };
    add("anomalies", d.anomalies.is_some());
    add("pointers", d.pointers.is_some());
    add("targets", d.targets.is_some());
    add("edges", d.edges.is_some());
    add("axis", d.axis.is_some());
    add("key", d.key.is_some());
    add("value", d.value.is_some());
    add("within", d.within.is_some());
    add("threshold", d.threshold.is_some());
    add("percent", d.percent.is_some());
    add("done", d.done.is_some());
    add("from", d.from.is_some());
    add("criticality_by", d.criticality_by.is_some());
    add("resolve", d.resolve.is_some());
    add("side", d.side.is_some());
    out
}

/// Compiles a pack's rules; `Err((where, why))` names the member at fault.
pub(crate) fn compile(
    pack: &str,
    manifest: &Manifest,
    axes_of: &dyn Fn(&str) -> Vec<String>,
) -> Result<Vec<CheckRule>, (String, String)> {
    let mut rules = Vec::with_capacity(manifest.checks.len());
    for (i, d) in manifest.checks.iter().enumerate() {
        let at = |member: &str| format!("checks[{i}].{member}");
        let err = |member: &str, msg: String| (at(member), msg);
        if d.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("name", "a rule name has no whitespace".into()));
        }
        if rules.iter().any(|r: &CheckRule| r.name == d.name) {
            return Err(err(
                "name",
                format!("rule \"{}\" is declared twice", d.name),
            ));
        }
        let allowed = members(&d.kind).ok_or_else(|| {
            err(
                "kind",
                format!(
                    "\"{}\" is not a rule kind (state, reference, contradiction, redundancy, orphan, stale, deadline, denied_burst, read_spread, new_source, failure_rate, reconcile)",
                    d.kind
                ),
            )
        })?;
        if let Some(extra) = present(d).into_iter().find(|m| !allowed.contains(m)) {
            return Err(err(
                extra,
                format!("a {} rule does not take \"{extra}\"", d.kind),
            ));
        }
        let criticality = Criticality::parse(&d.criticality).map_err(|m| err("criticality", m))?;
        if d.message.trim().is_empty() {
            return Err(err("message", "a rule says what it found".into()));
        }
        let access = matches!(
            d.kind.as_str(),
            "denied_burst" | "read_spread" | "new_source"
        );
        let types = if access {
            if !d.types.is_empty() {
                return Err(err(
                    "types",
                    format!("a {} rule reads {ACCESS_TYPE} records only", d.kind),
                ));
            }
            vec![ACCESS_TYPE.to_string()]
        } else {
            if d.types.is_empty() {
                return Err(err("types", "a rule names the types it looks at".into()));
            }
            d.types.clone()
        };
        let declared = |member: &str, list: &[String]| -> Result<(), (String, String)> {
            match list.iter().find(|t| !manifest.types.contains_key(*t)) {
                Some(t) => Err(err(
                    member,
                    format!("type \"{t}\" is not declared by this pack"),
                )),
                None if list.is_empty() => Err(err(member, "names at least one type".into())),
                None => Ok(()),
            }
        };
        if !access {
            declared("types", &types)?;
        }
        // A rule is named in its types' namespace (an access rule, in its pack's), so two
        // packs' rules never clash.
        let namespaced = types.iter().chain(manifest.types.keys()).any(|t| {
            t.split_once('.').is_some_and(|(ns, _)| {
                d.name
                    .strip_prefix(ns)
                    .is_some_and(|r| r.len() > 1 && r.starts_with('.'))
            })
        });
        if !namespaced {
            return Err(err(
                "name",
                format!(
                    "\"{}\" must start with its types' namespace (as in \"{}.…\")",
                    d.name,
                    types[0].split('.').next().unwrap_or("")
                ),
            ));
        }
        let need = |member: &str, v: &Option<String>| {
            v.clone()
                .ok_or_else(|| err(member, format!("a {} rule needs \"{member}\"", d.kind)))
        };
        let window = || -> Result<i64, (String, String)> {
            window_ns(&need("within", &d.within)?).map_err(|m| err("within", m))
        };
        let pointers = |list: &Option<Vec<String>>| -> Result<Vec<FieldPointer>, (String, String)> {
            let list = list
                .as_ref()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| err("pointers", "names at least one pointer".into()))?;
            list.iter()
                .map(|t| {
                    Pointer::parse(t, false)
                        .map(FieldPointer)
                        .map_err(|m| err("pointers", m))
                })
                .collect()
        };
        let axis_on = |list: &[String], every: bool| -> Result<String, (String, String)> {
            let axis = need("axis", &d.axis)?;
            let has = |t: &String| axes_of(t).contains(&axis);
            let ok = if every {
                list.iter().all(has)
            } else {
                list.iter().any(has)
            };
            if ok {
                Ok(axis)
            } else {
                Err(err(
                    "axis",
                    format!(
                        "\"{axis}\" must be an axis of {} type it looks through",
                        if every { "every" } else { "some" }
                    ),
                ))
            }
        };
        let threshold = || {
            d.threshold
                .filter(|n| *n >= 2)
                .ok_or_else(|| err("threshold", "a threshold of at least 2".into()))
        };
        let kind = match d.kind.as_str() {
            "state" => {
                let anomalies = d.anomalies.clone().unwrap_or_default();
                if anomalies.is_empty() {
                    return Err(err("anomalies", "names at least one anomaly kind".into()));
                }
                if let Some(bad) = anomalies
                    .iter()
                    .find(|a| !ANOMALY_KINDS.contains(&a.as_str()))
                {
                    return Err(err(
                        "anomalies",
                        format!(
                            "\"{bad}\" is not an anomaly kind ({})",
                            ANOMALY_KINDS.join(", ")
                        ),
                    ));
                }
                CheckKind::State { anomalies }
            }
            "reference" => {
                let targets = d.targets.clone().unwrap_or_default();
                declared("targets", &targets)?;
                CheckKind::Reference {
                    pointers: pointers(&d.pointers)?,
                    axis: axis_on(&types, false)?,
                    targets,
                }
            }
            "contradiction" | "redundancy" => {
                let criticality_by = match &d.criticality_by {
                    None => None,
                    Some(c) => Some(CriticalityBy {
                        field: c.field.clone(),
                        values: c
                            .values
                            .iter()
                            .map(|(k, v)| Ok((k.clone(), Criticality::parse(v)?)))
                            .collect::<Result<_, String>>()
                            .map_err(|m| err("criticality_by", m))?,
                    }),
                };
                let resolve = match &d.resolve {
                    None => None,
                    Some(r) => {
                        if r.authority_order.is_empty() {
                            return Err(err(
                                "resolve.authority_order",
                                "names the authority levels, highest first".into(),
                            ));
                        }
                        if !r.superseded_by.is_object()
                            || r.superseded_by
                                .get("type")
                                .and_then(Value::as_str)
                                .is_none_or(|t| !manifest.types.contains_key(t))
                        {
                            return Err(err(
                                "resolve.superseded_by",
                                "an event template whose type this pack declares".into(),
                            ));
                        }
                        Some(Box::new(Resolve {
                            authority: r.authority.clone(),
                            authority_order: r.authority_order.clone(),
                            principal_type: Pointer::parse(&r.principal_type, false)
                                .map(FieldPointer)
                                .map_err(|m| err("resolve.principal_type", m))?,
                            superseded_by: r.superseded_by.clone(),
                        }))
                    }
                };
                CheckKind::Claims {
                    same: d.kind == "redundancy",
                    axis: axis_on(&types, true)?,
                    key: need("key", &d.key)?,
                    value: need("value", &d.value)?,
                    criticality_by,
                    resolve,
                }
            }
            "orphan" => {
                let edges = d.edges.clone().unwrap_or_default();
                declared("edges", &edges)?;
                CheckKind::Orphan {
                    within_ns: window()?,
                    axis: axis_on(&edges, false)?,
                    pointers: pointers(&d.pointers)?,
                    edges,
                }
            }
            "stale" => CheckKind::Stale {
                within_ns: window()?,
            },
            "deadline" => {
                let done = d
                    .done
                    .as_ref()
                    .ok_or_else(|| err("done", "a deadline rule says when it is met".into()))?;
                CheckKind::Deadline(Deadline {
                    within_ns: window()?,
                    done: Done {
                        field: done.field.clone(),
                        equals: done.equals.clone(),
                    },
                    from: d
                        .from
                        .as_deref()
                        .map(data_field)
                        .transpose()
                        .map_err(|m| err("from", m))?,
                })
            }
            "denied_burst" => CheckKind::DeniedBurst {
                within_ns: window()?,
                threshold: threshold()?,
            },
            "read_spread" => CheckKind::ReadSpread {
                within_ns: window()?,
                threshold: threshold()?,
            },
            "new_source" => CheckKind::NewSource,
            "failure_rate" => CheckKind::FailureRate {
                within_ns: window()?,
                threshold: threshold()?,
                percent: d
                    .percent
                    .filter(|p| *p > 0.0 && *p < 100.0)
                    .ok_or_else(|| err("percent", "a percentage between 0 and 100".into()))?,
            },
            "reconcile" => CheckKind::Reconcile {
                side: match need("side", &d.side)?.as_str() {
                    "domain" => ReconcileSide::Domain,
                    "audit" => ReconcileSide::Audit,
                    other => {
                        return Err(err(
                            "side",
                            format!("\"{other}\" is not a side (domain, audit)"),
                        ));
                    }
                },
                key: need("key", &d.key)?,
                value: need("value", &d.value)?,
            },
            _ => unreachable!("members() knows every kind"),
        };
        rules.push(CheckRule {
            pack: pack.to_string(),
            name: d.name.clone(),
            criticality,
            message: d.message.clone(),
            description: d.description.clone(),
            types,
            kind,
        });
    }
    Ok(rules)
}

/// A pointer to one field of a record's `data`: the producer's own account of a moment. An
/// envelope member is not one (`time` is the event time a rule falls back to anyway), and a
/// wildcard would name many moments where a deadline needs one.
fn data_field(text: &str) -> Result<FieldPointer, String> {
    let pointer = Pointer::parse(text, false)?;
    if pointer.first_key() != Some("data") || pointer.segments.len() < 2 {
        return Err(format!(
            "\"{text}\" must point into the record's data (as in \"/data/received_at\")"
        ));
    }
    if pointer.has_wildcard() {
        return Err(format!(
            "\"{text}\" names one field: a deadline starts at one moment, not at each element"
        ));
    }
    Ok(FieldPointer(pointer))
}

/// A rule's window: a fixed duration (weeks, days, hours, minutes, seconds), in ns.
fn window_ns(text: &str) -> Result<i64, String> {
    let p = sealog_model::time::Period::parse(text)?;
    if p.months != 0 {
        return Err(format!(
            "\"{text}\": a rule's window is a fixed duration (weeks, days, hours, minutes, seconds), not years or months"
        ));
    }
    let ns = (i128::from(p.days) * 86_400 + i128::from(p.seconds)) * 1_000_000_000;
    i64::try_from(ns).map_err(|_| format!("\"{text}\" is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_durations() {
        assert_eq!(window_ns("PT72H").unwrap(), 72 * 3_600_000_000_000);
        assert_eq!(window_ns("P30D").unwrap(), 30 * 86_400_000_000_000);
        assert!(window_ns("P1M").unwrap_err().contains("fixed duration"));
    }

    #[test]
    fn criticalities_order_from_info_to_critical() {
        assert!(Criticality::Critical > Criticality::High);
        assert!(Criticality::Low > Criticality::Info);
        for c in Criticality::ALL {
            assert_eq!(Criticality::parse(c.as_str()).unwrap(), c);
        }
        assert!(Criticality::parse("severe").is_err());
    }
}
