//! `sealog`: the command-line front end. Every command that lists records prints NDJSON.
//!
//! Exit codes: 0 success; 1 the command ran but something it was given was refused or not
//! found (each refusal is printed); 2 the command could not run (bad usage, store error).

mod append;
mod bench;
mod bench_http;
mod client;
mod demo;
mod keys;
mod read;
mod serve;
mod tlog;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sealog_ledger::{Ledger, LedgerConfig, Undeclared};
use sealog_packs::Packs;
use sealog_store::{Config, Durability};

#[derive(Parser)]
#[command(
    name = "sealog",
    version,
    about = "An append-only, tamper-evident audit log"
)]
struct Cli {
    /// Data directory of the embedded store; created on first use.
    #[arg(long, global = true, default_value = "./sealog-data")]
    data: PathBuf,
    /// When appends are acknowledged: `fsync` (durable, the default) or `os` (UNSAFE: a
    /// machine crash may lose acknowledged records).
    #[arg(long, global = true, value_enum, default_value_t = DurabilityArg::Fsync)]
    durability: DurabilityArg,
    /// A directory holding one user pack (manifest.json and its schemas), loaded beside the
    /// built-in packs. Repeatable.
    #[arg(long = "packs", global = true, value_name = "DIR")]
    packs: Vec<PathBuf>,
    /// Append events of types no pack declares after envelope checks only, instead of
    /// quarantining them as UNKNOWN_EVENT_TYPE.
    #[arg(
        long,
        global = true,
        env = "SEALOG_ACCEPT_UNDECLARED_TYPES",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    accept_undeclared_types: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Fsync,
    Os,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest events: one JSON object, a JSON array, or NDJSON; one result line per event.
    Append(append::Args),
    /// One record by record_id (`sha256:…`) or seq.
    Get {
        id: String,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Records matching every filter, in seq order.
    Query(Box<read::QueryArgs>),
    /// A subject's state rebuilt from its records (as of a time or tree size).
    State(read::StateArgs),
    /// Quarantine records: events that could not become canonical, and why.
    Quarantine(read::QuarantineArgs),
    /// The latest signed checkpoint (a C2SP signed note), signing one if the log grew.
    Checkpoint {
        /// Print the verifier key instead (C2SP note verifier-key format).
        #[arg(long)]
        key: bool,
    },
    /// Inclusion and consistency proofs, as JSON.
    #[command(subcommand)]
    Prove(tlog::Prove),
    /// Rebuild everything from the files and check it against the signed checkpoints.
    Verify {
        /// A checkpoint note saved earlier: prove the log only grew since.
        #[arg(long)]
        since: Option<PathBuf>,
        /// The verifier key to trust (default: the data directory's own keys/log.pub).
        #[arg(long)]
        key: Option<String>,
    },
    /// Serve the HTTP API over this data directory.
    Serve(serve::Args),
    /// Manage API keys (works while the server runs).
    #[command(subcommand)]
    Keys(keys::Keys),
    /// Ingest the example events shipped with Sealog and read them back.
    Demo,
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Load generator against the real server on loopback: single-event and bulk appends, queries.
    Http(bench_http::HttpArgs),
    #[command(flatten)]
    Store(bench::Bench),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sealog: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open(cli: &Cli) -> anyhow::Result<Ledger> {
    let durability = match cli.durability {
        DurabilityArg::Fsync => Durability::Fsync,
        DurabilityArg::Os => {
            eprintln!(
                "sealog: WARNING: --durability os: appends are acknowledged before they are on disk; a machine crash can lose them"
            );
            Durability::Os
        }
    };
    let dirs: Vec<&std::path::Path> = cli.packs.iter().map(PathBuf::as_path).collect();
    let packs = Packs::load(&dirs).map_err(|e| anyhow::anyhow!("packs: {e}"))?;
    let ledger = Ledger::open(
        &cli.data,
        LedgerConfig {
            store: Config {
                durability,
                ..Config::default()
            },
            packs,
            undeclared: if cli.accept_undeclared_types {
                Undeclared::Accept
            } else {
                Undeclared::Quarantine
            },
        },
    )?;
    for (log, store) in [
        ("", ledger.store()),
        (" (quarantine log)", ledger.quarantine_store()),
    ] {
        if let Some(cut) = &store.recovery().cut {
            eprintln!(
                "sealog: recovered{log}: cut a torn tail of {} bytes at offset {} of {} ({})",
                cut.bytes,
                cut.offset,
                cut.segment.display(),
                cut.reason
            );
        }
    }
    Ok(ledger)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Append(args) if args.remote.url.is_some() => {
            return append::run_client(&args.remote.client()?, args);
        }
        Command::Get { id, remote } if remote.url.is_some() => {
            return client::get(&remote.client()?, id);
        }
        Command::Query(args) if args.remote.url.is_some() => {
            return client::query(&args.remote.client()?, &args.to_params());
        }
        _ => {}
    }
    match &cli.command {
        Command::Append(args) => append::run(&open(&cli)?, args),
        Command::Get { id, .. } => read::get(open(&cli)?.store(), id),
        Command::Query(args) => read::query(&open(&cli)?, args),
        Command::State(args) => read::state(&open(&cli)?, args),
        Command::Quarantine(args) => read::quarantine(&open(&cli)?, args),
        Command::Checkpoint { key } => tlog::checkpoint(open(&cli)?.store(), *key),
        Command::Prove(p) => tlog::prove(open(&cli)?.store(), p),
        Command::Verify { since, key } => tlog::verify(&cli.data, since.as_ref(), key.as_ref()),
        Command::Serve(args) => serve::run(open(&cli)?, args),
        Command::Keys(k) => keys::run(&cli.data, k),
        Command::Demo => demo::run(&open(&cli)?),
        Command::Bench(BenchCmd::Http(a)) => {
            bench_http::run(a, cli.durability_for_bench() == Durability::Os)
        }
        Command::Bench(BenchCmd::Store(b)) => bench::run(b, cli.durability_for_bench()),
    }
}

impl Cli {
    fn durability_for_bench(&self) -> Durability {
        match self.durability {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::Os => Durability::Os,
        }
    }
}
