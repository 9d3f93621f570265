//! Sealog's own records of what someone asked of the ledger (an erasure, a hold): the same
//! envelope for each — who, when, from which tool, in which tenant — appended and durable
//! before the act they record takes effect.

use serde_json::{Value, json};

use sealog_store::LIMIT_MAX;

use crate::{Author, Error, IngestResult, Ledger, Query, RecordId};

/// One of Sealog's own records appended, or why its pack refused it.
pub type OwnResult = Result<(u64, RecordId), String>;

/// Who asked, when, and through what.
#[derive(Debug, Clone)]
pub struct Act<'a> {
    /// The record's `actor` (`{"type", "id"}`).
    pub actor: Value,
    /// RFC 3339: the record's `time`.
    pub time: String,
    /// The record's `source` (`sealog-cli`, `sealog-server`).
    pub source: &'a str,
}

impl Ledger {
    /// Appends one of Sealog's own records and waits until it is durable; `Err(why)` inside
    /// when its pack refused it.
    pub fn append_own(
        &self,
        id: String,
        event_type: &str,
        act: &Act<'_>,
        tenant: Option<&str>,
        data: Value,
    ) -> Result<OwnResult, Error> {
        Ok(self
            .append_own_many(
                act,
                vec![(id, event_type.to_string(), tenant.map(str::to_string), data)],
            )?
            .pop()
            .expect("one result per event"))
    }

    /// Appends several of Sealog's own records (id, type, tenant, data) by one act in one
    /// group, and waits until they are durable: one result each, in order.
    pub fn append_own_many(
        &self,
        act: &Act<'_>,
        records: Vec<(String, String, Option<String>, Value)>,
    ) -> Result<Vec<OwnResult>, Error> {
        let prepared = records
            .into_iter()
            .map(|(id, event_type, tenant, data)| {
                let event = own_event(act, &id, &event_type, tenant.as_deref(), data);
                self.prepare_value(&event, &Author::Sealog)
            })
            .collect();
        Ok(self
            .commit(prepared)?
            .into_iter()
            .map(|r| match r {
                IngestResult::Appended { seq, record_id }
                | IngestResult::Duplicate { seq, record_id } => Ok((seq, record_id)),
                other => Err(other.to_json().to_string()),
            })
            .collect())
    }

    /// Every record of one of Sealog's own types, oldest first, parsed.
    pub(crate) fn records_of(&self, event_type: &str) -> Result<Vec<(u64, Value)>, Error> {
        self.records_where(vec![("type".into(), event_type.into())])
    }

    /// Every record matching `equals`, oldest first, parsed: for Sealog's own records,
    /// which are few beside the log (holds, erasures, checks and their conflicts).
    pub fn records_where(&self, equals: Vec<(String, String)>) -> Result<Vec<(u64, Value)>, Error> {
        let mut q = Query {
            equals,
            limit: LIMIT_MAX,
            ..Query::default()
        };
        let mut out = Vec::new();
        loop {
            let page = crate::query::canonical(&*self.canonical, &self.deriver, &q)?;
            for (seq, bytes) in page.records {
                let v = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupted(format!("record {seq}: {e}")))?;
                out.push((seq, v));
            }
            match page.next_after {
                Some(a) => q.after = Some(a),
                None => return Ok(out),
            }
        }
    }
}

/// The event one of Sealog's own records is made of, by `act`.
pub(crate) fn own_event(
    act: &Act<'_>,
    id: &str,
    event_type: &str,
    tenant: Option<&str>,
    data: Value,
) -> Value {
    let mut event = json!({
        "specversion": "1.0",
        "id": id,
        "source": act.source,
        "type": event_type,
        "time": act.time,
        "actor": act.actor,
        "data": data,
    });
    if let Some(t) = tenant {
        event["tenant"] = json!(t);
    }
    event
}
