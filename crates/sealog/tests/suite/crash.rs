//! SIGKILL the real binary while it appends, then prove from what is left on disk that
//! every acknowledged record survived intact at its seq, that the log has no holes and no
//! foreign records, and that the store takes new appends. Trials continue in the same data
//! directory for a while, so each recovery also recovers from the previous one.
//!
//! A SIGKILL keeps the page cache, so these trials cannot tell a synced record from one that
//! was only written: `--durability os` trials check recovery, not durability, and the order
//! of write, sync and acknowledgement is checked from the system calls in `fsync_order.rs`.
//! The run fails if no durable trial was killed while appends were in flight, or if no
//! acknowledgement was checked, for either way of reading the log back.
//!
//! Trial `t` draws its choices from seed `base + t`; a failure prints the base and the trial
//! count to replay the same sequence with `SEALOG_CRASH_SEED` and `SEALOG_CRASH_TRIALS` (the
//! kill lands where the scheduler puts it, so a replay repeats the choices, not the timing).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use sealog_ledger::{Author, Ledger, LedgerConfig, Packs, StoreConfig, Undeclared};
use sealog_model::Canonical;
use sealog_model::json::Json;
use sealog_testkit::cli::result_lines;
use sealog_testkit::{Cli, Rng, wait_for};
use serde_json::Value;

const SEED_BASE: u64 = 0x5EA1_0C4A_5400_0000;
/// Trials that share one data directory before a fresh one starts.
const TRIALS_PER_DIR: usize = 5;
/// Target size of one event's JSON text.
const EVENT_BYTES: usize = 600;

/// Uniform in `lo..=hi`.
fn range(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.below(hi - lo + 1)
}

fn cli(dir: &Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

/// Opens the data directory in this process, as its writer, so that the library does the
/// recovery.
fn open_ledger(dir: &Path) -> Ledger {
    let config = LedgerConfig {
        store: StoreConfig::default(),
        packs: Packs::builtin(),
        undeclared: Undeclared::Accept,
    };
    Ledger::open(dir, config).unwrap_or_else(|e| panic!("reopen after the kill: {e}"))
}

fn trials() -> usize {
    if let Some(n) = std::env::var("SEALOG_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if sealog_testkit::under_ci() { 50 } else { 10 }
}

fn seed_base() -> u64 {
    std::env::var("SEALOG_CRASH_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(SEED_BASE)
}

/// Prints how to replay the trials up to a failing one.
struct ReplayHint {
    base: u64,
    trial: usize,
}

impl Drop for ReplayHint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "crash trial {} (seed {:#x}) failed: replay with SEALOG_CRASH_SEED={:#x} SEALOG_CRASH_TRIALS={}",
                self.trial,
                self.base.wrapping_add(self.trial as u64),
                self.base,
                self.trial + 1
            );
        }
    }
}

/// One event sent to the binary: its unique producer id and its JSON text.
#[derive(Clone)]
struct Input {
    id: String,
    line: String,
}

/// One unique event of about `EVENT_BYTES`, with text and numbers that canonicalization
/// must carry through unchanged.
fn event(seed: u64, i: usize, rng: &mut Rng) -> Input {
    let numbers = [
        "0.1",
        "1e21",
        "123456789012.25",
        "5e-324",
        "-7",
        "9007199254740991",
    ];
    let id = format!("crash-{seed:x}-{i:06}");
    let head = format!(
        concat!(
            r#"{{"specversion":"1.0","id":"{}","source":"crash-test","type":"crash.kind{}","#,
            r#""time":"2026-0{}-{:02}T{:02}:{:02}:{:02}.{:03}Z","tenant":"tenant-{}","subject":"subj-{}","#,
            r#""actor":{{"type":"agent","id":"agent-{}"}},"data":{{"i":{},"x":{},"note":"Grüße ✓ \u00e9\n","pad":""#
        ),
        id,
        rng.below(4),
        range(rng, 1, 9),
        range(rng, 1, 28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000),
        rng.below(7),
        rng.below(100),
        rng.below(5),
        i,
        numbers[rng.below(numbers.len() as u64) as usize],
    );
    let pad_len = EVENT_BYTES.saturating_sub(head.len() + 3);
    let pad: String = (0..pad_len)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16) as usize]))
        .collect();
    Input {
        line: format!("{head}{pad}\"}}}}"),
        id,
    }
}

