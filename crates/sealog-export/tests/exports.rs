//! Exports against a real ledger: what they hold and in which order, that the same
//! selection gives the same bytes however the log grows, that any changed byte is found
//! offline, Parquet read back, and the bad inputs (an existing file, an empty selection, a
//! missing directory, an export interrupted midway).

mod support;

use std::fs;

use sealog_export::{Format, Manifest};
use sealog_ledger::{Packs, Query, Selection, View};
use sealog_model::time::parse_rfc3339;
use sealog_testkit::{Rng, tempdir};
use serde_json::Value;
use support::*;

fn window() -> Query {
    Query {
        equals: vec![eq("tenant", "t1")],
        event_from: Some(parse_rfc3339("2026-01-03T12:10:00Z").unwrap()),
        event_to: Some(parse_rfc3339("2026-01-03T12:50:00Z").unwrap()),
        ..Query::default()
    }
}

#[test]
fn an_export_holds_its_selection_in_order_and_verifies() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 60);
    let out = dir.path().join("t1.jsonl");
    let m = export(&ledger, &request(&out, Format::Jsonl, window()));

    let mut want: Vec<(i64, String, u64)> = (0..60u64)
        .map(event)
        .enumerate()
        .filter(|(_, e)| e["tenant"] == "t1")
        .map(|(seq, e)| {
            let t = parse_rfc3339(e["time"].as_str().unwrap()).unwrap();
            (t, e["subject"].as_str().unwrap().to_string(), seq as u64)
        })
        .filter(|(t, _, _)| {
            (parse_rfc3339("2026-01-03T12:10:00Z").unwrap()
                ..parse_rfc3339("2026-01-03T12:50:00Z").unwrap())
                .contains(t)
        })
        .collect();
    want.sort();
    let got: Vec<u64> = lines(&out)
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        want.iter().map(|w| w.2).collect::<Vec<_>>(),
        "by (event time, subject, seq)"
    );
    assert!(got.len() > 5, "a selection worth checking: {}", got.len());
    for (line, seq) in fs::read_to_string(&out).unwrap().lines().zip(&got) {
        assert_eq!(
            line.as_bytes(),
            ledger.get(*seq).unwrap().unwrap(),
            "the canonical record as stored"
        );
    }

    assert_eq!(m.count, got.len() as u64);
    assert_eq!(m.bytes, fs::metadata(&out).unwrap().len());
    assert_eq!(m.tree_size, 60);
    assert_eq!(m.filters.equals, vec![eq("tenant", "t1")]);
    assert!(
        m.completeness
            .contains("does not prove that no matching record was left out")
    );
    assert!(m.checkpoint.starts_with(&format!(
        "{}\n60\n",
        m.verifier_key.split('+').next().unwrap()
    )));
    assert!(m.proof.hashes > 0, "a filtered export needs proof hashes");
    let v = verify(&out).expect("verifies");
    assert_eq!((v.count, v.tree_size), (m.count, 60));
    let pinned = sealog_export::verify(
        &manifest_of(&out),
        Some(&ledger.verifier_key()),
        &Packs::builtin(),
    );
    assert!(pinned.unwrap().key_pinned);
}

fn read_all(out: &std::path::Path) -> [Vec<u8>; 3] {
    [
        fs::read(out).unwrap(),
        fs::read(sealog_export::proof_path(out)).unwrap(),
        fs::read(manifest_of(out)).unwrap(),
    ]
}

#[test]
fn dla_dod_8_deterministic_export_slices() {
    // Seed 002 DoD-8: an export request (pins + time window + filters) gives the canonical
    // record shape in a deterministic order, and the same parameters the same result — here
    // the same bytes — also after the log has grown, when cut at the same size.
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 50);
    let size = ledger.len();
    for format in [Format::Jsonl, Format::Parquet] {
        let q = Query {
            view: View::Current,
            ..window()
        };
        let at = |name: &str| {
            let d = dir.path().join(name).join(format.name());
            fs::create_dir_all(&d).unwrap();
            d.join("slice")
        };
        let mut req = request(&at("a"), format, q.clone());
        req.selection.as_of = Some(size);
        let first = export(&ledger, &req);
        req.out = at("b");
        export(&ledger, &req);
        assert_eq!(
            read_all(&at("a")),
            read_all(&at("b")),
            "{format:?}: twice, the same bytes"
        );
        let first_bytes = read_all(&at("a"));

        // Unrelated appends, and new checkpoints: the same --as-of gives the same export.
        let base = if format == Format::Jsonl { 1000 } else { 2000 };
        append(&ledger, &(base..base + 10).map(event).collect::<Vec<_>>());
        ledger.checkpoint().unwrap();
        req.out = at("c");
        let later = export(&ledger, &req);
        assert_eq!(later, first);
        assert_eq!(
            read_all(&at("c")),
            first_bytes,
            "{format:?}: after the log grew"
        );

        // Proven against a checkpoint named by its note: the same again.
        req.out = at("d");
        req.selection.checkpoint = Some(first.checkpoint.clone());
        export(&ledger, &req);
        assert_eq!(
            read_all(&at("d")),
            first_bytes,
            "{format:?}: with --checkpoint"
        );
        verify(&at("d")).expect("verifies");
    }
}

