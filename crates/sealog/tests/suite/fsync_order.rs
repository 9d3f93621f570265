//! "Acknowledged means durable", seen in the system calls the real binary makes. A SIGKILL
//! keeps the page cache, so no crash test can tell a record that was synced before its
//! acknowledgement from one that was only written; the order of the calls can. The binary
//! runs under `strace -f`, and for every acknowledgement — the write to standard output that
//! carries a result of `sealog append`, the socket write that carries the response of
//! `sealog serve` — the record it names must have been written to a segment file, and an
//! `fdatasync`/`fsync` of that file must have begun after that write ended and ended before
//! the acknowledgement began.
//!
//! strace prints a call when it ends, or splits it into `<unfinished ...>` and `<... resumed>`
//! when other threads' calls come between; a thread is stopped at each of its calls' entry and
//! exit while strace prints, so the order of the lines in one output file is an order the
//! threads really observed: a sync that ends before another thread is woken to acknowledge is
//! printed before that acknowledgement begins.
//!
//! The checker itself is tested on hand-written traces, including the wrong orders it must
//! find; `--durability os` (acknowledged after write(2) only) shows that it finds them in the
//! real binary too.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use sealog_testkit::cli::{child_of, result_lines, signal, strace_usable, wrapped};
use sealog_testkit::events::event;
use sealog_testkit::http::request;
use sealog_testkit::{Cli, ServerProcess, tempdir, wait_for};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// The trace: strace's lines, each call whole.

/// One system call: where its entry and its exit are among the trace's lines (the same line
/// when strace printed it whole), its arguments as printed, and its return value.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    args: String,
    /// `None` for `?` (the process went away during the call).
    ret: Option<i64>,
    entry: usize,
    exit: usize,
}

/// The text between `(` (at `from`) and the `)` that closes it, outside quoted strings and
/// nested brackets; and the rest of the line after that `)`.
fn split_args(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let (mut depth, mut i, mut quoted) = (0i32, 0usize, false);
    while i < bytes.len() {
        let c = bytes[i];
        if quoted {
            match c {
                b'\\' => i += 1,
                b'"' => quoted = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => quoted = true,
                b'(' | b'[' | b'{' => depth += 1,
                b']' | b'}' => depth -= 1,
                b')' if depth == 0 => return Some((&text[..i], &text[i + 1..])),
                b')' => depth -= 1,
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The return value after `) `: `= 42`, `= -1 ENOENT (…)`, `= 0x1 (flags …)` or `= ?`.
fn parse_ret(rest: &str) -> Option<Option<i64>> {
    let v = rest
        .trim_start()
        .strip_prefix('=')?
        .split_whitespace()
        .next()?;
    if v == "?" {
        return Some(None);
    }
    Some(Some(match v.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => v.parse().ok()?,
    }))
}

/// Parses strace's output (`-f`, with or without `-tt`) into whole calls, in the order of
/// their exits. Signal and exit notices are skipped; a line that is none of these fails.
fn parse_trace(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut open: HashMap<u32, (String, String, usize)> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (pid, mut rest) = match line.strip_prefix("[pid ") {
            Some(r) => {
                let (p, r) = r.split_once(']').expect("[pid N]");
                (p.trim().parse().expect("a pid"), r.trim_start())
            }
            None => match line.split_once(' ') {
                Some((p, r)) if p.bytes().all(|b| b.is_ascii_digit()) => {
                    (p.parse().expect("a pid"), r.trim_start())
                }
                _ => (0, line),
            },
        };
        // A `-tt` time stamp.
        if let Some((t, r)) = rest.split_once(' ')
            && t.len() >= 8
            && t.as_bytes()[2] == b':'
            && t.bytes()
                .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
        {
            rest = r.trim_start();
        }
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        if let Some(r) = rest.strip_prefix("<... ") {
            let (name, r) = r
                .split_once(" resumed>")
                .unwrap_or_else(|| panic!("line {}: {line}", n + 1));
            let (_, head, entry) = open
                .remove(&pid)
                .unwrap_or_else(|| panic!("line {}: a resumption of nothing: {line}", n + 1));
            let (tail, after) = split_args(r).unwrap_or_else(|| panic!("line {}: {line}", n + 1));
            calls.push(Call {
                name: name.to_string(),
                args: format!("{head}{tail}"),
                ret: parse_ret(after).unwrap_or_else(|| panic!("line {}: {line}", n + 1)),
                entry,
                exit: n,
            });
            continue;
        }
        let (name, r) = rest
            .split_once('(')
            .unwrap_or_else(|| panic!("line {}: not a call: {line}", n + 1));
        if let Some(head) = r.strip_suffix(" <unfinished ...>") {
            open.insert(pid, (name.to_string(), head.to_string(), n));
            continue;
        }
        let (args, after) = split_args(r).unwrap_or_else(|| panic!("line {}: {line}", n + 1));
        calls.push(Call {
            name: name.to_string(),
            args: args.to_string(),
            ret: parse_ret(after).unwrap_or_else(|| panic!("line {}: {line}", n + 1)),
            entry: n,
            exit: n,
        });
    }
    // Calls cut off by the end of the trace never returned: they did nothing the checks
    // could rely on.
    calls
}

/// The first argument as a number (a file descriptor).
fn first_int(args: &str) -> Option<i64> {
    args.split(',').next()?.trim().parse().ok()
}

/// The bytes of every quoted string in `args`, in order, with strace's escapes decoded.
fn strings(args: &str) -> Vec<Vec<u8>> {
    let bytes = args.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let mut s = Vec::new();
        i += 1;
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] != b'\\' {
                s.push(bytes[i]);
                i += 1;
                continue;
            }
            i += 1;
            let c = bytes[i];
            i += 1;
            match c {
                b'n' => s.push(b'\n'),
                b't' => s.push(b'\t'),
                b'r' => s.push(b'\r'),
                b'v' => s.push(0x0b),
                b'f' => s.push(0x0c),
                b'x' => {
                    s.push(u8::from_str_radix(&args[i..i + 2], 16).expect("\\xHH"));
                    i += 2;
                }
                b'0'..=b'7' => {
                    let mut v = u32::from(c - b'0');
                    for _ in 0..2 {
                        if i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                            v = v * 8 + u32::from(bytes[i] - b'0');
                            i += 1;
                        }
                    }
                    s.push(v as u8);
                }
                other => s.push(other),
            }
        }
        i += 1;
        out.push(s);
    }
    out
}

