//! What a view needs of a stored record besides its bytes: its event time, the record it
//! corrects, and the moment its supersedes chain speaks for. A correction restates what its
//! target should have said, so on the event-time clock it counts from its target's time, back
//! to the first record of the chain.

use crate::keys::Deriver;
use sealog_model::json::Json;
use sealog_model::{Envelope, RecordId};
use sealog_store::{LogRead, StoreError};

pub(crate) struct Facts {
    pub(crate) record_id: RecordId,
    pub(crate) time_ns: i64,
    pub(crate) event_type: String,
    pub(crate) tenant: Option<String>,
    pub(crate) subject: Option<String>,
    /// What kind of resource the subject is ([`sealog_packs::Derived::kind`]).
    pub(crate) kind: Option<std::sync::Arc<str>>,
    pub(crate) data_subject: Option<String>,
    pub(crate) scope: String,
    pub(crate) supersedes: Option<RecordId>,
}

fn corrupted(seq: u64, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupted(format!("record {seq}: {why}"))
}

impl Facts {
    pub(crate) fn of(packs: &Deriver, seq: u64, bytes: &[u8]) -> Result<Self, StoreError> {
        let json = Json::parse(bytes).map_err(|e| corrupted(seq, e))?;
        let env = Envelope::parse_object(&json, false).map_err(|e| corrupted(seq, e))?;
        let record_id = json
            .get("record_id")
            .and_then(Json::as_str)
            .and_then(RecordId::parse)
            .ok_or_else(|| corrupted(seq, "no readable record_id"))?;
        let derived = packs.derive(&json, &env);
        Ok(Facts {
            record_id,
            time_ns: env.time_nanos,
            event_type: env.event_type.to_string(),
            tenant: env.tenant.map(str::to_string),
            subject: env.subject.map(str::to_string).or(derived.subject),
            kind: derived.kind,
            data_subject: derived.data_subject,
            scope: derived
                .scope
                .unwrap_or_else(|| env.default_scope().to_string()),
            supersedes: env
                .supersedes
                .or(derived.supersedes.as_deref())
                .and_then(RecordId::parse),
        })
    }
}

/// Where a record's chain starts, on the event-time clock: the event time and seq of its
/// first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChainStart {
    pub(crate) time_ns: i64,
    /// Breaks ties between chains that start at one time: a correction takes its chain's
    /// first place, as it replaces its target there.
    pub(crate) seq: u64,
}

/// Where the chain of the record at `seq` starts: the record itself, or, for a correction,
/// its target's chain start. Targets precede their corrections in the log, so the walk ends.
pub(crate) fn chain_start(
    log: &dyn LogRead,
    packs: &Deriver,
    seq: u64,
    facts: &Facts,
) -> Result<ChainStart, StoreError> {
    let mut start = ChainStart {
        time_ns: facts.time_ns,
        seq,
    };
    let mut target = facts.supersedes;
    let mut below = u64::MAX;
    while let Some(id) = target {
        let seq = log.seq_of(&id.0)?.ok_or_else(|| {
            StoreError::Corrupted(format!(
                "{} corrects {id}, which is not in the log",
                facts.record_id
            ))
        })?;
        if seq >= below {
            return Err(corrupted(
                seq,
                "a supersedes chain that does not go back in the log",
            ));
        }
        below = seq;
        let bytes = match log.get(seq) {
            // A pruned target's stub keeps its event time and the link to its own target.
            Err(StoreError::Pruned(stub)) => {
                start = ChainStart {
                    time_ns: stub.event_ns,
                    seq,
                };
                target = stub.link.map(RecordId);
                continue;
            }
            other => other?.ok_or_else(|| corrupted(seq, "indexed but not readable"))?,
        };
        let f = Facts::of(packs, seq, &bytes)?;
        start = ChainStart {
            time_ns: f.time_ns,
            seq,
        };
        target = f.supersedes;
    }
    Ok(start)
}