#[test]
fn every_changed_byte_of_file_proof_or_manifest_is_found() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 40);
    let out = dir.path().join("x.jsonl");
    export(&ledger, &request(&out, Format::Jsonl, window()));
    verify(&out).expect("verifies before");
    let files = [
        out.clone(),
        sealog_export::proof_path(&out),
        manifest_of(&out),
    ];
    let mut rng = Rng::new(13);
    let mut tried = 0;
    for file in &files {
        let original = fs::read(file).unwrap();
        assert!(!original.is_empty(), "{}", file.display());
        // Every byte of the manifest and the proof; a seeded sample of the records (each is
        // checked whole: canonical form, record_id, leaf hash).
        let positions: Vec<usize> = if *file == out {
            (0..150)
                .map(|_| rng.below(original.len() as u64) as usize)
                .collect()
        } else {
            (0..original.len()).collect()
        };
        for at in positions {
            let mut bad = original.clone();
            bad[at] ^= 1 << rng.below(8);
            fs::write(file, &bad).unwrap();
            let found = verify(&out);
            assert!(
                found.is_err(),
                "a flipped bit at byte {at} of {} went unnoticed",
                file.display()
            );
            tried += 1;
        }
        // Cut short, and grown.
        fs::write(file, &original[..original.len() - 1]).unwrap();
        assert!(verify(&out).is_err(), "{} truncated", file.display());
        let mut longer = original.clone();
        longer.extend_from_slice(b"\n");
        fs::write(file, &longer).unwrap();
        assert!(
            verify(&out).is_err(),
            "{} with a line added",
            file.display()
        );
        fs::write(file, &original).unwrap();
    }
    assert!(tried > 1000, "{tried} changes tried");
    verify(&out).expect("verifies again once restored");

    // Records swapped, or one left out with the manifest's hash made to match: the order,
    // the count or the proof gives it away.
    let text = fs::read_to_string(&out).unwrap();
    let mut rows: Vec<&str> = text.lines().collect();
    rows.swap(0, 1);
    let swapped = rows.join("\n") + "\n";
    assert!(rehashed(&out, swapped.as_bytes(), None).is_err_and(|e| e.0.contains("out of order")));
    let fewer: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let count = text.lines().count() as u64 - 1;
    let e = rehashed(&out, fewer.as_bytes(), Some(count)).unwrap_err();
    assert!(e.0.contains("proof"), "{e}");
}

/// Writes `bytes` as the export file with a manifest made to match them (hash, size and,
/// when given, count), as a forger would, and verifies.
fn rehashed(
    out: &std::path::Path,
    bytes: &[u8],
    count: Option<u64>,
) -> Result<sealog_export::Verified, sealog_export::Failure> {
    use sha2::Digest;
    let original = (fs::read(out).unwrap(), fs::read(manifest_of(out)).unwrap());
    let mut m = Manifest::from_bytes(&original.1).unwrap();
    m.sha256 = hex::encode(sha2::Sha256::digest(bytes));
    m.bytes = bytes.len() as u64;
    if let Some(c) = count {
        m.count = c;
    }
    fs::write(out, bytes).unwrap();
    fs::write(manifest_of(out), m.to_bytes()).unwrap();
    let result = verify(out);
    fs::write(out, &original.0).unwrap();
    fs::write(manifest_of(out), &original.1).unwrap();
    result
}

