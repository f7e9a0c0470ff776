//! `report.html`: one self-contained page a person would rather look at than the JSON, with
//! no network at all (no CDN, no web font, no script): the verdict and every check first (a
//! failed check with its runbook line), then charts over the run's time with the run's events
//! drawn on them, then one section per drill.
//!
//! Anchors: k6's web dashboard and HTML report, Gatling's report (charts over time with the
//! run's phases), hyperfine's exporters (one trait, one file per format), HdrHistogram's
//! percentile-spectrum plot.
//!
//! Layout of the page:
//!
//! ```text
//! header        plan, start, duration, target, verdict banner, table of contents
//! sections      each a <section id=ID><h2>TITLE</h2>...</section>, in the order of sections():
//!   verdict     every check: result, kind, name, expected, observed, runbook of a failed one;
//!               the warnings
//!   scenarios   per scenario: requests, rps, errors (by kind), dropped, latency percentiles
//!   timeline    charts over the run clock: throughput, error rate by kind, latency p50/p95/p99
//!               per scenario; numbered event markers on every chart
//!   events      the numbered events (the markers' legend) and every other event
//!   probes, slos, canary, blue_green,   one per drill, present when the run had it
//!   capacity, autoscale
//!   spectrum    latency as an HDR percentile spectrum per scenario (log x: 90%, 99%, 99.9%...)
//!   compare     `loadgate report --compare`: deltas against a baseline run, curves overlaid
//! ```
//!
//! Extending: a drill adds a type implementing [`Section`] (a file of its own past a few
//! dozen lines) and a line in [`sections`], and may shade its windows on the charts (a few
//! lines in `bands`); a new event kind gets a marker with the default tone unless [`tone`]
//! says otherwise. Nothing else changes.
//!
//! Charts are inline SVG drawn in Rust with the plotters crate's SVG backend (text is laid out
//! by the browser: no font files), made responsive by their `viewBox` and CSS. Long runs are
//! downsampled **for display only** (at most [`chart::MAX_POINTS`] points per line; see
//! [`chart`]): every number in a table comes from the exact histograms and counters.
mod autoscale;
mod capacity;
mod chart;
mod drills;
mod sections;

use std::fmt::Write as _;

use crate::metrics::{format_number, EventKind};
use crate::report::summary::{EventSummary, Verdict};
use crate::report::{Exporter, ReportError, RunReport, HTML_FILE};

pub use chart::MAX_POINTS;

/// report.html.
pub struct HtmlExporter;

impl Exporter for HtmlExporter {
    fn file_name(&self) -> &'static str {
        HTML_FILE
    }

    fn render(&self, run: &RunReport<'_>) -> Result<Vec<u8>, ReportError> {
        render(run).map(String::into_bytes)
    }
}

/// How an event marker is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Something broke (abort, breach, probe failure, burn alert, failed action).
    Bad,
    /// Something recovered (probe recovered, alert resolved).
    Good,
    /// A drill acted or decided (canary step, cutover, stack action).
    Drill,
    /// Anything else.
    Info,
}

impl Tone {
    /// The CSS / SVG colour.
    pub fn color(self) -> (u8, u8, u8) {
        match self {
            Tone::Bad => (200, 40, 40),
            Tone::Good => (30, 140, 60),
            Tone::Drill => (110, 60, 180),
            Tone::Info => (120, 120, 120),
        }
    }

    fn class(self) -> &'static str {
        match self {
            Tone::Bad => "bad",
            Tone::Good => "good",
            Tone::Drill => "drill",
            Tone::Info => "info",
        }
    }
}