/// What the test knows about one data directory: every record it has verified, by seq.
#[derive(Default)]
struct Known {
    records: Vec<Vec<u8>>,
    rid_of_seq: Vec<String>,
    /// Producer ids are unique per event here, so they name records too.
    seq_of_id: HashMap<String, u64>,
    rids: HashSet<String>,
}

impl Known {
    fn add(&mut self, bytes: Vec<u8>) -> Value {
        let seq = self.records.len() as u64;
        let (rid, event) = check_record(&bytes, seq);
        let id = event["id"].as_str().unwrap().to_string();
        assert!(
            self.rids.insert(rid.clone()),
            "record {seq} has the content of an earlier record"
        );
        assert!(
            self.seq_of_id.insert(id, seq).is_none(),
            "record {seq} repeats an event id"
        );
        self.rid_of_seq.push(rid);
        self.records.push(bytes);
        event
    }
}

/// The result lines a killed append printed, whole lines only.
struct Crashed {
    lines: Vec<Value>,
    killed: bool,
    stderr: String,
}

#[derive(Clone, Copy)]
enum KillAt {
    /// Milliseconds after the spawn.
    Delay(u64),
    /// After this many result lines were read, plus a few milliseconds.
    Lines(usize, u64),
}

/// Runs `sealog append -` on `input` and kills it. With `hold_back`, only the lines of the
/// input's first half are sent before the kill (the pipe stays open), so that the kill lands
/// with appends in flight however fast the binary answers.
fn run_and_kill(
    dir: &Path,
    input: Vec<u8>,
    os_durability: bool,
    kill_at: &KillAt,
    hold_back: bool,
) -> Crashed {
    let mut args = vec!["append", "-"];
    if os_durability {
        args.splice(0..0, ["--durability", "os"]);
    }
    let mut child = cli(dir).spawn(&args);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let sent = if hold_back {
        input[..input.len() / 2]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    } else {
        input.len()
    };
    let (release, released) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        // A killed child closes the pipe; the write error that follows is expected.
        for chunk in input[..sent].chunks(64 << 10) {
            if stdin.write_all(chunk).is_err() {
                return;
            }
        }
        // Held back: the pipe stays open until the kill (the sender's drop) ends the wait.
        let _ = released.recv();
    });
    let (printed, reader) = result_lines(stdout);
    let mut lines = Vec::new();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let extra = match *kill_at {
        KillAt::Delay(ms) => ms,
        KillAt::Lines(n, ms) => {
            wait_for(120, "the result lines to kill after", || {
                lines.extend(printed.try_iter());
                let ended = child.try_wait().unwrap().is_some();
                (ended || lines.len() >= n).then_some(())
            });
            ms
        }
    };
    // Not a wait for anything: where the kill lands is the trial's random choice.
    std::thread::sleep(Duration::from_millis(extra));
    // Child::kill sends SIGKILL on Unix: no handler runs, nothing is flushed or closed.
    let _ = child.kill();
    let status = child.wait().unwrap();
    drop(release);
    writer.join().unwrap();
    reader.join().unwrap();
    lines.extend(printed.try_iter());
    let stderr = errors.join().unwrap();
    let killed = status.signal() == Some(libc::SIGKILL);
    if !killed {
        assert!(
            status.success(),
            "append ended on its own but failed: {status:?}: {stderr}"
        );
    }
    Crashed {
        lines,
        killed,
        stderr,
    }
}

/// Checks one stored record by itself: it names its seq, and its content hashes to its id.
fn check_record(bytes: &[u8], seq: u64) -> (String, Value) {
    let rec: Value =
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("record {seq} is not JSON: {e}"));
    assert_eq!(
        rec["seq"].as_u64(),
        Some(seq),
        "record {seq} names another seq"
    );
    let rid = rec["record_id"]
        .as_str()
        .unwrap_or_else(|| panic!("record {seq} has no record_id"))
        .to_string();
    assert!(
        rec["ingested_at"].is_string(),
        "record {seq} has no ingested_at"
    );
    let mut event = rec.as_object().unwrap().clone();
    for f in ["seq", "record_id", "ingested_at"] {
        event.remove(f);
    }
    let event = Value::Object(event);
    let recomputed = Canonical::of_event(&Json::from_value(&event))
        .unwrap_or_else(|e| panic!("record {seq}'s event has no canonical form: {e}"));
    assert_eq!(
        recomputed.record_id.to_string(),
        rid,
        "record {seq}'s content does not match its record_id"
    );
    (rid, event)
}

