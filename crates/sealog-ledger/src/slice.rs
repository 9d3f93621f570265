//! Export slices: which records a selection holds, in the order an export writes them, and
//! the signed checkpoint that proves them. The order is a pure function of the records —
//! (event time, subject, seq) — and the checkpoint is chosen from those stored, so the same
//! selection gives the same slice however much the log has grown since.
//!
//! What a record is found by is re-derived from its own bytes by [`locate`], the same
//! function the index keys come from, so an offline check of an export agrees with the
//! query that made it.

use sealog_merkle::note::Verifier;
use sealog_model::Envelope;
use sealog_model::record::{read_stored, read_stored_head};
use sealog_packs::{Packs, axes};

use crate::keys::Deriver;
use sealog_store::{LogRead, SignedCheckpoint, StoreError, open_checkpoint};

use crate::facts::Facts;
use crate::query::{self, Query, View};

/// An export's selection: the filters and view of a query (its paging fields are ignored),
/// where the log is cut, and which checkpoint proves it.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub query: Query,
    /// Cut the log at this tree size (records `0..as_of`).
    pub as_of: Option<u64>,
    /// The signed note of the checkpoint to prove against, instead of a stored one.
    pub checkpoint: Option<String>,
}

/// The records of a selection in export order, and what proves them.
#[derive(Debug, Clone)]
pub struct Slice {
    pub checkpoint: SignedCheckpoint,
    /// The log was cut here: every record in the slice has a seq below it.
    pub cut: u64,
    /// Seqs in export order: by (event time, subject, seq).
    pub order: Vec<u64>,
    /// The event types of its records, sorted.
    pub types: Vec<String>,
}

/// Records per page of the index walk: what a slice holds of records' bytes at a time
/// (a page being read, one waiting, one being keyed).
const PAGE: usize = 2048;

pub(crate) fn select(
    log: &dyn LogRead,
    packs: &Deriver,
    sel: &Selection,
) -> Result<Slice, StoreError> {
    let checkpoint = choose_checkpoint(log, sel)?;
    let cut = sel.as_of.unwrap_or(checkpoint.size);
    if cut > checkpoint.size {
        return Err(StoreError::InvalidArgument(format!(
            "--as-of {cut} is past the checkpoint's tree size {}",
            checkpoint.size
        )));
    }
    let mut q = Query {
        as_of_size: Some(cut),
        after: None,
        limit: PAGE,
        ingest_from: None,
        ingest_to: None,
        ..sel.query.clone()
    };
    // The index walk reads pages; a second thread reads each page's order keys while the
    // next page is read.
    let (keyed, types) = std::thread::scope(|scope| -> Result<_, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(u64, Vec<u8>)>>(1);
        let keys = scope.spawn(move || -> Result<_, StoreError> {
            // (event time, seq) only: 16 bytes a record. Subjects are read again for the
            // records that share an event time, the only ones they order.
            let mut keyed: Vec<(i64, u64)> = Vec::new();
            let mut types = std::collections::BTreeSet::new();
            for page in rx {
                for (seq, bytes) in &page {
                    let (time_ns, _, event_type) = order_key(packs, *seq, bytes)?;
                    if !types.contains(&event_type) {
                        types.insert(event_type);
                    }
                    keyed.push((time_ns, *seq));
                }
            }
            Ok((keyed, types))
        });
        let walked = (|| -> Result<(), StoreError> {
            loop {
                // Unchecked: every record kept is read again, and proven, as it is written.
                let page = query::canonical_reading(log, packs, &q, true)?;
                let next = page.next_after;
                if tx.send(page.records).is_err() {
                    return Ok(());
                }
                match next {
                    Some(a) => q.after = Some(a),
                    None => return Ok(()),
                }
            }
        })();
        drop(tx);
        let read = keys.join().expect("the order-key thread does not panic");
        walked?;
        read
    })?;
    let mut keyed = keyed;
    keyed.sort_unstable();
    order_ties_by_subject(log, packs, &mut keyed)?;
    Ok(Slice {
        checkpoint,
        cut,
        order: keyed.into_iter().map(|(_, seq)| seq).collect(),
        types: types.into_iter().collect(),
    })
}

/// Orders each run of records that share an event time by (subject, seq), reading their
/// subjects again: memory for subjects is that of the largest such run, not of the slice.
fn order_ties_by_subject(
    log: &dyn LogRead,
    packs: &Deriver,
    keyed: &mut [(i64, u64)],
) -> Result<(), StoreError> {
    let mut i = 0;
    while i < keyed.len() {
        let time = keyed[i].0;
        let j = i + keyed[i..].partition_point(|k| k.0 == time);
        if j - i > 1 {
            let mut run = Vec::with_capacity(j - i);
            for &(_, seq) in &keyed[i..j] {
                let bytes = log
                    .get(seq)?
                    .ok_or_else(|| StoreError::Corrupted(format!("record {seq} is gone")))?;
                run.push((order_key(packs, seq, &bytes)?.1, seq));
            }
            run.sort_unstable();
            for (slot, (_, seq)) in keyed[i..j].iter_mut().zip(run) {
                slot.1 = seq;
            }
        }
        i = j;
    }
    Ok(())
}