/// The marker tone of an event, or `None` when it is not drawn on the charts (it is still
/// listed in the events table). New kinds are drawn with [`Tone::Info`] until given one.
pub fn tone(e: &EventKind) -> Option<Tone> {
    Some(match e {
        EventKind::ScenarioStart { .. }
        | EventKind::ScenarioEnd { .. }
        | EventKind::RateChange { .. }
        | EventKind::WeightsChange { .. } => return None,
        EventKind::Abort { .. }
        | EventKind::Interrupt
        | EventKind::WorkerError { .. }
        | EventKind::ThresholdBreach { .. }
        | EventKind::ProbeFailure { .. }
        | EventKind::BurnAlert { .. }
        | EventKind::ActionFailed { .. } => Tone::Bad,
        EventKind::StackAction { ok: false, .. }
        | EventKind::CanaryWeight { ok: false, .. }
        | EventKind::Cutover { ok: false, .. }
        | EventKind::CutoverJudged { passed: false, .. }
        | EventKind::CanaryDecision { passed: false, .. }
        | EventKind::FaultInjected { ok: false, .. }
        | EventKind::FaultRecovered { ok: false, .. } => Tone::Bad,
        EventKind::ProbeRecovered { .. }
        | EventKind::BurnResolved { .. }
        | EventKind::UsersRecovered { .. } => Tone::Good,
        EventKind::StackAction { .. }
        | EventKind::CanaryWeight { .. }
        | EventKind::CanaryStep { .. }
        | EventKind::CanaryDecision { .. }
        | EventKind::Cutover { .. }
        | EventKind::CutoverJudged { .. }
        | EventKind::FaultInjected { .. }
        | EventKind::FaultRecovered { .. } => Tone::Drill,
        #[allow(unreachable_patterns)]
        _ => Tone::Info,
    })
}

/// At most this many events are drawn as markers (the first ones; the table lists them all
/// up to [`MAX_EVENT_ROWS`]).
pub const MAX_MARKERS: usize = 60;
/// At most this many events are listed in the page (summary.json has every one).
pub const MAX_EVENT_ROWS: usize = 500;

/// An event drawn on the charts: its number in the events table, time and tone.
#[derive(Debug, Clone)]
pub struct Marker {
    pub number: usize,
    pub at_s: f64,
    pub tone: Tone,
    pub label: String,
}

/// A stretch of the run clock shaded on the charts: a canary step's window, a blue/green
/// switch's judged window, a windowed threshold's first failing window.
#[derive(Debug, Clone)]
pub struct Band {
    pub from_s: f64,
    pub to_s: f64,
    pub tone: Tone,
    /// Written at the band's top left, e.g. `10%`.
    pub label: String,
}

/// The bands of a run: each drill's windows (a new drill adds its own here).
fn bands(s: &crate::report::Summary) -> Vec<Band> {
    let mut out = Vec::new();
    if let Some(c) = &s.canary {
        for st in &c.steps {
            out.push(Band {
                from_s: st.from_s as f64,
                to_s: st.to_s as f64,
                tone: if matches!(
                    st.decision,
                    crate::checks::canary::Decision::Continue
                        | crate::checks::canary::Decision::Promote
                ) {
                    Tone::Drill
                } else {
                    Tone::Bad
                },
                label: format!("{}%", st.weight),
            });
        }
    }
    if let Some(b) = &s.blue_green {
        for sw in &b.switches {
            out.push(Band {
                from_s: sw.from_s as f64,
                to_s: sw.to_s as f64,
                tone: if sw.passed { Tone::Drill } else { Tone::Bad },
                label: format!("→{}", sw.to),
            });
        }
    }
    if let Some(c) = &s.capacity {
        for st in &c.steps {
            out.push(Band {
                from_s: st.at_s,
                to_s: st.at_s + st.duration_s,
                tone: match st.verdict {
                    crate::drills::capacity::StepVerdict::Pass => Tone::Drill,
                    crate::drills::capacity::StepVerdict::Fail => Tone::Bad,
                    crate::drills::capacity::StepVerdict::Invalid => Tone::Info,
                },
                label: format!("{}/s", format_number(st.rate)),
            });
        }
    }
    for e in &s.events {
        if let EventKind::ThresholdBreach {
            window_start_s,
            window_end_s,
            ..
        } = &e.event
        {
            out.push(Band {
                from_s: *window_start_s,
                to_s: *window_end_s,
                tone: Tone::Bad,
                label: "breach".into(),
            });
        }
    }
    out.truncate(MAX_MARKERS);
    out
}