#[test]
fn filters_are_checked_again_offline() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 30);
    let out = dir.path().join("x.jsonl");
    export(&ledger, &request(&out, Format::Jsonl, window()));
    let original = fs::read(manifest_of(&out)).unwrap();
    let forge = |f: &dyn Fn(&mut Manifest)| {
        let mut m = Manifest::from_bytes(&original).unwrap();
        f(&mut m);
        fs::write(manifest_of(&out), m.to_bytes()).unwrap();
        let r = verify(&out);
        fs::write(manifest_of(&out), &original).unwrap();
        r
    };
    let e = forge(&|m| m.filters.equals = vec![eq("tenant", "t2")]).unwrap_err();
    assert!(e.0.contains("outside the filters"), "{e}");
    let e = forge(&|m| m.filters.from = Some("2026-01-03T12:30:00.000000000Z".into())).unwrap_err();
    assert!(e.0.contains("outside the filters"), "{e}");
    let e = forge(&|m| m.filters.as_of = 3).unwrap_err();
    assert!(e.0.contains("cut"), "{e}");
    let e = forge(&|m| m.tree_size += 1).unwrap_err();
    assert!(e.0.contains("tree size"), "{e}");
    // Its filters dropped, which no signature covers: every record still checks out, and the
    // answer says how much of the log below the cut the file does not hold.
    let as_of = Manifest::from_bytes(&original).unwrap().filters.as_of;
    let v = forge(&|m| {
        m.filters.equals.clear();
        (m.filters.from, m.filters.to) = (None, None);
    })
    .unwrap();
    assert!(v.unfiltered);
    assert!(v.count > 0 && v.missing > 0);
    assert_eq!(v.count + v.missing, as_of);
    let whole = dir.path().join("whole.jsonl");
    export(&ledger, &request(&whole, Format::Jsonl, Query::default()));
    let v = verify(&whole).unwrap();
    assert!(v.unfiltered);
    assert_eq!(
        (v.missing, v.count),
        (0, as_of),
        "the whole log as of its cut"
    );
    // A manifest spelled differently (not canonical) is refused, even with the same content.
    let mut spaced = original.clone();
    spaced.insert(1, b' ');
    fs::write(manifest_of(&out), &spaced).unwrap();
    assert!(verify(&out).unwrap_err().0.contains("canonical"));
    fs::write(manifest_of(&out), &original).unwrap();
    // Another log's key.
    let other = filled(&dir.path().join("other"), 1);
    let e = sealog_export::verify(
        &manifest_of(&out),
        Some(&other.verifier_key()),
        &Packs::builtin(),
    )
    .unwrap_err();
    assert!(e.0.contains("another verifier key"), "{e}");
}

#[test]
fn an_independent_verifier_accepts_an_export() {
    // Written here with sha2 and ed25519 only: the note's signature, each record's id from
    // its own content, the leaf hashes and the multiproof walk of RFC 9162.
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    use sha2::{Digest, Sha256};

    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 45);
    let out = dir.path().join("x.jsonl");
    export(&ledger, &request(&out, Format::Jsonl, window()));
    let m: Value = serde_json::from_slice(&fs::read(manifest_of(&out)).unwrap()).unwrap();

    // The verifier key: name+hash+base64(0x01 || key).
    let vkey = ledger.verifier_key();
    let parts: Vec<&str> = vkey.trim().splitn(3, '+').collect();
    let key_bytes = B64.decode(parts[2]).unwrap();
    assert_eq!(key_bytes[0], 1, "an Ed25519 key");
    let key = VerifyingKey::from_bytes(&key_bytes[1..].try_into().unwrap()).unwrap();
    // The note: body, blank line, signature lines "— name base64(keyhash4 || sig)".
    let note = m["checkpoint"].as_str().unwrap();
    let (body, sigs) = note.split_once("\n\n").unwrap();
    let body = format!("{body}\n");
    let sig_line = sigs.lines().next().unwrap();
    let sig = B64.decode(sig_line.rsplit(' ').next().unwrap()).unwrap();
    let signature = Signature::from_bytes(&sig[4..].try_into().unwrap());
    key.verify(body.as_bytes(), &signature)
        .expect("the checkpoint is signed");
    let mut body_lines = body.lines();
    body_lines.next();
    let size: u64 = body_lines.next().unwrap().parse().unwrap();
    let root: [u8; 32] = B64
        .decode(body_lines.next().unwrap())
        .unwrap()
        .try_into()
        .unwrap();

    // The file's hash, each record's id, the leaves.
    let bytes = fs::read(&out).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), m["sha256"]);
    let mut leaves: Vec<(u64, [u8; 32])> = Vec::new();
    for line in std::str::from_utf8(&bytes).unwrap().lines() {
        let mut record: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let seq = record.remove("seq").unwrap().as_u64().unwrap();
        let id = record.remove("record_id").unwrap();
        record.remove("ingested_at");
        let event = serde_json::to_string(&record).unwrap();
        assert_eq!(
            id,
            format!("sha256:{}", hex::encode(Sha256::digest(event.as_bytes())))
        );
        let leaf: [u8; 32] = Sha256::new()
            .chain_update([0u8])
            .chain_update(line.as_bytes())
            .finalize()
            .into();
        leaves.push((seq, leaf));
    }
    leaves.sort();
    let proof: Vec<[u8; 32]> = fs::read_to_string(sealog_export::proof_path(&out))
        .unwrap()
        .lines()
        .map(|l| hex::decode(l).unwrap().try_into().unwrap())
        .collect();

    fn walk(
        lo: u64,
        hi: u64,
        leaves: &[(u64, [u8; 32])],
        proof: &mut std::slice::Iter<'_, [u8; 32]>,
    ) -> [u8; 32] {
        if leaves.is_empty() {
            return *proof.next().expect("a proof hash");
        }
        if hi - lo == 1 {
            return leaves[0].1;
        }
        let mut k = 1;
        while k * 2 < hi - lo {
            k *= 2;
        }
        let cut = leaves.partition_point(|l| l.0 < lo + k);
        let left = walk(lo, lo + k, &leaves[..cut], proof);
        let right = walk(lo + k, hi, &leaves[cut..], proof);
        sha2::Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }
    let mut hashes = proof.iter();
    assert_eq!(
        walk(0, size, &leaves, &mut hashes),
        root,
        "the proof gives the signed root"
    );
    assert!(hashes.next().is_none(), "every proof hash used");
}

