//! `ecgfm data inspect --plot`: draws the first windows of a dataset's first shard as one PNG,
//! one column per window and one panel per standard lead (I, II, III, aVR, aVL, aVF, V1..V6,
//! top to bottom), in physical units. Drawn without any text so it needs no system fonts.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type};
use plotters::prelude::*;

use crate::error::DataError;
use crate::manifest::Manifest;
use crate::schema::{col, N_LEADS};
use crate::shard_columns;
use crate::store;

/// Width in pixels of the column of one window.
pub const COLUMN_WIDTH: u32 = 640;
/// Height in pixels of one lead panel (the image is `N_LEADS` panels high).
pub const PANEL_HEIGHT: u32 = 72;
/// Most windows one plot draws: a PNG of 32 columns is 20,480 × 864 pixels (about 53 MB
/// while drawn); more would be too wide to look at and grows without bound.
pub const MAX_RECORDS: usize = 32;
/// Colour of the signal traces.
pub const TRACE_COLOUR: RGBColor = RGBColor(20, 60, 200);
const FRAME_COLOUR: RGBColor = RGBColor(200, 200, 200);
const BASELINE_COLOUR: RGBColor = RGBColor(235, 170, 170);

/// One window to draw, in physical units.
struct Window {
    n_samples: usize,
    lead_mask: [bool; N_LEADS],
    /// Lead-major, `window_samples` per lead.
    signal: Vec<f32>,
}

/// Reads the first `records` windows of the first shard of the dataset at `url` and writes them
/// to `out_png`: one column per window, 12 stacked lead panels per column (absent leads left
/// empty), each window scaled to the range of its own present leads so nothing is clipped.
pub fn plot_records(
    url: &str,
    options: &[(&str, &str)],
    out_png: &Path,
    records: usize,
) -> Result<(), DataError> {
    if !(1..=MAX_RECORDS).contains(&records) {
        return Err(DataError::Config(format!(
            "a plot draws 1 to {MAX_RECORDS} records, not {records}"
        )));
    }
    let (object_store, root) = store::open_url_with(url, options)?;
    let manifest = Manifest::load(object_store.as_ref(), &root)?;
    let Some(shard) = manifest.shards.first() else {
        return Err(DataError::Corrupt {
            path: store::shown(object_store.as_ref(), &store::join(&root, "manifest.json")),
            reason: "the dataset has no shards to plot".into(),
        });
    };
    let location = store::join(&root, &shard.path);
    let bytes = store::block_on(store::get_bytes(object_store.as_ref(), &location))?;
    let windows = read_windows(
        bytes,
        &store::shown(object_store.as_ref(), &location),
        manifest.window_samples,
        manifest.signal_scale,
        records,
    )?;
    draw(&windows, manifest.window_samples, out_png)
}

/// Decodes the first `records` rows of one shard.
fn read_windows(
    bytes: bytes::Bytes,
    path: &str,
    window_samples: usize,
    signal_scale: f32,
    records: usize,
) -> Result<Vec<Window>, DataError> {
    let corrupt = |reason: String| shard_columns::corrupt(path, reason);
    // In the schema's order: n_samples, lead_mask, signal.
    let columns = [col::N_SAMPLES, col::LEAD_MASK, col::SIGNAL];
    let mut windows = Vec::new();
    for batch in shard_columns::decode(bytes, path, &columns, None, Some(records))? {
        let n_samples = batch.column(0).as_primitive::<Int32Type>();
        let lead_mask = batch.column(1).as_fixed_size_list();
        let signal = batch.column(2).as_fixed_size_list();
        if signal.value_length() as usize != N_LEADS * window_samples {
            return Err(corrupt(format!(
                "signal holds {} values per row, expected {} (12 leads × {window_samples})",
                signal.value_length(),
                N_LEADS * window_samples
            )));
        }
        for row in 0..batch.num_rows() {
            let present = lead_mask.value(row);
            let present = present.as_boolean();
            let mut mask = [false; N_LEADS];
            for (lead, flag) in mask.iter_mut().enumerate() {
                *flag = present.value(lead);
            }
            let values = signal.value(row);
            let values = values.as_primitive::<Int16Type>();
            windows.push(Window {
                n_samples: (n_samples.value(row).max(0) as usize).min(window_samples),
                lead_mask: mask,
                signal: values
                    .values()
                    .iter()
                    .map(|&v| f32::from(v) * signal_scale)
                    .collect(),
            });
        }
    }
    if windows.is_empty() {
        return Err(corrupt("the shard has no rows to plot".into()));
    }
    Ok(windows)
}

/// The vertical range covering the valid samples of the present leads of `window`, padded.
fn amplitude_range(window: &Window, window_samples: usize) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for lead in (0..N_LEADS).filter(|&l| window.lead_mask[l]) {
        let start = lead * window_samples;
        for &v in &window.signal[start..start + window.n_samples] {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() || hi - lo < 1e-6 {
        let centre = if lo.is_finite() { (lo + hi) / 2.0 } else { 0.0 };
        return (centre - 0.5, centre + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn draw_error(out_png: &Path, error: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: out_png.display().to_string(),
        source: std::io::Error::other(error.to_string()),
    }
}

/// Draws the windows, one column each, and saves the PNG.
fn draw(windows: &[Window], window_samples: usize, out_png: &Path) -> Result<(), DataError> {
    let fail = |e: DrawingAreaErrorKind<_>| draw_error(out_png, e);
    let size = (
        COLUMN_WIDTH * windows.len() as u32,
        PANEL_HEIGHT * N_LEADS as u32,
    );
    // plotters names a missing folder in its debug text only (`ImageError(IoError(Os { .. }))`).
    if let Some(folder) = out_png.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|source| DataError::Io {
            path: folder.display().to_string(),
            source,
        })?;
    }
    let root = BitMapBackend::new(out_png, size).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let panels = root.split_evenly((N_LEADS, windows.len()));
    let ranges: Vec<_> = windows
        .iter()
        .map(|w| amplitude_range(w, window_samples))
        .collect();
    for (index, panel) in panels.iter().enumerate() {
        let (lead, column) = (index / windows.len(), index % windows.len());
        let window = &windows[column];
        let (lo, hi) = ranges[column];
        let x_end = window_samples.saturating_sub(1).max(1) as f32;
        let mut chart = ChartBuilder::on(panel)
            .margin(3)
            .build_cartesian_2d(0f32..x_end, lo..hi)
            .map_err(fail)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, lo), (x_end, hi)],
                FRAME_COLOUR.stroke_width(1),
            )))
            .map_err(fail)?;
        if !window.lead_mask[lead] {
            continue;
        }
        if lo < 0.0 && hi > 0.0 {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (x_end, 0.0)], BASELINE_COLOUR))
                .map_err(fail)?;
        }
        let start = lead * window_samples;
        let trace = window.signal[start..start + window.n_samples]
            .iter()
            .enumerate()
            .map(|(t, &v)| (t as f32, v));
        chart
            .draw_series(LineSeries::new(trace, TRACE_COLOUR.stroke_width(1)))
            .map_err(fail)?;
    }
    root.present().map_err(fail)
}
