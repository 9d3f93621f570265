//! `sealog-bench`: runs the comparison and writes `report.md` and `report.json`.
//! PostgreSQL is reached through `--pg` (a running, durable server; `scripts/bench-compare`
//! starts a throw-away one); SQLite and Sealog write under `--work`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sealog_bench::{EngineSpec, Options};

#[derive(Parser)]
#[command(
    name = "sealog-bench",
    about = "Sealog side by side with PostgreSQL and SQLite"
)]
struct Cli {
    /// Decision-log events of the bulk ingest.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// 100-byte key/value-like entries.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Events (and entries) per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Threads appending batches at once, for every engine.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Concurrent writers of the single-event levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    writers: Vec<usize>,
    /// Most events of one single-event level.
    #[arg(long, default_value_t = 50_000)]
    single_events: u64,
    /// Most seconds of one single-event level.
    #[arg(long, default_value_t = 10.0)]
    single_seconds: f64,
    /// Queries of each shape.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Width of the time-window query, seconds.
    #[arg(long, default_value_t = 300)]
    window_secs: i64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// PostgreSQL connection (libpq key=value form); without it PostgreSQL is left out.
    #[arg(long)]
    pg: Option<String>,
    /// Leave SQLite out.
    #[arg(long)]
    no_sqlite: bool,
    /// Leave Sealog out.
    #[arg(long)]
    no_sealog: bool,
    /// Keep Sealog's sealed segments as written instead of compressing them, to measure what
    /// compression costs and saves.
    #[arg(long)]
    sealog_plain_segments: bool,
    /// Also run Sealog on its PostgreSQL backend (on the --pg cluster), with one server and
    /// with two sharing the database.
    #[arg(long, requires = "pg")]
    sealog_pg: bool,
    /// Where Sealog and SQLite write (must not exist yet; removed after the run).
    #[arg(long, required_unless_present = "render")]
    work: Option<PathBuf>,
    /// Run nothing: render the markdown of an earlier run's `report.json`.
    #[arg(long, value_name = "REPORT_JSON")]
    render: Option<PathBuf>,
    /// Where `report.md` and `report.json` go.
    #[arg(long, default_value = "target/bench-compare")]
    out: PathBuf,
    /// The command to print as the way to reproduce this run (default: this one).
    #[arg(long)]
    command: Option<String>,
    /// Keep the Sealog and SQLite data after the run.
    #[arg(long)]
    keep: bool,
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealog-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(path) = &cli.render {
        let r: sealog_bench::Report = serde_json::from_slice(&std::fs::read(path)?)?;
        // Figures and targets derived again from the measurements, as this version derives them.
        let report = sealog_bench::Report::new(
            r.date,
            r.command,
            r.load_before,
            r.load_after,
            r.options,
            r.machine,
            r.event_bytes_mean,
            r.engines,
        );
        println!("{}", report.markdown(3));
        return Ok(());
    }
    let work = cli
        .work
        .clone()
        .expect("clap requires --work without --render");
    anyhow::ensure!(
        !work.exists(),
        "--work {} exists; give a directory that does not",
        work.display()
    );
    std::fs::create_dir_all(&work)?;
    let options = Options {
        events: cli.events,
        entries: cli.entries,
        batch: cli.batch,
        producers: cli.producers,
        single_writers: cli.writers.clone(),
        single_events: cli.single_events,
        single_seconds: cli.single_seconds,
        queries: cli.queries,
        window_secs: cli.window_secs,
        seed: cli.seed,
        // A twentieth of the bulk load, at most ten batches, for the ingest-method trial.
        tune_batches: (cli.events / cli.batch.max(1) as u64 / 20).clamp(1, 10) as usize,
        ..Options::default()
    };
    let mut engines = Vec::new();
    if !cli.no_sealog {
        engines.push(EngineSpec::Sealog(
            work.join("sealog"),
            !cli.sealog_plain_segments,
        ));
    }
    if let (true, Some(conninfo)) = (cli.sealog_pg, &cli.pg) {
        for servers in [1, 2] {
            let state = work.join(format!("sealog-pg-{servers}"));
            engines.push(EngineSpec::SealogPg(conninfo.clone(), state, servers));
        }
    }
    match &cli.pg {
        Some(conninfo) => engines.push(EngineSpec::Postgres(conninfo.clone())),
        None => eprintln!("sealog-bench: no --pg given: PostgreSQL is left out of this run"),
    }
    if !cli.no_sqlite {
        engines.push(EngineSpec::Sqlite(work.join("sqlite")));
    }
    let command = cli
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let report = sealog_bench::compare(&options, &engines, &work, &command);
    if !cli.keep {
        std::fs::remove_dir_all(&work)?;
    }
    let report = report?;
    std::fs::create_dir_all(&cli.out)?;
    let md = report.markdown(3);
    std::fs::write(cli.out.join("report.md"), &md)?;
    std::fs::write(
        cli.out.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    println!("{md}");
    eprintln!(
        "sealog-bench: wrote {} and {}",
        cli.out.join("report.md").display(),
        cli.out.join("report.json").display()
    );
    Ok(())
}
