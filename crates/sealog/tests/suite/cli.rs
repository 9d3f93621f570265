//! The `sealog` binary end to end: input forms, result lines, exit codes, reads, and the
//! refusals a producer sees for input that is not a valid event.

use std::io::Write;
use std::path::Path;

use sealog_model::Canonical;
use sealog_model::json::Json;
use sealog_testkit::events::ndjson;
use sealog_testkit::{Cli, wait_for};
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

/// The binary on `dir`, accepting the ad-hoc event types these tests use.
fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

fn event(id: &str) -> Value {
    let mut e = sealog_testkit::events::event(id, Some("acme"), "s1", "test.cli");
    e["source"] = json!("cli-tests");
    e["actor"]["id"] = json!("alice");
    e["data"] = json!({"n": 1, "text": "ünïcode ✓"});
    e
}

fn record_id(v: &Value) -> String {
    Canonical::of_event(&Json::from_value(v))
        .expect("a test event has a canonical form")
        .record_id
        .to_string()
}

fn assert_appended(line: &Value, seq: u64, ev: &Value) {
    assert_eq!(
        line,
        &json!({"status": "appended", "seq": seq, "record_id": record_id(ev)})
    );
}

/// The ids of the test's own records: every local read appends an `audit.access` record of
/// its own, which is not one of them.
fn ids(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .filter(|r| r["type"] != "audit.access")
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[test]
fn append_takes_an_object_a_pretty_object_an_array_and_ndjson_from_stdin_or_a_file() {
    let dir = sealog_testkit::tempdir();
    let data = dir.path().join("data");
    let evs: Vec<Value> = (0..7).map(|i| event(&format!("form-{i}"))).collect();

    let run = cli(&data).ok(&["append"], evs[0].to_string().as_bytes());
    assert_eq!(run.lines().len(), 1);
    assert_appended(&run.lines()[0], 0, &evs[0]);

    let pretty = serde_json::to_string_pretty(&evs[1]).unwrap();
    assert!(pretty.lines().count() > 5);
    let run = cli(&data).ok(&["append", "-"], pretty.as_bytes());
    assert_eq!(run.lines().len(), 1, "a pretty-printed object is one event");
    assert_appended(&run.lines()[0], 1, &evs[1]);

    let array = serde_json::to_string_pretty(&json!([evs[2], evs[3]])).unwrap();
    let run = cli(&data).ok(&["append"], array.as_bytes());
    assert_eq!(run.lines().len(), 2);
    assert_appended(&run.lines()[0], 2, &evs[2]);
    assert_appended(&run.lines()[1], 3, &evs[3]);

    // NDJSON from a file, with blank lines and CRLF endings.
    let file = dir.path().join("events.ndjson");
    let text = format!("{}\r\n\n   \n{}\n{}", evs[4], evs[5], evs[6]);
    std::fs::write(&file, text).unwrap();
    let run = cli(&data).ok(&["append", file.to_str().unwrap()], b"");
    let lines = run.lines();
    assert_eq!(lines.len(), 3);
    for (k, i) in (4..7).enumerate() {
        assert_appended(&lines[k], i as u64, &evs[i]);
    }
    assert_eq!(run.stderr, "");

    let records = cli(&data).all_records();
    assert_eq!(
        ids(&records),
        (0..7).map(|i| format!("form-{i}")).collect::<Vec<_>>()
    );
    for (seq, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], json!(seq));
        assert_eq!(r["record_id"], json!(record_id(&evs[seq])));
        assert_eq!(r["data"], evs[seq]["data"]);
    }
}

#[test]
fn appending_the_same_events_again_answers_duplicate_with_the_original_seqs() {
    let dir = sealog_testkit::tempdir();
    let evs: Vec<Value> = (0..4).map(|i| event(&format!("dup-{i}"))).collect();
    cli(dir.path()).ok(&["append"], &ndjson(&evs));
    // Another order, another formatting, one new event in the middle.
    let mut again: Vec<Value> = evs.iter().rev().cloned().collect();
    again.insert(2, event("dup-new"));
    let text: String = again
        .iter()
        .map(|e| {
            format!(
                "{}\n",
                serde_json::to_string_pretty(e).unwrap().replace('\n', "")
            )
        })
        .collect();
    let run = cli(dir.path()).ok(&["append"], text.as_bytes());
    let lines = run.lines();
    let want = [
        (3, "duplicate"),
        (2, "duplicate"),
        (4, "appended"),
        (1, "duplicate"),
        (0, "duplicate"),
    ];
    assert_eq!(again.len(), want.len());
    assert_eq!(
        lines.len(),
        again.len(),
        "one result per event: {}",
        run.stdout
    );
    for ((line, ev), (seq, status)) in lines.iter().zip(&again).zip(want) {
        assert_eq!(
            line,
            &json!({"status": status, "seq": seq, "record_id": record_id(ev)})
        );
    }
    assert_eq!(cli(dir.path()).all_records().len(), 5);
}

