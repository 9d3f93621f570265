//! Retention (PRODUCT §8; seed 003 INV-C005-06): each type's records are kept for the period
//! its pack declares (seven years by default), measured by ingest time; quarantine records by
//! their pack's quarantine retention. Applying it is explicit: an `audit.retention_applied`
//! record names every pruned seq (as ranges) and a digest of what their stubs keep, it is
//! signed under a checkpoint, and only then are the records replaced by stubs. Records a
//! legal hold covers are skipped. A crash after the record is finished on the next opening.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_model::time::format_micros;
use sealog_store::{LIMIT_MAX, LogRead, Prune, Scan, StoreError};

use crate::facts::Facts;
use crate::holds::Hold;
use crate::own::Act;
use crate::{Error, Ledger};

pub const RETENTION_APPLIED_TYPE: &str = "audit.retention_applied";

/// What is due in one log for one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Due {
    /// `canonical` or `quarantine`.
    pub log: &'static str,
    pub event_type: String,
    pub retention: String,
    /// Records past their retention that will be (or were) pruned.
    pub records: u64,
    /// Records past their retention that a legal hold keeps.
    pub held: u64,
    pub oldest_ingested_at: String,
}

/// What retention finds due at `now`, and what an application did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub now: String,
    pub dry_run: bool,
    pub due: Vec<Due>,
    /// Canonical records pruned (or, in a dry run, that would be).
    pub pruned: u64,
    pub quarantine_pruned: u64,
    pub held: u64,
    pub payloads_deleted: u64,
    /// The `audit.retention_applied` record, once appended.
    pub seq: Option<u64>,
    pub record_id: Option<String>,
    /// More is due than one application prunes (its record would list too many ranges):
    /// apply again for the rest.
    pub more: bool,
}

/// The records of one log that are due and not held.
#[derive(Default)]
struct Plan {
    prune: Vec<Prune>,
    /// What the stubs of `prune` will keep besides the prune's own link and key, in its
    /// order, for the digest.
    stamps: Vec<Stamp>,
    payloads: Vec<String>,
    due: BTreeMap<String, Due>,
    held: u64,
    /// Runs of consecutive seqs in `prune`: what the retention record lists.
    ranges: usize,
    /// Due records left for the next application, past `RANGES_MAX`.
    more: bool,
}

/// Seq ranges one application prunes in each log at most: the retention record lists them,
/// and an event is at most 1 MiB (records due interleaved with held ones make many ranges).
const RANGES_MAX: usize = 16_384;

impl Plan {
    /// Takes a due record unless its range would pass `RANGES_MAX`.
    fn take(&mut self, p: Prune, stamp: Stamp, payload: Option<&str>) {
        let new_range = self.prune.last().is_none_or(|l| l.seq + 1 != p.seq);
        if new_range && self.ranges == RANGES_MAX {
            self.more = true;
            return;
        }
        self.ranges += usize::from(new_range);
        self.prune.push(p);
        self.stamps.push(stamp);
        self.payloads.extend(payload.map(str::to_string));
    }

    fn note(&mut self, log: &'static str, ty: &str, retention: &str, ingested_ns: i64, held: bool) {
        let d = self.due.entry(ty.to_string()).or_insert_with(|| Due {
            log,
            event_type: ty.to_string(),
            retention: retention.to_string(),
            records: 0,
            held: 0,
            oldest_ingested_at: format_micros(ingested_ns),
        });
        if held {
            d.held += 1;
            self.held += 1;
        } else {
            d.records += 1;
        }
    }

    fn digest(&self) -> String {
        stubs_digest(self.prune.iter().zip(&self.stamps).map(|(p, s)| Kept {
            seq: p.seq,
            id: s.id,
            ingested_ns: s.ingested_ns,
            event_ns: s.event_ns,
            link: p.link,
            key: p.key,
        }))
    }
}

/// What a pruned record's stub keeps of it that its prune does not say.
struct Stamp {
    id: [u8; 32],
    ingested_ns: i64,
    event_ns: i64,
}

/// What a stub keeps of its record besides its leaf, which the tree vouches for.
pub(crate) struct Kept {
    pub seq: u64,
    pub id: [u8; 32],
    pub ingested_ns: i64,
    pub event_ns: i64,
    pub link: Option<[u8; 32]>,
    pub key: Option<[u8; 16]>,
}

