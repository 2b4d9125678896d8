//! Every record of the shared PTB-XL and CinC 2017 folders decodes (PTB-XL with its header
//! checksums verified) to the length and shape its header declares.

use ecgfm_test_support::shared_data;
use ecgfm_wfdb::{read_record_with, DirSource, ReadOptions};

#[test]
fn all_ptbxl_and_cinc2017_records_decode() {
    let Some(data) = shared_data("") else {
        return;
    };
    let source = DirSource::new(&data);
    for id in 1..=500 {
        let name = format!("ptbxl-500/records500/00000/{id:05}_hr");
        let record = read_record_with(&source, &name, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (record.n_samples, record.signals.len(), record.fs),
            (5000, 12, 500.0)
        );
        assert!(record.digital.iter().all(|d| d.len() == 5000));
    }
    // CinC 2017 headers carry checksum 0 everywhere (never computed).
    let options = ReadOptions {
        ignore_checksums: true,
        ..Default::default()
    };
    let mut total_frames = 0;
    for i in 1..=3000 {
        let name = format!("cinc2017/A{i:05}");
        let record = read_record_with(&source, &name, &options).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((record.signals.len(), record.fs), (1, 300.0), "{name}");
        assert_eq!(record.digital[0].len(), record.n_samples, "{name}");
        assert!(
            record.n_samples >= 2700,
            "{name}: {} frames",
            record.n_samples
        );
        total_frames += record.n_samples;
    }
    println!("cinc2017: {total_frames} frames");
}
