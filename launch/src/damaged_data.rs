//! Data damaged after it was written (a shard whose bytes fail the manifest's checksums): how
//! `ecgfm` tells it from other failures, by type, never by message. Such an error names the
//! dataset and the ways to repair it, every command exits with [`DAMAGED_EXIT`] for it,
//! `ecgfm launch` does not restart a job for it (reading again gives the same bytes), and a
//! sweep stops for it even with `--keep-going`. The ranks of a job learn the kind from the one
//! that read the shard (`ecgfm_trainer::data::ReadFault`), so each of them exits so.

use std::error::Error;
use std::process::ExitStatus;

use ecgfm_data::error::DataError;
use ecgfm_data::store::redact_url;
use ecgfm_trainer::data::{ReadFault, SourceError};
use ecgfm_trainer::train::TrainError;

/// The exit status of a command stopped by damaged data (sysexits' EX_DATAERR).
pub const DAMAGED_EXIT: u8 = 65;

/// Whether a child process (a rank, a sweep's run) exited with [`DAMAGED_EXIT`].
pub fn exited_damaged(status: ExitStatus) -> bool {
    status.code() == Some(i32::from(DAMAGED_EXIT))
}

/// An error that says, in its own words, that data was damaged: a child process that exited
/// with [`DAMAGED_EXIT`] (a rank of `ecgfm launch`, a sweep's training or evaluation: a sweep
/// stops for it, `--keep-going` or not, since every run reading the data would stop the same
/// way), or `ecgfm data inspect`'s checks failing.
#[derive(Debug)]
pub struct DamagedData(pub String);

impl std::fmt::Display for DamagedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for DamagedData {}

/// Whether `err` (one error of a chain) says the data was damaged.
fn says_damaged(err: &(dyn Error + 'static)) -> bool {
    matches!(err.downcast_ref(), Some(DataError::Damaged { .. }))
        || matches!(
            err.downcast_ref(),
            Some(TrainError::DataStopped { damaged: true, .. })
        )
        || err.is::<DamagedData>()
}

/// Whether any error of `err`'s chain says the data was damaged. A data source's error made an
/// `anyhow::Error` by `anyhow::Error::from_boxed` (the validation set's, say) is not in the
/// chain itself (the chain starts at its cause): it is found by its type.
pub fn is_damaged(err: &anyhow::Error) -> bool {
    err.chain().any(says_damaged)
        || err
            .downcast_ref::<SourceError>()
            .is_some_and(|boxed| fault_of(boxed) == ReadFault::Damaged)
}

/// The kind of a data source's read error, from its chain.
pub fn fault_of(err: &SourceError) -> ReadFault {
    let first: &(dyn Error + 'static) = err.as_ref();
    match std::iter::successors(Some(first), |&e| e.source()).any(says_damaged) {
        true => ReadFault::Damaged,
        false => ReadFault::Other,
    }
}

/// `err` with the dataset `url` and the ways to repair it when its chain says the data was
/// damaged (the loader names the shard by its path inside the dataset); any other error as it is.
pub fn name_damaged_dataset(err: anyhow::Error, url: &str) -> anyhow::Error {
    if !is_damaged(&err) {
        return err;
    }
    let url = redact_url(url);
    err.context(format!(
        "a shard of the dataset {url} is damaged (`ecgfm data inspect {url}` checks every \
         shard): ingest the dataset again, or restore the shard from a copy"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damaged() -> DataError {
        DataError::Damaged {
            path: "shards/shard-00003.parquet".into(),
            reason: "the file has 10 bytes, the manifest says 12".into(),
        }
    }

    #[test]
    fn damage_is_found_by_type_anywhere_in_a_chain() {
        let boxed: SourceError = Box::new(damaged());
        assert_eq!(fault_of(&boxed), ReadFault::Damaged);
        let wrapped: SourceError = Box::new(TrainError::Data("ds".into(), boxed));
        assert_eq!(fault_of(&wrapped), ReadFault::Damaged, "as a cause");
        let other: SourceError = Box::new(DataError::Config("no".into()));
        assert_eq!(fault_of(&other), ReadFault::Other);
        let text: SourceError = "the file was damaged after ingest".into();
        assert_eq!(fault_of(&text), ReadFault::Other, "never by message");

        let stop = |damaged| TrainError::DataStopped {
            failure: "rank 1 ...".into(),
            finished: 3,
            checkpoint: None,
            damaged,
        };
        assert!(is_damaged(
            &anyhow::Error::new(stop(true)).context("training")
        ));
        assert!(!is_damaged(&anyhow::Error::new(stop(false))));
        assert!(is_damaged(&anyhow::Error::new(DamagedData(
            "rank 0".into()
        ))));
        // A source's boxed error (`from_boxed`, as the validation set's is), under a context.
        let boxed = anyhow::Error::from_boxed(Box::new(damaged())).context("drawing the set");
        assert!(is_damaged(&boxed));
        let wrapped: SourceError = Box::new(TrainError::Data("ds".into(), Box::new(damaged())));
        assert!(
            is_damaged(&anyhow::Error::from_boxed(wrapped)),
            "as a cause"
        );
        let other = anyhow::Error::from_boxed(Box::new(DataError::Config("no".into())));
        assert!(!is_damaged(&other.context("drawing the set")));
    }

    #[test]
    fn a_damaged_dataset_is_named_with_its_repair_and_its_secret_hidden() {
        let url = "s3://bucket/ds?X-Amz-Signature=abc";
        let err = name_damaged_dataset(anyhow::Error::new(damaged()), url);
        let text = crate::error_text(&err);
        assert!(
            text.starts_with("a shard of the dataset s3://bucket/ds?*** is damaged"),
            "{text}"
        );
        assert!(text.contains("shards/shard-00003.parquet"), "{text}");
        assert!(!text.contains("abc"), "{text}");
        let other = name_damaged_dataset(anyhow::anyhow!("network down"), url);
        assert_eq!(crate::error_text(&other), "network down");
    }
}
