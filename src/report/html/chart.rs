//! Inline SVG charts for report.html, drawn with plotters' SVG backend.
//!
//! Two shapes: a chart over the run clock (x: seconds since the start; lines per series;
//! the run's events as numbered vertical markers) and the HDR percentile spectrum (x: the
//! percentile on HdrHistogram's log axis `1 / (1 - p)`, labelled 90%, 99%, 99.9%...; y:
//! latency in ms).
//!
//! Display downsampling: a line over more than [`MAX_POINTS`] seconds is drawn from buckets
//! of `ceil(seconds / MAX_POINTS)` seconds; the caller says how a bucket folds its seconds
//! ([`Fold`]): rates are averaged, upper percentiles take the bucket's maximum (a spike stays
//! visible). The numbers in the page's tables never come from here.
use plotters::prelude::*;

use super::{Band, Marker};
use crate::metrics::format_number;
use crate::report::ReportError;

/// Most points drawn per line (a one-hour run is drawn from 6-second buckets).
pub const MAX_POINTS: usize = 600;

/// Size of the SVG's coordinate system (it scales to the page through its viewBox).
const W: u32 = 900;
const H: u32 = 280;

/// Line colours, in series order.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One line of a chart.
pub struct Line {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Dashed-looking (thinner, translucent): a baseline run under `--compare`.
    pub faint: bool,
}

/// How a display bucket folds the values of its seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    Mean,
    Max,
}

/// `(second, value)` points, at most [`MAX_POINTS`] of them (each at its bucket's start).
pub fn downsample(points: &[(u64, f64)], fold: Fold) -> Vec<(f64, f64)> {
    let Some(last) = points.iter().map(|p| p.0).max() else {
        return Vec::new();
    };
    let width = (last + 1).div_ceil(MAX_POINTS as u64).max(1);
    if width == 1 {
        return points.iter().map(|(s, v)| (*s as f64, *v)).collect();
    }
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut cur: Option<(u64, f64, u64)> = None;
    let flush = |c: (u64, f64, u64), out: &mut Vec<(f64, f64)>| {
        let v = match fold {
            Fold::Mean => c.1 / width as f64,
            Fold::Max => c.1,
        };
        out.push(((c.0 * width) as f64, v));
    };
    for (s, v) in points {
        let b = s / width;
        match &mut cur {
            Some(c) if c.0 == b => {
                match fold {
                    Fold::Mean => c.1 += v,
                    Fold::Max => c.1 = c.1.max(*v),
                }
                c.2 += 1;
            }
            _ => {
                if let Some(c) = cur.take() {
                    flush(c, &mut out);
                }
                cur = Some((b, *v, 1));
            }
        }
    }
    if let Some(c) = cur {
        flush(c, &mut out);
    }
    out
}

fn err<E: std::fmt::Debug>(e: E) -> ReportError {
    ReportError::Render {
        format: "html",
        reason: format!("chart: {e:?}"),
    }
}

fn tone_color(m: &Marker) -> RGBColor {
    let (r, g, b) = m.tone.color();
    RGBColor(r, g, b)
}

/// A y range with a little headroom (at least `min_top`).
fn y_top(lines: &[Line], min_top: f64) -> f64 {
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    (max * 1.12).max(min_top)
}

/// A chart over the run clock, `[0, x_max]` seconds, with the event markers.
pub fn over_time(
    y_desc: &str,
    lines: &[Line],
    (markers, bands): (&[Marker], &[Band]),
    x_max: f64,
    min_top: f64,
) -> Result<String, ReportError> {
    let x_max = x_max.max(1.0);
    let y_max = y_top(lines, min_top);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(16)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238).stroke_width(1))
            .bold_line_style(RGBColor(215, 215, 215).stroke_width(1))
            .x_desc("seconds since the start")
            .y_desc(y_desc)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .x_labels(10)
            .y_labels(6)
            .x_label_formatter(&|v| format_number(*v))
            .y_label_formatter(&|v| format_number(*v))
            .draw()
            .map_err(err)?;
        for b in bands {
            let (r, g, bl) = b.tone.color();
            let c = RGBColor(r, g, bl);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(b.from_s, 0.0), (b.to_s.min(x_max), y_max)],
                    c.mix(0.08).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    b.label.clone(),
                    (b.from_s, y_max * 0.06),
                    ("sans-serif", 11).into_font().color(&c.mix(0.8)),
                )))
                .map_err(err)?;
        }
        // Labels of markers close together are stacked, not drawn over each other.
        let near = x_max * 0.025;
        for (i, m) in markers.iter().enumerate() {
            let c = tone_color(m);
            let level = markers[..i]
                .iter()
                .filter(|o| (m.at_s - o.at_s).abs() < near)
                .count()
                % 6;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m.at_s, 0.0), (m.at_s, y_max)],
                    c.mix(0.55).stroke_width(1),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    m.number.to_string(),
                    (m.at_s, y_max * (0.985 - 0.075 * level as f64)),
                    ("sans-serif", 12).into_font().color(&c),
                )))
                .map_err(err)?;
        }
        for l in lines {
            let style = if l.faint {
                l.color.mix(0.45).stroke_width(1)
            } else {
                l.color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), style))
                .map_err(err)?
                .label(l.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            // A series of a second or two (a warm-up) is a dot, not an invisible line.
            if l.points.len() <= 3 {
                chart
                    .draw_series(
                        l.points
                            .iter()
                            .map(|p| Circle::new(*p, 3, l.color.filled())),
                    )
                    .map_err(err)?;
            }
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The HDR percentile spectrum: each line's points are `(percentile as a fraction, ms)`.
pub fn spectrum(lines: &[Line]) -> Result<String, ReportError> {
    // x = 1 / (1 - p): 1 at 0%, 10 at 90%, 100 at 99%, ...
    let x_of = |p: f64| 1.0 / (1.0 - p.min(0.999_999));
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| x_of(p.0)))
        .fold(100.0f64, f64::max)
        .min(1e6);
    let y_max = y_top(lines, 1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(16)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238).stroke_width(1))
            .bold_line_style(RGBColor(215, 215, 215).stroke_width(1))
            .x_desc("percentile")
            .y_desc("latency ms")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .x_label_formatter(&|v| format!("{}%", format_number(100.0 * (1.0 - 1.0 / *v))))
            .y_label_formatter(&|v| format_number(*v))
            .draw()
            .map_err(err)?;
        for l in lines {
            let style = if l.faint {
                l.color.mix(0.45).stroke_width(1)
            } else {
                l.color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(
                    l.points.iter().map(|(p, v)| (x_of(*p), *v)),
                    style,
                ))
                .map_err(err)?
                .label(l.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_series_are_bucketed_for_display() {
        let pts: Vec<(u64, f64)> = (0..3600)
            .map(|s| (s, if s == 1000 { 50.0 } else { 1.0 }))
            .collect();
        let mean = downsample(&pts, Fold::Mean);
        assert!(mean.len() <= MAX_POINTS, "{}", mean.len());
        let max = downsample(&pts, Fold::Max);
        assert!(max.iter().any(|p| p.1 == 50.0), "a spike stays visible");
        let short: Vec<(u64, f64)> = (0..10).map(|s| (s, 2.0)).collect();
        assert_eq!(downsample(&short, Fold::Mean).len(), 10);
    }
}
