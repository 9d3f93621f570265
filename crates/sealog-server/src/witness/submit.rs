//! The log's side of witnessing: each configured witness gets every new checkpoint with a
//! consistency proof from the size it cosigned last, on a task of its own, so a slow or
//! absent witness delays only its own cosignatures — never an append, never another witness.
//! Cosignatures are checked, kept with their checkpoint (`checkpoints/cosigned`), and a
//! checkpoint with a quorum of them is final: it is what `/checkpoint` serves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealog_ledger::{Ledger, SignedCheckpoint};
use sealog_merkle::cosignature::{CosignatureVerifier, add_signatures, split_note};
use sealog_merkle::witness::AddCheckpoint;
use serde::Serialize;

/// How often a witness's task looks for a newer checkpoint.
const POLL: Duration = Duration::from_millis(200);
/// How often a grown log gets a checkpoint for the witnesses.
const SIGN_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between attempts at a failing witness.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A witness the log submits its checkpoints to: its `add-checkpoint` URL prefix and key.
#[derive(Debug, Clone)]
pub struct WitnessPeer {
    pub url: String,
    pub verifier: CosignatureVerifier,
}

#[derive(Debug, Clone, Default)]
pub struct WitnessConfig {
    pub peers: Vec<WitnessPeer>,
    /// Cosignatures that make a checkpoint final (0: all the peers).
    pub quorum: usize,
}

impl WitnessConfig {
    pub fn quorum(&self) -> usize {
        if self.quorum == 0 {
            self.peers.len()
        } else {
            self.quorum
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PeerStatus {
    pub name: String,
    pub url: String,
    /// The size of the newest checkpoint this witness cosigned for this log.
    pub cosigned_size: Option<u64>,
    /// Why the last attempt failed, until one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub failures: u64,
}

/// What `/readyz` shows and `/checkpoint` serves.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WitnessStatus {
    pub quorum: usize,
    pub witnesses: Vec<PeerStatus>,
    /// The newest checkpoint with a quorum of cosignatures, as a note carrying them.
    #[serde(skip)]
    pub final_note: Option<String>,
    pub final_size: Option<u64>,
    /// Cosignatures gathered for the newest checkpoint, as a note.
    #[serde(skip)]
    pending: Option<(u64, String)>,
}

impl WitnessStatus {
    /// The state a restart starts from: what the kept cosigned checkpoints say.
    pub(crate) fn load(config: &WitnessConfig, ledger: &Ledger) -> Result<Self, String> {
        let given: Vec<_> = config.peers.iter().map(|p| &p.verifier).collect();
        if let Some((a, b)) = CosignatureVerifier::repeated(&given) {
            return Err(format!(
                "witnesses {} and {} are one witness (the same name or key): each witness counts once toward a quorum",
                a.to_vkey(),
                b.to_vkey()
            ));
        }
        let kept = ledger.cosigned().map_err(|e| e.to_string())?;
        let mut status = WitnessStatus {
            quorum: config.quorum(),
            witnesses: config
                .peers
                .iter()
                .map(|p| PeerStatus {
                    name: p.verifier.name().to_string(),
                    url: p.url.clone(),
                    cosigned_size: None,
                    error: None,
                    failures: 0,
                })
                .collect(),
            final_note: None,
            final_size: None,
            pending: None,
        };
        for note in kept {
            let Some(size) = size_of(&note) else { continue };
            let by = cosigners(config, &note);
            for (i, peer) in status.witnesses.iter_mut().enumerate() {
                if by.contains(&i) && peer.cosigned_size.is_none_or(|s| size > s) {
                    peer.cosigned_size = Some(size);
                }
            }
            status.offer(size, note, by.len());
        }
        Ok(status)
    }

    /// A kept note that `cosigned_by` of the configured witnesses cosigned becomes the final
    /// checkpoint once that is a quorum, unless a larger one already is.
    fn offer(&mut self, size: u64, note: String, cosigned_by: usize) {
        if cosigned_by >= self.quorum && self.final_size.is_none_or(|f| size >= f) {
            self.final_size = Some(size);
            self.final_note = Some(note);
            metrics::gauge!("sealog_checkpoint_final_size").set(size as f64);
        }
    }
}

fn size_of(note: &str) -> Option<u64> {
    note.split('\n').nth(1)?.parse().ok()
}

/// The indexes of the configured witnesses with a valid cosignature on `note`.
fn cosigners(config: &WitnessConfig, note: &str) -> Vec<usize> {
    let Ok((text, _)) = split_note(note) else {
        return Vec::new();
    };
    config
        .peers
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.verifier.find(text, note), Ok(Some(_))))
        .map(|(i, _)| i)
        .collect()
}

