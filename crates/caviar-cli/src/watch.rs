//! `caviar watch STUDY [TRIAL]`: a live terminal view of one trial for babysitting over SSH:
//! its learning curve with the steps where parameters changed, its current parameters and the
//! history of changes, pauses and stops, redrawn every second. `q`, Esc or Ctrl-C leave it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use caviar_core::space::ParamValue;
use caviar_core::storage::{is_paused, ControlRecord, ParamChange, Storage, StudyRecord};
use caviar_core::trial::{FrozenTrial, TrialState};
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use crate::BadInput;

/// How often the view reads the study again.
const REFRESH: Duration = Duration::from_secs(1);

/// What one frame shows.
struct View {
    study: String,
    metric: String,
    trial: FrozenTrial,
    changes: Vec<ParamChange>,
    controls: Vec<ControlRecord>,
}

/// The trial to show: `number`, or else the newest running trial (the newest trial when none
/// runs).
fn pick(storage: &dyn Storage, record: &StudyRecord, number: Option<u64>) -> Result<FrozenTrial> {
    if let Some(n) = number {
        return storage
            .trials_numbered(record.id, n, n + 1)
            .context("reading the trial")?
            .into_iter()
            .next()
            .ok_or_else(|| BadInput(format!("study `{}` has no trial {n}", record.name)).into());
    }
    let running = storage
        .running_with_params(record.id)
        .context("reading running trials")?;
    if let Some(newest) = running.into_iter().max_by_key(|t| t.number) {
        return Ok(newest);
    }
    storage
        .trials(record.id)
        .context("reading trials")?
        .into_iter()
        .max_by_key(|t| t.number)
        .ok_or_else(|| {
            BadInput(format!(
                "study `{}` has no trials yet; start it (caviar run) and watch again",
                record.name
            ))
            .into()
        })
}

fn read(storage: &dyn Storage, record: &StudyRecord, number: Option<u64>) -> Result<View> {
    let trial = pick(storage, record, number)?;
    Ok(View {
        study: record.name.clone(),
        metric: record.metric.clone().unwrap_or_else(|| "value".into()),
        changes: storage.param_changes(trial.id).context("reading changes")?,
        controls: storage.controls(trial.id).context("reading pauses")?,
        trial,
    })
}