/// What a file descriptor refers to.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// A file opened by path; `sync` when opened O_SYNC or O_DSYNC (each write is durable).
    File {
        path: String,
        sync: bool,
    },
    /// A connection the process accepted.
    Connection,
    /// The standard output the process started with.
    Stdout,
    Other,
}

/// Where acknowledgements go: a command's result lines, or a server's responses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Acks {
    Stdout,
    Responses,
}

/// One acknowledgement: where it began, and the bytes it carried (a response's bytes over
/// all the writes that sent it).
struct Ack {
    line: usize,
    bytes: Vec<u8>,
}

/// A write to a segment file: where it ended, and what it wrote.
struct SegmentWrite {
    path: String,
    exit: usize,
    durable_at_once: bool,
}

#[derive(Debug, Default)]
struct Report {
    /// Acknowledgements that named at least one record.
    acks: usize,
    /// Records named by acknowledgements, counted once per acknowledgement.
    records: usize,
    violations: Vec<String>,
}

/// Every `"record_id":"sha256:…"` in `bytes` (record text and result lines alike).
fn record_ids(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("\"record_id\":\"sha256:")
        .filter_map(|(at, key)| {
            let hex = text.get(at + key.len()..at + key.len() + 64)?;
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| format!("sha256:{hex}"))
        })
        .collect()
}

const WRITES: [&str; 7] = [
    "write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg",
];

