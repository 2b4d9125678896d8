//! `ecgfm data merge A B [...] --out URL`: datasets ingested with the same preprocessing (each
//! source with its own format) joined into one dataset to train on.

use anyhow::Result;
use clap::Args;
use ecgfm_data::error::DataError;
use ecgfm_data::ingest::removed_shards_note;
use ecgfm_data::merge::{merge, MergeOptions};
use ecgfm_data::store::redact_url;

use crate::damaged_data::name_damaged_dataset;
use crate::progress::byte_bar;

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Dataset folders or URLs (local, file://, s3://, gs://, az://), in the order their
    /// shards are to follow each other; one makes a checked copy (to another store, or to add
    /// the chunk checksums a dataset written by an older ecgfm lacks).
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<String>,
    /// Dataset folder or URL to write (must not hold a dataset yet).
    #[arg(long)]
    pub out: String,
    /// Shards copied at once (a shard passing through this machine is held in memory whole).
    #[arg(long, default_value = "4")]
    pub jobs: std::num::NonZeroUsize,
    /// Pass every shard through this machine, even where the store could copy it itself (by
    /// default an input on the output's local disk is hard-linked, and one in the output's
    /// bucket is copied by the server).
    #[arg(long)]
    pub stream_copy: bool,
}

/// What `data merge` says when a signal stops it (`signals::exit_on_stop`).
pub const MERGE_STOPPED: &str =
    "the shards it copied stay; run the same command again to go on from them";

/// Runs `ecgfm data merge`.
pub fn run(args: &MergeArgs) -> Result<()> {
    let bar = byte_bar("copying shards");
    let options = MergeOptions {
        jobs: args.jobs.get(),
        in_store_copy: !args.stream_copy,
        ..MergeOptions::default()
    };
    let report =
        merge(&args.inputs, &args.out, &options, &bar).map_err(|err| merge_error(err, args))?;
    bar.finish_and_clear();
    let m = &report.manifest;
    let sources: Vec<String> = m
        .sources
        .iter()
        .map(|s| format!("{} ({} records seen)", s.name, s.records_seen))
        .collect();
    let inputs = match args.inputs.len() {
        1 => "1 dataset".to_string(),
        n => format!("{n} datasets"),
    };
    say!(
        "{inputs} -> {} rows of {} records in {} shards ({} copied through here, {} by the \
         store, {} kept from an earlier run) at {}",
        m.counts.rows,
        m.counts.records,
        m.shards.len(),
        report.shards_copied,
        report.shards_copied_in_store,
        report.shards_kept,
        redact_url(&args.out)
    );
    say!("sources: {}", sources.join(", "));
    if report.shards_removed > 0 {
        say!("{}", removed_shards_note(report.shards_removed));
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    if report.checksums_added > 0 {
        say!(
            "chunk checksums computed for {} shards whose inputs lacked some (ingested before \
             ecgfm kept them): the loader now checks their footer and column chunks on every read",
            report.checksums_added
        );
    }
    if !report.without_lead_counts.is_empty() {
        say!(
            "no count of rows by present leads (a sweep would plan its compute as for 12-lead \
             rows): the manifests of {} predate it; ingest them again to have it",
            report.without_lead_counts.join(", ")
        );
    }
    Ok(())
}

/// The error of a merge into `--out`; where an input's shard failed its manifest's size or
/// SHA-256, with the damaged input dataset named and the ways to repair it (the command then
/// exits as for any damaged shard, `damaged_data`), and that a merge run again once it is
/// repaired keeps the shards copied so far.
fn merge_error(err: DataError, args: &MergeArgs) -> anyhow::Error {
    let out = redact_url(&args.out);
    let damaged = match &err {
        DataError::Damaged { path, .. } => Some(path.clone()),
        _ => None,
    };
    let err = anyhow::Error::new(err);
    let Some(path) = damaged else {
        return err.context(format!("merging into {out}"));
    };
    let err = err.context(format!(
        "merging into {out} (the shards copied so far stay there: run the merge again once the \
         input is repaired, it keeps them)"
    ));
    // The merge names the shard by its input's (redacted) URL and its path there.
    let input = (args.inputs.iter()).find(|url| path.starts_with(&format!("{}/", redact_url(url))));
    match input {
        Some(url) => name_damaged_dataset(err, url),
        None => err,
    }
}
