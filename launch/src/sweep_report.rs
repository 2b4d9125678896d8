//! `ecgfm sweep report DIR`: the report of a sweep folder (`ecgfm_sweep::report`), or of a
//! published `results/` folder (the records, the sweep file and the result files, without run
//! folders), with a warning where runs were scored on different test sets.

use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct SweepReportArgs {
    #[command(flatten)]
    pub folder: crate::sweep_folder::SweepFolder,
    /// Where to write report.md and its charts (default DIR/report); `--report-to`, as
    /// `sweep run` spells it, works too.
    #[arg(long, visible_alias = "report-to", value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// Runs `ecgfm sweep report`.
pub fn run(args: &SweepReportArgs) -> Result<()> {
    let dir = args.folder.path();
    let out = args.to.clone().unwrap_or_else(|| dir.join("report"));
    write(dir, &out)
}

/// When and where the report is made: the date, the CPU cores and, where `nvidia-smi` answers,
/// the GPUs.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let gpus = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let names: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            names.join(", ")
        })
        .filter(|names| !names.is_empty());
    format!(
        "Report made {} on a machine with {cores} CPU cores{}.",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        gpus.map_or(" and no GPU".to_string(), |g| format!(" and GPUs: {g}"))
    )
}

/// The runs the folder's sweep file plans that are not finished (not in `sweep.jsonl`) and how
/// far each got, said in one sentence for the report; `None` when every run is, and for a
/// folder without run folders (a published `results/`: it holds what was finished).
fn unfinished(dir: &Path) -> Result<Option<String>> {
    if !dir.join("runs").is_dir() {
        return Ok(None);
    }
    let (left, planned) = crate::sweep_status::unfinished(dir)?;
    Ok((!left.is_empty()).then(|| {
        format!(
            "Planned but not finished, so not in this report: {} of {planned} runs: {}; `ecgfm \
             sweep status` says more.",
            left.len(),
            left.join(", ")
        )
    }))
}

/// Writes the report of the sweep in `dir` into `out`.
pub fn write(dir: &Path, out: &Path) -> Result<()> {
    let mut context = machine();
    if let Some(left) = unfinished(dir)? {
        context = format!("{context}\n\n{left}");
    }
    let written = ecgfm_sweep::report::write(dir, out, &context)
        .with_context(|| format!("writing the report of the sweep in {}", dir.display()))?;
    if !ecgfm_sweep::plot::has_text() {
        say!("warning: no TrueType font found (set ECGFM_PLOT_FONT=FILE.ttf): charts have no text");
    }
    say!(
        "report of {} runs: {} ({} charts; {} result files in {})",
        written.runs,
        written.report.display(),
        written.charts.len(),
        written.results.written,
        out.join(ecgfm_sweep::results::FOLDER).display()
    );
    for warning in &written.warnings {
        say!("warning: {warning}");
    }
    if !written.results.left_out.is_empty() {
        say!(
            "warning: {} result file(s) named in sweep.jsonl could not be read from their run \
             folders, so results/ lacks them: {}",
            written.results.left_out.len(),
            written.results.left_out.join(", ")
        );
    }
    Ok(())
}
