//! `ecgfm sweep report DIR`: the report of a sweep folder (`ecgfm_sweep::report`).

use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct SweepReportArgs {
    /// The sweep folder (`ecgfm sweep run --out DIR`).
    pub dir: PathBuf,
    /// Where to write report.md and its charts (default DIR/report).
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// Runs `ecgfm sweep report`.
pub fn run(args: &SweepReportArgs) -> Result<()> {
    let out = args.to.clone().unwrap_or_else(|| args.dir.join("report"));
    write(&args.dir, &out)
}

/// Writes the report of the sweep in `dir` into `out`.
pub fn write(dir: &Path, out: &Path) -> Result<()> {
    let written = ecgfm_sweep::report::write(dir, out)
        .with_context(|| format!("writing the report of the sweep in {}", dir.display()))?;
    if !ecgfm_sweep::plot::has_text() {
        println!(
            "warning: no TrueType font found (set ECGFM_PLOT_FONT=FILE.ttf): charts have no text"
        );
    }
    println!(
        "report of {} runs: {} ({} charts)",
        written.runs,
        written.report.display(),
        written.charts.len()
    );
    Ok(())
}
