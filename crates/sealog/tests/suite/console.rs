//! The console in a real browser (headless Chromium) against a real `sealog serve`: sign-in
//! and sign-out, every page rendering real data, filters, the timeline's before and after,
//! the proof checked in the page (verified for a real record, failed for a tampered
//! answer), tenant and subject keys seeing only their own, CSRF refused, the keyboard, and no
//! serious accessibility violation (axe-core). Screenshots of every page are written to
//! `target/screenshots/`.

use std::io::{Read, Write};
use std::net::TcpListener;

use sealog_testkit::browser::{Browser, Page, screenshot_dir};
use sealog_testkit::events::an_hour_ago;
use sealog_testkit::{Api, Cli, ServerProcess, tempdir};
use serde_json::{Value, json};

fn cli(dir: &std::path::Path) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_sealog"), dir)
}

fn decision(n: usize, tenant: &str, class: &str, decision: &str) -> Value {
    let mut data = json!({"envelope_id": format!("env-{tenant}-{n}"), "envelope_class": class,
        "decision": decision, "reason": "test", "decision_timestamp": an_hour_ago(),
        "tenant_id": tenant});
    if decision == "REJECTED" {
        data["conflicting_envelope_id"] = json!("env-0");
    }
    json!({"specversion": "1.0", "id": format!("d{n}-{tenant}"), "source": "c4",
           "type": "coordination.decision", "time": an_hour_ago(), "tenant": tenant,
           "actor": {"type": "service", "id": "coordination-manager"}, "data": data})
}

fn knowledge(id: &str, kind: &str, chunk: &str, time: &str, data: Value) -> Value {
    let mut d = json!({"principal": {"type": "human", "id": "editor-3", "clearance": 3},
                       "resourceType": "CHUNK", "resourceId": chunk});
    for (k, v) in data.as_object().unwrap() {
        d[k] = v.clone();
    }
    let mut e = json!({"specversion": "1.0", "id": id, "source": "knowledge-base", "type": kind,
           "time": time, "tenant": "tenant-a", "actor": {"type": "human", "id": "editor-3"}, "data": d});
    if kind != "knowledge.chunk_created" {
        e["reason"] = json!("an edit");
    }
    e
}

fn created(id: &str, chunk: &str, after: &str, claim: &str) -> Value {
    knowledge(
        id,
        "knowledge.chunk_created",
        chunk,
        "2026-03-01T08:00:00Z",
        json!({"operation": "CREATE", "chunkType": "policy", "after": after, "authority": "approved",
               "claim": {"key": "refund_days", "value": claim}}),
    )
}

fn email(n: usize, customer: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("mail-{n}"), "source": "mailer", "type": "comms.email",
           "time": "2026-04-10T07:30:00Z", "tenant": "shop", "subject": format!("<m{n}-{customer}@shop>"),
           "data": {"email_id": format!("<m{n}-{customer}@shop>"), "event_type": "delivered",
                    "recipient_details": {"customer_id": customer}}})
}

/// A store with records of both tenants, a chunk created then modified, a contradiction for
/// the checks to find, quarantined events and emails of two customers.
fn seed(cli: &Cli) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    for n in 0..12 {
        let tenant = if n % 3 == 0 { "tenant-b" } else { "tenant-a" };
        events.push(decision(
            n,
            tenant,
            ["SAFETY", "COST", "PERFORMANCE"][n % 3],
            ["APPLIED", "REJECTED"][n % 2],
        ));
    }
    events.push(created("k1", "chunk-7", "h-first", "30"));
    let mut modified = knowledge(
        "k2",
        "knowledge.chunk_modified",
        "chunk-7",
        "2026-03-02T08:00:00Z",
        json!({"operation": "MODIFY", "before": "h-first", "after": "h-second", "changeSummary": "edited"}),
    );
    modified["reason"] = json!("an edit");
    events.push(modified);
    // Equal authority, different claims: a contradiction the checks escalate.
    events.push(created("k3", "chunk-8", "h-c8", "14"));
    // Refused by the coordination pack: quarantined, in each tenant.
    events.push(decision(90, "tenant-a", "NOT_A_CLASS", "APPLIED"));
    events.push(decision(91, "tenant-b", "NOT_A_CLASS", "APPLIED"));
    for (n, c) in ["cust-23", "cust-23", "cust-99"].iter().enumerate() {
        events.push(email(n, c));
    }
    let body: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("{e}\n").into_bytes())
        .collect();
    // Two are quarantined on purpose: the run's exit code says so.
    let out = cli.run(&["append", "-"], &body).lines();
    assert_eq!(out.len(), events.len());
    let quarantined = out.iter().filter(|r| r["status"] == "quarantined").count();
    assert_eq!(quarantined, 2, "{out:?}");
    out
}

