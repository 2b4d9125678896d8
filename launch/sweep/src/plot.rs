//! Drawing the report's charts as PNG with plotters: one small description of a chart (axes,
//! series of lines, dashed lines, markers and error bars) and one function that draws it.
//! Log axes are drawn as log10 of the values with the ticks labelled in the values' units.
//!
//! Text needs a TrueType font: `$ECGFM_PLOT_FONT`, else DejaVu Sans or Liberation Sans from the
//! usual system folders. Without one, charts are drawn without text (and `has_text` says so).

use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// A chart could not be drawn or saved.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct PlotError {
    pub path: String,
    pub reason: String,
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Style {
    Line,
    Dashed,
    Markers,
    LineMarkers,
    /// A thick line on top of everything (the compute frontier).
    Thick,
}

#[derive(Clone, Debug)]
pub struct Series {
    /// Legend entry (none: not in the legend).
    pub label: Option<String>,
    pub colour: RGBColor,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
    /// Vertical error bars: (x, low, high).
    pub bars: Vec<(f64, f64, f64)>,
}

impl Series {
    pub fn new(
        label: Option<String>,
        colour: RGBColor,
        style: Style,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Series {
            label,
            colour,
            style,
            points,
            bars: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub log: bool,
}

#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

/// The `i`th colour of a fixed palette.
pub fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    PALETTE[i % PALETTE.len()]
}

pub const GREY: RGBColor = RGBColor(120, 120, 120);

const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// Whether charts get text: registers the first font found, once.
pub fn has_text() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let from_env = std::env::var("ECGFM_PLOT_FONT").ok();
        let candidates = from_env
            .iter()
            .map(String::as_str)
            .chain(if from_env.is_some() {
                [].iter().copied()
            } else {
                FONT_PATHS.iter().copied()
            });
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn transform(v: f64, log: bool) -> Option<f64> {
    let t = if log {
        (v > 0.0).then(|| v.log10())?
    } else {
        v
    };
    t.is_finite().then_some(t)
}

fn tick_label(v: f64, log: bool) -> String {
    let value = if log { 10f64.powf(v) } else { v };
    if !log && (value - value.round()).abs() < 1e-9 && value.abs() < 1e6 {
        return format!("{value:.0}");
    }
    let large = if log { 1000.0 } else { 100_000.0 };
    if value != 0.0 && !(0.01..large).contains(&value.abs()) {
        return format!("{value:.1e}");
    }
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The padded range of the transformed values on one axis.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.06).max(1e-3 * lo.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// Draws `chart` into the PNG `path` (900 x 560).
pub fn draw(chart: &Chart, path: &Path) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let text = has_text();
    let (lx, ly) = (chart.x.log, chart.y.log);
    let pts = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .filter_map(|&(x, y)| Some((transform(x, lx)?, transform(y, ly)?)))
            .collect()
    };
    let bars = |s: &Series| -> Vec<(f64, f64, f64)> {
        s.bars
            .iter()
            .filter_map(|&(x, lo, hi)| {
                Some((transform(x, lx)?, transform(lo, ly)?, transform(hi, ly)?))
            })
            .collect()
    };
    let all: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| {
            let mut v = pts(s);
            v.extend(
                bars(s)
                    .into_iter()
                    .flat_map(|(x, lo, hi)| [(x, lo), (x, hi)]),
            );
            v
        })
        .collect();
    let x_range = range(all.iter().map(|p| p.0));
    let y_range = range(all.iter().map(|p| p.1));

    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(14);
    if text {
        builder
            .caption(&chart.title, ("sans-serif", 22))
            .x_label_area_size(48)
            .y_label_area_size(70);
    }
    let mut ctx = builder
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(|e| fail(&e))?;
    let x_fmt = |v: &f64| tick_label(*v, lx);
    let y_fmt = |v: &f64| tick_label(*v, ly);
    let mut mesh = ctx.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235));
    if text {
        mesh.x_desc(chart.x.label.as_str())
            .y_desc(chart.y.label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| fail(&e))?;

    let mut legend = false;
    for s in &chart.series {
        let colour = s.colour;
        let p = pts(s);
        let anno = match s.style {
            Style::Line | Style::LineMarkers => ctx
                .draw_series(LineSeries::new(p.clone(), colour.stroke_width(2)))
                .map_err(|e| fail(&e))?,
            Style::Thick => ctx
                .draw_series(LineSeries::new(p.clone(), colour.stroke_width(4)))
                .map_err(|e| fail(&e))?,
            Style::Dashed => ctx
                .draw_series(DashedLineSeries::new(
                    p.clone(),
                    8,
                    6,
                    colour.stroke_width(2),
                ))
                .map_err(|e| fail(&e))?,
            Style::Markers => ctx
                .draw_series(p.iter().map(|&xy| Circle::new(xy, 4, colour.filled())))
                .map_err(|e| fail(&e))?,
        };
        if let (Some(label), true) = (&s.label, text) {
            legend = true;
            let style = s.style;
            anno.label(label.as_str())
                .legend(move |(x, y)| match style {
                    Style::Markers => Circle::new((x + 10, y), 4, colour.filled()).into_dyn(),
                    _ => PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)).into_dyn(),
                });
        }
        if s.style == Style::LineMarkers {
            ctx.draw_series(p.iter().map(|&xy| Circle::new(xy, 3, colour.filled())))
                .map_err(|e| fail(&e))?;
        }
        ctx.draw_series(bars(s).into_iter().map(|(x, lo, hi)| {
            ErrorBar::new_vertical(x, lo, (lo + hi) / 2.0, hi, colour.stroke_width(2), 10)
        }))
        .map_err(|e| fail(&e))?;
    }
    if legend {
        ctx.configure_series_labels()
            .border_style(RGBColor(200, 200, 200))
            .background_style(WHITE.mix(0.85))
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}
