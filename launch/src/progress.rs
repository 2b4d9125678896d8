//! Progress bars for long work on records (ingest, synth), windows (embed) and bytes (inspect);
//! hidden when
//! stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting records, labelled `what`; the library sets its length.
pub fn record_bar(what: &str) -> ProgressBar {
    bar(
        what,
        "{prefix} [{wide_bar}] {pos}/{len} records {per_sec} elapsed {elapsed} ETA {eta}",
    )
}

/// A bar counting `total` windows, labelled `what`.
pub fn window_bar(what: &str, total: u64) -> ProgressBar {
    let bar = bar(
        what,
        "{prefix} [{wide_bar}] {pos}/{len} windows {per_sec} elapsed {elapsed} ETA {eta}",
    );
    bar.set_length(total);
    bar
}

/// A bar counting bytes, labelled `what`; the library sets its length.
pub fn byte_bar(what: &str) -> ProgressBar {
    bar(
        what,
        "{prefix} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
}

fn bar(what: &str, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(template).expect("valid progress template"));
    bar.set_prefix(what.to_string());
    bar
}