/// What a record is ordered by — event time, subject — and its type. Read from the few
/// members it takes; the whole event is parsed only when its pack derives the subject from
/// the body.
fn order_key(
    packs: &Deriver,
    seq: u64,
    bytes: &[u8],
) -> Result<(i64, Option<String>, String), StoreError> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        time: std::borrow::Cow<'a, str>,
        #[serde(borrow, rename = "type")]
        event_type: std::borrow::Cow<'a, str>,
        #[serde(borrow, default)]
        subject: Option<std::borrow::Cow<'a, str>>,
    }
    let head: Head<'_> = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupted(format!("record {seq}: {e}")))?;
    if head.subject.is_none() && packs.derives_subject(&head.event_type) {
        let f = Facts::of(packs, seq, bytes)?;
        return Ok((f.time_ns, f.subject, f.event_type));
    }
    let time_ns = sealog_model::time::parse_rfc3339(&head.time)
        .map_err(|e| StoreError::Corrupted(format!("record {seq}: time: {e}")))?;
    Ok((
        time_ns,
        head.subject.map(|s| s.into_owned()),
        head.event_type.into_owned(),
    ))
}

/// The one named (it must be this log's and agree with it), the oldest stored one that
/// covers the cut, or the newest (signed now if the log grew past it and this side may sign).
fn choose_checkpoint(log: &dyn LogRead, sel: &Selection) -> Result<SignedCheckpoint, StoreError> {
    if let Some(note) = &sel.checkpoint {
        let verifier = Verifier::parse(&log.verifier_key())
            .map_err(|e| StoreError::Corrupted(format!("this log's verifier key: {e}")))?;
        let cp = open_checkpoint(note, &verifier).map_err(|m| {
            StoreError::InvalidArgument(format!("the checkpoint given is not this log's: {m}"))
        })?;
        if cp.size > log.len() {
            return Err(StoreError::InvalidArgument(format!(
                "the checkpoint given has tree size {}, but the log holds {} records",
                cp.size,
                log.len()
            )));
        }
        if log.root(cp.size)? != cp.root {
            return Err(StoreError::Corrupted(format!(
                "the checkpoint given is signed by this log's key, but its root at size {} is not the log's: the log or the checkpoint was rewritten",
                cp.size
            )));
        }
        return Ok(cp);
    }
    if let Some(size) = sel.as_of {
        query::end_of(log, Some(size))?;
        if let Some(cp) = log.checkpoints()?.into_iter().find(|c| c.size >= size) {
            return Ok(cp);
        }
    }
    let cp = log.checkpoint()?;
    match sel.as_of {
        Some(size) if cp.size < size => Err(StoreError::InvalidArgument(format!(
            "no signed checkpoint covers tree size {size} yet (the newest is of {}); the process that writes the log signs one within a second of its next append",
            cp.size
        ))),
        _ => Ok(cp),
    }
}

/// What a stored record is found by, read from its bytes alone after checking them: that
/// they are the canonical record of their own event and that `record_id` is its hash.
#[derive(Debug, Clone)]
pub struct Located {
    pub seq: u64,
    pub record_id: String,
    pub id: String,
    pub event_type: String,
    pub source: String,
    pub time_ns: i64,
    pub ingested_ns: i64,
    pub tenant: Option<String>,
    pub scope: String,
    pub subject: Option<String>,
    /// What kind of resource the subject is (its pack and field; empty for a type no pack
    /// declares): a subject's records of one kind are one state.
    pub kind: String,
    pub data_subject: Option<String>,
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
    pub supersedes: Option<String>,
    /// The packs' axes as (name, value), sorted.
    pub axes: Vec<(String, String)>,
}

impl Located {
    /// Whether the record has `value` on `axis` (an envelope axis or a pack's): the pairs
    /// its index keys are made of.
    pub fn has(&self, axis: &str, value: &str) -> bool {
        let mut envelope = axes::envelope_axes_of(
            &self.scope,
            self.tenant.as_deref(),
            self.subject.as_deref(),
            self.data_subject.as_deref(),
            &self.event_type,
            &self.source,
            self.actor_id.as_deref(),
            &self.id,
        );
        envelope.any(|(a, v)| a == axis && v == value)
            || self.axes.iter().any(|(a, v)| a == axis && v == value)
    }
}

