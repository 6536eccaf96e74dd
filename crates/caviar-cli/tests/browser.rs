//! The dashboard in real headless Chromium: a stored study's pages draw every plot with the
//! right number of points, a running study updates the open page, and the static report draws
//! the same. Screenshots land in `target/screenshots/`.

#[path = "support/cdp.rs"]
mod cdp;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cdp::{find_chromium, screenshot_dir, Browser};
use serde_json::Value;

fn toy_study() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/toy.toml")
        .canonicalize()
        .unwrap()
}

fn caviar(storage: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", storage])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `caviar dashboard --port 0`, stopped when dropped.
struct Server {
    child: Child,
    url: String,
    token: String,
    startup: String,
}

impl Server {
    fn start(storage: &str) -> Server {
        Self::start_with(storage, &[])
    }

    fn start_with(storage: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caviar"))
            .args(["--storage", storage, "dashboard", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Both start-up lines are read before the pipe closes, so the server never writes to a
        // closed pipe.
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (mut first, mut second) = (String::new(), String::new());
        reader.read_line(&mut first).unwrap();
        reader.read_line(&mut second).unwrap();
        let token = second.trim().rsplit(' ').next().unwrap_or("").to_string();
        let url = first
            .trim()
            .strip_prefix("caviar dashboard: ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Server {
            child,
            url,
            token,
            startup: format!("{first}{second}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_or_skip() -> Option<PathBuf> {
    match find_chromium() {
        Ok(path) => Some(path),
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// What the page drew, read back from the data attributes the app sets.
const DRAWN: &str = r#"(() => {
  const n = (id) => { const e = document.getElementById(id); return e && e.dataset.rendered === '1' ? Number(e.dataset.points) : -1; };
  const slices = [...document.querySelectorAll('.slice')].map((e) => ({ param: e.dataset.param, points: Number(e.dataset.points), rendered: e.dataset.rendered === '1', canvases: e.querySelectorAll('canvas').length }));
  return { history: n('history'), curves: n('curves'), lines: Number(document.getElementById('curves').dataset.lines),
    importance: n('importance'), parallel: n('parallel'), slices,
    best: document.querySelectorAll('#best tr').length - 1,
    canvases: document.querySelectorAll('canvas').length,
    title: document.getElementById('title').textContent };
})()"#;

/// Checks the drawn counts against the study's data from the API.
fn assert_drawn_matches(drawn: &Value, view: &Value) {
    let history = view["history"]["points"].as_array().unwrap().len();
    assert_eq!(drawn["history"], history, "{drawn}");
    let curve_points: usize = view["curves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["points"].as_array().unwrap().len())
        .sum();
    assert_eq!(drawn["curves"], curve_points, "{drawn}");
    assert_eq!(drawn["lines"], view["curves"].as_array().unwrap().len());
    let rows = view["sample"]["rows"].as_array().unwrap();
    assert_eq!(drawn["parallel"], rows.len(), "{drawn}");
    assert_eq!(
        drawn["importance"],
        view["importance"]["params"].as_array().unwrap().len()
    );
    assert_eq!(drawn["best"], view["best"].as_array().unwrap().len());
    let params = view["params"].as_array().unwrap();
    let slices = drawn["slices"].as_array().unwrap();
    assert_eq!(slices.len(), params.len(), "one slice per parameter");
    for (i, (slice, param)) in slices.iter().zip(params).enumerate() {
        assert_eq!(slice["param"], param["name"]);
        assert_eq!(slice["rendered"], true, "{slice}");
        let with_value = rows.iter().filter(|r| !r[i].is_null()).count();
        assert_eq!(slice["points"], with_value, "{slice}");
        assert!(slice["canvases"].as_u64().unwrap() >= 1, "{slice}");
    }
    // 4 charts and one per parameter, each on its own canvas.
    assert!(
        drawn["canvases"].as_u64().unwrap() >= 4 + params.len() as u64,
        "{drawn}"
    );
}

#[test]
fn every_page_draws_its_plots_with_the_right_number_of_points_and_follows_a_running_study() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("dash.db").display());
    let study = toy_study();
    caviar(
        &storage,
        &["run", study.to_str().unwrap(), "--trials", "30"],
    );
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    let shots = screenshot_dir();
    // Every violation of the Content-Security-Policy, kept across the pages of the tab.
    browser.page(
        "Page.addScriptToEvaluateOnNewDocument",
        serde_json::json!({"source": "document.addEventListener('securitypolicyviolation', (e) => { \
            const seen = JSON.parse(sessionStorage.getItem('csp') || '[]'); \
            seen.push(e.violatedDirective + ' ' + e.blockedURI); \
            sessionStorage.setItem('csp', JSON.stringify(seen)); });"}),
    );

    // The studies list.
    browser.open(&server.url);
    // The page is served with the hardening headers, and satisfies its policy.
    let headers = browser.eval(
        "fetch('/').then((r) => [r.headers.get('x-content-type-options'), r.headers.get('content-security-policy')])",
    );
    assert_eq!(headers[0], "nosniff");
    assert!(
        headers[1].as_str().unwrap().contains("script-src 'self'"),
        "{headers}"
    );
    assert_eq!(
        browser.eval("document.getElementById('studies').dataset.rows"),
        "1"
    );
    assert!(browser
        .eval("document.getElementById('studies').innerText")
        .as_str()
        .unwrap()
        .contains("toy"));
    browser.screenshot(&shots.join("dashboard-studies.png"));

    // The study page, against the API's own numbers.
    browser.open(&format!("{}#/study/toy", server.url));
    let view = browser.eval("fetch('/api/studies/toy').then((r) => r.json())");
    assert_eq!(view["history"]["total"], 30);
    let drawn = browser.eval(DRAWN);
    assert_drawn_matches(&drawn, &view);
    assert_eq!(drawn["title"], "Study toy");
    // Log axes for the log and reverse_log parameters.
    let axis_types = browser.eval(
        "[...document.querySelectorAll('.slice')].map((e) => echarts.getInstanceByDom(e).getOption().xAxis[0].type)",
    );
    assert_eq!(
        axis_types,
        serde_json::json!(["category", "log", "log", "value"]),
        "activation, beta1, lr, units"
    );
    browser.screenshot(&shots.join("dashboard-study.png"));

    // A trial page, with user attributes as the Python API stores them.
    {
        let store = caviar_store::open_storage(&storage).unwrap();
        let record = store.study("toy").unwrap().unwrap();
        let first = store.trials_numbered(record.id, 0, 1).unwrap().remove(0);
        let owner = caviar_core::storage::AttrOwner::Trial(first.id);
        store
            .set_user_attr(owner, "fold", &serde_json::json!(2))
            .unwrap();
        store
            .set_user_attr(owner, "tags", &serde_json::json!(["fast", "<b>"]))
            .unwrap();
    }
    browser.open(&format!("{}#/study/toy/trial/0", server.url));
    let trial = browser.eval("fetch('/api/studies/toy/trials/0').then((r) => r.json())");
    assert_eq!(
        browser.eval("Number(document.getElementById('trial-curve').dataset.points)"),
        trial["intermediate"].as_array().unwrap().len()
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('#trial-params tr').length"),
        4
    );
    // What the toy program printed, as stored.
    let log = browser.eval("document.getElementById('trial-log').textContent");
    assert_eq!(log, trial["log"]);
    assert!(log.as_str().unwrap().contains("val_acc="), "{log}");
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#trial-attrs tr')].map((r) => r.innerText.replace('\\t', ' '))"),
        serde_json::json!(["fold 2", "tags [\"fast\",\"<b>\"]"])
    );
    browser.screenshot(&shots.join("dashboard-trial.png"));

    // A trial whose learning rate was changed while it ran: the change is listed and marked on
    // its curve.
    {
        use caviar_core::prelude::*;
        let store = caviar_store::open_storage(&storage).unwrap();
        let study = Study::builder("panda")
            .storage(store.clone())
            .spec(serde_json::json!({"front_end": "python"}))
            .build()
            .unwrap();
        let mut trial = study.ask().unwrap();
        trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
        for step in 1..=3 {
            trial.report(step, 0.5).unwrap();
        }
        caviar_engine::ask_changes(
            &*store,
            study.record(),
            0,
            &[("lr".into(), caviar_engine::NewValue::Text("0.02".into()))],
            "ann@box",
            Some("<i>flat</i>"),
            false,
        )
        .unwrap();
        trial.apply_param_changes(3).unwrap();
        for step in 4..=6 {
            trial.report(step, 0.3).unwrap();
        }
        let owner = caviar_core::storage::AttrOwner::Trial(trial.id());
        study.tell(trial, Outcome::Complete(0.3)).unwrap();
        // Lineage as a fork that PBT later had copy another member.
        store
            .set_user_attr(owner, "forked_from", &serde_json::json!(7))
            .unwrap();
        store
            .set_user_attr(
                owner,
                "pbt_exploits",
                &serde_json::json!([{"step": 4, "from": 2}]),
            )
            .unwrap();
    }
    browser.open(&format!("{}#/study/panda/trial/0", server.url));
    browser.wait_for(
        "document.querySelectorAll('#trial-changes td').length === 4",
        std::time::Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval(
            "[...document.querySelectorAll('#trial-changes td')].slice(2).map((c) => c.innerText)"
        ),
        serde_json::json!(["after step 3", "ann@box: <i>flat</i>"])
    );
    assert_eq!(
        browser.eval("echarts.getInstanceByDom(document.getElementById('trial-curve')).getOption().series[0].markLine.data.map((d) => d.xAxis)"),
        serde_json::json!([3])
    );
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#trial-lineage tr')].map((r) => r.innerText.replace('\\t', ' '))"),
        serde_json::json!(["forked from trial 7", "after step 4 copied trial 2 (PBT)"])
    );
    assert_eq!(
        browser.eval(
            "[...document.querySelectorAll('#trial-lineage a')].map((a) => a.getAttribute('href'))"
        ),
        serde_json::json!(["#/study/panda/trial/7", "#/study/panda/trial/2"])
    );
    browser.screenshot(&shots.join("dashboard-trial-changed.png"));

    // A running trial's page steers it: new values through the form, pause, with the token.
    let (store, steered) = {
        use caviar_core::prelude::*;
        let store = caviar_store::open_storage(&storage).unwrap();
        let study = Study::builder("steered")
            .storage(store.clone())
            .spec(serde_json::json!({"front_end": "python"}))
            .build()
            .unwrap();
        let mut trial = study.ask().unwrap();
        trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
        trial.report(1, 0.5).unwrap();
        (store, trial)
    };
    browser.open(&format!("{}#/study/steered/trial/0", server.url));
    browser.wait_for(
        "document.querySelector('#steer-params input[data-param=lr]') !== null",
        Duration::from_secs(10),
    );
    let fill_and_ask = |browser: &mut Browser, token: &str, lr: &str| {
        browser.eval(&format!(
            "document.getElementById('steer-token').value = '{token}';
             document.querySelector('#steer-params input[data-param=lr]').value = '{lr}';
             document.getElementById('steer-note').value = 'from the page';
             document.getElementById('steer-status').textContent = '';
             document.getElementById('steer-ask').click(); true"
        ));
        browser.wait_for(
            "document.getElementById('steer-status').textContent !== ''",
            Duration::from_secs(10),
        );
        browser.eval("document.getElementById('steer-status').textContent")
    };
    let wrong = fill_and_ask(&mut browser, "not-the-token", "0.02");
    assert!(wrong.as_str().unwrap().starts_with("refused:"), "{wrong}");
    let outside = fill_and_ask(&mut browser, &server.token, "5");
    assert!(
        outside
            .as_str()
            .unwrap()
            .contains("outside float [0.0001, 1] log"),
        "{outside}"
    );
    let asked = fill_and_ask(&mut browser, &server.token, "0.02");
    assert!(asked.as_str().unwrap().starts_with("asked: lr"), "{asked}");
    let pending = store.pending_param_changes(steered.id()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].new, caviar_core::space::ParamValue::Float(0.02));
    assert_eq!(pending[0].note.as_deref(), Some("from the page"));
    assert!(
        pending[0].who.ends_with("(dashboard)"),
        "{}",
        pending[0].who
    );
    browser.eval("document.getElementById('steer-status').textContent = ''; document.getElementById('steer-pause').click(); true");
    browser.wait_for(
        "document.getElementById('steer-status').textContent.startsWith('asked to pause')",
        Duration::from_secs(10),
    );
    let controls = store.controls(steered.id()).unwrap();
    assert_eq!(controls.len(), 1);
    assert_eq!(
        controls[0].action,
        caviar_core::storage::ControlAction::Pause
    );
    browser.screenshot(&shots.join("dashboard-trial-steer.png"));
    // The trial takes the pause: the page lists it and offers Resume.
    steered.take_controls(Some(1)).unwrap();
    browser.open(&format!("{}#/study/steered", server.url));
    browser.open(&format!("{}#/study/steered/trial/0", server.url));
    browser.wait_for(
        "document.getElementById('steer-resume') !== null && document.querySelectorAll('#trial-controls tr').length === 1",
        Duration::from_secs(10),
    );

    // A study that runs while the page is open: the page follows without a reload.
    browser.open(&format!("{}#/study/toy", server.url));
    browser.eval("window.notReloaded = true");
    caviar(
        &storage,
        &["run", study.to_str().unwrap(), "--trials", "45"],
    );
    browser.wait_for(
        "Number(document.getElementById('history').dataset.points) === 45",
        Duration::from_secs(20),
    );
    assert_eq!(browser.eval("window.notReloaded"), true);
    assert!(
        browser
            .eval("Number(document.body.dataset.updates)")
            .as_u64()
            >= Some(1)
    );
    let view = browser.eval("fetch('/api/studies/toy').then((r) => r.json())");
    assert_drawn_matches(&browser.eval(DRAWN), &view);
    browser.screenshot(&shots.join("dashboard-study-updated.png"));
    assert_eq!(
        browser.eval("sessionStorage.getItem('csp') || '[]'"),
        "[]",
        "the page broke its own Content-Security-Policy"
    );
}

#[test]
fn the_static_report_draws_the_same_plots_without_a_server() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("report.db").display());
    caviar(
        &storage,
        &["run", toy_study().to_str().unwrap(), "--trials", "25"],
    );
    let report = dir.path().join("report.html");
    caviar(
        &storage,
        &["report", "toy", "--out", report.to_str().unwrap()],
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("src=\"/assets") && !html.contains("href=\"/assets"),
        "self-contained"
    );
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/toy", server.url));
    let view = browser.eval("fetch('/api/studies/toy').then((r) => r.json())");
    drop(server);
    browser.open(&format!("file://{}", report.display()));
    assert_drawn_matches(&browser.eval(DRAWN), &view);
    browser.screenshot(&screenshot_dir().join("report.png"));
}

