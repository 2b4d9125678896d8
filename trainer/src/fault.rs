//! Fault injection for tests of the failure paths. Unset (always, outside tests) it does nothing.
//! - `ECGFM_FAULT_NONFINITE=RANK:STEP[,RANK:STEP]` makes rank RANK feed a NaN into its first
//!   micro-batch of optimiser step STEP, as a corrupt sample or an overflow would.
//! - `ECGFM_FAULT_READ=RANK:STEP[:MICRO][,...]` makes rank RANK's read of micro-batch MICRO
//!   (default 0) of optimiser step STEP fail without moving the data source, as a damaged shard
//!   or an object-store error would.

use crate::data::SourceError;
use crate::HostBatch;

/// The steps at which this rank poisons its input or fails to read it.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    nonfinite_steps: Vec<u64>,
    /// (step, micro-batch) reads that fail.
    failed_reads: Vec<(u64, usize)>,
}

/// The `RANK:STEP[:MICRO]` entries of `var` that belong to `rank`, as (STEP, MICRO); malformed
/// entries are ignored.
fn entries(var: &str, rank: usize) -> Vec<(u64, usize)> {
    let spec = std::env::var(var).unwrap_or_default();
    spec.split(',')
        .filter_map(|item| {
            let mut parts = item.split(':').map(str::trim);
            let r = parts.next()?.parse::<usize>().ok()?;
            let step = parts.next()?.parse::<u64>().ok()?;
            let micro = match parts.next() {
                Some(m) => m.parse::<usize>().ok()?,
                None => 0,
            };
            (r == rank && parts.next().is_none()).then_some((step, micro))
        })
        .collect()
}

impl FaultPlan {
    /// Reads `ECGFM_FAULT_NONFINITE` and `ECGFM_FAULT_READ` for `rank`.
    pub fn from_env(rank: usize) -> FaultPlan {
        FaultPlan {
            nonfinite_steps: entries("ECGFM_FAULT_NONFINITE", rank)
                .into_iter()
                .filter(|&(_, micro)| micro == 0)
                .map(|(step, _)| step)
                .collect(),
            failed_reads: entries("ECGFM_FAULT_READ", rank),
        }
    }

    /// Poisons `batch` if this rank should fail at `step` (first micro-batch only).
    pub fn apply(&self, step: u64, micro: usize, batch: &mut HostBatch) {
        if micro == 0 && self.nonfinite_steps.contains(&step) {
            batch.x[0] = f32::NAN;
        }
    }

    /// The error of this rank's read of micro-batch `micro` of `step`, if it should fail.
    pub fn read_error(&self, step: u64, micro: usize) -> Option<SourceError> {
        self.failed_reads.contains(&(step, micro)).then(|| {
            format!(
                "injected read failure (ECGFM_FAULT_READ: step index {step}, micro-batch {micro})"
            )
            .into()
        })
    }
}
