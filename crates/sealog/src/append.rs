//! `sealog append`: read events as they arrive, prepare each group on all cores, append it,
//! and print its results as soon as they are durable, in input order.
//!
//! A reader thread cuts the input into events (`stream`) and hands them over a bounded
//! channel, so memory stays bounded however long the input. A group closes when it is full
//! or when no event has come for a moment, so a slow producer (`tail -F`) sees each event
//! appended within that moment, and a file is appended in full groups. Each group is
//! prepared while the one before it is appended, so the cores that prepare are not idle while
//! the writer hashes, writes and syncs; and its results are printed while the one after it is
//! appended, so the writer does not wait for the printing either.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use sealog_ledger::{Author, IngestResult, Ledger, Prepared, Rejection};
use sealog_model::PrepareError;

use crate::stream::{Events, Item};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// File to read, or `-` (the default) for standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

/// Events one group may hold: bounds the memory and the work of one commit.
const GROUP_EVENTS_MAX: usize = 4096;
/// Bytes one group may hold.
const GROUP_BYTES_MAX: usize = 16 << 20;
/// How long a group waits for more events after its first before it is appended anyway.
const GROUP_WAIT: Duration = Duration::from_millis(5);
/// How often a preparer waiting for input looks whether the appending has stopped.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Events cut but not yet in a group: what the reader may run ahead.
const READ_AHEAD_EVENTS: usize = 256;

enum Input {
    Event(Item),
    /// Reading failed: the events before it are appended, then the command fails.
    Failed(io::Error),
}

