//! A throw-away PostgreSQL cluster for a test, started by `scripts/pg-cluster` on a free
//! loopback port and stopped and deleted when dropped (even on panic).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    script: PathBuf,
    dir: PathBuf,
    /// libpq key=value connection string of the superuser `postgres`.
    pub conninfo: String,
    pub port: u16,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts a cluster, or returns `None` after [`crate::missing`] when PostgreSQL's server
    /// is not installed (under CI that panics).
    pub fn start() -> Option<Cluster> {
        if !installed() {
            crate::missing(
                "PostgreSQL's server (/usr/lib/postgresql/*/bin)",
                "apt-get install -y postgresql",
            );
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster");
        // Under /tmp and world-traversable: as root the cluster runs as the `postgres` user.
        let tmp = tempfile::Builder::new()
            .prefix("sealog-pg-test-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let mut perms = std::fs::metadata(tmp.path())
            .expect("temp dir")
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(tmp.path(), perms).expect("chmod temp dir");
        let mut last = String::new();
        for attempt in 0..3 {
            let dir = tmp.path().join(format!("pg{attempt}"));
            let port = free_port();
            let out = Command::new(&script)
                .arg("start")
                .arg(&dir)
                .arg(port.to_string())
                .output()
                .expect("run scripts/pg-cluster");
            if out.status.success() {
                return Some(Cluster {
                    script,
                    dir,
                    conninfo: String::from_utf8(out.stdout)
                        .expect("a connection string")
                        .trim()
                        .to_string(),
                    port,
                    _tmp: tmp,
                });
            }
            // A port taken between the probe and the start: try another.
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            let _ = Command::new(&script).arg("stop").arg(&dir).status();
        }
        panic!("scripts/pg-cluster could not start a cluster:\n{last}");
    }

    /// Stops the server (fast shutdown: sessions are cut) and starts it again on the same
    /// data and port.
    pub fn restart(&self) {
        let out = Command::new(&self.script)
            .arg("restart")
            .arg(&self.dir)
            .output()
            .expect("run scripts/pg-cluster");
        assert!(
            out.status.success(),
            "scripts/pg-cluster restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The database as `sealog --data` names it.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let status = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("could not stop the test cluster in {}", self.dir.display());
        }
    }
}

/// A client of a test cluster on its own runtime: statements run to completion.
pub struct Sql {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Sql {
    pub fn connect(conninfo: &str) -> Sql {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect to {conninfo}: {e}"));
            tokio::spawn(conn);
            client
        });
        Sql { rt, client }
    }

    /// Runs statements; the server's own message on failure (a trigger's, a grant's).
    pub fn exec(&self, sql: &str) -> Result<(), String> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| {
                e.as_db_error()
                    .map_or(e.to_string(), |d| d.message().to_string())
            })
    }

    /// Every row of a query, each column as text (`NULL` as `None`).
    pub fn strings(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let rows = self
            .rt
            .block_on(self.client.simple_query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    }
}

fn installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().any(|v| v.path().join("bin/initdb").exists()))
        .unwrap_or(false)
}

/// A loopback port nothing listens on now (a server started on it may still race another).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