/// Bad requests get JSON errors, and no path escapes the embedded files.
#[test]
fn the_api_answers_errors_in_json_and_refuses_writes_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("api.db").display());
    caviar(
        &storage,
        &["run", toy_study().to_str().unwrap(), "--trials", "3"],
    );
    let server = Server::start(&storage);
    assert!(server.startup.contains("read-only"), "{}", server.startup);
    assert_eq!(server.token.len(), 32, "{}", server.startup);
    let base = server.url.trim_end_matches('/');
    for (path, status, says) in [
        ("/api/studies/nope", 404, "no study named `nope`"),
        ("/api/studies/toy/trials/x", 400, "give a trial number"),
        (
            "/api/studies/toy/trials/999",
            404,
            "no finished or running trial 999",
        ),
        ("/assets/..%2F..%2FCargo.toml", 404, "no file named"),
        ("/assets/../../etc/passwd", 404, ""),
        ("/nowhere", 404, "/api/studies"),
    ] {
        let (code, body) = http(base, "GET", path, None, "");
        assert_eq!(code, status, "{path}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert!(
            json["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    // DNS rebinding: another site's name pointed at 127.0.0.1 gets nothing.
    let (code, reply) = http_as(base, "evil.example:80", "GET", "/api/studies", None, "");
    assert_eq!(code, 403, "{reply}");
    assert!(reply.contains("not this machine"), "{reply}");
    let port = base.rsplit(':').next().unwrap();
    let (code, _) = http_as(
        base,
        &format!("localhost:{port}"),
        "GET",
        "/api/studies",
        None,
        "",
    );
    assert_eq!(code, 200);
    let enqueue = "/api/studies/toy/enqueue";
    let body = r#"{"params": {"lr": 0.001}}"#;
    let (code, reply) = http(base, "POST", enqueue, None, body);
    assert_eq!(code, 401, "{reply}");
    let (code, _) = http(base, "POST", enqueue, Some("wrong"), body);
    assert_eq!(code, 401);
    let (url, token) = (base, server.token.as_str());
    let (code, reply) = http(url, "POST", enqueue, Some(token), body);
    assert_eq!(code, 201, "{reply}");
    assert_eq!(serde_json::from_str::<Value>(&reply).unwrap()["number"], 3);
    // The queued trial has a page before it runs.
    let (code, reply) = http(url, "GET", "/api/studies/toy/trials/3", None, "");
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        serde_json::from_str::<Value>(&reply).unwrap()["state"],
        "waiting"
    );
    let (code, reply) = http(
        url,
        "POST",
        enqueue,
        Some(token),
        r#"{"params": {"lr": 7}}"#,
    );
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("outside"), "{reply}");

    // Changing a running trial's parameters (panda mode) takes the token too.
    let store = caviar_store::open_storage(&storage).unwrap();
    let study = caviar_core::study::Study::builder("live")
        .storage(store.clone())
        .spec(serde_json::json!({"front_end": "python"}))
        .build()
        .unwrap();
    let mut trial = study.ask().unwrap();
    trial
        .suggest_float("lr", 1e-4, 1.0, caviar_core::space::Scale::Log)
        .unwrap();
    let change = "/api/studies/live/trials/0/params";
    let body = r#"{"params": {"lr": 0.02}, "note": "from the dashboard"}"#;
    let (code, _) = http(url, "POST", change, None, body);
    assert_eq!(code, 401);
    let (code, reply) = http(url, "POST", change, Some(token), r#"{"params": {"lr": 3}}"#);
    assert_eq!(code, 400, "{reply}");
    assert!(
        reply.contains("outside") && reply.contains("force"),
        "{reply}"
    );
    let (code, reply) = http(url, "POST", change, Some(token), body);
    assert_eq!(code, 202, "{reply}");
    assert_eq!(
        serde_json::from_str::<Value>(&reply).unwrap()["changes"][0]["new"],
        0.02
    );
    let pending = store.pending_param_changes(trial.id()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].note.as_deref(), Some("from the dashboard"));
    assert!(
        pending[0].who.ends_with("(dashboard)"),
        "{}",
        pending[0].who
    );
    trial.report(1, 0.5).unwrap();
    trial.apply_param_changes(1).unwrap();
    let (code, reply) = http(url, "GET", "/api/studies/live/trials/0", None, "");
    assert_eq!(code, 200);
    let detail: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(detail["params"]["lr"], 0.02);
    assert_eq!(detail["param_history"][0]["applied_step"], 1);
}

