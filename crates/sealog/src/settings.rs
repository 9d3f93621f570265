//! Where a setting comes from, first match wins: the command line, the environment, the
//! config file (`--config FILE`, or `SEALOG_CONFIG`), the default.
//!
//! Every flag has an environment variable: a global flag's is `SEALOG_<FLAG>`, a command's
//! `SEALOG_<COMMAND>_<FLAG>` (`SEALOG_SERVE_LISTEN`, `SEALOG_BENCH_HTTP_CLIENTS`), unless it
//! names its own (`SEALOG_URL`, `SEALOG_KEY`); a repeatable flag takes a comma-separated list
//! there. The config file is TOML: global flags at the top, each command's in the table of
//! its name (`[serve]`, `[bench.http]`), keys spelled as the flags are. Its settings become
//! those variables where the environment has not set them, so the order above holds by
//! construction, and a key no flag has is refused with the file's name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

/// The CLI's definition with every flag's environment variable.
pub(crate) fn command() -> Command {
    with_env(crate::Cli::command(), "SEALOG")
}

fn env_name(prefix: &str, name: &str) -> String {
    format!("{prefix}_{}", name.to_uppercase().replace('-', "_"))
}

fn with_env(cmd: Command, prefix: &str) -> Command {
    cmd.mut_args(|a| {
        let Some(long) = a.get_long().map(str::to_string) else {
            return a;
        };
        if a.get_env().is_some() {
            return a;
        }
        let repeatable = matches!(a.get_action(), ArgAction::Append);
        let a = a.env(env_name(prefix, &long));
        if repeatable {
            a.value_delimiter(',')
        } else {
            a
        }
    })
    .mut_subcommands(|sub| {
        let prefix = env_name(prefix, sub.get_name());
        with_env(sub, &prefix)
    })
}

/// Parses the command line after applying the config file, if one is named.
pub(crate) fn parse() -> anyhow::Result<crate::Cli> {
    if let Some(path) = config_path() {
        let cmd = command();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("--config {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut settings = Vec::new();
        collect(&cmd, &table, &mut settings)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (var, value) in settings {
            if std::env::var_os(&var).is_none() {
                set_env(&var, &value);
            }
        }
    }
    // Built again: a flag reads its variable when it is defined.
    let matches = command().get_matches();
    Ok(crate::Cli::from_arg_matches(&matches).map_err(|e| e.exit())?)
}

#[allow(unsafe_code)]
fn set_env(var: &str, value: &str) {
    // SAFETY: called from `main` before any other thread exists, so nothing reads the
    // environment while it changes.
    unsafe { std::env::set_var(var, value) };
}

/// `--config FILE` (or `--config=FILE`) on the command line, else `SEALOG_CONFIG`.
fn config_path() -> Option<PathBuf> {
    let args: Vec<OsString> = std::env::args_os().collect();
    for (i, a) in args.iter().enumerate() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return args.get(i + 1).map(PathBuf::from);
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("SEALOG_CONFIG").map(PathBuf::from)
}

/// The (variable, value) pairs a table of settings for `cmd` gives.
fn collect(
    cmd: &Command,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    for (key, value) in table {
        let flag = key.replace('_', "-");
        if let toml::Value::Table(inner) = value {
            let sub = cmd
                .get_subcommands()
                .find(|s| s.get_name() == flag)
                .with_context(|| {
                    format!("[{key}]: `sealog {}` has no such command", cmd.get_name())
                })?;
            collect(sub, inner, out).map_err(|e| anyhow::anyhow!("[{key}] {e}"))?;
            continue;
        }
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()) && flag != "config")
            .with_context(|| format!("`{key}`: no flag --{flag} here"))?;
        let var = arg
            .get_env()
            .and_then(|v| v.to_str())
            .with_context(|| format!("`{key}` cannot be set by a file"))?
            .to_string();
        let text = text_of(arg, key, value)?;
        // An empty list is the default: no value at all, not one empty value.
        if !matches!(value, toml::Value::Array(a) if a.is_empty()) {
            out.push((var, text));
        }
    }
    Ok(())
}

fn text_of(arg: &Arg, key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => {
            if !matches!(arg.get_action(), ArgAction::Append) {
                bail!("`{key}` takes one value, not a list");
            }
            let mut parts = Vec::new();
            for item in items {
                let part = text_of(arg, key, item)?;
                if part.contains(',') {
                    bail!("`{key}`: a list item may not contain a comma: {part:?}");
                }
                parts.push(part);
            }
            parts.join(",")
        }
        toml::Value::Table(_) => bail!("`{key}` is not a command"),
    })
}

/// `sealog init`: a commented starter config, from the CLI's own definition.
pub(crate) fn init(out: &Path) -> anyhow::Result<ExitCode> {
    let cmd = command();
    let mut text = String::from(
        "# Sealog settings (`sealog --config sealog.toml COMMAND`, or SEALOG_CONFIG).\n\
         # First match wins: the command line, then the environment (each setting's variable\n\
         # is named beside it), then this file, then the default shown. Relative paths are\n\
         # taken from the directory the command runs in. Uncomment what you change.\n\
         # Any command's flags may go in a table of its name: [append], [bench.http], ...\n\n",
    );
    starter(&cmd, &mut text);
    text.push_str("\n[serve]\n");
    let serve = cmd
        .get_subcommands()
        .find(|s| s.get_name() == "serve")
        .expect("the serve command");
    starter(serve, &mut text);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("{}: not overwritten", out.display()))?;
    std::io::Write::write_all(&mut &file, text.as_bytes())
        .with_context(|| out.display().to_string())?;
    say!("{}", out.display())?;
    Ok(ExitCode::SUCCESS)
}

/// One commented block per flag of `cmd` itself (not its subcommands' flags).
fn starter(cmd: &Command, text: &mut String) {
    for arg in cmd.get_arguments() {
        let (Some(long), Some(var)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        if long == "config" || arg.is_hide_set() {
            continue;
        }
        for line in arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .lines()
        {
            text.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
        }
        let shown = match arg.get_action() {
            ArgAction::SetTrue => "false".to_string(),
            ArgAction::Append => "[]".to_string(),
            _ => match arg.get_default_values().first().and_then(|v| v.to_str()) {
                Some(v) if v.parse::<f64>().is_ok() => v.to_string(),
                Some(v) => format!("{v:?}"),
                None => "\"\"".to_string(),
            },
        };
        text.push_str(&format!(
            "# {long} = {shown}    # {}\n\n",
            var.to_string_lossy()
        ));
    }
}
