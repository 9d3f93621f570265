//! Retention (PRODUCT §8; seed 003 INV-C005-06): each type's records are kept for the period
//! its pack declares (seven years by default), measured by ingest time; quarantine records by
//! their pack's quarantine retention. Applying it is explicit: an `audit.retention_applied`
//! record names every pruned seq (as ranges) and a digest of what their stubs keep, it is
//! signed under a checkpoint, and only then are the records replaced by stubs. Records a
//! legal hold covers are skipped. A crash after the record is finished on the next opening.
//!
//! An application measures at a `now` no later than the ledger's clock (give or take
//! `NOW_AHEAD_MAX_NS`): a later one would prune records before their period ends. A status
//! or a dry run changes nothing, so they take any instant and say what would be due then.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use sealog_model::Canonical;
use sealog_model::json::Json;
use sealog_model::limits::RECORD_BYTES_MAX;
use sealog_model::time::format_micros;
use sealog_store::{LIMIT_MAX, LogRead, Prune, Scan, StoreError};

use crate::facts::Facts;
use crate::holds::Hold;
use crate::own::Act;
use crate::{Error, Ledger};

pub const RETENTION_APPLIED_TYPE: &str = "audit.retention_applied";

/// How far an application's `now` may run ahead of the ledger's clock: a remote caller's
/// clock slightly ahead of the server's still works, and no period is cut shorter than this.
const NOW_AHEAD_MAX_NS: i64 = 5_000_000_000;

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
    /// More is due than one application prunes (its record would be longer than a record may
    /// be): apply again for the rest.
    pub more: bool,
}

/// The records of one log that are due and not held.
#[derive(Default)]
struct Plan {
    prune: Vec<Prune>,
    /// What the stubs of `prune` will keep besides the prune's own link and key, in its
    /// order, for the digest.
    stamps: Vec<Stamp>,
    /// The payload each record of `prune` names, in its order.
    payloads: Vec<Option<String>>,
    due: BTreeMap<String, Due>,
    held: u64,
    /// Bytes of the JSON text of `prune`'s seq ranges, commas included, brackets around the
    /// list not: what the retention record spends on this log.
    ranges_bytes: usize,
    /// What `ranges_bytes` may grow to.
    room: usize,
    /// Due records left for the next application, past `room`.
    more: bool,
}

/// Bytes of seq-range text one application lists over both logs at most. A record is at most
/// `RECORD_BYTES_MAX` long; this leaves room for the rest of it (an actor, a policy of many
/// types), so that a status, which has no act to measure, agrees with the application, while
/// [`Plan::fit`] cuts to the record actually built when the rest is longer still.
const RANGES_BYTES_MAX: usize = 56 << 10;

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

impl Plan {
    fn within(room: usize) -> Plan {
        Plan {
            room,
            ..Plan::default()
        }
    }

    /// Takes a due record unless its range would pass `room`; once one is left, every later
    /// one is too, so an application prunes a prefix of what is due.
    fn take(&mut self, p: Prune, stamp: Stamp, payload: Option<String>) {
        let cost = match self.prune.last() {
            // `[from,to]` becomes `[from,to+1]`.
            Some(l) if l.seq + 1 == p.seq => digits(p.seq + 1) - digits(p.seq),
            // `,[seq,seq+1]`.
            last => usize::from(last.is_some()) + 3 + digits(p.seq) + digits(p.seq + 1),
        };
        if self.more || self.ranges_bytes + cost > self.room {
            self.more = true;
            return;
        }
        self.ranges_bytes += cost;
        self.prune.push(p);
        self.stamps.push(stamp);
        self.payloads.push(payload);
    }

    /// Leaves for the next application what lies past `room`.
    fn shrink_to(&mut self, room: usize) {
        let mut old = std::mem::replace(self, Plan::within(room));
        self.due = std::mem::take(&mut old.due);
        self.held = old.held;
        for ((p, s), payload) in old.prune.into_iter().zip(old.stamps).zip(old.payloads) {
            self.take(p, s, payload);
        }
        self.more |= old.more;
    }

