//! Offline verification of a whole data directory: both logs with every file derived from
//! them (the engine's checks, with the ledger's indexers so each index is checked against the
//! keys its log's records carry), and the quarantine payloads against the quarantine records
//! that name them: evidence a record promises is there, whole.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use sealog_model::Layout;
use sealog_model::json::Json;
use sealog_packs::Packs;
use sealog_store::Indexer;
use sealog_store::verify::{Failure, Options, Report, for_each_record};

use sealog_store::Stub;
use serde_json::Value;

use crate::keys::{CanonicalKeys, Deriver, QuarantineKeys};
use crate::payloads::Payloads;
use crate::privacy::Privacy;
use crate::retention::{Kept, RETENTION_APPLIED_TYPE, seqs_of, stubs_digest};

#[derive(Default, Clone)]
pub struct VerifyOptions<'a> {
    /// The verifier key to trust; by default `keys/log.pub` of the directory itself.
    pub key: Option<String>,
    /// A checkpoint note saved earlier: the canonical log must extend it.
    pub since: Option<String>,
    /// More checkpoint notes kept outside the data directory: the canonical log must extend
    /// each; their cosignatures count for `witnesses`.
    pub trusted: Vec<String>,
    /// Witnesses whose cosignatures the canonical log needs, and how many of them (default:
    /// all).
    pub witnesses: Vec<sealog_merkle::cosignature::CosignatureVerifier>,
    pub witness_quorum: Option<usize>,
    /// Called now and then with (records, bytes) checked so far, over every log of the
    /// directory together.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
    /// The packs the index was built with (default: the built-in ones). An index built with
    /// other packs is checked for damage only; opening rebuilds it anyway.
    pub packs: Option<&'a Packs>,
    /// Check every record's index entries, not a sample, and that the index holds nothing
    /// else.
    pub full: bool,
}

pub(crate) fn verify(
    dir: &Path,
    opts: &VerifyOptions<'_>,
) -> Result<(Report, Option<Report>), Failure> {
    let layout = Layout::new(dir);
    let builtin;
    let packs = match opts.packs {
        Some(p) => p,
        None => {
            builtin = Packs::builtin();
            &builtin
        }
    };
    // The keys the index was keyed with; without the master key the index is checked for
    // damage only (its fingerprint names another keyed hash).
    let privacy = Privacy::open(&layout, false).ok().map(Arc::new);
    let canonical_keys = CanonicalKeys(Deriver {
        packs: packs.clone(),
        privacy,
    });
    // The store counts each log from zero; the quarantine log's figures go on from where the
    // canonical log's ended.
    let canonical_done = std::cell::Cell::new((0u64, 0u64));
    let canonical_progress = |records: u64, bytes: u64| {
        canonical_done.set((records, bytes));
        if let Some(p) = opts.progress {
            p(records, bytes);
        }
    };
    let mut canonical = sealog_store::verify::verify(
        &layout.canonical(),
        &Options {
            key: opts.key.clone(),
            since: opts.since.clone(),
            trusted: opts.trusted.clone(),
            witnesses: opts.witnesses.clone(),
            witness_quorum: opts.witness_quorum,
            progress: Some(&canonical_progress),
            indexer: Some(&canonical_keys as &dyn Indexer),
            full: opts.full,
            select: Some(&|t: &str| SELECTED_TYPES.contains(&t)),
            anchors: Vec::new(),
        },
    )?;
    let quarantine_heads = crate::anchor::heads(&canonical.extensions)?;
    let summary = check_key_changes(&canonical)?;
    canonical.files.push(("key rotations".into(), summary));
    let (privacy, summary) = crate::privacy::check(&layout, canonical.writer_durable.is_some())
        .map_err(|(location, message)| Failure { location, message })?;
    canonical
        .files
        .push(("privacy/subject-keys".into(), summary));
    if opts.full {
        let summary = check_sealed(&layout, &canonical, packs, &privacy)?;
        canonical
            .files
            .push(("privacy (sealed records)".into(), summary));
    }
    let q = layout.quarantine();
    if let Some((size, _, what)) = quarantine_heads.iter().find(|h| h.0 > 0)
        && !q.segments().exists()
    {
        return Err(Failure {
            location: format!("{} (missing)", q.segments().display()),
            message: format!("{what} covers {size} records: the quarantine log was removed"),
        });
    }
    if !q.segments().exists() {
        let summary = check_retention(&canonical, None)?;
        canonical.files.push(("retention stubs".into(), summary));
        return Ok((canonical, None));
    }
    let in_quarantine = |mut f: Failure| {
        f.location = format!("quarantine log: {}", f.location);
        f
    };
    let (records_before, bytes_before) = canonical_done.get();
    let quarantine_progress = |records: u64, bytes: u64| {
        if let Some(p) = opts.progress {
            p(records_before + records, bytes_before + bytes);
        }
    };
    let mut quarantine = sealog_store::verify::verify(
        &q,
        &Options {
            progress: Some(&quarantine_progress),
            indexer: Some(&QuarantineKeys as &dyn Indexer),
            full: opts.full,
            anchors: quarantine_heads.clone(),
            ..Options::default()
        },
    )
    .map_err(in_quarantine)?;
    quarantine.files.push((
        "anchored in the canonical log".into(),
        crate::anchor::summary(&quarantine_heads),
    ));
    let summary = check_payloads(&layout, &quarantine, &canonical)?;
    quarantine
        .files
        .push(("quarantine/payloads".into(), summary));
    let summary = check_retention(&canonical, Some(&quarantine))?;
    canonical.files.push(("retention stubs".into(), summary));
    Ok((canonical, Some(quarantine)))
}

