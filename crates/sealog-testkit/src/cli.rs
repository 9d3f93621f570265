//! The real `sealog` binary, run on a data directory.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

/// How long [`Cli::run`] lets one command run: far beyond what any command of the tests takes
/// on a loaded machine, so that only a hang reaches it, and a hang fails its test instead of
/// stopping the suite.
pub const RUN_SECS_MAX: u64 = 600;

/// How to run the binary: its path (a test's `env!("CARGO_BIN_EXE_sealog")`), the data
/// directory, and whether undeclared event types are accepted.
#[derive(Debug, Clone)]
pub struct Cli {
    pub bin: PathBuf,
    /// The data directory, or with `database` this server's state directory (`--state`).
    pub dir: PathBuf,
    /// `SEALOG_ACCEPT_UNDECLARED_TYPES=1`: for tests about the log rather than the packs.
    pub accept_undeclared: bool,
    /// A PostgreSQL `--data` URL: the log is there, `dir` is the `--state` directory.
    pub database: Option<String>,
}

/// What one run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Standard output as NDJSON.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Standard output as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    pub fn new(bin: impl Into<PathBuf>, dir: &Path) -> Self {
        Cli {
            bin: bin.into(),
            dir: dir.to_path_buf(),
            accept_undeclared: false,
            database: None,
        }
    }

    /// The binary on a PostgreSQL database, with `state` as its `--state` directory.
    pub fn on_database(bin: impl Into<PathBuf>, url: &str, state: &Path) -> Self {
        Cli {
            database: Some(url.to_string()),
            ..Cli::new(bin, state)
        }
    }

    /// For tests about the log, whose events are of ad-hoc types.
    pub fn accepting_undeclared(mut self) -> Self {
        self.accept_undeclared = true;
        self
    }

    /// The command, ready to spawn: `--data DIR` and the arguments, with the environment
    /// cleared of anything a developer's shell could add.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env_remove("SEALOG_URL").env_remove("SEALOG_KEY");
        if self.accept_undeclared {
            c.env("SEALOG_ACCEPT_UNDECLARED_TYPES", "1");
        } else {
            c.env_remove("SEALOG_ACCEPT_UNDECLARED_TYPES");
        }
        match &self.database {
            Some(url) => c.arg("--data").arg(url).arg("--state").arg(&self.dir),
            None => c.arg("--data").arg(&self.dir),
        };
        c.env_remove("SEALOG_DATA")
            .env_remove("SEALOG_STATE")
            .args(args);
        c
    }

    /// Runs to the end with `stdin` as input; a run that has not ended after [`RUN_SECS_MAX`]
    /// is killed and fails the test.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_within(args, stdin, Duration::from_secs(RUN_SECS_MAX))
    }

    /// Runs to the end with `stdin` as input; a run that has not ended `within` is killed and
    /// fails the test.
    pub fn run_within(&self, args: &[&str], stdin: &[u8], within: Duration) -> Run {
        run_command(self.command(args), stdin, within)
    }

    /// Runs and expects exit code 0.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> Run {
        let run = self.run(args, stdin);
        assert_eq!(run.code, 0, "sealog {args:?}: {}", run.stderr);
        run
    }

    /// Starts a run whose input and output the test drives itself.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sealog")
    }

    /// Every canonical record, read with `sealog query` page by page.
    pub fn all_records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let mut args = vec![
                "query".to_string(),
                "--sealed".into(),
                "--limit".into(),
                "10000".into(),
            ];
            if let Some(a) = after {
                args.extend(["--after".into(), a.to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let page = self.ok(&args, b"").lines();
            let Some(last) = page.last() else { break };
            after = last["seq"].as_u64();
            let full = page.len() == 10000;
            out.extend(page);
            if !full {
                break;
            }
        }
        out
    }

    /// `sealog verify` passes on the directory.
    pub fn assert_verifies(&self) {
        let run = self.run(&["verify"], b"");
        assert_eq!(run.code, 0, "verify failed: {} {}", run.stdout, run.stderr);
    }

    /// Creates a key with `sealog keys create`; returns (secret, id).
    pub fn create_key(
        &self,
        roles: &[&str],
        tenant: Option<&str>,
        data_subject: Option<&str>,
    ) -> (String, String) {
        let mut args = vec!["keys", "create"];
        for r in roles {
            args.extend(["--role", r]);
        }
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        if let Some(s) = data_subject {
            args.extend(["--data-subject", s]);
        }
        let v = self.ok(&args, b"").json();
        (
            v["key"].as_str().expect("the secret").to_string(),
            v["id"].as_str().expect("the id").to_string(),
        )
    }
}

