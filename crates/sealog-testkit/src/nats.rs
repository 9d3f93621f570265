//! A throw-away `nats-server -js` for a test (Debian `nats-server`), on a free loopback port
//! with a temporary store, killed when dropped; and a blocking JetStream client for tests to
//! publish with and to read a consumer's state.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use async_nats::jetstream;

/// The largest message the test server takes: above Sealog's 1 MiB event limit, so an
/// oversized event reaches Sealog (NATS's own default stops at 1 MiB).
pub const PAYLOAD_MAX: usize = 4 << 20;

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn installed() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl NatsServer {
    /// Starts a server, or returns `None` after [`crate::missing`] when `nats-server` is not
    /// installed (under CI that panics).
    pub fn start() -> Option<NatsServer> {
        if !installed() {
            crate::missing("nats-server", "apt-get install -y nats-server");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("sealog-nats-test-")
            .tempdir()
            .expect("temp dir");
        let port = crate::pg::free_port();
        let mut server = NatsServer {
            child: None,
            port,
            dir,
        };
        server.launch();
        Some(server)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("nats.conf")
    }

    fn launch(&mut self) {
        let store = self.dir.path().join("store");
        std::fs::write(
            self.config(),
            format!(
                "listen: 127.0.0.1:{}\nmax_payload: {PAYLOAD_MAX}\njetstream {{\n  store_dir: {:?}\n}}\n",
                self.port,
                store.display().to_string()
            ),
        )
        .expect("write the server's config");
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("server log");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(self.config())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        crate::wait_for(60, "nats-server to listen", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited with {status}: {}", self.log_text());
            }
            TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .map(|_| ())
        });
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, then waits) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped server again on the same port and store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        self.launch();
    }

    /// Stops the server: SIGTERM, then waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::cli::signal(child.id(), libc::SIGTERM);
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A consumer's state as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerState {
    /// Messages not yet delivered.
    pub pending: u64,
    /// Delivered and neither acknowledged nor terminated.
    pub ack_pending: u64,
    pub redelivered: u64,
}

/// A message to publish: its subject, headers and body.
pub type Message = (String, Vec<(String, String)>, Vec<u8>);

/// A blocking JetStream client on a runtime of its own.
pub struct Publisher {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
}

impl Publisher {
    pub fn connect(url: &str) -> Publisher {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let js = rt.block_on(async {
            let client = async_nats::connect(url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            jetstream::new(client)
        });
        Publisher { rt, js }
    }

    /// Publishes each (subject, headers, body) and waits until the stream has stored all of
    /// them, in order.
    pub fn publish_all(&self, messages: &[Message]) {
        self.rt.block_on(async {
            let mut acks = Vec::with_capacity(messages.len());
            for (subject, headers, body) in messages {
                let mut map = async_nats::HeaderMap::new();
                for (k, v) in headers {
                    map.insert(k.as_str(), v.as_str());
                }
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), map, body.clone().into())
                    .await
                    .unwrap_or_else(|e| panic!("publish to {subject}: {e}"));
                acks.push(ack);
                // Bounded in flight, so a large batch does not outrun the server's acks.
                if acks.len() == 512 {
                    for a in acks.drain(..) {
                        a.await.expect("the stream stores the message");
                    }
                }
            }
            for a in acks {
                a.await.expect("the stream stores the message");
            }
        })
    }

    /// Publishes bodies to one subject, without headers.
    pub fn publish_bodies(&self, subject: &str, bodies: &[Vec<u8>]) {
        let messages: Vec<_> = bodies
            .iter()
            .map(|b| (subject.to_string(), Vec::new(), b.clone()))
            .collect();
        self.publish_all(&messages);
    }

    /// The consumer's state, or `None` while it (or its stream) does not exist.
    pub fn consumer(&self, stream: &str, consumer: &str) -> Option<ConsumerState> {
        self.rt.block_on(async {
            let stream = self.js.get_stream(stream).await.ok()?;
            let mut c: jetstream::consumer::PullConsumer =
                stream.get_consumer(consumer).await.ok()?;
            let info = c.info().await.ok()?;
            Some(ConsumerState {
                pending: info.num_pending,
                ack_pending: info.num_ack_pending as u64,
                redelivered: info.num_redelivered as u64,
            })
        })
    }
}