/// Runs one task per witness until the returned handles are aborted.
pub(crate) fn run_submitter(
    config: WitnessConfig,
    ledger: Arc<Ledger>,
    status: Arc<Mutex<WitnessStatus>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let config = Arc::new(config);
    let keeping = Arc::new(tokio::sync::Mutex::new(()));
    let signer = tokio::spawn(sign_when_grown(ledger.clone()));
    std::iter::once(signer)
        .chain((0..config.peers.len()).map(|i| {
            tokio::spawn(peer_task(
                config.clone(),
                i,
                ledger.clone(),
                status.clone(),
                keeping.clone(),
            ))
        }))
        .collect()
}

/// The writer signs a checkpoint when it commits a second or more after the last one; a log
/// that then goes quiet would leave its newest records unwitnessed, so a checkpoint is asked
/// for each second while the log has grown past the newest.
async fn sign_when_grown(ledger: Arc<Ledger>) {
    loop {
        tokio::time::sleep(SIGN_EVERY).await;
        let l = ledger.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.checkpoint()).await {
            tracing::warn!(error = %e, "cannot sign a checkpoint for the witnesses");
        }
    }
}

enum Attempt {
    Cosigned(String),
    /// The witness cosigned another size last: try again from it.
    Conflict(u64),
    Failed(&'static str, String),
}

async fn peer_task(
    config: Arc<WitnessConfig>,
    i: usize,
    ledger: Arc<Ledger>,
    status: Arc<Mutex<WitnessStatus>>,
    // One keeper at a time: each adds its cosignature to what the others gathered.
    keeping: Arc<tokio::sync::Mutex<()>>,
) {
    let peer = config.peers[i].clone();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(super::SUBMIT_TIMEOUT))
        .build()
        .into();
    let name = peer.verifier.name().to_string();
    let mut old = status.lock().expect("witness status").witnesses[i]
        .cosigned_size
        .unwrap_or(0);
    let mut done: Option<u64> = None;
    let mut backoff = POLL;
    loop {
        let Some(cp) = ledger.latest_checkpoint() else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        if done == Some(cp.size) {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let attempt = submit(&agent, &peer, &ledger, &cp, old).await;
        let outcome = match attempt {
            Attempt::Cosigned(lines) => {
                let _one = keeping.lock().await;
                match keep(&config, &peer, &ledger, &status, &cp, &lines).await {
                    Ok(()) => {
                        old = cp.size;
                        done = Some(cp.size);
                        backoff = POLL;
                        let mut s = status.lock().expect("witness status");
                        let p = &mut s.witnesses[i];
                        p.cosigned_size = Some(cp.size);
                        p.error = None;
                        metrics::gauge!("sealog_witness_cosigned_size", "witness" => name.clone())
                            .set(cp.size as f64);
                        "cosigned"
                    }
                    Err(e) => fail_peer(&status, i, &name, "bad_cosignature", e),
                }
            }
            Attempt::Conflict(size) if size <= cp.size && size != old => {
                // Its size is news to us (a restart, another server of this log): once more
                // right away, from there.
                old = size;
                metrics::counter!("sealog_witness_requests_total", "witness" => name.clone(), "outcome" => "conflict").increment(1);
                continue;
            }
            Attempt::Conflict(size) => fail_peer(
                &status,
                i,
                &name,
                "conflict",
                if size > cp.size {
                    format!(
                        "the witness cosigned size {size} of this log, past its newest checkpoint ({}): this log was rolled back or forked",
                        cp.size
                    )
                } else {
                    format!("the witness refuses old size {old} and names {size} again")
                },
            ),
            Attempt::Failed(kind, why) => fail_peer(&status, i, &name, kind, why),
        };
        metrics::counter!("sealog_witness_requests_total", "witness" => name.clone(), "outcome" => outcome).increment(1);
        if outcome == "cosigned" {
            continue;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn fail_peer(
    status: &Mutex<WitnessStatus>,
    i: usize,
    name: &str,
    kind: &'static str,
    why: String,
) -> &'static str {
    tracing::warn!(witness = name, outcome = kind, "witness: {why}");
    let mut s = status.lock().expect("witness status");
    let p = &mut s.witnesses[i];
    p.failures += 1;
    p.error = Some(why);
    kind
}

async fn submit(
    agent: &ureq::Agent,
    peer: &WitnessPeer,
    ledger: &Arc<Ledger>,
    cp: &SignedCheckpoint,
    old: u64,
) -> Attempt {
    if old > cp.size {
        return Attempt::Conflict(old);
    }
    let proof = if old == 0 || old == cp.size {
        Vec::new()
    } else {
        let (l, size) = (ledger.clone(), cp.size);
        match tokio::task::spawn_blocking(move || l.consistency_proof(old, size)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Attempt::Failed("proof", e.to_string()),
            Err(e) => return Attempt::Failed("proof", e.to_string()),
        }
    };
    let body = AddCheckpoint {
        old,
        proof,
        checkpoint: cp.note.clone(),
    }
    .to_body();
    let url = format!("{}/add-checkpoint", peer.url.trim_end_matches('/'));
    let agent = agent.clone();
    let answer = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
        let resp = agent
            .post(&url)
            .content_type("text/plain")
            .send(body.as_bytes())
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
        Ok((status, text))
    })
    .await;
    let (status, text) = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Attempt::Failed("unreachable", e),
        Err(e) => return Attempt::Failed("unreachable", e.to_string()),
    };
    match status {
        200 => Attempt::Cosigned(text),
        409 => match text.trim_end_matches('\n').parse::<u64>() {
            Ok(size) => Attempt::Conflict(size),
            Err(_) => Attempt::Failed(
                "refused",
                format!("409 without a tree size: {:?}", text.trim()),
            ),
        },
        s => Attempt::Failed("refused", format!("{s}: {}", text.trim())),
    }
}

