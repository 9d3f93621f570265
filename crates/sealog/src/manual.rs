//! Shell completions and manual pages, generated from the CLI's own definition so they never
//! drift from it.

use std::path::Path;
use std::process::ExitCode;

pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::settings::command();
    clap_complete::generate(shell, &mut cmd, "sealog", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `sealog.1` to standard output; with a directory, `sealog.1` and one `sealog-CMD.1` per
/// command and subcommand (`sealog-keys-create.1`), each listing its own options.
pub(crate) fn man(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cmd = crate::settings::command();
    match dir {
        None => clap_mangen::Man::new(cmd)
            .title("SEALOG")
            .render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            write_pages(dir, cmd, "sealog", "sealog")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `cmd`'s page as `{file}.1`, `shown` being the command as typed, then its
/// subcommands' pages.
fn write_pages(dir: &Path, cmd: clap::Command, file: &str, shown: &str) -> anyhow::Result<()> {
    let cmd = cmd
        .display_name(shown.to_string())
        .bin_name(shown.to_string());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(file.to_uppercase())
        .render(&mut page)?;
    std::fs::write(dir.join(format!("{file}.1")), page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        write_pages(
            dir,
            sub.clone(),
            &format!("{file}-{name}"),
            &format!("{shown} {name}"),
        )?;
    }
    Ok(())
}