/// The canonical log's records the checks below read beyond what the store checks: few, so
/// the store hands them back from its one pass instead of the log being read again.
const SELECTED_TYPES: [&str; 3] = [
    crate::LOG_KEY_ROTATED_TYPE,
    RETENTION_APPLIED_TYPE,
    crate::PAYLOAD_DELETED_TYPE,
];

/// Each record the store verified and handed back as selected, read again to be checked
/// further.
fn each_selected(
    report: &Report,
    mut f: impl FnMut(&sealog_model::record::Stored<'_, '_>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    for (seq, bytes) in &report.selected {
        sealog_model::record::read_stored(bytes, &mut f).map_err(|message| Failure {
            location: format!("record {seq}"),
            message,
        })??;
    }
    Ok(())
}

/// Every change of the signing key the checkpoints show was announced by an
/// `audit.log_key_rotated` record naming both keys, inside the tree the checkpoint both keys
/// signed; and every such record under a checkpoint is followed by its change, but the newest
/// when its hand-over has not happened yet (the next opening does it).
fn check_key_changes(canonical: &Report) -> Result<String, Failure> {
    let mut records: Vec<(u64, String, String)> = Vec::new();
    each_selected(canonical, |stored| {
        if stored.envelope.event_type == crate::LOG_KEY_ROTATED_TYPE {
            let data = stored
                .record
                .get("data")
                .map_or(Value::Null, |d| d.to_value());
            let key = |k: &str| data[k].as_str().unwrap_or_default().to_string();
            records.push((stored.seq, key("old_verifier_key"), key("new_verifier_key")));
        }
        Ok(())
    })?;
    for change in &canonical.key_changes {
        let announced = records.iter().any(|(seq, old, new)| {
            *seq < change.at_size && *old == change.old_key && *new == change.new_key
        });
        if !announced {
            return Err(Failure {
                location: format!("checkpoint of size {}", change.at_size),
                message: format!(
                    "the signing key changes from {} to {} with no audit.log_key_rotated record announcing it",
                    change.old_key, change.new_key
                ),
            });
        }
    }
    // The key in force after the newest checkpoint: where the walk from the trusted key ends.
    let in_force = canonical
        .key_changes
        .last()
        .map_or(canonical.verifier.as_str(), |c| c.new_key.as_str());
    let mut pending = 0;
    for (i, (seq, old, new)) in records.iter().enumerate() {
        let followed = canonical
            .key_changes
            .iter()
            .any(|c| c.old_key == *old && c.new_key == *new && *seq < c.at_size);
        if followed {
            continue;
        }
        if i + 1 == records.len() && old == in_force {
            pending += 1;
            continue;
        }
        return Err(Failure {
            location: format!("record {seq}"),
            message: format!(
                "audit.log_key_rotated hands signing to {new}, but no checkpoint signed by both keys follows it"
            ),
        });
    }
    Ok(match (canonical.key_changes.len(), pending) {
        (0, 0) => "the log's key never changed".into(),
        (n, 0) => format!(
            "{n} key rotation(s), each announced by a record under a checkpoint both keys signed"
        ),
        (n, _) => format!(
            "{n} key rotation(s) announced and done; the newest announced is not handed over yet (the next opening does it)"
        ),
    })
}

/// Every stub either log holds was pruned by a signed `audit.retention_applied` record: its
/// seq lies in the record's ranges, the record is under a signed checkpoint, and once all of
/// a record's seqs are stubs, they keep exactly what its digest says. A stub nothing
/// authorizes is a record removed, not pruned.
fn check_retention(canonical: &Report, quarantine: Option<&Report>) -> Result<String, Failure> {
    if canonical.stubs.is_empty() && quarantine.is_none_or(|q| q.stubs.is_empty()) {
        return Ok("no record was pruned".into());
    }
    let mut records: Vec<(u64, Value)> = Vec::new();
    each_selected(canonical, |stored| {
        records.extend(retention_record(stored));
        Ok(())
    })?;
    check_stubs(&records, canonical, quarantine, true)
}

/// A retention record's seq and data: the ranges it pruned and their stubs' digest.
pub(crate) fn retention_record(
    stored: &sealog_model::record::Stored<'_, '_>,
) -> Option<(u64, Value)> {
    (stored.envelope.event_type == RETENTION_APPLIED_TYPE).then(|| {
        let data = stored
            .record
            .get("data")
            .map_or(Value::Null, |d| d.to_value());
        (stored.seq, data)
    })
}

/// Every stub is accounted for by a signed retention record (`records`: each one's seq and
/// data) whose digest it matches. With `in_segments` (the embedded store, which rewrites a
/// log's segments one at a time in seq order, each whole), an application only some of whose
/// records are stubs must be the newest, its stubs the first of what it names: what a crash
/// leaves. Anything else is a pruned record put back, which would keep its application's
/// digest from being checked.
pub(crate) fn check_stubs(
    records: &[(u64, Value)],
    canonical: &Report,
    quarantine: Option<&Report>,
    in_segments: bool,
) -> Result<String, Failure> {
    let quarantine_stubs: &[Stub] = quarantine.map_or(&[], |r| &r.stubs);
    let total = canonical.stubs.len() + quarantine_stubs.len();
    if total == 0 {
        return Ok("no record was pruned".into());
    }
    let mut unfinished = 0;
    for (log, found, path) in [
        ("", &canonical.stubs[..], None),
        ("quarantine", quarantine_stubs, Some("quarantine")),
    ] {
        let at = |s: &Stub| match path {
            Some(p) => format!("{p} log: record {}", s.seq),
            None => format!("record {}", s.seq),
        };
        let by_seq: std::collections::HashMap<u64, &Stub> =
            found.iter().map(|s| (s.seq, s)).collect();
        // Applications may name a record twice (servers sharing a database, one pruning what
        // another's interrupted application named): a stub counts for each.
        let mut accounted = std::collections::HashSet::new();
        let newest = records.last().map(|(seq, _)| *seq);
        for (seq, data) in records {
            let part = if log.is_empty() { data } else { &data[log] };
            let wanted = seqs_of(&part["ranges"]);
            let covered: Vec<&Stub> = wanted
                .iter()
                .filter_map(|s| by_seq.get(s).copied())
                .collect();
            accounted.extend(covered.iter().map(|s| s.seq));
            // An application that pruned nothing authorizes nothing; one whose stubs are not
            // written yet is finished by the next writable opening.
            let Some(first) = covered.first() else {
                unfinished += usize::from(!wanted.is_empty());
                continue;
            };
            if *seq >= canonical.signed_records {
                return Err(Failure {
                    location: at(first),
                    message: format!(
                        "pruned by retention record {seq}, which no signed checkpoint covers"
                    ),
                });
            }
            if covered.len() < wanted.len() {
                let back = wanted.iter().find(|s| !by_seq.contains_key(s));
                let last = covered.last().map(|s| s.seq);
                if in_segments
                    && let Some(&back) = back
                    && (Some(*seq) != newest || last.is_some_and(|l| l > back))
                {
                    return Err(Failure {
                        location: match path {
                            Some(p) => format!("{p} log: record {back}"),
                            None => format!("record {back}"),
                        },
                        message: format!(
                            "retention record {seq} pruned it, yet it is a record again while other records it pruned are stubs: a pruned record was put back"
                        ),
                    });
                }
                unfinished += 1;
                continue;
            }
            let digest = stubs_digest(covered.iter().map(|s| Kept {
                seq: s.seq,
                id: s.id,
                ingested_ns: s.ingested_ns,
                event_ns: s.event_ns,
                link: s.link,
                key: s.key,
            }));
            if part["stubs_sha256"].as_str() != Some(digest.as_str()) {
                return Err(Failure {
                    location: format!("retention record {seq}"),
                    message: "the stubs of the records it pruned do not keep what its digest says: a stub was changed".into(),
                });
            }
        }
        if let Some(s) = by_seq
            .values()
            .filter(|s| !accounted.contains(&s.seq))
            .min_by_key(|s| s.seq)
        {
            return Err(Failure {
                location: at(s),
                message: "a stub that no signed retention record accounts for: the record was removed, not pruned".into(),
            });
        }
    }
    let mut summary = format!(
        "{total} stubs, each pruned by one of {} signed retention records and matching its digest",
        records.len()
    );
    if unfinished > 0 {
        summary.push_str(&format!(
            "; {unfinished} applications not finished yet (the next writable opening finishes them)"
        ));
    }
    Ok(summary)
}

/// Every record with sealed values names a data subject the key store knows (live or
/// erased): a key lost with a restored or cut key store is found here, not at read time.
fn check_sealed(
    layout: &Layout,
    canonical: &Report,
    packs: &Packs,
    privacy: &Privacy,
) -> Result<String, Failure> {
    let deriver = Deriver {
        packs: packs.clone(),
        privacy: None,
    };
    let mut sealed = 0u64;
    for_each_record(&layout.canonical(), canonical.records, |stored| {
        let env = stored.envelope;
        if !packs.carries_personal(env.event_type, stored.record) {
            return Ok(());
        }
        let derived = deriver.derive(stored.record, env);
        let Some(ps) = derived.data_subject else {
            return Ok(());
        };
        sealed += 1;
        if privacy.knows_subject(env.tenant.unwrap_or(""), &ps) {
            return Ok(());
        }
        Err(Failure {
            location: layout.subject_keys().display().to_string(),
            message: format!(
                "record {} is sealed for data subject {ps}, whose key is not here: keys were lost (restore them from backup)",
                stored.seq
            ),
        })
    })?;
    Ok(format!(
        "{sealed} records with personal fields, each sealed for a data subject the key store names"
    ))
}

/// Every payload is whole and matches its hash, the file is owner-only, and every
/// `payload_ref` a verified quarantine record holds names a payload that is here.
fn check_payloads(
    layout: &Layout,
    quarantine: &Report,
    canonical: &Report,
) -> Result<String, Failure> {
    let path = layout.quarantine_payloads();
    let at = path.display().to_string();
    let failure = |message: String| Failure {
        location: at.clone(),
        message,
    };
    if let Ok(meta) = std::fs::metadata(&path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(failure(format!("readable by others (mode {mode:o})")));
        }
    }
    let (refs, torn) = Payloads::open_read_only(&path)
        .refs()
        .map_err(|e| failure(e.to_string()))?;
    // A writer appends payloads before the records naming them: a tail it is writing now
    // is not damage.
    if let Some(offset) = torn.filter(|_| quarantine.writer_durable.is_none()) {
        return Err(failure(format!(
            "ends inside a payload at offset {offset}: cut or truncated"
        )));
    }
    let refs: HashSet<String> = refs.into_iter().collect();
    let mut named = 0u64;
    let mut missing: Vec<(u64, String)> = Vec::new();
    for_each_record(&layout.quarantine(), quarantine.records, |stored| {
        let reference = stored
            .record
            .get("data")
            .and_then(|d| d.get("payload_ref"))
            .and_then(Json::as_str);
        let Some(reference) = reference else {
            return Ok(());
        };
        named += 1;
        if !refs.contains(reference) {
            missing.push((stored.seq, reference.to_string()));
        }
        Ok(())
    })
    .map_err(|mut f| {
        if f.location != at {
            f.location = format!("quarantine log: {}", f.location);
        }
        f
    })?;
    if missing.is_empty() {
        return Ok(format!(
            "{} payloads, each whole and matching its hash; all {named} the quarantine records name are here",
            refs.len()
        ));
    }
    // Gone is sound only where an erasure's deletion record says so, or where a signed
    // retention record prunes the quarantine record (its payload goes first; a crash before
    // the rewrite is finished on the next opening).
    let mut deleted: HashSet<String> = HashSet::new();
    let mut retained: HashSet<u64> = HashSet::new();
    each_selected(canonical, |stored| {
        let data = stored.record.get("data");
        if stored.envelope.event_type == crate::PAYLOAD_DELETED_TYPE
            && let Some(Json::Array(items)) = data.and_then(|d| d.get("payload_refs"))
        {
            deleted.extend(items.iter().filter_map(Json::as_str).map(str::to_string));
        }
        if stored.envelope.event_type == RETENTION_APPLIED_TYPE
            && let Some(q) = data.and_then(|d| d.get("quarantine"))
        {
            retained.extend(seqs_of(&q.to_value()["ranges"]));
        }
        Ok(())
    })?;
    if let Some((seq, reference)) = missing
        .iter()
        .find(|(seq, r)| !deleted.contains(r) && !retained.contains(seq))
    {
        return Err(failure(format!(
            "quarantine record {seq} names payload {reference}, which is not here: evidence was lost"
        )));
    }
    Ok(format!(
        "{} payloads, each whole and matching its hash; of the {named} the quarantine records name, {} were deleted with their data subject's erasure or by retention (recorded) and the rest are here",
        refs.len(),
        missing.len()
    ))
}