/// A minimal HTTP/1.1 request over a TCP socket; returns the status and the body.
fn http(base: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    http_as(base, host, method, path, token, body)
}

/// The same, naming `host` in the Host header.
fn http_as(
    base: &str,
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn zoom_rounds_and_refined_studies_show_on_the_study_page() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("zoom.db").display());
    let scripts = toy_study().parent().unwrap().join("scripts");
    let text = std::fs::read_to_string(toy_study())
        .unwrap()
        .replace("name = \"toy\"", "name = \"zoomy\"")
        .replace("kind = \"random\"", "kind = \"zoom\"\nround_size = 10")
        .replace(
            "scripts/toy_train.sh",
            &scripts.join("toy_train.sh").display().to_string(),
        );
    let study = dir.path().join("zoomy.toml");
    std::fs::write(&study, text).unwrap();
    caviar(
        &storage,
        &["run", study.to_str().unwrap(), "--trials", "30"],
    );
    let next = dir.path().join("next.toml");
    caviar(
        &storage,
        &[
            "narrow",
            "zoomy",
            "-k",
            "10",
            "--write",
            next.to_str().unwrap(),
        ],
    );
    caviar(&storage, &["run", next.to_str().unwrap(), "--trials", "5"]);

    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/zoomy", server.url));
    assert_eq!(
        browser.eval("document.getElementById('rounds').dataset.rows"),
        "3"
    );
    let rounds = browser.eval("document.getElementById('rounds').innerText");
    assert!(
        rounds.as_str().unwrap().contains("trials 20–29"),
        "{rounds}"
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('#narrowed tr').length"),
        4
    );
    let lineage = browser.eval("document.getElementById('lineage').innerText");
    assert!(
        lineage.as_str().unwrap().contains("zoomy-narrow"),
        "{lineage}"
    );
    browser.screenshot(&screenshot_dir().join("dashboard-zoom-rounds.png"));
    browser.open(&format!("{}#/study/zoomy-narrow", server.url));
    let lineage = browser.eval("document.getElementById('lineage').innerText");
    assert!(
        lineage
            .as_str()
            .unwrap()
            .starts_with("Rounds: zoomy (compare) → zoomy-narrow"),
        "{lineage}"
    );
}