#[test]
fn parquet_holds_typed_columns_and_the_canonical_text() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampNanosecondType, UInt64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 40);
    let (jsonl, pq) = (dir.path().join("x.jsonl"), dir.path().join("x.parquet"));
    export(&ledger, &request(&jsonl, Format::Jsonl, window()));
    let m = export(&ledger, &request(&pq, Format::Parquet, window()));
    assert_eq!(m.format, Format::Parquet);
    verify(&pq).expect("a Parquet export verifies");

    let texts = sealog_export::record_texts(&pq).unwrap();
    let want: Vec<String> = fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(texts, want, "the same records, in the same order");

    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&pq).unwrap()).unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        &names[..sealog_export::COLUMNS.len()],
        sealog_export::COLUMNS
    );
    let batch = reader.build().unwrap().next().unwrap().unwrap();
    let records = lines(&jsonl);
    let seqs = batch
        .column_by_name("seq")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let times = batch
        .column_by_name("time")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let tenants = batch.column_by_name("tenant").unwrap().as_string::<i32>();
    for (i, r) in records.iter().enumerate().take(batch.num_rows()) {
        assert_eq!(seqs.value(i), r["seq"].as_u64().unwrap());
        assert_eq!(
            times.value(i),
            parse_rfc3339(r["time"].as_str().unwrap()).unwrap()
        );
        assert_eq!(tenants.value(i), "t1");
    }
}

#[test]
fn a_parquet_typed_column_that_disagrees_with_its_record_is_found() {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use sha2::Digest;
    use std::sync::Arc;

    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 30);
    let pq = dir.path().join("x.parquet");
    export(&ledger, &request(&pq, Format::Parquet, window()));
    // A forger rewrites the tenant column (the record text unchanged) and the manifest's
    // hash and size to match: every row still re-hashes, but its columns lie.
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&pq).unwrap()).unwrap();
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
    let at = schema.index_of("tenant").unwrap();
    let mut out = Vec::new();
    {
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), None).unwrap();
        for b in &batches {
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            cols[at] = Arc::new(StringArray::from(vec!["t9"; b.num_rows()]));
            w.write(&RecordBatch::try_new(schema.clone(), cols).unwrap())
                .unwrap();
        }
        w.close().unwrap();
    }
    let mut m = Manifest::from_bytes(&fs::read(manifest_of(&pq)).unwrap()).unwrap();
    m.sha256 = hex::encode(sha2::Sha256::digest(&out));
    m.bytes = out.len() as u64;
    fs::write(&pq, &out).unwrap();
    fs::write(manifest_of(&pq), m.to_bytes()).unwrap();
    let e = verify(&pq).unwrap_err();
    assert!(e.0.contains("\"tenant\""), "{e}");
}

