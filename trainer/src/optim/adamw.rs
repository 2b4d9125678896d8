//! AdamW hyper-parameters (torch.optim.AdamW semantics, docs/model.md) and the optimiser state
//! as it is saved in checkpoints.

use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters; the learning rate comes from the schedule at every step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
    /// Decoupled weight decay, applied to Linear weights only.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.05,
        }
    }
}

/// Host copy of the optimiser state, in the parameter layout.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// Number of updates done so far (the next update uses t = step + 1).
    pub step: u64,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    /// A default run configuration hands the optimiser its own defaults, every field in its
    /// place (fine-tuning takes its betas and eps from `AdamWConfig::default`; docs/model.md
    /// states the values, which config_resolution holds to).
    #[test]
    fn the_defaults_are_the_run_configurations() {
        assert_eq!(
            AdamWConfig::default(),
            TrainConfig::default_config().adamw()
        );
    }
}
