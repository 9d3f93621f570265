//! `sealog migrate` against a real PostgreSQL (`scripts/pg-cluster`): the schema applied
//! once and found applied after; other commands refuse a database that lacks it, creating
//! nothing, and work once it is there.

use std::process::{Command, Output};

use sealog_testkit::pg::Cluster;

fn sealog(cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealog"))
        .current_dir(cwd)
        .env_remove("SEALOG_URL")
        .env_remove("SEALOG_KEY")
        .args(args)
        .output()
        .expect("run sealog")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn migrate_applies_the_schema_once_and_other_commands_refuse_a_database() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let cwd = sealog_testkit::tempdir();
    let url = cluster.url();
    let query = sealog(cwd.path(), &["--data", &url, "query"]);
    assert_eq!(query.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&query.stderr);
    assert!(stderr.contains("sealog migrate"), "{stderr}");
    assert!(
        !stderr.contains("postgres@"),
        "the URL's user is not echoed: {stderr}"
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing is created for a database without the schema"
    );
    let first = sealog(cwd.path(), &["--data", &url, "migrate"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = lines(&first);
    assert_eq!(first[0]["status"], "applied", "{first:?}");
    assert_eq!(first.last().unwrap()["app_role"], "sealog_app");
    let again = lines(&sealog(cwd.path(), &["--data", &url, "migrate"]));
    assert_eq!(again[0]["status"], "already applied", "{again:?}");
    let bad_role = sealog(
        cwd.path(),
        &["--data", &url, "migrate", "--app-role", "x;y"],
    );
    assert_eq!(bad_role.status.code(), Some(2));
    let query = sealog(cwd.path(), &["--data", &url, "query"]);
    assert!(
        query.status.success(),
        "{}",
        String::from_utf8_lossy(&query.stderr)
    );
    assert!(
        !cwd.path().join("postgresql:").exists(),
        "no directory named after the URL"
    );
    let local = sealog(cwd.path(), &["--data", "d", "migrate"]);
    assert_eq!(local.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&local.stderr).contains("postgresql://"));
    let unreachable = sealog(
        cwd.path(),
        &["--data", "postgresql://postgres@127.0.0.1:1/x", "migrate"],
    );
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot connect"));
}
