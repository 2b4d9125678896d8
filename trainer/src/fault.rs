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

/// The `RANK:STEP[:MICRO]` entries of `spec` (a comma-separated list) that belong to `rank`, as
/// (STEP, MICRO); malformed entries are ignored.
fn entries(spec: &str, rank: usize) -> Vec<(u64, usize)> {
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
        let var = |name| std::env::var(name).unwrap_or_default();
        FaultPlan {
            nonfinite_steps: entries(&var("ECGFM_FAULT_NONFINITE"), rank)
                .into_iter()
                .filter(|&(_, micro)| micro == 0)
                .map(|(step, _)| step)
                .collect(),
            failed_reads: entries(&var("ECGFM_FAULT_READ"), rank),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;

    /// `RANK:STEP[:MICRO]` entries of the rank asked for, MICRO 0 by default; malformed entries,
    /// other ranks' and those with a fourth field are left out.
    #[test]
    fn entries_keep_this_ranks_steps_and_micro_batches() {
        let spec = "1:2, 0:3, 1:4:2, x:5, 1:y, 1:6:1:9, 1:7:z";
        assert_eq!(entries(spec, 1), vec![(2, 0), (4, 2)]);
        assert_eq!(entries(spec, 0), vec![(3, 0)]);
        assert!(entries("", 1).is_empty());
    }

    /// A NaN goes into the first micro-batch of a listed step only; reads fail at exactly the
    /// listed (step, micro-batch), named in the error.
    #[test]
    fn a_plan_poisons_the_first_micro_batch_and_fails_the_listed_reads() {
        let plan = FaultPlan {
            nonfinite_steps: vec![3],
            failed_reads: vec![(5, 1)],
        };
        let cfg = ModelConfig::preset("nano").unwrap();
        let mut batch = HostBatch::new(&cfg, 1);
        plan.apply(3, 1, &mut batch);
        plan.apply(2, 0, &mut batch);
        assert!(batch.x.iter().all(|v| v.is_finite()));
        plan.apply(3, 0, &mut batch);
        assert!(batch.x[0].is_nan());
        assert!(plan.read_error(5, 0).is_none() && plan.read_error(4, 1).is_none());
        let err = plan
            .read_error(5, 1)
            .expect("listed read fails")
            .to_string();
        assert!(err.contains("step index 5, micro-batch 1"), "{err}");
    }
}
