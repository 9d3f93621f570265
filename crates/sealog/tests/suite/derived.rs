//! Trust nothing derived: the damage that once made Sealog answer wrongly, or lose evidence
//! without a word, one test each, through the real binary. (The whole corpus of damage, to
//! every kind of file, is `damage.rs`; the server's key file and request memory are the
//! server's own tests; numbers are the ledger's.)

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sealog_ledger::{Ledger, LedgerConfig, Packs, StoreConfig, Undeclared};
use sealog_model::Canonical;
use sealog_model::json::Json;
use sealog_testkit::events::ndjson;
use sealog_testkit::files::{copy_dir, flip_byte, make_writable, truncate};
use sealog_testkit::format::{HEADER_BYTES, encode_frame, forge, frames, segments};
use sealog_testkit::{Api, Cli, Run, ServerProcess};
use serde_json::{Value, json};
use tempfile::TempDir;

const RECORDS: u64 = 600;
const QUARANTINED: u64 = 40;

fn event(i: u64) -> Value {
    json!({
        "specversion": "1.0", "id": format!("base-{i}"), "source": "shop", "type": "shop.order",
        "time": format!("2026-02-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24),
        "tenant": format!("t{}", i % 3), "subject": format!("order-{}", i % 50),
        "data": {"amount_cents": 1000 + i, "currency": "EUR"},
    })
}

/// An event of a built-in type without what its pack requires: quarantined with its bytes
/// (of a pack that declares no personal field, whose payloads are kept as sent).
fn incomplete(i: u64) -> Value {
    let mut e = sealog_testkit::events::example("coordination.decision");
    e["id"] = json!(format!("broken-{i}"));
    e["data"] = json!({"note": i});
    e
}

struct Fixture {
    tmp: TempDir,
    pristine: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = TempDir::new().unwrap();
        let pristine = tmp.path().join("pristine");
        let cli = cli(&pristine);
        let mut events: Vec<Value> = (0..RECORDS).map(event).collect();
        events.extend((0..QUARANTINED).map(incomplete));
        // Exit 1: some events were quarantined, as meant.
        let appended = cli.run(&["append"], &ndjson(&events));
        assert_eq!(appended.code, 1, "{}", appended.stderr);
        let report = cli.ok(&["verify", "--full"], b"").json();
        assert_eq!(report["records"], RECORDS);
        assert_eq!(report["quarantine"]["records"], QUARANTINED);
        Fixture { tmp, pristine }
    })
}

