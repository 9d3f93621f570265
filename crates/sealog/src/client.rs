//! Client mode: `--url URL --key KEY` sends `append`, `get` and `query` to a server and
//! prints exactly what the embedded mode prints (records byte for byte, the same result
//! lines, the same exit codes).

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Bodies up to this size go in one request; larger NDJSON is sent in pieces of about half.
const REQUEST_BYTES_MAX: usize = 16 << 20;

/// `--url` and `--key` of the commands that can talk to a server.
#[derive(clap::Args)]
pub(crate) struct Remote {
    /// Client mode: send this command to the server at URL instead of opening --data.
    #[arg(long, env = "SEALOG_URL")]
    pub(crate) url: Option<String>,
    /// Client mode: the API key (prefer the SEALOG_KEY environment variable: arguments are
    /// visible to other users of the machine).
    #[arg(long, env = "SEALOG_KEY", hide_env_values = true, requires = "url")]
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

/// `sealog append` against a server.
pub(crate) fn append(client: &Client, input: &mut dyn Read) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    input.read_to_end(&mut all)?;
    let pieces: Vec<&[u8]> = if all.len() <= REQUEST_BYTES_MAX {
        vec![&all]
    } else {
        split_lines(&all, REQUEST_BYTES_MAX / 2)
    };
    let mut out = std::io::stdout().lock();
    let mut refused = 0;
    for piece in pieces {
        let reply = client.post("/v1/events", "application/x-ndjson", piece)?;
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let Some(results) = body["results"].as_array() else {
            if reply.status == 400 || reply.status == 413 {
                bail!("input refused: {}", reply.message());
            }
            return Err(fail(&reply));
        };
        for r in results {
            if r["status"] == "rejected" {
                refused += 1;
            }
            writeln!(out, "{r}")?;
        }
    }
    out.flush()?;
    Ok(if refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Cuts NDJSON into pieces of about `target` bytes at line ends.
fn split_lines(all: &[u8], target: usize) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < all.len() {
        let mut end = (start + target).min(all.len());
        if end < all.len() {
            end = all[end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(all.len(), |p| end + p + 1);
        }
        pieces.push(&all[start..end]);
        start = end;
    }
    pieces
}

/// `sealog get` against a server.
pub(crate) fn get(client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let reply = client.get(&format!("/v1/records/{}", encode(id)))?;
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

/// `sealog query` against a server; `params` are the query's filters.
pub(crate) fn query(client: &Client, params: &[(String, String)]) -> anyhow::Result<ExitCode> {
    let qs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let reply = client.get(&format!("/v1/records?{}", qs.join("&")))?;
    if reply.status != 200 {
        return Err(fail(&reply));
    }
    let page: Page<'_> = serde_json::from_slice(&reply.body).context("the server's page")?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn split_lines_cuts_only_at_line_ends() {
        let text = b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n";
        let pieces = super::split_lines(text, 5);
        assert_eq!(pieces.concat(), text.to_vec());
        assert!(pieces.iter().all(|p| p.ends_with(b"\n")));
        assert_eq!(super::encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
