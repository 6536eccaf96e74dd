//! SVG figures: small multiples of learning curves, like the textbook's figure of the best
//! trials of a random search.

use std::fmt::Write;

use caviar_core::space::format_g;
use caviar_core::trial::FrozenTrial;

const COLS: usize = 5;
const PANEL_W: f64 = 190.0;
const PANEL_H: f64 = 130.0;
const PAD: f64 = 24.0;

/// One panel per trial (best first): its curve of `metric` over steps, on a 0..1 axis.
pub fn curves_svg(trials: &[&FrozenTrial], metric: &str, title: &str) -> String {
    let rows = trials.len().div_ceil(COLS).max(1);
    let width = COLS as f64 * PANEL_W + PAD;
    let height = rows as f64 * PANEL_H + 2.0 * PAD;
    let max_step = trials
        .iter()
        .filter_map(|t| t.intermediate.last().map(|(s, _)| *s))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{PAD}" y="16" font-size="13">{}</text>"#,
        escape(title)
    );
    for (i, t) in trials.iter().enumerate() {
        let x0 = PAD + (i % COLS) as f64 * PANEL_W;
        let y0 = 2.0 * PAD + (i / COLS) as f64 * PANEL_H;
        let (w, h) = (PANEL_W - 30.0, PANEL_H - 40.0);
        let _ = writeln!(
            svg,
            r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##
        );
        for tick in [0.0, 0.5, 1.0] {
            let y = y0 + h * (1.0 - tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end" fill="#666">{tick}</text>"##,
                x0 + w,
                x0 - 2.0,
                y + 3.0
            );
        }
        let points: Vec<String> = t
            .intermediate
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(s, v)| {
                let px = x0 + w * (*s as f64 / max_step);
                let py = y0 + h * (1.0 - v.clamp(0.0, 1.0));
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#1f6fb4" stroke-width="1.5"/>"##,
            points.join(" ")
        );
        let value = t
            .value
            .map(|v| format!("{v:.3}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            svg,
            r#"<text x="{x0}" y="{}">Best-{} ({metric} {value})</text>"#,
            y0 - 4.0,
            i + 1
        );
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, v)| match v.as_f64() {
                Some(x) => format!("{k}={}", format_g(x, 2)),
                None => format!("{k}={v}"),
            })
            .collect();
        let _ = writeln!(
            svg,
            r##"<text x="{x0}" y="{}" fill="#444" font-size="9">{}</text>"##,
            y0 + h + 12.0,
            escape(&params.join(" "))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
