//! A small Chrome DevTools Protocol client over `--remote-debugging-pipe` (JSON messages ended
//! by NUL on file descriptors 3 and 4): enough to open pages in real headless Chromium, read
//! the DOM back and take screenshots, with no browser-automation dependency.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Chromium binary, or why there is none.
pub fn find_chromium() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("CAVIAR_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)".into())
}

/// A headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    to_browser: std::fs::File,
    from_browser: BufReader<std::fs::File>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors that we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2 failed");
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts Chromium with a `width` × `height` window and opens a blank page.
    pub fn start(chromium: &Path, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (their_read, our_write) = pipe();
        let (our_read, their_write) = pipe();
        let (r, w) = (
            std::os::fd::AsRawFd::as_raw_fd(&their_read),
            std::os::fd::AsRawFd::as_raw_fd(&their_write),
        );
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", profile.path().display()),
            "about:blank",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only fcntl and dup2 between fork and exec. The pipe ends may themselves be
        // 3 or 4, so they move above 10 first; dup2 onto 3 and 4 clears close-on-exec there.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("chromium starts");
        drop((their_read, their_write));
        let mut browser = Browser {
            child,
            to_browser: std::fs::File::from(our_write),
            from_browser: BufReader::new(std::fs::File::from(our_read)),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.page("Page.enable", json!({}));
        browser
    }

    /// Sends one command and waits for its answer, skipping events.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        loop {
            let mut buf = Vec::new();
            let n = self.from_browser.read_until(0, &mut buf).unwrap();
            assert!(n > 0, "chromium closed the pipe during {method}");
            buf.pop();
            let reply: Value = serde_json::from_slice(&buf).unwrap();
            if reply["id"] == id {
                if let Some(err) = reply.get("error") {
                    panic!("{method}: {err}");
                }
                return reply["result"].clone();
            }
        }
    }

    /// A command to the page.
    pub fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    /// Opens `url` and waits until the app says it is ready (`body[data-ready="1"]`).
    pub fn open(&mut self, url: &str) {
        self.eval("document.body && (document.body.dataset.ready = '')");
        self.page("Page.navigate", json!({"url": url}));
        self.wait_for(
            "document.body && document.body.dataset.ready === '1'",
            Duration::from_secs(30),
        );
    }

    /// Opens `url` and waits for its load to finish (for pages that are not the app).
    pub fn navigate(&mut self, url: &str) {
        self.page("Page.navigate", json!({"url": url}));
        self.wait_for(
            &format!(
                "location.href === {} && document.readyState === 'complete'",
                json!(url)
            ),
            Duration::from_secs(30),
        );
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns the value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.page(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `condition` is true in the page.
    pub fn wait_for(&mut self, condition: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            if self.eval(&format!("!!({condition})")) == json!(true) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for `{condition}`; page: {}",
                self.eval("document.body ? document.body.innerText.slice(0, 500) : ''")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the whole page.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.page(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(value(c))).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | x << (18 - 6 * i));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// Where screenshots go: `target/screenshots/`, kept by CI as artifacts.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
}
