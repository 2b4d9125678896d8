//! `ecgfm data` end to end: `data read` against the `wfdb` Python package (read.rs), `data merge`
//! (merge.rs), `data ingest`'s cohort lists, dry run and refusals and `data inspect --record-ids`
//! (ingest.rs), what every command does with a closed pipe, a missing dataset and sizes of zero
//! (output.rs), and a writer stopped by a signal (stop.rs, on S3 through moto). `bench`'s
//! comparisons are in cli_bench.rs.
//!
//! One test binary: the tests sit in a module per command, and this file holds the helpers
//! several of them use.

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../../data-pipeline/tests/pipeline/common/s3.rs"]
mod s3;

mod ingest;
mod merge;
mod output;
mod read;
mod stop;

use common::run_ok;
use std::path::Path;

const ECGFM: &str = env!("CARGO_BIN_EXE_ecgfm");

/// `ecgfm data synth` with `seed` and windows of `window_s` seconds at `dir/name`, and the
/// flags `extra` (`--records N` among them).
fn synth_with(dir: &Path, name: &str, seed: &str, window_s: &str, extra: &[&str]) -> String {
    let out = dir.join(name).display().to_string();
    let args = [
        "data",
        "synth",
        "--out",
        &out,
        "--seed",
        seed,
        "--window-s",
        window_s,
    ];
    run_ok(&[&args[..], extra, &["--threads", "2"]].concat());
    out
}

/// `ecgfm data synth` of 6 records with `seed` and windows of `window_s` seconds at `dir/name`,
/// its source named `name` (two sources merge only under different names).
fn synth(dir: &Path, name: &str, seed: &str, window_s: &str) -> String {
    synth_with(
        dir,
        name,
        seed,
        window_s,
        &["--records", "6", "--source-name", name],
    )
}
