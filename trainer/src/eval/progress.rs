//! What the protocols report while they run: log lines (a protocol starting, each epoch's loss
//! and validation AUROC, each result) and the windows done of the pass under way (features,
//! an epoch, scoring), for a progress bar. A closure taking lines is a reporter without bars.

/// Receives the protocols' progress.
pub trait EvalProgress {
    /// One log line.
    fn line(&mut self, line: String);
    /// `done` of the `total` windows of the pass `what` ("features", "epoch 3/10", ...).
    fn windows(&mut self, what: &str, done: usize, total: usize);
}

impl<F: FnMut(String)> EvalProgress for F {
    fn line(&mut self, line: String) {
        self(line)
    }

    fn windows(&mut self, _what: &str, _done: usize, _total: usize) {}
}
