//! Hand-written SVG plot of a result: latency percentiles over time on top, throughput and
//! open connections below, one colour per run (baseline grey, server under test blue).

use std::fmt::Write as _;

use crate::result::ResultFile;

const W: f64 = 960.0;
const PANEL_H: f64 = 230.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 100.0;
const GAP: f64 = 60.0;

/// Grey for the baseline, blue for the server under test; repeats of a role share its colour.
fn colour(role: &str) -> &'static str {
    if role == "baseline" {
        "#7f7f7f"
    } else {
        "#1f77b4"
    }
}

/// Splits `t` into lines of at most `width` characters at spaces.
fn wrap(t: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in t.split(' ') {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}

/// Renders the plot.
pub fn plot(r: &ResultFile) -> String {
    let h = TOP + 2.0 * PANEL_H + GAP + 50.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let commit = r
        .git_commit
        .as_deref()
        .map_or("?", |c| &c[..c.len().min(10)]);
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{} — {} — commit {}</text>"#,
        esc(&r.scenario),
        esc(&r.timestamp),
        esc(commit)
    );
    for (i, line) in wrap(&r.headline, 140).iter().take(2).enumerate() {
        let _ = write!(
            s,
            r#"<text x="{LEFT}" y="{}">{}</text>"#,
            38.0 + 14.0 * i as f64,
            esc(line)
        );
    }

    let t_max = r
        .runs
        .iter()
        .flat_map(|run| run.timeline.iter().map(|p| p.t))
        .fold(1.0f64, f64::max);
    let p99_top = r
        .runs
        .iter()
        .flat_map(|run| run.timeline.iter().map(|p| p.p99_ms))
        .fold(0.0f64, f64::max);
    let max_top = r
        .runs
        .iter()
        .flat_map(|run| run.timeline.iter().map(|p| p.max_ms))
        .fold(0.0f64, f64::max);
    // Keep p99 readable: a single huge max would flatten every other line, so clip max at 3×.
    let lat_top = nice_ceiling(
        if max_top > 3.0 * p99_top {
            3.0 * p99_top
        } else {
            max_top
        }
        .max(0.01),
    );
    let tput_top = nice_ceiling(
        r.runs
            .iter()
            .flat_map(|run| run.timeline.iter().map(|p| p.in_per_s))
            .fold(1.0f64, f64::max),
    );
    let conn_top = nice_ceiling(
        r.runs
            .iter()
            .flat_map(|run| run.timeline.iter().map(|p| p.conns as f64))
            .fold(1.0f64, f64::max),
    );

    let y1 = TOP;
    let y2 = TOP + PANEL_H + GAP;
    axes(
        &mut s,
        y1,
        t_max,
        lat_top,
        "latency (ms): p50 thin, p99 thick, max dotted",
        None,
    );
    axes(
        &mut s,
        y2,
        t_max,
        tput_top,
        "frames received/s (solid), connections (dashed, right axis)",
        Some(conn_top),
    );

    let mut legend: Vec<&str> = Vec::new();
    for run in &r.runs {
        let c = colour(&run.role);
        let pts = |f: &dyn Fn(&crate::monitor::Sample) -> f64, top: f64, y0: f64| -> String {
            run.timeline
                .iter()
                .map(|p| {
                    let x = LEFT + p.t / t_max * (W - LEFT - RIGHT);
                    let v = (f(p) / top).min(1.0);
                    format!("{:.1},{:.1}", x, y0 + PANEL_H * (1.0 - v))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (f, width, dash) in [
            (
                &(|p: &crate::monitor::Sample| p.p50_ms) as &dyn Fn(&crate::monitor::Sample) -> f64,
                1.0,
                "",
            ),
            (&|p: &crate::monitor::Sample| p.p99_ms, 2.5, ""),
            (
                &|p: &crate::monitor::Sample| p.max_ms,
                1.0,
                r#" stroke-dasharray="2,3""#,
            ),
        ] {
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="{width}"{dash} points="{}"/>"#,
                pts(f, lat_top, y1)
            );
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts(&|p| p.in_per_s, tput_top, y2)
        );
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.2" stroke-dasharray="6,4" points="{}"/>"#,
            pts(&|p| p.conns as f64, conn_top, y2)
        );
        if legend.contains(&run.role.as_str()) {
            continue;
        }
        let ly = 76.0;
        let lx = LEFT + 420.0 * legend.len() as f64;
        legend.push(&run.role);
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{}" width="14" height="4" fill="{c}"/><text x="{}" y="{}">{} ({}) {}</text>"#,
            ly - 4.0,
            lx + 18.0,
            ly,
            esc(&run.role),
            esc(&run.server.kind),
            esc(&run.url)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, y0: f64, t_max: f64, top: f64, title: &str, right_top: Option<f64>) {
    let x1 = W - RIGHT;
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{y0}" width="{}" height="{PANEL_H}" fill="none" stroke="#333"/>"##,
        x1 - LEFT
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="{}">{}</text>"#,
        y0 - 6.0,
        esc(title)
    );
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let y = y0 + PANEL_H * (1.0 - f);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 4.0,
            y + 4.0,
            fmt_num(top * f)
        );
        if let Some(rt) = right_top {
            let _ = write!(
                s,
                r#"<text x="{}" y="{:.1}">{}</text>"#,
                x1 + 4.0,
                y + 4.0,
                fmt_num(rt * f)
            );
        }
    }
    let step = nice_step(t_max / 8.0);
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        let x = LEFT + t / t_max * (x1 - LEFT);
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}s</text>"#,
            y0 + PANEL_H + 14.0,
            fmt_num(t)
        );
        t += step;
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn nice_ceiling(v: f64) -> f64 {
    let step = nice_step(v / 4.0);
    (v / step).ceil() * step
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(1500.0), 2000.0);
        assert_eq!(nice_ceiling(83_000.0), 100_000.0);
        assert_eq!(fmt_num(84_000.0), "84k");
        assert_eq!(esc("a<b&c"), "a&lt;b&amp;c");
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("", 5), vec![""]);
    }
}
