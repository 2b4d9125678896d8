//! A command refused for its configuration (a value out of range, an unknown key, a config file
//! that does not parse, a resume whose settings differ from its run's or that would shorten it,
//! a fresh start into a folder holding another run's checkpoints, a data setting the dataset
//! cannot take such as a `data.repeat` naming a source it lacks, a model preset that does not
//! exist, in any command, a sweep file that does not parse or is not a valid sweep, a
//! `--device cuda` on a machine without the CUDA libraries, a GPU or a recent enough driver,
//! a data command's output that already holds another dataset, datasets that cannot be merged,
//! a split without rows, which no restart there gives; not an output another writer is at work
//! on, `DataError::Busy`, which a later attempt may find free): it exits with
//! [`CONFIG_EXIT`], so `ecgfm launch --max-restarts` does not
//! spend its restarts on a job every attempt of which would be refused the same way, and the
//! launcher exits so too.

use std::error::Error;
use std::process::ExitStatus;

use ecgfm_data::error::DataError;
use ecgfm_kernels::cuda::CudaError;
use ecgfm_sweep::SpecError;
use ecgfm_trainer::config::ConfigError;
use ecgfm_trainer::model::ModelError;
use ecgfm_trainer::train::TrainError;

/// The exit status of a command refused for its configuration (sysexits' EX_CONFIG).
pub const CONFIG_EXIT: u8 = 78;

/// Whether a child process (a rank) exited with [`CONFIG_EXIT`].
pub fn exited_bad_config(status: ExitStatus) -> bool {
    status.code() == Some(i32::from(CONFIG_EXIT))
}

/// A configuration refused, in its own words: the ranks of `ecgfm launch` refused theirs, a
/// sweep's run (its training or an evaluation) exited with [`CONFIG_EXIT`], or a command's flags
/// describe settings it cannot take (`data ingest --rate 0`).
#[derive(Debug)]
pub struct RefusedConfig(pub String);

impl std::fmt::Display for RefusedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for RefusedConfig {}

/// Whether any error of `err`'s chain is a configuration refused.
pub fn is_bad_config(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<ConfigError>()
            || e.is::<RefusedConfig>()
            || matches!(
                e.downcast_ref(),
                Some(TrainError::Resume { .. } | TrainError::CheckpointsExist { .. })
            )
            || matches!(
                e.downcast_ref(),
                Some(DataError::Config(_) | DataError::Refused(_))
            )
            || matches!(e.downcast_ref(), Some(ModelError::UnknownPreset(_)))
            || matches!(
                e.downcast_ref(),
                Some(SpecError::Parse { .. } | SpecError::Invalid { .. })
            )
            || matches!(
                e.downcast_ref(),
                Some(
                    CudaError::MissingLibrary { .. }
                        | CudaError::NoDevice(_)
                        | CudaError::OldDriver { .. }
                )
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_refused_configuration_is_told_from_other_errors_through_context() {
        let refused: anyhow::Result<()> = Err(ConfigError::BadOverride("lr".into()).into());
        assert!(is_bad_config(
            &refused
                .context("resolving the run's configuration")
                .unwrap_err()
        ));
        assert!(is_bad_config(&RefusedConfig("rank 0".into()).into()));
        let resume: anyhow::Result<()> = Err(TrainError::Resume {
            run_dir: "run".into(),
            reason: "the configuration differs".into(),
        }
        .into());
        assert!(is_bad_config(&resume.context("training").unwrap_err()));
        let repeat: anyhow::Result<()> = Err(DataError::Config("data.repeat".into()).into());
        assert!(is_bad_config(
            &repeat.context("opening the dataset").unwrap_err()
        ));
        let preset: anyhow::Result<()> = Err(ModelError::UnknownPreset("medium".into()).into());
        assert!(is_bad_config(&preset.context("planning").unwrap_err()));
        // The model's other errors are the program's, not a setting's (a pretrain setting the
        // rules refuse arrives as a `ConfigError`).
        let batch = anyhow::Error::new(ModelError::InvalidBatch("no windows".into()));
        assert!(!is_bad_config(&batch));
        let internal = anyhow::Error::new(ModelError::InvalidConfig("no tensor x".into()));
        assert!(!is_bad_config(&internal));
        let thread = anyhow::Error::new(DataError::Internal("no threads".into()));
        assert!(!is_bad_config(&thread));
        assert!(!is_bad_config(&anyhow::anyhow!(
            "rank 1 exited with status 1"
        )));
    }
}