#[test]
fn get_finds_a_record_by_seq_and_by_record_id() {
    let dir = sealog_testkit::tempdir();
    let evs: Vec<Value> = (0..3).map(|i| event(&format!("get-{i}"))).collect();
    cli(dir.path()).ok(&["append"], &ndjson(&evs));
    for (seq, ev) in evs.iter().enumerate() {
        let by_seq = cli(dir.path()).ok(&["get", &seq.to_string()], b"");
        let by_id = cli(dir.path()).ok(&["get", &record_id(ev)], b"");
        assert_eq!(by_seq.stdout, by_id.stdout);
        assert_eq!(by_seq.stdout.lines().count(), 1);
        let rec = &by_seq.lines()[0];
        assert_eq!(rec["seq"], json!(seq));
        assert_eq!(rec["record_id"], json!(record_id(ev)));
        let mut event = rec.clone();
        for f in ["seq", "record_id", "ingested_at"] {
            event.as_object_mut().unwrap().remove(f);
        }
        assert_eq!(&event, ev);
    }

    // Each get above appended its access record; past those there is nothing.
    let past = 3 + 2 * 3;
    let missing = cli(dir.path()).run(&["get", &past.to_string()], b"");
    assert_eq!((missing.code, missing.stdout.as_str()), (1, ""));
    assert!(
        missing.stderr.contains(&format!("no record {past}")),
        "{}",
        missing.stderr
    );
    let absent_id = record_id(&event("never-appended"));
    let missing = cli(dir.path()).run(&["get", &absent_id], b"");
    assert_eq!((missing.code, missing.stdout.as_str()), (1, ""));
    for bad in [
        "sha256:abc",
        "SHA256:00",
        "seven",
        &absent_id.to_uppercase(),
    ] {
        let run = cli(dir.path()).run(&["get", bad], b"");
        assert_eq!(run.code, 2, "get {bad}: {}", run.stderr);
        assert!(
            run.stderr.contains("neither a seq nor a record id"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn query_filters_on_every_axis_and_on_time_and_pages_with_after() {
    let dir = sealog_testkit::tempdir();
    let mut evs = Vec::new();
    for i in 0..30 {
        let mut e = event(&format!("q-{i}"));
        e["tenant"] = json!(format!("tenant-{}", i % 3));
        e["subject"] = json!(format!("subj-{}", i % 5));
        e["type"] = json!(if i % 2 == 0 { "test.even" } else { "test.odd" });
        e["source"] = json!(if i < 10 { "early" } else { "late" });
        e["actor"] = json!({"type": "human", "id": format!("user-{}", i % 4)});
        e["time"] = json!(format!("2026-01-{:02}T10:00:00Z", i + 1));
        evs.push(e);
    }
    cli(dir.path()).ok(&["append"], &ndjson(&evs));
    let query = |args: &[&str]| -> Vec<u64> {
        let mut full = vec!["query"];
        full.extend_from_slice(args);
        cli(dir.path())
            .ok(&full, b"")
            .lines()
            .iter()
            .filter(|r| r["type"] != "audit.access")
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
    };
    let model =
        |f: &dyn Fn(usize) -> bool| -> Vec<u64> { (0..30).filter(|&i| f(i as usize)).collect() };

    assert_eq!(query(&[]), model(&|_| true));
    assert_eq!(query(&["--tenant", "tenant-1"]), model(&|i| i % 3 == 1));
    assert_eq!(query(&["--scope", "tenant-2"]), model(&|i| i % 3 == 2));
    assert_eq!(query(&["--subject", "subj-4"]), model(&|i| i % 5 == 4));
    assert_eq!(query(&["--type", "test.odd"]), model(&|i| i % 2 == 1));
    assert_eq!(query(&["--source", "early"]), model(&|i| i < 10));
    assert_eq!(query(&["--actor", "user-3"]), model(&|i| i % 4 == 3));
    assert_eq!(query(&["--id", "q-17"]), [17]);
    assert_eq!(
        query(&["--axis", "subject=subj-0", "--type", "test.even"]),
        model(&|i| i % 10 == 0)
    );
    assert_eq!(
        query(&["--tenant", "tenant-0", "--actor", "user-0"]),
        model(&|i| i % 12 == 0)
    );
    assert_eq!(query(&["--tenant", "nobody"]), Vec::<u64>::new());
    // Event time: --from inclusive, --to exclusive; a bare date is its midnight UTC.
    assert_eq!(
        query(&[
            "--from",
            "2026-01-05T10:00:00Z",
            "--to",
            "2026-01-08T10:00:00Z"
        ]),
        [4, 5, 6]
    );
    assert_eq!(query(&["--from", "2026-01-29"]), [28, 29]);
    assert_eq!(
        query(&["--to", "2026-01-03T10:00:00.000001Z", "--type", "test.even"]),
        [0, 2]
    );
    assert_eq!(query(&["--as-of", "4"]), [0, 1, 2, 3]);
    assert_eq!(query(&["--as-of", "12", "--subject", "subj-1"]), [1, 6, 11]);
    assert_eq!(query(&["--after", "25"]), [26, 27, 28, 29]);
    assert_eq!(query(&["--ingested-from", "2000-01-01"]), model(&|_| true));
    assert_eq!(query(&["--ingested-to", "2000-01-01"]), Vec::<u64>::new());

    // A page that is full says how to continue; the last one says nothing.
    let page = cli(dir.path()).ok(&["query", "--type", "test.even", "--limit", "4"], b"");
    // (The type axis keeps the reads' own access records out of these pages.)
    assert_eq!(page.lines().len(), 4);
    assert!(
        page.stderr
            .contains("more records: continue with --after 6"),
        "{}",
        page.stderr
    );
    assert_eq!(
        query(&["--type", "test.even", "--limit", "4", "--after", "6"]),
        [8, 10, 12, 14]
    );
    let last = cli(dir.path()).ok(&["query", "--type", "test.even", "--after", "20"], b"");
    assert_eq!(last.lines().len(), 4);
    assert_eq!(last.stderr, "");

    for bad in [
        &["query", "--axis", "colour=red"][..],
        &["query", "--axis", "no-equals-sign"],
        &["query", "--from", "yesterday"],
        &["query", "--limit", "0"],
        &["query", "--limit", "10001"],
    ] {
        let run = cli(dir.path()).run(bad, b"");
        assert_eq!(run.code, 2, "{bad:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("sealog: error:"),
            "{bad:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
}

/// One input line and the refusal it must get.
struct Bad {
    what: &'static str,
    line: Vec<u8>,
    code: &'static str,
    field: Option<String>,
}

fn bad_json(what: &'static str, v: &Value, code: &'static str, field: &str) -> Bad {
    Bad {
        what,
        line: v.to_string().into_bytes(),
        code,
        field: Some(field.to_string()),
    }
}

fn without(field: &str) -> Value {
    let mut v = event(&format!("missing-{field}"));
    v.as_object_mut().unwrap().remove(field);
    v
}

fn with(field: &str, value: Value) -> Value {
    let mut v = event(&format!("bad-{field}"));
    v[field] = value;
    v
}

fn nested(depth: usize) -> Value {
    // The event is level 1 and `data` level 2; the rest are arrays.
    let mut v = json!(1);
    for _ in 0..depth - 2 {
        v = json!([v]);
    }
    let mut e = event(&format!("depth-{depth}"));
    e["data"] = json!({ "deep": v });
    e
}

/// An event whose `id` holds a byte that is not UTF-8 (Latin-1 `é`).
const LATIN1_ID: &[u8] =
    b"{\"id\":\"caf\xe9\",\"source\":\"s\",\"type\":\"t\",\"time\":\"2026-01-03T12:34:56Z\",\"data\":{}}";

fn bad_events() -> Vec<Bad> {
    let mut big = event("big");
    big["data"]["pad"] = json!("x".repeat(MIB));
    let unsafe_int = with("data", json!({"n": 9_007_199_254_740_993u64}));
    let unsafe_in_array = with("data", json!({"a": [0, 1, -9_007_199_254_740_993i64]}));
    let refused = |what, line: Vec<u8>, code| Bad {
        what,
        line,
        code,
        field: None,
    };
    let mut bad = vec![
        refused("not JSON", br#"{"id": "x", oops"#.to_vec(), "NOT_JSON"),
        refused(
            "trailing garbage",
            format!("{} x", event("t")).into_bytes(),
            "NOT_JSON",
        ),
        refused(
            "invalid UTF-8 in a string",
            LATIN1_ID.to_vec(),
            "INVALID_UTF8",
        ),
        refused("over 1 MiB", big.to_string().into_bytes(), "TOO_LARGE"),
        bad_json("65 levels deep", &nested(65), "INVALID_ENVELOPE", ""),
        bad_json(
            "a string, not an object",
            &json!("just text"),
            "INVALID_ENVELOPE",
            "",
        ),
        bad_json(
            "an array line",
            &json!([event("in-array")]),
            "INVALID_ENVELOPE",
            "",
        ),
        bad_json("2^53+1", &unsafe_int, "UNREPRESENTABLE_NUMBER", "/data/n"),
        bad_json(
            "-(2^53+1) in an array",
            &unsafe_in_array,
            "UNREPRESENTABLE_NUMBER",
            "/data/a/2",
        ),
    ];
    for f in ["id", "source", "type", "time", "data"] {
        bad.push(bad_json(
            "a required field missing",
            &without(f),
            "INVALID_ENVELOPE",
            &format!("/{f}"),
        ));
    }
    for (what, field, value, pointer) in [
        ("id a number", "id", json!(7), "/id"),
        ("id empty", "id", json!(""), "/id"),
        ("id null", "id", Value::Null, "/id"),
        ("source an array", "source", json!(["s"]), "/source"),
        ("type an object", "type", json!({}), "/type"),
        ("time not RFC 3339", "time", json!("yesterday"), "/time"),
        (
            "time without zone",
            "time",
            json!("2026-01-03T12:34:56"),
            "/time",
        ),
        ("time a number", "time", json!(1_767_225_600), "/time"),
        ("data a string", "data", json!("x"), "/data"),
        ("data an array", "data", json!([1]), "/data"),
        ("tenant a number", "tenant", json!(5), "/tenant"),
        ("subject an object", "subject", json!({}), "/subject"),
        ("actor a string", "actor", json!("bob"), "/actor"),
        (
            "actor type unknown",
            "actor",
            json!({"type": "robot", "id": "r2"}),
            "/actor/type",
        ),
        (
            "actor id a number",
            "actor",
            json!({"type": "human", "id": 5}),
            "/actor/id",
        ),
        (
            "specversion other",
            "specversion",
            json!("0.3"),
            "/specversion",
        ),
        (
            "supersedes not an id",
            "supersedes",
            json!("abc"),
            "/supersedes",
        ),
        ("reserved seq", "seq", json!(0), "/seq"),
        (
            "reserved record_id",
            "record_id",
            json!("sha256:00"),
            "/record_id",
        ),
        (
            "reserved ingested_at",
            "ingested_at",
            json!("2026-01-03T12:34:56Z"),
            "/ingested_at",
        ),
    ] {
        bad.push(bad_json(
            what,
            &with(field, value),
            "INVALID_ENVELOPE",
            pointer,
        ));
    }
    bad
}

#[test]
fn each_bad_event_gets_a_precise_refusal_and_the_good_ones_beside_it_are_appended() {
    let dir = sealog_testkit::tempdir();
    let bad = bad_events();
    // Good and bad interleaved: every refusal sits between two events that must be stored.
    let mut input = Vec::new();
    let mut good = Vec::new();
    for (i, b) in bad.iter().enumerate() {
        let g = event(&format!("good-{i}"));
        input.extend_from_slice(format!("{g}\n").as_bytes());
        good.push(g);
        input.extend_from_slice(&b.line);
        input.push(b'\n');
    }
    let last = event("good-last");
    input.extend_from_slice(format!("{last}\n").as_bytes());
    good.push(last);

    let run = cli(dir.path()).run(&["append"], &input);
    assert_eq!(run.code, 1, "some were refused: {}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 2 * bad.len() + 1, "one result per event");
    for (i, b) in bad.iter().enumerate() {
        assert_appended(&lines[2 * i], i as u64, &good[i]);
        let line = &lines[2 * i + 1];
        assert_eq!(line["status"], "rejected", "{}: {line}", b.what);
        assert_eq!(line["error"]["code"], b.code, "{}: {line}", b.what);
        assert_eq!(
            line["error"].get("field").and_then(Value::as_str),
            b.field.as_deref(),
            "{}: {line}",
            b.what
        );
        let message = line["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{}: {line}", b.what);
        assert_eq!(
            line.as_object().unwrap().len(),
            2,
            "{}: a refusal carries no seq or id: {line}",
            b.what
        );
    }
    assert_appended(&lines[2 * bad.len()], bad.len() as u64, &good[bad.len()]);
    let deep = lines
        .iter()
        .find(|l| {
            l["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nesting"))
        })
        .unwrap();
    assert!(
        deep["error"]["message"].as_str().unwrap().contains("64"),
        "{deep}"
    );

    // The log holds the good events and nothing else, at dense seqs.
    let records = cli(dir.path()).all_records();
    let want: Vec<String> = good
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&records), want);
    // The good events were appended before any read, at dense seqs; after them come only
    // the reads' own access records.
    for (seq, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], json!(seq));
        if seq >= good.len() {
            assert_eq!(r["type"], "audit.access", "{r}");
        }
    }
    for id in ["big", "depth-65", "bad-seq", "missing-data"] {
        assert_eq!(
            cli(dir.path()).ok(&["query", "--id", id], b"").stdout,
            "",
            "{id} was stored"
        );
    }
}

#[test]
fn an_event_of_exactly_1_mib_is_accepted_and_one_byte_more_is_refused() {
    let dir = sealog_testkit::tempdir();
    // An event whose JSON text is exactly `size` bytes: a small record, padded with the
    // whitespace JSON allows between tokens (a record is at most 65,535 bytes; the text
    // limit is the reader's).
    let sized = |id: &str, size: usize| -> String {
        let e = event(id).to_string();
        let text = format!("{}{}}}", &e[..e.len() - 1], " ".repeat(size - e.len()));
        assert_eq!(text.len(), size);
        text
    };
    let at_limit = sized("at-limit", MIB);
    let over_limit = sized("over-limit", MIB + 1);
    let run = cli(dir.path()).run(
        &["append"],
        format!("{at_limit}\n{over_limit}\n").as_bytes(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines[0]["status"], "appended", "{}", lines[0]);
    assert_eq!(lines[1]["error"]["code"], "TOO_LARGE", "{}", lines[1]);
    assert_eq!(ids(&cli(dir.path()).all_records()), ["at-limit"]);
}

/// Nesting far past the limit must be refused like any other bad event, not overflow a
/// stack or abort the process.
#[test]
fn absurdly_deep_nesting_is_refused_without_crashing() {
    let dir = sealog_testkit::tempdir();
    let depth = 100_000;
    let mut e = event("deep");
    e["data"] = json!({"d": "NESTED"});
    let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let line = e.to_string().replace("\"NESTED\"", &nested);
    let input = format!("{}\n{line}\n{}\n", event("before"), event("after"));
    let run = cli(dir.path()).run(&["append"], input.as_bytes());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["status"], "rejected");
    assert_eq!(ids(&cli(dir.path()).all_records()), ["before", "after"]);
}

/// A pretty-printed object is one event (see the test of input forms); when it is over the
/// size limit or holds invalid UTF-8 it must still get one refusal, not one per line.
#[test]
fn a_bad_pretty_printed_object_gets_exactly_one_refusal() {
    let dir = sealog_testkit::tempdir();
    let mut big = event("big-pretty");
    big["data"]["pad"] = json!((0..1100).map(|i| format!("{i:0>1000}")).collect::<Vec<_>>());
    let big = serde_json::to_string_pretty(&big).unwrap();
    assert!(big.len() > MIB && big.lines().count() > 1000);
    // The same Latin-1 event spread over lines, as a pretty-printer would.
    let bad_utf8 = LATIN1_ID
        .split(|&b| b == b',')
        .collect::<Vec<_>>()
        .join(&b",\n"[..]);
    for (input, code) in [
        (big.as_bytes(), "TOO_LARGE"),
        (&bad_utf8[..], "INVALID_UTF8"),
    ] {
        let run = cli(dir.path()).run(&["append"], input);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let lines = run.lines();
        assert_eq!(
            lines.len(),
            1,
            "{code}: one event, one result; got {}",
            lines.len()
        );
        assert_eq!(lines[0]["error"]["code"], code);
    }
    assert_eq!(cli(dir.path()).all_records().len(), 0);
}

#[test]
fn input_without_events_is_refused_with_exit_2() {
    let dir = sealog_testkit::tempdir();
    for input in [&b""[..], b"  \n\t\r\n", b"[]", b" [ ] "] {
        let run = cli(dir.path()).run(&["append"], input);
        assert_eq!(run.code, 2, "{input:?}");
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.contains("no events"),
            "{input:?}: {}",
            run.stderr
        );
    }
    let empty_file = dir.path().join("empty.ndjson");
    std::fs::write(&empty_file, "").unwrap();
    let run = cli(dir.path()).run(&["append", empty_file.to_str().unwrap()], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no events"), "{}", run.stderr);

    let missing = dir.path().join("no-such-file.ndjson");
    let run = cli(dir.path()).run(&["append", missing.to_str().unwrap()], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no-such-file.ndjson"), "{}", run.stderr);
    assert_eq!(cli(dir.path()).all_records().len(), 0);
}

/// Input is cut into events as it arrives, so an array cut off inside an element has
/// already handed over the whole elements before it: they are appended, and only the
/// unfinished element is refused. (Before input was streamed, the whole array was refused
/// and nothing appended.)
#[test]
fn an_array_cut_off_inside_an_element_appends_the_whole_elements_and_refuses_the_cut_one() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    let whole = [event("a"), event("b")];
    let cut = event("c").to_string();
    let input = format!("[{}, {}, {}", whole[0], whole[1], &cut[..cut.len() / 2]);
    let run = cli.run(&["append"], input.as_bytes());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "one result per element: {}", run.stdout);
    assert_appended(&lines[0], 0, &whole[0]);
    assert_appended(&lines[1], 1, &whole[1]);
    assert_eq!(lines[2]["status"], "rejected", "{}", lines[2]);
    assert_eq!(lines[2]["error"]["code"], "NOT_JSON", "{}", lines[2]);
    assert_eq!(ids(&cli.all_records()), ["a", "b"]);
}

/// One process writes a data directory. A second writer is refused and told who holds it;
/// readers open it read-only beside the holder and see what it has made durable.
#[test]
fn a_second_writer_is_refused_while_readers_read_beside_the_holder() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    // The holder has the ledger open and waits for its input.
    let mut holder = cli.spawn(&["append", "-"]);
    let lock = dir.path().join("LOCK");
    wait_for(30, "the holder to take the lock", || {
        std::fs::read_to_string(&lock)
            .is_ok_and(|pid| pid.trim() == holder.id().to_string())
            .then_some(())
    });
    let run = cli.run(&["append"], event("second").to_string().as_bytes());
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("pid {}", holder.id())),
        "{}",
        run.stderr
    );

    // The holder's input stays open: it must append without waiting for the end of it.
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(stdin, "{}", event("first")).unwrap();
    stdin.flush().unwrap();
    let got = wait_for(60, "the holder's record to be readable beside it", || {
        let run = cli.run(&["get", "0"], b"");
        (run.code == 0).then_some(run)
    });
    assert!(got.stderr.contains("read-only"), "{}", got.stderr);
    assert_eq!(got.lines()[0]["id"], "first");
    let listed = cli.ok(&["query"], b"");
    assert!(listed.stderr.contains("read-only"), "{}", listed.stderr);
    assert_eq!(ids(&listed.lines()), ["first"]);

    drop(stdin);
    let out = holder.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "the holder answered its one event"
    );
    assert_eq!(ids(&cli.all_records()), ["first"]);
}