/// One browser at a time: three at once on a two-core machine starve each other.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    ONE_BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Console<'b> {
    page: Page<'b>,
    url: String,
}

impl Console<'_> {
    /// Opens a view and waits until the page has rendered it (a change of hash alone leaves
    /// the previous view on screen until the page's router has run).
    fn open(&self, hash: &str) {
        self.page.goto(&format!("{}/{hash}", self.url));
        if !hash.is_empty() {
            let want = serde_json::to_string(hash).unwrap();
            self.page.wait_for(
                &format!("document.body.dataset.route === {want}"),
                60,
                &format!("the view {hash}"),
            );
        }
    }

    fn sign_in(&self, key: &str) {
        self.open("");
        self.page
            .wait_for("document.querySelector('#key')", 30, "the sign-in form");
        self.page.click("#key");
        self.page.type_text(key);
        self.page.press("Enter");
        self.page
            .wait_for("document.querySelector('#principal')", 30, "signed in");
    }

    fn text(&self) -> String {
        self.page
            .eval("document.body.innerText")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until `#main` holds `what` (a selector), then checks the page for serious
    /// accessibility violations and saves a screenshot.
    fn shows(&self, what: &str, name: &str) {
        let sel = serde_json::to_string(what).unwrap();
        let shown = self.page.wait_for(
            &format!(
                "(document.querySelector({sel}) && !document.querySelector('#main .note')?.textContent.startsWith('Loading')) ? 'shown'
                 : (document.querySelector('#main .error')?.textContent || null)"
            ),
            60,
            what,
        );
        assert_eq!(shown, json!("shown"), "{name}: {}", self.text());
        self.page
            .screenshot(&screenshot_dir().join(format!("console-{name}.png")));
        let violations = self.page.axe();
        assert!(violations.is_empty(), "{name}: {violations:#?}");
    }

    fn errors(&self) -> Vec<String> {
        // A refused request is logged by the browser itself; the page's own errors are not.
        self.page
            .errors()
            .into_iter()
            .filter(|e| !e.contains("Failed to load resource"))
            .collect()
    }
}

