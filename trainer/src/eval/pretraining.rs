//! What the evaluated encoder was pretrained on, as the result file and the embeddings'
//! metadata state it (from the run's configuration and checkpoint): a reader can then tell
//! whether the test records could have been seen in pretraining.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;

/// The pretraining data of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pretraining {
    /// `synth` (the built-in generator) or the dataset's address, its secrets redacted.
    pub data: String,
    /// The dataset split pretraining read (`data.split`).
    pub split: String,
    /// The pretraining dataset's sources (from its manifest; empty where it did not open, and
    /// for the generator).
    pub sources: Vec<String>,
    /// The run's per-source weights (`data.repeat`; sources not named are read once).
    pub repeat: BTreeMap<String, f64>,
    /// Optimiser steps of the run, and the step of the checkpoint evaluated.
    pub steps: u64,
    pub checkpoint_step: u64,
    /// The data digest the checkpoint recorded (`Manifest::data_digest`; absent for the
    /// generator and in checkpoints older than it).
    pub data_digest: Option<String>,
}

impl Pretraining {
    /// The description of `config`'s data, its address already redacted in `data`.
    pub fn of(
        config: &TrainConfig,
        data: String,
        sources: Vec<String>,
        checkpoint_step: u64,
        data_digest: Option<String>,
    ) -> Pretraining {
        Pretraining {
            data,
            split: config.data.split.clone(),
            sources,
            repeat: config.data.repeat.clone(),
            steps: config.train.steps,
            checkpoint_step,
            data_digest,
        }
    }
}
