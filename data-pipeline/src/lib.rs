//! ecgfm-data: the ECG dataset layer of ecgfm.
//!
//! What lives here:
//! - the on-disk dataset contract (`docs/dataset-format.md`): the Arrow schema of one row per
//!   window (`schema`) and the `manifest.json` structs (`manifest`);
//! - ingest: turning WFDB / PTB-XL / CinC sources into Parquet shards (the signal
//!   delta-encoded, the rest zstd) with splits (`split`), quarantine, a resumable journal and a
//!   manifest (`ingest`), plus a synthetic dataset writer (`synth_dataset`) and a summary /
//!   plot / checksum check of a dataset (`inspect`, `plot`), and several datasets made with the
//!   same preprocessing joined into one (`merge`); the writers of a dataset take its
//!   `_ingest.lock` one at a time (`out_lock`: a file lock in a folder, a renewed lease object
//!   on an object store, `store_lease`);
//! - the CRC-32C of each shard's footer and column chunks that the manifest records and every
//!   reader checks (`chunk_crc`, [`ShardChecksums`]), and the decoding of named columns of a
//!   shard held in memory that `inspect`, `plot` and `windows` share (`shard_columns`);
//! - object-store access for local paths, `memory://`, `s3://`, `gs://`, `az://` (`store`; what
//!   to do about a failed request, `store_hint`; their HTTP client, `store_http`; the
//!   environment they read, checked, and the secrets in it kept out of errors, `store_env`; URLs
//!   shown without their credentials, `store_redact`) and the streaming training loader
//!   (`loader`);
//! - evaluation reading: every window of a split in order with a centred crop and its labels
//!   (`windows`: whole, in memory or a mapped scratch file, or shard by shard), and the embedding
//!   file `ecgfm embed` writes as it goes (`embeddings`, through `object_sink`: one object
//!   written in parts), and each record's source, id, patient and split without its signal
//!   (`record_ids`).
//!
//! Every failure is a [`error::DataError`] naming the object, file or URL it concerns (`error`).
//!
//! It depends on `ecgfm-wfdb` (reading records and labels), `ecgfm-preprocess` (resampling,
//! filtering, lead mapping, windowing, quality) and `ecgfm-synth` (synthetic ECGs).
//! Start with `docs/dataset-format.md`, then `schema.rs` and `ingest/mod.rs`.
mod chunk_crc;
pub mod embeddings;
pub mod error;
pub mod ingest;
pub mod inspect;
pub mod loader;
pub mod manifest;
pub mod merge;
pub mod object_sink;
pub mod out_lock;
pub mod plot;
pub mod record_ids;
pub mod schema;
mod shard_columns;
pub mod split;
pub mod store;
pub mod store_env;
pub mod store_hint;
mod store_http;
pub mod store_lease;
mod store_redact;
pub mod synth_dataset;
pub mod windows;

pub use chunk_crc::ShardChecksums;
