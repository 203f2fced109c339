//! The browser-test harness: a headless Chromium driven over WebDriver (`chromedriver`), one of
//! each per [`Browser`], pointed at a [`TestApp`].
//!
//! Each `Browser` starts its own `chromedriver` on a free loopback port (in a process group of
//! its own, killed with everything under it on drop) and opens one session with a fresh
//! profile directory, so tests running in parallel share nothing.
//!
//! The browser talks to the app at `http://localhost:PORT`, not `http://127.0.0.1:PORT`: the
//! app's cookies are `__Host-` cookies, which must be `Secure`, and Chromium treats
//! `http://localhost` as a secure context that keeps them (`secure_cookie_on_localhost` proves it).
//!
//! Every method panics on failure with the current URL and the start of the page's text.
//! Methods that act on an element (`fill`, `click`, `text`, `attr`, `upload`, `select`) wait up
//! to [`TIMEOUT`] for it to exist; `exists` does not wait.
//!
//! Environment:
//! - `CAREPORT_TEST_CHROMIUM`: the browser binary (default `/usr/bin/chromium`);
//! - `CAREPORT_TEST_CHROMEDRIVER`: the driver (default `/usr/bin/chromedriver`);
//! - `CAREPORT_TEST_SCREENSHOTS`: where [`Browser::screenshot`] and [`Browser::axe`] write
//!   (default `$CARGO_TARGET_DIR/screenshots`, else `target/screenshots` in the workspace);
//! - `CI`: when set, a missing browser fails the test instead of skipping it
//!   (`.ci/install-browser.sh` installs it).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use careport_tests::TestApp;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long the `wait_*` methods, and the element lookups of the others, wait.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How often they look again.
const POLL: Duration = Duration::from_millis(100);
/// The desktop viewport (the page's `innerWidth` × `innerHeight`, and the screenshot's size).
pub const DESKTOP: (u32, u32) = (1280, 900);
/// The phone viewport of [`Browser::screenshot`].
pub const PHONE: (u32, u32) = (390, 844);

const CHROME_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,900",
    "--lang=en",
];

fn chromium_path() -> PathBuf {
    std::env::var_os("CAREPORT_TEST_CHROMIUM")
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn chromedriver_path() -> PathBuf {
    std::env::var_os("CAREPORT_TEST_CHROMEDRIVER")
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// The folder for screenshots and axe reports (created).
pub fn output_dir() -> PathBuf {
    let dir = std::env::var_os("CAREPORT_TEST_SCREENSHOTS")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").filter(|s| !s.is_empty()).map(|t| PathBuf::from(t).join("screenshots"))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create the screenshot folder {}: {e}", dir.display()));
    dir
}