#[test]
fn durability_os_says_so_loudly() {
    let dir = sealog_testkit::tempdir();
    let run = cli(dir.path()).ok(
        &["--durability", "os", "append"],
        event("os").to_string().as_bytes(),
    );
    assert!(run.stderr.contains("WARNING"), "{}", run.stderr);
    assert_eq!(run.lines()[0]["status"], "appended");
    let run = cli(dir.path()).ok(&["append"], event("fsync").to_string().as_bytes());
    assert!(!run.stderr.contains("WARNING"), "{}", run.stderr);
    assert_eq!(ids(&cli(dir.path()).all_records()), ["os", "fsync"]);
}

#[test]
fn a_torn_tail_is_cut_and_reported_on_the_next_open() {
    let dir = sealog_testkit::tempdir();
    let evs: Vec<Value> = (0..3).map(|i| event(&format!("tail-{i}"))).collect();
    cli(dir.path()).ok(&["append"], &ndjson(&evs));
    let seg = dir.path().join("log").join(format!("{:020}.seg", 0));
    let len = std::fs::metadata(&seg).unwrap().len();
    // Half a frame header: what a crash in the middle of a write leaves.
    sealog_testkit::files::append_bytes(&seg, &[0x51, 0x02, 0, 0, 9]);
    let run = cli(dir.path()).ok(&["get", "2"], b"");
    let want = format!(
        "sealog: recovered: cut a torn tail of 5 bytes at offset {len} of {}",
        seg.display()
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    assert_eq!(run.lines()[0]["id"], "tail-2");
    let run = cli(dir.path()).ok(&["append"], event("tail-3").to_string().as_bytes());
    assert_eq!(run.stderr, "", "the second open finds nothing to repair");
    // Where the torn bytes were, the read's access record (seq 3) was appended whole.
    assert_eq!(run.lines()[0]["seq"], 4);
    let access = &cli(dir.path()).ok(&["get", "3"], b"").lines()[0];
    assert_eq!(access["type"], "audit.access", "{access}");
    assert_eq!(access["data"]["resource"]["id"], "2", "{access}");
    cli(dir.path()).assert_verifies();
}

/// What README.md says of the demo, word for word (line breaks aside): its first command, and
/// the paragraph after it. The test checks each clause against what the demo prints and what
/// the data directory then holds, so the README cannot change without this test, nor the demo
/// without the README.
const README_DEMO_COMMAND: &str = "cargo run --release -p sealog -- demo \
    # build, ingest the shipped example events, read them back";
const README_DEMO_PROMISE: &str = "The demo writes to `./sealog-data`: it ingests one or more \
    events of every built-in pack, sends them again (every one answers `duplicate`), \
    quarantines an incomplete decision record, queries by pack axes in the history and \
    current views, and rebuilds a deleted chunk's state.";

/// One `query AXIS=VALUE: H records (C current)` paragraph of the demo's output, with the seqs
/// of the records it lists.
#[derive(Debug)]
struct DemoQuery {
    axis: String,
    value: String,
    history: usize,
    current: usize,
    seqs: Vec<u64>,
}

fn demo_queries(stdout: &str) -> Vec<DemoQuery> {
    let mut out: Vec<DemoQuery> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("query ") {
            let (term, counts) = rest.split_once(": ").expect("query AXIS=VALUE: …");
            let (axis, value) = term.split_once('=').expect("AXIS=VALUE");
            let (history, current) = counts
                .strip_suffix(" current)")
                .and_then(|c| c.split_once(" records ("))
                .unwrap_or_else(|| panic!("not `H records (C current)`: {line}"));
            out.push(DemoQuery {
                axis: axis.into(),
                value: value.into(),
                history: history.parse().unwrap(),
                current: current.parse().unwrap(),
                seqs: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("  seq ")
            && let Some(q) = out.last_mut()
        {
            q.seqs
                .push(rest.split(' ').next().unwrap().parse().unwrap());
        }
    }
    out
}

/// The counts after `→` of each `… N events → …` line: one per round of ingest.
fn demo_rounds(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" → "))
        .map(|(_, counts)| counts)
        .collect()
}

#[test]
fn demo_ingests_the_examples_once_and_reads_them_back() {
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = words(include_str!("../../../../README.md"));
    for promise in [README_DEMO_COMMAND, README_DEMO_PROMISE] {
        assert!(
            readme.contains(&words(promise)),
            "README.md no longer says {promise:?}: check the demo against what it says now, here"
        );
    }
    let examples = include_str!("../../../../examples/events.ndjson")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();

    // Run as the README runs it: no `--data`, in a directory of its own.
    let cwd = sealog_testkit::tempdir();
    let bin = env!("CARGO_BIN_EXE_sealog");
    let demo = || {
        let mut c = std::process::Command::new(bin);
        c.current_dir(cwd.path())
            .env_remove("SEALOG_URL")
            .env_remove("SEALOG_KEY")
            .env_remove("SEALOG_ACCEPT_UNDECLARED_TYPES")
            .arg("demo");
        let run = sealog_testkit::cli::run_command(
            c,
            b"",
            std::time::Duration::from_secs(sealog_testkit::cli::RUN_SECS_MAX),
        );
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        run
    };
    let run = demo();
    let out = &run.stdout;

    // "writes to ./sealog-data"
    let data = cwd.path().join("sealog-data");
    let log = Cli::new(bin, &data);
    let packs = sealog_ledger::Packs::builtin();
    // The producers' events: reading may add Sealog's own records (the `audit` pack's), which
    // are not the demo's.
    let events = || -> Vec<Value> {
        log.all_records()
            .into_iter()
            .filter(|r| packs.pack_of(r["type"].as_str().unwrap()) != Some("audit"))
            .collect()
    };
    let records = events();
    assert_eq!(records.len(), examples, "{out}");
    assert!(
        out.lines().next().unwrap_or("").ends_with(" ./sealog-data"),
        "the demo names the directory it writes: {out}"
    );

    // "ingests one or more events of every built-in pack, sends them again (every one
    // answers `duplicate`)"
    assert_eq!(
        demo_rounds(out),
        [
            format!("{examples} appended, 0 duplicates, 0 quarantined, 0 rejected"),
            format!("0 appended, {examples} duplicates, 0 quarantined, 0 rejected"),
        ],
        "{out}"
    );
    let stored: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| {
            let kind = r["type"].as_str().unwrap();
            packs
                .pack_of(kind)
                .unwrap_or_else(|| panic!("{kind} is of no built-in pack"))
        })
        .collect();
    // `audit` declares Sealog's own records, which producers may not send.
    let producers: std::collections::BTreeSet<&str> = packs
        .pack_names()
        .into_iter()
        .filter(|p| *p != "audit")
        .collect();
    assert_eq!(stored, producers, "a record of every built-in pack");

    // "quarantines an incomplete decision record"
    let incomplete: Value = out
        .lines()
        .find_map(|l| l.strip_prefix("an incomplete decision record: "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no incomplete decision record: {out}"));
    assert_eq!(incomplete["status"], "quarantined", "{incomplete}");
    assert_eq!(
        incomplete["reason_code"], "INCOMPLETE_PROVENANCE",
        "{incomplete}"
    );
    let quarantined = log.ok(&["quarantine"], b"").lines();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0]["record_id"], incomplete["quarantine_id"]);
    assert_eq!(
        quarantined[0]["data"]["event_type"],
        "decision-log.audit_decision_record"
    );
    assert_eq!(
        quarantined[0]["data"]["missing_fields"],
        incomplete["missing_fields"]
    );

    // "queries by pack axes in the history and current views": each count and each record it
    // lists is what `sealog query` answers.
    let queries = demo_queries(out);
    assert!(
        queries
            .iter()
            .any(|q| !sealog_ledger::ENVELOPE_AXES.contains(&q.axis.as_str())),
        "no query by a pack axis: {queries:?}"
    );
    for q in &queries {
        let term = format!("{}={}", q.axis, q.value);
        let seqs = |view: &str| -> Vec<u64> {
            log.ok(
                &["query", "--axis", &term, "--view", view, "--limit", "1000"],
                b"",
            )
            .lines()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
        };
        let history = seqs("history");
        assert!(!history.is_empty(), "{term} finds nothing");
        assert_eq!(q.history, history.len(), "{term}: {out}");
        assert_eq!(q.seqs, history, "{term}: the records it lists");
        assert_eq!(q.current, seqs("current").len(), "{term}: {out}");
    }

    // "rebuilds a deleted chunk's state"
    let (subject, status, version) = out
        .lines()
        .find_map(|l| {
            let (head, tail) = l.strip_prefix("state of ")?.split_once(": ")?;
            let (status, version) = tail.strip_suffix(" events")?.split_once(" after ")?;
            let subject = head.split(' ').next()?;
            Some((subject, status, version.parse::<u64>().ok()?))
        })
        .unwrap_or_else(|| panic!("no state: {out}"));
    assert_eq!(status, "\"deleted\"", "{out}");
    let state = log.ok(&["state", "--subject", subject], b"").json();
    assert_eq!(state["status"], "deleted", "{state}");
    assert_eq!(state["version"], version, "{state}");

    // What sets the log apart: its signed checkpoint (the one `sealog checkpoint` prints), an
    // inclusion proof checked, `verify` intact, and a flipped byte in a copy found and located.
    let line = |prefix: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}: {out}"))
            .to_string()
    };
    let note = log.ok(&["checkpoint"], b"").stdout;
    let mut lines = note.lines();
    let (origin, size, root) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
    );
    // Reads since the demo recorded their access, so the log may have grown past it.
    let signed = line("signed checkpoint: ");
    let (demo_size, rest) = signed.split_once(" records, root ").expect("size and root");
    let (demo_root, by) = rest.split_once(", signed by ").expect("root and signer");
    assert_eq!(by, origin, "{signed} vs {note}");
    assert!(demo_size.parse::<u64>().unwrap() <= size.parse::<u64>().unwrap());
    if demo_size == size {
        assert_eq!(demo_root, root);
    }
    assert!(
        line("inclusion proof of record ").ends_with(": checked"),
        "{out}"
    );
    assert!(
        line("verify ./sealog-data: ").starts_with(&format!("intact: {demo_size} records")),
        "{out}"
    );
    let tampered = line("verify of a copy with byte ");
    assert!(
        tampered.contains("FAILED at ./sealog-data-tampered/log/") && tampered.contains("offset"),
        "{tampered}"
    );
    assert!(!cwd.path().join("sealog-data-tampered").exists());

    // The same demo again on the same directory adds nothing.
    let again = demo();
    assert_eq!(
        demo_rounds(&again.stdout)[0],
        format!("0 appended, {examples} duplicates, 0 quarantined, 0 rejected"),
        "{}",
        again.stdout
    );
    assert_eq!(events().len(), examples);
    assert_eq!(log.ok(&["quarantine"], b"").lines().len(), 1);
}
