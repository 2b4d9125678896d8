//! `plot::plot_records` on a small synthetic dataset: the PNG exists, decodes, has one column
//! per record and a visible trace in every lead panel.

use ecgfm_data::plot::{plot_records, COLUMN_WIDTH, PANEL_HEIGHT, TRACE_COLOUR};
use ecgfm_data::schema::N_LEADS;
use ecgfm_data::synth_dataset::{write_synth_dataset, SynthDatasetOptions};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Pixels in the given panel whose colour is the trace colour.
fn trace_pixels(image: &image::RgbImage, lead: u32, column: u32) -> usize {
    let mut n = 0;
    for y in lead * PANEL_HEIGHT..(lead + 1) * PANEL_HEIGHT {
        for x in column * COLUMN_WIDTH..(column + 1) * COLUMN_WIDTH {
            let p = image.get_pixel(x, y).0;
            if p == [TRACE_COLOUR.0, TRACE_COLOUR.1, TRACE_COLOUR.2] {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn plots_two_records_with_every_lead_visible() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("ds");
    let opts = SynthDatasetOptions {
        out: dataset.to_str().unwrap().to_string(),
        records: 4,
        ..Default::default()
    };
    write_synth_dataset(&opts, &indicatif::ProgressBar::hidden()).unwrap();
    let png = dir.path().join("plot.png");
    plot_records(dataset.to_str().unwrap(), &[], &png, 2).unwrap();

    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    assert!(
        bytes.len() > 4096,
        "PNG of {} bytes is too small",
        bytes.len()
    );
    let image = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(
        image.dimensions(),
        (2 * COLUMN_WIDTH, N_LEADS as u32 * PANEL_HEIGHT)
    );
    for column in 0..2 {
        for lead in 0..N_LEADS as u32 {
            let n = trace_pixels(&image, lead, column);
            assert!(
                n > COLUMN_WIDTH as usize / 2,
                "lead {lead} of record {column} has only {n} trace pixels"
            );
        }
    }
}

#[test]
fn missing_dataset_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = plot_records(missing.to_str().unwrap(), &[], &dir.path().join("p.png"), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere"), "{err}");
    assert!(!dir.path().join("p.png").exists());
}
