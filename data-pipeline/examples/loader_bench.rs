//! Loader throughput on a dataset folder or URL, or on a synthetic dataset it writes first:
//!
//! ```text
//! cargo run --release -p ecgfm-data --example loader_bench -- [--data URL] [--write DIR]
//!     [--windows 4096] [--batch-size 256] [--threads 2] [--batches 40] [--crop 2250]
//! ```
//! With `--write DIR` it first writes `--windows` synthetic 12-lead 2500-sample windows to DIR
//! (the test writer of tests/pipeline/common/dataset.rs) and benchmarks that. Prints one JSON
//! line.

#[path = "../tests/pipeline/common/dataset.rs"]
#[allow(dead_code)]
mod dataset;

use ecgfm_data::loader::{bench_loader, LoaderConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: usize| {
        arg(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
    };
    let url = match (arg("--data"), arg("--write")) {
        (Some(url), _) => url,
        (None, Some(dir)) => {
            let windows = number("--windows", 4096);
            let spec = dataset::Spec {
                shards: windows.div_ceil(1024),
                rows_per_shard: 1024.min(windows),
                row_group_rows: 256,
                window_samples: 2500,
                split_of: dataset::all_train,
                source_of: dataset::synth_source,
            };
            dataset::write(
                &ecgfm_data::store::open_url(&dir).expect("open --write"),
                &spec,
            );
            dir
        }
        (None, None) => panic!("give --data URL or --write DIR"),
    };
    let config = LoaderConfig {
        batch_size: number("--batch-size", 256),
        decode_threads: number("--threads", 2),
        crop_samples: number("--crop", 2250),
        split: arg("--split").unwrap_or_else(|| "train".into()),
        ..LoaderConfig::default()
    };
    let result = bench_loader(&url, config, number("--batches", 40)).expect("benchmark failed");
    println!("{}", serde_json::to_string(&result).unwrap());
}
