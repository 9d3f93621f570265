//! Witnessing against real processes: `sealog witness serve` cosigns what `sealog serve`
//! submits, keeps its state across restarts, refuses replays, malformed requests and a
//! rewritten log (seed 001's operator with full access to the data directory), and
//! `verify --witness` / `--trusted` take trust from outside the directory.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use sealog_testkit::events::{event, ndjson};
use sealog_testkit::{Api, Cli, ServerProcess};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

struct Witness {
    process: ServerProcess,
    key: String,
}

fn start_witness(state: &Path, listen: &str, logs: &[String]) -> Witness {
    let c = cli(state);
    let key = c
        .ok(&["witness", "key", "--state", state.to_str().unwrap()], b"")
        .stdout
        .trim()
        .to_string();
    let mut args = vec![
        "witness".to_string(),
        "serve".into(),
        "--listen".into(),
        listen.into(),
        "--state".into(),
        state.to_str().unwrap().into(),
    ];
    for l in logs {
        args.extend(["--log".to_string(), l.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Witness {
        process: ServerProcess::spawn(c.command(&args), state),
        key,
    }
}

/// The log's verifier key (created with the log).
fn log_key(c: &Cli) -> String {
    c.ok(&["checkpoint", "--verifier-key"], b"")
        .stdout
        .trim()
        .to_string()
}

fn origin_of(vkey: &str) -> &str {
    vkey.split('+').next().unwrap()
}

fn post(server: &ServerProcess, events: &[Value]) {
    let r = server.req(
        "POST",
        "/v1/events",
        None,
        Some(("application/x-ndjson", &ndjson(events))),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Polls `/readyz` until `done` holds of its `witnessing` part.
fn wait_witnessing(server: &ServerProcess, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = server.req("GET", "/readyz", None, None);
        let w = r.json()["witnessing"].clone();
        if done(&w) {
            return w;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}: {w}; log: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn final_covers(w: &Value) -> bool {
    w["final_size"].as_u64().is_some() && w["final_size"] == w["signed_size"]
}

/// Checks a witness's cosignature on `note` with ed25519 alone, following C2SP
/// tlog-cosignature: key id `SHA-256(name || "\n" || 0x04 || key)[..4]`, signature
/// `key id || u64 timestamp || Ed25519 signature` over
/// `cosignature/v1\ntime <timestamp>\n<checkpoint text>`.
fn check_cosignature_independently(note: &str, witness_vkey: &str) -> u64 {
    let mut parts = witness_vkey.splitn(3, '+');
    let (name, id, material) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let material = B64.decode(material).unwrap();
    assert_eq!(material[0], 0x04, "a cosignature key has type 0x04");
    let key = VerifyingKey::from_bytes(material[1..].try_into().unwrap()).unwrap();
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x04");
    h.update(key.as_bytes());
    let expected_id = &h.finalize()[..4];
    assert_eq!(hex::encode(expected_id), id);
    let split = note.rfind("\n\n").expect("a signed note");
    let text = &note[..=split];
    let line = note[split + 2..]
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {name} ")))
        .unwrap_or_else(|| panic!("no cosignature by {name} in {note}"));
    let blob = B64.decode(line.rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(blob.len(), 4 + 8 + 64);
    assert_eq!(&blob[..4], expected_id);
    let timestamp = u64::from_be_bytes(blob[4..12].try_into().unwrap());
    let message = format!("cosignature/v1\ntime {timestamp}\n{text}");
    let sig = Signature::from_slice(&blob[12..]).unwrap();
    key.verify_strict(message.as_bytes(), &sig)
        .expect("the cosignature verifies with ed25519 alone");
    timestamp
}

fn one(history: &str, i: u64) -> Value {
    event(&format!("{history}-{i}"), None, "s1", "test.witnessed")
}

/// A log (its key made) and a place for a witness's state, in one temporary directory.
struct Setup {
    tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    c: Cli,
    vkey: String,
    origin: String,
    wstate: std::path::PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let c = cli(&data);
        let vkey = log_key(&c);
        let origin = origin_of(&vkey).to_string();
        let wstate = tmp.path().join("witness");
        Setup {
            tmp,
            data,
            c,
            vkey,
            origin,
            wstate,
        }
    }
}

/// `serve --witness` with this witness.
fn serve_with(c: &Cli, witness: &Witness) -> ServerProcess {
    let peer = format!("{}={}", witness.process.url(), witness.key);
    ServerProcess::start(c, &["--witness", &peer])
}

fn events(history: &str, range: std::ops::Range<u64>) -> Vec<Value> {
    range.map(|i| one(history, i)).collect()
}

#[test]
fn a_witness_cosigns_each_checkpoint_and_verify_requires_it() {
    let Setup {
        tmp,
        data,
        c,
        vkey,
        origin,
        wstate,
    } = Setup::new();
    let witness = start_witness(&wstate, "127.0.0.1:0", &[format!("{origin}={vkey}")]);
    let server = serve_with(&c, &witness);
    post(&server, &events("cosigned", 0..20));
    let w = wait_witnessing(&server, "the checkpoint of 20 records cosigned", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(20)
    });
    assert_eq!(w["quorum"], 1);
    assert_eq!(w["unwitnessed_records"], 0);
    let note = server.req("GET", "/checkpoint", None, None).text();
    let when = check_cosignature_independently(&note, &witness.key);
    assert!(when > 1_700_000_000, "a POSIX timestamp: {when}");
    let metrics = server.req("GET", "/metrics", None, None).text();
    assert!(
        metrics.contains("sealog_witness_requests_total")
            && metrics.contains("outcome=\"cosigned\""),
        "{metrics}"
    );

    // The witness keeps what it cosigned, by origin.
    let size = w["final_size"].as_u64().unwrap();
    let kept: Vec<_> = std::fs::read_dir(wstate.join("logs")).unwrap().collect();
    assert_eq!(kept.len(), 1);
    let kept = std::fs::read_to_string(kept[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(kept.lines().nth(1), Some(size.to_string().as_str()));

    // A replayed request (what the server sent first, from size 0) is refused with the size
    // the witness holds, as the spec says.
    let (text, _) = note.split_at(note.rfind("\n\n").unwrap() + 1);
    let log_sig = note
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {origin} ")))
        .unwrap();
    let plain = format!("{text}\n{log_sig}\n");
    let replay = witness.process.req(
        "POST",
        "/add-checkpoint",
        None,
        Some(("text/plain", format!("old 0\n\n{plain}").as_bytes())),
    );
    assert_eq!(replay.status, 409, "{}", replay.text());
    assert_eq!(replay.header("content-type"), Some("text/x.tlog.size"));
    assert_eq!(replay.text(), format!("{size}\n"));
    // Malformed, unknown and oversized requests.
    for (body, status) in [
        ("old x\n\n".to_string(), 400),
        (format!("old {}\n\n{plain}", size + 1), 400),
        (
            format!(
                "old {size}\n\n{}",
                plain.replace(&origin, "example.com/other")
            ),
            404,
        ),
        (
            format!(
                "old {size}\n\n{}",
                plain.replace(log_sig, &format!("\u{2014} x {}", B64.encode([0u8; 68])))
            ),
            403,
        ),
        (format!("old 0\n{}\n{plain}", "AAAA\n".repeat(70)), 400),
        (format!("old 0\n\n{plain}{}", "x".repeat(100_000)), 413),
    ] {
        let r = witness.process.req(
            "POST",
            "/add-checkpoint",
            None,
            Some(("text/plain", body.as_bytes())),
        );
        assert_eq!(r.status, status, "{body:.60}: {}", r.text());
    }
    let wrong_method = witness.process.req("GET", "/add-checkpoint", None, None);
    assert_eq!(wrong_method.status, 405);

    // More records, then a clean stop: the final checkpoint of the close is signed after the
    // server stopped submitting, so it is the unwitnessed tail.
    post(&server, &events("cosigned", 20..30));
    wait_witnessing(&server, "30 records cosigned", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(30)
    });
    server.stop();
    let ok = c.ok(&["verify", "--witness", &witness.key], b"");
    let report = ok.json();
    assert!(report["witnessed_records"].as_u64() >= Some(30), "{report}");
    assert_eq!(
        report["cosigned"], 1,
        "the newest checkpoint the witness cosigned: {report}"
    );
    // The series cut back to its first checkpoint (and `latest` with it): the kept
    // cosignatures show it was rewound.
    let rewound = tmp_copy(&data);
    let log_path = rewound.join("checkpoints/log");
    let (notes, _) = sealog_testkit::format::checkpoint_notes(&log_path);
    let mut first = Vec::new();
    sealog_testkit::format::encode_frame(notes[0].as_bytes(), &mut first);
    std::fs::write(&log_path, first).unwrap();
    std::fs::write(rewound.join("checkpoints/latest"), &notes[0]).unwrap();
    let cut = cli(&rewound).run(&["verify"], b"");
    assert_eq!(cut.code, 1, "{}", cut.stderr);
    assert!(
        cut.stderr.contains("the series was rewound"),
        "{}",
        cut.stderr
    );
    std::fs::remove_dir_all(&rewound).unwrap();
    // A witness that never cosigned this log: refused, whatever the checkpoints say.
    let stranger = cli(&tmp.path().join("stranger"))
        .ok(
            &[
                "witness",
                "key",
                "--state",
                tmp.path().join("stranger").to_str().unwrap(),
            ],
            b"",
        )
        .stdout
        .trim()
        .to_string();
    let refused = c.run(&["verify", "--witness", &stranger], b"");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cosigned by 1 of the 1"),
        "{}",
        refused.stderr
    );
    // A quorum of one of the two keys is met.
    c.ok(
        &[
            "verify",
            "--witness",
            &witness.key,
            "--witness",
            &stranger,
            "--witness-quorum",
            "1",
        ],
        b"",
    );
    // One witness given twice never makes a quorum of two: verify and serve refuse it (the
    // same key under another name is refused too; the unit tests of the key cover that).
    let refused = c.run(
        &[
            "verify",
            "--witness",
            &witness.key,
            "--witness",
            &witness.key,
            "--witness-quorum",
            "2",
        ],
        b"",
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("are one witness"),
        "{}",
        refused.stderr
    );
    let peer = format!("{}={}", witness.process.url(), witness.key);
    let refused = c.run_within(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--witness",
            &peer,
            "--witness",
            &peer,
        ],
        b"",
        Duration::from_secs(60),
    );
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("are one witness"),
        "{}",
        refused.stderr
    );

    // The witness restarts with its state; the server restarts from its kept cosignatures
    // and the next checkpoint extends what the witness holds.
    witness.process.stop();
    let witness = start_witness(&wstate, "127.0.0.1:0", &[format!("{origin}={vkey}")]);
    let server = serve_with(&c, &witness);
    post(&server, &events("cosigned", 30..35));
    let w = wait_witnessing(&server, "35 records cosigned after restarts", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(35)
    });
    assert_eq!(w["witnesses"][0]["failures"], 0, "{w}");
    server.stop();
    witness.process.stop();
}

#[test]
fn a_witness_that_is_down_delays_finality_never_appends() {
    let Setup {
        tmp: _tmp,
        data: _,
        c,
        vkey,
        origin,
        wstate,
    } = Setup::new();
    let wkey = c
        .ok(
            &["witness", "key", "--state", wstate.to_str().unwrap()],
            b"",
        )
        .stdout
        .trim()
        .to_string();
    // A port nothing listens on, for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(&c, &["--witness", &format!("http://{listen}={wkey}")]);
    post(&server, &events("down", 0..10));
    let w = wait_witnessing(&server, "the failure counted", |w| {
        w["witnesses"][0]["failures"].as_u64() >= Some(1)
    });
    assert!(w["final_size"].is_null(), "{w}");
    assert!(w["witnesses"][0]["error"].as_str().is_some(), "{w}");
    let ready = server.req("GET", "/readyz", None, None);
    assert_eq!(
        ready.status, 200,
        "a down witness does not make the server unready"
    );
    let pending = server.req("GET", "/checkpoint", None, None);
    assert_eq!(pending.status, 503);
    assert_eq!(pending.code(), "WITNESS_PENDING");
    assert!(pending.header("retry-after").is_some());
    let metrics = server.req("GET", "/metrics", None, None).text();
    assert!(metrics.contains("outcome=\"unreachable\""), "{metrics}");
    assert!(
        metrics.contains("sealog_checkpoint_unwitnessed_records"),
        "{metrics}"
    );
    // Appends go on.
    post(&server, &events("down", 10..20));
    // The witness comes up: finality follows.
    let witness = start_witness(&wstate, &listen, &[format!("{origin}={vkey}")]);
    let w = wait_witnessing(&server, "cosigned once the witness is up", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(20)
    });
    assert!(w["witnesses"][0]["error"].is_null(), "{w}");
    let note = server.req("GET", "/checkpoint", None, None).text();
    check_cosignature_independently(&note, &witness.key);
    server.stop();
    witness.process.stop();
}

/// Seed 001: one person with full access to the data directory rewrites a record, rebuilds
/// the tree and re-signs every checkpoint with the log's own key. Alone, `verify` cannot tell;
/// the witness, `verify --witness` and a client's earlier checkpoint can.
#[test]
fn an_operator_who_rewrites_the_log_is_caught_by_the_witness() {
    let Setup {
        tmp,
        data,
        c,
        vkey,
        origin,
        wstate,
    } = Setup::new();
    let witness = start_witness(&wstate, "127.0.0.1:0", &[format!("{origin}={vkey}")]);
    let server = serve_with(&c, &witness);
    let genuine = events("history", 0..12);
    post(&server, &genuine);
    wait_witnessing(&server, "12 records cosigned", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(12)
    });
    // A client keeps the cosigned checkpoint it was shown.
    let client_copy = tmp.path().join("client-checkpoint");
    std::fs::write(
        &client_copy,
        server.req("GET", "/checkpoint", None, None).text(),
    )
    .unwrap();
    server.stop();

    // The forgery: the same key, the same events but one changed, and one more, so the
    // rewritten log is longer than what the witness saw.
    let forged_dir = tmp.path().join("forged");
    std::fs::create_dir_all(forged_dir.join("keys")).unwrap();
    for f in ["log.key", "log.pub"] {
        std::fs::copy(data.join("keys").join(f), forged_dir.join("keys").join(f)).unwrap();
    }
    let mut rewritten = genuine.clone();
    rewritten[5]["data"]["forged"] = Value::Bool(true);
    rewritten.push(one("history", 12));
    let f = cli(&forged_dir);
    f.ok(&["append"], ndjson(&rewritten).as_slice());
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::rename(&forged_dir, &data).unwrap();

    // Alone, the directory vouches for itself.
    c.ok(&["verify"], b"");
    // With trust from outside it, the rewrite is found.
    let no_cosig = c.run(&["verify", "--witness", &witness.key], b"");
    assert_eq!(no_cosig.code, 1, "{}", no_cosig.stderr);
    let client = c.run(&["verify", "--trusted", client_copy.to_str().unwrap()], b"");
    assert_eq!(client.code, 1, "{}", client.stderr);
    assert!(
        client.stderr.contains("--trusted checkpoint #1"),
        "{}",
        client.stderr
    );
    // Keeping the old cosignatures beside the forgery does not help: their roots disagree.
    let with_old = c.run(
        &[
            "verify",
            "--witness",
            &witness.key,
            "--trusted",
            client_copy.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(with_old.code, 1, "{}", with_old.stderr);

    // The server of the rewritten log submits its checkpoints: the witness refuses them.
    let server = serve_with(&c, &witness);
    post(&server, &events("after", 0..3));
    let w = wait_witnessing(&server, "the witness's refusal", |w| {
        w["witnesses"][0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("422"))
    });
    assert!(w["final_size"].is_null(), "{w}");
    assert_eq!(server.req("GET", "/checkpoint", None, None).status, 503);
    server.stop();
    assert!(
        witness.process.log_text().contains("422"),
        "{}",
        witness.process.log_text()
    );
    witness.process.stop();
}

/// The log's private key can be held apart from its data (`--signing-key FILE`): the
/// directory then holds only the public key and cannot sign without it.
#[test]
fn the_signing_key_can_live_outside_the_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let c = cli(&data);
    c.ok(&["append"], &ndjson(&events("keyed", 0..3)));
    let kept = tmp.path().join("log.key");
    std::fs::rename(data.join("keys/log.key"), &kept).unwrap();
    // Without it: reads work (read-only), appends are refused and say where the key may be.
    let refused = c.run(&["append"], &ndjson(&events("keyed", 3..4)));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--signing-key"),
        "{}",
        refused.stderr
    );
    let key = kept.to_str().unwrap();
    c.ok(
        &["--signing-key", key, "append"],
        &ndjson(&events("keyed", 3..6)),
    );
    let report = c.ok(&["verify", "--strict"], b"").json();
    assert_eq!(report["records"], 6);
    assert!(!data.join("keys/log.key").exists());
    // Another log's key, or one others can read, is refused.
    let other = tmp.path().join("other");
    cli(&other).ok(&["append"], &ndjson(&events("other", 0..1)));
    let wrong = c.run(
        &[
            "--signing-key",
            other.join("keys/log.key").to_str().unwrap(),
            "append",
        ],
        &ndjson(&events("keyed", 6..7)),
    );
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("not the signing key of this log"),
        "{}",
        wrong.stderr
    );
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = c.run(
        &["--signing-key", key, "append"],
        &ndjson(&events("keyed", 6..7)),
    );
    assert_eq!(open.code, 2, "{}", open.stderr);
    assert!(
        open.stderr.contains("readable by others"),
        "{}",
        open.stderr
    );
    // A new log made with an outside key never writes it into its directory.
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fresh = tmp.path().join("fresh");
    let f = cli(&fresh);
    let made = tmp.path().join("fresh.key");
    std::fs::copy(other.join("keys/log.key"), &made).unwrap();
    f.ok(
        &["--signing-key", made.to_str().unwrap(), "append"],
        &ndjson(&events("fresh", 0..2)),
    );
    assert!(!fresh.join("keys/log.key").exists());
    assert_eq!(
        std::fs::read_to_string(fresh.join("keys/log.pub")).unwrap(),
        std::fs::read_to_string(other.join("keys/log.pub")).unwrap()
    );
    f.ok(&["verify"], b"");
}