/// A free loopback port (bound, then released: the driver binds it right after).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The first `max` characters of `s`, whitespace collapsed.
fn snippet(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// One axe violation on a line: rule, impact, help, link and the first target selectors.
fn axe_line(v: &Value) -> String {
    let targets: Vec<String> = v["targets"].as_array().into_iter().flatten().take(3).map(ToString::to_string).collect();
    format!(
        "  - {} [{}]: {} ({}) at {}",
        v["id"].as_str().unwrap_or("?"),
        v["impact"].as_str().unwrap_or("?"),
        v["help"].as_str().unwrap_or(""),
        v["helpUrl"].as_str().unwrap_or(""),
        targets.join(", ")
    )
}

/// `chromedriver` and everything it started (its process group), killed on drop.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn spawn(port: u16, log: PathBuf) -> Self {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).expect("create the chromedriver log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(chromedriver_path())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // A group of its own: drop kills Chromium with it, even if the session never closed.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver_path().display()));
        Self { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `/status` says ready; `Err` (with the log) if the driver exits or never answers.
    async fn ready(&mut self, within: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("reqwest client");
        let status = format!("{}/status", self.url());
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(code)) = self.child.try_wait() {
                return Err(format!("chromedriver exited ({code}): {}", self.log_text()));
            }
            if let Ok(res) = client.get(&status).send().await
                && let Ok(body) = res.json::<Value>().await
                && body["value"]["ready"] == Value::Bool(true)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("chromedriver did not answer on {status} within {within:?}: {}", self.log_text()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group (chromedriver, Chromium and its helpers). No libc (unsafe is
        // forbidden): kill(1) does it.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium session on one app.
pub struct Browser {
    client: Option<Client>,
    /// `http://localhost:PORT` of the app.
    base: String,
    // Dropped after the client (fields drop in order): the driver, then the profile and log.
    _driver: Driver,
    _profile: TempDir,
}

impl Browser {
    /// Whether Chromium and chromedriver are installed. When they are not: `false` on a
    /// developer's machine (the test should return early: it is skipped), a panic under CI
    /// (env `CI` set), where a missing browser is a failure.
    pub fn available() -> bool {
        let missing: Vec<String> = [chromium_path(), chromedriver_path()]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            return true;
        }
        let msg = format!(
            "browser tests need {} (install with `bash .ci/install-browser.sh`, or set CAREPORT_TEST_CHROMIUM / CAREPORT_TEST_CHROMEDRIVER)",
            missing.join(" and ")
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED: {msg}");
        false
    }

    /// Start chromedriver and a Chromium session for `app`, with a 1280×900 viewport.
    pub async fn start(app: &TestApp) -> Browser {
        let started = Instant::now();
        let profile = tempfile::Builder::new().prefix("careport-chromium-").tempdir().expect("profile tempdir");
        let log = profile.path().join("chromedriver.log");
        // A port taken between our probe and chromedriver's bind: try another.
        let mut tries = 0;
        let driver = loop {
            let mut driver = Driver::spawn(free_port(), log.clone());
            match driver.ready(Duration::from_secs(20)).await {
                Ok(()) => break driver,
                Err(e) if tries < 2 && e.contains("ddress already in use") => tries += 1,
                Err(e) => panic!("{e}"),
            }
        };
        let driver_ready = started.elapsed();

        let user_data = profile.path().join("profile");
        let mut args: Vec<String> = CHROME_ARGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"script": 30_000, "pageLoad": 30_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": chromium_path().to_string_lossy(),
                "args": args,
                "prefs": {"intl.accept_languages": "en"},
            },
        });
        let Value::Object(caps) = caps else { unreachable!("a JSON object") };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector).capabilities(caps).connect(&driver.url()).await {
            Ok(c) => c,
            Err(e) => {
                let log = driver.log_text();
                panic!("open a Chromium session ({}): {e}\nchromedriver log:\n{log}", chromium_path().display());
            }
        };
        let browser = Browser {
            client: Some(client),
            base: format!("http://localhost:{}", app.port),
            _driver: driver,
            _profile: profile,
        };
        browser.set_viewport(DESKTOP.0, DESKTOP.1).await;
        if std::env::var_os("CAREPORT_TEST_BROWSER_TIMING").is_some() {
            eprintln!(
                "browser: chromedriver ready in {driver_ready:?}, session and viewport in {:?}",
                started.elapsed()
            );
        }
        browser
    }

    /// The app's origin as the browser sees it: `http://localhost:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The fantoccini client, for what the harness does not wrap.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser is open")
    }

    /// The current URL and the start of the page's text, for failure messages.
    async fn context(&self) -> String {
        let c = self.client();
        let url = c.current_url().await.map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string());
        let text = match c.execute("return document.body ? document.body.innerText : ''", Vec::new()).await {
            Ok(Value::String(s)) => snippet(&s, 300),
            Ok(other) => other.to_string(),
            Err(e) => format!("(no text: {e})"),
        };
        format!("at {url}\n  page text: {text}")
    }

    /// Panic about `what`, with the page's context (generic so that it fits any position).
    async fn fail<T>(&self, what: impl Display) -> T {
        panic!("{what}\n  {}", self.context().await)
    }

    /// `r`'s value, or a panic about `what` with the page's context.
    async fn ok<T>(&self, r: Result<T, CmdError>, what: impl Display) -> T {
        match r {
            Ok(v) => v,
            Err(e) => self.fail(format!("{what}: {e}")).await,
        }
    }

    /// Open `path` (`/forgot-password`) on the app, or an absolute URL (`data:text/html,…`).
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with('/') { format!("{}{path}", self.base) } else { path.to_owned() };
        let r = self.client().goto(&url).await;
        self.ok(r, format_args!("goto {url}")).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        let r = self.client().current_url().await;
        self.ok(r, "current URL").await.to_string()
    }

    /// The element matching `css`, waiting up to [`TIMEOUT`] for it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.client().find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(e) if e.is_no_such_element() => {}
                Err(e) => self.fail(format_args!("find `{css}`: {e}")).await,
            }
            if Instant::now() > deadline {
                return self.fail(format_args!("no element matches `{css}` after {TIMEOUT:?}")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        match self.client().find(Locator::Css(css)).await {
            Ok(_) => true,
            Err(e) if e.is_no_such_element() => false,
            Err(e) => self.fail(format_args!("find `{css}`: {e}")).await,
        }
    }

    /// Wait up to [`TIMEOUT`] until an element matches `css`.
    pub async fn wait_for(&self, css: &str) {
        self.find(css).await;
    }

    /// Wait up to [`TIMEOUT`] until the (visible) text of the element matching `css` contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        loop {
            // Looked up again each time: the page may have been replaced (a form's POST).
            if let Ok(el) = self.client().find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if text.contains(needle) {
                    return;
                }
                last = Some(text);
            }
            if Instant::now() > deadline {
                let seen =
                    last.map_or_else(|| "no such element".to_owned(), |t| format!("its text: {}", snippet(&t, 200)));
                return self.fail(format_args!("`{css}` did not contain {needle:?} after {TIMEOUT:?} ({seen})")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait up to [`TIMEOUT`] until the URL contains `part`.
    pub async fn wait_url(&self, part: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(url) = self.client().current_url().await
                && url.as_str().contains(part)
            {
                return;
            }
            if Instant::now() > deadline {
                return self.fail(format_args!("the URL did not contain {part:?} after {TIMEOUT:?}")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clear the field matching `css`, then type `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        let r = el.clear().await;
        self.ok(r, format_args!("clear `{css}`")).await;
        let r = el.send_keys(value).await;
        self.ok(r, format_args!("type into `{css}`")).await;
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        let r = el.click().await;
        self.ok(r, format_args!("click `{css}`")).await;
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let r = el.text().await;
        self.ok(r, format_args!("text of `{css}`")).await
    }

    /// The attribute `name` of the element matching `css` (`None` when it has none).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let el = self.find(css).await;
        let r = el.attr(name).await;
        self.ok(r, format_args!("attribute {name} of `{css}`")).await
    }

    /// Choose `file` in the `<input type=file>` matching `css`.
    pub async fn upload(&self, css: &str, file: &Path) {
        let path = file.canonicalize().unwrap_or_else(|e| panic!("upload {}: {e}", file.display()));
        let el = self.find(css).await;
        let r = el.send_keys(&path.to_string_lossy()).await;
        self.ok(r, format_args!("choose {} in `{css}`", path.display())).await;
    }

    /// Choose the option with `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        let r = el.select_by_value(value).await;
        self.ok(r, format_args!("select {value:?} in `{css}`")).await;
    }

    /// Run `js` in the page (the body of a function: `return` a value) and return its value.
    /// A returned promise is awaited. WebDriver runs the script itself whatever the page's CSP
    /// says, but what the script does is still the page's: a `fetch` from a page whose CSP has
    /// no `connect-src` for it fails ("Failed to fetch").
    pub async fn eval(&self, js: &str) -> Value {
        let r = self.client().execute(js, Vec::new()).await;
        self.ok(r, format_args!("run script `{}`", snippet(js, 120))).await
    }

    /// Make the page's viewport (`innerWidth` × `innerHeight`) `width` × `height`. Headless
    /// Chromium's window is taller than its viewport, so the window is sized, measured and
    /// corrected.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let c = self.client();
        let (mut w, mut h) = (width, height);
        for _ in 0..3 {
            let r = c.set_window_size(w, h).await;
            self.ok(r, format_args!("resize the window to {w}x{h}")).await;
            let inner = self.eval("return [window.innerWidth, window.innerHeight]").await;
            let (iw, ih) = (inner[0].as_u64().unwrap_or(0), inner[1].as_u64().unwrap_or(0));
            if (iw, ih) == (u64::from(width), u64::from(height)) {
                return;
            }
            let fix = |win: u32, want: u32, got: u64| {
                u32::try_from(i64::from(win) + i64::from(want) - i64::try_from(got).unwrap_or(0)).unwrap_or(win)
            };
            (w, h) = (fix(w, width, iw), fix(h, height, ih));
        }
        return self.fail(format_args!("could not make the viewport {width}x{height}")).await;
    }

    /// Write `NAME-desktop.png` (1280×900) and `NAME-phone.png` (390×844) of the current page
    /// into [`output_dir`]; the viewport is desktop-sized again afterwards.
    pub async fn screenshot(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = output_dir();
        let mut paths = Vec::new();
        for (label, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.set_viewport(w, h).await;
            let r = self.client().screenshot().await;
            let png = self.ok(r, format_args!("screenshot {name}-{label}")).await;
            let path = dir.join(format!("{name}-{label}.png"));
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            paths.push(path);
        }
        self.set_viewport(DESKTOP.0, DESKTOP.1).await;
        let phone = paths.pop().expect("two screenshots");
        let desktop = paths.pop().expect("two screenshots");
        (desktop, phone)
    }

    /// Run axe-core (vendored in `tests/fixtures/axe`) on the current page, write the
    /// violations to `NAME-axe.json` in [`output_dir`], and panic listing every violation of
    /// impact `serious` or `critical`. Milder ones are printed only. Returns the violations.
    pub async fn axe(&self, name: &str) -> Vec<Value> {
        let violations = self.axe_violations(name).await;
        let (bad, mild): (Vec<&Value>, Vec<&Value>) =
            violations.iter().partition(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")));
        if !mild.is_empty() {
            let lines: Vec<String> = mild.iter().map(|v| axe_line(v)).collect();
            eprintln!("axe {name}: {} minor/moderate violation(s):\n{}", mild.len(), lines.join("\n"));
        }
        if !bad.is_empty() {
            let lines: Vec<String> = bad.iter().map(|v| axe_line(v)).collect();
            let report = output_dir().join(format!("{name}-axe.json"));
            return self
                .fail(format_args!(
                    "axe {name}: {} serious/critical violation(s) (report: {}):\n{}",
                    bad.len(),
                    report.display(),
                    lines.join("\n")
                ))
                .await;
        }
        violations
    }

    /// Run axe-core on the current page and return every violation (`id`, `impact`, `help`,
    /// `helpUrl`, `targets`: the selectors of the first five nodes, `html` of the first three),
    /// also written to `NAME-axe.json` in [`output_dir`]. Does not judge them: see [`Browser::axe`].
    pub async fn axe_violations(&self, name: &str) -> Vec<Value> {
        // Injected once per document with execute-script, which the page's CSP (no inline
        // scripts) does not govern; axe sets `window.axe`.
        if self.eval("return typeof window.axe").await != json!("object") {
            let src_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/axe/axe.min.js");
            let src = std::fs::read_to_string(&src_path).unwrap_or_else(|e| panic!("read {}: {e}", src_path.display()));
            let loaded = self.eval(&format!("{src}\n;return typeof window.axe;")).await;
            if loaded != json!("object") {
                return self.fail(format_args!("axe-core did not load (typeof axe = {loaded})")).await;
            }
        }
        let r = self
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done({violations: r.violations.map(v => ({
                       id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                       targets: v.nodes.slice(0, 5).map(n => n.target),
                       html: v.nodes.slice(0, 3).map(n => n.html)}))}))
                   .catch(e => done({error: String(e && e.stack || e)}));",
                Vec::new(),
            )
            .await;
        let result = self.ok(r, "run axe").await;
        if let Some(err) = result.get("error") {
            return self.fail(format_args!("axe failed: {err}")).await;
        }
        let violations = result["violations"].as_array().cloned().unwrap_or_default();
        let path = output_dir().join(format!("{name}-axe.json"));
        let pretty = serde_json::to_string_pretty(&violations).expect("serialise the axe report");
        std::fs::write(&path, pretty).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        violations
    }

    /// End the session (Chromium quits) and stop chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            // The browser may be gone already; dropping the driver kills what is left.
            let _ = client.close().await;
        }
    }
}