/// The same rows written again with other metadata, as a forger who wants a reader to skip
/// some of them would: every row is sound, the file is not what Sealog writes for them.
#[test]
fn a_parquet_file_whose_metadata_was_rewritten_around_sound_rows_is_found() {
    use arrow_array::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 30);
    let pq = dir.path().join("x.parquet");
    export(&ledger, &request(&pq, Format::Parquet, window()));
    assert!(verify(&pq).unwrap().metadata_checked);
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&pq).unwrap()).unwrap();
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
    for (what, props) in [
        (
            "no statistics",
            WriterProperties::builder()
                .set_statistics_enabled(EnabledStatistics::None)
                .build(),
        ),
        (
            "statistics of one row group a row",
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(1))
                .build(),
        ),
    ] {
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        let e = rehashed(&pq, &out, None).unwrap_err();
        assert!(e.0.contains("footer's statistics"), "{what}: {e}");
    }
    verify(&pq).expect("the original still verifies");
}

#[test]
fn an_empty_selection_is_a_valid_empty_export() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 10);
    for format in [Format::Jsonl, Format::Parquet] {
        let out = dir.path().join(format!("none.{}", format.name()));
        let q = Query {
            equals: vec![eq("tenant", "nobody")],
            ..Query::default()
        };
        let m = export(&ledger, &request(&out, format, q));
        assert_eq!(m.count, 0);
        assert!(out.exists() && manifest_of(&out).exists());
        let v = verify(&out).expect("an empty export verifies");
        assert_eq!(v.count, 0);
        assert_eq!(m.proof.hashes, 1, "the whole tree is one hash");
    }
}

#[test]
fn an_existing_export_is_refused_unless_forced() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 10);
    let out = dir.path().join("x.jsonl");
    fs::write(&out, b"keep me").unwrap();
    let mut req = request(&out, Format::Jsonl, Query::default());
    let e = sealog_export::export(&ledger, &req, &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, sealog_export::Error::Exists(_)), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
    req.force = true;
    export(&ledger, &req);
    verify(&out).expect("replaced, and verifies");
    // A manifest alone under the name is an export there too.
    let other = dir.path().join("y.jsonl");
    fs::write(manifest_of(&other), b"{}").unwrap();
    let e = sealog_export::export(
        &ledger,
        &request(&other, Format::Jsonl, Query::default()),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 3);
    let out = dir.path().join("no/such/dir/x.jsonl");
    let e = sealog_export::export(
        &ledger,
        &request(&out, Format::Jsonl, Query::default()),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
}

#[test]
fn an_export_interrupted_midway_leaves_nothing_under_any_name() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 20);
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("x.jsonl");
    let req = request(&out, Format::Jsonl, Query::default());
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sealog_export::export(&ledger, &req, &mut |done, total| {
            if done == total {
                panic!("interrupted after every record was written");
            }
        })
    }));
    assert!(interrupted.is_err());
    let left: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    // A pending export dropped before its commit leaves nothing either.
    let pending = sealog_export::prepare(&ledger, &req, &mut |_, _| {}).unwrap();
    assert!(!out.exists(), "not under its name before the commit");
    drop(pending);
    assert_eq!(fs::read_dir(&out_dir).unwrap().count(), 0);
}

#[test]
fn a_record_outside_the_callers_reach_stops_the_export() {
    // The reach (a tenant's, a data subject's) is checked on every record as it is written,
    // beside the index walk: a selection that would hold another tenant's record fails.
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 12);
    let out = dir.path().join("x.jsonl");
    let mut req = request(&out, Format::Jsonl, Query::default());
    req.must_have = vec![eq("tenant", "t1")];
    let e = sealog_export::export(&ledger, &req, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("does not have tenant"), "{e}");
    assert!(!out.exists());
    req.selection.query.equals = vec![eq("tenant", "t1")];
    assert_eq!(export(&ledger, &req).count, 4);
}

#[test]
fn a_checkpoint_of_another_log_or_a_cut_past_the_log_is_refused() {
    let dir = tempdir();
    let ledger = filled(&dir.path().join("data"), 8);
    let other = filled(&dir.path().join("other"), 8);
    let out = dir.path().join("x.jsonl");
    let mut req = request(&out, Format::Jsonl, Query::default());
    req.selection = Selection {
        checkpoint: Some(other.checkpoint().unwrap().note),
        ..req.selection
    };
    let e = sealog_export::export(&ledger, &req, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("not this log's"), "{e}");
    req.selection.checkpoint = None;
    req.selection.as_of = Some(9);
    let e = sealog_export::export(&ledger, &req, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("past the end of the log"), "{e}");
    assert!(!out.exists());
}
