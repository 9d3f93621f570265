//! Client mode: `--url URL --key KEY` sends a command to a server instead of opening a data
//! directory, and prints exactly what the embedded mode prints (records byte for byte, the
//! same result lines, the same exit codes): `append`, `get`, `query`, `state`, `quarantine`,
//! `checkpoint`, `prove`, and `verify`, which rebuilds the tree from the server's entry
//! bundles.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sealog_client::query_string;
use sealog_ledger::VerifyFailure;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Bodies up to this size go in one request.
const REQUEST_BYTES_MAX: usize = 16 << 20;

/// `--url` and `--key` of the commands that can talk to a server.
#[derive(clap::Args)]
pub(crate) struct Remote {
    /// Client mode: send this command to the server at URL instead of opening --data.
    #[arg(long, env = "SEALOG_URL", global = true)]
    pub(crate) url: Option<String>,
    /// Client mode: the API key (prefer the SEALOG_KEY environment variable: arguments are
    /// visible to other users of the machine).
    #[arg(
        long,
        env = "SEALOG_KEY",
        hide_env_values = true,
        requires = "url",
        global = true
    )]
    pub(crate) key: Option<String>,
}

impl Remote {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let url = self.url.as_deref().context("client mode needs --url")?;
        // No time limit: an export's files may take long to arrive.
        Ok(Client::new(url, self.key.as_deref(), None)?)
    }
}

pub(crate) use sealog_client::{Client, encode};

/// Percent-encodes a path segment.
pub(crate) fn path_segment(s: &str) -> String {
    encode(s)
}

/// One group of `sealog append` against a server: one result per event, in order. Events
/// on one line go together as NDJSON; a multi-line event goes alone, as JSON; input that is
/// not an event is answered here exactly as the server would.
pub(crate) fn append_group(
    client: &Client,
    group: &[crate::stream::Item],
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::with_capacity(group.len());
    let mut batch: Vec<u8> = Vec::new();
    let mut batched = 0usize;
    let flush = |batch: &mut Vec<u8>, batched: &mut usize, out: &mut Vec<Value>| {
        if *batched > 0 {
            out.extend(post_events(
                client,
                "application/x-ndjson",
                batch,
                *batched,
            )?);
            batch.clear();
            *batched = 0;
        }
        anyhow::Ok(())
    };
    for item in group {
        match item {
            Ok(bytes)
                if !bytes.contains(&b'\n') && batch.len() + bytes.len() < REQUEST_BYTES_MAX =>
            {
                batch.extend_from_slice(bytes);
                batch.push(b'\n');
                batched += 1;
            }
            Ok(bytes) => {
                flush(&mut batch, &mut batched, &mut out)?;
                out.extend(post_events(client, "application/json", bytes, 1)?);
            }
            Err(e) => {
                flush(&mut batch, &mut batched, &mut out)?;
                let r =
                    sealog_ledger::Rejection::from(sealog_model::PrepareError::Input(e.clone()));
                out.push(r.to_json());
            }
        }
    }
    flush(&mut batch, &mut batched, &mut out)?;
    Ok(out)
}

/// Posts events and returns the server's `n` results.
fn post_events(
    client: &Client,
    content_type: &str,
    body: &[u8],
    n: usize,
) -> anyhow::Result<Vec<Value>> {
    let reply = client.post("/v1/events", content_type, body)?;
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let Some(results) = body["results"].as_array() else {
        if reply.status == 400 || reply.status == 413 {
            bail!("input refused: {}", reply.message());
        }
        return Err(reply.error().into());
    };
    anyhow::ensure!(
        results.len() == n,
        "the server answered {} results for {n} events",
        results.len()
    );
    Ok(results.clone())
}

/// `sealog get` against a server.
pub(crate) fn get(client: &Client, id: &str, sealed: bool) -> anyhow::Result<ExitCode> {
    let form = if sealed { "?form=sealed" } else { "" };
    let reply = client.get(&format!("/v1/records/{}{form}", encode(id)))?;
    match reply.status {
        200 => {
            let mut out = std::io::stdout().lock();
            out.write_all(&reply.body)?;
            out.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        404 => {
            tell!("sealog: no record {id}");
            Ok(ExitCode::from(1))
        }
        _ => Err(reply.error().into()),
    }
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
    next_cursor: Option<String>,
}

/// `sealog query` against a server; `params` are the query's filters.
pub(crate) fn query(client: &Client, params: &[(String, String)]) -> anyhow::Result<ExitCode> {
    print_records(client, "/v1/records", params)
}

/// `sealog quarantine` against a server.
pub(crate) fn quarantine(client: &Client, params: &[(String, String)]) -> anyhow::Result<ExitCode> {
    print_records(client, "/v1/quarantine", params)
}

fn print_records(
    client: &Client,
    path: &str,
    params: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    let body = client.bytes(&format!("{path}?{}", query_string(params)))?;
    let page: Page<'_> = serde_json::from_slice(&body).context("the server's page")?;
    let mut out = std::io::stdout().lock();
    for r in &page.records {
        out.write_all(r.get().as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if let Some(c) = page.next_cursor {
        tell!("sealog: more records: continue with --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `sealog state` against a server.
pub(crate) fn state(
    client: &Client,
    path: &str,
    params: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    let body = client.bytes(&format!("{path}?{}", query_string(params)))?;
    let state: Value = serde_json::from_slice(&body).context("the server's state")?;
    say!("{state}")?;
    Ok(if state["status"] == "absent" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sealog checkpoint [--verifier-key]` against a server.
pub(crate) fn checkpoint(client: &Client, key: bool) -> anyhow::Result<ExitCode> {
    if key {
        write!(std::io::stdout(), "{}", client.text("/checkpoint/key")?)?;
    } else {
        write!(std::io::stdout(), "{}", client.text("/checkpoint")?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sealog prove …` against a server: the proof as the server gives it.
pub(crate) fn prove(client: &Client, p: &crate::tlog::Prove) -> anyhow::Result<ExitCode> {
    let path = match *p {
        crate::tlog::Prove::Inclusion { seq, size } => match size {
            Some(size) => format!("/v1/proofs/inclusion?seq={seq}&size={size}"),
            None => format!("/v1/proofs/inclusion?seq={seq}"),
        },
        crate::tlog::Prove::Consistency { old, new } => {
            format!("/v1/proofs/consistency?from={old}&to={new}")
        }
    };
    let reply = client.get(&path)?;
    // Not in the log, or not in that tree: refused, as the local command answers.
    if reply.status == 404 || reply.status == 422 {
        tell!("sealog: {}", reply.message());
        return Ok(ExitCode::from(1));
    }
    if reply.status != 200 {
        return Err(reply.error().into());
    }
    let proof: Value = serde_json::from_slice(&reply.body).context("the server's proof")?;
    say!("{proof}")?;
    Ok(ExitCode::SUCCESS)
}

/// What a remote verification checked.
pub(crate) type RemoteReport = sealog_client::TreeReport;

/// Checks the server's checkpoint signature with `key`, then rebuilds its whole tree from
/// the entry bundles (`sealog_client::verify_tree`).
pub(crate) fn verify_tree(
    client: &Client,
    key: &str,
    since: Option<&str>,
    progress: &dyn Fn(u64, u64),
) -> Result<RemoteReport, VerifyFailure> {
    sealog_client::verify_tree(client, key, since, progress)
        .map_err(|(location, message)| VerifyFailure { location, message })
}
