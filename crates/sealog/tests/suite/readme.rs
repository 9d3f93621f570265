//! The README's worked examples answer what they say: after `sealog demo`, every `$ sealog …`
//! line of its shell blocks is run against the demo's data directory, and what it prints,
//! projected as its `jq -c '[.a, .b.c]'` says, must be the lines the README shows under it.

use std::path::Path;

use sealog_testkit::{Cli, tempdir};
use serde_json::Value;

struct Example {
    args: Vec<String>,
    /// The member paths of a `jq -c '[.a, .b.c]'` projection, if the line has one.
    projection: Option<Vec<Vec<String>>>,
    expected: Vec<Value>,
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn projection(jq: &str) -> Vec<Vec<String>> {
    let inner = jq
        .trim()
        .strip_prefix("jq -c '[")
        .and_then(|r| r.strip_suffix("]'"))
        .unwrap_or_else(|| panic!("the README pipes into {jq:?}; only jq -c '[.a, .b]' is run"));
    inner
        .split(',')
        .map(|p| {
            let p = p.trim();
            let path = p
                .strip_prefix('.')
                .unwrap_or_else(|| panic!("{p:?} is not a path"));
            path.split('.').map(str::to_string).collect()
        })
        .collect()
}

fn examples(text: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    // The fence's language while inside a block: shell blocks hold the worked examples.
    let mut block: Option<&str> = None;
    for line in text.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            block = if block.is_some() { None } else { Some(lang) };
            continue;
        }
        if !matches!(block, Some("" | "sh")) {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ sealog ") {
            let (command, jq) = match command.split_once(" | ") {
                Some((c, jq)) => (c, Some(projection(jq))),
                None => (command, None),
            };
            out.push(Example {
                args: command.split_whitespace().map(str::to_string).collect(),
                projection: jq,
                expected: Vec::new(),
            });
        } else if let Some(last) = out.last_mut() {
            let v = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("README answer {line:?} is not JSON: {e}"));
            last.expected.push(v);
        }
    }
    out
}

fn project(v: &Value, paths: &[Vec<String>]) -> Value {
    Value::Array(
        paths
            .iter()
            .map(|p| p.iter().fold(v, |v, k| &v[k.as_str()]).clone())
            .collect(),
    )
}

#[test]
fn every_worked_example_in_the_readme_answers_what_it_shows() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    cli.ok(&["demo"], b"");
    let examples = examples(&readme());
    assert!(
        examples.len() >= 5,
        "the README's worked examples were not found"
    );
    for ex in &examples {
        let args: Vec<&str> = ex.args.iter().map(String::as_str).collect();
        // Files the examples write (an export) land beside the data directory.
        let mut command = cli.command(&args);
        command.current_dir(dir.path());
        let run =
            sealog_testkit::cli::run_command(command, b"", std::time::Duration::from_secs(300));
        assert!(
            run.code == 0 || run.code == 1,
            "sealog {}: exit {}: {}",
            ex.args.join(" "),
            run.code,
            run.stderr
        );
        let got: Vec<Value> = run
            .lines()
            .iter()
            .map(|v| match &ex.projection {
                Some(p) => project(v, p),
                None => v.clone(),
            })
            .collect();
        assert_eq!(
            got,
            ex.expected,
            "sealog {} answers otherwise than the README shows",
            ex.args.join(" ")
        );
    }
}
