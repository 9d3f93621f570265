//! `sealog serve --log-format json` writes one JSON object per line in the OpenTelemetry log
//! data model's names, the request's W3C trace id among them.

use sealog_testkit::{Api, Cli, ServerProcess, tempdir};
use serde_json::Value;

#[test]
fn json_logs_use_opentelemetry_names_and_carry_the_trace_id() {
    let dir = tempdir();
    let cli = Cli::new(env!("CARGO_BIN_EXE_sealog"), &dir.path().join("data"));
    let mut cmd = cli.command(&["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    cmd.env("SEALOG_LOG", "debug");
    let server = ServerProcess::spawn(cmd, &cli.dir);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let r = server.send(
        "GET",
        "/v1/records?limit=1",
        &[("traceparent", &format!("00-{trace_id}-b7ad6b7169203331-01"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let log = server.log.clone();
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        for member in [
            "timestamp",
            "severity_text",
            "severity_number",
            "body",
            "attributes",
            "resource",
        ] {
            assert!(l.get(member).is_some(), "{member} missing: {l}");
        }
        assert_eq!(l["resource"]["service.name"], "sealog", "{l}");
        assert!(
            l["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{l}"
        );
    }
    let request = lines
        .iter()
        .find(|l| l["trace_id"] == trace_id)
        .unwrap_or_else(|| panic!("no line with the trace id: {text}"));
    assert_eq!(
        request["attributes"]["http.route"], "/v1/records",
        "{request}"
    );
    assert_eq!(
        request["attributes"]["http.request.method"], "GET",
        "{request}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["attributes"]["http.response.status_code"] == 200
                && l["trace_id"] == trace_id),
        "{text}"
    );
}