    /// Cuts the two plans until the record that lists them, as `len` measures it, is no
    /// longer than a record may be; the quarantine log's ranges, planned last, go first.
    fn fit(canonical: &mut Plan, quarantine: &mut Plan, len: impl Fn(&Plan, &Plan) -> usize) {
        loop {
            let over = len(canonical, quarantine).saturating_sub(RECORD_BYTES_MAX);
            if over == 0 || canonical.ranges_bytes + quarantine.ranges_bytes == 0 {
                return;
            }
            let from_quarantine = over.min(quarantine.ranges_bytes);
            if from_quarantine > 0 {
                quarantine.shrink_to(quarantine.ranges_bytes - from_quarantine);
            }
            let rest = over - from_quarantine;
            if rest > 0 {
                canonical.shrink_to(canonical.ranges_bytes.saturating_sub(rest));
            }
        }
    }

    fn payload_refs(&self) -> Vec<String> {
        self.payloads.iter().flatten().cloned().collect()
    }

    /// How many of the records it prunes name a payload, which goes with them.
    fn payloads_deleted(&self) -> usize {
        self.payloads.iter().flatten().count()
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
    /// rewrites the segments. A dry run only reports, and may measure at any instant; an
    /// application refuses a `now` more than five seconds past the ledger's clock
    /// (`InvalidArgument`), and prunes no more than its record can list (`more` then says to
    /// apply again).
    pub fn apply_retention(
        &self,
        now: i64,
        dry_run: bool,
        act: &Act<'_>,
    ) -> Result<RetentionReport, Error> {
        if !dry_run {
            refuse_the_future(now, clock_nanos())?;
        }
        let _governing = (!dry_run).then(|| self.governing()).transpose()?;
        let (mut canonical, mut quarantine) = self.retention_plan(now)?;
        let now_text = format_micros(now);
        let policy = policy_of(&canonical, &quarantine);
        // Digests are 64 hex digits whatever they hash: measured with a stand-in, computed
        // once what is pruned is settled.
        let stand_in = "0".repeat(64);
        Plan::fit(&mut canonical, &mut quarantine, |c, q| {
            let data = record_data(&now_text, &policy, c, q, [&stand_in, &stand_in]);
            record_len(act, &record_id_text(&now_text, &stand_in), data)
        });
        let mut out = report(now, dry_run, &canonical, &quarantine);
        if dry_run {
            return Ok(out);
        }
        let digest = canonical.digest();
        let data = record_data(
            &now_text,
            &policy,
            &canonical,
            &quarantine,
            [&digest, &quarantine.digest()],
        );
        let (seq, record_id) = self
            .append_own(
                record_id_text(&now_text, &digest),
                RETENTION_APPLIED_TYPE,
                act,
                None,
                data,
            )?
            // Nothing was pruned, and the log is whole: Sealog's own record did not pass its
            // pack, which is no corruption of what is stored.
            .map_err(|why| {
                Error::InvalidArgument(format!(
                    "the retention record was refused, so nothing was pruned: {why}"
                ))
            })?;
        self.canonical.checkpoint()?;
        // The payloads go before their records: a quarantine record that names a payload
        // which is gone is sound once a signed retention record prunes it, while a payload
        // no record names any more could not be found to be deleted.
        self.payloads.remove(&quarantine.payload_refs())?;
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
        let mut canonical = Plan::within(RANGES_BYTES_MAX);
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
        let mut quarantine = Plan::within(RANGES_BYTES_MAX - canonical.ranges_bytes);
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
                    let payload = v["data"]["payload_ref"].as_str().map(str::to_string);
                    quarantine.take(unlinked(seq), stamp, payload);
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
        key: facts.subject.as_deref().map(|s| {
            crate::keys::chain(
                facts.tenant.as_deref(),
                facts.kind.as_deref(),
                &facts.scope,
                s,
            )
        }),
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

/// The ledger's clock, the one ingest times are read from (ns since the epoch).
fn clock_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// An application at a `now` still to come would prune records before their period ends.
fn refuse_the_future(now: i64, clock: i64) -> Result<(), Error> {
    if now <= clock.saturating_add(NOW_AHEAD_MAX_NS) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "now {} is later than this log's clock ({}): retention is applied only at an instant \
         that has come, so that no record is pruned before its period ends; a status or a \
         dry run may look ahead",
        format_micros(now),
        format_micros(clock)
    )))
}

