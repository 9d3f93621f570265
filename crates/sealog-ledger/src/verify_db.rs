//! `verify` of a ledger in PostgreSQL, read through the storage contract: every record's
//! bytes hashed again and compared with its leaf and the tree's, and its row's seq, id and
//! times and its `sealog_record_ids` entry with what those bytes say, by the backend's reads
//! of them (a row changed behind the triggers, or planted beside one, is named by its seq),
//! the tree rebuilt from those leaves, every stored checkpoint opened with the trusted key and
//! its root compared with the rebuilt one, and the roots the database serves compared too.
//! Trust comes from outside the database, as for a directory: a verifier key given (`--key`)
//! or checkpoints kept elsewhere (`--since`, `--trusted`).

use std::collections::BTreeMap;

use sealog_merkle::Frontier;
use sealog_merkle::note::Verifier;
use sealog_model::record::read_stored;
use sealog_store::verify::{Failure, Report};
use sealog_store::{Indexer, LogRead, Postings, StoreError, open_checkpoint};

use crate::VerifyOptions;

/// Records read per round trip.
const CHUNK: u64 = 1000;

fn failure(location: impl Into<String>, message: impl Into<String>) -> Failure {
    Failure {
        location: location.into(),
        message: message.into(),
    }
}

/// Checks one log; `name` says which in what it reports.
pub(crate) fn verify_log(
    log: &dyn LogRead,
    name: &str,
    opts: &VerifyOptions<'_>,
    trusted_key: Option<&str>,
    indexer: &dyn Indexer,
    on_record: &mut dyn FnMut(&sealog_model::record::Stored<'_, '_>),
    anchors: Vec<(u64, sealog_merkle::Hash, String)>,
) -> Result<Report, Failure> {
    let at = |what: String| format!("{name} log: {what}");
    let stored_key = log.verifier_key();
    if let Some(key) = trusted_key
        && key.trim() != stored_key.trim()
    {
        return Err(failure(
            at("sealog_log_keys".into()),
            format!("the database names the key {stored_key}, not the one trusted ({key})"),
        ));
    }
    let verifier = Verifier::parse(&stored_key)
        .map_err(|e| failure(at("sealog_log_keys".into()), e.to_string()))?;
    let checkpoints = log
        .checkpoints()
        .map_err(|e| failure(at("sealog_checkpoints".into()), e.to_string()))?;
    let mut wanted: BTreeMap<u64, Vec<(String, sealog_merkle::Hash)>> = BTreeMap::new();
    for cp in &checkpoints {
        wanted
            .entry(cp.size)
            .or_default()
            .push((format!("checkpoint of size {}", cp.size), cp.root));
    }
    let mut extensions = Vec::new();
    for cp in &checkpoints {
        for line in sealog_store::extensions_of(&cp.note) {
            extensions.push((cp.size, line, format!("checkpoint of size {}", cp.size)));
        }
    }
    for (size, root, what) in anchors {
        wanted.entry(size).or_default().push((what, root));
    }
    // Checkpoints vouched for from outside: the cosigned ones kept and those given, each
    // matched against the rebuilt tree like the series'; witnesses count among them.
    let mut vouching = Vec::new();
    if !opts.witnesses.is_empty() {
        let cosigned = log
            .cosigned()
            .map_err(|e| failure(at("sealog_cosigned".into()), e.to_string()))?;
        for (i, note) in cosigned.into_iter().enumerate() {
            let label = format!("cosigned checkpoint #{i}");
            // One the key in force did not sign (before a rotation) vouches for nothing here.
            let Ok(cp) = open_checkpoint(&note, &verifier) else {
                continue;
            };
            wanted
                .entry(cp.size)
                .or_default()
                .push((format!("the {label} of size {}", cp.size), cp.root));
            vouching.push((label, cp, note));
        }
    }
    let mut since_size = None;
    for (what, note) in opts
        .since
        .iter()
        .map(|n| ("--since", n))
        .chain(opts.trusted.iter().map(|n| ("--trusted", n)))
    {
        let cp = open_checkpoint(note, &verifier).map_err(|e| failure(what, e))?;
        if what == "--since" {
            since_size = Some(cp.size);
        } else {
            vouching.push((format!("{what} checkpoint"), cp.clone(), note.clone()));
        }
        for line in sealog_store::extensions_of(note) {
            extensions.push((cp.size, line, format!("the checkpoint {what}")));
        }
        wanted.entry(cp.size).or_default().push((
            format!("the checkpoint {what} of size {}", cp.size),
            cp.root,
        ));
    }
    let len = log.len();
    let mut frontier = Frontier::new();
    let mut bytes = 0u64;
    let mut stubs = Vec::new();
    let check_roots = |size: u64, frontier: &Frontier| -> Result<(), Failure> {
        for (what, root) in wanted.get(&size).into_iter().flatten() {
            if frontier.root() != *root {
                return Err(failure(
                    at(what.clone()),
                    format!("the records do not hash to its root (tree size {size})"),
                ));
            }
        }
        Ok(())
    };
    check_roots(0, &frontier)?;
    // What the index should hold, per chunk of records: the keys each record gives.
    let mut expected: Vec<Postings> = Vec::new();
    let mut seq = 0;
    while seq < len {
        let mut postings = Postings::default();
        let seqs: Vec<u64> = (seq..len.min(seq + CHUNK)).collect();
        let read = log.get_many_with_leaves(&seqs);
        let records: Vec<Result<Option<_>, StoreError>> = match read {
            Ok(all) => all.into_iter().map(Ok).collect(),
            // One bad record fails the chunk: read it record by record to name it.
            Err(_) => seqs.iter().map(|&s| log.get_with_leaf(s)).collect(),
        };
        for (&s, record) in seqs.iter().zip(records) {
            let leaf = match record {
                Ok(Some((body, leaf))) => {
                    let stored = read_stored(&body, |r| {
                        on_record(r);
                        postings.add_all(&indexer.keys(r), r.seq);
                        r.seq
                    })
                    .map_err(|e| failure(at(format!("record {s}")), e.to_string()))?;
                    if stored != s {
                        return Err(failure(
                            at(format!("record {s}")),
                            format!("it says it is record {stored}"),
                        ));
                    }
                    bytes += body.len() as u64;
                    leaf
                }
                Err(StoreError::Pruned(stub)) => {
                    postings.add_all(&indexer.stub_keys(&stub), s);
                    let leaf = stub.leaf;
                    stubs.push(*stub);
                    leaf
                }
                Ok(None) => {
                    return Err(failure(
                        at(format!("record {s}")),
                        "missing below the log's size",
                    ));
                }
                Err(e) => return Err(failure(at(format!("record {s}")), e.to_string())),
            };
            frontier.push(leaf);
            check_roots(frontier.size(), &frontier)?;
            if let Some(progress) = opts.progress
                && frontier.size().is_multiple_of(10_000)
            {
                progress(frontier.size(), bytes);
            }
        }
        expected.push(postings);
        seq += CHUNK;
    }
    let index =
        check_index(log, indexer, len, &expected).map_err(|(what, m)| failure(at(what), m))?;
    if let Some((&size, _)) = wanted.range(len + 1..).next() {
        return Err(failure(
            at(format!("checkpoint of size {size}")),
            format!("the log has only {len} records: records a signed checkpoint covered are gone"),
        ));
    }
    let served = log
        .root(len)
        .map_err(|e| failure(at("sealog_tree_nodes".into()), e.to_string()))?;
    if served != frontier.root() {
        return Err(failure(
            at("sealog_tree_nodes".into()),
            "the stored tree's root is not the records' root",
        ));
    }
    let signed_records = checkpoints.last().map_or(0, |c| c.size);
    let cosigned = log.cosigned().map(|c| c.len()).unwrap_or(0);
    let mut witness_files = Vec::new();
    let witnessed_records = sealog_store::verify::witnessed(
        &sealog_store::verify::Options {
            witnesses: opts.witnesses.clone(),
            witness_quorum: opts.witness_quorum,
            ..Default::default()
        },
        &vouching,
        len,
        &mut witness_files,
    )
    .map_err(|f| failure(at(f.location), f.message))?;
    let mut files = vec![
        (
            "records".to_string(),
            format!(
                "{len} records, each hashed again against its leaf and the tree's, and its row's seq, id and times and its entry in the id map held to its bytes"
            ),
        ),
        (
            "checkpoints".to_string(),
            format!(
                "{} signed checkpoints, each opened with the log's key and its root rebuilt",
                checkpoints.len()
            ),
        ),
    ];
    files.extend(index);
    files.extend(witness_files);
    Ok(Report {
        records: len,
        bytes,
        segments: 0,
        checkpoints: checkpoints.len(),
        root: frontier.root(),
        verifier: stored_key,
        since_size,
        signed_records,
        writer_durable: None,
        files,
        stubs,
        cosigned,
        key_changes: Vec::new(),
        witnessed_records,
        selected: Vec::new(),
        extensions,
    })
}

