//! The browser driver's own tests, against tiny pages served from a thread: each thing a test
//! of Sealog's pages relies on (navigation, input, artifacts, cookies, errors, rewritten
//! responses, accessibility findings) is checked here once, on a page whose answer is known.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};

use sealog_testkit::browser::{Browser, axe_path, screenshot_dir};
use serde_json::{Value, json};

/// One response of a test site: its path, extra header lines, content type and body.
struct Res {
    path: &'static str,
    content_type: &'static str,
    headers: &'static str,
    body: String,
}

fn html(path: &'static str, body: &str) -> Res {
    Res {
        path,
        content_type: "text/html; charset=utf-8",
        headers: "",
        body: body.to_string(),
    }
}

fn json_at(path: &'static str, body: &Value) -> Res {
    Res {
        path,
        content_type: "application/json",
        headers: "",
        body: body.to_string(),
    }
}

/// Serves `site` on 127.0.0.1 until the test process ends; returns its base URL. Anything
/// else is a 404.
fn serve(site: Vec<Res>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test site");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    let site = std::sync::Arc::new(site);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let site = site.clone();
            std::thread::spawn(move || answer(conn, &site));
        }
    });
    base
}

fn answer(conn: TcpStream, site: &[Res]) {
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/");
    // The rest of the head; these pages are fetched with GET only, so there is no body.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let (status, content_type, headers, body) = match site.iter().find(|r| r.path == path) {
        Some(r) => ("200 OK", r.content_type, r.headers, r.body.as_str()),
        None => ("404 Not Found", "text/plain", "", "not found"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    let mut conn = &conn;
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

/// The message of the panic `f` raises.
fn panic_of(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

#[test]
fn goto_loads_the_page_and_eval_returns_values() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![html(
        "/",
        "<!doctype html><title>Hello</title><h1>hi</h1>\
         <script>window.ready = document.readyState</script>",
    )]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    assert_eq!(page.eval("document.title"), "Hello");
    assert_eq!(page.eval("document.readyState"), "complete");
    assert_eq!(page.eval("1 + 2"), 3);
    assert_eq!(page.eval("undefined"), Value::Null);
    assert_eq!(page.eval("({a: [1, 'x']})"), json!({"a": [1, "x"]}));
    assert_eq!(
        page.eval("new Promise(r => setTimeout(() => r('later'), 50))"),
        "later"
    );
    let thrown = panic_of(|| {
        page.eval("throw new Error('boom')");
    });
    assert!(thrown.contains("Error: boom"), "{thrown}");

    // A second navigation waits for its own load, not the first one's.
    page.goto(&format!("{base}/?again"));
    assert_eq!(page.eval("location.search"), "?again");
    assert!(page.errors().is_empty(), "{:?}", page.errors());
}

#[test]
fn wait_for_polls_until_truthy_and_names_what_timed_out() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![html(
        "/",
        "<!doctype html><title>t</title>\
         <script>setTimeout(() => document.body.dataset.ready = 'yes', 300)</script>",
    )]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    assert_eq!(
        page.wait_for("document.body.dataset.ready", 10, "the timer"),
        "yes"
    );
    let timed_out = panic_of(|| {
        page.wait_for("document.body.dataset.never || 0", 1, "a flag never set");
    });
    assert!(
        timed_out.contains("a flag never set") && timed_out.contains("was last 0"),
        "{timed_out}"
    );
}

#[test]
fn click_sends_real_mouse_events() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![html(
        "/",
        "<!doctype html><title>t</title>\
         <div style='height: 2000px'>tall</div>\
         <button id='b' onclick='this.textContent = \"clicked \" + event.isTrusted'>press</button>\
         <button id='hidden' hidden>no</button>",
    )]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    page.click("#b");
    assert_eq!(
        page.eval("document.querySelector('#b').textContent"),
        "clicked true"
    );
    let missing = panic_of(|| page.click("#nothing"));
    assert!(missing.contains("no element matches #nothing"), "{missing}");
    let hidden = panic_of(|| page.click("#hidden"));
    assert!(hidden.contains("no box"), "{hidden}");
}

#[test]
fn keys_move_focus_and_activate() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![html(
        "/",
        "<!doctype html><title>t</title>\
         <button id='one' onclick='out.textContent = \"one\"'>one</button>\
         <button id='two' onclick='out.textContent = \"two\"'>two</button>\
         <p id='out'></p><p id='keys'></p>\
         <script>addEventListener('keydown', e =>\
           keys.textContent += e.key + '/' + e.code + '/' + e.shiftKey + ' ')</script>",
    )]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    let focused = "document.activeElement.id";
    page.eval("document.querySelector('#one').focus()");
    page.press("Tab");
    assert_eq!(page.eval(focused), "two");
    page.press("Shift+Tab");
    assert_eq!(page.eval(focused), "one");
    page.press("Space");
    assert_eq!(page.eval("out.textContent"), "one");
    page.press("Tab");
    page.press("Enter");
    assert_eq!(page.eval("out.textContent"), "two");

    page.eval("keys.textContent = ''");
    for key in ["ArrowDown", "ArrowUp", "Escape", "Backspace"] {
        page.press(key);
    }
    assert_eq!(
        page.eval("keys.textContent"),
        "ArrowDown/ArrowDown/false ArrowUp/ArrowUp/false Escape/Escape/false \
         Backspace/Backspace/false "
    );
    let unknown = panic_of(|| page.press("F13"));
    assert!(unknown.contains("press F13"), "{unknown}");
}

