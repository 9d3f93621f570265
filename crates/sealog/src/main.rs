//! `sealog`: the command-line front end. Every command that lists records prints NDJSON.
//!
//! Exit codes: 0 success; 1 the command ran but something it was given was refused or not
//! found (each refusal is printed); 2 the command could not run (bad usage, store error).

/// `eprintln!` without its panic. A message standard error cannot take (a full disk under a
/// redirect, a closed descriptor) is lost, and the exit code still tells how the command
/// ended: a panic would say no more and end with 101 instead.
macro_rules! tell {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that hands back the error where `println!` would panic: a result the command
/// cannot write (a full disk under a redirect, a reader gone from the pipe) fails the command.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

/// [`tell!`] without the line's end: a progress line redrawn in place.
macro_rules! tell_inline {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod access;
mod append;
mod bench;
mod bench_check;
mod bench_client;
mod bench_console;
mod bench_http;
mod bench_nats;
mod bench_query;
mod check;
mod client;
mod demo;
mod erase;
mod export;
mod hold;
mod keys;
mod manual;
mod migrate;
mod read;
mod report;
mod retention;
mod serve;
mod settings;
mod stream;
mod tlog;
mod witness;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};
use sealog_ledger::Packs;
use sealog_ledger::{Durability, Ledger, LedgerConfig, StoreConfig, Undeclared};

#[derive(Parser)]
#[command(
    name = "sealog",
    version,
    about = "An append-only, tamper-evident audit log"
)]
struct Cli {
    /// Data directory of the embedded store (created on first use), or a PostgreSQL database
    /// (`postgresql://…`, migrated by `sealog migrate`) that several servers may share.
    #[arg(
        long,
        global = true,
        env = "SEALOG_DATA",
        default_value = "./sealog-data"
    )]
    data: PathBuf,
    /// With a PostgreSQL --data: this server's own directory, created on first use: the logs'
    /// signing keys and the master key (copy them to every server of the database), its API
    /// keys and exports.
    #[arg(
        long,
        global = true,
        env = "SEALOG_STATE",
        value_name = "DIR",
        default_value = "./sealog-state"
    )]
    state: PathBuf,
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
    /// The log's signing key, kept outside the data directory (which then needs only
    /// keys/log.pub): the data and the key can be held by different people.
    #[arg(long, global = true, env = "SEALOG_SIGNING_KEY", value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Settings from a TOML file (`sealog init` writes a starter): below the command line and
    /// the environment, above the defaults.
    #[arg(long, global = true, env = "SEALOG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
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
        /// Print the record exactly as stored (personal values sealed): the bytes its proof
        /// covers.
        #[arg(long)]
        sealed: bool,
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
        /// Print the verifier key instead (C2SP note verifier-key format). Not `--key`, which
        /// is the API key of client mode.
        #[arg(id = "print_verifier_key", long = "verifier-key")]
        key: bool,
        #[command(flatten)]
        remote: client::Remote,
    },
    /// A deterministic export of the records a selection holds, with its manifest and proof
    /// (or, with --bundle, one subject's evidence bundle).
    Export(Box<export::Args>),
    /// Check an export offline: its file, its records, their proof and the signed checkpoint.
    VerifyExport(export::VerifyArgs),
    /// Inclusion and consistency proofs, as JSON.
    Prove(tlog::ProveArgs),
    /// Rebuild everything from the files (or, with --url, from the server's entry bundles)
    /// and check it against the signed checkpoints.
    ///
    /// The record ids, checked so that none appears twice, are held in memory up to about a
    /// million; past that they are kept in sorted runs in a scratch file under TMPDIR,
    /// removed when verification ends.
    Verify(tlog::VerifyArgs),
    /// Serve the HTTP API over this data directory.
    Serve(Box<serve::Args>),
    /// Erase a data subject: destroy their key, so their personal fields read as erased
    /// while every record and proof stays (admin; with --url, through the server).
    Erase(erase::Args),
    /// Consistency checks: integrity against the signed checkpoints and every pack's rules;
    /// findings as NDJSON, new ones recorded as conflicts (with --url, run by the server).
    Check(Box<check::Args>),
    /// The conflicts the checks found, as NDJSON; `resolve ID` settles one.
    Conflicts(check::ConflictsArgs),
    /// Apply the PostgreSQL schema to the database --data postgresql://… names (each
    /// migration once; idempotent) and grant the application role its rights.
    Migrate(migrate::Args),
    /// A report over a window (daily, weekly, monthly, quarantine, coordination, popia),
    /// counted from the index, as JSON, CSV or Markdown (with --url, from the server).
    Report(report::Args),
    /// Legal holds: a tenant or a data subject kept from erasure while a matter is open
    /// (admin; with --url, through the server).
    #[command(subcommand)]
    Hold(hold::Hold),
    /// Retention: what is past its type's period, and pruning it to stubs that keep every
    /// proof (admin; with --url, through the server).
    #[command(subcommand)]
    Retention(retention::Retention),
    /// Manage API keys (works while the server runs).
    #[command(subcommand)]
    Keys(keys::Keys),
    /// Run a witness (C2SP tlog-witness) that cosigns other logs' checkpoints, or print its key.
    #[command(subcommand)]
    Witness(witness::Witness),
    /// Ingest the example events shipped with Sealog and read them back.
    Demo,
    /// A shell completion script for this CLI, printed (source it, or install it where the
    /// shell looks: see the README).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Whether the server at --url is ready (GET /readyz): exit 0 if so, 1 if it answers
    /// otherwise, 2 if it cannot be reached. For health checks of containers and supervisors.
    Health {
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:7700")]
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        timeout_s: f64,
    },
    /// Write a commented starter config file: every global and `serve` setting, its
    /// default and its environment variable.
    Init {
        #[arg(long, value_name = "FILE", default_value = "sealog.toml")]
        out: PathBuf,
    },
    /// The manual page (roff), printed; with --dir, one page per command written there.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Load generator against the real server on loopback: single-event and bulk appends, queries.
    Http(bench_http::HttpArgs),
    /// The Rust client against the real server: emit() latency, one emitter's throughput, and
    /// the server's bulk HTTP ingest of the same events beside it.
    Client(bench_client::ClientArgs),
    /// NATS JetStream ingest beside `sealog append FILE` and bulk HTTP, on the same events.
    Nats(bench_nats::NatsArgs),
    /// Consistency checks over a store of the built-in packs' records: a full run, then an
    /// incremental one over what was added since, in records per second.
    Check(bench_check::CheckArgs),
    /// The console's pages and reports over a store of N records, as a browser loads them.
    Console(bench_console::ConsoleArgs),
    /// Query latency in the ledger over a log left by `bench ingest --dir`: by id, subject,
    /// one axis, two axes, an event-time second; warm, and cold with `--cold N` (root).
    Query(bench_query::QueryArgs),
    #[command(flatten)]
    Store(bench::Bench),
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match settings::parse() {
        Ok(cli) => cli,
        Err(e) => {
            tell!("sealog: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tell!("sealog: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn durability(cli: &Cli) -> Durability {
    match cli.durability {
        DurabilityArg::Fsync => Durability::Fsync,
        DurabilityArg::Os => Durability::Os,
    }
}

fn config(cli: &Cli) -> anyhow::Result<LedgerConfig> {
    let dirs: Vec<&std::path::Path> = cli.packs.iter().map(PathBuf::as_path).collect();
    let packs = Packs::load(&dirs).map_err(|e| anyhow::anyhow!("packs: {e}"))?;
    Ok(LedgerConfig {
        store: StoreConfig {
            durability: durability(cli),
            signing_key: cli.signing_key.clone(),
            ..StoreConfig::default()
        },
        packs,
        undeclared: if cli.accept_undeclared_types {
            Undeclared::Accept
        } else {
            Undeclared::Quarantine
        },
    })
}

/// Opens the data directory to write it.
fn open(cli: &Cli) -> anyhow::Result<Ledger> {
    if cli.durability == DurabilityArg::Os {
        tell!(
            "sealog: WARNING: --durability os: appends are acknowledged before they are on disk; a machine crash can lose them"
        );
    }
    let ledger = match database(cli) {
        Some(url) => Ledger::open_database(&url, &cli.state, config(cli)?)?,
        None => Ledger::open(&cli.data, config(cli)?)?,
    };
    report_recovery(&ledger);
    Ok(ledger)
}

/// The database `--data` names, if it names one rather than a directory.
fn database(cli: &Cli) -> Option<String> {
    let data = cli.data.to_string_lossy();
    sealog_pg::is_database_url(&data).then(|| data.into_owned())
}

/// Where the server keeps what is its own: the data directory, or `--state` beside a database.
fn home(cli: &Cli) -> &std::path::Path {
    if database(cli).is_some() {
        &cli.state
    } else {
        &cli.data
    }
}

fn report_recovery(ledger: &Ledger) {
    let (canonical, quarantine) = ledger.recovery();
    for (log, recovery) in [("", canonical), (" (quarantine log)", quarantine)] {
        if let Some(cut) = &recovery.cut {
            tell!(
                "sealog: recovered{log}: cut a torn tail of {} bytes at offset {} of {} ({})",
                cut.bytes,
                cut.offset,
                cut.segment.display(),
                cut.reason
            );
        }
        if let Some(why) = &recovery.rebuilt {
            tell!("sealog: recovered{log}: rebuilt from the log what was derived from it: {why}");
        }
    }
}

/// Runs a command on the ledger opened for writing, then closes it: closing signs the final
/// checkpoint, so a failure there is the command's failure too, not something to drop.
fn writing<T>(cli: &Cli, command: impl FnOnce(&Ledger) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let ledger = open(cli)?;
    let out = command(&ledger)?;
    ledger.close()?;
    Ok(out)
}

/// Runs a read on the ledger opened to read (its access records written), then closes it,
/// reporting a failed close as [`writing`] does.
fn reading<T>(
    cli: &Cli,
    command: impl FnOnce(&access::Reader) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    closing(open_to_read(cli)?, command)
}

/// Runs a command on `reader`, then closes it, reporting a failed close.
fn closing<T>(
    reader: access::Reader,
    command: impl FnOnce(&access::Reader) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let out = command(&reader)?;
    reader.close()?;
    Ok(out)
}

/// Opens a data directory for a read command: as its writer when no other process holds it
/// (so a crash is recovered, and reads are recorded as `audit.access`); read-only beside the
/// process that does (a running server) or without the log's signing key, and then the reads
/// say they were not recorded.
fn open_to_read(cli: &Cli) -> anyhow::Result<access::Reader> {
    if let Some(url) = database(cli) {
        return match Ledger::open_database(&url, &cli.state, config(cli)?) {
            Ok(ledger) => Ok(access::Reader::recording(ledger)),
            Err(e) if Ledger::lacks_signing_key(&e) => {
                tell!("sealog: note: {e}; reading it read-only");
                Ok(access::Reader::unrecorded(
                    Ledger::open_database_read_only(&url, &cli.state, config(cli)?)?,
                    "the log cannot be written without its signing key",
                ))
            }
            Err(e) => Err(e.into()),
        };
    }
    match Ledger::open(&cli.data, config(cli)?) {
        Ok(ledger) => {
            report_recovery(&ledger);
            Ok(access::Reader::recording(ledger))
        }
        Err(e) if Ledger::is_locked_elsewhere(&e) => {
            tell!("sealog: note: {e}; reading what it has made durable, read-only");
            let ledger = Ledger::open_read_only(&cli.data, config(cli)?).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; to read through the server instead, run the same command with --url URL --key KEY"
                )
            })?;
            Ok(access::Reader::unrecorded(
                ledger,
                "the data directory is held by a running server",
            ))
        }
        Err(e) if Ledger::lacks_signing_key(&e) => {
            tell!("sealog: note: {e}; reading it read-only");
            Ok(access::Reader::unrecorded(
                Ledger::open_read_only(&cli.data, config(cli)?)?,
                "the log cannot be written without its signing key",
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn open_for_reading(dir: &std::path::Path, packs: Packs) -> anyhow::Result<Ledger> {
    let config = || LedgerConfig {
        store: StoreConfig::default(),
        packs: packs.clone(),
        undeclared: Undeclared::Quarantine,
    };
    match Ledger::open(dir, config()) {
        Ok(l) => Ok(l),
        Err(e) if Ledger::is_locked_elsewhere(&e) => Ok(Ledger::open_read_only(dir, config())?),
        Err(e) => Err(e.into()),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(code) = run_remote(&cli)? {
        return Ok(code);
    }
    let data = cli.data.to_string_lossy().into_owned();
    if database(&cli).is_some() && matches!(cli.command, Command::Demo | Command::Bench(_)) {
        anyhow::bail!(
            "--data {}: this command works on a data directory only",
            sealog_pg::redacted(&data)
        );
    }
    match &cli.command {
        Command::Append(args) => writing(&cli, |l| append::run(l, args)),
        Command::Get { id, sealed, .. } => reading(&cli, |r| read::get(r, id, *sealed)),
        Command::Query(args) => reading(&cli, |r| read::query(r, args)),
        Command::State(args) => reading(&cli, |r| read::state(r, args)),
        Command::Quarantine(args) => reading(&cli, |r| read::quarantine(r, args)),
        Command::Checkpoint { key, .. } => reading(&cli, |r| tlog::checkpoint(&r.ledger, *key)),
        Command::Prove(p) => reading(&cli, |r| tlog::prove(r, &p.which)),
        Command::Verify(args) => tlog::verify(
            &tlog::Place::of(database(&cli), &cli.data, &cli.state),
            &config(&cli)?.packs,
            args,
        ),
        Command::Export(args) if args.action.is_some() => {
            bail!("`sealog export approve` approves an export made through a server: give --url")
        }
        Command::Export(args) => reading(&cli, |r| export::run(r, args)),
        Command::VerifyExport(args) => export::verify(&config(&cli)?.packs, args),
        Command::Serve(args) => serve::run(open(&cli)?, args),
        Command::Keys(keys::Keys::RotateLog) => writing(&cli, keys::rotate_log),
        Command::Keys(k) => keys::run(home(&cli), k),
        Command::Erase(a) => writing(&cli, |l| erase::run(l, a)),
        Command::Hold(h) => writing(&cli, |l| hold::run(l, h)),
        Command::Check(a) => writing(&cli, |l| check::run(l, a)),
        Command::Conflicts(a) => {
            // Bad filters are refused before the log is opened.
            let filters = a.filters()?;
            let reader = if a.writes() {
                access::Reader::recording(open(&cli)?)
            } else {
                open_to_read(&cli)?
            };
            closing(reader, |r| check::conflicts(r, a, filters))
        }
        Command::Migrate(a) => migrate::run(&data, a),
        Command::Report(a) => reading(&cli, |r| report::run(r, a)),
        Command::Retention(r) => writing(&cli, |l| retention::run(l, r)),
        Command::Witness(w) => witness::run(w),
        Command::Demo => writing(&cli, demo::run),
        Command::Completions { shell } => manual::completions(*shell),
        Command::Init { out } => settings::init(out),
        Command::Health { url, timeout_s } => health(url, *timeout_s),
        Command::Man { dir } => manual::man(dir.as_deref()),
        Command::Bench(BenchCmd::Http(a)) => bench_http::run(a, durability(&cli) == Durability::Os),
        Command::Bench(BenchCmd::Client(a)) => {
            bench_client::run(a, durability(&cli) == Durability::Os)
        }
        Command::Bench(BenchCmd::Nats(a)) => bench_nats::run(a, durability(&cli) == Durability::Os),
        Command::Bench(BenchCmd::Check(a)) => bench_check::run(a, durability(&cli)),
        Command::Bench(BenchCmd::Console(a)) => bench_console::run(a, durability(&cli)),
        Command::Bench(BenchCmd::Query(a)) => bench_query::run(a),
        Command::Bench(BenchCmd::Store(b)) => bench::run(b, durability(&cli)),
    }
}

fn health(url: &str, timeout_s: f64) -> anyhow::Result<ExitCode> {
    let timeout = std::time::Duration::try_from_secs_f64(timeout_s)
        .map_err(|e| anyhow::anyhow!("--timeout-s {timeout_s}: {e}"))?;
    let reply = client::Client::new(url, None, Some(timeout))?.get("/readyz")?;
    if reply.status == 200 {
        say!("ready")?;
        Ok(ExitCode::SUCCESS)
    } else {
        tell!("sealog: not ready: {} {}", reply.status, reply.message());
        Ok(ExitCode::from(1))
    }
}

fn remote_of(a: &export::Args) -> &client::Remote {
    match &a.action {
        Some(export::Action::Approve { remote, .. }) => remote,
        None => &a.remote,
    }
}

/// Client mode: a command given `--url` talks to a server instead of opening `--data`.
fn run_remote(cli: &Cli) -> anyhow::Result<Option<ExitCode>> {
    let code = match &cli.command {
        Command::Append(a) if a.remote.url.is_some() => append::run_client(&a.remote.client()?, a)?,
        Command::Get { id, sealed, remote } if remote.url.is_some() => {
            client::get(&remote.client()?, id, *sealed)?
        }
        Command::Query(a) if a.remote.url.is_some() => {
            client::query(&a.remote.client()?, &a.to_params())?
        }
        Command::State(a) if a.remote.url.is_some() => {
            let (path, params) = a.to_request();
            client::state(&a.remote.client()?, &path, &params)?
        }
        Command::Quarantine(a) if a.remote.url.is_some() => {
            client::quarantine(&a.remote.client()?, &a.to_params())?
        }
        Command::Checkpoint { key, remote } if remote.url.is_some() => {
            client::checkpoint(&remote.client()?, *key)?
        }
        Command::Prove(p) if p.remote.url.is_some() => {
            client::prove(&p.remote.client()?, &p.which)?
        }
        Command::Export(a) if a.remote.url.is_some() => export::run_client(&a.remote.client()?, a)?,
        Command::Export(a) if matches!(&a.action, Some(export::Action::Approve { remote, .. }) if remote.url.is_some()) => {
            export::run_client(&remote_of(a).client()?, a)?
        }
        Command::Erase(a) if a.remote.url.is_some() => erase::run_client(&a.remote.client()?, a)?,
        Command::Hold(h) if h.remote().url.is_some() => hold::run_client(&h.remote().client()?, h)?,
        Command::Check(a) if a.remote.url.is_some() => check::run_client(&a.remote.client()?, a)?,
        Command::Conflicts(a) if a.remote().url.is_some() => {
            check::conflicts_client(&a.remote().client()?, a)?
        }
        Command::Report(a) if a.remote.url.is_some() => report::run_client(&a.remote.client()?, a)?,
        Command::Retention(r) if r.remote().url.is_some() => {
            retention::run_client(&r.remote().client()?, r)?
        }
        Command::Verify(a) if a.remote.url.is_some() => {
            tlog::verify_remote(&a.remote.client()?, a)?
        }
        _ => return Ok(None),
    };
    Ok(Some(code))
}
