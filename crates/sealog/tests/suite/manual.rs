//! Shell completions and manual pages come from the CLI's own definition: bash completes
//! real commands and flags from the script `sealog completions bash` prints, and `sealog man
//! --dir` writes a page for every command `sealog --help` lists.

use std::process::Command;

use sealog_testkit::{Cli, tempdir};

/// The commands `sealog --help` lists.
fn commands(cli: &Cli) -> Vec<String> {
    let help = cli.ok(&["--help"], b"").stdout;
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// What bash's completion offers for `words`, the last one being completed.
fn complete_in_bash(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempdir();
    let path = dir.path().join("sealog.bash");
    std::fs::write(&path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; _sealog sealog '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut offered: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    offered.sort();
    offered
}

#[test]
fn bash_completes_the_commands_and_flags_the_cli_defines() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    let script = cli.ok(&["completions", "bash"], b"").stdout;
    let file = dir.path().join("sealog.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");
    let offered = complete_in_bash(&script, &["sealog", "ver"]);
    assert_eq!(offered, ["verify", "verify-export"], "sealog ver<TAB>");
    let offered = complete_in_bash(&script, &["sealog", "append", "--u"]);
    assert_eq!(offered, ["--url"], "sealog append --u<TAB>");
    let all = complete_in_bash(&script, &["sealog", ""]);
    for command in commands(&cli) {
        assert!(all.contains(&command), "{command} is not offered: {all:?}");
    }
    // The other shells' scripts name the same commands; an unknown shell is refused.
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let text = cli.ok(&["completions", shell], b"").stdout;
        assert!(
            text.contains("verify-export") && text.contains("--data"),
            "{shell}"
        );
    }
    let refused = cli.run(&["completions", "tcsh"], b"");
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("tcsh"), "{}", refused.stderr);
}

#[test]
fn man_writes_one_page_per_command_each_naming_it_and_its_options() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    let top = cli.ok(&["man"], b"").stdout;
    assert!(
        top.starts_with(".ie") || top.contains(".TH SEALOG 1"),
        "{top}"
    );
    assert!(top.contains(".TH SEALOG 1") && top.contains("\\-\\-data"));
    let pages = dir.path().join("man");
    cli.ok(&["man", "--dir", pages.to_str().unwrap()], b"");
    for command in commands(&cli) {
        let page = std::fs::read_to_string(pages.join(format!("sealog-{command}.1")))
            .unwrap_or_else(|e| panic!("no page for {command}: {e}"));
        let title = format!(".TH SEALOG-{} 1", command.to_uppercase());
        assert!(page.contains(&title), "{command}: {page}");
        assert!(
            page.contains(&format!("sealog {}", command.replace('-', "\\-"))),
            "{command}: the page names the command as typed"
        );
    }
    let create = std::fs::read_to_string(pages.join("sealog-keys-create.1")).unwrap();
    assert!(create.contains("\\-\\-role"), "{create}");
}