/// Each due type's retention, as the record states it.
fn policy_of(canonical: &Plan, quarantine: &Plan) -> serde_json::Map<String, Value> {
    let mut policy = serde_json::Map::new();
    for d in canonical.due.values().chain(quarantine.due.values()) {
        let key = match d.log {
            "quarantine" => format!("quarantine:{}", d.event_type),
            _ => d.event_type.clone(),
        };
        policy.insert(key, json!(d.retention));
    }
    policy
}

fn record_id_text(now: &str, digest: &str) -> String {
    format!("retention:{now}:{digest}")
}

/// The `audit.retention_applied` record's data; `digests` are the canonical log's and the
/// quarantine log's.
fn record_data(
    now: &str,
    policy: &serde_json::Map<String, Value>,
    canonical: &Plan,
    quarantine: &Plan,
    digests: [&str; 2],
) -> Value {
    json!({
        "now": now,
        "policy": policy,
        "ranges": ranges(canonical.prune.iter().map(|p| p.seq)),
        "pruned": canonical.prune.len(),
        "stubs_sha256": digests[0],
        "held": canonical.held + quarantine.held,
        "quarantine": {
            "ranges": ranges(quarantine.prune.iter().map(|p| p.seq)),
            "pruned": quarantine.prune.len(),
            "stubs_sha256": digests[1],
            "payloads_deleted": quarantine.payloads_deleted(),
        },
    })
}

