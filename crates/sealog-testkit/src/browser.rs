//! Headless Chromium for the tests that check what a person sees: pages driven with real
//! input events and inspected over the DevTools protocol.
//!
//! Chromium is spoken to through `--remote-debugging-pipe` (commands on its fd 3, answers and
//! events from its fd 4, each a JSON text ended by a NUL byte) rather than a debugging port:
//! there is no port to race for, no other process on the machine can connect, and the browser
//! exits by itself when the test process dies and the pipe closes.
//!
//! Two threads serve a browser. The reader hands each answer to the caller waiting for its id
//! and queues the events; a second thread handles the events, so that a handler (a response
//! rewrite) can send commands and wait for their answers while the reader goes on reading.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, PipeReader, PipeWriter, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one command may take: generous, because a loaded CI machine is slow, and a hung
/// browser must still fail the test rather than hang it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Where tests save screenshots and other artifacts worth looking at after a run.
pub fn screenshot_dir() -> PathBuf {
    workspace_root().join("target/screenshots")
}

/// Where [`Page::axe`] reads axe-core from: `SEALOG_AXE_JS`, else the copy `scripts/test`
/// fetches. Tests that need axe can check it exists before asserting on findings.
pub fn axe_path() -> PathBuf {
    std::env::var_os("SEALOG_AXE_JS").map_or_else(
        || workspace_root().join("target/test-deps/axe-core/axe.min.js"),
        PathBuf::from,
    )
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the crate lies two levels below the workspace root")
        .to_path_buf()
}

/// A headless Chromium with a fresh profile; dropping it kills every process of the browser.
pub struct Browser {
    child: Child,
    conn: Arc<Conn>,
    /// The profile and the browser's log; removed once the processes are gone.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (`SEALOG_CHROMIUM`, else Debian's `/usr/bin/chromium`), or returns
    /// `None` after [`crate::missing`] when it is not installed (under CI that panics).
    pub fn launch() -> Option<Browser> {
        let bin = std::env::var_os("SEALOG_CHROMIUM")
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        if !bin.exists() {
            crate::missing(
                &format!("Chromium ({})", bin.display()),
                "apt-get install -y chromium",
            );
            return None;
        }
        let dir = crate::tempdir();
        let log_path = dir.path().join("chromium.log");
        let log = File::create(&log_path).expect("create chromium.log");
        // Chromium's own temporary files (its singleton socket among them) go here, so that
        // they are removed with the profile: a killed browser cannot remove them itself.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("create chromium's TMPDIR");
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            // The machine's network is closed: whatever Chromium would fetch for itself only
            // fails slowly and fills the log.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-pipe",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(["--window-size=1280,900", "about:blank"])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("share chromium.log"))
        .stderr(log)
        // Its own process group, so that Drop reaches the renderers and helpers too.
        .process_group(0);

        // Both pipes are close-on-exec (std makes them so): a child that another test thread
        // starts meanwhile must not inherit an end, or the reader would never see the EOF.
        let (cmd_read, cmd_write) = std::io::pipe().expect("a pipe for the commands");
        let (out_read, out_write) = std::io::pipe().expect("a pipe for the answers");
        let child = spawn_on_3_and_4(&mut cmd, cmd_read.as_raw_fd(), out_write.as_raw_fd())
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        drop((cmd_read, out_write));

        let conn = Conn::start(cmd_write, out_read, log_path);
        let browser = Browser {
            child,
            conn,
            _dir: dir,
        };
        browser.conn.cmd(None, "Browser.getVersion", json!({}));
        Some(browser)
    }

