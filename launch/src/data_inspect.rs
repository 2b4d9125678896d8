//! `ecgfm data inspect URL [--plot FILE.png]`: a dataset's summary (rows, records, label and
//! split counts, quality histogram, quarantine, shard checksums), and optionally a picture of a
//! few windows. Exits non-zero when a shard differs from the manifest or cannot be read, or the
//! shards' rows per split differ from the manifest's.

use anyhow::{bail, Context, Result};
use clap::builder::RangedU64ValueParser;
use clap::Args;
use ecgfm_data::inspect::inspect;
use ecgfm_data::plot::{plot_records, MAX_RECORDS};

use crate::progress::byte_bar;
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
}

/// Runs `ecgfm data inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    let bar = byte_bar("reading shards");
    let summary =
        inspect(&args.url, &[], &bar).with_context(|| format!("inspecting {}", args.url))?;
    bar.finish_and_clear();
    println!("{summary}");
    if let Some(png) = &args.plot {
        plot_records(&args.url, &[], png, args.plot_records)
            .with_context(|| format!("plotting {} to {}", args.url, png.display()))?;
        println!("plot written to {}", png.display());
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
    if !failed.is_empty() {
        bail!("{} fails its checks: {}", args.url, failed.join("; "));
    }
    Ok(())
}
