//! `sealog append`: read events, prepare them on all cores, append them in order.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use sealog_ledger::{IngestResult, Ledger, Prepared};
use sealog_model::input;
use sealog_model::record::PrepareError;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// File to read, or `-` (the default) for standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
    #[command(flatten)]
    pub(crate) remote: crate::client::Remote,
}

/// Events prepared and appended together; bounds memory for large NDJSON input.
const CHUNK_EVENTS: usize = 4096;
/// Input up to this size is read whole, so a pretty-printed object or an array works.
const WHOLE_INPUT_BYTES_MAX: usize = 64 << 20;

fn open_input(args: &Args) -> anyhow::Result<Box<dyn Read>> {
    Ok(if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?,
        )
    })
}

/// Client mode: the same input and output, through a server.
pub(crate) fn run_client(client: &crate::client::Client, args: &Args) -> anyhow::Result<ExitCode> {
    crate::client::append(client, &mut open_input(args)?)
}

pub(crate) fn run(ledger: &Ledger, args: &Args) -> anyhow::Result<ExitCode> {
    let reader = open_input(args)?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut head = Vec::new();
    (&mut reader)
        .take(WHOLE_INPUT_BYTES_MAX as u64 + 1)
        .read_to_end(&mut head)?;
    let out = &mut io::stdout().lock();
    let mut refused = 0usize;
    let starts_array = head.trim_ascii_start().first() == Some(&b'[');
    if head.len() <= WHOLE_INPUT_BYTES_MAX || starts_array {
        if starts_array {
            reader.read_to_end(&mut head)?;
        }
        let events = input::split(&head).map_err(|e| anyhow::anyhow!("input refused: {e}"))?;
        for chunk in events.chunks(CHUNK_EVENTS) {
            refused += append_chunk(ledger, chunk, out)?;
        }
    } else {
        // Large NDJSON: stream it line by line.
        let mut lines = head.as_slice().chain(reader).split(b'\n');
        loop {
            let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(CHUNK_EVENTS);
            for line in lines.by_ref() {
                let line = line?;
                if !line.trim_ascii().is_empty() {
                    chunk.push(line);
                }
                if chunk.len() == CHUNK_EVENTS {
                    break;
                }
            }
            if chunk.is_empty() {
                break;
            }
            let raws: Vec<input::RawEvent<'_>> = chunk.iter().map(|l| Ok(l.trim_ascii())).collect();
            refused += append_chunk(ledger, &raws, out)?;
        }
    }
    out.flush()?;
    Ok(if refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prepares events on every core, commits them in one call, and prints one result per
/// event in input order. Returns how many were not stored canonically (rejected or
/// quarantined).
fn append_chunk(
    ledger: &Ledger,
    raws: &[input::RawEvent<'_>],
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let results = ledger.commit(prepare_parallel(ledger, raws))?;
    let mut refused = 0;
    for r in &results {
        if matches!(
            r,
            IngestResult::Rejected(_) | IngestResult::Quarantined { .. }
        ) {
            refused += 1;
        }
        writeln!(out, "{}", r.to_json())?;
    }
    Ok(refused)
}

pub(crate) fn prepare_parallel(ledger: &Ledger, raws: &[input::RawEvent<'_>]) -> Vec<Prepared> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per = raws.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = raws
            .chunks(per)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|raw| match raw {
                            Ok(bytes) => ledger.prepare(bytes),
                            Err(e) => Prepared::Rejected(PrepareError::Input(e.clone())),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("prepare thread"))
            .collect()
    })
}
