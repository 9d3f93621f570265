//! A blocking HTTP client for Sealog's API: one keep-alive agent, a bearer key, and answers
//! read whole whatever their status (the caller decides what a status means).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::Error;

/// How long one request may take, connect to last byte, unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one Sealog server.
#[derive(Clone)]
pub struct Client {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

/// A server's answer: its status and its whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// The `error.message` of an error body, or the body as text.
    pub fn message(&self) -> String {
        self.error_member("message")
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> Option<String> {
        self.error_member("code")
    }

    fn error_member(&self, name: &str) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"][name].as_str().map(str::to_string))
    }

    /// This answer as an error, unless its status is 200.
    pub fn ok(self) -> Result<Vec<u8>, Error> {
        if self.status == 200 {
            Ok(self.body)
        } else {
            Err(self.error())
        }
    }

    /// This answer as an error: its status and the server's message.
    pub fn error(&self) -> Error {
        Error::Status {
            status: self.status,
            message: self.message(),
        }
    }
}

impl Client {
    /// A client of the server at `url` (`http://host:port`), sending `key` as its bearer
    /// token; each request gives up after `timeout` (`None`: never).
    pub fn new(url: &str, key: Option<&str>, timeout: Option<Duration>) -> Result<Self, Error> {
        if !url.starts_with("http://") {
            return Err(Error::Config(format!(
                "{url:?}: the client speaks http:// (terminate TLS in front of the server, or reach it over a trusted network)"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(timeout)
            .build()
            .into();
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            auth: key.map(|k| format!("Bearer {k}")),
            agent,
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn read(resp: ureq::http::Response<ureq::Body>, what: &str) -> Result<Reply, Error> {
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| Error::Transport(format!("{what}: reading the answer: {e}")))?;
        Ok(Reply { status, body })
    }

    fn call_get(&self, path_and_query: &str) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let url = format!("{}{path_and_query}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        req.call()
            .map_err(|e| Error::Transport(format!("GET {url}: {e}")))
    }

    /// `GET path`, the answer whatever its status.
    pub fn get(&self, path_and_query: &str) -> Result<Reply, Error> {
        Self::read(self.call_get(path_and_query)?, path_and_query)
    }

    /// `POST path` with a body, the answer whatever its status.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Reply, Error> {
        self.post_with(path, content_type, body, &[])
    }

    /// `POST path` with a body and more headers, the answer whatever its status.
    pub fn post_with(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.post(&url).header("Content-Type", content_type);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let resp = req
            .send(body)
            .map_err(|e| Error::Transport(format!("POST {url}: {e}")))?;
        Self::read(resp, path)
    }

    /// A text resource (a checkpoint, a key): its body on 200, an error otherwise.
    pub fn text(&self, path: &str) -> Result<String, Error> {
        String::from_utf8(self.get(path)?.ok()?)
            .map_err(|_| Error::Protocol(format!("{path}: the answer is not UTF-8")))
    }

    /// Raw bytes (a tile, an entry bundle) on 200, an error otherwise.
    pub fn bytes(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.get(path)?.ok()
    }

    /// Streams a resource into `dest` (written aside, synced, then renamed), never holding
    /// it whole.
    pub fn download(&self, path: &str, dest: &Path) -> Result<(), Error> {
        let resp = self.call_get(path)?;
        if resp.status().as_u16() != 200 {
            return Err(Self::read(resp, path)?.error());
        }
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dest.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            let mut body = resp.into_body();
            let mut reader = body.with_config().limit(u64::MAX).reader();
            std::io::copy(&mut (&mut reader).take(u64::MAX), &mut file)?;
            file.sync_all()?;
            std::fs::rename(&tmp, dest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| Error::Transport(format!("GET {path} into {}: {e}", dest.display())))
    }
}

/// Percent-encodes a path segment or a query component.
pub fn encode(s: &str) -> String {
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

/// `k=v&…`, each part percent-encoded.
pub fn query_string(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(super::encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
