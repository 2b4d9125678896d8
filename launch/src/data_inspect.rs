//! `ecgfm data inspect URL`: a dataset's summary (rows, records, label and split counts,
//! quality histogram, quarantine).

use anyhow::{Context, Result};
use clap::Args;
use ecgfm_data::inspect::inspect;

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Dataset folder or URL (local, file://, s3://, gs://, az://).
    pub url: String,
}

/// Runs `ecgfm data inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    let summary = inspect(&args.url, &[]).with_context(|| format!("inspecting {}", args.url))?;
    println!("{summary}");
    Ok(())
}
