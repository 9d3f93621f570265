//! The storage conformance suite against the PostgreSQL backend, on a real server: every
//! check on a fresh database of one cluster, connected as a login role that holds only the
//! application role's grants (so the suite also shows they are enough, and no more is used).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use sealog_pg::{APP_ROLE, LogName, PgConfig, PgLog, migrate};
use sealog_store::LogWrite;
use sealog_store::conformance::{CHECKS, TestKeys, Unique};
use sealog_testkit::pg::{Cluster, Sql};

#[test]
fn the_postgresql_backend_passes_every_conformance_check() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let sql = Sql::connect(&cluster.conninfo);
    sql.exec(&format!(
        "CREATE ROLE {APP_ROLE} NOLOGIN; CREATE ROLE sealog_server LOGIN IN ROLE {APP_ROLE};"
    ))
    .unwrap();
    let keys = sealog_testkit::tempdir();
    let mut failures = Vec::new();
    for (i, (name, check)) in CHECKS.iter().enumerate() {
        let db = format!("conformance_{i}");
        sql.exec(&format!("CREATE DATABASE {db}")).unwrap();
        let owner = format!("{} dbname={db}", cluster.conninfo);
        migrate(&owner, APP_ROLE).unwrap();
        let config = PgConfig {
            // Checkpoints only when asked and on close, as the checks expect of any backend.
            checkpoint_interval: std::time::Duration::from_secs(3600),
            // Low enough that the checks' event windows (about 90, 1,900 and 2,600 records)
            // take both of a window's paths: through the event-time index and along the log.
            narrow_window: 2_000,
            ..PgConfig::new(
                &format!("{} dbname={db} user=sealog_server", cluster.conninfo),
                LogName::Canonical,
                keys.path().join(format!("{db}.key")),
            )
        };
        let open = || -> Box<dyn LogWrite<Unique>> {
            Box::new(
                PgLog::open(config.clone(), Arc::new(TestKeys), Unique)
                    .unwrap_or_else(|e| panic!("open {db}: {e}")),
            )
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(&open))) {
            failures.push(format!("{name}: {}", sealog_testkit::panic_text(&*payload)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