/// Reads the records past what is known: through the library, or through `sealog query`
/// so that the binary does the recovery. Returns them and the log's length.
fn read_new(dir: &Path, from: u64, via_binary: bool) -> (Vec<Vec<u8>>, String) {
    if !via_binary {
        let ledger = open_ledger(dir);
        let new = (from..ledger.len())
            .map(|s| ledger.get(s).unwrap().unwrap())
            .collect();
        ledger.close().unwrap();
        return (new, String::new());
    }
    let mut new = Vec::new();
    let mut first_stderr = None;
    let mut after = from.checked_sub(1);
    loop {
        let after_arg = after.map(|a| a.to_string());
        let mut args = vec!["query", "--limit", "10000"];
        if let Some(a) = &after_arg {
            args.extend(["--after", a]);
        }
        let run = cli(dir).run(&args, b"");
        assert_eq!(run.code, 0, "query after the kill: {}", run.stderr);
        new.extend(
            run.stdout
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec()),
        );
        let more = run
            .stderr
            .split("continue with --after ")
            .nth(1)
            .map(|s| s.trim().parse::<u64>().unwrap());
        first_stderr.get_or_insert(run.stderr);
        match more {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    // A read through the binary is itself recorded (an `audit.access` record appended after
    // what it printed): those records are part of the log too.
    let ledger = open_ledger(dir);
    new.extend((from + new.len() as u64..ledger.len()).map(|s| ledger.get(s).unwrap().unwrap()));
    ledger.close().unwrap();
    (new, first_stderr.unwrap_or_default())
}

/// Whether a stored record is one of Sealog's own (the `audit` pack's types, which producers
/// may not write), rather than one of the events the test sent.
fn is_own(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|r| r["type"].as_str().map(|t| t.starts_with("audit.")))
        .unwrap_or(false)
}

fn append_one_more(dir: &Path, event: &str, via_binary: bool) -> Value {
    if via_binary {
        let run = cli(dir).run(&["append", "-"], event.as_bytes());
        assert_eq!(run.code, 0, "append after recovery: {}", run.stderr);
        return serde_json::from_str(&run.stdout).unwrap();
    }
    let ledger = open_ledger(dir);
    let out = ledger
        .ingest(&[Ok(event.as_bytes())], &Author::ANYONE)
        .unwrap();
    ledger.close().unwrap();
    out[0].to_json()
}

/// After the kill: everything known is still there, the new records are whole and are a
/// prefix of the events not stored before, in input order, and every acknowledgement
/// the reader saw points at the record it names. Returns how many acknowledgements it checked.
fn verify(
    dir: &Path,
    known: &mut Known,
    inputs: &[Input],
    crashed: &Crashed,
    via_binary: bool,
) -> usize {
    let before = known.records.len() as u64;
    let (new, stderr) = read_new(dir, before, via_binary);
    if let Some(rest) = stderr
        .split("sealog: recovered: cut a torn tail of ")
        .nth(1)
    {
        assert!(
            rest.contains(&dir.join("log").display().to_string()),
            "{stderr}"
        );
    }

    // Records stored before this trial were verified then; spot-check they are unchanged.
    if before > 0 {
        let ledger = open_ledger(dir);
        for seq in (0..before).step_by(499).chain([before - 1]) {
            assert_eq!(
                ledger.get(seq).unwrap().as_ref(),
                Some(&known.records[seq as usize]),
                "old record {seq} changed"
            );
        }
    }

    // The reads after the kill may have recorded themselves after the recovered records; no
    // such record may come before any of them.
    let own = new.iter().rev().take_while(|b| is_own(b)).count();
    let mut new = new;
    let own_records = new.split_off(new.len() - own);
    let fresh: Vec<&Input> = inputs
        .iter()
        .filter(|i| !known.seq_of_id.contains_key(&i.id))
        .take(new.len())
        .collect();
    assert_eq!(
        fresh.len(),
        new.len(),
        "more new records than new events were sent"
    );
    for (bytes, input) in new.into_iter().zip(fresh) {
        let seq = known.records.len();
        let event = known.add(bytes);
        let sent: Value = serde_json::from_str(&input.line).unwrap();
        assert_eq!(
            event, sent,
            "record {seq} is not event {}: the log has a hole or a foreign record",
            input.id
        );
    }

    for bytes in own_records {
        known.add(bytes);
    }

    // Each whole result line is for the input event at its position and names the seq
    // where that event now is.
    for (i, line) in crashed.lines.iter().enumerate() {
        let status = line["status"].as_str().unwrap();
        assert!(
            status == "appended" || status == "duplicate",
            "line {i}: {line}"
        );
        let seq = line["seq"].as_u64().unwrap();
        assert_eq!(
            known.seq_of_id.get(&inputs[i].id),
            Some(&seq),
            "acknowledged event {} ({status} at {seq}) is lost or moved",
            inputs[i].id
        );
        assert_eq!(
            line["record_id"].as_str(),
            Some(known.rid_of_seq[seq as usize].as_str()),
            "line {i}: {line}"
        );
        if status == "appended" {
            assert!(
                seq >= before,
                "line {i} claims a new append at old seq {seq}"
            );
        } else {
            assert!(
                seq < before,
                "line {i}: a duplicate of a record of this very run at {seq}"
            );
        }
    }
    if !crashed.killed {
        assert_eq!(
            crashed.lines.len(),
            inputs.len(),
            "a run that finished answers every event"
        );
    }
    crashed.lines.len()
}

