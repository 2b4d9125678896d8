//! Progress bars for long work on records (ingest, synth), windows (embed, eval), shards (eval's
//! read) and bytes (inspect, merge, publish); hidden when stderr is not a terminal.

use ecgfm_trainer::eval::EvalProgress;
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

/// A bar counting `total` shards, labelled `what`.
pub fn shard_bar(what: &str, total: u64) -> ProgressBar {
    let bar = bar(
        what,
        "{prefix} [{wide_bar}] {pos}/{len} shards elapsed {elapsed} ETA {eta}",
    );
    bar.set_length(total);
    bar
}

/// A bar counting windows of a pass whose total is not known ahead (a dataset read shard by
/// shard), labelled `what`; the message says where it is.
pub fn stream_bar(what: &str) -> ProgressBar {
    bar(
        what,
        "{prefix} {spinner} {pos} windows ({msg}) {per_sec} elapsed {elapsed}",
    )
}

/// `ecgfm eval`'s reporter: log lines through `tracing`, above a bar counting the windows of
/// the pass under way (features, each epoch, validation, test), relabelled for each pass.
pub struct EvalBar(ProgressBar);

impl EvalBar {
    pub fn new() -> Self {
        EvalBar(window_bar("", 0))
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Default for EvalBar {
    fn default() -> Self {
        Self::new()
    }
}

impl EvalProgress for EvalBar {
    fn line(&mut self, line: String) {
        self.0.suspend(|| tracing::info!("{line}"));
    }

    fn windows(&mut self, what: &str, done: usize, total: usize) {
        let bar = &self.0;
        if bar.prefix() != what {
            bar.reset();
            bar.set_prefix(what.to_string());
            bar.set_length(total as u64);
        }
        bar.set_position(done as u64);
    }
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