#[test]
fn type_text_fills_the_focused_input() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![html(
        "/",
        "<!doctype html><title>t</title><label>Name <input id='name'></label>",
    )]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    page.click("#name");
    page.type_text("Zoë 42");
    assert_eq!(page.eval("document.querySelector('#name').value"), "Zoë 42");
    page.press("Backspace");
    assert_eq!(page.eval("document.querySelector('#name').value"), "Zoë 4");
}

#[test]
fn screenshot_writes_a_png_of_the_whole_page() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![html(
        "/",
        "<!doctype html><title>t</title><style>body { margin: 0 }</style>\
         <div style='height: 2500px; background: linear-gradient(#fff, #36c)'>tall</div>",
    )]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    // The page's width without the scroll bar, read before the capture, which hides the bar
    // until the next layout.
    let width = page.eval("document.documentElement.clientWidth");
    let path = screenshot_dir().join("testkit-browser/tall.png");
    let _ = std::fs::remove_file(&path);
    page.screenshot(&path);
    let png = std::fs::read(&path).expect("the screenshot was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    // IHDR's width and height: the whole page, beyond the 900 pixels of the window.
    assert_eq!((json!(be(16)), be(20)), (width, 2500));
}

#[test]
fn cookies_include_the_http_only_ones() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![Res {
        headers: "Set-Cookie: sid=s3cr3t; Path=/; HttpOnly; SameSite=Strict\r\n",
        ..html("/", "<!doctype html><title>t</title>")
    }]);
    let page = b.new_page();
    page.goto(&format!("{base}/"));
    let cookies = page.cookies();
    let sid = cookies
        .iter()
        .find(|c| c["name"] == "sid")
        .unwrap_or_else(|| panic!("no sid cookie in {cookies:?}"));
    assert_eq!(sid["value"], "s3cr3t");
    assert_eq!(sid["httpOnly"], true);
    assert_eq!(
        page.eval("document.cookie"),
        "",
        "HttpOnly hides it from scripts"
    );
}

#[test]
fn errors_report_exceptions_and_console_errors_per_page() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![
        html(
            "/bad",
            "<!doctype html><title>t</title>\
             <script>console.error('noisy', 42); setTimeout(() => { throw new Error('kaput') })</script>",
        ),
        html("/good", "<!doctype html><title>t</title><p>fine</p>"),
    ]);
    let bad = b.new_page();
    let good = b.new_page();
    good.goto(&format!("{base}/good"));
    bad.goto(&format!("{base}/bad"));
    let errors = sealog_testkit::wait_for(10, "both errors", || {
        let e = bad.errors();
        (e.len() >= 2).then_some(e)
    });
    assert!(errors[0].contains("console.error: noisy 42"), "{errors:?}");
    assert!(errors[1].contains("Error: kaput"), "{errors:?}");
    assert!(good.errors().is_empty(), "{:?}", good.errors());
}

#[test]
fn intercept_rewrites_the_responses_the_page_fetches() {
    let Some(b) = Browser::launch() else { return };
    let base = serve(vec![
        html(
            "/",
            "<!doctype html><title>t</title><p id='out'></p>\
             <script>Promise.all(['/api/value', '/api/other'].map(u => fetch(u).then(r => r.json())))\
               .then(([v, o]) => out.textContent = v.value + ' ' + v.note + ' ' + o.other)</script>",
        ),
        json_at("/api/value", &json!({"value": 1, "note": "as served"})),
        json_at("/api/other", &json!({"other": "left"})),
    ]);
    let page = b.new_page();
    page.intercept("/api/value", |body| {
        let mut v: Value = serde_json::from_slice(body).expect("the served JSON");
        v["value"] = json!(42);
        v.to_string().into_bytes()
    });
    page.intercept("/api/value", |body| {
        String::from_utf8_lossy(body)
            .replace("as served", "rewritten ✓")
            .into_bytes()
    });
    page.intercept("/api/other", |_| br#"{"other":"right"}"#.to_vec());
    page.goto(&format!("{base}/"));
    assert_eq!(
        page.wait_for("out.textContent", 10, "the fetched values"),
        "42 rewritten ✓ right"
    );
    assert!(page.errors().is_empty(), "{:?}", page.errors());
}

#[test]
fn axe_finds_serious_violations_and_passes_a_clean_page() {
    let Some(b) = Browser::launch() else { return };
    if !axe_path().exists() {
        sealog_testkit::missing("axe-core", "scripts/test fetches it");
        return;
    }
    let base = serve(vec![
        html(
            "/bad",
            "<!doctype html><title>bad</title><img src='/x.png'><form><input type='text'></form>",
        ),
        html(
            "/clean",
            "<!doctype html><html lang='en'><title>Clean</title><main><h1>Clean</h1>\
             <form><label for='q'>Search</label><input id='q' type='search'>\
             <button>Go</button></form></main></html>",
        ),
    ]);
    let page = b.new_page();
    page.goto(&format!("{base}/bad"));
    let found = page.axe();
    let ids: Vec<&str> = found.iter().filter_map(|v| v["id"].as_str()).collect();
    assert!(
        ids.contains(&"image-alt") && ids.contains(&"label"),
        "{found:#?}"
    );
    let alt = &found[ids.iter().position(|i| *i == "image-alt").expect("found")];
    assert_eq!(alt["nodes"], json!(["img"]), "{alt}");
    assert!(matches!(
        alt["impact"].as_str(),
        Some("serious" | "critical")
    ));

    page.goto(&format!("{base}/clean"));
    assert_eq!(page.axe(), Vec::<Value>::new());
    // Injected once per document: a second run on the same page reuses it.
    assert_eq!(page.axe(), Vec::<Value>::new());
}