#[test]
fn a_retest_shows_old_against_new_beside_its_parent() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("drift.db").display());
    let examples = toy_study().parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(examples.join("drift.toml"))
        .unwrap()
        .replace(
            "scripts/drifting.sh",
            &examples.join("scripts/drifting.sh").display().to_string(),
        );
    let study = dir.path().join("drift.toml");
    std::fs::write(&study, text).unwrap();
    caviar(&storage, &["run", study.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", &storage, "retest", "drift", "-k", "3"])
        .env("DRIFT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/drift-retest-1", server.url));
    assert_eq!(
        browser.eval("document.getElementById('retest-table').dataset.rows"),
        "3"
    );
    let verdict = browser.eval("document.getElementById('retest-verdict').innerText");
    assert_eq!(verdict, "stale: the old best is no longer best");
    let table = browser.eval("document.getElementById('retest-table').innerText");
    assert!(table.as_str().unwrap().contains(" *"), "{table}");
    assert_eq!(
        browser.eval("document.querySelectorAll('#retest-table tr.moved').length"),
        3
    );
    // Each row links the parent's trial it repeats.
    let link = browser.eval("document.querySelector('#retest-table a').getAttribute('href')");
    assert!(
        link.as_str().unwrap().starts_with("#/study/drift/trial/"),
        "{link}"
    );
    let attrs = browser.eval("document.getElementById('study-attrs').innerText");
    assert!(
        attrs.as_str().unwrap().contains("retest_of_study: drift"),
        "{attrs}"
    );
    assert!(
        attrs.as_str().unwrap().contains("fingerprint: no git"),
        "{attrs}"
    );
    browser.screenshot(&screenshot_dir().join("dashboard-retest.png"));
    browser.open(&format!("{}#/study/drift", server.url));
    let lineage = browser.eval("document.getElementById('lineage').innerText");
    assert!(
        lineage
            .as_str()
            .unwrap()
            .contains("drift-retest-1 (re-test: stale: the old best is no longer best)"),
        "{lineage}"
    );
    assert_eq!(
        browser.eval("document.getElementById('retest').children.length"),
        0
    );
}

#[test]
fn the_curves_card_draws_any_reported_metric() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("m.db").display());
    let study = dir.path().join("five.toml");
    std::fs::write(
        &study,
        r#"
name = "five"
metric = "val_loss"
trials = 3
command = ["sh", "-c", "for e in 1 2 3; do echo \"epoch=$e val_loss=0.$e train_loss=0.0$e lr=0.01 acc=0.9$e throughput=12$e\"; done"]

[params]
x = { low = 0.0, high = 1.0 }
"#,
    )
    .unwrap();
    caviar(&storage, &["run", study.to_str().unwrap()]);
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/five", server.url));
    assert_eq!(
        browser.eval(
            "[...document.querySelectorAll('#curve-metric option')].map(o => o.value).join(',')"
        ),
        "val_loss,acc,lr,throughput,train_loss"
    );
    assert_eq!(
        browser.eval("document.getElementById('curves').dataset.metric"),
        "val_loss"
    );
    browser.eval(
        "(() => { const s = document.getElementById('curve-metric'); s.value = 'throughput'; s.dispatchEvent(new Event('change')); return 1; })()",
    );
    assert_eq!(
        browser.eval("document.getElementById('curves').dataset.metric"),
        "throughput"
    );
    assert_eq!(
        browser.eval("document.getElementById('curves').dataset.lines"),
        "3"
    );
    assert_eq!(
        browser.eval("document.getElementById('curves').dataset.points"),
        "9"
    );
    browser.screenshot(&screenshot_dir().join("dashboard-metric-curves.png"));
}

#[test]
fn quiet_connections_are_closed_and_every_response_is_hardened() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("quiet.db").display());
    caviar(
        &storage,
        &["run", toy_study().to_str().unwrap(), "--trials", "3"],
    );
    let server = Server::start_with(&storage, &["--idle-timeout", "1s"]);
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    // Waits for the server to close `stream`: the time it took, or None after 10 s.
    let closed_after = |stream: &mut std::net::TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut sink = [0u8; 4096];
        loop {
            match stream.read(&mut sink) {
                Ok(0) | Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    return Some(started.elapsed())
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    // A request sent half way (slowloris).
    let mut half = std::net::TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /api/studies HTTP/1.1\r\nHost: 127.")
        .unwrap();
    let took = closed_after(&mut half).expect("a half-sent request is closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A connection that says nothing at all.
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    let took = closed_after(&mut silent).expect("a silent connection is closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A kept-alive connection after its answer; the answer carries the headers.
    let mut kept = std::net::TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /api/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 2048];
    let n = kept.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    let took = closed_after(&mut kept).expect("an idle kept-alive connection is closed");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // The server itself goes on.
    let (status, _) = http(&server.url, "GET", "/api/studies", None, "");
    assert_eq!(status, 200);
}

#[test]
fn a_conditional_study_draws_each_parameter_over_the_trials_that_have_it() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("cond.db").display());
    let file = dir.path().join("cond.toml");
    std::fs::write(
        &file,
        "name = \"cond\"\nmetric = \"loss\"\ntrials = 30\n\
         command = [\"sh\", \"-c\", \"echo loss=$CAVIAR_PARAM_LR\"]\n\
         [sampler]\nkind = \"random\"\nseed = 2\n\
         [params]\n\
         optimizer = { choices = [\"sgd\", \"adam\"] }\n\
         lr = { low = 1e-4, high = 1.0, scale = \"log\" }\n\
         beta1 = { low = 0.5, high = 0.999, scale = \"reverse_log\", when = { optimizer = \"adam\" } }\n",
    )
    .unwrap();
    caviar(&storage, &["run", file.to_str().unwrap()]);
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/cond", server.url));
    let view = browser.eval("fetch('/api/studies/cond').then((r) => r.json())");
    let drawn = browser.eval(DRAWN);
    // Slices hold only the trials that have their parameter (checked against the API's rows).
    assert_drawn_matches(&drawn, &view);
    let rows = view["sample"]["rows"].as_array().unwrap();
    let names: Vec<&str> = view["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let beta1 = names.iter().position(|n| *n == "beta1").unwrap();
    let having = rows.iter().filter(|r| !r[beta1].is_null()).count();
    assert!(
        having > 0 && having < rows.len(),
        "{having} of {}",
        rows.len()
    );
    let axes = browser.eval(
        "echarts.getInstanceByDom(document.getElementById('parallel')).getOption().parallelAxis.map((a) => a.name)",
    );
    assert!(
        axes.as_array()
            .unwrap()
            .contains(&Value::from(format!("beta1 ({having}/{})", rows.len()))),
        "{axes}"
    );
    browser.screenshot(&screenshot_dir().join("dashboard-conditional.png"));
}

/// An infeasible trial is shown as such, with the limit it broke, and is never the best.
#[test]
fn the_api_marks_infeasible_trials_and_keeps_them_out_of_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("c.db").display());
    let store = caviar_store::open_storage(&storage).unwrap();
    let study = caviar_core::study::Study::builder("limits")
        .storage(store)
        .constraints(vec!["memory_mb <= 1".parse().unwrap()])
        .build()
        .unwrap();
    for (value, memory) in [(0.5, 2.0), (0.7, 1.0)] {
        let trial = study.ask().unwrap();
        trial
            .report_metrics(0, &[("memory_mb".into(), memory)])
            .unwrap();
        study
            .tell(trial, caviar_core::study::Outcome::Complete(value))
            .unwrap();
    }
    let server = Server::start(&storage);
    let base = server.url.trim_end_matches('/');
    let (code, reply) = http(base, "GET", "/api/studies/limits/trials/0", None, "");
    assert_eq!(code, 200, "{reply}");
    let detail: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(detail["feasible"], false, "{reply}");
    assert_eq!(detail["broken"], serde_json::json!(["memory_mb <= 1 (2)"]));
    let (code, reply) = http(base, "GET", "/api/studies/limits", None, "");
    assert_eq!(code, 200, "{reply}");
    let view: Value = serde_json::from_str(&reply).unwrap();
    let best: Vec<&Value> = view["best"].as_array().unwrap().iter().collect();
    assert_eq!(best.len(), 1, "{reply}");
    assert_eq!(best[0]["number"], 1);
    assert_eq!(view["history"]["best"], serde_json::json!([[1, 0.7]]));

    // The trial page says so.
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let mut browser = Browser::start(&chromium, 1200, 900);
    browser.open(&format!("{}#/study/limits/trial/0", server.url));
    browser.wait_for(
        "document.getElementById('trial-broken') !== null",
        Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval("document.getElementById('trial-broken').innerText"),
        "memory_mb <= 1 (2)"
    );
    assert!(browser
        .eval("document.getElementById('trial-meta').innerText")
        .as_str()
        .unwrap()
        .contains("complete (infeasible)"));
}

