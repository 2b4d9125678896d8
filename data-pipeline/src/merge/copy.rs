//! Copying a merge's shards: several at once (`MergeOptions::jobs`), each checked against its
//! input manifest's size and SHA-256. Where an input and the output share a store
//! (`store::same_store`) the store copies the shard itself (a hard link on a local disk,
//! CopyObject on S3) and the copy is then read back to check it (a copy that fails is removed
//! and the shard passes through here instead); otherwise the shard's bytes pass through this
//! machine and are checked before they are written. An input shard whose bytes fail its
//! manifest's checks is `DataError::Damaged`, as the loader says it. A destination already
//! holding the right bytes (left by an interrupted merge, found by one listing of the output's
//! shards rather than a request per shard) is kept. A shard whose entry lacks the chunk
//! checksums the loader checks (written before ecgfm kept them) gets them computed from its
//! bytes, so a merge brings an older dataset up to date.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::chunk_crc::ShardChecksums;
use crate::error::DataError;
use crate::ingest::shard_writer::sha256_hex;
use crate::manifest::ShardEntry;
use crate::out_lock::OutputLock;
use crate::store;

/// One shard to copy.
pub(super) struct CopyJob {
    /// The input's URL, redacted (for errors).
    pub input_url: String,
    pub input_store: Arc<dyn ObjectStore>,
    /// Where the shard is in the input's store.
    pub from: Path,
    /// Where it goes in the output store.
    pub to: Path,
    /// Its entry in the input manifest (size, SHA-256, path for errors).
    pub shard: ShardEntry,
    /// Whether the output store can copy it from `from` itself.
    pub in_store: bool,
    /// The size of what `to` already holds (left by an interrupted merge), if anything.
    pub existing: Option<u64>,
}

/// How each shard got to the output, counted, and the chunk checksums computed for shards whose
/// entries had none.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Copied {
    /// Read and written by this machine.
    pub streamed: u64,
    /// Copied by the store itself.
    pub in_store: u64,
    /// Already there from an interrupted earlier run.
    pub kept: u64,
    /// For each job (by position) that lacked them, its `ShardChecksums` (the chunk groups of
    /// `CHECKED` and the footer's).
    pub checksums: Vec<(usize, ShardChecksums)>,
}

enum Outcome {
    Streamed,
    InStore,
    Kept,
}

/// Copies every job into `out_store`, `jobs` at a time, advancing `progress` by each shard's
/// bytes as it completes. Stops at the first error (a shard already written stays; the
/// manifest, written after, does not exist yet).
pub(super) fn copy_shards(
    work: Vec<CopyJob>,
    out_store: &Arc<dyn ObjectStore>,
    lock: &OutputLock,
    jobs: usize,
    progress: &ProgressBar,
) -> Result<Copied, DataError> {
    store::block_on(
        futures::stream::iter(work)
            .enumerate()
            .map(|(i, job)| async move {
                lock.check_held()?;
                let (outcome, checksums) = copy_one(&job, out_store.as_ref()).await?;
                progress.inc(job.shard.bytes);
                Ok::<_, DataError>((outcome, checksums.map(|c| (i, c))))
            })
            .buffer_unordered(jobs.max(1))
            .try_fold(
                Copied::default(),
                |mut copied, (outcome, checksums)| async move {
                    match outcome {
                        Outcome::Streamed => copied.streamed += 1,
                        Outcome::InStore => copied.in_store += 1,
                        Outcome::Kept => copied.kept += 1,
                    }
                    copied.checksums.extend(checksums);
                    Ok(copied)
                },
            ),
    )
}

/// Copies one shard; returns how, and its chunk checksums where its entry lacks them (from the
/// bytes as they pass through here, or as read back to check them: never read twice).
async fn copy_one(
    job: &CopyJob,
    out_store: &dyn ObjectStore,
) -> Result<(Outcome, Option<ShardChecksums>), DataError> {
    let keep = job.shard.lacks_chunk_checksums();
    if job.existing == Some(job.shard.bytes) {
        let (size, sha256, bytes) = read_back(out_store, &job.to, keep).await?;
        if job.shard.mismatch(size, &sha256).is_none() {
            return Ok((Outcome::Kept, checksums_of(job, bytes)?));
        }
    }
    // A store that cannot copy this pair itself (a hard link across two disks, a bucket the
    // credentials may read but not copy from) falls back to passing the bytes through here.
    if job.in_store && out_store.copy(&job.from, &job.to).await.is_ok() {
        let (size, sha256, bytes) = read_back(out_store, &job.to, keep).await?;
        if job.shard.mismatch(size, &sha256).is_none() {
            return Ok((Outcome::InStore, checksums_of(job, bytes)?));
        }
        // The copy is removed, and the input's own bytes, read here, say whether the input is
        // damaged (a store's bad copy is then replaced by a good one).
        out_store
            .delete(&job.to)
            .await
            .map_err(store::store_error(out_store, &job.to))?;
    }
    let bytes = store::get_bytes(job.input_store.as_ref(), &job.from).await?;
    check(job, bytes.len() as u64, &sha256_hex(&bytes))?;
    let checksums = checksums_of(job, keep.then(|| bytes.clone()))?;
    store::put_bytes(out_store, &job.to, bytes).await?;
    Ok((Outcome::Streamed, checksums))
}

/// The size and SHA-256 of the object at `location`, and its bytes when `keep` (otherwise they
/// stream through the hash).
async fn read_back(
    store: &dyn ObjectStore,
    location: &Path,
    keep: bool,
) -> Result<(u64, String, Option<Bytes>), DataError> {
    if keep {
        let bytes = store::get_bytes(store, location).await?;
        return Ok((bytes.len() as u64, sha256_hex(&bytes), Some(bytes)));
    }
    let (size, sha256) = store::sha256_of(store, location).await?;
    Ok((size, sha256, None))
}

/// The chunk checksums of a copied shard's `bytes`, when it has them to compute.
fn checksums_of(job: &CopyJob, bytes: Option<Bytes>) -> Result<Option<ShardChecksums>, DataError> {
    let corrupt = |e: DataError| DataError::Corrupt {
        path: format!("{}/{}", job.input_url, job.shard.path),
        reason: format!("cannot compute its chunk checksums: {e}"),
    };
    bytes
        .map(|bytes| ShardChecksums::of_shard(&bytes).map_err(corrupt))
        .transpose()
}

/// The error for an input shard whose bytes are not those its manifest lists: `Damaged`, so
/// `ecgfm data merge` exits as every command does for a damaged shard.
fn check(job: &CopyJob, size: u64, sha256: &str) -> Result<(), DataError> {
    match job.shard.mismatch(size, sha256) {
        None => Ok(()),
        Some(damage) => Err(DataError::Damaged {
            path: format!("{}/{}", job.input_url, job.shard.path),
            reason: format!("{damage}: the shard changed after it was written"),
        }),
    }
}