#[test]
fn every_page_renders_real_data_checks_proofs_and_refuses_csrf() {
    let _one = one_browser();
    let Some(browser) = Browser::launch() else {
        return;
    };
    let tmp = tempdir();
    let cli = cli(&tmp.path().join("d"));
    let appended = seed(&cli);
    let (admin, _) = cli.create_key(&["admin"], None, None);
    let server = ServerProcess::start(&cli, &["--check-every", "off"]);
    let url = server.url();
    let api = &server;
    let r = api.post_json("/v1/checks", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let c = Console {
        page: browser.new_page(),
        url: url.clone(),
    };

    c.open("");
    c.shows("#sign-in", "sign-in");
    c.sign_in(&admin);
    let cookies = c.page.cookies();
    let session = cookies
        .iter()
        .find(|k| k["name"] == "sealog_session")
        .expect("the session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_eq!(
        c.page.eval("document.cookie"),
        json!(""),
        "the page cannot read its session"
    );

    // Records, then narrowed by a filter.
    c.open("#/records");
    c.shows("#results table tbody tr td a", "records");
    let all = c
        .page
        .eval("document.querySelectorAll('#results tbody tr').length")
        .as_u64()
        .unwrap();
    c.page
        .eval("document.querySelector('input[name=type]').value = 'knowledge.chunk_modified'");
    c.page.click("form.filters button[type=submit]");
    c.page.wait_for(
        "document.body.dataset.route?.includes('type=knowledge.chunk_modified')",
        30,
        "the filtered page",
    );
    assert_eq!(
        c.page
            .eval("document.querySelectorAll('#results tbody tr').length"),
        json!(1)
    );
    let types = c.page.eval("[...document.querySelectorAll('#results tbody tr td:nth-child(3)')].map(t => t.textContent)");
    assert_eq!(
        types,
        json!(["knowledge.chunk_modified"]),
        "{all} before the filter"
    );
    assert!(all > 1);

    // A record's proof, checked in the page.
    let seq = appended[0]["seq"].as_u64().unwrap();
    c.open(&format!("#/record/{seq}"));
    c.shows("#proof-mark.verified", "record");
    assert!(c.text().contains("Verified in this browser"));

    // The page's own check over many records and tree sizes: every proof holds, and one
    // changed hash of a proof fails.
    let checked = c.page.eval(&format!(
        r#"(async () => {{
            const note = await (await fetch('/checkpoint')).text();
            const key = (await (await fetch('/checkpoint/key')).text()).trim();
            const size = Number(note.split('\n')[1]);
            let ok = 0, bad = 0;
            for (let seq = 0; seq < Math.min(size, {n}); seq++) {{
                const bytes = new Uint8Array(await (await fetch(`/v1/records/${{seq}}?form=sealed`)).arrayBuffer());
                const p = await (await fetch(`/v1/proofs/inclusion?seq=${{seq}}&size=${{size}}`)).json();
                const r = window.sealogVerify.checkInclusion({{note, verifierKey: key, recordBytes: bytes, index: p.leaf_index, proof: p.hashes, size}});
                if (r.ok) ok++;
                if (p.hashes.length) {{
                    const h = p.hashes.slice();
                    h[0] = h[0].startsWith('A') ? 'B' + h[0].slice(1) : 'A' + h[0].slice(1);
                    if (!window.sealogVerify.checkInclusion({{note, verifierKey: key, recordBytes: bytes, index: p.leaf_index, proof: h, size}}).ok) bad++;
                }}
            }}
            return [ok, bad, Math.min(size, {n})];
        }})()"#,
        n = 30
    ));
    let (ok, bad, n) = (
        checked[0].as_u64().unwrap(),
        checked[1].as_u64().unwrap(),
        checked[2].as_u64().unwrap(),
    );
    assert!(n >= 20, "{checked}");
    assert_eq!(ok, n, "every record's proof holds in the page");
    assert_eq!(bad, n, "no altered proof holds");

    // The subject's timeline: before and after the modification.
    c.open("#/subject/chunk-7");
    c.shows("ol.timeline li", "timeline");
    let changed = c
        .page
        .eval("[...document.querySelectorAll('tr.changed')].map(r => r.innerText)");
    let changed = changed.to_string();
    assert!(
        changed.contains("contentHash")
            && changed.contains("h-first")
            && changed.contains("h-second"),
        "{changed}"
    );

    // Quarantine, with the payload an auditor may read.
    c.open("#/quarantine");
    c.shows("#main table tbody tr td", "quarantine");
    assert!(c.text().contains("SCHEMA_VIOLATION"));
    c.page.click("#main table tbody tr button");
    c.page.wait_for(
        "document.querySelector('#main table pre')?.textContent.includes('NOT_A_CLASS')",
        30,
        "the payload",
    );

    // Conflicts, and one resolved from the page.
    c.open("#/conflicts?status=open");
    c.shows("form.resolve", "conflicts");
    let open = c
        .page
        .eval("document.querySelectorAll('form.resolve').length")
        .as_u64()
        .unwrap();
    c.page.eval(
        "document.querySelector('form.resolve input[name=reason]').value = 'checked by hand'",
    );
    c.page.click("form.resolve button[type=submit]");
    c.page.wait_for(
        &format!(
            "document.querySelectorAll('form.resolve').length === {}",
            open - 1
        ),
        30,
        "the conflict resolved",
    );

    // Integrity: an admin starts a verification and sees it end intact.
    c.open("#/integrity");
    c.shows("#verifier-key", "integrity");
    c.page.click("#start-verify");
    // The first row of the verifications' table, once a run is recorded there.
    let run = c.page.wait_for(
        "(() => {
            const t = [...document.querySelectorAll('#main table')]
                .find(t => t.querySelector('th')?.textContent === 'finished');
            const r = t?.querySelector('tbody tr');
            return r && r.cells.length > 1 ? r.innerText : null;
        })()",
        120,
        "the verification's outcome",
    );
    assert!(
        run.as_str().unwrap().contains("intact"),
        "{run}: {}",
        c.text()
    );

    c.open("#/dashboard");
    c.shows("#dashboard .tiles", "dashboard");
    c.page.wait_for(
        "document.querySelector('#dashboard-updated')?.textContent.startsWith('Updated')",
        30,
        "the dashboard's stamp",
    );

    for name in [
        "daily",
        "weekly",
        "monthly",
        "quarantine",
        "coordination",
        "popia",
    ] {
        c.open(&format!("#/reports/{name}"));
        c.shows("#main section h2", &format!("report-{name}"));
        let csv = c.page.eval(
            "fetch(document.querySelector('a[download$=\".csv\"]').href).then(r => r.text())",
        );
        assert!(
            csv.as_str().unwrap().starts_with("section,"),
            "{name}: {csv}"
        );
        if name == "coordination" {
            assert!(c.text().contains("SAFETY"), "the report shows its classes");
        }
    }

    // CSRF: the page's own request without the token, and a form of another origin.
    let r = c.page.eval(
        "fetch('/v1/checks', {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: '{}'}).then(async r => [r.status, (await r.json()).error.code])",
    );
    assert_eq!(r, json!([403, "CSRF"]));
    let hostile = hostile_page(&format!("{url}/v1/verify"));
    let before = api.get("/v1/integrity", Some(&admin)).json()["verify_runs"]
        .as_array()
        .unwrap()
        .len();
    c.page.goto(&hostile);
    c.page.click("#go");
    c.page.wait_for(
        "document.body.innerText.includes('CSRF')",
        30,
        "the server's refusal",
    );
    let after = api.get("/v1/integrity", Some(&admin)).json();
    assert_eq!(after["verify_runs"].as_array().unwrap().len(), before);
    assert_eq!(
        after["verifying"], false,
        "the forged request started nothing"
    );

    // The same page fed a record with one byte changed says failed (last: a second tab
    // leaves the first in the background, where nothing is painted to screenshot).
    let tampered = Console {
        page: browser.new_page(),
        url: url.clone(),
    };
    tampered.page.intercept("form=sealed", |body: &[u8]| {
        let text = String::from_utf8_lossy(body).replacen("SAFETY", "SAFETX", 1);
        text.into_bytes()
    });
    tampered.open(&format!("#/record/{seq}"));
    tampered.page.wait_for(
        "document.querySelector('#proof-mark.failed')",
        60,
        "the failed mark",
    );
    assert!(
        tampered.text().contains("root mismatch"),
        "{}",
        tampered.text()
    );

    assert!(c.errors().is_empty(), "{:?}", c.errors());
    assert!(tampered.errors().is_empty(), "{:?}", tampered.errors());
    drop(tampered);

    // Sign out: the cookie is gone and the session with it.
    c.open("#/records");
    c.page.wait_for(
        "document.querySelector('#sign-out')",
        30,
        "the sign-out button",
    );
    c.page.click("#sign-out");
    c.page.wait_for(
        "document.querySelector('#sign-in')",
        30,
        "the sign-in form again",
    );
    let status = c.page.eval("fetch('/v1/session').then(r => r.status)");
    assert_eq!(status, json!(401));
    drop(c);
    drop(browser);
    server.stop();
}

