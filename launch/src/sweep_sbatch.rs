//! `ecgfm sweep run --slurm`: the sweep as a SLURM array script, `DIR/sweep.sbatch`, whose task
//! i runs grid point i (`ecgfm sweep run-one --out DIR --index i`).

use anyhow::{bail, Context, Result};
use ecgfm_sweep::SweepPlan;
use std::path::Path;

use crate::slurm::shell_word;
use crate::sweep_run::RunLaunch;

/// Writes `DIR/sweep.sbatch`: a SLURM array with one task per grid point.
pub fn write(dir: &Path, plan: &SweepPlan, launch: &RunLaunch) -> Result<()> {
    let exe = std::env::current_exe().context("locating the ecgfm binary")?;
    let dir_abs = std::fs::canonicalize(dir)?;
    let shown = dir_abs.display().to_string();
    // sbatch reads its #SBATCH lines itself: a value with spaces goes in double quotes.
    if shown.contains('"') || shown.contains('\n') {
        bail!("--slurm: the sweep folder {shown:?} holds a quote or line break, which an #SBATCH line cannot hold");
    }
    let output = format!("\"{shown}/slurm/%A_%a.out\"");
    std::fs::create_dir_all(dir_abs.join("slurm"))?;
    let flags = launch.flags();
    let cpus = launch
        .threads
        .map_or(String::new(), |t| format!("#SBATCH --cpus-per-task={t}\n"));
    let script = format!(
        "#!/bin/bash\n\
         # ecgfm sweep {name}: {n} runs, one per array task. Submit with\n\
         #   sbatch {path}\n\
         # then, when every task has finished: {exe} sweep report {dir}\n\
         # A task that was preempted resumes its run from its newest checkpoint when requeued, and\n\
         # appends to its log (the attempt before stays readable).\n\
         #SBATCH --job-name=ecgfm-sweep-{name}\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --output={output}\n\
         #SBATCH --requeue\n\
         #SBATCH --open-mode=append\n\
         {cpus}\
         # Add your site's partition, time limit and GPU request here, e.g. #SBATCH --gres=gpu:1\n\
         set -euo pipefail\n\
         exec {exe} sweep run-one --out {dir} --index \"$SLURM_ARRAY_TASK_ID\"{flags}\n",
        name = plan.spec.name,
        n = plan.runs.len(),
        last = plan.runs.len() - 1,
        path = shell_word(&dir_abs.join("sweep.sbatch").display().to_string()),
        exe = shell_word(&exe.display().to_string()),
        dir = shell_word(&shown),
    );
    let path = dir.join("sweep.sbatch");
    std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    say!(
        "wrote {} ({} array tasks): submit it with `sbatch {}`",
        path.display(),
        plan.runs.len(),
        path.display()
    );
    Ok(())
}
