//! `sealog append -` as a stream, through a real pipe that stays open: each result is printed
//! as soon as its event is durable, without waiting for the end of the input (`tail -F events
//! | sealog append -`); a kill mid-stream loses nothing that was printed; results of many
//! groups come in input order; arrays and pretty-printed objects still work; and memory does
//! not grow with the input.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{Receiver, TryRecvError};

use sealog_testkit::cli::result_lines;
use sealog_testkit::events::event;
use sealog_testkit::{Cli, Rng, wait_for};
use serde_json::{Value, json};

/// How long one result may take to appear on a machine busy with other work.
const RESULT_SECS: u64 = 60;

fn cli(dir: &std::path::Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared()
}

/// A running `sealog append -` whose input the test writes and whose result lines a thread
/// collects as they are printed, so the test can wait for each with a deadline.
struct Appender {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Appender {
    fn start(cli: &Cli, global: &[&str]) -> Self {
        let mut args = global.to_vec();
        args.extend(["append", "-"]);
        let mut child = cli.spawn(&args);
        let stdin = child.stdin.take();
        let (lines, _) = result_lines(child.stdout.take().expect("stdout"));
        Appender {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("the input is open");
        stdin.write_all(bytes).expect("write to sealog");
        stdin.flush().expect("flush to sealog");
    }

    /// The next result line, which must come within the deadline.
    fn next(&mut self, what: &str) -> Value {
        let lines = &self.lines;
        wait_for(RESULT_SECS, what, || match lines.try_recv() {
            Ok(v) => Some(v),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => panic!("sealog closed its output before {what}"),
        })
    }

    /// Whether the process is still running (it has not seen the end of its input).
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Closes the input and returns the exit code and the result lines not yet taken.
    fn finish(mut self) -> (i32, Vec<Value>) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for sealog");
        let code = status
            .code()
            .unwrap_or_else(|| panic!("sealog died: {status:?}"));
        (code, self.lines.iter().collect())
    }
}

fn line(e: &Value) -> Vec<u8> {
    format!("{e}\n").into_bytes()
}

#[test]
fn ndjson_fed_one_event_at_a_time_is_answered_event_by_event_while_the_input_stays_open() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    let mut appender = Appender::start(&cli, &[]);
    let mut answers = Vec::new();
    for i in 0..20u64 {
        let e = event(&format!("tail-{i}"), None, "s1", "stream.tail");
        appender.send(&line(&e));
        // The next event is written only once this one is answered: a reader that waited for
        // more input, or for its end, would never answer.
        let answer = appender.next(&format!("the result of event {i}"));
        assert_eq!(answer["status"], "appended", "{answer}");
        assert_eq!(answer["seq"], i, "{answer}");
        assert!(appender.running(), "sealog stopped before its input ended");
        answers.push(answer);
    }
    let (code, rest) = appender.finish();
    assert_eq!(code, 0);
    assert!(rest.is_empty(), "one result per event; also {rest:?}");
    let records = cli.all_records();
    assert_eq!(records.len(), answers.len());
    for (r, a) in records.iter().zip(&answers) {
        assert_eq!(r["seq"], a["seq"]);
        assert_eq!(r["record_id"], a["record_id"], "{r}");
    }
}

/// The bursts' seed: fixed, printed, and replaced by `SEALOG_STREAM_SEED` to replay another.
fn seed() -> u64 {
    let seed = std::env::var("SEALOG_STREAM_SEED").map_or(0x5EA1_57EA_0000_0001, |s| {
        let s = s.trim();
        s.strip_prefix("0x")
            .map_or_else(|| s.parse(), |hex| u64::from_str_radix(hex, 16))
            .expect("SEALOG_STREAM_SEED must be a u64 (decimal or 0x-hex)")
    });
    eprintln!("stream seed {seed:#x} (replay with SEALOG_STREAM_SEED={seed:#x})");
    seed
}

