//! `sealog append`: read events as they arrive, prepare them on all cores, append them in
//! groups, and print their results as soon as they are durable, in input order.
//!
//! A reader thread cuts the input into events (`stream`) and hands them over a bounded
//! channel, in batches of those already buffered. A chunker gathers them into numbered
//! chunks: a chunk closes when it is full or when no event has come for a moment, so a slow
//! producer (`tail -F`) sees each event appended within that moment. Preparers, one per core,
//! take chunks as they come; the appender puts them back in input order and appends, in one
//! group, every chunk ready in order. Preparing never waits for a group to close or for the
//! one before it to be appended, so no core idles at a group's edge while another works; the
//! cores that prepare go on while the writer hashes, writes and syncs. What is read but not
//! yet appended stays within a fixed number of chunks, so memory stays bounded however long
//! the input. Results are printed while the next group is appended, so the writer does not
//! wait for the printing either.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
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

/// Events one chunk may hold: a preparer's unit of work.
const CHUNK_EVENTS: usize = 256;
/// Bytes one chunk may hold (it closes at the event that reaches them).
const CHUNK_BYTES: usize = 1 << 20;
/// Events one group may hold: bounds the work of one commit.
const GROUP_EVENTS_MAX: usize = 4096;
/// Chunks one group may hold: with `CHUNK_BYTES`, bounds the memory of one commit.
const GROUP_CHUNKS_MAX: usize = 16;
/// Chunks read but not yet appended: what the reading and preparing may run ahead.
const CHUNKS_IN_FLIGHT: usize = 32;
/// How long a chunk waits for more events after its first before it is prepared anyway, so
/// a slow producer (`tail -F`) sees each event appended within that moment.
const CHUNK_WAIT: Duration = Duration::from_millis(5);
/// How often the chunker waiting for input looks whether the appending has stopped.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Events the reader hands over at once when more are already buffered, so the chunker does
/// not take them one by one.
const READ_BATCH_EVENTS: usize = 64;
/// Bytes of events the reader hands over at once.
const READ_BATCH_BYTES: usize = 256 << 10;
/// Batches cut but not yet in a chunk: what the reader may run ahead.
const READ_AHEAD_BATCHES: usize = 4;

enum Input {
    Event(Item),
    /// Reading failed: the events before it are appended, then the command fails.
    Failed(io::Error),
}

/// Starts the reader thread over the file or standard input. It hands events over in
/// batches of what is already buffered: an event that would wait for more input goes with
/// those before it, so a slow producer's events are never held back.
fn read_events(args: &Args) -> anyhow::Result<Receiver<Vec<Input>>> {
    let source: Box<dyn io::Read + Send> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(
            File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?,
        )
    };
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD_BATCHES);
    std::thread::Builder::new()
        .name("sealog-read".into())
        .spawn(move || {
            let mut events = Events::new(BufReader::with_capacity(1 << 20, source));
            let mut batch = Vec::with_capacity(READ_BATCH_EVENTS);
            let mut bytes = 0;
            loop {
                let (next, last) = match events.next_event() {
                    Ok(Some(item)) => (Some(Input::Event(item)), false),
                    Ok(None) => (None, true),
                    Err(e) => (Some(Input::Failed(e)), true),
                };
                if let Some(Input::Event(Ok(e))) = &next {
                    bytes += e.len();
                }
                batch.extend(next);
                let full = batch.len() >= READ_BATCH_EVENTS || bytes >= READ_BATCH_BYTES;
                if last || full || !events.next_is_buffered() {
                    let sent = batch.is_empty()
                        || tx
                            .send(std::mem::replace(
                                &mut batch,
                                Vec::with_capacity(READ_BATCH_EVENTS),
                            ))
                            .is_ok();
                    bytes = 0;
                    if !sent || last {
                        return;
                    }
                }
            }
        })?;
    Ok(rx)
}