/// Reads a record back as [`Located`]; an error says why its bytes are not a sound record.
pub fn locate(packs: &Packs, bytes: &[u8]) -> Result<Located, String> {
    read_stored(bytes, |s| {
        let env = s.envelope;
        let mut derived = packs.derive(s.record, env);
        // Offline: a sealed data subject names its own pseudonym, as the index has it.
        crate::privacy::key_derived(None, &mut derived, packs.personal_axes(), None);
        let own = |v: Option<&str>| v.map(str::to_string);
        let subject = own(env.subject).or_else(|| derived.subject.clone());
        let scope = derived
            .scope
            .clone()
            .unwrap_or_else(|| env.default_scope().to_string());
        let supersedes = env.supersedes.map(str::to_string).or(derived.supersedes);
        Located {
            seq: s.seq,
            record_id: s.record_id.to_string(),
            id: env.id.to_string(),
            event_type: env.event_type.to_string(),
            source: env.source.to_string(),
            time_ns: env.time_nanos,
            ingested_ns: s.ingested_ns,
            tenant: own(env.tenant),
            scope,
            subject,
            kind: derived.kind.as_deref().unwrap_or("").to_string(),
            data_subject: derived.data_subject,
            actor_type: own(env.actor_type),
            actor_id: own(env.actor_id),
            supersedes,
            axes: derived.axes,
        }
    })
}

/// Whether a located record satisfies a selection's filters as far as the record itself
/// can tell: axes, the event-time window, the cut and, in the history view, `valid_at`.
/// What depends on other records (that nothing supersedes a current-view record, where a
/// correction's chain starts) is not decidable from the record alone.
pub fn satisfies(r: &Located, q: &Query, cut: u64) -> Result<(), String> {
    if let Some((a, v)) = q.equals.iter().find(|(a, v)| !r.has(a, v)) {
        return Err(format!("it does not have {a} = {v:?}"));
    }
    within(r.seq, r.time_ns, q, cut)
}

/// The filters that need no axis: the cut, the event-time window and `valid_at`.
fn within(seq: u64, time_ns: i64, q: &Query, cut: u64) -> Result<(), String> {
    if seq >= cut {
        return Err(format!("seq {seq} is not below the cut {cut}"));
    }
    if q.event_from.is_some_and(|f| time_ns < f) || q.event_to.is_some_and(|t| time_ns >= t) {
        return Err("its event time is outside the window".into());
    }
    if q.view == View::History && q.valid_at.is_some_and(|t| time_ns > t) {
        return Err("its event time is after valid_at".into());
    }
    Ok(())
}

/// A record's place in an export's order, once read as [`locate`] reads it and checked as
/// [`satisfies`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub seq: u64,
    pub time_ns: i64,
    pub subject: Option<String>,
    pub event_type: String,
}

/// Why a record has no place: its bytes are not a sound record, or it is outside the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    Unsound(String),
    Outside { seq: u64, why: String },
}

/// [`locate`] then [`satisfies`], keeping only the record's place. Every byte is checked all
/// the same, but the body is built only when something depends on what the packs derive from
/// it: a filter on an axis the envelope alone does not give, or a subject it does not give.
pub fn place(packs: &Packs, bytes: &[u8], q: &Query, cut: u64) -> Result<Placed, Unplaced> {
    let from_head = read_stored_head(bytes, |s| {
        let env = s.envelope;
        if env.subject.is_none() && packs.derives_subject(env.event_type) {
            return None;
        }
        let mut missing = None;
        for (a, v) in &q.equals {
            match envelope_value(env, a) {
                None => return None,
                Some(got) if got != Some(v.as_str()) && missing.is_none() => {
                    missing = Some(format!("it does not have {a} = {v:?}"));
                }
                Some(_) => {}
            }
        }
        let placed = Placed {
            seq: s.seq,
            time_ns: env.time_nanos,
            subject: env.subject.map(str::to_string),
            event_type: env.event_type.to_string(),
        };
        Some((placed, missing))
    })
    .map_err(Unplaced::Unsound)?;
    let (placed, missing) = match from_head {
        Some(found) => found,
        None => {
            let r = locate(packs, bytes).map_err(Unplaced::Unsound)?;
            let missing = q
                .equals
                .iter()
                .find(|(a, v)| !r.has(a, v))
                .map(|(a, v)| format!("it does not have {a} = {v:?}"));
            let placed = Placed {
                seq: r.seq,
                time_ns: r.time_ns,
                subject: r.subject,
                event_type: r.event_type,
            };
            (placed, missing)
        }
    };
    if let Some(why) = missing {
        return Err(Unplaced::Outside {
            seq: placed.seq,
            why,
        });
    }
    within(placed.seq, placed.time_ns, q, cut).map_err(|why| Unplaced::Outside {
        seq: placed.seq,
        why,
    })?;
    Ok(placed)
}

/// An axis's value on a record when its envelope alone gives it; `None` for the axes the
/// packs may derive from the body (scope, data subject, a subject the envelope lacks, and
/// every pack axis).
fn envelope_value<'a>(env: &Envelope<'a>, axis: &str) -> Option<Option<&'a str>> {
    match axis {
        "tenant" => Some(env.tenant),
        "type" => Some(Some(env.event_type)),
        "source" => Some(Some(env.source)),
        "actor" => Some(env.actor_id),
        "id" => Some(Some(env.id)),
        "subject" if env.subject.is_some() => Some(env.subject),
        _ => None,
    }
}
