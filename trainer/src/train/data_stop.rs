//! A batch that cannot be read (a damaged shard, an expired signed URL, an object-store error
//! that outlasts its retries) stops the run without losing a finished step.
//!
//! The failing rank keeps its read error (`FailedRead`) until the step that needs the batch,
//! and says so in that step's agreement (`DataParallel::gather_step`, where a stop request
//! travels too), with the error's kind (`ReadFault`: damaged data, or another failure), so every
//! rank stops at the same step and its error tells the kind:
//! - the failed read was one of step s's own batches: no rank applies step s's update, and the
//!   run stops after step s - 1;
//! - it was the next step's first batch, read ahead during step s: step s is finished as usual,
//!   and the run stops after it.
//!
//! Every rank then saves a checkpoint of that last finished step together (ZeRO-1 shards
//! included), whose data position is from before the failed read, so a resume after the data
//! is repaired reads that batch again and gives the run that never failed. A session that
//! finished no step saves nothing: the checkpoint it resumed from is that position already.

use std::path::{Path, PathBuf};

use super::{TrainError, Trainer};
use crate::checkpoint;
use crate::data::ReadFault;
use ecgfm_kernels::Backend;

/// This rank's read that failed, kept until its step's agreement.
pub(crate) struct FailedRead {
    /// The step (from 0) whose batch it is.
    pub(crate) step: u64,
    pub(crate) error: TrainError,
    /// Its kind (`BatchSource::fault`), which the other ranks learn with the step's agreement.
    pub(crate) fault: ReadFault,
}

/// What every rank agreed on after a failed read.
pub(crate) struct DataStop {
    /// The first step (from 0) whose batch could not be read: the run stops before it.
    step: u64,
    /// Ranks whose read failed.
    ranks: Vec<usize>,
    /// One of them found its data damaged (`ReadFault::Damaged`).
    damaged: bool,
    /// This rank's own failure, if it had one.
    own: Option<FailedRead>,
    /// This rank's rank and rank count.
    rank_and_world: (usize, usize),
    /// The data source's position before the failed step's first batch: what a checkpoint
    /// saves, so a resume reads that batch again.
    pub(crate) source_before: serde_json::Value,
}

impl DataStop {
    pub(crate) fn new(
        step: u64,
        ranks: Vec<usize>,
        damaged: bool,
        own: Option<FailedRead>,
        source_before: serde_json::Value,
        rank_and_world: (usize, usize),
    ) -> DataStop {
        DataStop {
            step,
            ranks,
            damaged,
            own,
            rank_and_world,
            source_before,
        }
    }

    /// The error of a run that finished `finished` steps and can resume from `checkpoint`.
    pub(crate) fn error(&self, finished: u64, checkpoint: Option<PathBuf>) -> TrainError {
        let (rank, world) = self.rank_and_world;
        let failure = match &self.own {
            Some(own) => {
                let who = match world {
                    1 => String::new(),
                    _ => format!("rank {rank}: "),
                };
                format!(
                    "{who}could not read the batch of step {}: {}",
                    own.step + 1,
                    own.error
                )
            }
            None => {
                let ranks: Vec<String> = self.ranks.iter().map(usize::to_string).collect();
                let (ranks, step) = (ranks.join(", "), self.step + 1);
                match self.damaged {
                    true => format!(
                        "rank {ranks} found its batch of step {step} damaged (its own error \
                         names the shard)"
                    ),
                    false => format!(
                        "rank {ranks} could not read its batch of step {step} (its own error \
                         names the data problem)"
                    ),
                }
            }
        };
        TrainError::DataStopped {
            failure,
            finished,
            checkpoint,
            damaged: self.damaged,
        }
    }
}

/// `TrainError::DataStopped`'s message: where the run stopped, why, and how to go on.
pub(crate) fn stopped_message(failure: &str, finished: u64, checkpoint: Option<&Path>) -> String {
    match checkpoint {
        Some(dir) => format!(
            "the run stopped after step {finished} with a checkpoint there ({}): {failure}. Once \
             the data is repaired, --resume continues from that checkpoint and reads the batch \
             again",
            dir.display()
        ),
        None if finished == 0 => format!(
            "the run stopped before its first step finished: {failure}. Nothing was saved; once \
             the data is repaired, start it again"
        ),
        None => format!("the run stopped after step {finished}: {failure}"),
    }
}

impl<B: Backend> Trainer<B> {
    /// Ends a run every rank agreed to stop for a failed read (`data_stop`): every rank saves
    /// the last finished step unless this session (which started at step `first`) finished
    /// none; returns the error to give.
    pub(super) fn stop_for_data(&mut self, first: u64) -> TrainError {
        let finished = self.state.step;
        let checkpoint = match finished > first {
            true => match self.save_checkpoint() {
                Ok(_) => Some(checkpoint::checkpoint_dir(&self.run_dir, finished)),
                Err(err) => return err,
            },
            false => self.resumed_from.clone(),
        };
        let stop = self.data_stop.as_ref().expect("the ranks agreed to stop");
        stop.error(finished, checkpoint)
    }
}
