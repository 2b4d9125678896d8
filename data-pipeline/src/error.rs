//! The one error type of ecgfm-data: every failure names the object, file or URL it concerns
//! (with secrets redacted, see `store::redact_url`) and the reason.

/// Errors of the dataset layer (stores, manifests, shards, ingest, loader).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A dataset URL that cannot be opened (unknown scheme, malformed, store misconfigured).
    #[error("cannot open the address {url}: {reason}")]
    BadUrl {
        /// The URL with credentials and query string redacted.
        url: String,
        /// Why it cannot be opened.
        reason: String,
    },
    /// An object-store request failed (missing object, network, permissions). Where the message
    /// alone would not say what to do (no credentials, a missing bucket, a refused certificate,
    /// a proxy down), says it first (`store_hint`).
    #[error("object store error on {location}: {}{source}", crate::store_hint::store_hint(.source))]
    Store {
        /// The object (or prefix) the request was about.
        location: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A dataset address with no manifest: nothing was ingested there (or the address is
    /// wrong).
    #[error(
        "{location} not found: no dataset there (`ecgfm data ingest` or `ecgfm data synth` \
         writes one; a dataset's address is the folder holding its manifest.json)"
    )]
    NoDataset {
        /// The manifest's location.
        location: String,
    },
    /// A dataset address in a bucket (an Azure container) that does not exist.
    #[error("{location} not found: {}", crate::store_hint::MISSING_BUCKET)]
    NoBucket {
        /// The manifest's location.
        location: String,
    },
    /// A dataset address with no manifest yet but an ingest's resume journal: the ingest stopped
    /// (`--stop-after-shards`, a crash) before it wrote the manifest.
    #[error(
        "{location} not found: the ingest writing this dataset has not finished (its \
         _ingest_state.json is there); run the same `ecgfm data ingest` command again to finish it"
    )]
    UnfinishedIngest {
        /// The manifest's location.
        location: String,
    },
    /// A dataset address with no manifest but the report of an ingest that could not ingest a
    /// single record (`ingest::QUARANTINE_REPORT_FILE`): no dataset, and nothing that stops
    /// another ingest from writing there.
    #[error(
        "{location} not found: no dataset there; the ingest into this folder could not ingest \
         any record ({quarantined} quarantined, with their reasons in {report})"
    )]
    FailedIngest {
        /// The manifest's location.
        location: String,
        /// The report's location.
        report: String,
        /// Records the report lists.
        quarantined: usize,
    },
    /// A dataset address with shards but neither a manifest nor an ingest's journal: a merge or
    /// a synth writing it stopped before its manifest, written last.
    #[error(
        "{location} not found, but shards are there: the `ecgfm data merge` or `ecgfm data synth` \
         writing this dataset stopped before the end; run the same command again to finish it"
    )]
    UnfinishedWrite {
        /// The manifest's location.
        location: String,
    },
    /// An ingest source (folder or URL) that holds no record of the format: an empty dataset
    /// would only hide a wrong address.
    #[error("{location}: no {format} record there (no `.hea` header)")]
    NoRecords {
        /// The source, as `SourceRoot::describe` gives it.
        location: String,
        /// The format looked for.
        format: String,
    },
    /// A Parquet shard could not be read or decoded.
    #[error("shard {path}: {source}")]
    Parquet {
        /// The shard's path.
        path: String,
        /// The Parquet reader's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A file whose contents do not follow docs/dataset-format.md.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The offending file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A shard whose bytes are not those its manifest recorded (size, SHA-256, or the CRC-32C of
    /// its footer or of a column chunk): it changed after it was written. Reading it again gives
    /// the same bytes, so a run stopped by it is not restarted (`ecgfm launch`) but repaired.
    #[error("{path}: {reason} (the file was damaged after ingest)")]
    Damaged {
        /// The shard.
        path: String,
        /// Which check failed, with both values.
        reason: String,
    },
    /// A JSON file (manifest, journal, state) that does not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The offending file.
        path: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A local file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A source record or label file that cannot be read (the message names the file).
    #[error(transparent)]
    Source(#[from] ecgfm_wfdb::WfdbError),
    /// A record's file that could not be read for a reason outside the record (too many open
    /// files, no permission, an I/O or store failure): the ingest stops rather than quarantine it.
    #[error(
        "{0}: not a fault of the record, so ingest stops rather than leave it out; run it again \
         once this is mended (it goes on where it stopped), or leave a file damaged for good out \
         with --exclude"
    )]
    SourceUnreadable(String),
    /// What this command must not do with what it was given, the message saying why and the
    /// way out: an output that already holds a dataset, datasets preprocessed differently, a
    /// split without rows. The same command would be refused again (`ecgfm` exits 78 for it).
    #[error("{0}")]
    Refused(String),
    /// Another writer is at work on the output: it holds its lock, keeps taking it, took this
    /// writer's over, or removed the folder being written. The same command may pass later
    /// (`ecgfm` exits 1, so `ecgfm launch --max-restarts` may try again).
    #[error("{0}")]
    Busy(String),
    /// An invalid setting (loader configuration, split name, a `data.repeat` the dataset
    /// cannot take, ...): the same settings would be refused again.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A failure of this process rather than of its input or settings (a worker thread that
    /// could not start or stopped, a table that could not be built); the message says which.
    #[error("{0}")]
    Internal(String),
}