fn check_all(dir: &Path, known: &Known) {
    let ledger = open_ledger(dir);
    assert_eq!(ledger.len(), known.records.len() as u64);
    assert_eq!(
        ledger.recovery().0.cut,
        None,
        "a cleanly closed store has nothing to cut"
    );
    for (seq, bytes) in known.records.iter().enumerate() {
        assert_eq!(
            ledger.get(seq as u64).unwrap().as_ref(),
            Some(bytes),
            "record {seq} changed"
        );
    }
}

/// What one trial does.
struct Plan {
    array: bool,
    /// New events in the input.
    n: usize,
    kill_at: KillAt,
    os_durability: bool,
    via_binary: bool,
    /// Chosen, not drawn: see [`plan`].
    forced: bool,
}

/// The trial's choices. Each way of reading the log back (the library, the binary) has its
/// first trial chosen rather than drawn: durable, NDJSON, thousands of events, the second half
/// of them held back, killed after up to a quarter of them are acknowledged — so that even
/// the shortest run kills durable appends in flight and checks acknowledgements on both
/// paths, whatever the draws are and however fast the binary is.
fn plan(trial: usize, rng: &mut Rng) -> Plan {
    let via_binary = trial % 3 == 2;
    if trial == 0 || trial == 2 {
        return Plan {
            array: false,
            n: 5000,
            kill_at: KillAt::Lines(range(rng, 1, 1250) as usize, rng.below(3)),
            os_durability: false,
            via_binary,
            forced: true,
        };
    }
    let array = rng.below(4) == 0;
    let n = if array {
        5000
    } else {
        range(rng, 300, 5000) as usize
    };
    // The binary answers in chunks: a kill after some answers lands while it prints them or
    // commits the next chunk; after the last answer, while it closes the store. `Lines`
    // bounds are fixed up once the input's length is known.
    let kill_at = match rng.below(8) {
        0..=2 => KillAt::Lines(range(rng, 1, n as u64) as usize, rng.below(3)),
        3 => KillAt::Lines(usize::MAX, rng.below(3)),
        _ => KillAt::Delay(range(rng, 2, 300)),
    };
    Plan {
        array,
        n,
        kill_at,
        os_durability: rng.below(4) == 0,
        via_binary,
        forced: false,
    }
}

/// What the trials of one kind did: trials, kills, kills that landed between
/// acknowledgements with more input still to answer, acknowledgements checked.
#[derive(Default, Debug)]
struct Tally {
    trials: usize,
    forced: usize,
    killed: usize,
    mid_stream: usize,
    acked: usize,
}