/// A page of another origin with a button whose form posts to `target`.
fn hostile_page(target: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let html = format!(
        "<!doctype html><html lang=en><title>x</title><form method=post action=\"{target}\"><button id=go>Claim your prize</button></form></html>"
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    format!("http://{addr}/")
}

#[test]
fn keys_see_only_their_tenant_and_subject_on_every_page() {
    let _one = one_browser();
    let Some(browser) = Browser::launch() else {
        return;
    };
    let tmp = tempdir();
    let cli = cli(&tmp.path().join("d"));
    let appended = seed(&cli);
    let (reader_a, _) = cli.create_key(&["reader"], Some("tenant-a"), None);
    let (auditor_a, _) = cli.create_key(&["auditor"], Some("tenant-a"), None);
    let (customer, _) = cli.create_key(&["subject"], Some("shop"), Some("cust-23"));
    let server = ServerProcess::start(&cli, &["--check-every", "off"]);
    let url = server.url();
    let tenant_b_seq = appended
        .iter()
        .zip(0..)
        .find(|(_, n)| n % 3 == 0)
        .map(|(r, _)| r["seq"].as_u64().unwrap())
        .unwrap();

    let c = Console {
        page: browser.new_page(),
        url: url.clone(),
    };
    c.sign_in(&reader_a);
    let nav = c
        .page
        .eval("[...document.querySelectorAll('#nav a')].map(a => a.textContent)");
    assert_eq!(
        nav,
        json!(["Records"]),
        "a reader's console offers what a reader may read"
    );
    c.open("#/records?limit=1000");
    c.shows("#results tbody tr td a", "reader-records");
    assert!(!c.text().contains("tenant-b"), "{}", c.text());
    c.open(&format!("#/record/{tenant_b_seq}"));
    c.page
        .wait_for("document.querySelector('#main .error')", 30, "the refusal");
    assert!(c.text().contains("NOT_FOUND"), "{}", c.text());
    assert!(!c.text().contains("tenant-b"));
    c.open("#/subject/env-tenant-b-0");
    c.page.wait_for(
        "document.body.innerText.includes('Timeline (0 record(s))')",
        30,
        "an empty timeline",
    );
    c.open("#/quarantine");
    c.page
        .wait_for("document.querySelector('#main .error')", 30, "the refusal");
    assert!(!c.text().contains("tenant-b"));
    c.page.click("#sign-out");
    c.page
        .wait_for("document.querySelector('#sign-in')", 30, "signed out");

    c.sign_in(&auditor_a);
    for (hash, what, name) in [
        (
            "#/quarantine",
            "#main table tbody tr td",
            "tenant-quarantine",
        ),
        (
            "#/reports/coordination",
            "#main section h2",
            "tenant-report",
        ),
        ("#/reports/daily", "#main section h2", "tenant-daily"),
        ("#/conflicts", "#main table", "tenant-conflicts"),
    ] {
        c.open(hash);
        c.shows(what, name);
        let text = c.text();
        assert!(!text.contains("tenant-b"), "{hash}: {text}");
    }
    let total = c.page.eval("fetch('/v1/reports/coordination').then(r => r.json()).then(r => r.sections.find(s => s.id === 'by_class').series.reduce((a, s) => a + s.total, 0))");
    assert_eq!(
        total,
        json!(8),
        "tenant-a's eight decisions, none of tenant-b's four"
    );
    for hash in ["#/integrity", "#/dashboard"] {
        c.open(hash);
        c.page
            .wait_for("document.querySelector('#main .error')", 30, "the refusal");
    }
    c.page.click("#sign-out");
    c.page
        .wait_for("document.querySelector('#sign-in')", 30, "signed out");

    c.sign_in(&customer);
    c.open("#/records?limit=1000");
    c.shows("#results tbody tr td a", "subject-records");
    let subjects = c.page.eval("[...document.querySelectorAll('#results tbody tr td:nth-child(4)')].map(t => t.textContent)");
    assert_eq!(subjects, json!(["<m0-cust-23@shop>", "<m1-cust-23@shop>"]));
    assert!(!c.text().contains("cust-99"));
    assert!(c.errors().is_empty(), "{:?}", c.errors());
    drop(c);
    drop(browser);
    server.stop();
}

#[test]
fn the_console_can_be_used_with_the_keyboard_alone() {
    let _one = one_browser();
    let Some(browser) = Browser::launch() else {
        return;
    };
    let tmp = tempdir();
    let cli = cli(&tmp.path().join("d"));
    seed(&cli);
    let (auditor, _) = cli.create_key(&["auditor"], None, None);
    let server = ServerProcess::start(&cli, &["--check-every", "off"]);
    let c = Console {
        page: browser.new_page(),
        url: server.url(),
    };
    c.open("");
    c.page.wait_for(
        "document.activeElement?.id === 'key'",
        30,
        "focus on the key field",
    );
    c.page.type_text(&auditor);
    c.page.press("Enter");
    c.page
        .wait_for("document.querySelector('#principal')", 30, "signed in");
    // Tab through the page to the Quarantine link and follow it.
    let mut reached = false;
    // Sign-in leaves the focus on the page's content; the navigation is just above it.
    for _ in 0..30 {
        c.page.press("Shift+Tab");
        if c.page.eval("document.activeElement?.textContent") == json!("Quarantine") {
            reached = true;
            break;
        }
    }
    assert!(reached, "the navigation is reachable by Tab");
    c.page.press("Enter");
    c.page.wait_for(
        "document.body.dataset.route === '#/quarantine'",
        30,
        "the quarantine page",
    );
    // The filter form works from the keyboard too: Tab to the reason, choose, submit.
    c.page
        .eval("document.querySelector('select[name=reason]').focus()");
    c.page.press("ArrowDown");
    c.page.press("ArrowDown");
    c.page
        .eval("document.querySelector('form.filters button[type=submit]').focus()");
    c.page.press("Enter");
    c.page.wait_for(
        "document.body.dataset.route?.includes('reason=')",
        30,
        "the filtered quarantine",
    );
    let skip = c
        .page
        .eval("document.querySelector('a.skip').getAttribute('href')");
    assert_eq!(skip, json!("#main"));
    drop(c);
    drop(browser);
    server.stop();
}

/// The decisions a coordination report counted, over every class.
fn decisions(report: &Value) -> u64 {
    let sections = report["sections"].as_array().expect("sections");
    let by_class = sections
        .iter()
        .find(|s| s["id"] == "by_class")
        .expect("by_class");
    let series = by_class["series"].as_array().expect("series");
    series
        .iter()
        .map(|s| s["total"].as_u64().expect("a total"))
        .sum()
}

#[test]
fn reports_from_the_command_line_locally_and_through_a_server() {
    let tmp = tempdir();
    let cli = cli(&tmp.path().join("d"));
    seed(&cli);
    let json = cli.ok(&["report", "coordination"], b"").json();
    assert_eq!(decisions(&json), 12);
    let csv = cli
        .ok(&["report", "quarantine", "--format", "csv"], b"")
        .stdout;
    assert!(csv.starts_with("section,reason,count\r\n"), "{csv}");
    assert!(csv.contains("totals,SCHEMA_VIOLATION,2\r\n"), "{csv}");
    let md = cli
        .ok(
            &["report", "weekly", "--format", "md", "--from", "2026-01-01"],
            b"",
        )
        .stdout;
    assert!(md.starts_with("# Weekly compliance"), "{md}");
    let bad = cli.run(&["report", "yearly"], b"");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("no report"), "{}", bad.stderr);
    let bad = cli.run(
        &[
            "report",
            "daily",
            "--from",
            "2026-02-01",
            "--to",
            "2026-01-01",
        ],
        b"",
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("window"), "{}", bad.stderr);
    // The local read is recorded like any other.
    let recorded = cli
        .all_records()
        .into_iter()
        .filter(|r| r["type"] == "audit.access" && r["data"]["action"] == "reports.get")
        .count();
    assert!(recorded >= 3, "{recorded}");
    let (auditor, _) = cli.create_key(&["auditor"], Some("tenant-a"), None);
    let server = ServerProcess::start(&cli, &["--check-every", "off"]);
    let url = server.url();
    let remote = cli
        .ok(
            &["report", "coordination", "--url", &url, "--key", &auditor],
            b"",
        )
        .json();
    assert_eq!(
        decisions(&remote),
        8,
        "the server counts the key's tenant only"
    );
    let md = cli
        .ok(
            &[
                "report", "popia", "--format", "md", "--url", &url, "--key", &auditor,
            ],
            b"",
        )
        .stdout;
    assert!(md.starts_with("# POPIA request status"), "{md}");
    server.stop();
}