/// A fresh copy of the pristine directory.
fn copy(name: &str) -> (Cli, PathBuf) {
    let f = fixture();
    let dir = f.tmp.path().join(format!("{name}-{}", rand_suffix()));
    copy_dir(&f.pristine, &dir);
    (cli(&dir), dir)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

fn record_id(i: u64) -> String {
    Canonical::of_event(&Json::from_value(&event(i)))
        .unwrap()
        .record_id
        .to_string()
}

/// `verify`, on a copy of the damaged directory as it is now (verify marks derived damage
/// for rebuilding, and the commands that follow should meet the damage, not the mark), fails
/// and names `file`.
fn verify_names(cli: &Cli, args: &[&str], file: &str) {
    let copy = cli
        .dir
        .with_extension(format!("verified-{}", rand_suffix()));
    copy_dir(&cli.dir, &copy);
    let run = self::cli(&copy).run(args, b"");
    assert_eq!(run.code, 1, "verify should fail: {}", run.stdout);
    let report = run.json();
    assert_eq!(report["status"], "damaged");
    let said = format!("{} {}", report["location"], report["message"]);
    assert!(said.contains(file), "verify should name {file}: {said}");
}

/// Either the right answer or an error: never another record, never "no record".
fn get_is_right_or_an_error(cli: &Cli, what: &str, seq: u64) {
    let run = cli.run(&["get", what], b"");
    if run.code == 0 {
        let r: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(r["seq"], seq, "get {what} answered another record");
        assert_eq!(r["id"], format!("base-{seq}"));
    } else {
        assert!(
            !run.stderr.contains("no record"),
            "get {what} answered that the record does not exist: {}",
            run.stderr
        );
    }
}

/// Re-sending event `i` is a duplicate of its original, or refused: never appended again.
fn resend_is_a_duplicate_or_an_error(cli: &Cli, i: u64) {
    let run = cli.run(&["append"], &ndjson(&[event(i)]));
    for line in run.stdout.lines().filter(|l| !l.is_empty()) {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_ne!(r["status"], "appended", "event {i} was appended twice: {r}");
        if r["status"] == "duplicate" {
            assert_eq!(r["seq"], i);
        }
    }
}

/// The query's seqs, or `None` for an error.
fn query(cli: &Cli, args: &[&str]) -> Option<Vec<u64>> {
    let mut all = vec!["query", "--limit", "1000"];
    all.extend(args);
    let run = cli.run(&all, b"");
    (run.code == 0).then(|| {
        run.lines()
            .iter()
            .filter_map(|r| r["seq"].as_u64())
            .collect()
    })
}

fn run_ok(cli: &Cli, args: &[&str]) -> Run {
    cli.ok(args, b"")
}

/// The command that meets the damage answers an error and marks it, or the opening finds it
/// first, or `verify` does and marks it; the next opening rebuilds it from the log, and then
/// every answer is right and the directory verifies. Returns whether a rebuild was reported.
fn recovers(cli: &Cli) -> bool {
    let mut reported = false;
    for _ in 0..3 {
        let run = cli.run(&["get", "300"], b"");
        reported |= run.stderr.contains("rebuilt from the log");
        if run.code != 0 {
            assert!(run.stderr.contains("corrupted"), "{}", run.stderr);
            continue;
        }
        let r: Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(r["id"], "base-300");
        let verified = cli.run(&["verify", "--full"], b"");
        if verified.code == 0 {
            return reported;
        }
        assert!(
            verified.stderr.contains("the next opening rebuilds it"),
            "{}",
            verified.stderr
        );
    }
    panic!("the damage was not rebuilt by the openings that followed it")
}

/// As [`recovers`], for damage no command has met yet: the rebuild must be reported.
fn rebuilt_and_intact(cli: &Cli) {
    assert!(recovers(cli), "the rebuild was not reported");
}

fn index_file(dir: &Path, ext: &str) -> PathBuf {
    fs::read_dir(dir.join("index"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap_or_else(|| panic!("no .{ext} run file"))
}

// ---------------------------------------------------------------------------------------------
// 1. Dedupe

#[test]
fn a_flipped_byte_in_an_index_run_or_its_bloom_filter_never_breaks_dedupe() {
    for ext in ["rid", "bloom", "sum"] {
        for at in [0.1, 0.5, 0.9] {
            let (cli, dir) = copy(ext);
            let file = index_file(&dir, ext);
            let len = fs::metadata(&file).unwrap().len();
            flip_byte(&file, (len as f64 * at) as u64);
            verify_names(&cli, &["verify"], &format!(".{ext}"));
            get_is_right_or_an_error(&cli, &record_id(300), 300);
            resend_is_a_duplicate_or_an_error(&cli, 300);
            recovers(&cli);
            resend_is_a_duplicate_or_an_error(&cli, 300);
            run_ok(&cli, &["verify", "--full"]);
        }
    }
}

/// The id entry of record `i` pointed at `seq`, its checksums made again.
fn point_id_of(dir: &Path, i: u64, seq: u64) {
    let id: [u8; 32] = hex::decode(&record_id(i)["sha256:".len()..])
        .unwrap()
        .try_into()
        .unwrap();
    let pointed = fs::read_dir(dir.join("index"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rid"))
        .any(|run| sealog_testkit::format::point_id_entry(&run, &id, seq));
    assert!(pointed, "record {i}'s id is in a run");
}

#[test]
fn an_id_entry_pointed_at_another_record_with_its_checksums_made_again_is_found() {
    // Earlier and later: a read by id would answer the record pointed at, and dedupe take a
    // later one for the earlier.
    for other in [7, 450] {
        let (cli, dir) = copy("repointed");
        point_id_of(&dir, 300, other);
        verify_names(&cli, &["verify", "--full"], "index");
        get_is_right_or_an_error(&cli, &record_id(300), 300);
        resend_is_a_duplicate_or_an_error(&cli, 300);
        recovers(&cli);
        get_is_right_or_an_error(&cli, &record_id(300), 300);
    }
}

#[test]
fn an_index_whose_derivation_is_no_longer_recorded_is_rebuilt_on_open() {
    let (cli, dir) = copy("underived");
    point_id_of(&dir, 300, 450);
    fs::remove_file(dir.join("index").join("DERIVER")).unwrap();
    // Unchecked against the log without it, then rebuilt by the next opening.
    let run = cli.run(&["get", &record_id(300)], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("rebuilt from the log"),
        "{}",
        run.stderr
    );
    let r: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(r["seq"], 300);
    run_ok(&cli, &["verify", "--full"]);
}

#[test]
fn a_pid_written_into_lock_does_not_stop_strict_verify_short_of_an_unsigned_tail() {
    let (cli, dir) = copy("claimed");
    // A well-formed record appended after the last signed checkpoint, as whoever can write
    // the directory could.
    let (path, last) = locate(&dir, RECORDS - 1);
    let bytes = fs::read(&path).unwrap();
    let forged = forge(&bytes[last.start as usize + 8..last.end as usize], |e| {
        e["id"] = json!("injected");
    });
    let mut record: Value = serde_json::from_slice(&forged).unwrap();
    record["seq"] = json!(RECORDS);
    let mut frame = Vec::new();
    encode_frame(&sealog_model::jcs::to_vec(&record).unwrap(), &mut frame);
    make_writable(&path);
    let mut segment = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut segment, &frame).unwrap();
    let strict = |cli: &Cli| {
        let run = cli.run(&["verify", "--strict"], b"");
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert!(run.stderr.contains("not vouched for"), "{}", run.stderr);
    };
    strict(&cli);
    // A process that always runs, named as the writer: it holds no lock on the file.
    fs::write(dir.join("LOCK"), "1").unwrap();
    strict(&cli);
}

// ---------------------------------------------------------------------------------------------
// 2. Wrong answers

#[test]
fn swapped_positions_entries_never_answer_another_record_on_the_cli_or_over_http() {
    let (cli, dir) = copy("positions");
    let path = dir.join("index/positions");
    let mut bytes = fs::read(&path).unwrap();
    let (a, b) = (300 * 32, 301 * 32);
    let first = bytes[a..a + 32].to_vec();
    bytes.copy_within(b..b + 32, a);
    bytes[b..b + 32].copy_from_slice(&first);
    fs::write(&path, &bytes).unwrap();
    let http_copy = dir.with_extension("http");
    copy_dir(&dir, &http_copy);
    verify_names(&cli, &["verify"], "positions");

    get_is_right_or_an_error(&cli, "300", 300);
    get_is_right_or_an_error(&cli, &record_id(301), 301);
    if let Some(seqs) = query(&cli, &["--id", "base-300"]) {
        assert_eq!(seqs, [300], "query --id base-300");
    }

    let mut server = ServerProcess::start(&self::cli(&http_copy), &[]);
    let mut refused = false;
    for seq in [300, 301] {
        let r = server.get(&format!("/v1/records/{seq}"), None);
        if r.status == 200 {
            assert_eq!(r.json()["seq"], seq, "GET /v1/records/{seq}");
        } else {
            assert!(r.status >= 500, "{}", r.text());
            refused = true;
        }
    }
    if !refused {
        server.stop();
        return;
    }
    // The damaged file stopped the store: the server says so when it stops.
    sealog_testkit::cli::signal(server.child.id(), libc::SIGTERM);
    let status = server.wait_exit(sealog_testkit::http::SERVER_SECS_MAX);
    assert!(
        !status.success()
            && server
                .log_text()
                .contains("the store stopped taking writes while serving"),
        "{status}: {}",
        server.log_text()
    );
}

#[test]
fn a_changed_time_posting_or_key_filter_entry_never_shortens_a_query() {
    let (pristine_cli, _) = copy("truth");
    let window = [
        "--from",
        "2026-02-03T00:00:00Z",
        "--to",
        "2026-02-09T00:00:00Z",
    ];
    let by_tenant = ["--tenant", "t1"];
    let want_window = query(&pristine_cli, &window).unwrap();
    let want_tenant = query(&pristine_cli, &by_tenant).unwrap();
    assert!(want_window.len() > 50 && want_tenant.len() > 50);
    for (ext, args, want) in [
        ("time", &window[..], &want_window),
        ("post", &by_tenant[..], &want_tenant),
        ("kbloom", &by_tenant[..], &want_tenant),
    ] {
        for at in [0.2, 0.6] {
            let (cli, dir) = copy(ext);
            let file = index_file(&dir, ext);
            let len = fs::metadata(&file).unwrap().len();
            flip_byte(&file, (len as f64 * at) as u64);
            verify_names(&cli, &["verify"], &format!(".{ext}"));
            if let Some(got) = query(&cli, args) {
                assert_eq!(&got, want, "query {args:?} after a flip in .{ext}");
            }
            recovers(&cli);
            assert_eq!(&query(&cli, args).unwrap(), want);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Tampered records, tampered proofs

/// Where record `seq` is: its segment and the byte range of its frame.
fn locate(dir: &Path, seq: u64) -> (PathBuf, std::ops::Range<u64>) {
    let segs = segments(&dir.join("log"));
    let (first, path) = segs.iter().rev().find(|(first, _)| *first <= seq).unwrap();
    let bytes = fs::read(path).unwrap();
    let frame = frames(&bytes, HEADER_BYTES as usize)[(seq - first) as usize].clone();
    (path.clone(), frame)
}

#[test]
fn a_record_edited_behind_a_valid_frame_checksum_is_never_served() {
    let (cli, dir) = copy("forged");
    let (path, frame) = locate(&dir, 300);
    let mut bytes = fs::read(&path).unwrap();
    // The same number of digits, a new record_id of the same length: nothing else moves.
    let payload = forge(&bytes[frame.start as usize + 8..frame.end as usize], |e| {
        e["data"]["amount_cents"] = json!(9999)
    });
    let record: Value = serde_json::from_slice(&payload).unwrap();
    let forged_id = record["record_id"].as_str().unwrap().to_string();
    let mut forged = Vec::new();
    encode_frame(&payload, &mut forged);
    assert_eq!(forged.len() as u64, frame.end - frame.start);
    bytes[frame.start as usize..frame.end as usize].copy_from_slice(&forged);
    make_writable(&path);
    fs::write(&path, &bytes).unwrap();
    verify_names(&cli, &["verify"], "seq 300");

    let run = cli.run(&["get", "300"], b"");
    assert_ne!(run.code, 0, "the edited record was served: {}", run.stdout);
    assert!(!run.stdout.contains("9999"));
    let run = cli.run(&["get", &forged_id], b"");
    assert!(!run.stdout.contains("9999"), "served by its forged id");
    get_is_right_or_an_error(&cli, "299", 299);
    // The opening that follows the failed read does not rebuild the tree over the change:
    // the stored tree still shows where the log was changed.
    let run = cli.run(&["get", "299"], b"");
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("records were changed"),
        "{}",
        run.stderr
    );
    verify_names(&cli, &["verify"], "seq 300");
}

#[test]
fn flipped_tree_nodes_never_hand_out_a_wrong_proof() {
    for level in ["level-00", "level-02", "level-05"] {
        let (cli, dir) = copy("tree");
        let file = dir.join("tree").join(level);
        flip_byte(&file, fs::metadata(&file).unwrap().len() / 3);
        verify_names(&cli, &["verify"], level);
        let checkpoint = run_ok(&cli, &["checkpoint"]).stdout;
        let vkey = fs::read_to_string(dir.join("keys/log.pub")).unwrap();
        let verifier = sealog_merkle::note::Verifier::parse(vkey.trim()).unwrap();
        let opened =
            sealog_merkle::note::open(&checkpoint, &[&verifier]).expect("a signed checkpoint");
        let signed = sealog_merkle::checkpoint::Checkpoint::parse(&opened.text).unwrap();
        // Each proof is asked at the checkpoint's size: every read appends its own access
        // record, so the log's newest size moves on between them.
        let size = signed.size.to_string();
        for seq in [5, 150, 433] {
            let run = cli.run(
                &["prove", "inclusion", &seq.to_string(), "--size", &size],
                b"",
            );
            if run.code != 0 {
                continue;
            }
            let proof = run.json();
            let b64 = |v: &Value| -> [u8; 32] {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            };
            let hashes: Vec<[u8; 32]> = proof["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(b64)
                .collect();
            sealog_merkle::verify_inclusion(
                &b64(&proof["leaf_hash"]),
                seq,
                signed.size,
                &signed.root,
                &hashes,
            )
            .unwrap_or_else(|e| {
                panic!("{level}: a proof of {seq} that does not verify was handed out: {e}")
            });
        }
        recovers(&cli);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Evidence

fn payload_refs(dir: &Path) -> Vec<String> {
    let ledger = Ledger::open_read_only(dir, config()).unwrap();
    let q = sealog_ledger::Query {
        limit: 1000,
        ..Default::default()
    };
    let page = ledger.quarantine_query(&q).unwrap();
    page.records
        .iter()
        .map(|(_, b)| {
            let r: Value = serde_json::from_slice(b).unwrap();
            r["data"]["payload_ref"].as_str().unwrap().to_string()
        })
        .collect()
}

fn config() -> LedgerConfig {
    LedgerConfig {
        store: StoreConfig::default(),
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    }
}

#[test]
fn damaged_cut_or_deleted_quarantine_payloads_are_errors_never_absent() {
    let refs = payload_refs(&fixture().pristine);
    assert_eq!(refs.len() as u64, QUARANTINED);
    let last = refs.last().unwrap().clone();
    type Harm = fn(&Path);
    let harms: [(&str, Harm); 4] = [
        ("flipped", |p| {
            flip_byte(p, fs::metadata(p).unwrap().len() - 5)
        }),
        ("cut inside the last payload", |p| {
            truncate(p, fs::metadata(p).unwrap().len() - 3)
        }),
        ("cut at a payload's end", |p| {
            let bytes = fs::read(p).unwrap();
            let first = 36 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as u64;
            truncate(p, first)
        }),
        ("deleted", |p| fs::remove_file(p).unwrap()),
    ];
    for (what, harm) in harms {
        let (cli, dir) = copy("payloads");
        harm(&dir.join("quarantine/payloads"));
        verify_names(&cli, &["verify"], "quarantine/payloads");
        for read_only in [true, false] {
            let ledger = if read_only {
                Ledger::open_read_only(&dir, config())
            } else {
                Ledger::open(&dir, config())
            };
            let Ok(ledger) = ledger else { continue };
            let answer = ledger.quarantine_payload(&last);
            assert!(
                answer.is_err(),
                "{what} (read-only: {read_only}): the payload a record names was answered {:?}",
                answer.map(|p| p.map(|b| b.len()))
            );
            let _ = ledger.close();
        }
    }
}

#[test]
fn a_lost_payload_is_a_server_error_not_a_404() {
    let (_cli, dir) = copy("payloads-http");
    let refs = payload_refs(&dir);
    let p = dir.join("quarantine/payloads");
    let bytes = fs::read(&p).unwrap();
    let first = 36 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as u64;
    truncate(&p, first);
    let app = sealog_testkit::InProcess::start(&dir);
    let (auditor, _) = app.create_key(&["auditor"], None, None);
    let kept = app.get(
        &format!("/v1/quarantine/payloads/{}", refs[0]),
        Some(&auditor),
    );
    assert_eq!(kept.status, 200, "{}", kept.text());
    let lost = app.get(
        &format!("/v1/quarantine/payloads/{}", refs[1]),
        Some(&auditor),
    );
    assert_eq!(
        lost.status,
        500,
        "a lost payload is not 'no payload': {}",
        lost.text()
    );
    let none = app.get(
        &format!("/v1/quarantine/payloads/sha256:{}", "0".repeat(64)),
        Some(&auditor),
    );
    assert_eq!(
        none.status, 404,
        "a payload nobody names is still 'no payload'"
    );
    app.stop();
}

// ---------------------------------------------------------------------------------------------
// 6. Keys

#[test]
fn a_missing_private_key_never_replaces_the_public_one() {
    let (cli, dir) = copy("no-private-key");
    let public = fs::read(dir.join("keys/log.pub")).unwrap();
    fs::remove_file(dir.join("keys/log.key")).unwrap();

    let run = cli.run(&["append"], &ndjson(&[event(RECORDS)]));
    assert_ne!(
        run.code, 0,
        "appended without the signing key: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("keys/log.key is missing") && run.stderr.contains("restore"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(dir.join("keys/log.pub")).unwrap(), public);
    assert!(!dir.join("keys/log.key").exists(), "no new pair was made");
    // A backup without secrets can still be read and verified.
    let got = run_ok(&cli, &["get", "5"]);
    assert!(got.stderr.contains("read-only"), "{}", got.stderr);
    run_ok(&cli, &["verify", "--full"]);
    assert_eq!(fs::read(dir.join("keys/log.pub")).unwrap(), public);
}

// ---------------------------------------------------------------------------------------------
// 9. Smaller ones

#[test]
fn invalid_utf8_in_the_latest_checkpoint_fails_verify() {
    let (cli, dir) = copy("latest-utf8");
    let latest = dir.join("checkpoints/latest");
    let mut bytes = fs::read(&latest).unwrap();
    bytes[3] = 0xff;
    fs::write(&latest, bytes).unwrap();
    verify_names(&cli, &["verify"], "checkpoints/latest");
    // It is a copy of the newest note: the next opening writes it again.
    rebuilt_and_intact(&cli);
}

#[test]
fn a_flipped_manifest_or_signing_key_byte_is_named_not_a_utf8_error() {
    let (cli, dir) = copy("manifest");
    flip_byte(&dir.join("index/MANIFEST"), 3);
    verify_names(&cli, &["verify"], "MANIFEST");
    rebuilt_and_intact(&cli);

    let (cli, dir) = copy("signing-key");
    flip_byte(&dir.join("keys/log.key"), 10);
    let run = cli.run(&["append"], &ndjson(&[event(RECORDS)]));
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("keys/log.key is damaged") && !run.stderr.contains("UTF-8"),
        "{}",
        run.stderr
    );
    verify_names(&cli, &["verify"], "keys/log.key");
}

#[test]
fn a_flipped_positions_entry_is_blamed_on_positions_not_the_log() {
    let (cli, dir) = copy("positions-flip");
    flip_byte(&dir.join("index/positions"), 300 * 32 + 3);
    verify_names(&cli, &["verify"], "index/positions");
    rebuilt_and_intact(&cli);
}

#[test]
fn a_damaged_last_checkpoint_frame_is_not_cut_as_a_torn_tail() {
    let (cli, dir) = copy("checkpoint-frame");
    let log = dir.join("checkpoints/log");
    let len = fs::metadata(&log).unwrap().len();
    flip_byte(&log, len - 10);
    verify_names(&cli, &["verify"], "checkpoints/log");
    let before = fs::read(&log).unwrap();
    let run = cli.run(&["get", "5"], b"");
    assert_ne!(
        run.code, 0,
        "opened over a damaged checkpoint: {}",
        run.stderr
    );
    assert_eq!(
        fs::read(&log).unwrap(),
        before,
        "the damaged checkpoint was cut"
    );
}