/// Starts the reader thread over the file or standard input.
fn read_events(args: &Args) -> anyhow::Result<Receiver<Input>> {
    let source: Box<dyn io::Read + Send> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(
            File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?,
        )
    };
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD_EVENTS);
    std::thread::Builder::new()
        .name("sealog-read".into())
        .spawn(move || {
            let mut events = Events::new(BufReader::with_capacity(1 << 20, source));
            loop {
                let next = match events.next_event() {
                    Ok(Some(item)) => Input::Event(item),
                    Ok(None) => return,
                    Err(e) => Input::Failed(e),
                };
                let failed = matches!(next, Input::Failed(_));
                if tx.send(next).is_err() || failed {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// The next group: waits for its first event, then takes what comes within `GROUP_WAIT`.
/// `None` when the input has ended, or when `stop` is set while it waits (the appending
/// failed: an input that never ends must not keep the command from exiting).
fn next_group(rx: &Receiver<Input>, stop: &AtomicBool) -> Option<(Vec<Item>, Option<io::Error>)> {
    let mut group = Vec::new();
    let mut bytes = 0usize;
    let first = loop {
        match rx.recv_timeout(STOP_POLL) {
            Ok(input) => break input,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => return None,
        }
    };
    let mut next = Some(first);
    let deadline = Instant::now() + GROUP_WAIT;
    while let Some(input) = next.take() {
        match input {
            Input::Event(item) => {
                bytes += item.as_ref().map_or(0, Vec::len);
                group.push(item);
            }
            Input::Failed(e) => return Some((group, Some(e))),
        }
        if group.len() >= GROUP_EVENTS_MAX || bytes >= GROUP_BYTES_MAX {
            break;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(input) => next = Some(input),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some((group, None))
}

pub(crate) fn run(ledger: &Ledger, args: &Args) -> anyhow::Result<ExitCode> {
    drive(
        args,
        |group| prepare_parallel(ledger, &group),
        |prepared| Ok(ledger.commit(prepared)?),
    )
}

/// Client mode: the same input and output, through a server, a group per request.
pub(crate) fn run_client(client: &crate::client::Client, args: &Args) -> anyhow::Result<ExitCode> {
    drive(
        args,
        |group| group,
        |group| crate::client::append_group(client, &group),
    )
}

/// Reads the input group by group, `prepare`s each on a thread of its own while the group
/// before it is appended, appends it with `append`, and prints its results (a line each)
/// once `append` returns, so every line printed reports something durable. Exit code 1 when
/// any event was not stored canonically.
fn drive<P: Send, R: ResultLine>(
    args: &Args,
    prepare: impl Fn(Vec<Item>) -> P + Sync,
    append: impl FnMut(P) -> anyhow::Result<Vec<R>>,
) -> anyhow::Result<ExitCode> {
    let rx = read_events(args)?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A rendezvous: at most one group prepared ahead of the one being appended.
        let (tx, prepared) = mpsc::sync_channel(0);
        let (prepare, stop) = (&prepare, &stop);
        s.spawn(move || {
            while let Some((group, failed)) = next_group(&rx, stop) {
                let any = !group.is_empty();
                if tx.send((any, prepare(group), failed)).is_err() {
                    return;
                }
            }
        });
        let done = append_all(prepared, append, stop);
        stop.store(true, Ordering::Relaxed);
        done
    })
}

/// Appends each prepared group, in input order, while a thread of its own prints the results
/// of the group before: the next group's commit does not wait for the printing. When printing
/// fails, `stop` ends the reading, so an input left open does not keep the command waiting.
fn append_all<P, R: ResultLine>(
    prepared: Receiver<(bool, P, Option<io::Error>)>,
    mut append: impl FnMut(P) -> anyhow::Result<Vec<R>>,
    stop: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    std::thread::scope(|s| {
        // One group printing, one waiting: memory stays bounded when the output is slow.
        let (tx, appended) = mpsc::sync_channel::<Vec<R>>(1);
        let printer = s.spawn(move || {
            let printed = print_results(appended);
            if printed.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            printed
        });
        let mut any = false;
        let mut failed_at = None;
        for (nonempty, group, failed) in prepared {
            // The printer stopped (standard output failed): appending more would append what
            // no line reports.
            if stop.load(Ordering::Relaxed) {
                break;
            }
            any |= nonempty;
            let results = match append(group) {
                Ok(r) => r,
                Err(e) => {
                    failed_at = Some(e);
                    break;
                }
            };
            // The printer stopped while this group was appended: its error is the one to say.
            if tx.send(results).is_err() {
                break;
            }
            if let Some(e) = failed {
                failed_at = Some(anyhow::anyhow!("reading the input: {e}"));
                break;
            }
        }
        // What was appended before a failure is printed before the failure is reported; a
        // failed append or read is the one to report when printing failed too.
        drop(tx);
        let printed = printer.join().expect("the printer thread");
        if let Some(e) = failed_at {
            return Err(e);
        }
        let refused = printed?;
        if !any {
            anyhow::bail!("input refused: the input holds no events");
        }
        Ok(if refused > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// A result as `append` prints it: one line of JSON.
trait ResultLine: Send {
    /// Writes the line without its newline; whether the event was stored canonically.
    fn write_line(&self, out: &mut impl Write) -> io::Result<bool>;
}

impl ResultLine for IngestResult {
    fn write_line(&self, out: &mut impl Write) -> io::Result<bool> {
        self.write_json(out)?;
        Ok(self.seq().is_some())
    }
}

/// A server's answer, in client mode.
impl ResultLine for serde_json::Value {
    fn write_line(&self, out: &mut impl Write) -> io::Result<bool> {
        write!(out, "{self}")?;
        Ok(self["status"] == "appended" || self["status"] == "duplicate")
    }
}

/// Prints each appended group's results, a line each, as they come: how many were not stored
/// canonically.
fn print_results<R: ResultLine>(appended: Receiver<Vec<R>>) -> anyhow::Result<usize> {
    // Standard output flushes at every line's end: one system call per event, unless its
    // lines are gathered a group at a time.
    let out = &mut io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut refused = 0usize;
    for results in appended {
        for r in &results {
            if !r.write_line(out)? {
                refused += 1;
            }
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(refused)
}

/// Prepares events on every core, in input order.
pub(crate) fn prepare_parallel(ledger: &Ledger, items: &[Item]) -> Vec<Prepared> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per = items.len().div_ceil(threads).max(1);
    let prepare = |item: &Item| match item {
        Ok(bytes) => ledger.prepare(bytes, &Author::ANYONE),
        Err(e) => Prepared::Rejected(Rejection::from(PrepareError::Input(e.clone()))),
    };
    if items.len() <= 64 {
        return items.iter().map(prepare).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|c| s.spawn(move || c.iter().map(prepare).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("prepare thread"))
            .collect()
    })
}
