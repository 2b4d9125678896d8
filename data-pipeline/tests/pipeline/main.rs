//! The data pipeline's integration tests, one binary (a binary per file linked arrow, parquet and
//! object_store 19 times over): ingesting PhysioNet folders against the `wfdb` and pyarrow oracles
//! (`ingest_*`), inspecting and plotting datasets (`inspect_*`, `plot_png`), merging them
//! (`merge`), windows and splits (`split_windows`, `synth_windows`), the streaming loader's order,
//! restarts, sources, stores and errors (`loader_*`), writing to S3 (`object_sink_s3`), writers
//! kept apart on object stores (`output_lease`), and the dataset format's documentation against
//! the code (`docs_format`). `common` builds small datasets and starts moto (as S3, and standing
//! in for GCS); `ingest_support` runs ingests and reads their shards back.

mod common;
mod ingest_support;

mod docs_format;
mod ingest_cinc;
mod ingest_damaged_headers;
mod ingest_end_to_end;
mod ingest_multi_segment;
mod ingest_out_folder;
mod ingest_ptbxl;
mod ingest_resume_and_stores;
mod ingest_wfdb_formats;
mod inspect_damaged;
mod inspect_shards;
mod loader_errors;
mod loader_order;
mod loader_restarts;
mod loader_sources;
mod loader_stores;
mod merge;
mod object_sink_s3;
mod output_lease;
mod plot_png;
mod split_windows;
mod synth_windows;