#[test]
fn a_sigkill_mid_stream_loses_no_result_that_was_printed() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    let mut appender = Appender::start(&cli, &[]);
    let mut sent: Vec<Value> = Vec::new();
    let mut printed: Vec<Value> = Vec::new();
    // Bursts of events, each answered in part before the next is written, so that when the
    // kill comes some events are answered, some are being committed and some are unread.
    for burst in 0..12 {
        let n = 1 + rng.below(40) as usize;
        let mut bytes = Vec::new();
        for _ in 0..n {
            let e = event(&format!("kill-{}", sent.len()), None, "s1", "stream.kill");
            bytes.extend(line(&e));
            sent.push(e);
        }
        appender.send(&bytes);
        // After the last burst the kill comes at once, while it is being read or committed.
        let wait = if burst == 11 {
            0
        } else {
            rng.below(n as u64 + 1)
        };
        for _ in 0..wait {
            let what = format!("a result of burst {burst} (seed {seed:#x})");
            printed.push(appender.next(&what));
        }
    }
    sealog_testkit::cli::signal(appender.child.id(), libc::SIGKILL);
    let status = appender.child.wait().expect("wait for sealog");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "seed {seed:#x}");
    // Lines printed before the kill that the test had not taken yet were printed too.
    printed.extend(appender.lines.iter());
    assert!(!printed.is_empty(), "seed {seed:#x}: nothing was answered");
    eprintln!(
        "{} events sent, {} results printed before the kill",
        sent.len(),
        printed.len()
    );

    // The next command recovers the directory; the log is a prefix of what was sent, in
    // order, and holds every printed result at its seq.
    let records = cli.all_records();
    assert!(
        records.len() >= printed.len() && records.len() <= sent.len(),
        "seed {seed:#x}: {} records, {} printed, {} sent",
        records.len(),
        printed.len(),
        sent.len()
    );
    for (seq, (r, e)) in records.iter().zip(&sent).enumerate() {
        assert_eq!(r["seq"], seq, "seed {seed:#x}: {r}");
        assert_eq!(
            r["id"], e["id"],
            "seed {seed:#x}: a hole or a foreign record at {seq}"
        );
    }
    for (k, p) in printed.iter().enumerate() {
        assert_eq!(p["status"], "appended", "seed {seed:#x}: {p}");
        assert_eq!(
            p["seq"], k,
            "seed {seed:#x}: results come in input order: {p}"
        );
        let seq = p["seq"].as_u64().unwrap() as usize;
        assert_eq!(
            records[seq]["record_id"], p["record_id"],
            "seed {seed:#x}: printed result {p} is not what the log holds"
        );
    }
    cli.assert_verifies();
}

#[test]
fn an_array_is_answered_element_by_element_and_a_pretty_printed_object_whole() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    let evs: Vec<Value> = (0..3)
        .map(|i| event(&format!("shape-{i}"), None, "s1", "stream.shape"))
        .collect();

    // An array's elements are cut out as they arrive: the first is answered while the array
    // is still open.
    let mut appender = Appender::start(&cli, &[]);
    appender.send(format!("[\n  {},\n", evs[0]).as_bytes());
    let first = appender.next("the result of the array's first element");
    assert_eq!(
        (&first["status"], &first["seq"]),
        (&json!("appended"), &json!(0))
    );
    assert!(appender.running());
    let pretty = serde_json::to_string_pretty(&evs[1]).unwrap();
    appender.send(format!("{pretty}\n]\n").as_bytes());
    let second = appender.next("the result of the array's second element");
    assert_eq!(
        (&second["status"], &second["seq"]),
        (&json!("appended"), &json!(1))
    );
    let (code, rest) = appender.finish();
    assert_eq!(code, 0);
    assert!(rest.is_empty(), "{rest:?}");

    // A pretty-printed object spans many lines and is still one event.
    let pretty = serde_json::to_string_pretty(&evs[2]).unwrap();
    assert!(pretty.lines().count() > 5);
    let run = cli.ok(&["append", "-"], pretty.as_bytes());
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert_eq!(
        (&lines[0]["status"], &lines[0]["seq"]),
        (&json!("appended"), &json!(2))
    );

    let records = cli.all_records();
    let ids: Vec<&Value> = records.iter().map(|r| &r["id"]).collect();
    let sent: Vec<&Value> = evs.iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, sent);
}

/// The peak resident memory of a running process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"));
    kib << 10
}