/// The digest an `audit.retention_applied` record keeps of its stubs: for each pruned record
/// in seq order, everything its stub keeps but the leaf (`verify` recomputes it from the
/// stubs). The times are in it because the time indexes are rebuilt from them.
pub(crate) fn stubs_digest(stubs: impl Iterator<Item = Kept>) -> String {
    let mut h = Sha256::new();
    for Kept {
        seq,
        id,
        ingested_ns,
        event_ns,
        link,
        key,
    } in stubs
    {
        h.update(seq.to_le_bytes());
        h.update(id);
        h.update(ingested_ns.to_le_bytes());
        h.update(event_ns.to_le_bytes());
        h.update([u8::from(link.is_some())]);
        h.update(link.unwrap_or([0; 32]));
        h.update([u8::from(key.is_some())]);
        h.update(key.unwrap_or([0; 16]));
    }
    hex::encode(h.finalize())
}

/// Sorted seqs as `[from, to)` ranges.
pub(crate) fn ranges(seqs: impl Iterator<Item = u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some(r) if r[1] == s => r[1] = s + 1,
            _ => out.push([s, s + 1]),
        }
    }
    out
}

/// The seqs of `[from, to)` ranges as a record states them.
pub(crate) fn seqs_of(ranges: &Value) -> Vec<u64> {
    ranges
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?)))
        .flat_map(|(a, b)| a..b)
        .collect()
}

fn held_by(holds: &[Hold], tenant: Option<&str>, ps: Option<&str>) -> bool {
    let tenants = [tenant.unwrap_or("").to_string()];
    holds.iter().any(|h| {
        // A hold on a data subject covers only records of that subject.
        (h.data_subject_pseudonym.is_none() || ps.is_some()) && h.covers(&tenants, ps.unwrap_or(""))
    })
}

/// Every record of `log` ingested before `before`, page by page.
fn for_each_older(
    log: &dyn LogRead,
    before: i64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut scan = Scan {
        ingest_to: Some(before),
        limit: LIMIT_MAX,
        ..Scan::default()
    };
    loop {
        let page = log.scan(&scan)?;
        for (seq, bytes) in &page.records {
            f(*seq, bytes)?;
        }
        match page.next_after {
            Some(a) => scan.after = Some(a),
            None => return Ok(()),
        }
    }
}

/// A record's id and the two times its stub will keep.
fn stamp(seq: u64, bytes: &[u8]) -> Result<Stamp, Error> {
    sealog_model::record::read_stored(bytes, |s| Stamp {
        id: s.record_id.0,
        ingested_ns: s.ingested_ns,
        event_ns: s.envelope.time_nanos,
    })
    .map_err(|e| StoreError::Corrupted(format!("record {seq}: {e}")))
}

impl Ledger {
    /// What is due at `now` (ns since the epoch), without changing anything.
    pub fn retention_status(&self, now: i64) -> Result<RetentionReport, Error> {
        let (canonical, quarantine) = self.retention_plan(now)?;
        Ok(report(now, true, &canonical, &quarantine))
    }

    /// Prunes what is due at `now`: appends the `audit.retention_applied` record, signs a
    /// checkpoint over it, deletes the payloads of the quarantine records it prunes, then
    /// rewrites the segments. A dry run only reports.
    pub fn apply_retention(
        &self,
        now: i64,
        dry_run: bool,
        act: &Act<'_>,
    ) -> Result<RetentionReport, Error> {
        let _governing = (!dry_run).then(|| self.governing()).transpose()?;
        let (canonical, quarantine) = self.retention_plan(now)?;
        let mut out = report(now, dry_run, &canonical, &quarantine);
        if dry_run {
            return Ok(out);
        }
        let mut policy = serde_json::Map::new();
        for d in canonical.due.values().chain(quarantine.due.values()) {
            let key = match d.log {
                "quarantine" => format!("quarantine:{}", d.event_type),
                _ => d.event_type.clone(),
            };
            policy.insert(key, json!(d.retention));
        }
        let digest = canonical.digest();
        let data = json!({
            "now": out.now,
            "policy": policy,
            "ranges": ranges(canonical.prune.iter().map(|p| p.seq)),
            "pruned": canonical.prune.len(),
            "stubs_sha256": digest,
            "held": canonical.held + quarantine.held,
            "quarantine": {
                "ranges": ranges(quarantine.prune.iter().map(|p| p.seq)),
                "pruned": quarantine.prune.len(),
                "stubs_sha256": quarantine.digest(),
                "payloads_deleted": quarantine.payloads.len(),
            },
        });
        let (seq, record_id) = self
            .append_own(
                format!("retention:{}:{digest}", out.now),
                RETENTION_APPLIED_TYPE,
                act,
                None,
                data,
            )?
            .map_err(|why| {
                StoreError::Corrupted(format!("the retention record was refused: {why}"))
            })?;
        self.canonical.checkpoint()?;
        // The payloads go before their records: a quarantine record that names a payload
        // which is gone is sound once a signed retention record prunes it, while a payload
        // no record names any more could not be found to be deleted.
        self.payloads.remove(&quarantine.payloads)?;
        self.canonical.prune(&canonical.prune)?;
        self.quarantine.prune(&quarantine.prune)?;
        metrics::counter!("sealog_retention_pruned_total")
            .increment(canonical.prune.len() as u64 + quarantine.prune.len() as u64);
        out.seq = Some(seq);
        out.record_id = Some(record_id.to_string());
        Ok(out)
    }

