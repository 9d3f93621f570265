//! `sealog migrate`: applies the PostgreSQL schema's migrations to the database `--data
//! postgresql://…` names, each once, and grants the application role what it may do.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The role the servers act as: it may read and insert, never UPDATE, DELETE or TRUNCATE
    /// a record (created NOLOGIN if missing; make the servers' login role a member of it).
    #[arg(long, default_value = sealog_pg::APP_ROLE)]
    app_role: String,
}

pub(crate) fn run(data: &str, a: &Args) -> anyhow::Result<ExitCode> {
    if !sealog_pg::is_database_url(data) {
        bail!(
            "sealog migrate applies the PostgreSQL schema: give --data postgresql://USER@HOST/DB"
        );
    }
    let done = sealog_pg::migrate(data, &a.app_role)?;
    for (version, name, now) in &done.applied {
        let status = if *now { "applied" } else { "already applied" };
        say!(
            "{}",
            json!({"migration": version, "name": name, "status": status})
        )?;
    }
    say!(
        "{}",
        json!({"app_role": done.app_role, "status": "granted"})
    )?;
    Ok(ExitCode::SUCCESS)
}