/// The index against the keys the records give: one digest per chunk of records from the
/// database, compared with `expected`; where a chunk differs, its records one by one, to name
/// the first whose postings are not its keys. `None` when the backend has no such digest.
fn check_index(
    log: &dyn LogRead,
    indexer: &dyn Indexer,
    len: u64,
    expected: &[Postings],
) -> Result<Option<(String, String)>, (String, String)> {
    let index = "the index (sealog_key_runs)".to_string();
    let found = log
        .postings_digests(0, len, CHUNK)
        .map_err(|e| (index.clone(), e.to_string()))?;
    let Some(found) = found else {
        return Ok(None);
    };
    let Some(chunk) = (0..expected.len()).find(|&c| found.get(c) != expected.get(c)) else {
        let count: u64 = found.iter().map(|p| p.count).sum();
        return Ok(Some((
            index,
            format!("{count} postings, exactly the keys the records give"),
        )));
    };
    let from = chunk as u64 * CHUNK;
    let below = len.min(from + CHUNK);
    let found = log
        .postings_digests(from, below, 1)
        .map_err(|e| (index.clone(), e.to_string()))?
        .unwrap_or_default();
    for (i, s) in (from..below).enumerate() {
        let mut want = Postings::default();
        match log.get_with_leaf(s) {
            Ok(Some((body, _))) => {
                read_stored(&body, |r| want.add_all(&indexer.keys(r), s))
                    .map_err(|e| (format!("record {s}"), e.to_string()))?;
            }
            Err(StoreError::Pruned(stub)) => want.add_all(&indexer.stub_keys(&stub), s),
            Ok(None) => return Err((format!("record {s}"), "missing below the log's size".into())),
            Err(e) => return Err((format!("record {s}"), e.to_string())),
        }
        let got = found.get(i).copied().unwrap_or_default();
        if got != want {
            return Err((
                format!("record {s}"),
                format!(
                    "the index does not hold exactly the keys it gives ({} postings expected, {} found)",
                    want.count, got.count
                ),
            ));
        }
    }
    Err((
        index,
        format!(
            "records {from} to {} disagree with it as a whole",
            below - 1
        ),
    ))
}
