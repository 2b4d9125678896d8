//! Progress bars for long work on records (ingest, synth); hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting records, labelled `what`; the library sets its length.
pub fn record_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{wide_bar}] {pos}/{len} records {per_sec} elapsed {elapsed} ETA {eta}",
        )
        .expect("valid progress template"),
    );
    bar.set_prefix(what.to_string());
    bar
}
