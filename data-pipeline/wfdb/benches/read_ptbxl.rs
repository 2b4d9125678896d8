//! Read throughput: decodes every PTB-XL record of the shared data (500 Hz, 12 leads, 10 s)
//! and every CinC 2017 `.mat` record, with checksums and physical conversion, and prints
//! records/s. Run: `cargo bench -p ecgfm-wfdb --bench read_ptbxl`.

use std::time::Instant;

use ecgfm_wfdb::{read_record_with, DirSource, ReadOptions};

fn main() {
    let Some(data) = ecgfm_test_support::shared_data("") else {
        return;
    };
    let ptbxl: Vec<String> = (1..=500)
        .map(|id| format!("ptbxl-500/records500/00000/{id:05}_hr"))
        .collect();
    let cinc: Vec<String> = (1..=3000).map(|i| format!("cinc2017/A{i:05}")).collect();
    let source = DirSource::new(&data);
    for (name, records, ignore_checksums) in
        [("ptbxl-500", &ptbxl, false), ("cinc2017", &cinc, true)]
    {
        let options = ReadOptions {
            channels: None,
            ignore_checksums,
        };
        for pass in ["cold", "warm"] {
            let start = Instant::now();
            let mut samples = 0usize;
            let mut total = 0.0f64;
            for record in records.iter() {
                let r = read_record_with(&source, record, &options).expect("readable record");
                for s in 0..r.signals.len() {
                    let physical = r.physical(s);
                    samples += physical.len();
                    total += physical.iter().filter(|p| !p.is_nan()).sum::<f64>();
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{name} ({pass} cache): {} records in {secs:.3} s = {:.0} records/s, {:.1} M samples/s (checksum of values {total:.3})",
                records.len(),
                records.len() as f64 / secs,
                samples as f64 / secs / 1e6
            );
        }
    }
}