/// Checks a trace: every acknowledgement names only records whose segment write was covered
/// by a sync of that segment that began after the write ended and ended before the
/// acknowledgement began.
fn check(trace: &str, acks_on: Acks) -> Report {
    let calls = parse_trace(trace);
    // Descriptors are resolved at a call's entry, released as a close begins and created as
    // the call that returns them ends: so the calls are replayed in line order, entries and
    // exits both.
    let mut steps: Vec<(usize, bool, usize)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        steps.push((c.entry, false, i));
        steps.push((c.exit, true, i));
    }
    steps.sort_unstable();
    let mut fds: HashMap<i64, Target> =
        HashMap::from([(0, Target::Other), (1, Target::Stdout), (2, Target::Other)]);
    let mut target_of: HashMap<usize, Target> = HashMap::new();
    let mut written: HashMap<String, SegmentWrite> = HashMap::new();
    let mut syncs: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut responding: HashMap<i64, usize> = HashMap::new();
    let mut violations = Vec::new();
    for (_, is_exit, i) in steps {
        let c = &calls[i];
        if !is_exit {
            if let Some(fd) = first_int(&c.args) {
                target_of.insert(i, fds.get(&fd).cloned().unwrap_or(Target::Other));
            }
            // The kernel frees the number as close begins: another thread may be given it
            // before strace prints that the close ended.
            if c.name == "close"
                && let Some(fd) = first_int(&c.args)
            {
                fds.remove(&fd);
                responding.remove(&fd);
                continue;
            }
            // An acknowledgement counts from its first byte's write, as it begins.
            if WRITES.contains(&c.name.as_str()) {
                let fd = first_int(&c.args).unwrap_or(-1);
                let bytes: Vec<u8> = strings(&c.args).concat();
                match (acks_on, &target_of[&i]) {
                    (Acks::Stdout, Target::Stdout) => acks.push(Ack {
                        line: c.entry,
                        bytes: Vec::new(),
                    }),
                    // A response begins with its status line; later writes continue it.
                    (Acks::Responses, Target::Connection)
                        if bytes.starts_with(b"HTTP/1.") || !responding.contains_key(&fd) =>
                    {
                        responding.insert(fd, acks.len());
                        acks.push(Ack {
                            line: c.entry,
                            bytes: Vec::new(),
                        });
                    }
                    _ => {}
                }
            }
            continue;
        }
        let Some(ret) = c.ret else { continue };
        let target = target_of.get(&i).cloned().unwrap_or(Target::Other);
        match c.name.as_str() {
            "open" | "openat" | "creat" if ret >= 0 => {
                let s = strings(&c.args);
                let path = String::from_utf8_lossy(s.first().map_or(&[][..], Vec::as_slice));
                let sync = c.args.contains("O_SYNC") || c.args.contains("O_DSYNC");
                fds.insert(
                    ret,
                    Target::File {
                        path: path.into_owned(),
                        sync,
                    },
                );
            }
            "accept" | "accept4" if ret >= 0 => {
                fds.insert(ret, Target::Connection);
            }
            "dup" | "dup2" | "dup3" | "fcntl" if ret >= 0 => {
                let dups = c.name != "fcntl" || c.args.contains("F_DUPFD");
                if dups {
                    fds.insert(ret, target);
                }
            }
            "fsync" | "fdatasync" if ret == 0 => {
                if let Target::File { path, .. } = target {
                    syncs.entry(path).or_default().push((c.entry, c.exit));
                }
            }
            name if WRITES.contains(&name) && ret > 0 => {
                let mut bytes: Vec<u8> = strings(&c.args).concat();
                bytes.truncate(ret as usize);
                match &target {
                    Target::File { path, sync } if path.ends_with(".seg") => {
                        for rid in record_ids(&bytes) {
                            written.entry(rid).or_insert(SegmentWrite {
                                path: path.clone(),
                                exit: c.exit,
                                durable_at_once: *sync,
                            });
                        }
                    }
                    Target::Stdout if acks_on == Acks::Stdout => {
                        let ack = acks
                            .iter_mut()
                            .rev()
                            .find(|a| a.line == c.entry)
                            .expect("the acknowledgement begun at entry");
                        ack.bytes = bytes;
                    }
                    Target::Connection if acks_on == Acks::Responses => {
                        let fd = first_int(&c.args).unwrap_or(-1);
                        if let Some(&a) = responding.get(&fd) {
                            acks[a].bytes.extend_from_slice(&bytes);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // Judged once the whole trace is read: whatever covers a record must have ended before
    // its acknowledgement began, which the line numbers say.
    let mut report = Report::default();
    for ack in &acks {
        let rids = record_ids(&ack.bytes);
        if rids.is_empty() {
            continue;
        }
        report.acks += 1;
        for rid in rids {
            report.records += 1;
            let Some(w) = written.get(&rid).filter(|w| w.exit < ack.line) else {
                violations.push(format!(
                    "line {}: {rid} is acknowledged before any segment write of it ended",
                    ack.line + 1
                ));
                continue;
            };
            let covered = w.durable_at_once
                || syncs.get(&w.path).is_some_and(|s| {
                    s.iter()
                        .any(|&(entry, exit)| entry > w.exit && exit < ack.line)
                });
            if !covered {
                violations.push(format!(
                    "line {}: {rid} is acknowledged, but no sync of {} began after its write \
                     (ended line {}) and ended before the acknowledgement",
                    ack.line + 1,
                    w.path,
                    w.exit + 1
                ));
            }
        }
    }
    report.violations = violations;
    report
}

// ---------------------------------------------------------------------------------------
// The checker on hand-written traces.

const RID_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const RID_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A trace as strace writes it, after two files are opened (fd 6 a segment, fd 8 another
/// file); `{A}` and `{B}` stand for two record ids.
fn excerpt(body: &str) -> String {
    let opened = r#"
100 09:00:00.000001 openat(AT_FDCWD, "/d/log/00000000000000000000.seg", O_RDWR|O_APPEND|O_CLOEXEC) = 6
100 09:00:00.000002 openat(AT_FDCWD, "/d/index/DURABLE", O_WRONLY|O_CREAT|O_CLOEXEC, 0666) = 8
"#;
    (opened.to_string() + body)
        .replace("{A}", RID_A)
        .replace("{B}", RID_B)
}

#[test]
fn checker_accepts_a_result_printed_after_the_sync_that_covers_its_record() {
    let trace = excerpt(
        r#"
101 09:00:00.000010 write(6, "\360\0\0\0\2\6$+{\"data\":{},\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
101 09:00:00.000011 fdatasync(6)      = 0
101 09:00:00.000012 pwrite64(8, "\3\0\0\0", 4, 0) = 4
100 09:00:00.000013 write(1, "{\"record_id\":\"{A}\",\"seq\":0,\"status\":\"appended\"}\n", 4096) = 4096
"#,
    );
    let report = check(&trace, Acks::Stdout);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!((report.acks, report.records), (1, 1));
}

#[test]
fn checker_refuses_a_result_printed_before_the_sync() {
    let trace = excerpt(
        r#"
101 09:00:00.000010 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
100 09:00:00.000011 write(1, "{\"record_id\":\"{A}\",\"seq\":0,\"status\":\"appended\"}\n", 4096) = 4096
101 09:00:00.000012 fdatasync(6)      = 0
"#,
    );
    let report = check(&trace, Acks::Stdout);
    assert_eq!(report.records, 1);
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    assert!(report.violations[0].contains("no sync of /d/log/00000000000000000000.seg"));
}

#[test]
fn checker_refuses_an_answer_sent_while_the_sync_is_still_running() {
    // The sync ends (resumes) only after the response began: the response is too early.
    let trace = excerpt(
        r#"
100 09:00:00.000003 accept4(23, {sa_family=AF_INET, sin_port=htons(44994), sin_addr=inet_addr("127.0.0.1")}, [128 => 16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 24
101 09:00:00.000010 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
101 09:00:00.000011 fdatasync(6 <unfinished ...>
102 09:00:00.000012 writev(24, [{iov_base="HTTP/1.1 200 OK\r\ncontent-length: 129\r\n\r\n", iov_len=40}, {iov_base="{\"results\":[{\"record_id\":\"{A}\",\"seq\":0}]}", iov_len=4096}], 2) = 4096
101 09:00:00.000013 <... fdatasync resumed>) = 0
"#,
    );
    let report = check(&trace, Acks::Responses);
    assert_eq!((report.acks, report.records), (1, 1));
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
}

#[test]
fn checker_refuses_a_sync_that_began_before_the_write_ended() {
    let trace = excerpt(
        r#"
101 09:00:00.000010 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096 <unfinished ...>
102 09:00:00.000011 fdatasync(6 <unfinished ...>
101 09:00:00.000012 <... write resumed>) = 4096
102 09:00:00.000013 <... fdatasync resumed>) = 0
100 09:00:00.000014 write(1, "{\"record_id\":\"{A}\",\"seq\":0,\"status\":\"appended\"}\n", 4096) = 4096
"#,
    );
    assert_eq!(check(&trace, Acks::Stdout).violations.len(), 1);
}

#[test]
fn checker_refuses_a_sync_of_another_file_or_of_a_reused_descriptor() {
    // fd 6 is the segment when written, then closed and reopened as another file: the sync
    // of fd 6 afterwards is not a sync of the segment, and neither is the one of fd 8.
    let trace = excerpt(
        r#"
101 09:00:00.000010 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
101 09:00:00.000011 close(6)          = 0
101 09:00:00.000012 openat(AT_FDCWD, "/d/tree/level-00", O_RDWR|O_CREAT|O_CLOEXEC, 0666) = 6
101 09:00:00.000013 fdatasync(6)      = 0
101 09:00:00.000014 fsync(8)          = 0
100 09:00:00.000015 write(1, "{\"record_id\":\"{A}\",\"seq\":0,\"status\":\"appended\"}\n", 4096) = 4096
"#,
    );
    assert_eq!(check(&trace, Acks::Stdout).violations.len(), 1);
}

#[test]
fn checker_refuses_a_result_for_a_record_not_yet_written() {
    let trace = excerpt(
        r#"
100 09:00:00.000010 write(1, "{\"record_id\":\"{A}\",\"seq\":0,\"status\":\"appended\"}\n", 4096) = 4096
101 09:00:00.000011 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
101 09:00:00.000012 fdatasync(6)      = 0
"#,
    );
    let report = check(&trace, Acks::Stdout);
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    assert!(report.violations[0].contains("before any segment write"));
}

#[test]
fn checker_judges_each_answer_by_its_own_records_only() {
    // Group A is synced and answered while group B is written but not yet synced: A's
    // answer is right, though the segment has unsynced bytes when it is sent; B's answer,
    // sent before B's sync, is wrong. A duplicate of A answered later is covered by A's sync;
    // a response split over two writes counts from its first.
    let trace = excerpt(
        r#"
100 09:00:00.000003 accept4(23, {sa_family=AF_INET}, [128 => 16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 24
100 09:00:00.000004 accept4(23, {sa_family=AF_INET}, [128 => 16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 25
101 09:00:00.000010 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
101 09:00:00.000011 fdatasync(6)      = 0
101 09:00:00.000012 write(6, "{\"record_id\":\"{B}\",\"seq\":1}", 4096) = 4096
102 09:00:00.000013 sendto(24, "HTTP/1.1 200 OK\r\n\r\n{\"results\":[{\"record_id\":\"{A}\"}]}", 4096, MSG_NOSIGNAL, NULL, 0) = 4096
102 09:00:00.000014 close(24)         = 0
103 09:00:00.000015 writev(25, [{iov_base="HTTP/1.1 200 OK\r\n\r\n", iov_len=19}], 1) = 19
101 09:00:00.000016 fdatasync(6)      = 0
103 09:00:00.000017 writev(25, [{iov_base="{\"results\":[{\"record_id\":\"{B}\"},{\"record_id\":\"{A}\"}]}", iov_len=4096}], 1) = 4096
103 09:00:00.000018 close(25)         = 0
"#,
    );
    let report = check(&trace, Acks::Responses);
    assert_eq!((report.acks, report.records), (2, 3));
    assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    assert!(
        report.violations[0].contains(RID_B),
        "{:?}",
        report.violations
    );
}

#[test]
fn checker_follows_a_number_reused_before_its_close_is_printed_as_ended() {
    // The kernel gives number 24 to a new connection while the close of the old one is still
    // unfinished in the trace: the answer on 24 is the new connection's, and is checked.
    let trace = excerpt(
        r#"
100 09:00:00.000003 accept4(23, {sa_family=AF_INET}, [128 => 16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 24
101 09:00:00.000010 write(6, "{\"record_id\":\"{A}\",\"seq\":0}", 4096) = 4096
101 09:00:00.000011 fdatasync(6)      = 0
102 09:00:00.000012 close(24 <unfinished ...>
100 09:00:00.000013 accept4(23, {sa_family=AF_INET}, [128 => 16], SOCK_CLOEXEC|SOCK_NONBLOCK) = 24
102 09:00:00.000014 <... close resumed>) = 0
103 09:00:00.000015 writev(24, [{iov_base="HTTP/1.1 200 OK\r\n\r\n{\"results\":[{\"record_id\":\"{A}\"}]}", iov_len=4096}], 1) = 4096
"#,
    );
    let report = check(&trace, Acks::Responses);
    assert_eq!((report.acks, report.records), (1, 1), "{report:?}");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

// ---------------------------------------------------------------------------------------
// The real binary under strace.

/// How long one traced run may take; tracing slows every call, and the machine may be busy.
const TRACED_SECS_MAX: u64 = 300;

/// The calls the checks need, and nothing that carries large buffers besides writes. A `?`
/// lets a name this architecture lacks (open, creat, dup2 on arm64) pass.
const TRACED_CALLS: &str = "?open,?creat,openat,close,?dup,?dup2,dup3,fcntl,?accept,accept4,\
     write,writev,pwrite64,pwritev,?pwritev2,sendto,sendmsg,fsync,fdatasync";

/// `command` run under strace, writing the trace to `out`, with the same environment.
fn traced(command: &Command, out: &Path) -> Command {
    let args: Vec<std::ffi::OsString> = [
        "-f",
        "-qq",
        "-tt",
        "-s",
        "16777216",
        "-e",
        "signal=none",
        "-e",
        &format!("trace={TRACED_CALLS}"),
        "-o",
    ]
    .map(Into::into)
    .into_iter()
    .chain([out.into()])
    .collect();
    wrapped("strace", &args, command)
}

fn cli(dir: &Path, os_durability: bool) -> (Cli, Vec<&'static str>) {
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), dir).accepting_undeclared();
    let durability = if os_durability {
        vec!["--durability", "os"]
    } else {
        vec![]
    };
    (cli, durability)
}

fn line(id: &str) -> String {
    event(id, Some("t"), "s", "t.fsync").to_string() + "\n"
}

/// Runs `sealog append -` under strace, feeding events one at a time (each its own group and
/// commit), then a batch at once, then a few again (duplicates): returns the result lines and
/// the trace.
fn traced_append(os_durability: bool) -> Option<(Vec<Value>, String)> {
    if !strace_usable() {
        return None;
    }
    let tmp = tempdir();
    let (cli, mut args) = cli(&tmp.path().join("data"), os_durability);
    args.extend(["append", "-"]);
    let trace_path = tmp.path().join("trace");
    let mut child = traced(&cli.command(&args), &trace_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strace");
    let pid = child.id();
    // Kills the traced run if the test fails before it ends.
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            if std::thread::panicking() {
                signal(self.0, libc::SIGKILL);
            }
        }
    }
    let _reap = Reap(pid);
    let mut stdin = child.stdin.take().expect("stdin");
    let (printed, reader) = result_lines(child.stdout.take().expect("stdout"));
    let deadline = Instant::now() + Duration::from_secs(TRACED_SECS_MAX);
    let mut results = Vec::new();
    let expect = |want: usize, results: &mut Vec<Value>| {
        while results.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match printed.recv_timeout(left) {
                Ok(v) => results.push(v),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no result {} within {TRACED_SECS_MAX} s", results.len())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("append ended after {} results", results.len())
                }
            }
        }
    };
    let mut sent = 0;
    for i in 0..12 {
        stdin
            .write_all(line(&format!("one-{i}")).as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        sent += 1;
        expect(sent, &mut results);
    }
    let batch: String = (0..8).map(|i| line(&format!("batch-{i}"))).collect();
    stdin.write_all(batch.as_bytes()).unwrap();
    stdin.flush().unwrap();
    sent += 8;
    expect(sent, &mut results);
    for i in [0, 5, 11] {
        stdin
            .write_all(line(&format!("one-{i}")).as_bytes())
            .unwrap();
    }
    drop(stdin);
    sent += 3;
    expect(sent, &mut results);
    let status = wait_for(TRACED_SECS_MAX, "the traced append to end", || {
        child.try_wait().expect("wait for strace")
    });
    reader.join().expect("the result reader");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("standard error");
    assert!(status.success(), "append under strace: {status}: {stderr}");
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses[..20], ["appended"; 20], "{results:?}");
    assert_eq!(statuses[20..], ["duplicate"; 3], "{results:?}");
    let trace = std::fs::read_to_string(&trace_path).expect("the trace");
    Some((results, trace))
}

#[test]
fn append_prints_each_result_only_after_its_record_is_synced() {
    let Some((results, trace)) = traced_append(false) else {
        return;
    };
    let report = check(&trace, Acks::Stdout);
    assert_eq!(
        report.records,
        results.len(),
        "every result line is checked: {report:?}"
    );
    assert!(
        report.violations.is_empty(),
        "results printed before their records were durable:\n{}",
        report.violations.join("\n")
    );
}

#[test]
fn append_with_durability_os_prints_results_no_sync_covers() {
    let Some((results, trace)) = traced_append(true) else {
        return;
    };
    let report = check(&trace, Acks::Stdout);
    eprintln!(
        "{} results, {} unsynced when printed",
        report.records,
        report.violations.len()
    );
    assert_eq!(report.records, results.len(), "{report:?}");
    // The check tells the modes apart: without fsync, the new records' results come before
    // any sync of their segment.
    assert!(
        report.violations.len() >= 20,
        "the check found only {} of the 20 unsynced results: {report:?}",
        report.violations.len()
    );
}

/// Runs `sealog serve` under strace while clients append concurrently (so that commits and
/// answers interleave), then stops it with SIGTERM: returns the records the answers named
/// and the trace.
fn traced_serve(os_durability: bool) -> Option<(usize, String)> {
    if !strace_usable() {
        return None;
    }
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let (cli, mut args) = cli(&data, os_durability);
    args.extend(["serve", "--listen", "127.0.0.1:0"]);
    let trace_path = tmp.path().join("trace");
    let mut srv = ServerProcess::spawn(traced(&cli.command(&args), &trace_path), &data);
    // The server is strace's child; signals go to it, since strace holds off fatal signals.
    let server_pid = wait_for(30, "the traced server's pid", || child_of(srv.child.id()));
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            if std::thread::panicking() {
                signal(self.0, libc::SIGKILL);
            }
        }
    }
    let _reap = Reap(server_pid);
    let addr = srv.addr;
    let post = |addr: SocketAddr, body: &str| {
        let headers = [("Content-Type".to_string(), "application/json".to_string())];
        request(addr, "POST", "/v1/events", &headers, Some(body.as_bytes()))
    };
    let named: usize = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                s.spawn(move || {
                    let mut named = 0;
                    for i in 0..6 {
                        // Arrays of 1 to 3 events, and at the end one event again.
                        let events: Vec<Value> = (0..=(i % 3))
                            .map(|k| event(&format!("c{c}-{i}-{k}"), Some("t"), "s", "t.fsync"))
                            .collect();
                        let r = post(addr, &Value::Array(events.clone()).to_string());
                        assert_eq!(r.status, 200, "{}", r.text());
                        let results = r.json()["results"].as_array().cloned().unwrap();
                        assert_eq!(results.len(), events.len(), "{}", r.text());
                        assert!(
                            results.iter().all(|x| x["status"] == "appended"),
                            "{}",
                            r.text()
                        );
                        named += results.len();
                    }
                    let again = event(&format!("c{c}-0-0"), Some("t"), "s", "t.fsync");
                    let r = post(addr, &again.to_string());
                    assert_eq!(
                        r.json()["results"][0]["status"],
                        "duplicate",
                        "{}",
                        r.text()
                    );
                    named + 1
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|h| h.join().expect("a client"))
            .sum()
    });
    signal(server_pid, libc::SIGTERM);
    let status = srv.wait_exit(TRACED_SECS_MAX);
    assert!(
        status.success(),
        "serve under strace: {status}; log: {}",
        srv.log_text()
    );
    let trace = std::fs::read_to_string(&trace_path).expect("the trace");
    Some((named, trace))
}

#[test]
fn serve_answers_each_append_only_after_its_records_are_synced() {
    let Some((named, trace)) = traced_serve(false) else {
        return;
    };
    let report = check(&trace, Acks::Responses);
    assert_eq!(report.acks, 28, "every answer is checked: {report:?}");
    assert_eq!(report.records, named, "{report:?}");
    assert!(
        report.violations.is_empty(),
        "answers sent before their records were durable:\n{}",
        report.violations.join("\n")
    );
}

#[test]
fn serve_with_durability_os_answers_before_any_sync_covers_the_records() {
    let Some((named, trace)) = traced_serve(true) else {
        return;
    };
    let report = check(&trace, Acks::Responses);
    eprintln!(
        "{} answers naming {} records, {} unsynced when answered",
        report.acks,
        report.records,
        report.violations.len()
    );
    assert_eq!(report.records, named, "{report:?}");
    assert!(
        report.violations.len() >= named - 4,
        "the check found only {} of the {} unsynced records: {report:?}",
        report.violations.len(),
        named - 4
    );
}