/// Runs a command to the end with `stdin` as input and its output captured. A command that
/// has not ended `within` is killed (SIGKILL) and fails the test, with what it printed so far.
pub fn run_command(mut command: Command, stdin: &[u8], within: Duration) -> Run {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {shown}: {e}"));
    let pid = child.id();
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    // Fed from a thread so a child that answers before reading everything cannot deadlock.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    // The wait runs on its own thread so this one can give up on it at the deadline.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, hung) = match rx.recv_timeout(within) {
        Ok(status) => (status, false),
        Err(RecvTimeoutError::Timeout) => {
            signal(pid, libc::SIGKILL);
            (rx.recv().expect("the waiter thread"), true)
        }
        Err(RecvTimeoutError::Disconnected) => panic!("the waiter thread of {shown} died"),
    };
    let status = status.unwrap_or_else(|e| panic!("wait for {shown}: {e}"));
    waiter.join().expect("the waiter thread");
    feeder.join().expect("the feeder thread");
    let (stdout, stderr) = (
        stdout.join().expect("the stdout reader"),
        stderr.join().expect("the stderr reader"),
    );
    assert!(
        !hung,
        "{shown} did not end within {} s and was killed; stdout: {stdout}\nstderr: {stderr}",
        within.as_secs_f64()
    );
    Run {
        code: status
            .code()
            .unwrap_or_else(|| panic!("{shown} died: {status:?}; stderr: {stderr}")),
        stdout,
        stderr,
    }
}

/// The whole result lines a child prints, as it prints them, read by a thread. A line cut off
/// by a kill was never printed whole (so acknowledged nothing) and is dropped; the channel
/// closes when the output does.
pub fn result_lines(out: ChildStdout) -> (Receiver<Value>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.last() != Some(&b'\n') => return,
                Ok(_) => {
                    let v: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                        panic!("not a JSON line ({e}): {}", String::from_utf8_lossy(&line))
                    });
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (rx, reader)
}

/// Sends a signal to a process (SIGKILL for crash tests, SIGTERM for a graceful stop).
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Whether strace is here and may trace a child; otherwise says so (failing under CI).
pub fn strace_usable() -> bool {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        crate::missing("strace", "apt-get install -y strace");
        return false;
    }
    let mut probe = Command::new("strace");
    probe.args(["-f", "-qq", "-o", "/dev/null", "--", "true"]);
    let run = run_command(probe, b"", Duration::from_secs(60));
    if run.code != 0 {
        eprintln!("strace cannot trace here: {}", run.stderr);
        crate::missing(
            "strace (with permission to ptrace)",
            "apt-get install -y strace",
        );
        return false;
    }
    true
}

/// The pid of `parent`'s child process: the program a tracer such as strace runs.
pub fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

/// `command` run under strace with the `n`th call to `call` of each thread failing with
/// `errno`; with `path`, only calls on that path count and fail. The calls traced (paths
/// shown, `(INJECTED)` marking the failed ones) are written to `trace`.
pub fn strace_failing(
    command: &Command,
    (call, errno): (&str, &str),
    n: usize,
    path: Option<&Path>,
    trace: &Path,
) -> Command {
    let mut args: Vec<OsString> = ["-f", "-qq", "-y", "-s", "0", "-e", "signal=none"]
        .map(OsString::from)
        .to_vec();
    if let Some(p) = path {
        args.extend(["-P".into(), p.into()]);
    }
    args.extend([
        "-e".into(),
        format!("trace={call}").into(),
        "-e".into(),
        format!("inject={call}:error={errno}:when={n}").into(),
        "-o".into(),
        trace.into(),
    ]);
    wrapped("strace", &args, command)
}

