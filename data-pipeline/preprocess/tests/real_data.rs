//! The pipeline on real PhysioNet records from the shared data folder (read with the Python `wfdb`
//! package as an independent reader): PTB-XL, CinC 2017 AliveCor, MIT-BIH and an ICU record with
//! non-ECG channels.
//! Skips when the folder or the Python packages are absent.

use ecgfm_preprocess::{Pipeline, PipelineConfig, ProcessedRecord};
use std::path::Path;
use std::process::Command;

/// One record as the reference reader returned it.
struct Record {
    rate: f64,
    names: Vec<String>,
    signals: Vec<Vec<f64>>,
}

/// Reads records (paths relative to the shared folder, without extension) via `wfdb_dump.py`.
fn read_records(relative: &[String], tag: &str) -> Option<Vec<Record>> {
    let root = ecgfm_test_support::shared_data("")?;
    let out = std::env::temp_dir().join(format!(
        "ecgfm-preprocess-real-{}-{tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wfdb_dump.py"))
        .arg(&out)
        .args(relative.iter().map(|r| root.join(r)))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) if s.code() != Some(3) => panic!("wfdb_dump.py failed: {s}"),
        _ => {
            ecgfm_test_support::skip_without_oracle("python3 with numpy and wfdb");
            return None;
        }
    }
    let index = std::fs::read_to_string(out.join("index.tsv")).unwrap();
    let records = index
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split('\t').collect();
            let n: usize = fields[1].parse().unwrap();
            let names: Vec<String> = fields[2].split(',').map(String::from).collect();
            let bytes = std::fs::read(out.join(format!("{i}.f64"))).unwrap();
            let values: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Record {
                rate: fields[0].parse().unwrap(),
                signals: values.chunks(n).map(<[f64]>::to_vec).collect(),
                names,
            }
        })
        .collect();
    std::fs::remove_dir_all(&out).ok();
    Some(records)
}

fn process(record: &Record) -> ProcessedRecord {
    Pipeline::new(PipelineConfig::default())
        .unwrap()
        .process(record.rate, &record.names, &record.signals)
        .unwrap()
}

#[test]
fn ptbxl_records_give_one_clean_twelve_lead_window_each() {
    let paths: Vec<String> = (1..=30)
        .map(|i| format!("ptbxl-500/records500/00000/{i:05}_hr"))
        .collect();
    let Some(records) = read_records(&paths, "ptbxl") else {
        return;
    };
    let mut scores = Vec::new();
    for record in &records {
        let out = process(record);
        assert_eq!(out.windows.len(), 1);
        let w = &out.windows[0];
        assert_eq!(w.lead_mask, [true; 12]);
        assert_eq!(w.n_valid, 2500);
        let peak = w.signal.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.1 && peak < 10.0, "band-passed peak {peak} mV");
        scores.push(w.quality_score);
    }
    let good = scores.iter().filter(|&&s| s >= 0.5).count();
    println!("PTB-XL 1-30 window scores: {scores:?}");
    assert!(good >= 27, "only {good} of 30 PTB-XL windows score >= 0.5");
}

#[test]
fn alivecor_records_map_to_lead_one_with_expected_window_counts() {
    let paths: Vec<String> = (1..=20).map(|i| format!("cinc2017/A{i:05}")).collect();
    let Some(records) = read_records(&paths, "cinc2017") else {
        return;
    };
    for record in &records {
        let out = process(record);
        let n = out.report.resampled_samples;
        assert_eq!(
            n,
            (record.signals[0].len() as f64 * 250.0 / 300.0).round() as usize
        );
        let trailing = n % 2500;
        let expected = n / 2500 + usize::from(trailing >= 1250) + usize::from(n < 2500);
        assert_eq!(out.windows.len(), expected, "{n} samples");
        assert!(out
            .windows
            .iter()
            .all(|w| w.lead_mask[0] && w.lead_mask[1..] == [false; 11]));
    }
}

#[test]
fn mit_bih_and_icu_leads_map_and_extras_drop() {
    let paths = vec![
        "wfdb-formats/100".to_string(),
        "wfdb-formats/v102s".to_string(),
    ];
    let Some(records) = read_records(&paths, "formats") else {
        return;
    };
    let mit = process(&records[0]);
    assert_eq!(
        mit.windows.len(),
        181,
        "1805.6 s: 180 full windows and a 5.6-s tail kept"
    );
    let mut mask = [false; 12];
    (mask[1], mask[10]) = (true, true);
    assert!(mit.windows.iter().all(|w| w.lead_mask == mask));
    let clean = mit
        .windows
        .iter()
        .filter(|w| w.quality_score >= 0.5)
        .count();
    assert!(
        clean >= 170,
        "{clean} of 181 MIT-BIH 100 windows score >= 0.5"
    );
    let icu = process(&records[1]);
    let mut lead_two = [false; 12];
    lead_two[1] = true;
    assert_eq!(icu.windows.len(), 30, "300 s at 250 Hz");
    assert!(icu.windows.iter().all(|w| w.lead_mask == lead_two));
    let dropped: Vec<&str> = icu
        .report
        .dropped_leads
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(dropped, ["V", "PLETH", "RESP"]);
    assert!(icu
        .windows
        .iter()
        .all(|w| w.signal.iter().all(|v| v.is_finite())));
}
