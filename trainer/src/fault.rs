//! Fault injection for tests of the failure paths: `ECGFM_FAULT_NONFINITE=RANK:STEP[,RANK:STEP]`
//! makes rank RANK feed a NaN into its first micro-batch of optimiser step STEP, as a corrupt
//! sample or an overflow would. Unset (always, outside tests) it does nothing.

use crate::HostBatch;

/// The steps at which this rank poisons its input.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    nonfinite_steps: Vec<u64>,
}

impl FaultPlan {
    /// Reads `ECGFM_FAULT_NONFINITE` for `rank`; malformed entries are ignored.
    pub fn from_env(rank: usize) -> FaultPlan {
        let spec = std::env::var("ECGFM_FAULT_NONFINITE").unwrap_or_default();
        let nonfinite_steps = spec
            .split(',')
            .filter_map(|item| item.split_once(':'))
            .filter(|(r, _)| r.trim().parse::<usize>() == Ok(rank))
            .filter_map(|(_, s)| s.trim().parse::<u64>().ok())
            .collect();
        FaultPlan { nonfinite_steps }
    }

    /// Poisons `batch` if this rank should fail at `step` (first micro-batch only).
    pub fn apply(&self, step: u64, micro: usize, batch: &mut HostBatch) {
        if micro == 0 && self.nonfinite_steps.contains(&step) {
            batch.x[0] = f32::NAN;
        }
    }
}
