//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`) and crash
//! reproducers (`fuzz/regressions/<target>/`) through the same function the fuzzer ran
//! (`sealog_testkit::fuzz`), so CI checks what fuzzing found without fuzzing. A target with
//! an empty corpus fails: a corpus cannot be lost silently.

use std::path::{Path, PathBuf};

use sealog_testkit::fuzz::{TARGETS, Target};
use sealog_testkit::panic_text;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs each file through `target`, gathering every failure before failing.
fn replay(name: &str, target: Target, inputs: &[PathBuf], failures: &mut Vec<String>) {
    for path in inputs {
        let data = std::fs::read(path).expect("read a corpus file");
        if let Err(payload) = std::panic::catch_unwind(|| target(&data)) {
            failures.push(format!(
                "{name}: {}: {}",
                path.display(),
                panic_text(payload.as_ref())
            ));
        }
    }
}

fn run(name: &str) {
    let (_, target) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let corpus = files(&fuzz_dir().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ is empty or missing: run scripts/fuzz {name} and commit it"
    );
    let regressions = files(&fuzz_dir().join("regressions").join(name));
    let mut failures = Vec::new();
    replay(name, *target, &regressions, &mut failures);
    replay(name, *target, &corpus, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fuzz_target_is_replayed() {
    let mut shims: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    shims.sort();
    let mut named: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    named.sort();
    assert_eq!(
        shims, named,
        "fuzz/fuzz_targets/ and sealog_testkit::fuzz::TARGETS must name the same targets"
    );
    for dir in ["corpus", "regressions"] {
        for d in std::fs::read_dir(fuzz_dir().join(dir))
            .into_iter()
            .flatten()
        {
            let d = d.expect("a directory entry").file_name();
            let d = d.to_string_lossy();
            assert!(
                named.iter().any(|n| *n == d),
                "fuzz/{dir}/{d} is no target's"
            );
        }
    }
}

#[test]
fn splitter() {
    run("splitter");
}

#[test]
fn canonical() {
    run("canonical");
}

#[test]
fn segment() {
    run("segment");
}

#[test]
fn note() {
    run("note");
}

#[test]
fn proof() {
    run("proof");
}

#[test]
fn manifest() {
    run("manifest");
}

#[test]
fn http() {
    run("http");
    sealog_testkit::fuzz::http_stop();
}

#[test]
fn spool() {
    run("spool");
}

#[test]
fn recovery() {
    run("recovery");
}

/// Writes the hand-made seeds each corpus started from (`seed-*` files); fuzzing grows the
/// corpus from them and `cargo fuzz cmin` keeps what adds coverage. Run by hand:
/// `cargo test -p sealog-testkit --test suite fuzz_replay::write_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand to reseed"]
fn write_seeds() {
    for (name, seeds) in seeds::all() {
        let dir = fuzz_dir().join("corpus").join(name);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (label, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{label}")), bytes).expect("write a seed");
        }
    }
}

mod seeds {
    use sealog_merkle::cosignature::Cosigner;
    use sealog_merkle::note::{self, Signer};
    use sealog_testkit::format::encode_frame;
    use sealog_testkit::fuzz::{SEP, spool_frame};
    use serde_json::{Value, json};

    type Seeds = Vec<(String, Vec<u8>)>;

    fn join(parts: &[&[u8]]) -> Vec<u8> {
        parts.join(SEP)
    }

    fn events() -> Vec<String> {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson"),
        )
        .expect("examples/events.ndjson");
        text.lines().map(str::to_string).collect()
    }

    fn small_event(i: u64) -> Value {
        json!({"specversion": "1.0", "id": format!("e{i}"), "source": "fuzz", "type": "fuzz.thing",
               "time": "2026-01-02T03:04:05.5Z", "tenant": "acme", "subject": "s1",
               "actor": {"type": "human", "id": "u1"}, "data": {"n": i, "x": 0.1, "s": "\u{e9}\u{1f600}"}})
    }

    fn record(i: u64) -> Vec<u8> {
        let v = small_event(i);
        let mut c = sealog_model::jcs::to_vec(&v).expect("canonical");
        let canonical =
            sealog_model::Canonical::of_event(&sealog_model::json::Json::parse(&c).expect("parse"))
                .expect("canonical");
        c.clear();
        canonical.write_record(i, "2026-01-02T03:04:05.123456789Z", &mut c);
        c
    }

    fn splitter() -> Seeds {
        let ev = events();
        let one = small_event(1).to_string();
        vec![
            (
                "ndjson".into(),
                ev[..3.min(ev.len())].join("\n").into_bytes(),
            ),
            ("one".into(), ev[0].clone().into_bytes()),
            ("array".into(), format!("[{one},{one}]").into_bytes()),
            (
                "pretty".into(),
                serde_json::to_string_pretty(&small_event(2))
                    .unwrap()
                    .into_bytes(),
            ),
            ("small".into(), one.into_bytes()),
            (
                "mixed".into(),
                b"{\"a\":1}\n\n  [1,2]\nnot json\n{\"id\":\"x\"".to_vec(),
            ),
        ]
    }

    fn canonical() -> Seeds {
        let texts = [
            r#"{"b":[1,2.5,-0,1e21,1e-7,5e-324,9007199254740991],"a":"\u00e9\ud83d\ude00\n\t\"\\/","c":{"":null,"\u20ac":true,"\ud800\udc00":false}}"#,
            r#"[0.1,1E2,-1.5e-10,123456789012345680000,1.7976931348623157e308]"#,
            r#""\u0000\u001f\u007f""#,
            r#"{"z":{"y":{"x":[[[]]]}},"a":{}}"#,
            r#"{"a":1,"a":2}"#,
            r#"9007199254740993"#,
        ];
        let mut out: Seeds = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("json{i}"), t.as_bytes().to_vec()))
            .collect();
        out.push(("record".into(), record(3)));
        out.push(("event".into(), events()[0].clone().into_bytes()));
        out
    }

    fn segment() -> Seeds {
        let body = |n: u64| {
            let mut b = Vec::new();
            for i in 0..n {
                encode_frame(&record(5 + i), &mut b);
            }
            b
        };
        vec![
            ("3".into(), body(3)),
            ("17".into(), body(17)),
            ("edits".into(), join(&[&body(9), &[40, 0, 1, 200, 0, 255]])),
            (
                "resealed".into(),
                join(&[&body(12), &[20, 0, 7, 30, 0, 1], b""]),
            ),
            ("torn".into(), body(4)[..150].to_vec()),
        ]
    }

    fn note() -> Seeds {
        let signer = Signer::from_seed("log.example/fuzz", [7; 32]).unwrap();
        let cosigner = Cosigner::from_seed("witness.example/fuzz", [9; 32]).unwrap();
        let body = "log.example/fuzz\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let signed = note::sign(body, &[&signer]).unwrap();
        let cosigned = sealog_merkle::cosignature::add_signatures(
            &signed,
            &cosigner.cosign(body, 1_700_000_000),
        );
        let add = format!("old 7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n{cosigned}");
        vec![
            ("checkpoint".into(), body.as_bytes().to_vec()),
            ("signed".into(), signed.into_bytes()),
            ("cosigned".into(), cosigned.into_bytes()),
            ("add-checkpoint".into(), add.into_bytes()),
            ("vkey".into(), signer.verifier().to_vkey().into_bytes()),
            (
                "cosigner-vkey".into(),
                cosigner.verifier().to_vkey().into_bytes(),
            ),
            (
                "edits".into(),
                join(&[body.as_bytes(), &[3, 0, 1, 100, 0, 32, 150, 0, 2]]),
            ),
        ]
    }

    fn proof() -> Seeds {
        vec![
            ("small".into(), vec![6, 2, 3]),
            ("edits".into(), vec![40, 17, 9, 0, 1, 5, 7, 3, 0, 1, 0]),
            ("index".into(), vec![63, 62, 31, 5, 0, 1, 0]),
            ("grow".into(), vec![20, 19, 1, 4, 2, 1, 1, 2, 0, 3, 0]),
        ]
    }

    fn manifest() -> Seeds {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sealog-packs/packs");
        let mut out = Seeds::new();
        let mut dirs: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
            // Renamed so that it loads beside the built-in pack it copies.
            let mut m: Value = serde_json::from_str(&text).unwrap();
            m["pack"] = json!(format!("fz-{name}"));
            let types = m["types"].as_object().unwrap().clone();
            m["types"] = Value::Object(
                types
                    .into_iter()
                    .map(|(k, v)| (format!("fz{k}"), v))
                    .collect(),
            );
            if let Some(checks) = m.get_mut("checks").and_then(Value::as_array_mut) {
                for c in checks {
                    let name = format!("fz{}", c["name"].as_str().unwrap());
                    c["name"] = json!(name);
                    if let Some(ts) = c.get_mut("types").and_then(Value::as_array_mut) {
                        for t in ts {
                            *t = json!(format!("fz{}", t.as_str().unwrap()));
                        }
                    }
                }
            }
            let mut parts = vec![serde_json::to_vec_pretty(&m).unwrap()];
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap() != "manifest.json")
                .collect();
            files.sort();
            for f in files {
                let mut part = f
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes();
                part.push(b'\n');
                part.extend(std::fs::read(&f).unwrap());
                parts.push(part);
            }
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            out.push((name, join(&parts)));
        }
        let small = json!({"pack": "acme", "types": {"acme.thing": {
            "schema": "thing.schema.json", "subject": "/data/id", "required": ["/data/n"],
            "axes": [{"name": "n", "pointer": "/data/n"}],
            "state": {"op": "create", "set": {"n": "/data/n"}}}}});
        let schema = br#"thing.schema.json
{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}"#;
        out.push((
            "acme".into(),
            join(&[&serde_json::to_vec(&small).unwrap(), schema]),
        ));
        // Personal fields the fuzz target's sample event holds, so its events are sealed.
        let person = json!({"pack": "crm", "types": {"crm.person": {
            "schema": "person.schema.json", "data_subject": "/data/id",
            "personal": ["/data/note", "/data/items/*/name"],
            "axes": [{"name": "note", "pointer": "/data/note"}, {"name": "amount", "pointer": "/data/amount"}],
            "normalize": {"defaults": [{"pointer": "/data/kind", "value": "person"}]},
            "state": {"op": "observe"}}}});
        let schema = br#"person.schema.json
{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["id"]}"#;
        let data = br#"data
{"id":"cust-1","note":"call after six","items":[{"name":"Ann"},{"name":"Ben","age":3}],"amount":2}"#;
        out.push((
            "person".into(),
            join(&[&serde_json::to_vec(&person).unwrap(), schema, data]),
        ));
        out
    }

    fn http() -> Seeds {
        let ev = small_event(1).to_string();
        let reqs = [
            ("healthz", "GET /healthz\n\n".to_string()),
            ("readyz", "GET /readyz\n\n".into()),
            ("openapi", "GET /openapi.json\n\n".into()),
            ("metrics", "GET /metrics\nAuthorization: Bearer $KEY\n\n".into()),
            (
                "append",
                format!("POST /v1/events\nAuthorization: Bearer $KEY\nContent-Type: application/json\n\n{ev}"),
            ),
            (
                "append-ndjson",
                format!("POST /v1/events\nAuthorization: Bearer $KEY\nContent-Type: application/x-ndjson\n\n{ev}\n{ev}\n"),
            ),
            ("records", "GET /v1/records?limit=5&type=fuzz.thing&tenant=acme\nAuthorization: Bearer $KEY\n\n".into()),
            ("record", "GET /v1/records/sha256:0000000000000000000000000000000000000000000000000000000000000000\nAuthorization: Bearer $KEY\n\n".into()),
            ("state", "GET /v1/subjects/s1/state?scope=acme\nAuthorization: Bearer $SUBJECT\n\n".into()),
            ("timeline", "GET /v1/subjects/s1/timeline?scope=acme\nAuthorization: Bearer $KEY\n\n".into()),
            ("checkpoint", "GET /checkpoint\nAuthorization: Bearer $KEY\n\n".into()),
            ("checkpoint-key", "GET /checkpoint/key\nAuthorization: Bearer $KEY\n\n".into()),
            ("inclusion", "GET /v1/proofs/inclusion?seq=0&size=1\nAuthorization: Bearer $KEY\n\n".into()),
            ("consistency", "GET /v1/proofs/consistency?from=1&to=2\nAuthorization: Bearer $KEY\n\n".into()),
            ("tile", "GET /tile/0/000\nAuthorization: Bearer $KEY\n\n".into()),
            ("keys", "GET /v1/keys\nAuthorization: Bearer $KEY\n\n".into()),
            ("key-create", "POST /v1/keys\nAuthorization: Bearer $KEY\nContent-Type: application/json\n\n{\"roles\":[\"reader\"],\"tenant\":\"acme\"}".into()),
            ("holds", "POST /v1/holds\nAuthorization: Bearer $KEY\nContent-Type: application/json\n\n{\"tenant\":\"acme\",\"subject\":\"s1\",\"reason\":\"case 1\"}".into()),
            ("quarantine", "GET /v1/quarantine?limit=3\nAuthorization: Bearer $KEY\n\n".into()),
            ("retention", "GET /v1/retention\nAuthorization: Bearer $KEY\n\n".into()),
            ("integrity", "GET /v1/integrity\nAuthorization: Bearer $KEY\n\n".into()),
            ("conflicts", "GET /v1/conflicts\nAuthorization: Bearer $KEY\n\n".into()),
            ("report", "GET /v1/reports/daily\nAuthorization: Bearer $KEY\n\n".into()),
            ("exports", "POST /v1/exports\nAuthorization: Bearer $KEY\nContent-Type: application/json\n\n{\"tenant\":\"acme\"}".into()),
            ("erasure", "POST /v1/erasures\nAuthorization: Bearer $KEY\nContent-Type: application/json\n\n{\"tenant\":\"acme\",\"subject\":\"s1\"}".into()),
            ("session", "POST /v1/session\nContent-Type: application/json\n\n{\"key\":\"$KEY\"}".into()),
            ("console", "GET /\n\n".into()),
            ("bad-auth", "GET /v1/records\nAuthorization: Basic eDp5\n\n".into()),
        ];
        reqs.into_iter()
            .map(|(n, r)| (n.to_string(), r.into_bytes()))
            .collect()
    }

    fn spool() -> Seeds {
        let file = |from: u64, n: u64| {
            let mut f = Vec::new();
            for i in from..from + n {
                f.extend(spool_frame(i, small_event(i).to_string().as_bytes()));
            }
            f
        };
        let mut damaged = file(0, 4);
        damaged[60] ^= 1;
        vec![
            ("one-file".into(), join(&[b"", &file(0, 3)])),
            ("two-files".into(), join(&[b"", &file(0, 2), &file(10, 3)])),
            (
                "cursor".into(),
                join(&[b"0 24\n10 0\n", &file(0, 3), &file(10, 1)]),
            ),
            ("damaged".into(), join(&[b"", &damaged])),
            ("torn".into(), join(&[b"", &file(0, 2)[..300]])),
        ]
    }

    /// Edits to a small signed log's last segment: byte flips (part 0), a cut and an
    /// appended tail (part 1: the cut's length in two little-endian bytes, then the tail),
    /// and the derived files removed (part 2).
    fn recovery() -> Seeds {
        let mut frame = Vec::new();
        encode_frame(&record(99), &mut frame);
        let mut forged = vec![0, 0];
        forged.extend(&frame);
        let mut torn_frame = vec![0, 0];
        torn_frame.extend(&frame[..frame.len() / 2]);
        vec![
            ("untouched".into(), Vec::new()),
            ("a-flip-in-a-frame".into(), vec![100, 0, 1]),
            ("flips-in-the-header".into(), vec![0, 0, 0xff, 9, 0, 1]),
            ("torn-tail".into(), join(&[b"", &[10, 0]])),
            (
                "garbage-tail".into(),
                join(&[b"", b"\0\0garbage after the last frame"]),
            ),
            ("a-whole-frame-appended".into(), join(&[b"", &forged])),
            ("half-a-frame-appended".into(), join(&[b"", &torn_frame])),
            ("derived-removed".into(), join(&[b"", b"", b""])),
            (
                "torn-tail-derived-removed".into(),
                join(&[b"", &[37, 0], b""]),
            ),
            (
                "a-flip-derived-removed".into(),
                join(&[&[200, 1, 0x40], b"", b""]),
            ),
        ]
    }

    pub(super) fn all() -> Vec<(&'static str, Seeds)> {
        vec![
            ("splitter", splitter()),
            ("canonical", canonical()),
            ("segment", segment()),
            ("note", note()),
            ("proof", proof()),
            ("manifest", manifest()),
            ("http", http()),
            ("spool", spool()),
            ("recovery", recovery()),
        ]
    }
}