/// The calls fault tests make fail, the error each fails with, and how the error reads.
pub const SYSCALL_FAULTS: &[(&str, &str, &str)] = &[
    ("fdatasync", "EIO", "Input/output error"),
    ("fsync", "EIO", "Input/output error"),
    ("write", "ENOSPC", "No space left on device"),
    ("pwrite64", "ENOSPC", "No space left on device"),
    ("rename", "EIO", "Input/output error"),
];

/// How many of each call a fault sweep fails in turn: `SEALOG_SYSCALL_FAULT_SWEEP`, else
/// `usual`, or `under_ci` under CI.
pub fn syscall_fault_sweep(usual: usize, under_ci: usize) -> usize {
    std::env::var("SEALOG_SYSCALL_FAULT_SWEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if crate::under_ci() { under_ci } else { usual })
}

/// The lines of a trace written by [`strace_failing`] that show a call made to fail.
pub fn injected_calls(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .expect("the trace")
        .lines()
        .filter(|l| l.contains("(INJECTED)"))
        .map(str::to_string)
        .collect()
}

/// One faulted run of a sweep: the call made to fail, its errno, how the error reads, and
/// which of each thread's such calls fails.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub call: &'static str,
    pub errno: &'static str,
    pub cause: &'static str,
    pub n: usize,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={} when={}", self.call, self.errno, self.n)
    }
}

/// `n` = 1, 2, 4, … up to 2^(`k` - 1): a sweep that reaches calls made late in a run.
pub fn doubling(k: usize) -> Vec<usize> {
    (0..k).map(|i| 1usize << i).collect()
}

/// Runs `trial` for each call of [`SYSCALL_FAULTS`] and each `n` of `ns` in turn; `trial`
/// says whether a call was made to fail. A call's sweep stops at the first `n` where none
/// was: no thread made `n` such calls, so a larger `n` fails none either. Prints `WHAT under
/// syscall faults: R runs, F with a failed call` (`scripts/campaign` reads it) and fails the
/// test when no run had a call fail.
pub fn sweep_syscall_faults(what: &str, ns: &[usize], mut trial: impl FnMut(Fault) -> bool) {
    let (mut runs, mut injected) = (0, 0);
    for &(call, errno, cause) in SYSCALL_FAULTS {
        for &n in ns {
            let hit = trial(Fault {
                call,
                errno,
                cause,
                n,
            });
            runs += 1;
            injected += usize::from(hit);
            if !hit {
                break;
            }
        }
    }
    eprintln!("{what} under syscall faults: {runs} runs, {injected} with a failed call");
    assert!(injected > 0, "{what}: no run had a call fail");
}

/// What every faulted run of a command must do: never panic; with a call failed, end
/// non-zero with an error naming the cause; with none failed, end well.
pub fn assert_fails_cleanly(run: &Run, failed: &[String], cause: &str, ctx: &str) {
    assert!(!run.stderr.contains("panicked"), "{ctx}");
    if failed.is_empty() {
        assert_eq!(run.code, 0, "{ctx}");
    } else {
        assert_ne!(run.code, 0, "{ctx}: a call failed, yet the run ended well");
        assert!(
            run.stderr.contains(cause),
            "{ctx}: the error names the cause"
        );
    }
}

/// `sealog ARGS` run to the end under strace with the `fault.n`th `fault.call` of each
/// thread failing (see [`strace_failing`]): what it did, and the calls that were made to fail.
pub fn run_failing(cli: &Cli, args: &[&str], fault: Fault, trace: &Path) -> (Run, Vec<String>) {
    let command = strace_failing(
        &cli.command(args),
        (fault.call, fault.errno),
        fault.n,
        None,
        trace,
    );
    let run = run_command(command, b"", Duration::from_secs(300));
    (run, injected_calls(trace))
}

/// `command` run under `tracer` (strace, say) with `args` before `--`: the same program,
/// arguments and environment.
pub fn wrapped(tracer: &str, args: &[OsString], command: &Command) -> Command {
    let mut c = Command::new(tracer);
    c.args(args)
        .arg("--")
        .arg(command.get_program())
        .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}