    /// A new tab at about:blank, listening for errors from its creation on.
    pub fn new_page(&self) -> Page<'_> {
        let conn = &self.conn;
        let created = conn.cmd(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = text(&created["targetId"], "Target.createTarget's targetId");
        let attached = conn.cmd(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        let session = text(&attached["sessionId"], "Target.attachToTarget's sessionId");
        let state = Arc::new(Session::default());
        lock(&conn.sessions).insert(session.clone(), state.clone());
        let page = Page {
            browser: self,
            target,
            session,
            state,
        };
        for domain in ["Page", "Runtime", "Network", "Log"] {
            page.cmd(&format!("{domain}.enable"), json!({}));
        }
        page.cmd("Page.setLifecycleEventsEnabled", json!({"enabled": true}));
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser process is our unreaped child until `wait`, so its id, which is also the
        // group's, cannot have been taken by another process yet.
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with `cmd_read` as its fd 3 and `out_write` as its fd 4.
#[allow(unsafe_code)]
fn spawn_on_3_and_4(
    cmd: &mut Command,
    cmd_read: RawFd,
    out_write: RawFd,
) -> std::io::Result<Child> {
    // SAFETY: the closure runs in the forked child before exec and calls only fcntl and dup2,
    // which are async-signal-safe, on descriptors the child inherited.
    unsafe {
        cmd.pre_exec(move || {
            // Copy both above 4 first: a source that already is fd 3 or 4 would be overwritten
            // by the other dup2, or keep its close-on-exec flag (dup2 onto itself does
            // nothing). dup2 clears the flag on 3 and 4; the copies close at exec.
            let r = libc::fcntl(cmd_read, libc::F_DUPFD_CLOEXEC, 5);
            let w = libc::fcntl(out_write, libc::F_DUPFD_CLOEXEC, 5);
            if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

#[allow(unsafe_code)]
fn kill_group(pid: u32) {
    let pgid = i32::try_from(pid).expect("a process id fits an i32");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// One tab, driven through its own flattened DevTools session.
pub struct Page<'b> {
    browser: &'b Browser,
    target: String,
    session: String,
    state: Arc<Session>,
}

impl Page<'_> {
    /// Navigates and returns once that navigation's document has fired its load event.
    pub fn goto(&self, url: &str) {
        let nav = self.cmd("Page.navigate", json!({"url": url}));
        if let Some(e) = nav["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("goto {url}: {e}");
        }
        // No loader: a navigation within the same document, which loads nothing.
        let Some(loader) = nav["loaderId"].as_str() else {
            return;
        };
        let loaded = poll(COMMAND_TIMEOUT, || {
            lock(&self.state.loaded).contains(loader).then_some(())
        });
        assert!(
            loaded.is_some(),
            "goto {url}: no load event within {} s",
            COMMAND_TIMEOUT.as_secs()
        );
    }

    /// The value of `js` (awaited if it is a promise), as JSON; `undefined` is `null`, and
    /// values JSON cannot hold (`NaN`, `-0`, bigints) are their text. Panics if it throws.
    pub fn eval(&self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|f| self.fail(&format!("eval `{}`", brief(js)), f))
    }

    /// Polls `js_predicate` until it is truthy (not null, false, 0 or "") and returns that
    /// value. A predicate that throws is polled again: the page may be between documents.
    pub fn wait_for(&self, js_predicate: &str, secs: u64, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last;
        loop {
            match self.try_eval(js_predicate) {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => last = v.to_string(),
                Err(Failure::Protocol(e)) => last = e,
                Err(f) => self.fail(&format!("waiting for {what}"), f),
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for {what}: `{}` was last {last}",
                brief(js_predicate)
            );
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Clicks the centre of the first element matching `css_selector` with real mouse events,
    /// as a person would: it must exist, have a box, and not be covered by another element.
    pub fn click(&self, css_selector: &str) {
        let sel = serde_json::to_string(css_selector).expect("a string is JSON");
        let spot = self.eval(&format!(
            r#"(() => {{
                const el = document.querySelector({sel});
                if (!el) return null;
                el.scrollIntoView({{block: "center", inline: "center", behavior: "instant"}});
                const r = el.getBoundingClientRect();
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const hit = document.elementFromPoint(x, y);
                const covered = hit && hit !== el && !el.contains(hit);
                return {{x, y, w: r.width, h: r.height,
                         covered: covered ? hit.outerHTML.slice(0, 200) : null}};
            }})()"#
        ));
        assert!(!spot.is_null(), "click: no element matches {css_selector}");
        assert!(
            spot["w"].as_f64() > Some(0.0) && spot["h"].as_f64() > Some(0.0),
            "click {css_selector}: the element has no box (hidden?)"
        );
        if let Some(cover) = spot["covered"].as_str() {
            panic!("click {css_selector}: the element is covered by {cover}");
        }
        let (x, y) = (&spot["x"], &spot["y"]);
        self.cmd(
            "Input.dispatchMouseEvent",
            json!({"type": "mouseMoved", "x": x, "y": y}),
        );
        for (kind, buttons) in [("mousePressed", 1), ("mouseReleased", 0)] {
            self.cmd(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left",
                       "buttons": buttons, "clickCount": 1}),
            );
        }
    }

    /// Types `text` into the focused element, as an input method would commit it.
    pub fn type_text(&self, text: &str) {
        self.cmd("Input.insertText", json!({ "text": text }));
    }

    /// Presses and releases one key: Tab, Enter, Escape, ArrowDown, ArrowUp, Space or
    /// Backspace, optionally as `Shift+KEY`.
    pub fn press(&self, key: &str) {
        let (shift, name) = match key.strip_prefix("Shift+") {
            Some(name) => (true, name),
            None => (false, key),
        };
        let k = Key::named(name).unwrap_or_else(|| {
            panic!("press {key}: not one of Tab, Enter, Escape, ArrowDown, ArrowUp, Space, Backspace (optionally Shift+)")
        });
        let modifiers = if shift { 8 } else { 0 };
        let shift_key = json!({"key": "Shift", "code": "ShiftLeft",
                               "windowsVirtualKeyCode": 16, "location": 1});
        if shift {
            self.key_event("rawKeyDown", &shift_key, 8);
        }
        let mut down = json!({"key": k.key, "code": k.code, "windowsVirtualKeyCode": k.vk});
        // With text the key also produces a character, which is what activates a focused
        // button or submits a form; without, Chromium runs only the key's default action.
        let kind = match k.text {
            Some(t) => {
                down["text"] = json!(t);
                down["unmodifiedText"] = json!(t);
                "keyDown"
            }
            None => "rawKeyDown",
        };
        self.key_event(kind, &down, modifiers);
        self.key_event(
            "keyUp",
            &json!({"key": k.key, "code": k.code, "windowsVirtualKeyCode": k.vk}),
            modifiers,
        );
        if shift {
            self.key_event("keyUp", &shift_key, 0);
        }
    }

    fn key_event(&self, kind: &str, fields: &Value, modifiers: u8) {
        let mut params = fields.clone();
        params["type"] = json!(kind);
        params["modifiers"] = json!(modifiers);
        self.cmd("Input.dispatchKeyEvent", params);
    }

    /// Saves a PNG of the whole page, not only the viewport, creating parent directories.
    pub fn screenshot(&self, path: &Path) {
        let metrics = self.cmd("Page.getLayoutMetrics", json!({}));
        let size = if metrics["cssContentSize"].is_object() {
            &metrics["cssContentSize"]
        } else {
            &metrics["contentSize"]
        };
        let side = |k: &str| size[k].as_f64().unwrap_or(1.0).ceil().max(1.0);
        let shot = self.cmd(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": side("width"), "height": side("height"),
                            "scale": 1}}),
        );
        let png = base64_decode(&text(&shot["data"], "the screenshot's data"))
            .unwrap_or_else(|e| panic!("the screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The cookies the browser would send for this page's URL, HttpOnly ones included.
    pub fn cookies(&self) -> Vec<Value> {
        let got = self.cmd("Network.getCookies", json!({}));
        got["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// Uncaught exceptions and console or browser errors seen on this page since it was
    /// created, oldest first: a test asserts a page had none. They arrive as events, so a test
    /// expecting one polls for it.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.state.errors).clone()
    }

    /// From now on, the body of every response this page receives whose URL contains
    /// `url_substring` is passed through `rewrite` before the page sees it; status and
    /// headers stay. Rewrites registered for the same URL apply in registration order.
    pub fn intercept(
        &self,
        url_substring: &str,
        rewrite: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) {
        let first = {
            let mut rewrites = lock(&self.state.rewrites);
            rewrites.push((url_substring.to_string(), Arc::new(rewrite)));
            rewrites.len() == 1
        };
        if first {
            self.cmd(
                "Fetch.enable",
                json!({"patterns": [{"urlPattern": "*", "requestStage": "Response"}]}),
            );
        }
    }

    /// The serious and critical accessibility violations axe-core finds in the current
    /// document, each as `{id, impact, help, nodes: [selector…]}`. Empty, after
    /// [`crate::missing`], when axe-core is not there (under CI that panics).
    pub fn axe(&self) -> Vec<Value> {
        let path = axe_path();
        let Ok(source) = std::fs::read_to_string(&path) else {
            crate::missing(
                &format!("axe-core ({})", path.display()),
                "scripts/test fetches it",
            );
            return Vec::new();
        };
        if self.eval("typeof window.axe") != "object" {
            self.eval(&source);
        }
        let found = self.eval(
            r#"axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.map(n => n.target.flat(Infinity).join(" "))})))"#,
        );
        found.as_array().cloned().unwrap_or_default()
    }

    fn try_eval(&self, js: &str) -> Result<Value, Failure> {
        let got = self.browser.conn.call(
            Some(&self.session),
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(ex) = got.get("exceptionDetails") {
            let thrown = &ex["exception"];
            let why = thrown["description"]
                .as_str()
                .map(str::to_string)
                .or_else(|| thrown.get("value").map(Value::to_string))
                .unwrap_or_else(|| ex["text"].as_str().unwrap_or("an exception").to_string());
            return Err(Failure::Protocol(format!("threw {why}")));
        }
        let result = &got["result"];
        if let Some(v) = result["unserializableValue"].as_str() {
            return Ok(Value::String(v.to_string()));
        }
        Ok(result.get("value").cloned().unwrap_or(Value::Null))
    }

    fn cmd(&self, method: &str, params: Value) -> Value {
        self.browser.conn.cmd(Some(&self.session), method, params)
    }

    fn fail(&self, what: &str, f: Failure) -> ! {
        self.browser.conn.fail(what, f)
    }
}

impl Drop for Page<'_> {
    fn drop(&mut self) {
        lock(&self.browser.conn.sessions).remove(&self.session);
        // Not waited for: a page dropped while a test panics must not hang it further.
        let _ = self.browser.conn.send(
            None,
            "Target.closeTarget",
            &json!({"targetId": self.target}),
            None,
        );
    }
}

/// What a key press sends: the DOM `key` and `code`, the Windows virtual key code Chromium
/// maps default actions from, and the character the key types, if any.
struct Key {
    key: &'static str,
    code: &'static str,
    vk: u32,
    text: Option<&'static str>,
}

impl Key {
    fn named(name: &str) -> Option<Key> {
        let (key, code, vk, text) = match name {
            "Tab" => ("Tab", "Tab", 9, None),
            "Enter" => ("Enter", "Enter", 13, Some("\r")),
            "Escape" => ("Escape", "Escape", 27, None),
            "Space" => (" ", "Space", 32, Some(" ")),
            "ArrowUp" => ("ArrowUp", "ArrowUp", 38, None),
            "ArrowDown" => ("ArrowDown", "ArrowDown", 40, None),
            "Backspace" => ("Backspace", "Backspace", 8, None),
            _ => return None,
        };
        Some(Key {
            key,
            code,
            vk,
            text,
        })
    }
}

/// What the event thread keeps for one page.
#[derive(Default)]
struct Session {
    errors: Mutex<Vec<String>>,
    /// The loaders whose document has fired its load event.
    loaded: Mutex<HashSet<String>>,
    rewrites: Mutex<Vec<(String, Arc<Rewrite>)>>,
}

type Rewrite = dyn Fn(&[u8]) -> Vec<u8> + Send + Sync;

/// Why a command got no result.
enum Failure {
    /// Chromium answered with an error, or the evaluated script threw.
    Protocol(String),
    Timeout,
    Closed,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Protocol(m) => f.write_str(m),
            Failure::Timeout => write!(f, "no answer within {} s", COMMAND_TIMEOUT.as_secs()),
            Failure::Closed => f.write_str("Chromium closed the pipe (it exited or crashed)"),
        }
    }
}

/// The pipe to one Chromium and what is waiting on it.
struct Conn {
    to_chromium: Mutex<PipeWriter>,
    next_id: AtomicU64,
    waiting: Mutex<Waiting>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    log: PathBuf,
}

#[derive(Default)]
struct Waiting {
    /// Set once the reader saw the end of the pipe: no answer can come any more.
    closed: bool,
    callers: HashMap<u64, mpsc::Sender<Result<Value, Failure>>>,
}

impl Conn {
    fn start(to_chromium: PipeWriter, from_chromium: PipeReader, log: PathBuf) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            to_chromium: Mutex::new(to_chromium),
            next_id: AtomicU64::new(1),
            waiting: Mutex::default(),
            sessions: Mutex::default(),
            log,
        });
        let (events_tx, events_rx) = mpsc::channel();
        let reader = conn.clone();
        std::thread::Builder::new()
            .name("chromium-reader".into())
            .spawn(move || reader.read(from_chromium, &events_tx))
            .expect("start the chromium reader thread");
        let handler = conn.clone();
        std::thread::Builder::new()
            .name("chromium-events".into())
            .spawn(move || {
                for event in events_rx {
                    handler.on_event(&event);
                }
            })
            .expect("start the chromium event thread");
        conn
    }

    /// The reader thread: answers to their callers, events to the event thread.
    fn read(&self, from_chromium: PipeReader, events: &mpsc::Sender<Value>) {
        let mut from = BufReader::new(from_chromium);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match from.read_until(0, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&0) {
                buf.pop();
            }
            let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                eprintln!(
                    "browser: not JSON from chromium: {}",
                    String::from_utf8_lossy(&buf)
                );
                continue;
            };
            if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                let caller = lock(&self.waiting).callers.remove(&id);
                if let Some(caller) = caller {
                    let answer = match msg.get("error") {
                        Some(e) => Err(Failure::Protocol(protocol_error(e))),
                        None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    let _ = caller.send(answer);
                }
            } else if msg.get("method").is_some() {
                // Fails only if the event thread died; answers must still reach their callers.
                let _ = events.send(msg);
            }
        }
        let mut waiting = lock(&self.waiting);
        waiting.closed = true;
        // Dropping the senders wakes every caller still waiting.
        waiting.callers.clear();
    }

    /// Writes one command; with `answer`, registers it for the reply first.
    fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: &Value,
        answer: Option<mpsc::Sender<Result<Value, Failure>>>,
    ) -> Result<u64, Failure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        if let Some(tx) = answer {
            let mut waiting = lock(&self.waiting);
            if waiting.closed {
                return Err(Failure::Closed);
            }
            waiting.callers.insert(id, tx);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("a command serializes");
        bytes.push(0);
        let written = lock(&self.to_chromium).write_all(&bytes);
        if written.is_err() {
            lock(&self.waiting).callers.remove(&id);
            return Err(Failure::Closed);
        }
        Ok(id)
    }

    fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, Failure> {
        let (tx, rx) = mpsc::channel();
        let id = self.send(session, method, &params, Some(tx))?;
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                lock(&self.waiting).callers.remove(&id);
                Err(Failure::Timeout)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Failure::Closed),
        }
    }

    fn cmd(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.call(session, method, params)
            .unwrap_or_else(|f| self.fail(method, f))
    }

    /// Panics with `what` went wrong; when the browser itself failed, with its log's end.
    fn fail(&self, what: &str, f: Failure) -> ! {
        if let Failure::Protocol(_) = f {
            panic!("{what}: {f}");
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        panic!("{what}: {f}\n--- the end of chromium's log ---\n{tail}");
    }

    fn on_event(&self, event: &Value) {
        let Some(session_id) = event["sessionId"].as_str() else {
            return;
        };
        let Some(session) = lock(&self.sessions).get(session_id).cloned() else {
            return;
        };
        let p = &event["params"];
        let error = |e: String| lock(&session.errors).push(e);
        match event["method"].as_str().unwrap_or_default() {
            "Page.lifecycleEvent" if p["name"] == "load" => {
                if let Some(loader) = p["loaderId"].as_str() {
                    lock(&session.loaded).insert(loader.to_string());
                }
            }
            "Runtime.exceptionThrown" => {
                let ex = &p["exceptionDetails"];
                let why = ex["exception"]["description"]
                    .as_str()
                    .or(ex["text"].as_str())
                    .unwrap_or("an exception");
                error(format!("uncaught: {why}"));
            }
            "Runtime.consoleAPICalled" if p["type"] == "error" => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|a| match (&a["value"], a["description"].as_str()) {
                        (Value::String(s), _) => s.clone(),
                        (_, Some(d)) => d.to_string(),
                        (v, None) => v.to_string(),
                    })
                    .collect();
                error(format!("console.error: {}", args.join(" ")));
            }
            // The browser asks for /favicon.ico by itself when a page names no icon; that
            // request failing is not the page's error.
            "Log.entryAdded"
                if p["entry"]["level"] == "error"
                    && !p["entry"]["url"]
                        .as_str()
                        .is_some_and(|u| u.ends_with("/favicon.ico")) =>
            {
                let entry = &p["entry"];
                let mut e = format!(
                    "{}: {}",
                    entry["source"].as_str().unwrap_or("log"),
                    entry["text"].as_str().unwrap_or_default()
                );
                if let Some(url) = entry["url"].as_str() {
                    e += &format!(" ({url})");
                }
                error(e);
            }
            "Inspector.targetCrashed" => error("the page crashed".to_string()),
            "Fetch.requestPaused" => self.on_paused(session_id, &session, p),
            _ => {}
        }
    }

    /// A response paused by an [`Page::intercept`]: rewritten when a rewrite matches its URL,
    /// otherwise let through unchanged.
    fn on_paused(&self, session_id: &str, session: &Session, p: &Value) {
        let id = p["requestId"].as_str().unwrap_or_default();
        let url = p["request"]["url"].as_str().unwrap_or_default();
        let rewrites: Vec<Arc<Rewrite>> = lock(&session.rewrites)
            .iter()
            .filter(|(part, _)| url.contains(part.as_str()))
            .map(|(_, f)| f.clone())
            .collect();
        let status = p["responseStatusCode"].as_u64();
        let has_body = status.is_some_and(|s| !(300..400).contains(&s))
            && p.get("responseErrorReason").is_none();
        if rewrites.is_empty() || !has_body {
            let done = self.call(
                Some(session_id),
                "Fetch.continueRequest",
                json!({"requestId": id}),
            );
            // Fails only when the request is gone already (the page navigated away).
            if let Err(e) = done {
                eprintln!("browser: letting {url} through: {e}");
            }
            return;
        }
        if let Err(e) = self.rewrite(session_id, id, p, &rewrites) {
            lock(&session.errors).push(format!("intercepting {url}: {e}"));
            let _ = self.call(
                Some(session_id),
                "Fetch.failRequest",
                json!({"requestId": id, "errorReason": "Failed"}),
            );
        }
    }

    fn rewrite(
        &self,
        session_id: &str,
        id: &str,
        p: &Value,
        rewrites: &[Arc<Rewrite>],
    ) -> Result<(), String> {
        let got = self
            .call(
                Some(session_id),
                "Fetch.getResponseBody",
                json!({"requestId": id}),
            )
            .map_err(|e| format!("Fetch.getResponseBody: {e}"))?;
        let raw = got["body"].as_str().unwrap_or_default();
        let mut body = if got["base64Encoded"] == true {
            base64_decode(raw)?
        } else {
            raw.as_bytes().to_vec()
        };
        for f in rewrites {
            body = catch_unwind(AssertUnwindSafe(|| f(&body)))
                .map_err(|_| "the rewrite panicked".to_string())?;
        }
        // The body is new, and Chromium has already decoded the old one.
        let headers: Vec<&Value> = p["responseHeaders"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|h| {
                let name = h["name"].as_str().unwrap_or_default();
                !name.eq_ignore_ascii_case("content-length")
                    && !name.eq_ignore_ascii_case("content-encoding")
            })
            .collect();
        self.call(
            Some(session_id),
            "Fetch.fulfillRequest",
            json!({"requestId": id, "responseCode": p["responseStatusCode"],
                   "responseHeaders": headers, "body": base64_encode(&body)}),
        )
        .map(drop)
        .map_err(|e| format!("Fetch.fulfillRequest: {e}"))
    }
}

/// Chromium's error answer as a sentence: its message, then any detail it gave.
fn protocol_error(e: &Value) -> String {
    let message = e["message"]
        .as_str()
        .map_or_else(|| e.to_string(), str::to_string);
    match e["data"].as_str() {
        Some(data) => format!("{message} ({data})"),
        None => message,
    }
}

/// Calls `f` every [`POLL_EVERY`] until it returns `Some`, or `None` after `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// A lock that a panic elsewhere (a failing test) does not make unusable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn text(v: &Value, what: &str) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
        .to_string()
}

/// JavaScript's truthiness, as far as JSON shows it.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty() && s != "NaN" && s != "-0",
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The start of a script, for messages: the whole of a long one is noise.
fn brief(js: &str) -> String {
    let one_line = js.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(BASE64[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("not base64: byte {c:#04x}")),
        };
        acc = (acc << 6 | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}