/// `caviar watch`: the live view in the terminal, or with `once` one plain-text frame of
/// `width` x `height` on stdout.
pub fn watch(
    storage: &dyn Storage,
    record: &StudyRecord,
    number: Option<u64>,
    once: Option<(u16, u16)>,
) -> Result<()> {
    if let Some((width, height)) = once {
        let view = read(storage, record, number)?;
        let area = Rect::new(0, 0, width, height);
        let mut buffer = Buffer::empty(area);
        render(&view, area, &mut buffer, None);
        for y in 0..height {
            let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
            println!("{}", line.trim_end());
        }
        return Ok(());
    }
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return Err(BadInput(
            "caviar watch draws in a terminal; for a plain text snapshot add --once".into(),
        )
        .into());
    }
    // Fail before the screen is taken over, so the error stays readable.
    let mut view = read(storage, record, number)?;
    let mut terminal = ratatui::init();
    let result = (|| -> Result<()> {
        loop {
            let problem = match read(storage, record, number) {
                Ok(fresh) => {
                    view = fresh;
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
            terminal.draw(|frame: &mut Frame| {
                let area = frame.area();
                render(&view, area, frame.buffer_mut(), problem.as_deref());
            })?;
            let until = Instant::now() + REFRESH;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                if let Event::Key(key) = event::read()? {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c;
                    if key.kind == KeyEventKind::Press && quit {
                        return Ok(());
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}

fn compact(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let text = format!("{v:.5}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn short(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(f) => compact(*f),
        other => other.short(),
    }
}

/// Draws `view` into `area` of `buffer` (a terminal frame or a plain-text snapshot).
fn render(view: &View, area: Rect, buffer: &mut Buffer, problem: Option<&str>) {
    use ratatui::widgets::Widget;
    let t = &view.trial;
    let [header, body, history, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(8),
        Constraint::Length(6),
        Constraint::Length(1),
    ])
    .areas(area);
    let state = match t.state {
        TrialState::Running if is_paused(&view.controls) => "running (paused)".to_string(),
        other => other.as_str().to_string(),
    };
    let value = t.value.map(compact).unwrap_or_else(|| "-".into());
    Paragraph::new(format!(
        "{} - trial {} - {state} - {} reports - {} {value}",
        view.study,
        t.number,
        t.intermediate.len(),
        view.metric
    ))
    .style(Style::default().fg(Color::Cyan))
    .render(header, buffer);

    let [curve_area, params_area] =
        Layout::horizontal([Constraint::Min(30), Constraint::Length(30)]).areas(body);
    render_curve(view, curve_area, buffer);

    let changed: Vec<&str> = view
        .changes
        .iter()
        .filter(|c| c.applied_step.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let lines: Vec<Line> = t
        .params
        .iter()
        .map(|(name, v)| {
            let mark = if changed.contains(&name.as_str()) {
                "*"
            } else {
                " "
            };
            Line::from(format!("{mark}{name} = {}", short(v)))
        })
        .collect();
    Paragraph::new(lines)
        .block(Block::bordered().title(" parameters (* changed) "))
        .render(params_area, buffer);

    // Changes and pauses, oldest first; the newest that fit.
    let mut events: Vec<(i64, String)> = view
        .changes
        .iter()
        .map(|c| {
            let when = match c.applied_step {
                Some(step) => format!("after step {step}"),
                None => "asked".into(),
            };
            let old = c.old.as_ref().map(short).unwrap_or_else(|| "?".into());
            let note = c
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            (
                c.asked_ms,
                format!(
                    "{when}: {} {old} -> {} ({}{note})",
                    c.name,
                    short(&c.new),
                    c.who
                ),
            )
        })
        .chain(view.controls.iter().map(|c| {
            let when = match (c.applied_ms, c.applied_step) {
                (None, _) => "asked".to_string(),
                (Some(_), Some(step)) => format!("after step {step}"),
                (Some(_), None) => "done".to_string(),
            };
            let note = c
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            (
                c.asked_ms,
                format!("{when}: {} ({}{note})", c.action.as_str(), c.who),
            )
        }))
        .collect();
    events.sort_by_key(|e| e.0);
    let room = history.height.saturating_sub(2) as usize;
    let shown: Vec<Line> = if events.is_empty() {
        vec![Line::from(format!(
            "none yet: caviar set {} {} NAME=VALUE, caviar pause|resume|stop {} {}",
            view.study, t.number, view.study, t.number
        ))]
    } else {
        events[events.len().saturating_sub(room)..]
            .iter()
            .map(|(_, text)| Line::from(text.clone()))
            .collect()
    };
    Paragraph::new(shown)
        .block(Block::bordered().title(" changes, pauses, stops "))
        .render(history, buffer);

    let bottom = match problem {
        Some(p) => format!("cannot read the study now ({p}); retrying - q quits"),
        None => "q quits - redrawn every second".to_string(),
    };
    Paragraph::new(bottom)
        .style(Style::default().fg(Color::DarkGray))
        .render(footer, buffer);
}

fn render_curve(view: &View, area: Rect, buffer: &mut Buffer) {
    use ratatui::widgets::Widget;
    let points: Vec<(f64, f64)> = view
        .trial
        .intermediate
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(s, v)| (*s as f64, *v))
        .collect();
    let title = format!(" {} by step ", view.metric);
    if points.is_empty() {
        Paragraph::new("no reports yet")
            .block(Block::bordered().title(title))
            .render(area, buffer);
        return;
    }
    let (x0, x1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let (y0, y1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let pad = if y1 > y0 { (y1 - y0) * 0.05 } else { 0.5 };
    let (y0, y1) = (y0 - pad, y1 + pad);
    // A change is marked where the curve stood at the step it took effect.
    let at_step: BTreeMap<u64, f64> = view.trial.intermediate.iter().copied().collect();
    let marks: Vec<(f64, f64)> = view
        .changes
        .iter()
        .filter_map(|c| {
            let step = c.applied_step?;
            Some((step as f64, *at_step.get(&step)?))
        })
        .collect();
    let datasets = vec![
        Dataset::default()
            .name(view.metric.clone())
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Green))
            .data(&points),
        Dataset::default()
            .name("changed")
            .marker(Marker::Block)
            .graph_type(GraphType::Scatter)
            .style(Style::default().fg(Color::Yellow))
            .data(&marks),
    ];
    let labels = |lo: f64, hi: f64| vec![compact(lo), compact((lo + hi) / 2.0), compact(hi)];
    Chart::new(datasets)
        .block(Block::bordered().title(title))
        .x_axis(
            Axis::default().bounds([x0, x1]).labels(
                labels(x0, x1)
                    .into_iter()
                    .map(Line::from)
                    .collect::<Vec<_>>(),
            ),
        )
        .y_axis(
            Axis::default().bounds([y0, y1]).labels(
                labels(y0, y1)
                    .into_iter()
                    .map(Line::from)
                    .collect::<Vec<_>>(),
            ),
        )
        .render(area, buffer);
}
