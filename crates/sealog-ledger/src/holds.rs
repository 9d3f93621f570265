//! Legal holds (PRODUCT §8): a tenant or a data subject kept from erasure (and, once it
//! exists, from retention) while a matter is open. Holds are records — `audit.hold_placed`,
//! `audit.hold_released` — so which holds stood when is in the log itself; the holds in
//! force are read back from it, never kept anywhere else.

use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::own::Act;
use crate::{Error, Ledger};

pub const HOLD_PLACED_TYPE: &str = "audit.hold_placed";
pub const HOLD_RELEASED_TYPE: &str = "audit.hold_released";

/// What a hold covers: a whole tenant, or a data subject (in one tenant or all).
#[derive(Debug, Clone, Default)]
pub struct HoldScope<'a> {
    pub tenant: Option<&'a str>,
    /// As producers name them, or their pseudonym.
    pub data_subject: Option<&'a str>,
}

/// Who asks, why, when: what every hold record carries.
#[derive(Debug, Clone)]
pub struct HoldAct<'a> {
    pub reason: &'a str,
    pub act: Act<'a>,
}

/// A hold as its records state it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub hold_id: String,
    pub tenant: Option<String>,
    pub data_subject_pseudonym: Option<String>,
    pub reason: String,
    pub placed_seq: u64,
    pub placed_at: String,
    /// The seq of its release, when released.
    pub released_seq: Option<u64>,
}

impl Hold {
    /// Whether it keeps the data subject `ps` in any of `tenants` from erasure.
    pub(crate) fn covers(&self, tenants: &[String], ps: &str) -> bool {
        let tenant_ok = self.tenant.as_ref().is_none_or(|t| tenants.contains(t));
        let subject_ok = self
            .data_subject_pseudonym
            .as_deref()
            .is_none_or(|p| p == ps);
        tenant_ok && subject_ok
    }
}

#[derive(Debug)]
pub enum HoldError {
    /// Neither or both of tenant / data subject, or an empty reason.
    Invalid(String),
    /// No hold in force matches.
    NotFound(String),
    Refused(String),
    Store(Error),
}

impl fmt::Display for HoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldError::Invalid(m) | HoldError::NotFound(m) => f.write_str(m),
            HoldError::Refused(m) => write!(f, "the hold record was refused: {m}"),
            HoldError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for HoldError {}

impl From<Error> for HoldError {
    fn from(e: Error) -> Self {
        HoldError::Store(e)
    }
}

impl Ledger {
    /// Places a hold; answers it as recorded.
    pub fn place_hold(&self, scope: &HoldScope<'_>, act: &HoldAct<'_>) -> Result<Hold, HoldError> {
        if act.reason.trim().is_empty() {
            return Err(HoldError::Invalid("a hold needs a reason".into()));
        }
        if scope.tenant.is_none() && scope.data_subject.is_none() {
            return Err(HoldError::Invalid(
                "a hold covers a tenant or a data subject: name one".into(),
            ));
        }
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw)
            .map_err(|e| HoldError::Store(Error::Poisoned(format!("no randomness: {e}"))))?;
        let hold_id = format!("hold_{}", hex::encode(raw));
        let ps = scope.data_subject.map(|s| self.pseudonym(s));
        let _governing = self.governing()?;
        let data = json!({
            "hold_id": hold_id,
            "tenant": scope.tenant,
            "data_subject_pseudonym": ps,
            "reason": act.reason,
        });
        let seq = self.record_hold(
            format!("hold-placed:{hold_id}"),
            HOLD_PLACED_TYPE,
            act,
            scope.tenant,
            data,
        )?;
        Ok(Hold {
            hold_id,
            tenant: scope.tenant.map(str::to_string),
            data_subject_pseudonym: ps,
            reason: act.reason.to_string(),
            placed_seq: seq,
            placed_at: act.act.time.clone(),
            released_seq: None,
        })
    }

    /// Releases the holds in force with id `hold_id`, or else those on exactly `scope`.
    pub fn release_holds(
        &self,
        hold_id: Option<&str>,
        scope: &HoldScope<'_>,
        act: &HoldAct<'_>,
    ) -> Result<Vec<Hold>, HoldError> {
        if act.reason.trim().is_empty() {
            return Err(HoldError::Invalid("a release needs a reason".into()));
        }
        let ps = scope.data_subject.map(|s| self.pseudonym(s));
        let _governing = self.governing()?;
        let wanted: Vec<Hold> = self
            .holds(false)?
            .into_iter()
            .filter(|h| match hold_id {
                Some(id) => h.hold_id == id,
                None => {
                    h.tenant.as_deref() == scope.tenant
                        && h.data_subject_pseudonym.as_deref() == ps.as_deref()
                }
            })
            .collect();
        if wanted.is_empty() {
            return Err(HoldError::NotFound(
                "no hold in force matches: nothing was released".into(),
            ));
        }
        let mut released = Vec::with_capacity(wanted.len());
        for mut h in wanted {
            let data = json!({
                "hold_id": h.hold_id,
                "tenant": h.tenant,
                "data_subject_pseudonym": h.data_subject_pseudonym,
                "reason": act.reason,
            });
            let id = format!("hold-released:{}", h.hold_id);
            let tenant = h.tenant.clone();
            h.released_seq =
                Some(self.record_hold(id, HOLD_RELEASED_TYPE, act, tenant.as_deref(), data)?);
            released.push(h);
        }
        Ok(released)
    }

    /// Every hold, oldest first; only those in force unless `all`.
    pub fn holds(&self, all: bool) -> Result<Vec<Hold>, Error> {
        let mut released = std::collections::HashMap::new();
        for (seq, v) in self.records_of(HOLD_RELEASED_TYPE)? {
            if let Some(id) = v["data"]["hold_id"].as_str() {
                released.insert(id.to_string(), seq);
            }
        }
        let mut out = Vec::new();
        for (seq, v) in self.records_of(HOLD_PLACED_TYPE)? {
            let d = &v["data"];
            let Some(id) = d["hold_id"].as_str() else {
                continue;
            };
            let hold = Hold {
                hold_id: id.to_string(),
                tenant: d["tenant"].as_str().map(str::to_string),
                data_subject_pseudonym: d["data_subject_pseudonym"].as_str().map(str::to_string),
                reason: d["reason"].as_str().unwrap_or_default().to_string(),
                placed_seq: seq,
                placed_at: v["time"].as_str().unwrap_or_default().to_string(),
                released_seq: released.get(id).copied(),
            };
            if all || hold.released_seq.is_none() {
                out.push(hold);
            }
        }
        Ok(out)
    }

    /// The first hold in force that keeps `ps` in any of `tenants` from erasure.
    pub(crate) fn hold_on(&self, tenants: &[String], ps: &str) -> Result<Option<Hold>, Error> {
        Ok(self
            .holds(false)?
            .into_iter()
            .find(|h| h.covers(tenants, ps)))
    }

    fn record_hold(
        &self,
        id: String,
        event_type: &str,
        act: &HoldAct<'_>,
        tenant: Option<&str>,
        data: Value,
    ) -> Result<u64, HoldError> {
        let appended = self.append_own(id, event_type, &act.act, tenant, data)?;
        appended.map(|(seq, _)| seq).map_err(HoldError::Refused)
    }
}