/// The next chunk: waits for its first event, then takes what comes within `CHUNK_WAIT`.
/// `None` when the input has ended, or when `stop` is set while it waits (the appending
/// failed: an input that never ends must not keep the command from exiting).
fn next_chunk(
    rx: &Receiver<Vec<Input>>,
    stop: &AtomicBool,
) -> Option<(Vec<Item>, Option<io::Error>)> {
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    let first = loop {
        match rx.recv_timeout(STOP_POLL) {
            Ok(batch) => break batch,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => return None,
        }
    };
    let mut next = Some(first);
    let deadline = Instant::now() + CHUNK_WAIT;
    while let Some(batch) = next.take() {
        for input in batch {
            match input {
                Input::Event(item) => {
                    bytes += item.as_ref().map_or(0, Vec::len);
                    chunk.push(item);
                }
                Input::Failed(e) => return Some((chunk, Some(e))),
            }
        }
        if chunk.len() >= CHUNK_EVENTS || bytes >= CHUNK_BYTES {
            break;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(batch) => next = Some(batch),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some((chunk, None))
}

pub(crate) fn run(ledger: &Ledger, args: &Args) -> anyhow::Result<ExitCode> {
    drive(
        args,
        |chunk| chunk.iter().map(|item| prepare(ledger, item)).collect(),
        |group| Ok(ledger.commit(group)?),
    )
}

/// Client mode: the same input and output, through a server, a group per request.
pub(crate) fn run_client(client: &crate::client::Client, args: &Args) -> anyhow::Result<ExitCode> {
    drive(
        args,
        |chunk| chunk,
        |group| crate::client::append_group(client, &group),
    )
}

/// Reads the input chunk by chunk, `prepare`s chunks on every core as they come, appends
/// them in input order with `append`, as many as are ready in one group, and prints their
/// results (a line each) once `append` returns, so every line printed reports something
/// durable. Exit code 1 when any event was not stored canonically.
fn drive<T: Send, R: ResultLine>(
    args: &Args,
    prepare: impl Fn(Vec<Item>) -> Vec<T> + Sync,
    append: impl FnMut(Vec<T>) -> anyhow::Result<Vec<R>>,
) -> anyhow::Result<ExitCode> {
    let rx = read_events(args)?;
    let stop = AtomicBool::new(false);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    std::thread::scope(|s| {
        // A chunk is cut only with a ticket, and its ticket comes back once its events are
        // appended: what is read but not yet durable stays within CHUNKS_IN_FLIGHT chunks.
        let (give_back, tickets) = mpsc::sync_channel::<()>(CHUNKS_IN_FLIGHT);
        for _ in 0..CHUNKS_IN_FLIGHT {
            give_back.send(()).expect("room for every ticket");
        }
        let (to_prepare, chunks) = mpsc::sync_channel::<Chunk<Item>>(workers);
        // Held by the preparers alone, so the chunker's sending fails once they have all
        // stopped.
        let chunks = Arc::new(Mutex::new(chunks));
        let (to_append, prepared) = mpsc::channel::<Chunk<T>>();
        let (prepare, stop_ref) = (&prepare, &stop);
        s.spawn(move || {
            let mut number = 0;
            while !stop_ref.load(Ordering::Relaxed) && tickets.recv().is_ok() {
                let Some((events, failed)) = next_chunk(&rx, stop_ref) else {
                    return;
                };
                let chunk = Chunk {
                    number,
                    events,
                    failed,
                };
                number += 1;
                let last = chunk.failed.is_some();
                if to_prepare.send(chunk).is_err() || last {
                    return;
                }
            }
        });
        for _ in 0..workers {
            let (chunks, to_append) = (chunks.clone(), to_append.clone());
            s.spawn(move || {
                sealog_ledger::prepare_below_the_writer();
                loop {
                    // The lock is held only to take a chunk, never while preparing one.
                    let next = chunks.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(c) = next else { return };
                    let chunk = Chunk {
                        number: c.number,
                        events: prepare(c.events),
                        failed: c.failed,
                    };
                    if to_append.send(chunk).is_err() {
                        return;
                    }
                }
            });
        }
        drop((chunks, to_append));
        let done = append_all(InOrder::new(prepared), append, &give_back, &stop);
        stop.store(true, Ordering::Relaxed);
        // Dropped before the scope joins its threads: the chunker may wait for a ticket.
        drop(give_back);
        done
    })
}

/// Events cut from the input, numbered in input order; the last one read carries the read
/// failure that ended the input, if one did.
struct Chunk<E> {
    number: u64,
    events: Vec<E>,
    failed: Option<io::Error>,
}

/// Prepared chunks put back in input order, whatever order their preparers finished in.
struct InOrder<T> {
    arrived: Receiver<Chunk<T>>,
    waiting: std::collections::BTreeMap<u64, Chunk<T>>,
    next: u64,
}

impl<T> InOrder<T> {
    fn new(arrived: Receiver<Chunk<T>>) -> Self {
        InOrder {
            arrived,
            waiting: Default::default(),
            next: 0,
        }
    }

    /// The next chunk in input order: waits for it when `wait`, else only if it is here.
    fn next(&mut self, wait: bool) -> Option<Chunk<T>> {
        loop {
            if let Some(c) = self.waiting.remove(&self.next) {
                self.next += 1;
                return Some(c);
            }
            let c = if wait {
                self.arrived.recv().ok()?
            } else {
                self.arrived.try_recv().ok()?
            };
            self.waiting.insert(c.number, c);
        }
    }
}

/// Appends the prepared chunks in input order, each group as many as are ready (within the
/// group's bounds), while a thread of its own prints the results of the group before: the
/// next group's commit does not wait for the printing. When printing fails, `stop` ends the
/// reading, so an input left open does not keep the command waiting.
fn append_all<T, R: ResultLine>(
    mut prepared: InOrder<T>,
    mut append: impl FnMut(Vec<T>) -> anyhow::Result<Vec<R>>,
    give_back: &mpsc::SyncSender<()>,
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
        while let Some(first) = prepared.next(true) {
            // The printer stopped (standard output failed): appending more would append what
            // no line reports.
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut group = first.events;
            let mut failed = first.failed;
            let mut chunks = 1;
            while failed.is_none() && group.len() < GROUP_EVENTS_MAX && chunks < GROUP_CHUNKS_MAX {
                let Some(more) = prepared.next(false) else {
                    break;
                };
                group.extend(more.events);
                failed = more.failed;
                chunks += 1;
            }
            any |= !group.is_empty();
            let results = match append(group) {
                Ok(r) => r,
                Err(e) => {
                    failed_at = Some(e);
                    break;
                }
            };
            for _ in 0..chunks {
                // There is room: the chunker took these tickets. Only a chunker that has
                // stopped makes this fail, and then nobody needs them.
                let _ = give_back.try_send(());
            }
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

/// One event as the input gave it, prepared (or refused, when it could not be read).
pub(crate) fn prepare(ledger: &Ledger, item: &Item) -> Prepared {
    match item {
        Ok(bytes) => ledger.prepare(bytes, &Author::ANYONE),
        Err(e) => Prepared::Rejected(Rejection::from(PrepareError::Input(e.clone()))),
    }
}
