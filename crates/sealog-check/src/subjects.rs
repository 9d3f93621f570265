//! Reading the log as the rules need it: records of given types in a seq or event-time
//! window, subjects found through an axis, and subjects' rebuilt state as of the run's size.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use sealog_ledger::{Ledger, Located, Query, Sight, StateQuery, View};

use crate::CheckError;

/// A subject, where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SubjectKey {
    pub(crate) tenant: Option<String>,
    pub(crate) scope: String,
    pub(crate) subject: String,
    /// What kind of resource the subject is ([`Located::kind`]); empty for a place.
    pub(crate) kind: String,
}

impl SubjectKey {
    pub(crate) fn of(r: &Located) -> Option<SubjectKey> {
        Some(SubjectKey {
            tenant: r.tenant.clone(),
            scope: r.scope.clone(),
            subject: r.subject.clone()?,
            kind: r.kind.clone(),
        })
    }

    /// A tenant and scope whose subjects are of the kind of `types`' first one: where
    /// [`SubjectKey::sibling`] finds them.
    pub(crate) fn place_of(
        tenant: Option<String>,
        scope: String,
        ledger: &sealog_ledger::Ledger,
        types: &[String],
    ) -> SubjectKey {
        let kind = (types.first()).and_then(|t| ledger.packs().kind_of(t));
        SubjectKey {
            kind: kind.unwrap_or("").to_string(),
            ..SubjectKey::place(tenant, scope)
        }
    }

    /// A tenant and scope, where findings about no one subject are placed.
    pub(crate) fn place(tenant: Option<String>, scope: String) -> SubjectKey {
        SubjectKey {
            tenant,
            scope,
            subject: String::new(),
            kind: String::new(),
        }
    }

    /// The same tenant and scope, another subject.
    pub(crate) fn sibling(&self, subject: &str) -> SubjectKey {
        SubjectKey {
            subject: subject.to_string(),
            ..self.clone()
        }
    }
}

/// A record a state or finding cites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cited {
    pub(crate) seq: u64,
    pub(crate) record_id: String,
    pub(crate) event_type: String,
    pub(crate) time_ns: i64,
}

impl Cited {
    fn from_json(v: &Value) -> Option<Cited> {
        Some(Cited {
            seq: v.get("seq")?.as_u64()?,
            record_id: v.get("record_id")?.as_str()?.to_string(),
            event_type: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            time_ns: v
                .get("time")
                .and_then(Value::as_str)
                .and_then(|t| sealog_model::time::parse_rfc3339(t).ok())
                .unwrap_or(i64::MIN),
        })
    }

    pub(crate) fn of(r: &Located) -> Cited {
        Cited {
            seq: r.seq,
            record_id: r.record_id.clone(),
            event_type: r.event_type.clone(),
            time_ns: r.time_ns,
        }
    }
}

/// A subject's rebuilt state, read through the fields the rules use.
pub(crate) struct State(pub(crate) Value);

impl State {
    pub(crate) fn status(&self) -> &str {
        self.0.get("status").and_then(Value::as_str).unwrap_or("")
    }

    pub(crate) fn live(&self) -> bool {
        self.status() == "active"
    }