/// Events of about 4 KiB, so that the input is far larger than what the ledger keeps per
/// record: with small events the in-memory index of up to 131,072 records outweighs the
/// input itself, and holding the input whole would not show.
#[test]
fn memory_stays_bounded_however_long_the_input() {
    const EVENTS: usize = 64_000;
    const PEAK_MAX: u64 = 160 << 20;
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    // Whether the bytes reach the disk is not the question; skipping fsync keeps it quick.
    let mut appender = Appender::start(&cli, &["--durability", "os"]);
    let pad = "p".repeat(4000);
    let mut stdin = appender.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        let mut total = 0usize;
        let mut chunk = Vec::new();
        for i in 0..EVENTS {
            let mut e = event(&format!("mem-{i}"), None, "s1", "stream.memory");
            e["data"]["pad"] = json!(pad);
            chunk.extend(line(&e));
            if chunk.len() >= 1 << 20 || i + 1 == EVENTS {
                stdin.write_all(&chunk).expect("write to sealog");
                total += chunk.len();
                chunk.clear();
            }
        }
        // The input stays open, so the process is still there to be measured.
        (stdin, total)
    });
    for i in 0..EVENTS {
        let r = appender.next(&format!("the result of event {i}"));
        assert_eq!(r["status"], "appended", "{r}");
    }
    let (stdin, input_bytes) = feeder.join().expect("the feeder");
    let peak = peak_rss(appender.child.id());
    appender.stdin = Some(stdin);
    let (code, rest) = appender.finish();
    assert_eq!(code, 0);
    assert!(rest.is_empty());
    assert!(
        (input_bytes as u64) > PEAK_MAX,
        "the input ({input_bytes} bytes) must be larger than the bound, or the bound proves nothing"
    );
    assert!(
        peak < PEAK_MAX,
        "peak RSS {} MiB for {} MiB of input: over the {} MiB bound",
        peak >> 20,
        input_bytes >> 20,
        PEAK_MAX >> 20
    );
    eprintln!(
        "peak RSS {} MiB for {} MiB of input",
        peak >> 20,
        input_bytes >> 20
    );
}

#[test]
fn a_closed_output_ends_the_command_while_its_input_stays_open_and_loses_nothing() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    let mut child = cli.spawn(&["append", "-"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stderr = child.stderr.take().expect("stderr");
    // Nobody reads the results: printing the first one fails (EPIPE).
    drop(child.stdout.take());
    let e = event("closed-out", None, "s1", "stream.closed");
    stdin.write_all(&line(&e)).expect("write to sealog");
    stdin.flush().expect("flush to sealog");
    // The input stays open: the command must still end, with the reason, rather than wait
    // for more input it can no longer report on.
    let status = wait_for(RESULT_SECS, "sealog to exit", || {
        child.try_wait().expect("try_wait")
    });
    let mut why = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut why).expect("stderr");
    assert_eq!(status.code(), Some(2), "{why}");
    assert!(why.to_lowercase().contains("pipe"), "{why}");
    drop(stdin);
    // The event was durable before its result was printed: it is in the log.
    let records = cli.all_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].to_string().contains("closed-out"),
        "{}",
        records[0]
    );
}

#[test]
fn results_of_many_groups_come_in_input_order_with_repeats_answered_as_duplicates() {
    let dir = sealog_testkit::tempdir();
    let cli = cli(dir.path());
    // More events than one group holds, so results of one group are printed while the
    // next is appended; every seventh event repeats the one three before it.
    let mut input = Vec::new();
    let mut want = Vec::new();
    let mut next_seq = 0u64;
    for i in 0..9_000u64 {
        let (id, seq) = if i % 7 == 6 {
            (i - 3, want[(i - 3) as usize])
        } else {
            next_seq += 1;
            (i, next_seq - 1)
        };
        want.push(seq);
        input.extend(line(&event(
            &format!("order-{id}"),
            None,
            "s",
            "stream.order",
        )));
    }
    let run = cli.ok(&["append", "-"], &input);
    let lines = run.lines();
    assert_eq!(lines.len(), 9_000, "{}", run.stderr);
    for (i, (l, seq)) in lines.iter().zip(&want).enumerate() {
        let repeat = i % 7 == 6;
        assert_eq!(l["seq"], json!(seq), "line {i}: {l}");
        assert_eq!(
            l["status"],
            if repeat { "duplicate" } else { "appended" },
            "line {i}: {l}"
        );
    }
    assert_eq!(cli.all_records().len() as u64, next_seq);
}