#[test]
fn sigkill_during_append_loses_no_acknowledged_record() {
    let base = seed_base();
    let runs = trials();
    eprintln!(
        "crash trials: {runs} from seed {base:#x}; replay with SEALOG_CRASH_SEED={base:#x} \
         SEALOG_CRASH_TRIALS={runs}"
    );
    let mut dir = sealog_testkit::tempdir();
    let mut known = Known::default();
    let mut previous: Vec<Input> = Vec::new();
    // By (fsync durability, read back through the binary).
    let mut tally: HashMap<(bool, bool), Tally> = HashMap::new();
    for trial in 0..runs {
        let seed = base.wrapping_add(trial as u64);
        let _hint = ReplayHint { base, trial };
        if trial > 0 && trial % TRIALS_PER_DIR == 0 {
            check_all(dir.path(), &known);
            dir = sealog_testkit::tempdir();
            known = Known::default();
            previous.clear();
        }
        let mut rng = Rng::new(seed);
        let plan = plan(trial, &mut rng);
        // Some events of the previous trial again: stored ones must answer duplicate with
        // their seq, ones the kill lost are appended now.
        let again = previous.len().min(rng.below(40) as usize);
        let mut inputs: Vec<Input> = previous[..again].to_vec();
        inputs.extend((0..plan.n).map(|i| event(seed, i, &mut rng)));
        let body = if plan.array {
            let lines: Vec<&str> = inputs.iter().map(|i| i.line.as_str()).collect();
            format!("[\n{}\n]\n", lines.join(",\n")).into_bytes()
        } else {
            inputs
                .iter()
                .flat_map(|i| [i.line.as_bytes(), &b"\n"[..]])
                .flatten()
                .copied()
                .collect()
        };
        let kill_at = match plan.kill_at {
            KillAt::Lines(n, ms) => KillAt::Lines(n.min(inputs.len()), ms),
            delay => delay,
        };

        let crashed = run_and_kill(dir.path(), body, plan.os_durability, &kill_at, plan.forced);
        assert!(
            !crashed.stderr.contains("panicked"),
            "the binary panicked: {}",
            crashed.stderr
        );
        let checked = verify(dir.path(), &mut known, &inputs, &crashed, plan.via_binary);
        let t = tally
            .entry((!plan.os_durability, plan.via_binary))
            .or_default();
        t.trials += 1;
        t.forced += usize::from(plan.forced);
        t.killed += usize::from(crashed.killed);
        t.mid_stream += usize::from(
            crashed.killed && !crashed.lines.is_empty() && crashed.lines.len() < inputs.len(),
        );
        t.acked += checked;

        // An index no trial's input reaches, so the id is new.
        let next = event(seed, 999_999, &mut rng);
        let line = append_one_more(dir.path(), &next.line, plan.via_binary);
        let seq = known.records.len() as u64;
        assert_eq!(line["status"], "appended", "{line}");
        assert_eq!(
            line["seq"].as_u64(),
            Some(seq),
            "the next append takes the next seq"
        );
        let ledger = open_ledger(dir.path());
        let bytes = ledger.get(seq).unwrap().unwrap();
        ledger.close().unwrap();
        assert_eq!(known.add(bytes)["id"].as_str(), Some(next.id.as_str()));
        assert_eq!(
            line["record_id"].as_str(),
            Some(known.rid_of_seq[seq as usize].as_str())
        );
        previous = inputs;
    }
    check_all(dir.path(), &known);
    let mut kinds: Vec<_> = tally.iter().collect();
    kinds.sort_by_key(|(k, _)| **k);
    eprintln!(
        "crash summary: {runs} trials, {} killed by SIGKILL, {} acknowledgements checked",
        kinds.iter().map(|(_, t)| t.killed).sum::<usize>(),
        kinds.iter().map(|(_, t)| t.acked).sum::<usize>()
    );
    for ((fsync, via_binary), t) in &kinds {
        eprintln!(
            "durability {}, read back by the {}: {t:?}",
            if *fsync { "fsync" } else { "os" },
            if *via_binary { "binary" } else { "library" },
        );
    }
    // A trial proves something about durable appends only if it was killed while appends
    // were in flight, after some were acknowledged, and those acknowledgements were checked.
    // `--durability os` trials check recovery only: a SIGKILL keeps the page cache, so what
    // they wrote survives whether or not it was synced (fsync_order.rs checks the syncs).
    for ((fsync, via_binary), t) in &kinds {
        if !*fsync || t.forced == 0 {
            continue;
        }
        let reader = if *via_binary { "binary" } else { "library" };
        assert!(
            t.mid_stream > 0,
            "no durable trial read back by the {reader} was killed between acknowledgements: {t:?}"
        );
        assert!(
            t.acked > 0,
            "no acknowledgement of a durable trial read back by the {reader} was checked: {t:?}"
        );
    }
}
