//! `ecgfm data inspect URL [--plot FILE.png]`: a dataset's summary (rows, records, label and
//! split counts, quality histogram, quarantine, shard checksums), and optionally a picture of a
//! few windows; `--record-ids SPLIT` prints a split's record ids instead, `--quarantine` every
//! record its ingest left out or kept in part, with the reason, as CSV. Exits 65 (damaged
//! data, as every command does for it) when a shard differs from the manifest, is gone or cannot
//! be decoded, or the shards' rows per split differ from the manifest's; 1 when shards that are
//! there cannot be read here (no permission, the store unreachable): no verdict on the data.

use anyhow::{bail, Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::Args;
use ecgfm_data::inspect::inspect;
use ecgfm_data::manifest::Manifest;
use ecgfm_data::plot::{plot_records, MAX_RECORDS};
use ecgfm_data::record_ids::visit_record_ids;
use ecgfm_data::store::{open_url, redact_url};

use crate::bad_config::RefusedConfig;
use crate::damaged_data::DamagedData;
use crate::progress::byte_bar;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Dataset folder or URL (local, file://, s3://, gs://, az://).
    pub url: String,
    /// Draw the first windows of the first shard, lead by lead (one column per window; panels
    /// from top to bottom: I, II, III, aVR, aVL, aVF, V1-V6; no text), as a PNG.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Windows to draw with --plot: 1 to 32 (each a column 640 pixels wide).
    #[arg(long, default_value_t = 4,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_RECORDS as u64))]
    pub plot_records: usize,
    /// Print only the ids of the records with windows in SPLIT (train, val, test or all; several
    /// comma-separated), one per line, sorted: a list for `data ingest --records` or `--exclude`
    /// (keeping another dataset's held-out records out of a pretraining ingest, say). Reads the
    /// id columns alone.
    #[arg(long, value_name = "SPLIT", conflicts_with = "plot")]
    pub record_ids: Option<String>,
    /// Print only the records the ingest quarantined or kept in part, as CSV with a header
    /// (`source,record,status,reason`; status `quarantined` or `partial`, the reason naming the
    /// leads or windows left out), from the manifest alone. The summary shows a few.
    #[arg(long, conflicts_with_all = ["plot", "record_ids"])]
    pub quarantine: bool,
}

/// Runs `ecgfm data inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    if let Some(split) = &args.record_ids {
        return print_record_ids(&args.url, split);
    }
    if args.quarantine {
        return print_left_out(&args.url);
    }
    let bar = byte_bar("reading shards");
    let summary =
        inspect(&args.url, &[], &bar).with_context(|| format!("inspecting {}", args.url))?;
    bar.finish_and_clear();
    say!("{summary}");
    if let Some(png) = &args.plot {
        plot_records(&args.url, &[], png, args.plot_records)
            .with_context(|| format!("plotting {} to {}", args.url, png.display()))?;
        say!("plot written to {}", png.display());
    }
    let mut failed = Vec::new();
    if !summary.damaged_shards.is_empty() {
        failed.push(format!(
            "{} shard(s) differ from the manifest or cannot be read (changed, truncated or \
             removed after ingest)",
            summary.damaged_shards.len()
        ));
    }
    if !summary.split_mismatches().is_empty() {
        failed.push("the shards' rows per split differ from the manifest's counts".to_string());
    }
    if failed.is_empty() && !summary.unreachable_shards.is_empty() {
        // No verdict on the data (exit 1, not 65): the shards could not be read here.
        bail!(
            "{} could not be checked: {} shard(s) cannot be read here ({}), so they were not \
             checked against the manifest",
            args.url,
            summary.unreachable_shards.len(),
            summary.unreachable_shards[0].1
        );
    }
    if !failed.is_empty() {
        return Err(DamagedData(format!(
            "{} fails its checks: {}",
            args.url,
            failed.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// Prints the sorted, distinct ids of the records with windows in `splits` (comma-separated;
/// `all`: every split).
fn print_record_ids(url: &str, splits: &str) -> Result<()> {
    use ecgfm_trainer::config::SPLITS;
    let wanted: Vec<&str> = splits.split(',').map(str::trim).collect();
    if let Some(bad) = wanted.iter().find(|s| !SPLITS.contains(s)) {
        return Err(RefusedConfig(format!(
            "--record-ids {splits}: `{bad}` is not a split; give one or more of {} \
             (comma-separated)",
            SPLITS.join(", ")
        ))
        .into());
    }
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let (listed, wanted) = (&mut ids, &wanted);
    visit_record_ids(url, move |_| {
        move |r| {
            if wanted.contains(&"all") || wanted.contains(&r.split.as_str()) {
                listed.insert(r.record_id.clone());
            }
        }
    })
    .with_context(|| format!("reading the record ids of {url}"))?;
    for id in ids {
        say!("{id}");
    }
    Ok(())
}

/// Prints, as CSV, every record of the dataset's manifest that was quarantined (with its
/// reason) or ingested in part (with the leads and windows left out).
fn print_left_out(url: &str) -> Result<()> {
    let (object_store, root) = open_url(url)?;
    let manifest = Manifest::load(object_store.as_ref(), &root)
        .with_context(|| format!("reading the manifest of {}", redact_url(url)))?;
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["source", "record", "status", "reason"])?;
    for q in &manifest.quarantine {
        out.write_record([&q.source, &q.record, "quarantined", &q.reason])?;
    }
    for p in &manifest.partial {
        out.write_record([&p.source, &p.record, "partial", &p.left_out()])?;
    }
    out.flush().context("writing to standard output")?;
    Ok(())
}