/// A study with two objectives: the study view carries its front, points and hypervolume, and
/// its best table is the front.
#[test]
fn the_api_gives_the_pareto_front_of_a_study_with_two_objectives() {
    use caviar_core::trial::Direction;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("mo.db").display());
    let store = caviar_store::open_storage(&storage).unwrap();
    let study = caviar_core::study::Study::builder("acc-latency")
        .storage(store)
        .directions(vec![Direction::Maximize, Direction::Minimize])
        .metrics(vec!["acc".into(), "latency_ms".into()])
        .build()
        .unwrap();
    // (0.9, 20) and (0.8, 10) are the front; (0.7, 30) is dominated by both.
    for (acc, latency) in [(0.9, 20.0), (0.7, 30.0), (0.8, 10.0)] {
        let mut trial = study.ask().unwrap();
        trial
            .suggest_float("width", 1.0, 10.0, caviar_core::space::Scale::Linear)
            .unwrap();
        study
            .tell(
                trial,
                caviar_core::study::Outcome::Values(vec![acc, latency]),
            )
            .unwrap();
    }
    let server = Server::start(&storage);
    let base = server.url.trim_end_matches('/');
    let (code, reply) = http(base, "GET", "/api/studies/acc-latency", None, "");
    assert_eq!(code, 200, "{reply}");
    let view: Value = serde_json::from_str(&reply).unwrap();
    let pareto = &view["pareto"];
    assert_eq!(pareto["names"], serde_json::json!(["acc", "latency_ms"]));
    assert_eq!(
        pareto["directions"],
        serde_json::json!(["maximize", "minimize"])
    );
    assert_eq!(pareto["front"], serde_json::json!([0, 2]));
    assert_eq!(pareto["points"].as_array().unwrap().len(), 3);
    // Reference: acc 0.7 - 0.02, latency 30 + 2; the staircase 0.22 x 12 + 0.12 x 10.
    let hv = pareto["hypervolume"].as_f64().unwrap();
    assert!((hv - (0.22 * 12.0 + 0.12 * 10.0)).abs() < 1e-9, "{hv}");
    let best: Vec<u64> = view["best"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(best, [0, 2]);
    assert_eq!(view["best"][0]["values"], serde_json::json!([0.9, 20.0]));

    // The page draws every point, and the front's table has a column per objective.
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/acc-latency", server.url));
    browser.wait_for(
        "document.getElementById('pareto') && document.getElementById('pareto').dataset.rendered === '1'",
        Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval("Number(document.getElementById('pareto').dataset.points)"),
        3
    );
    assert_eq!(
        browser.eval("document.querySelector('#best table').dataset.rows"),
        "2"
    );
    let header = browser.eval("document.querySelector('#best table tr').innerText");
    assert!(
        header.as_str().unwrap().contains("acc") && header.as_str().unwrap().contains("latency_ms"),
        "{header}"
    );
    let meta = browser.eval("document.getElementById('meta').innerText");
    assert!(
        meta.as_str()
            .unwrap()
            .starts_with("maximize acc, minimize latency_ms")
            && meta.as_str().unwrap().contains("Pareto front of 2"),
        "{meta}"
    );
    let note = browser.eval("document.getElementById('pareto-note').innerText");
    assert!(
        note.as_str()
            .unwrap()
            .contains("2 trials on the front of 3"),
        "{note}"
    );
    browser.screenshot(&screenshot_dir().join("dashboard-pareto.png"));
}

/// Issue 21's small things: a young study's panels say what they hold (top 5, not top 10;
/// how many trials importance needs, with no empty chart), "1 report", whole-number step axes,
/// the curves' metric name clear of the legend, and the reverse_log axis named on top.
#[test]
fn a_young_study_says_what_its_panels_hold_and_axes_read_right() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("young.db").display());
    let study = toy_study();
    caviar(&storage, &["run", study.to_str().unwrap(), "--trials", "5"]);
    {
        use caviar_core::prelude::*;
        let store = caviar_store::open_storage(&storage).unwrap();
        let study = Study::builder("once")
            .storage(store.clone())
            .spec(serde_json::json!({"front_end": "python"}))
            .build()
            .unwrap();
        let mut trial = study.ask().unwrap();
        trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
        trial.report(1, 0.5).unwrap();
        study.tell(trial, Outcome::Complete(0.5)).unwrap();
    }
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/toy", server.url));
    browser.wait_for(
        "document.getElementById('importance-note').textContent.length > 0",
        Duration::from_secs(10),
    );
    let narrowed_title = browser.eval(
        "document.getElementById('narrowed').closest('section').querySelector('h2').textContent",
    );
    assert_eq!(
        narrowed_title,
        "Narrowed ranges of the top 5 (coarse to fine)"
    );
    let note = browser.eval("document.getElementById('importance-note').textContent");
    assert!(
        note.as_str()
            .unwrap()
            .contains("at least 20 complete trials"),
        "{note}"
    );
    assert_eq!(
        browser.eval("getComputedStyle(document.getElementById('importance')).display"),
        "none"
    );
    let curves = browser.eval(
        "(() => { const o = echarts.getInstanceByDom(document.getElementById('curves')).getOption(); \
         return [o.xAxis[0].minInterval, o.yAxis[0].nameLocation, o.legend[0].top]; })()",
    );
    assert_eq!(curves, serde_json::json!([1, "middle", 0]));
    // The parallel axes: beta1 is reverse_log, drawn inverted and named at its start (the top).
    let beta1 = browser.eval(
        "(() => { const o = echarts.getInstanceByDom(document.getElementById('parallel')).getOption(); \
         const a = o.parallelAxis.find((x) => x.name === 'beta1'); return [a.inverse, a.nameLocation]; })()",
    );
    assert_eq!(beta1, serde_json::json!([true, "start"]));
    browser.screenshot(&screenshot_dir().join("dashboard-young.png"));

    browser.open(&format!("{}#/study/once/trial/0", server.url));
    browser.wait_for(
        "document.getElementById('trial-meta') !== null",
        Duration::from_secs(10),
    );
    let meta = browser.eval("document.getElementById('trial-meta').innerText");
    assert!(meta.as_str().unwrap().contains("· 1 report"), "{meta}");
    assert!(!meta.as_str().unwrap().contains("1 reports"), "{meta}");
    assert_eq!(
        browser.eval(
            "echarts.getInstanceByDom(document.getElementById('trial-curve')).getOption().xAxis[0].minInterval"
        ),
        1
    );
}

