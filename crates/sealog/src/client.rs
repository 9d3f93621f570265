//! Client mode: `--url URL --key KEY` sends a command to a server instead of opening a data
//! directory, and prints exactly what the embedded mode prints (records byte for byte, the
//! same result lines, the same exit codes): `append`, `get`, `query`, `state`, `quarantine`,
//! `checkpoint`, `prove`, and `verify`, which rebuilds the tree from the server's entry
//! bundles.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
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
        Client::new(url, self.key.clone())
    }
}

pub(crate) struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The `error.message` of an error body, or the body as text.
    pub(crate) fn message(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

impl Client {
    pub(crate) fn new(url: &str, key: Option<String>) -> anyhow::Result<Self> {
        if !url.starts_with("http://") {
            bail!(
                "--url {url:?}: client mode speaks http:// (terminate TLS in front of it, or use the server's https with another client)"
            );
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            key,
            agent,
        })
    }

    fn auth(&self) -> Option<String> {
        self.key.as_ref().map(|k| format!("Bearer {k}"))
    }

    fn finish(resp: ureq::http::Response<ureq::Body>) -> anyhow::Result<Reply> {
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .context("reading the server's answer")?;
        Ok(Reply { status, body })
    }

    pub(crate) fn get(&self, path_and_query: &str) -> anyhow::Result<Reply> {
        let url = format!("{}{path_and_query}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        let resp = req.call().with_context(|| format!("GET {url}"))?;
        Self::finish(resp)
    }

    /// A text resource (a checkpoint, a key): its body on 200, the server's message otherwise.
    pub(crate) fn text(&self, path: &str) -> anyhow::Result<String> {
        let reply = self.get(path)?;
        if reply.status != 200 {
            return Err(fail(&reply));
        }
        String::from_utf8(reply.body).context("the server's answer is not UTF-8")
    }

    /// Raw bytes (a tile, an entry bundle).
    pub(crate) fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let reply = self.get(path)?;
        if reply.status != 200 {
            return Err(fail(&reply));
        }
        Ok(reply.body)
    }

    /// Streams a resource into `dest` (written aside, then renamed), never holding it whole.
    pub(crate) fn download(&self, path: &str, dest: &std::path::Path) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        let resp = req.call().with_context(|| format!("GET {url}"))?;
        if resp.status().as_u16() != 200 {
            return Err(fail(&Self::finish(resp)?));
        }
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dest.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            let mut body = resp.into_body();
            std::io::copy(&mut body.with_config().limit(u64::MAX).reader(), &mut file)?;
            file.sync_all()?;
            std::fs::rename(&tmp, dest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("GET {url} into {}", dest.display()))
    }

    pub(crate) fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.post(&url).header("Content-Type", content_type);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", a);
        }
        let resp = req.send(body).with_context(|| format!("POST {url}"))?;
        Self::finish(resp)
    }
}

/// Percent-encodes a path segment.
pub(crate) fn path_segment(s: &str) -> String {
    encode(s)
}

/// Percent-encodes a query component.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn fail(reply: &Reply) -> anyhow::Error {
    anyhow::anyhow!("the server answered {}: {}", reply.status, reply.message())
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
        return Err(fail(&reply));
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
            eprintln!("sealog: no record {id}");
            Ok(ExitCode::from(1))
        }
        _ => Err(fail(&reply)),
    }
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
    next_cursor: Option<String>,
}