    fn retention_plan(&self, now: i64) -> Result<(Plan, Plan), Error> {
        let holds = self.holds(false)?;
        let packs = self.packs();
        // The shortest retention bounds what can be due: only records older are read.
        let latest_cutoff = |quarantine: bool| {
            packs
                .retention_policy()
                .values()
                .map(|(c, q)| if quarantine { q } else { c })
                .chain([&sealog_packs::Retention::default_period()])
                .filter_map(|r| r.cutoff(now))
                .max()
        };
        let mut canonical = Plan::default();
        if let Some(before) = latest_cutoff(false) {
            for_each_older(&*self.canonical, before, |seq, bytes| {
                let facts = Facts::of(&self.deriver, seq, bytes)?;
                let retention = packs.retention(&facts.event_type);
                let stamp = stamp(seq, bytes)?;
                let ingested = stamp.ingested_ns;
                if retention.cutoff(now).is_none_or(|c| ingested >= c) {
                    return Ok(());
                }
                let held = held_by(
                    &holds,
                    facts.tenant.as_deref(),
                    facts.data_subject.as_deref(),
                );
                canonical.note(
                    "canonical",
                    &facts.event_type,
                    retention.text(),
                    ingested,
                    held,
                );
                if !held {
                    canonical.take(pruned(seq, &facts), stamp, None);
                }
                Ok(())
            })?;
        }
        let mut quarantine = Plan::default();
        if let Some(before) = latest_cutoff(true) {
            for_each_older(&*self.quarantine, before, |seq, bytes| {
                let v: Value = serde_json::from_slice(bytes)
                    .map_err(|e| StoreError::Corrupted(format!("quarantine record {seq}: {e}")))?;
                let ty = v["data"]["event_type"].as_str().unwrap_or("");
                let retention = packs.quarantine_retention(ty);
                let stamp = stamp(seq, bytes)?;
                let ingested = stamp.ingested_ns;
                if retention.cutoff(now).is_none_or(|c| ingested >= c) {
                    return Ok(());
                }
                let ps = v["data"]["data_subject_pseudonym"].as_str();
                let held = held_by(&holds, v["tenant"].as_str(), ps);
                quarantine.note("quarantine", ty, retention.text(), ingested, held);
                if !held {
                    quarantine.take(unlinked(seq), stamp, v["data"]["payload_ref"].as_str());
                }
                Ok(())
            })?;
        }
        Ok((canonical, quarantine))
    }

    /// Whether the newest retention record prunes quarantine record `seq` (whose payload it
    /// deleted first).
    pub(crate) fn retention_prunes_quarantine(&self, seq: u64) -> Result<bool, Error> {
        Ok(self
            .records_of(RETENTION_APPLIED_TYPE)?
            .last()
            .is_some_and(|(_, v)| seqs_of(&v["data"]["quarantine"]["ranges"]).contains(&seq)))
    }