/// Issue 21, all trials: the table lists a failed and a pruned trial with their reason and step,
/// sorting and filters change the rows shown (as the API answers them), a selected row is drawn
/// in the charts, and a click on a chart point opens its trial.
#[test]
fn the_trials_table_sorts_filters_selects_and_chart_points_open_their_trials() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("table.db").display());
    let _running = {
        use caviar_core::prelude::*;
        let store = caviar_store::open_storage(&storage).unwrap();
        let study = Study::builder("mixed")
            .storage(store.clone())
            .spec(serde_json::json!({"front_end": "python"}))
            .build()
            .unwrap();
        for k in 0..24u64 {
            let mut trial = study.ask().unwrap();
            let lr = trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
            let value = (lr.log10() + 2.0).powi(2);
            for step in 1..=3 {
                trial.report(step, value + 1.0 / step as f64).unwrap();
            }
            let outcome = match k {
                5 => Outcome::Failed("CUDA out of memory at batch 12".into()),
                9 => Outcome::Pruned,
                _ => Outcome::Complete(value),
            };
            study.tell(trial, outcome).unwrap();
        }
        // One still running, with two reports.
        let mut running = study.ask().unwrap();
        running.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
        running.report(1, 2.0).unwrap();
        running.report(2, 1.5).unwrap();
        (study, running)
    };
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/mixed", server.url));
    let rows_are = |browser: &mut Browser, n: usize| {
        browser.wait_for(
            &format!("document.getElementById('trials') && document.getElementById('trials').dataset.rows === '{n}'"),
            Duration::from_secs(10),
        );
    };
    rows_are(&mut browser, 25);
    let api = |browser: &mut Browser, query: &str| -> Vec<u64> {
        let page = browser.eval(&format!(
            "fetch('/api/studies/mixed/trials?{query}').then((r) => r.json())"
        ));
        page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_u64().unwrap())
            .collect()
    };
    let shown = |browser: &mut Browser| -> Vec<u64> {
        browser
            .eval("[...document.querySelectorAll('#trials tr[data-number]')].map((r) => Number(r.dataset.number))")
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let cells = |browser: &mut Browser, number: u64| -> String {
        browser
            .eval(&format!(
                "document.querySelector('#trials tr[data-number=\"{number}\"]').innerText"
            ))
            .as_str()
            .unwrap()
            .to_string()
    };
    // Every state is listed: the failed trial with its reason, the pruned one with its step, the
    // running one with its step so far.
    assert!(cells(&mut browser, 5).contains("failed"));
    assert!(cells(&mut browser, 5).contains("CUDA out of memory at batch 12"));
    assert!(cells(&mut browser, 9).contains("pruned"));
    assert!(cells(&mut browser, 9).contains("stopped at step 3"));
    assert!(cells(&mut browser, 24).contains("running"));
    assert_eq!(shown(&mut browser), (0..25).collect::<Vec<u64>>());
    browser.screenshot(&screenshot_dir().join("dashboard-trials-table.png"));

    // Sorting by value (a minimised study: best first), then the other way.
    browser.eval("document.querySelector('#trials th[data-sort=value]').click()");
    browser.wait_for(
        "document.querySelector('#trials th[data-sort=value]').textContent.endsWith('▲')",
        Duration::from_secs(10),
    );
    let by_value = api(&mut browser, "sort=value&order=asc&limit=50");
    browser.wait_for(
        &format!(
            "document.querySelector('#trials tr[data-number]').dataset.number === '{}'",
            by_value[0]
        ),
        Duration::from_secs(10),
    );
    assert_eq!(shown(&mut browser), by_value);
    browser.eval("document.querySelector('#trials th[data-sort=value]').click()");
    let descending = api(&mut browser, "sort=value&order=desc&limit=50");
    browser.wait_for(
        &format!(
            "document.querySelector('#trials tr[data-number]').dataset.number === '{}'",
            descending[0]
        ),
        Duration::from_secs(10),
    );
    assert_eq!(shown(&mut browser), descending);
    // Trials without a value (failed, running) come last in both orders.
    assert_eq!(by_value[by_value.len() - 2..], [5, 24]);
    assert_eq!(descending[descending.len() - 2..], [5, 24]);

    // Filters: only failed and pruned, then a value range.
    browser.eval(
        "for (const s of ['complete', 'running', 'waiting']) { const b = document.getElementById('trials-state-' + s); b.checked = false; b.dispatchEvent(new Event('change')); }",
    );
    rows_are(&mut browser, 2);
    let mut failed_and_pruned = shown(&mut browser);
    failed_and_pruned.sort();
    assert_eq!(failed_and_pruned, [5, 9]);
    browser.eval(
        "for (const s of ['complete', 'running', 'waiting']) { const b = document.getElementById('trials-state-' + s); b.checked = true; b.dispatchEvent(new Event('change')); }",
    );
    rows_are(&mut browser, 25);
    let in_range = api(&mut browser, "sort=value&order=desc&value_max=0.5&limit=50");
    assert!(!in_range.is_empty() && in_range.len() < 23, "{in_range:?}");
    browser.eval(
        "(() => { const i = document.getElementById('trials-value-max'); i.value = '0.5'; i.dispatchEvent(new Event('change')); })()",
    );
    rows_are(&mut browser, in_range.len());
    assert_eq!(shown(&mut browser), in_range);

    // Selecting a row draws it in the charts.
    let pick = in_range[0];
    browser.eval(&format!(
        "document.querySelector('#trials tr[data-number=\"{pick}\"] td:nth-child(2)').click()"
    ));
    browser.wait_for(
        "document.getElementById('trials-card').dataset.selected === '1'",
        Duration::from_secs(10),
    );
    let highlighted = browser.eval(
        "(() => { const o = (id) => echarts.getInstanceByDom(document.getElementById(id)).getOption(); \
         const sel = (id) => o(id).series.find((s) => s.id === 'selected').data.length; \
         return [sel('history'), sel('parallel'), sel('slice-0'), \
           document.querySelector('#trials tr.selected').dataset.number]; })()",
    );
    assert_eq!(highlighted, serde_json::json!([1, 1, 1, pick.to_string()]));

    // A real click on a history point opens that trial.
    let (x, y, number) = {
        let at = browser.eval(
            "(() => { const node = document.getElementById('history'); node.scrollIntoView(); \
             const c = echarts.getInstanceByDom(node); const s = c.getOption().series[0]; \
             const p = s.data[3]; const xy = c.convertToPixel({ seriesIndex: 0 }, p); \
             const box = node.getBoundingClientRect(); return [box.left + xy[0], box.top + xy[1], p[0]]; })()",
        );
        (
            at[0].as_f64().unwrap(),
            at[1].as_f64().unwrap(),
            at[2].as_u64().unwrap(),
        )
    };
    for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
        browser.page(
            "Input.dispatchMouseEvent",
            serde_json::json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
        );
    }
    browser.wait_for(
        &format!("location.hash === '#/study/mixed/trial/{number}'"),
        Duration::from_secs(10),
    );
}