fn query_string(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
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
        eprintln!("sealog: more records: continue with --cursor {c}");
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
    println!("{state}");
    Ok(if state["status"] == "absent" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sealog checkpoint [--verifier-key]` against a server.
pub(crate) fn checkpoint(client: &Client, key: bool) -> anyhow::Result<ExitCode> {
    if key {
        print!("{}", client.text("/checkpoint/key")?);
    } else {
        print!("{}", client.text("/checkpoint")?);
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
        eprintln!("sealog: {}", reply.message());
        return Ok(ExitCode::from(1));
    }
    if reply.status != 200 {
        return Err(fail(&reply));
    }
    let proof: Value = serde_json::from_slice(&reply.body).context("the server's proof")?;
    println!("{proof}");
    Ok(ExitCode::SUCCESS)
}

/// What a remote verification checked.
pub(crate) struct RemoteReport {
    pub(crate) records: u64,
    pub(crate) root: sealog_merkle::Hash,
    pub(crate) verifier: String,
    pub(crate) since_size: Option<u64>,
}

/// Checks the server's checkpoint signature with `key`, then re-reads every record of its
/// tree from the C2SP entry bundles, checks each (canonical form, `record_id`, seq), rebuilds
/// the tree and compares its root with the checkpoint's, and with `since`'s on the way.
pub(crate) fn verify_tree(
    client: &Client,
    key: &str,
    since: Option<&str>,
    progress: &dyn Fn(u64, u64),
) -> Result<RemoteReport, VerifyFailure> {
    use sealog_merkle::checkpoint::Checkpoint;
    use sealog_merkle::note::{self, Verifier};
    let failed = |location: &str, message: String| VerifyFailure {
        location: location.to_string(),
        message,
    };
    let verifier = Verifier::parse(key).map_err(|e| failed("verifier key", e.to_string()))?;
    let open = |text: &str, what: &str| -> Result<Checkpoint, VerifyFailure> {
        let opened =
            note::open(text, &[&verifier]).map_err(|e| failed(what, format!("signature: {e}")))?;
        Checkpoint::parse(&opened.text).map_err(|e| failed(what, format!("checkpoint body: {e}")))
    };
    let note_text = client
        .text("/checkpoint")
        .map_err(|e| failed("/checkpoint", format!("{e:#}")))?;
    let cp = open(&note_text, "the server's checkpoint")?;
    let since = since.map(|t| open(t, "--since checkpoint")).transpose()?;
    if let Some(s) = &since
        && s.size > cp.size
    {
        return Err(failed(
            "the server's checkpoint",
            format!(
                "size {} is smaller than the --since checkpoint's {}: the log was rewound",
                cp.size, s.size
            ),
        ));
    }
    let mut frontier = sealog_merkle::Frontier::new();
    let mut bytes_total = 0u64;
    let mut index = 0u64;
    while frontier.size() < cp.size {
        let width = (cp.size - index * 256).min(256) as u16;
        let path = format!("/{}", sealog_merkle::tiles::entries_path(index, width));
        let bundle = client
            .bytes(&path)
            .map_err(|e| failed(&path, format!("{e:#}")))?;
        bytes_total += bundle.len() as u64;
        let mut at = 0usize;
        for k in 0..u64::from(width) {
            let seq = index * 256 + k;
            let len = bundle
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or_else(|| failed(&path, format!("entry {k} is cut short")))?;
            let record = bundle
                .get(at + 2..at + 2 + len)
                .ok_or_else(|| failed(&path, format!("entry {k} is cut short")))?;
            at += 2 + len;
            let stored_seq = sealog_model::record::read_stored(record, |s| s.seq)
                .map_err(|m| failed(&format!("record {seq}"), m))?;
            if stored_seq != seq {
                return Err(failed(
                    &format!("record {seq}"),
                    format!(
                        "record says seq {stored_seq}: records were reordered, removed or inserted"
                    ),
                ));
            }
            frontier.push(sealog_merkle::leaf_hash(record));
            if let Some(s) = since.as_ref().filter(|s| s.size == frontier.size())
                && frontier.root() != s.root
            {
                return Err(failed(
                    &format!("record {seq}"),
                    format!(
                        "the tree of size {} does not match the --since checkpoint: history was changed",
                        s.size
                    ),
                ));
            }
        }
        if at != bundle.len() {
            return Err(failed(&path, "bytes after the last entry".into()));
        }
        progress(frontier.size(), bytes_total);
        index += 1;
    }
    if frontier.root() != cp.root {
        return Err(failed(
            "the server's checkpoint",
            format!(
                "the tree rebuilt from {} records does not match the signed root",
                cp.size
            ),
        ));
    }
    Ok(RemoteReport {
        records: cp.size,
        root: cp.root,
        verifier: verifier.to_vkey(),
        since_size: since.map(|s| s.size),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(super::encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
