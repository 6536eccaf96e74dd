//! The dashboard on a large study: how long the study page takes to become interactive in
//! headless Chromium, and how large its JSON is.
//!
//! `cargo bench -p caviar-cli --bench dashboard -- 100000` fills a SQLite study with that many
//! trials (4 parameters, 10 reports each), starts `caviar dashboard` on it and opens the study
//! page five times (the first right after start-up, before the server has read the study).
//! The page is interactive when every plot and the trials table's first page are drawn. Each
//! round then times the trials table: a sort by a parameter and a filter, as the API answers
//! them in the page and as a click on a column header redraws the table.

#[path = "../tests/support/cdp.rs"]
mod cdp;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use caviar_core::rng::Rng;
use caviar_core::space::{Distribution, Scale};
use caviar_core::storage::{NewStudy, Storage};
use caviar_core::trial::{Direction, TrialState};
use caviar_store::SqliteStorage;

fn fill(storage: &dyn Storage, trials: u64) {
    let study = storage
        .create_study(&NewStudy {
            name: "big".into(),
            direction: Direction::Maximize,
            metric: Some("val_acc".into()),
            spec: None,
            parent: None,
        })
        .unwrap();
    let lr = Distribution::float(1e-5, 1.0, Scale::Log).unwrap();
    let wd = Distribution::float(1e-8, 1e-4, Scale::Log).unwrap();
    let units = Distribution::int(50, 200, Scale::Linear).unwrap();
    let act = Distribution::categorical(["relu", "tanh"]).unwrap();
    let mut rng = Rng::new(1);
    for _ in 0..trials {
        let t = storage
            .create_trial(study.id, "bench", None)
            .unwrap()
            .unwrap();
        let (u_lr, u_act) = (rng.next_f64(), rng.next_f64());
        for (name, dist, u) in [
            ("lr", &lr, u_lr),
            ("weight_decay", &wd, rng.next_f64()),
            ("units", &units, rng.next_f64()),
            ("activation", &act, u_act),
        ] {
            storage
                .set_param(t.id, name, dist, &dist.from_unit(u))
                .unwrap();
        }
        let peak = 0.97 - 2.0 * (u_lr - 0.6).powi(2) - 0.02 * (u_act > 0.5) as u8 as f64;
        let acc = peak + 0.01 * rng.normal();
        for step in 1..=10 {
            storage
                .report(t.id, step, acc * (1.0 - (-(step as f64) / 3.0).exp()))
                .unwrap();
        }
        storage
            .finish_trial(t.id, TrialState::Complete, Some(acc), None)
            .unwrap();
    }
}

fn main() {
    let trials: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let chromium = match cdp::find_chromium() {
        Ok(path) => path,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let started = Instant::now();
    fill(&SqliteStorage::open(&db).unwrap(), trials);
    println!(
        "filled a {trials}-trial study in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let storage = format!("sqlite:{}", db.display());
    let mut server = Command::new(env!("CARGO_BIN_EXE_caviar"))
        .args(["--storage", &storage, "dashboard", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(server.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    reader.read_line(&mut first).unwrap();
    reader.read_line(&mut second).unwrap();
    let url = first
        .trim()
        .strip_prefix("caviar dashboard: ")
        .unwrap()
        .to_string();
    let mut browser = cdp::Browser::start(&chromium, 1400, 1000);
    println!("| open | page interactive (s) | study JSON (bytes) | API answer in the page (ms) | table: first page drawn | sort API (ms) | filter API (ms) | sort click to redrawn (ms) |");
    println!("|---|---|---|---|---|---|---|---|");
    for round in 1..=5 {
        browser.navigate("about:blank");
        let start = Instant::now();
        browser.open(&format!("{url}#/study/big"));
        let interactive = start.elapsed().as_secs_f64();
        let drawn = browser.eval("Number(document.getElementById('history').dataset.points)");
        assert!(drawn.as_u64().unwrap() > 0, "the history was not drawn");
        let timing = browser.eval(
            "(async () => { const t = performance.now(); const r = await fetch('/api/studies/big'); const b = await r.text(); return [b.length, performance.now() - t]; })()",
        );
        let rows = browser.eval("Number(document.getElementById('trials').dataset.rows)");
        assert_eq!(rows, 50, "the trials table's first page was not drawn");
        let api = |browser: &mut cdp::Browser, query: &str| -> f64 {
            let ms = browser.eval(&format!(
                "(async () => {{ const t = performance.now(); const r = await fetch('/api/studies/big/trials?{query}'); const b = await r.json(); \
                 if (!b.rows.length) throw new Error('no rows'); return performance.now() - t; }})()"
            ));
            ms.as_f64().unwrap()
        };
        let sort_ms = api(&mut browser, "sort=param:lr&order=desc&limit=50");
        let filter_ms = api(
            &mut browser,
            "sort=value&order=desc&value_min=0.9&p.activation.in=relu&p.units.max=120&limit=50",
        );
        // A click on the `lr` header until the table holds the new order.
        let click_ms = browser.eval(
            "(async () => { const t = performance.now(); const before = document.querySelector('#trials tr[data-number]').dataset.number; \
             document.querySelector('#trials th[data-sort=\"param:lr\"]').click(); \
             while (!document.querySelector('#trials th[data-sort=\"param:lr\"]') || !document.querySelector('#trials th[data-sort=\"param:lr\"]').textContent.endsWith('▲') \
               || document.querySelector('#trials tr[data-number]').dataset.number === before) await new Promise((r) => setTimeout(r, 2)); \
             return performance.now() - t; })()",
        );
        println!(
            "| {round}{} | {interactive:.2} | {} | {:.0} | yes (50 rows) | {sort_ms:.0} | {filter_ms:.0} | {:.0} |",
            if round == 1 { " (cold)" } else { "" },
            timing[0],
            timing[1].as_f64().unwrap(),
            click_ms.as_f64().unwrap()
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