/// The longest the record [`Ledger::append_own`] makes of `data` can be: its event as that
/// builds it, with the server's fields at their longest, as the limit is checked. An event
/// that cannot be written canonically measures nothing here; its append says why.
fn record_len(act: &Act<'_>, id: &str, data: Value) -> usize {
    let event = crate::own::own_event(act, id, RETENTION_APPLIED_TYPE, None, data);
    Canonical::of_event(&Json::from_value(&event)).map_or(0, |c| c.record_len_max())
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
        payloads_deleted: quarantine.payloads_deleted() as u64,
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

    fn ranges_text_len(plan: &Plan) -> usize {
        json!(ranges(plan.prune.iter().map(|p| p.seq)))
            .to_string()
            .len()
    }

    fn act() -> Act<'static> {
        Act {
            actor: json!({"type": "human", "id": "records-officer"}),
            time: "2026-01-01T00:00:00Z".into(),
            source: "sealog-test",
        }
    }

    #[test]
    fn a_plan_counts_its_ranges_text_exactly_and_stops_at_its_room() {
        let mut plan = Plan::within(4096);
        // Runs across every change of digit count, then single seqs: each its own range.
        for seq in (0..12).chain(95..102).chain(998..1003) {
            plan.take(super::unlinked(seq), blank(), None);
            assert_eq!(plan.ranges_bytes + 2, ranges_text_len(&plan), "at {seq}");
        }
        for seq in (10_000..).step_by(2).take(1000) {
            plan.take(super::unlinked(seq), blank(), Some("p".into()));
            assert_eq!(plan.ranges_bytes + 2, ranges_text_len(&plan), "at {seq}");
        }
        assert!(plan.more, "more was due than fits");
        assert!(plan.ranges_bytes <= 4096 && plan.ranges_bytes > 4096 - 14);
        // Nothing after the first record left is taken, even one that would fit: what is
        // pruned is a prefix of what is due.
        let last = plan.prune.last().unwrap().seq;
        plan.take(super::unlinked(last + 1), blank(), None);
        assert_eq!(plan.prune.last().unwrap().seq, last);
        assert_eq!(plan.payloads.len(), plan.prune.len());
        assert_eq!(plan.payload_refs().len(), plan.prune.len() - 24);
    }

    /// Thousands of single-seq ranges in both logs: the record that lists them is cut to the
    /// limit, the quarantine log's first, and what is left is a prefix of each log.
    #[test]
    fn an_application_fits_its_record_under_the_limit() {
        let mut canonical = Plan::within(usize::MAX);
        let mut quarantine = Plan::within(usize::MAX);
        for seq in (1_000_000..).step_by(2).take(8000) {
            canonical.take(super::unlinked(seq), blank(), None);
            quarantine.take(super::unlinked(seq), blank(), Some(format!("p{seq}")));
        }
        let policy = serde_json::Map::new();
        let digest = "0".repeat(64);
        let len = |c: &Plan, q: &Plan| {
            let data = record_data("2026-01-01T00:00:00.000000Z", &policy, c, q, [&digest; 2]);
            record_len(
                &act(),
                &record_id_text("2026-01-01T00:00:00.000000Z", &digest),
                data,
            )
        };
        assert!(len(&canonical, &quarantine) > 2 * RECORD_BYTES_MAX);
        Plan::fit(&mut canonical, &mut quarantine, len);
        let fitted = len(&canonical, &quarantine);
        assert!(fitted <= RECORD_BYTES_MAX, "{fitted}");
        assert!(
            fitted > RECORD_BYTES_MAX - 64,
            "cut no more than needed: {fitted}"
        );
        assert!(canonical.more && quarantine.more);
        assert!(
            quarantine.prune.is_empty(),
            "the quarantine log's ranges go first"
        );
        assert_eq!(canonical.prune[0].seq, 1_000_000);
        assert_eq!(canonical.ranges_bytes + 2, ranges_text_len(&canonical));
    }

    /// What `record_len` measures is what `append_own` writes, but for the server fields
    /// (measured at their longest).
    #[test]
    fn record_len_measures_the_record_append_own_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let config = crate::LedgerConfig {
            store: crate::StoreConfig {
                durability: crate::Durability::Os,
                ..crate::StoreConfig::default()
            },
            packs: sealog_packs::Packs::builtin(),
            undeclared: crate::Undeclared::Quarantine,
        };
        let ledger = Ledger::open(tmp.path(), config).unwrap();
        let mut plan = Plan::within(usize::MAX);
        for seq in (0..).step_by(3).take(50) {
            plan.take(super::unlinked(seq), blank(), Some("p".into()));
        }
        let mut policy = serde_json::Map::new();
        policy.insert("comms.email".into(), json!("P7Y"));
        let digest = plan.digest();
        let now = "2026-01-01T00:00:00.000000Z";
        let data = record_data(now, &policy, &plan, &plan, [&digest; 2]);
        let id = record_id_text(now, &digest);
        let measured = record_len(&act(), &id, data.clone());
        let (seq, _) = ledger
            .append_own(id, RETENTION_APPLIED_TYPE, &act(), None, data)
            .unwrap()
            .unwrap();
        let stored = ledger.get(seq).unwrap().unwrap().len();
        // The longest seq has 20 digits.
        assert_eq!(measured, stored + 20 - digits(seq), "seq {seq}");
    }

    #[test]
    fn an_application_refuses_a_now_past_the_clock_and_its_skew() {
        let clock = 1_800_000_000_000_000_000;
        refuse_the_future(clock - 86_400_000_000_000, clock).unwrap();
        refuse_the_future(clock + NOW_AHEAD_MAX_NS, clock).unwrap();
        let e = refuse_the_future(clock + NOW_AHEAD_MAX_NS + 1_000, clock).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains("later than this log's clock"), "{e}");
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