/// `sealog keys rotate-log`: a record names both keys, a checkpoint both keys sign covers
/// it, only the new key signs after; verify follows the chain from either key, a witness
/// that knows both keys keeps cosigning, and a key change no record announced is refused.
#[test]
fn the_log_key_rotates_under_a_checkpoint_both_keys_sign() {
    let Setup {
        tmp: _tmp,
        data,
        c,
        vkey: old,
        origin,
        wstate,
    } = Setup::new();
    let witness = start_witness(&wstate, "127.0.0.1:0", &[format!("{origin}={old}")]);
    let server = serve_with(&c, &witness);
    post(&server, &events("rotating", 0..5));
    wait_witnessing(&server, "5 records cosigned", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(5)
    });
    server.stop();

    let rotated = c.ok(&["keys", "rotate-log"], b"").json();
    assert_eq!(rotated["old_verifier_key"], old.as_str());
    let new = rotated["new_verifier_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        origin_of(&new),
        origin,
        "the origin stays: witnesses keep their state"
    );
    assert_eq!(log_key(&c), new);
    let record = c.ok(&["get", &rotated["seq"].to_string()], b"").json();
    assert_eq!(record["type"], "audit.log_key_rotated");
    assert_eq!(record["data"]["new_verifier_key"], new.as_str());
    c.ok(&["append"], &ndjson(&events("rotating", 5..8)));

    // The checkpoint both keys signed, and only the new key after it.
    let (notes, _) = sealog_testkit::format::checkpoint_notes(&data.join("checkpoints/log"));
    let old_v = sealog_merkle::note::Verifier::parse(&old).unwrap();
    let new_v = sealog_merkle::note::Verifier::parse(&new).unwrap();
    let signed_by =
        |n: &str, v: &sealog_merkle::note::Verifier| sealog_merkle::note::open(n, &[v]).is_ok();
    let bridge = notes
        .iter()
        .position(|n| signed_by(n, &old_v) && signed_by(n, &new_v))
        .expect("a checkpoint signed by both keys");
    assert!(
        notes[..bridge]
            .iter()
            .all(|n| signed_by(n, &old_v) && !signed_by(n, &new_v))
    );
    assert!(
        notes[bridge + 1..]
            .iter()
            .all(|n| signed_by(n, &new_v) && !signed_by(n, &old_v))
    );
    assert!(bridge + 1 < notes.len());
    // Verify follows the chain from the key kept in the directory, the old key or the new.
    for key in [None, Some(&old), Some(&new)] {
        let mut args = vec!["verify", "--strict"];
        if let Some(k) = key {
            args.extend(["--verifier-key", k.as_str()]);
        }
        let run = c.ok(&args, b"");
        assert!(
            run.stderr.contains("1 key rotation(s), each announced"),
            "{}",
            run.stderr
        );
    }
    // The witness, told the new key as well, goes on cosigning the same origin.
    witness.process.stop();
    let witness = start_witness(
        &wstate,
        "127.0.0.1:0",
        &[format!("{origin}={old}"), format!("{origin}={new}")],
    );
    let server = serve_with(&c, &witness);
    post(&server, &events("rotating", 8..10));
    let w = wait_witnessing(&server, "cosigned under the new key", |w| {
        final_covers(w) && w["final_size"].as_u64() >= Some(10)
    });
    assert_eq!(w["witnesses"][0]["failures"], 0, "{w}");
    server.stop();
    witness.process.stop();
    c.ok(&["verify", "--witness", &witness.key], b"");

    // An operator with the directory hands signing to a key of their own, with a checkpoint
    // both keys sign but no record: refused.
    let forged = tmp_copy(&data);
    let current = sealog_merkle::note::Signer::parse(
        std::fs::read_to_string(forged.join("keys/log.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let theirs = sealog_merkle::note::Signer::from_seed(&origin, [0x42; 32]).unwrap();
    let latest = std::fs::read_to_string(forged.join("checkpoints/latest")).unwrap();
    let body = &latest[..=latest.find("\n\n").unwrap()];
    let both = sealog_merkle::note::sign(body, &[&current, &theirs]).unwrap();
    let only_theirs = sealog_merkle::note::sign(body, &[&theirs]).unwrap();
    let mut frame = Vec::new();
    sealog_testkit::format::encode_frame(both.as_bytes(), &mut frame);
    sealog_testkit::format::encode_frame(only_theirs.as_bytes(), &mut frame);
    let log_path = forged.join("checkpoints/log");
    let mut bytes = std::fs::read(&log_path).unwrap();
    bytes.extend_from_slice(&frame);
    std::fs::write(&log_path, bytes).unwrap();
    std::fs::write(forged.join("checkpoints/latest"), &only_theirs).unwrap();
    let retired = forged.join("keys/retired");
    let mut list = std::fs::read_to_string(&retired).unwrap();
    list.push_str(&format!("{}\n", current.verifier().to_vkey()));
    std::fs::write(&retired, list).unwrap();
    std::fs::write(
        forged.join("keys/log.pub"),
        format!("{}\n", theirs.verifier().to_vkey()),
    )
    .unwrap();
    std::fs::remove_file(forged.join("keys/log.key")).unwrap();
    let refused = cli(&forged).run(&["verify"], b"");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("no audit.log_key_rotated record announcing it"),
        "{}",
        refused.stderr
    );
    // Trusting the genuine key, the checkpoint only their key signed is refused.
    let from_new = cli(&forged).run(&["verify", "--verifier-key", &new], b"");
    assert_eq!(from_new.code, 1, "{}", from_new.stderr);
    assert!(
        from_new.stderr.contains("the trusted key signs neither"),
        "{}",
        from_new.stderr
    );
}

/// A copy of a data directory beside it.
fn tmp_copy(data: &Path) -> std::path::PathBuf {
    let to = data.with_extension("forged");
    let status = std::process::Command::new("cp")
        .args(["-a", data.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    to
}

/// Two Sealog installations witness each other: each runs a witness for the other's log.
#[test]
fn two_installations_witness_each_other() {
    let a = Setup::new();
    let b = Setup::new();
    // A's operator witnesses B's log, and B's operator A's.
    let wa = start_witness(
        &a.wstate,
        "127.0.0.1:0",
        &[format!("{}={}", b.origin, b.vkey)],
    );
    let wb = start_witness(
        &b.wstate,
        "127.0.0.1:0",
        &[format!("{}={}", a.origin, a.vkey)],
    );
    let sa = serve_with(&a.c, &wb);
    let sb = serve_with(&b.c, &wa);
    post(&sa, &events("a", 0..4));
    post(&sb, &events("b", 0..6));
    for (server, n) in [(&sa, 4), (&sb, 6)] {
        wait_witnessing(server, "cosigned by the other's witness", |w| {
            final_covers(w) && w["final_size"].as_u64() >= Some(n)
        });
    }
    check_cosignature_independently(&sa.req("GET", "/checkpoint", None, None).text(), &wb.key);
    check_cosignature_independently(&sb.req("GET", "/checkpoint", None, None).text(), &wa.key);
    sa.stop();
    sb.stop();
    a.c.ok(&["verify", "--witness", &wb.key], b"");
    b.c.ok(&["verify", "--witness", &wa.key], b"");
    // Each witness follows only the log it was given.
    assert_eq!(a.c.run(&["verify", "--witness", &wa.key], b"").code, 1);
    wa.process.stop();
    wb.process.stop();
}

/// On PostgreSQL too, `verify --witness` counts the cosignatures the database keeps: a
/// witness that never cosigned the log is refused, and once a server has had the log's
/// checkpoints cosigned, the same verify passes.
#[test]
fn on_postgresql_verify_requires_the_witnesses_cosignatures() {
    let Some(cluster) = sealog_testkit::pg::Cluster::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = Cli::on_database(
        env!("CARGO_BIN_EXE_sealog"),
        &cluster.url(),
        &tmp.path().join("state"),
    )
    .accepting_undeclared();
    db.ok(&["migrate"], b"");
    db.ok(&["append", "-"], &ndjson(&events("pg", 0..5)));
    let vkey = log_key(&db);
    let origin = origin_of(&vkey).to_string();
    let witness = start_witness(
        &tmp.path().join("witness"),
        "127.0.0.1:0",
        &[format!("{origin}={vkey}")],
    );
    let refused = db.run(&["verify", "--witness", &witness.key], b"");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cosigned by 1 of the 1"),
        "{}",
        refused.stderr
    );

    let server = serve_with(&db, &witness);
    post(&server, &events("pg", 5..10));
    wait_witnessing(&server, "the checkpoints cosigned", final_covers);
    server.stop();
    witness.process.stop();
    let ok = db.ok(&["verify", "--witness", &witness.key], b"");
    assert!(ok.stdout.contains("witnesses cosigned"), "{}", ok.stdout);
}