/// Issue 21, curves of everything: every trial's curve (complete, pruned and running) is drawn
/// with the API's point count, the running trial's curve grows without a reload, the ASHA
/// rungs are drawn, and the step where a running trial's learning rate changed is marked.
#[test]
fn every_trials_curve_is_drawn_and_a_running_one_grows_live() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    use caviar_core::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("curves.db").display());
    let store = caviar_store::open_storage(&storage).unwrap();
    let study = Study::builder("live")
        .storage(store.clone())
        .spec(serde_json::json!({"front_end": "python",
            "pruner": {"kind": "asha", "min_resource": 1, "max_resource": 27, "reduction_factor": 3}}))
        .build()
        .unwrap();
    for k in 0..7u64 {
        let mut trial = study.ask().unwrap();
        trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
        let last = if k == 3 { 3 } else { 9 };
        for step in 1..=last {
            trial
                .report(step, 1.0 / step as f64 + 0.1 * k as f64)
                .unwrap();
        }
        let outcome = if k == 3 {
            Outcome::Pruned
        } else {
            Outcome::Complete(1.0 / 9.0 + 0.1 * k as f64)
        };
        study.tell(trial, outcome).unwrap();
    }
    let mut running = study.ask().unwrap();
    running.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
    running.report(1, 2.0).unwrap();
    running.report(2, 1.5).unwrap();
    caviar_engine::ask_changes(
        &*store,
        study.record(),
        7,
        &[("lr".into(), caviar_engine::NewValue::Text("0.02".into()))],
        "ann@box",
        None,
        false,
    )
    .unwrap();
    running.apply_param_changes(2).unwrap();

    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/live", server.url));
    browser.wait_for(
        "document.getElementById('all-curves') && document.getElementById('all-curves').dataset.lines === '8'",
        Duration::from_secs(10),
    );
    let api = browser.eval("fetch('/api/studies/live/curves').then((r) => r.json())");
    let api_points: usize = api["curves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["points"].as_array().unwrap().len())
        .sum();
    assert_eq!(api_points, 6 * 9 + 3 + 2);
    assert_eq!(
        browser.eval("Number(document.getElementById('all-curves').dataset.points)"),
        api_points
    );
    assert_eq!(api["rungs"], serde_json::json!([1, 3, 9, 27]));
    let drawn = browser.eval(
        "(() => { const o = echarts.getInstanceByDom(document.getElementById('all-curves')).getOption(); \
         const running = o.series.find((s) => s.name === '#7'); \
         return [o.series[0].markLine.data.map((d) => d.xAxis), running.markPoint.data.map((d) => d.coord[0]), \
           [...new Set(o.series.map((s) => s.data[0][3]))].sort()]; })()",
    );
    assert_eq!(
        drawn,
        serde_json::json!([[1, 3, 9, 27], [2], ["complete", "pruned", "running"]])
    );
    assert_eq!(
        browser.eval("JSON.parse(document.getElementById('all-curves').dataset.running)"),
        serde_json::json!({"7": 2})
    );
    // The page is not reloaded: a mark left on it now is still there when the curve has grown.
    browser.eval("window.__stillHere = true");
    running.report(3, 1.2).unwrap();
    running.report(4, 1.0).unwrap();
    browser.wait_for(
        "JSON.parse(document.getElementById('all-curves').dataset.running)['7'] === 4",
        Duration::from_secs(15),
    );
    assert_eq!(browser.eval("window.__stillHere === true"), true);
    browser.screenshot(&screenshot_dir().join("dashboard-all-curves.png"));
}

/// Issue 21, the plots people expect: contour and rank of any two parameters (on their own
/// scales), the EDF and the per-worker timeline each draw the API's point count, and a changed
/// pair of parameters redraws both.
#[test]
fn contour_rank_edf_and_timeline_draw_the_apis_points() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("plots.db").display());
    let study = toy_study();
    caviar(
        &storage,
        &["run", study.to_str().unwrap(), "--trials", "30"],
    );
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/toy", server.url));
    browser.wait_for(
        "document.getElementById('timeline') && document.getElementById('timeline').dataset.rendered === '1'",
        Duration::from_secs(10),
    );
    let view = browser.eval("fetch('/api/studies/toy').then((r) => r.json())");
    let timeline = browser.eval("fetch('/api/studies/toy/timeline').then((r) => r.json())");
    let points = |browser: &mut Browser, id: &str| {
        browser.eval(&format!(
            "Number(document.getElementById('{id}').dataset.points)"
        ))
    };
    assert_eq!(
        points(&mut browser, "edf"),
        view["edf"]["points"].as_array().unwrap().len()
    );
    assert_eq!(view["edf"]["total"], 30);
    assert_eq!(timeline["rows"].as_array().unwrap().len(), 30);
    assert_eq!(points(&mut browser, "timeline"), 30);
    // The toy runs 2 trials at once in one process: its worker gets two lanes.
    assert_eq!(
        timeline["workers"].as_array().unwrap().len(),
        1,
        "{timeline}"
    );
    assert_eq!(
        browser.eval("echarts.getInstanceByDom(document.getElementById('timeline')).getOption().yAxis[0].data.length"),
        2
    );
    // The pair drawn: count the sample's rows that have both parameters and a value.
    let params: Vec<String> = view["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let rows = view["sample"]["rows"].as_array().unwrap();
    for (x, y) in [("lr", "beta1"), ("units", "activation")] {
        let (i, j) = (
            params.iter().position(|p| p == x).unwrap(),
            params.iter().position(|p| p == y).unwrap(),
        );
        browser.eval(&format!(
            "(() => {{ const xs = document.getElementById('pair-x'), ys = document.getElementById('pair-y'); \
             xs.value = '{i}'; ys.value = '{j}'; xs.dispatchEvent(new Event('change')); }})()"
        ));
        let expected = rows
            .iter()
            .filter(|r| !r[i].is_null() && !r[j].is_null() && !r[params.len()].is_null())
            .count();
        assert_eq!(points(&mut browser, "contour"), expected, "{x} × {y}");
        assert_eq!(points(&mut browser, "rank"), expected, "{x} × {y}");
        let axes = browser.eval(
            "(() => { const o = echarts.getInstanceByDom(document.getElementById('contour')).getOption(); \
             return [o.xAxis[0].type, o.xAxis[0].name, o.yAxis[0].type, !!o.yAxis[0].inverse, o.series[0].data.length]; })()",
        );
        let kind = |name: &str| match name {
            "lr" | "beta1" => "log",
            "activation" => "category",
            _ => "value",
        };
        assert_eq!(
            axes,
            serde_json::json!([kind(x), x, kind(y), y == "beta1", 900]),
            "{x} × {y}: a 30 × 30 surface on each parameter's scale"
        );
    }
    browser.screenshot(&screenshot_dir().join("dashboard-plots.png"));
}