/// Checks the witness's answer against its key and keeps the checkpoint with every
/// cosignature gathered for it so far.
async fn keep(
    config: &WitnessConfig,
    peer: &WitnessPeer,
    ledger: &Arc<Ledger>,
    status: &Mutex<WitnessStatus>,
    cp: &SignedCheckpoint,
    answer: &str,
) -> Result<(), String> {
    let (text, _) = split_note(&cp.note).map_err(|e| e.to_string())?;
    // Only this witness's lines are kept; anything else in the answer is ignored.
    let prefix = format!("\u{2014} {} ", peer.verifier.name());
    let lines: String = answer
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    match peer.verifier.find(text, &add_signatures(&cp.note, &lines)) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "the answer holds no cosignature by this witness's key: {:?}",
                answer.trim()
            ));
        }
        Err(e) => return Err(format!("a cosignature that does not verify: {e}")),
    }
    let note = {
        let s = status.lock().expect("witness status");
        let base = match &s.pending {
            Some((size, note)) if *size == cp.size => note.clone(),
            _ => cp.note.clone(),
        };
        add_signatures(&base, &lines)
    };
    let (l, n) = (ledger.clone(), note.clone());
    tokio::task::spawn_blocking(move || l.add_cosigned(&n))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("keeping the cosigned checkpoint: {e}"))?;
    let by = cosigners(config, &note);
    let mut s = status.lock().expect("witness status");
    if s.pending.as_ref().is_none_or(|(size, _)| *size <= cp.size) {
        s.pending = Some((cp.size, note.clone()));
    }
    s.offer(cp.size, note, by.len());
    Ok(())
}
