//! Open mode at start, decided against the log: once the log records a key
//! (`audit.key_created`), a server started without its key file, or with the file emptied,
//! does not start (in open mode or at all) and says which file and how to recover; a data
//! directory whose log never recorded a key still starts in open mode. The same holds on
//! PostgreSQL, where the log is shared and the key file is the server's own.
//!
//! The server is started as `sealog serve` starts it (`Server::bind`, then `Server::run` on a
//! free port, requests over TCP), and as the in-process tests build it (`App::new`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sealog_ledger::{Ledger, LedgerConfig, Packs, Query, StoreConfig, Undeclared};
use sealog_server::keys::{self, KeySpec, Role};
use sealog_server::{App, Server, ServerConfig, ServerError};
use sealog_testkit::http::{Resp, request};
use sealog_testkit::pg::{Cluster, Sql};
use sealog_testkit::{tempdir, wait_for};
use sha2::{Digest, Sha256};

/// Where a server's log is: a data directory, or a database with the server's own state
/// directory (which holds its key file).
#[derive(Clone, Copy)]
enum Log<'a> {
    Dir(&'a Path),
    Database { url: &'a str, state: &'a Path },
}

impl Log<'_> {
    /// The directory `sealog keys` and the server keep the key file in.
    fn root(&self) -> &Path {
        match self {
            Log::Dir(dir) => dir,
            Log::Database { state, .. } => state,
        }
    }

    fn key_file(&self) -> PathBuf {
        keys::file_path(self.root())
    }

    fn open(&self) -> Ledger {
        let config = LedgerConfig {
            store: StoreConfig::default(),
            packs: Packs::builtin(),
            undeclared: Undeclared::Quarantine,
        };
        match self {
            Log::Dir(dir) => Ledger::open(dir, config),
            Log::Database { url, state } => Ledger::open_database(url, state, config),
        }
        .expect("open the ledger")
    }

    /// Whether the log holds an `audit.key_created` record, read beside no server.
    fn records_a_key(&self) -> bool {
        let config = LedgerConfig {
            store: StoreConfig::default(),
            packs: Packs::builtin(),
            undeclared: Undeclared::Quarantine,
        };
        let ledger = match self {
            Log::Dir(dir) => Ledger::open_read_only(dir, config),
            Log::Database { url, state } => Ledger::open_database_read_only(url, state, config),
        }
        .expect("open the ledger to read");
        let page = ledger
            .query(&Query {
                equals: vec![("type".into(), "audit.key_created".into())],
                limit: 1,
                ..Query::default()
            })
            .expect("query the log");
        !page.records.is_empty()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A server serving on a free loopback port.
struct Serving {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Serving {
    /// Starts a server as `sealog serve` does: the message it refused to start with, or the
    /// server once `/readyz` answers.
    fn start(log: Log<'_>) -> Result<Serving, String> {
        let rt = runtime();
        let ledger = log.open();
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        };
        let server = rt
            .block_on(Server::bind(config, ledger))
            .map_err(|e| e.to_string())?;
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = rt.spawn(server.run(async move {
            let _ = stopped.await;
        }));
        wait_for(30, "/readyz to answer", || {
            (get(addr, "/readyz", None).status == 200).then_some(())
        });
        Ok(Serving {
            rt,
            addr,
            stop,
            run,
        })
    }

    fn get(&self, path: &str, key: Option<&str>) -> Resp {
        get(self.addr, path, key)
    }

    fn auth(&self) -> String {
        let ready = self.get("/readyz", None).json();
        ready["auth"].as_str().expect("auth in /readyz").to_string()
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.rt
            .block_on(self.run)
            .expect("the server task")
            .expect("a clean stop");
    }
}

fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> Resp {
    let headers: Vec<(String, String)> = key
        .map(|k| ("Authorization".to_string(), format!("Bearer {k}")))
        .into_iter()
        .collect();
    request(addr, "GET", path, &headers, None)
}

/// Builds the app as the in-process tests do, then closes it: the error it refused with.
fn app_start_error(log: Log<'_>) -> Option<String> {
    let rt = runtime();
    let ledger = log.open();
    match rt.block_on(App::new(&ServerConfig::default(), ledger)) {
        Ok(app) => {
            rt.block_on(app.close()).expect("close the app");
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// A reader key of tenant `t1`, made as `sealog keys create --role reader --tenant t1` makes
/// it; returns its secret.
fn create_reader_key(log: Log<'_>) -> String {
    let spec = KeySpec {
        roles: vec![Role::Reader],
        tenant: Some("t1".into()),
        ..KeySpec::default()
    };
    keys::create(log.root(), spec, "cli")
        .expect("create a key")
        .secret
}

/// Creates a key and serves once with it, so the log records it; returns its secret.
fn record_a_key(log: Log<'_>) -> String {
    let secret = create_reader_key(log);
    let server = Serving::start(log).expect("the server starts with its key");
    assert_eq!(server.auth(), "keys");
    assert_eq!(server.get("/v1/records?limit=1", None).status, 401);
    server.stop();
    assert!(log.records_a_key(), "the log records the key");
    secret
}

/// Neither way of starting a server starts on `log`, and each says why with `says`, names
/// the key file and says how to recover.
fn assert_refused(log: Log<'_>, what: &str, says: &[&str]) {
    let file = log.key_file().display().to_string();
    let served = match Serving::start(log) {
        Ok(server) => {
            let ready = server.get("/readyz", None).text();
            let anonymous = server.get("/v1/records?limit=1", None).status;
            server.stop();
            panic!("{what}: the server started: /readyz {ready}, unauthenticated read {anonymous}");
        }
        Err(message) => message,
    };
    let refusals = [
        ("sealog serve", Some(served)),
        ("App::new", app_start_error(log)),
    ];
    for (how, refusal) in refusals {
        let message = refusal.unwrap_or_else(|| panic!("{what}: {how} started"));
        for s in [
            "refusing to start",
            file.as_str(),
            "open mode",
            "restore",
            "from a backup",
            "keys create --role admin",
        ]
        .iter()
        .chain(says)
        {
            assert!(message.contains(s), "{what}, {how}: {s:?} not in {message}");
        }
    }
}

/// The whole fault, on either kind of log: a key recorded, then the key file removed or
/// emptied, never starts; the file restored from its backup starts with keys.
fn check_a_recorded_key_keeps_the_server_closed(log: Log<'_>) {
    let secret = record_a_key(log);
    let path = log.key_file();
    let backup = std::fs::read(&path).expect("the key file");

    std::fs::remove_file(&path).expect("remove the key file");
    assert_refused(log, "removed", &["missing or holds no key"]);
    assert!(!path.exists(), "a refused start writes no key file");

    std::fs::write(&path, b"").expect("empty the key file");
    assert_refused(log, "emptied", &["is empty"]);
    std::fs::write(&path, br#"{"format": "sealog-keys 1", "keys": []}"#)
        .expect("write a key file without keys");
    assert_refused(log, "without keys", &["missing or holds no key"]);

    std::fs::write(&path, &backup).expect("restore the key file");
    let server = Serving::start(log).expect("restored from the backup");
    assert_eq!(server.auth(), "keys");
    assert_eq!(server.get("/v1/records?limit=1", None).status, 401);
    assert_eq!(server.get("/v1/records?limit=1", Some(&secret)).status, 200);
    server.stop();
}

#[test]
fn a_key_file_removed_or_emptied_after_a_key_was_recorded_keeps_the_server_from_starting() {
    let dir = tempdir();
    check_a_recorded_key_keeps_the_server_closed(Log::Dir(dir.path()));
}

#[test]
fn a_fresh_data_directory_still_starts_in_open_mode() {
    let dir = tempdir();
    let log = Log::Dir(dir.path());
    for start in ["first", "second"] {
        let server = Serving::start(log).unwrap_or_else(|e| panic!("{start} start: {e}"));
        assert_eq!(server.auth(), "open", "{start} start");
        let read = server.get("/v1/records?limit=1", None);
        assert_eq!(read.status, 200, "{start} start: {}", read.text());
        server.stop();
    }
    assert!(!log.records_a_key());
    assert!(!log.key_file().exists());
}

/// Applies the schema `sealog migrate` applies, from the same files, as the superuser: the
/// ledger accepts a database whose applied versions and SHA-256 sums match its migrations.
fn migrate(cluster: &Cluster) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sealog-pg/migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the migrations")
        .map(|e| e.expect("a migration").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let sql = Sql::connect(&cluster.conninfo);
    sql.exec(
        "CREATE TABLE sealog_schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .expect("the migrations table");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a migration");
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("a name");
        let (version, name) = stem.split_once('_').expect("NNNN_name");
        let version: i32 = version.parse().expect("a version");
        sql.exec(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        sql.exec(&format!(
            "INSERT INTO sealog_schema_migrations (version, name, sha256) \
             VALUES ({version}, '{name}', '{}')",
            hex::encode(Sha256::digest(text.as_bytes()))
        ))
        .expect("record the migration");
    }
}

#[test]
fn on_postgresql_a_key_file_removed_or_emptied_after_a_key_was_recorded_is_refused_with_its_message()
 {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    migrate(&cluster);
    let url = cluster.url();
    let state = tempdir();
    let log = Log::Database {
        url: &url,
        state: state.path(),
    };
    // A database that never recorded a key starts open, as a data directory does.
    let server = Serving::start(log).expect("a fresh database starts");
    assert_eq!(server.auth(), "open");
    server.stop();
    check_a_recorded_key_keeps_the_server_closed(log);

    // Another server of the same database, given the logs' signing keys and the master key
    // as every server of a database is but no key file, is refused too: the log it shares
    // records a key.
    let other = tempdir();
    sealog_testkit::files::copy_dir(state.path(), other.path());
    std::fs::remove_file(keys::file_path(other.path())).expect("no key file of its own");
    assert_refused(
        Log::Database {
            url: &url,
            state: other.path(),
        },
        "another server",
        &["missing or holds no key"],
    );
}