/// What every section sees.
pub struct Page<'a> {
    pub run: &'a RunReport<'a>,
    /// Events drawn on the charts, numbered from 1.
    pub markers: Vec<Marker>,
    /// Windows shaded on the charts.
    pub bands: Vec<Band>,
}

impl Page<'_> {
    /// The marker number of an event (by its index in `summary.events`), if it is drawn.
    fn number_of(&self, e: &EventSummary) -> Option<usize> {
        self.markers
            .iter()
            .find(|m| m.at_s == e.at_s && m.label == e.detail)
            .map(|m| m.number)
    }
}

/// One part of the page.
pub trait Section {
    /// The anchor (`<section id=...>`).
    fn id(&self) -> &'static str;
    /// The heading and its line in the table of contents.
    fn title(&self) -> &'static str;
    /// The section's body, or `None` when the run has nothing for it.
    fn render(&self, page: &Page<'_>) -> Result<Option<String>, ReportError>;
}

/// Every section, in page order. A drill adds its line here.
pub fn sections() -> Vec<Box<dyn Section>> {
    vec![
        Box::new(sections::Checks),
        Box::new(sections::Scenarios),
        Box::new(sections::Timeline),
        Box::new(drills::Probes),
        Box::new(drills::Slos),
        Box::new(drills::Canary),
        Box::new(drills::BlueGreen),
        Box::new(capacity::Capacity),
        Box::new(autoscale::Autoscale),
        Box::new(sections::Spectrum),
        Box::new(sections::Events),
        Box::new(sections::Compare),
    ]
}

fn markers(events: &[EventSummary]) -> Vec<Marker> {
    events
        .iter()
        .filter_map(|e| tone(&e.event).map(|t| (e, t)))
        .take(MAX_MARKERS)
        .enumerate()
        .map(|(i, (e, tone))| Marker {
            number: i + 1,
            at_s: e.at_s,
            tone,
            label: e.detail.clone(),
        })
        .collect()
}

const CSS: &str = r#"
:root{--ok:#1e8c3c;--bad:#c82828;--ink:#1d2330;--mute:#5d6675;--line:#dde1e8;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink);background:var(--bg)}
header,main{max-width:1100px;margin:0 auto;padding:12px 16px}
header h1{font-size:1.35em;margin:.2em 0}
.meta{color:var(--mute);font-size:.9em}
.banner{border-radius:8px;padding:12px 16px;margin:12px 0;color:#fff;font-weight:600;font-size:1.15em}
.banner.pass{background:var(--ok)}.banner.fail{background:var(--bad)}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:.9em}
nav a{color:var(--ink)}
section{background:#fff;border:1px solid var(--line);border-radius:8px;margin:14px 0;padding:10px 14px}
section h2{font-size:1.1em;margin:.3em 0 .6em}
h3{font-size:1em;margin:.8em 0 .3em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.88em}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--bg);white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:var(--ok);font-weight:600}.fail{color:var(--bad);font-weight:600}
.banner.pass,.banner.fail{color:#fff}
tr.failed td{background:#fff4f4}
.runbook{margin-top:3px;color:var(--bad)}
.runbook:before{content:"runbook: ";font-weight:600}
.chart{margin:6px 0 14px;overflow-x:auto;-webkit-overflow-scrolling:touch}
.chart svg{width:100%;min-width:560px;height:auto;display:block}
.note{color:var(--mute);font-size:.85em}
.tag{display:inline-block;min-width:1.6em;text-align:center;border-radius:9px;color:#fff;font-size:.8em;padding:0 5px}
.tag.bad{background:#c82828}.tag.good{background:#1e8c3c}.tag.drill{background:#6e3cb4}.tag.info{background:#787878}
.warn{background:#fff8e1;border-left:4px solid #e0a800;padding:6px 10px;margin:6px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:10px}
@media (max-width:600px){body{font-size:14px}header,main{padding:8px}section{padding:8px}th,td{padding:3px 4px}}
"#;

/// Render the whole page.
pub fn render(run: &RunReport<'_>) -> Result<String, ReportError> {
    let s = run.summary;
    let page = Page {
        run,
        markers: markers(&s.events),
        bands: bands(s),
    };
    let mut body = String::new();
    let mut toc = Vec::new();
    for sec in sections() {
        if let Some(html) = sec.render(&page)? {
            toc.push((sec.id(), sec.title()));
            let _ = write!(
                body,
                "<section id=\"{}\"><h2>{}</h2>\n{html}\n</section>\n",
                sec.id(),
                esc(sec.title())
            );
        }
    }
    let pass = s.verdict == Verdict::Pass;
    let mut verdict = format!(
        "{}: {} of {} criteria passed",
        if pass { "PASS" } else { "FAIL" },
        s.checks_passed,
        s.checks_passed + s.checks_failed
    );
    if s.checks.is_empty() {
        verdict = format!(
            "{}: no thresholds, nothing was judged",
            if pass { "PASS" } else { "FAIL" }
        );
    }
    if s.interrupted {
        verdict.push_str(" (interrupted)");
    } else if s.aborted {
        verdict.push_str(" (aborted)");
    }
    let mut out = String::with_capacity(body.len() + 8192);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} — loadgate {}</title><style>{CSS}</style></head><body>\n<header>\
<h1>loadgate: {}</h1><div class=\"meta\">started {} · {} s",
        esc(&s.plan),
        if pass { "PASS" } else { "FAIL" },
        esc(&s.plan),
        esc(&s.started_at),
        format_number(s.duration_s),
    );
    if let Some(info) = &s.run {
        let _ = write!(
            out,
            " · target {} · loadgate {}",
            esc(&info.target),
            esc(&info.loadgate_version)
        );
        if let Some(p) = &info.plan_path {
            let _ = write!(out, " · plan {}", esc(p));
        }
        if !info.overrides.is_empty() {
            let _ = write!(out, " · --set {}", esc(&info.overrides.join(" ")));
        }
    }
    out.push_str("</div>");
    let _ = write!(
        out,
        "<div class=\"banner {}\">{}</div>",
        if pass { "pass" } else { "fail" },
        esc(&verdict)
    );
    if let Some(r) = &s.stop_reason {
        let _ = write!(out, "<div class=\"warn\">stopped early: {}</div>", esc(r));
    }
    out.push_str("<nav>");
    for (id, title) in toc {
        let _ = write!(out, "<a href=\"#{id}\">{}</a>", esc(title));
    }
    out.push_str("</nav></header>\n<main>\n");
    out.push_str(&body);
    out.push_str("</main></body></html>\n");
    Ok(out)
}

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A table: header cells, then rows of already-escaped cells; `num` marks right-aligned
/// columns.
pub(crate) fn table(head: &[&str], rows: &[Vec<String>], num: &[usize]) -> String {
    let mut o = String::from("<div class=\"scroll\"><table><thead><tr>");
    for h in head {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        o.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if num.contains(&i) {
                let _ = write!(o, "<td class=\"num\">{c}</td>");
            } else {
                let _ = write!(o, "<td>{c}</td>");
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></div>");
    o
}

/// A pass / fail cell.
pub(crate) fn verdict_cell(passed: bool) -> String {
    if passed {
        "<span class=\"pass\">PASS</span>".into()
    } else {
        "<span class=\"fail\">FAIL</span>".into()
    }
}

/// Milliseconds with two decimals (as the terminal table).
pub(crate) fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// An optional number, `-` when absent.
pub(crate) fn opt(v: Option<f64>) -> String {
    v.map(format_number).unwrap_or_else(|| "-".into())
}

/// The marker chip of an event number.
pub(crate) fn chip(number: usize, tone: Tone) -> String {
    format!("<span class=\"tag {}\">{number}</span>", tone.class())
}
