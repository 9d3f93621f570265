//! The comparison's report: every engine's figures, Sealog's ratio to each peer, the
//! machine's limits and Sealog's fraction of them, and each target met or missed.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::engines::Attempt;
use crate::machine::Machine;
use crate::run::{EngineReport, Options};

/// Every query's p99 in the report is held against this peer's p50.
const QUERY_PEER: &str = "postgres";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub command: String,
    /// Load averages when the run started and ended (`uptime`).
    pub load_before: String,
    pub load_after: String,
    pub options: Options,
    pub machine: Machine,
    /// Mean size of a decision-log event as produced, bytes.
    pub event_bytes_mean: f64,
    pub engines: Vec<EngineReport>,
    pub figures: Vec<Figure>,
    pub machine_fractions: Vec<Fraction>,
    pub targets: Vec<Target>,
}

/// One row of the comparison table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    pub higher_is_better: bool,
    /// (engine, value); `None` with the engine's reason when it could not be measured.
    pub values: Vec<(String, Option<f64>)>,
    pub notes: Vec<(String, String)>,
    /// (peer, how many times better Sealog is: >1 better, <1 worse).
    pub sealog_advantage: Vec<(String, Option<f64>)>,
}

impl Figure {
    pub fn value(&self, engine: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(e, _)| e == engine)
            .and_then(|(_, v)| *v)
    }

    pub fn advantage(&self, peer: &str) -> Option<f64> {
        self.sealog_advantage
            .iter()
            .find(|(e, _)| e == peer)
            .and_then(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fraction {
    pub limit: String,
    pub machine: String,
    pub sealog: String,
    pub fraction: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// `None` when the figure could not be measured.
    pub met: Option<bool>,
    /// Measured ÷ required, in the direction where ≥ 1 means met.
    pub ratio_to_target: Option<f64>,
}

fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 3 - x.abs().log10().ceil() as i32;
    let m = 10f64.powi(digits.max(0));
    (x * m).round() / m
}

impl Report {
    /// Assembles the report from the engines' results.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        date: String,
        command: String,
        load_before: String,
        load_after: String,
        options: Options,
        machine: Machine,
        event_bytes_mean: f64,
        engines: Vec<EngineReport>,
    ) -> Self {
        let mut figures = Vec::new();
        let mut add = |name: String,
                       unit: &str,
                       higher: bool,
                       get: &dyn Fn(&EngineReport) -> Result<f64, String>| {
            let mut values = Vec::new();
            let mut notes = Vec::new();
            for e in &engines {
                match get(e) {
                    Ok(v) => values.push((e.name.clone(), Some(v))),
                    Err(why) => {
                        values.push((e.name.clone(), None));
                        notes.push((e.name.clone(), why));
                    }
                }
            }
            let sealog = values
                .iter()
                .find(|(n, _)| n == "sealog")
                .and_then(|(_, v)| *v);
            let sealog_advantage = values
                .iter()
                .filter(|(n, _)| n != "sealog")
                .map(|(n, v)| {
                    let adv = match (sealog, v) {
                        (Some(s), Some(p)) if higher && *p > 0.0 => Some(s / p),
                        (Some(s), Some(p)) if !higher && s > 0.0 => Some(p / s),
                        _ => None,
                    };
                    (n.clone(), adv.map(round_sig))
                })
                .collect();
            figures.push(Figure {
                name,
                unit: unit.to_string(),
                higher_is_better: higher,
                values,
                notes,
                sealog_advantage,
            });
        };
        add(
            format!(
                "bulk ingest, {} events in batches of {}",
                fmt_num(options.events as f64),
                fmt_num(options.batch as f64)
            ),
            "events/s",
            true,
            &|e| Ok(e.bulk.per_s),
        );
        add("bulk ingest bandwidth".into(), "MiB/s", true, &|e| {
            Ok(e.bulk.mib_s)
        });
        for (k, w) in options.single_writers.iter().enumerate() {
            add(
                format!(
                    "single-event appends, {w} writer{}",
                    if *w == 1 { "" } else { "s" }
                ),
                "events/s",
                true,
                &|e| {
                    e.single
                        .get(k)
                        .map(|s| s.per_s)
                        .ok_or_else(|| "not run".into())
                },
            );
            add(
                format!(
                    "single-event latency p99, {w} writer{}",
                    if *w == 1 { "" } else { "s" }
                ),
                "ms",
                false,
                &|e| {
                    e.single
                        .get(k)
                        .map(|s| s.p99_ms)
                        .ok_or_else(|| "not run".into())
                },
            );
        }
        add(
            format!(
                "100-byte entries, {} in batches of {}",
                fmt_num(options.entries as f64),
                fmt_num(options.batch as f64)
            ),
            "entries/s",
            true,
            &|e| Ok(e.entries.per_s),
        );
        for shape in crate::run::SHAPES {
            for (p, label) in [(50, "p50"), (99, "p99")] {
                add(
                    format!("query by {}, {label}", shape.replace('_', " ")),
                    "µs",
                    false,
                    &|e| {
                        let q = e
                            .queries
                            .iter()
                            .find(|q| q.shape == shape)
                            .ok_or_else(|| "not run".to_string())?;
                        let v = if p == 50 { q.p50_us } else { q.p99_us };
                        v.ok_or_else(|| q.note.clone().unwrap_or_else(|| "n/a".into()))
                    },
                );
            }
        }
        add(
            "bytes on disk per record (incl. indexes)".into(),
            "bytes",
            false,
            &|e| Ok(e.bytes_per_record),
        );

        let find = |name: &str| figures.iter().find(|f| f.name.starts_with(name));
        let sealog = engines.iter().find(|e| e.name == "sealog");
        let machine_fractions = sealog
            .map(|s| {
                let one_writer = s.single.iter().find(|f| f.writers == 1);
                vec![
                    Fraction {
                        limit: "sequential write + fdatasync".into(),
                        machine: format!("{} MiB/s", fmt_num(machine.seq_write_fsync_mib_s)),
                        sealog: format!("bulk ingest {} MiB/s", s.bulk.mib_s),
                        fraction: (machine.seq_write_fsync_mib_s > 0.0)
                            .then(|| round_sig(s.bulk.mib_s / machine.seq_write_fsync_mib_s)),
                    },
                    Fraction {
                        limit: "SHA-256 of 600-byte inputs, one core".into(),
                        machine: format!("{} MiB/s", fmt_num(machine.sha256_mib_s_per_core)),
                        sealog: format!(
                            "bulk ingest {} MiB/s on {} producers",
                            s.bulk.mib_s, options.producers
                        ),
                        fraction: (machine.sha256_mib_s_per_core > 0.0).then(|| {
                            round_sig(
                                s.bulk.mib_s
                                    / (machine.sha256_mib_s_per_core * options.producers as f64),
                            )
                        }),
                    },
                    Fraction {
                        limit: "fdatasync of a 4 KiB append, p50, just before Sealog's single-event levels".into(),
                        machine: format!("{:.3} ms", s.fsync_ms_before_single.0),
                        sealog: one_writer.map_or("not run".into(), |f| {
                            format!("one writer's append p50 {} ms", f.p50_ms)
                        }),
                        // Here the fraction is the limit over Sealog's time: 1 would mean an
                        // append costs exactly one fsync.
                        fraction: one_writer
                            .filter(|f| f.p50_ms > 0.0)
                            .map(|f| round_sig(s.fsync_ms_before_single.0 / f.p50_ms)),
                    },
                ]
            })
            .unwrap_or_default();

        let mut targets = Vec::new();
        let mut relative = |name: String, figure: Option<&Figure>, peer: &str, times: f64| {
            let adv = figure.and_then(|f| f.advantage(peer));
            targets.push(Target {
                target: format!("≥ {times}× {peer}"),
                measured: adv.map_or("n/a".into(), |a| format!("{a}× {peer}")),
                met: adv.map(|a| a >= times),
                ratio_to_target: adv.map(|a| round_sig(a / times)),
                name,
            });
        };
        let bulk = find("bulk ingest,");
        relative(
            "bulk durable ingest vs PostgreSQL".into(),
            bulk,
            "postgres",
            10.0,
        );
        relative("bulk durable ingest vs SQLite".into(), bulk, "sqlite", 5.0);
        let single64 = options
            .single_writers
            .contains(&64)
            .then(|| find("single-event appends, 64 writers"))
            .flatten();
        relative(
            "single-event appends, 64 writers".into(),
            single64,
            "postgres",
            3.0,
        );
        let fraction = machine_fractions.first().and_then(|f| f.fraction);
        targets.push(Target {
            name: "bulk ingest vs the disk's sequential fsync'd bandwidth".into(),
            target: "≥ 65%".into(),
            measured: fraction.map_or("n/a".into(), |f| format!("{:.1}%", f * 100.0)),
            met: fraction.map(|f| f >= 0.65),
            ratio_to_target: fraction.map(|f| round_sig(f / 0.65)),
        });
        let entries = sealog.map(|s| s.entries.per_s);
        targets.push(Target {
            name: format!("100-byte entries on {} cores", machine.cores),
            target: "≥ 500,000 entries/s (immudb's 1.2M/s on 4 cores, per core)".into(),
            measured: entries.map_or("n/a".into(), |e| format!("{} entries/s", fmt_num(e))),
            met: entries.map(|e| e >= 500_000.0),
            ratio_to_target: entries.map(|e| round_sig(e / 500_000.0)),
        });
        for shape in crate::run::SHAPES {
            let label = shape.replace('_', " ");
            let p99 = find(&format!("query by {label}, p99")).and_then(|f| f.value("sealog"));
            let peer_p50 =
                find(&format!("query by {label}, p50")).and_then(|f| f.value(QUERY_PEER));
            let note = find(&format!("query by {label}, p99")).and_then(|f| {
                f.notes
                    .iter()
                    .find(|(e, _)| e == "sealog")
                    .map(|(_, n)| n.clone())
            });
            targets.push(Target {
                name: format!("query by {label}: Sealog p99 vs PostgreSQL p50"),
                target: format!(
                    "≤ {}",
                    peer_p50.map_or("n/a".into(), |v| format!("{} µs", fmt_num(v)))
                ),
                measured: match (p99, note) {
                    (Some(v), _) => format!("{} µs", fmt_num(v)),
                    (None, Some(n)) => n,
                    (None, None) => "n/a".into(),
                },
                met: p99.zip(peer_p50).map(|(s, p)| s <= p),
                ratio_to_target: p99
                    .zip(peer_p50)
                    .filter(|(s, _)| *s > 0.0)
                    .map(|(s, p)| round_sig(p / s)),
            });
        }
        // Sealog on its PostgreSQL backend (one server, two), when it ran: within 2× of the
        // peer's best bulk load, at least 2× its INSERT per event at 64 writers, queries
        // within 2× of the embedded store.
        for backend in ["sealog-pg", "sealog-pg-2"] {
            if !engines.iter().any(|e| e.name == backend) {
                continue;
            }
            let mut versus = |name: String, figure: Option<&Figure>, of: &str, times: f64| {
                let ratio = figure.and_then(|f| {
                    let (b, o) = (f.value(backend)?, f.value(of)?);
                    let r = if f.higher_is_better { b / o } else { o / b };
                    (r.is_finite() && r > 0.0).then(|| round_sig(r))
                });
                let ask = if times >= 1.0 {
                    format!("≥ {times}× {of}")
                } else {
                    format!("within {}× of {of}", round_sig(1.0 / times))
                };
                targets.push(Target {
                    name: format!("{backend}: {name}"),
                    target: ask,
                    measured: ratio.map_or("n/a".into(), |r| format!("{r}× {of}")),
                    met: ratio.map(|r| r >= times),
                    ratio_to_target: ratio.map(|r| round_sig(r / times)),
                });
            };
            versus("bulk ingest".into(), bulk, "postgres", 0.5);
            versus(
                "single-event appends, 64 writers".into(),
                single64,
                "postgres",
                2.0,
            );
            for shape in crate::run::SHAPES {
                let label = shape.replace('_', " ");
                versus(
                    format!("query by {label}, p99"),
                    find(&format!("query by {label}, p99")),
                    "sealog",
                    0.5,
                );
            }
        }
        let bytes = find("bytes on disk per record");
        let s_bytes = bytes.and_then(|f| f.value("sealog"));
        let p_bytes = bytes.and_then(|f| f.value("postgres"));
        targets.push(Target {
            name: "bytes per record on disk vs PostgreSQL".into(),
            target: format!("≤ {}", p_bytes.map_or("n/a".into(), fmt_num)),
            measured: s_bytes.map_or("n/a".into(), fmt_num),
            met: s_bytes.zip(p_bytes).map(|(s, p)| s <= p),
            ratio_to_target: s_bytes
                .zip(p_bytes)
                .filter(|(s, _)| *s > 0.0)
                .map(|(s, p)| round_sig(p / s)),
        });

        Report {
            date,
            command,
            load_before,
            load_after,
            options,
            machine,
            event_bytes_mean,
            engines,
            figures,
            machine_fractions,
            targets,
        }
    }

    /// The report as markdown, headed at level `h` (e.g. 3 for `###`).
    pub fn markdown(&self, h: usize) -> String {
        let hh = "#".repeat(h);
        let mut m = String::new();
        let names: Vec<&str> = self.engines.iter().map(|e| e.name.as_str()).collect();
        let peers: Vec<&str> = names.iter().copied().filter(|n| *n != "sealog").collect();
        let o = &self.options;
        let _ = writeln!(m, "```sh\n{}\n```\n", self.command);
        let _ = writeln!(
            m,
            "Finished {} on {} cores; {} at the start, {} at the end. Events average {} bytes \
             as produced; {} events, {} entries, single-event levels of up to {} events or {} s, \
             {} queries per shape (limit {}, time windows of {} s), {} producer threads, seed {}.\n",
            self.date,
            self.machine.cores,
            self.load_before,
            self.load_after,
            fmt_num(self.event_bytes_mean),
            fmt_num(o.events as f64),
            fmt_num(o.entries as f64),
            fmt_num(o.single_events as f64),
            o.single_seconds,
            fmt_num(o.queries as f64),
            o.query_limit,
            o.window_secs,
            o.producers,
            o.seed
        );

        let _ = writeln!(m, "{hh} Machine limits, same run\n");
        let _ = writeln!(m, "| limit | measured | Sealog | Sealog's fraction |");
        let _ = writeln!(m, "|---|---|---|---|");
        for f in &self.machine_fractions {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                f.limit,
                f.machine,
                f.sealog,
                f.fraction
                    .map_or("n/a".into(), |x| format!("{:.1}%", x * 100.0))
            );
        }
        let _ = writeln!(
            m,
            "\nfdatasync of a 4 KiB append at the start of the run: p50 {:.3} ms, p99 {:.3} ms \
             (each engine's own measurements, just before its bulk ingest and its single-event \
             levels, are in the last table).\n",
            self.machine.fsync_ms_p50, self.machine.fsync_ms_p99
        );

        let _ = writeln!(m, "{hh} Figures\n");
        let _ = write!(m, "| figure | unit |");
        for n in &names {
            let _ = write!(m, " {n} |");
        }
        for p in &peers {
            let _ = write!(m, " Sealog vs {p} |");
        }
        let _ = write!(m, "\n|---|---|");
        for _ in 0..names.len() + peers.len() {
            let _ = write!(m, "---:|");
        }
        m.push('\n');
        for f in &self.figures {
            let _ = write!(m, "| {} | {} |", f.name, f.unit);
            for n in &names {
                let cell = match f.value(n) {
                    Some(v) => fmt_num(v),
                    None => f
                        .notes
                        .iter()
                        .find(|(e, _)| e == n)
                        .map_or("n/a".into(), |(_, why)| why.clone()),
                };
                let _ = write!(m, " {cell} |");
            }
            for p in &peers {
                let cell = f.advantage(p).map_or("—".into(), |a| format!("{a}×"));
                let _ = write!(m, " {cell} |");
            }
            m.push('\n');
        }
        let _ = writeln!(
            m,
            "\n\"Sealog vs X\" is how many times better Sealog is on that row (higher throughput, \
             or lower latency or size): above 1× Sealog is ahead, below 1× behind.\n"
        );

        let _ = writeln!(m, "{hh} Targets\n");
        let _ = writeln!(m, "| target | required | measured | met |");
        let _ = writeln!(m, "|---|---|---|---|");
        for t in &self.targets {
            let met = match (t.met, t.ratio_to_target) {
                (Some(true), _) => "**met**".to_string(),
                (Some(false), Some(r)) => format!("**missed** ({r}× of the target)"),
                (Some(false), None) => "**missed**".to_string(),
                (None, _) => "not measured".to_string(),
            };
            let _ = writeln!(m, "| {} | {} | {} | {met} |", t.name, t.target, t.measured);
        }

        let _ = writeln!(m, "\n{hh} Engines and checks\n");
        let _ = writeln!(
            m,
            "| engine | events stored / expected | entries stored / expected | re-ingested batch added | UPDATE | DELETE | fdatasync p50 before bulk / single-event |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|");
        for e in &self.engines {
            let refusal = |a: &Attempt| match a {
                Attempt::Refused(why) => format!("refused ({})", why.replace('|', "/")),
                Attempt::Allowed(what) => format!("**allowed** ({})", what.replace('|', "/")),
                Attempt::NotApplicable(why) => format!("n/a ({})", why.replace('|', "/")),
            };
            let _ = writeln!(
                m,
                "| {} | {} / {} | {} / {} | {} | {} | {} | {:.2} / {:.2} ms |",
                e.name,
                fmt_num(e.events_stored as f64),
                fmt_num(e.events_expected as f64),
                fmt_num(e.entries_stored as f64),
                fmt_num(e.entries_expected as f64),
                e.dedupe_readded,
                refusal(&e.tamper.update),
                refusal(&e.tamper.delete),
                e.fsync_ms_before_bulk.0,
                e.fsync_ms_before_single.0,
            );
        }
        m.push('\n');
        for e in &self.engines {
            let _ = writeln!(m, "- **{}**: {}", e.name, e.setup);
        }
        m
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else {
        format!("{}", round_sig(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(0.01234), "0.0123");
        assert_eq!(round_sig(56_789.0), 56_789.0);
    }
}
