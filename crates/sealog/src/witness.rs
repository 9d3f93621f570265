//! `sealog witness`: run a C2SP tlog-witness for the logs it is told to trust, and print its
//! key. Its state (key, and per log origin the checkpoint it cosigned last) lives in its own
//! directory, apart from any log's.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use sealog_merkle::cosignature::CosignatureVerifier;
use sealog_merkle::note::Verifier;
use sealog_server::witness::{WitnessPeer, WitnessState, load_or_create_key};

#[derive(clap::Subcommand)]
pub(crate) enum Witness {
    /// Serve `POST /add-checkpoint`: cosign a checkpoint of a trusted log only when it is
    /// consistent with the one cosigned before for that log.
    Serve {
        #[arg(long, default_value = "127.0.0.1:7710")]
        listen: SocketAddr,
        /// A log to witness: its origin and a verifier key its checkpoints are signed with.
        /// Repeatable; give one origin several keys to follow a key rotation.
        #[arg(long = "log", value_name = "ORIGIN=VKEY", required = true)]
        logs: Vec<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print the witness's verifier key (cosignature type 0x04), creating its key on first use.
    Key {
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(clap::Args)]
pub(crate) struct StateArgs {
    /// The witness's own directory: its key and what it cosigned.
    #[arg(long, default_value = "./sealog-witness")]
    state: PathBuf,
    /// The witness's name, set when its key is created (default: a random
    /// `sealog.witness/…`).
    #[arg(long)]
    name: Option<String>,
}

/// `ORIGIN=VKEY` pairs, grouped by origin; each key must name its origin.
fn logs(args: &[String]) -> anyhow::Result<HashMap<String, Vec<Verifier>>> {
    let mut out: HashMap<String, Vec<Verifier>> = HashMap::new();
    for a in args {
        let Some((origin, vkey)) = a.split_once('=') else {
            bail!("--log {a:?}: expected ORIGIN=VKEY");
        };
        let vkey = crate::tlog::read_verifier_key(Some(vkey))?.unwrap_or_default();
        let key = Verifier::parse(&vkey).with_context(|| format!("--log {origin}: the key"))?;
        if key.name() != origin {
            bail!(
                "--log {origin}: the key is named {:?}; a log's checkpoints are signed under its origin",
                key.name()
            );
        }
        out.entry(origin.to_string()).or_default().push(key);
    }
    Ok(out)
}

pub(crate) fn run(w: &Witness) -> anyhow::Result<ExitCode> {
    match w {
        Witness::Key { state } => {
            let key = load_or_create_key(&state.state, state.name.as_deref())?;
            say!("{}", key.verifier().to_vkey())?;
            Ok(ExitCode::SUCCESS)
        }
        Witness::Serve {
            listen,
            logs: log_args,
            state,
        } => {
            sealog_server::init_logging(sealog_server::LogFormat::Text);
            let logs = logs(log_args)?;
            let witness = Arc::new(WitnessState::open(
                &state.state,
                state.name.as_deref(),
                logs,
            )?);
            tell!(
                "sealog: witness {} ({})",
                witness.cosigner().name(),
                witness.cosigner().verifier().to_vkey()
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("sealog-witness")
                .build()?;
            runtime.block_on(async move {
                let stop = crate::serve::stop_signal()?;
                sealog_server::witness::serve(
                    *listen,
                    witness,
                    |addr| {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "listening on http://{addr}");
                        let _ = out.flush();
                    },
                    stop,
                )
                .await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `serve --witness URL=VKEY`: the witnesses a log submits its checkpoints to.
pub(crate) fn peers(args: &[String]) -> anyhow::Result<Vec<WitnessPeer>> {
    args.iter()
        .map(|a| {
            let Some((url, vkey)) = a.split_once('=') else {
                bail!("--witness {a:?}: expected URL=VKEY");
            };
            if !url.starts_with("http://") {
                bail!(
                    "--witness {url}: witnesses are reached over http:// (put TLS in front of it)"
                );
            }
            let vkey = crate::tlog::read_verifier_key(Some(vkey))?.unwrap_or_default();
            let verifier = CosignatureVerifier::parse(&vkey)
                .with_context(|| format!("--witness {url}: the witness's key"))?;
            Ok(WitnessPeer {
                url: url.to_string(),
                verifier,
            })
        })
        .collect()
}

/// `verify --witness VKEY`: a witness's key, or a file holding it.
pub(crate) fn verifiers(args: &[String]) -> anyhow::Result<Vec<CosignatureVerifier>> {
    args.iter()
        .map(|a| {
            let vkey = crate::tlog::read_verifier_key(Some(a))?.unwrap_or_default();
            CosignatureVerifier::parse(&vkey).with_context(|| format!("--witness {a}"))
        })
        .collect()
}