    /// Finishes the newest retention application if a crash came between its record and its
    /// rewrite: the seqs it names that are still records are pruned now.
    pub(crate) fn finish_retention(&self) -> Result<(), Error> {
        let Some((_, newest)) = self.records_of(RETENTION_APPLIED_TYPE)?.pop() else {
            return Ok(());
        };
        let data = &newest["data"];
        let canonical = seqs_of(&data["ranges"]);
        let unfinished = |log: &dyn LogRead, seqs: &[u64]| -> Result<bool, Error> {
            match seqs.last().map(|&s| log.get(s)) {
                None | Some(Err(StoreError::Pruned(_))) => Ok(false),
                Some(Ok(_)) => Ok(true),
                Some(Err(e)) => Err(e),
            }
        };
        if unfinished(&*self.canonical, &canonical)? {
            let mut prune = Vec::with_capacity(canonical.len());
            for &seq in &canonical {
                match self.canonical.get(seq) {
                    Ok(Some(bytes)) => {
                        let facts = Facts::of(&self.deriver, seq, &bytes)?;
                        prune.push(pruned(seq, &facts));
                    }
                    Ok(None) | Err(StoreError::Pruned(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.canonical.prune(&prune)?;
        }
        let quarantine = seqs_of(&data["quarantine"]["ranges"]);
        if unfinished(&*self.quarantine, &quarantine)? {
            let mut payloads = Vec::new();
            for &seq in &quarantine {
                if let Ok(Some(bytes)) = self.quarantine.get(seq)
                    && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                    && let Some(r) = v["data"]["payload_ref"].as_str()
                {
                    payloads.push(r.to_string());
                }
            }
            self.payloads.remove(&payloads)?;
            let prune: Vec<Prune> = quarantine.iter().map(|&s| unlinked(s)).collect();
            self.quarantine.prune(&prune)?;
        }
        Ok(())
    }
}

/// What a pruned canonical record's stub keeps: the record it corrects, and its supersedes
/// chain, so a later correction of it is still judged in its chain.
fn pruned(seq: u64, facts: &Facts) -> Prune {
    Prune {
        seq,
        link: facts.supersedes.map(|r| r.0),
        key: facts
            .subject
            .as_deref()
            .map(|s| crate::keys::chain(facts.tenant.as_deref(), &facts.scope, s)),
    }
}

/// A pruned quarantine record's stub keeps nothing of its caller's.
fn unlinked(seq: u64) -> Prune {
    Prune {
        seq,
        link: None,
        key: None,
    }
}

fn report(now: i64, dry_run: bool, canonical: &Plan, quarantine: &Plan) -> RetentionReport {
    RetentionReport {
        now: format_micros(now),
        dry_run,
        due: canonical
            .due
            .values()
            .chain(quarantine.due.values())
            .cloned()
            .collect(),
        pruned: canonical.prune.len() as u64,
        quarantine_pruned: quarantine.prune.len() as u64,
        held: canonical.held + quarantine.held,
        payloads_deleted: quarantine.payloads.len() as u64,
        seq: None,
        record_id: None,
        more: canonical.more || quarantine.more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> Stamp {
        Stamp {
            id: [0; 32],
            ingested_ns: 0,
            event_ns: 0,
        }
    }

    #[test]
    fn one_application_lists_at_most_ranges_max_ranges() {
        let mut plan = Plan::default();
        // Every other seq due: each its own range.
        for seq in (0..2 * RANGES_MAX as u64 + 10).step_by(2) {
            plan.take(super::unlinked(seq), blank(), Some("p"));
        }
        assert_eq!(
            (plan.prune.len(), plan.ranges, plan.more),
            (RANGES_MAX, RANGES_MAX, true)
        );
        assert_eq!(ranges(plan.prune.iter().map(|p| p.seq)).len(), RANGES_MAX);
        assert_eq!(plan.payloads.len(), RANGES_MAX);
        // A seq that extends the last range is still taken.
        let last = plan.prune.last().unwrap().seq;
        plan.take(super::unlinked(last + 1), blank(), None);
        assert_eq!(plan.prune.len(), RANGES_MAX + 1);
        let data = json!({"ranges": ranges(plan.prune.iter().map(|p| p.seq))});
        assert!(
            data.to_string().len() < 512 << 10,
            "the list fits a record twice over"
        );
    }

    #[test]
    fn seqs_compress_to_ranges_and_back() {
        let seqs = [0u64, 1, 2, 5, 7, 8];
        let r = ranges(seqs.iter().copied());
        assert_eq!(r, [[0, 3], [5, 6], [7, 9]]);
        assert_eq!(seqs_of(&json!(r)), seqs);
        assert!(ranges(std::iter::empty()).is_empty());
    }
}