    pub(crate) fn field(&self, name: &str) -> Option<&Value> {
        self.0.get("state")?.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn text(&self, name: &str) -> Option<String> {
        match self.field(name)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub(crate) fn cited(&self, which: &str) -> Option<Cited> {
        Cited::from_json(self.0.get(which)?)
    }

    /// Every record folded, in the fold's order.
    pub(crate) fn history(&self) -> Vec<Cited> {
        self.0
            .get("history")
            .and_then(Value::as_array)
            .map(|h| h.iter().filter_map(Cited::from_json).collect())
            .unwrap_or_default()
    }

    /// The fold's anomalies as (kind, the record it is at).
    pub(crate) fn anomalies(&self) -> Vec<(String, Cited)> {
        let history = self.history();
        self.0
            .get("anomalies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        let seq = x.get("seq")?.as_u64()?;
                        let kind = x.get("kind")?.as_str()?.to_string();
                        Some((kind, history.iter().find(|c| c.seq == seq)?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The latest record the subject's state changed by, or its last record at all.
    pub(crate) fn latest(&self) -> Option<Cited> {
        self.cited("tombstone")
            .or_else(|| self.cited("updated"))
            .or_else(|| self.history().pop())
    }
}

/// What [`Reader::visit`] calls with each record: where it is, and its bytes.
pub(crate) type Visitor<'f> = dyn FnMut(Located, &[u8]) -> Result<(), CheckError> + 'f;

/// Records read per page.
const PAGE: usize = 4096;

/// States per cache generation: enough for a run's working set, bounded for a large log.
const STATES_CACHED: usize = 50_000;

/// The log as a run sees it: records `0..size`.
pub(crate) struct Reader<'a> {
    pub(crate) ledger: &'a Ledger,
    pub(crate) size: u64,
    /// What the states show of personal values: nothing, unless a rule compares them with
    /// values from outside the log (reconciliation). The folds compare them either way.
    sight: Sight,
    states: std::cell::RefCell<Cache>,
}

/// Rebuilt states, kept in two generations: when the young one is full it becomes the old
/// one (the previous old one is dropped) and a state found in the old one is taken back, so
/// what a run keeps touching stays while memory stays bounded.
#[derive(Default)]
struct Cache {
    young: HashMap<SubjectKey, Arc<State>>,
    old: HashMap<SubjectKey, Arc<State>>,
}

impl Cache {
    fn get(&mut self, key: &SubjectKey) -> Option<Arc<State>> {
        if let Some(s) = self.young.get(key) {
            return Some(s.clone());
        }
        let s = self.old.remove(key)?;
        self.put(key.clone(), s.clone());
        Some(s)
    }

    fn put(&mut self, key: SubjectKey, state: Arc<State>) {
        if self.young.len() >= STATES_CACHED {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, state);
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(ledger: &'a Ledger, size: u64) -> Self {
        Reader {
            ledger,
            size,
            sight: Sight::Nothing,
            states: Default::default(),
        }
    }

    /// A reader whose states show personal values as they are.
    pub(crate) fn seeing(ledger: &'a Ledger, size: u64) -> Self {
        Reader {
            sight: Sight::All,
            ..Reader::new(ledger, size)
        }
    }

    /// Calls `f` with each record matching `equals` with seq in `from..size` and, when
    /// given, event time in `[t0, t1)`, by seq, one page in memory at a time.
    pub(crate) fn visit(
        &self,
        equals: Vec<(String, String)>,
        from: u64,
        event_window: Option<(i64, i64)>,
        f: &mut Visitor<'_>,
    ) -> Result<(), CheckError> {
        let mut q = Query {
            equals,
            after: from.checked_sub(1),
            as_of_size: Some(self.size),
            event_from: event_window.map(|w| w.0),
            event_to: event_window.map(|w| w.1),
            view: View::History,
            limit: PAGE,
            ..Query::default()
        };
        loop {
            let page = self.ledger.query(&q)?;
            for (seq, bytes) in &page.records {
                let located = sealog_ledger::locate(self.ledger.packs(), bytes)
                    .map_err(|m| CheckError::Corrupted(format!("record {seq}: {m}")))?;
                f(located, bytes)?;
            }
            match page.next_after {
                Some(a) => q.after = Some(a),
                None => return Ok(()),
            }
        }
    }

    /// One record by seq, parsed; `null` when it is no longer there to read (pruned by
    /// retention: a rule then falls back on what the index keeps of it).
    pub(crate) fn record(&self, seq: u64) -> Result<Value, CheckError> {
        Ok(self
            .ledger
            .get(seq)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null))
    }

    /// Records matching `equals` with seq in `from..size`, parsed: for the few a rule reads
    /// whole (the new access records).
    pub(crate) fn records(
        &self,
        equals: Vec<(String, String)>,
        from: u64,
    ) -> Result<Vec<(Located, Value)>, CheckError> {
        let mut out = Vec::new();
        self.visit(equals, from, None, &mut |located, bytes| {
            let value = serde_json::from_slice(bytes)
                .map_err(|e| CheckError::Corrupted(format!("record {}: {e}", located.seq)))?;
            out.push((located, value));
            Ok(())
        })?;
        Ok(out)
    }

    /// The distinct subjects of the records of `types` with seq in `from..size`, in seq
    /// order of their first such record.
    pub(crate) fn subjects(
        &self,
        types: &[String],
        from: u64,
    ) -> Result<Vec<SubjectKey>, CheckError> {
        let mut found: Vec<(u64, SubjectKey)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in types {
            self.visit(vec![("type".into(), t.clone())], from, None, &mut |l, _| {
                if let Some(k) = SubjectKey::of(&l)
                    && seen.insert(k.clone())
                {
                    found.push((l.seq, k));
                }
                Ok(())
            })?;
        }
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found.into_iter().map(|(_, k)| k).collect())
    }

    /// The distinct subjects of the records of `types` whose event time is in `[t0, t1)`,
    /// in seq order: read through the event-time index, so it costs the records in the
    /// window, not the types' whole history.
    pub(crate) fn subjects_by_time(
        &self,
        types: &[String],
        window: (i64, i64),
    ) -> Result<Vec<SubjectKey>, CheckError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.visit(Vec::new(), 0, Some(window), &mut |l, _| {
            if types.contains(&l.event_type)
                && let Some(k) = SubjectKey::of(&l)
                && seen.insert(k.clone())
            {
                out.push(k);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether a record below seq `below` matches `equals`.
    pub(crate) fn any_below(
        &self,
        equals: Vec<(String, String)>,
        below: u64,
    ) -> Result<bool, CheckError> {
        let q = Query {
            equals,
            as_of_size: Some(below.min(self.size)),
            limit: 1,
            ..Query::default()
        };
        Ok(!self.ledger.query(&q)?.records.is_empty())
    }

    /// The subjects with a record indexed under `axis = value`, in `at`'s tenant and scope.
    pub(crate) fn subjects_with(
        &self,
        axis: &str,
        value: &str,
        at: &SubjectKey,
    ) -> Result<BTreeSet<SubjectKey>, CheckError> {
        let mut out = BTreeSet::new();
        self.visit(
            vec![(axis.to_string(), value.to_string())],
            0,
            None,
            &mut |l, _| {
                out.extend(
                    SubjectKey::of(&l).filter(|k| k.tenant == at.tenant && k.scope == at.scope),
                );
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// A subject's state as of the run's size.
    pub(crate) fn state(&self, key: &SubjectKey) -> Result<Arc<State>, CheckError> {
        if let Some(s) = self.states.borrow_mut().get(key) {
            return Ok(s);
        }
        let s = Arc::new(State(self.rebuild(key, None)?));
        self.states.borrow_mut().put(key.clone(), s.clone());
        Ok(s)
    }

    /// A subject's state as the world stood at event time `t`.
    pub(crate) fn state_at(&self, key: &SubjectKey, t: i64) -> Result<State, CheckError> {
        Ok(State(self.rebuild(key, Some(t))?))
    }

    fn rebuild(&self, key: &SubjectKey, valid_at: Option<i64>) -> Result<Value, CheckError> {
        let mut filters = Vec::new();
        if let Some(t) = &key.tenant {
            filters.push(("tenant".to_string(), t.clone()));
        }
        Ok(self.ledger.state(&StateQuery {
            subject: key.subject.clone(),
            scope: Some(key.scope.clone()),
            of_type: self
                .ledger
                .packs()
                .type_of_kind(&key.kind)
                .map(str::to_string),
            filters,
            as_of_size: Some(self.size),
            valid_at,
            sight: self.sight.clone(),
        })?)
    }
}