/// Issue 21, notes: a study's and a trial's note are written through the page with the write
/// token (refused without it), stored as the `note` user attribute, listed on the study page
/// and shown in the static report.
#[test]
fn notes_on_a_study_and_a_trial_are_saved_with_the_token_and_shown_in_the_report() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("notes.db").display());
    let study = toy_study();
    caviar(&storage, &["run", study.to_str().unwrap(), "--trials", "6"]);
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/toy", server.url));
    browser.wait_for(
        "document.getElementById('study-note-save') !== null",
        Duration::from_secs(10),
    );
    let save = |browser: &mut Browser, id: &str, text: &str, token: &str| {
        browser.eval(&format!(
            "(() => {{ document.getElementById('{id}-status').textContent = ''; \
             document.getElementById('{id}-edit').value = {text:?}; \
             document.getElementById('{id}-token').value = {token:?}; \
             document.getElementById('{id}-save').click(); }})()"
        ));
        browser.wait_for(
            &format!(
                "!['', 'saving…'].includes(document.getElementById('{id}-status').textContent)"
            ),
            Duration::from_secs(10),
        );
        browser
            .eval(&format!(
                "document.getElementById('{id}-status').textContent"
            ))
            .as_str()
            .unwrap()
            .to_string()
    };
    let refused = save(&mut browser, "study-note", "sneaky", "wrong-token");
    assert!(refused.starts_with("refused:"), "{refused}");
    let saved = save(
        &mut browser,
        "study-note",
        "lr sweep on data v2 <b>",
        &server.token,
    );
    assert_eq!(saved, "saved");
    assert_eq!(
        browser.eval("document.getElementById('study-note-text').textContent"),
        "lr sweep on data v2 <b>"
    );
    // A trial's note, from its page.
    browser.open(&format!("{}#/study/toy/trial/2", server.url));
    browser.wait_for(
        "document.getElementById('trial-note-save') !== null",
        Duration::from_secs(10),
    );
    let saved = save(
        &mut browser,
        "trial-note",
        "loss spiked at epoch 2",
        &server.token,
    );
    assert_eq!(saved, "saved");
    // Stored as the `note` user attribute, as Python would read it.
    {
        let store = caviar_store::open_storage(&storage).unwrap();
        let record = store.study("toy").unwrap().unwrap();
        let notes = caviar_engine::notes::study_notes(&*store, record.id).unwrap();
        assert_eq!(notes.study.as_deref(), Some("lr sweep on data v2 <b>"));
        assert_eq!(notes.trials, [(2, "loss spiked at epoch 2".to_string())]);
    }
    browser.open(&format!("{}#/study/toy", server.url));
    browser.wait_for(
        "document.getElementById('trial-notes-table') !== null",
        Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval("document.getElementById('trial-notes-table').innerText.replace('\\t', ' ')"),
        "#2 loss spiked at epoch 2"
    );
    // The static report shows both, read-only.
    let report = dir.path().join("report.html");
    caviar(
        &storage,
        &["report", "toy", "--out", report.to_str().unwrap()],
    );
    browser.open(&format!("file://{}", report.display()));
    browser.wait_for(
        "document.getElementById('study-note-text') !== null",
        Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval("document.getElementById('study-note-text').textContent"),
        "lr sweep on data v2 <b>"
    );
    assert_eq!(
        browser.eval("[document.getElementById('study-note-save') === null, document.querySelectorAll('#trial-notes-table tr').length]"),
        serde_json::json!([true, 1])
    );
}

/// Issue 21, compare: a study and its narrowed child side by side, reached from the parent's
/// lineage, with both best values and both histories and curves overlaid (the API's points).
#[test]
fn a_parent_and_its_narrowed_child_compare_side_by_side() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:{}", dir.path().join("compare.db").display());
    let study = toy_study();
    caviar(
        &storage,
        &["run", study.to_str().unwrap(), "--trials", "20"],
    );
    let next = dir.path().join("next.toml");
    caviar(
        &storage,
        &[
            "narrow",
            "toy",
            "-k",
            "5",
            "--write",
            next.to_str().unwrap(),
        ],
    );
    caviar(&storage, &["run", next.to_str().unwrap(), "--trials", "8"]);
    let server = Server::start(&storage);
    let mut browser = Browser::start(&chromium, 1400, 1000);
    browser.open(&format!("{}#/study/toy", server.url));
    browser.wait_for(
        "document.querySelector('#lineage a.compare-link') !== null",
        Duration::from_secs(10),
    );
    browser.eval("document.querySelector('#lineage a.compare-link').click()");
    browser.wait_for(
        "location.hash === '#/compare/toy/toy-narrow' && document.getElementById('compare-curves') !== null \
         && document.getElementById('compare-curves').dataset.rendered === '1'",
        Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval("document.getElementById('compare-relation').textContent"),
        "toy-narrow refines toy (a narrowed round)"
    );
    let a = browser.eval("fetch('/api/studies/toy').then((r) => r.json())");
    let b = browser.eval("fetch('/api/studies/toy-narrow').then((r) => r.json())");
    let points = |v: &Value, key: &str| -> usize {
        match key {
            "history" => v["history"]["points"].as_array().unwrap().len(),
            _ => v["curves"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["points"].as_array().unwrap().len())
                .sum(),
        }
    };
    assert_eq!(
        browser.eval("Number(document.getElementById('compare-history').dataset.points)"),
        points(&a, "history") + points(&b, "history")
    );
    assert_eq!(
        browser.eval("Number(document.getElementById('compare-curves').dataset.points)"),
        points(&a, "curves") + points(&b, "curves")
    );
    let best = browser
        .eval("[...document.querySelectorAll('#compare-best td.num')].map((c) => c.textContent)");
    for (shown, v) in best.as_array().unwrap().iter().zip([&a, &b]) {
        // "0.9198 (trial 12)": the value to the page's 5 digits, and the trial.
        let shown = shown.as_str().unwrap();
        let (value, trial) = shown.split_once(' ').unwrap();
        let expected = v["study"]["best_value"].as_f64().unwrap();
        let value: f64 = value.parse().unwrap();
        assert!(
            (value - expected).abs() <= 1e-4 * expected.abs(),
            "{shown} against {expected}"
        );
        assert_eq!(trial, format!("(trial {})", v["study"]["best_number"]));
    }
    browser.screenshot(&screenshot_dir().join("dashboard-compare.png"));
}
