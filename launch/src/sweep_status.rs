//! `ecgfm sweep status DIR`: where a sweep stands, read from its folder alone (so it works while
//! `sweep run` or a SLURM array is writing it, from any machine that sees the folder): each
//! planned run's state, step, last losses, evaluations done and how long ago it last logged, and
//! the sweep's FLOPs done and time left at the rate so far; the sizes a budget left out (too few
//! steps); and a warning where runs were scored on different test sets.

use anyhow::{Context, Result};
use clap::Args;
use ecgfm_sweep::expand::LeftOut;
use ecgfm_sweep::record::{self, SweepRecord};
use ecgfm_sweep::{RunPlan, SweepPlan};
use ecgfm_trainer::metrics::read_records;
use indicatif::HumanDuration;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::sweep_eval::{evaluations, missing_evaluations};
use crate::sweep_failure;
use crate::sweep_run::{folder_plan, recorded};

#[derive(Args, Debug, Clone)]
pub struct SweepStatusArgs {
    #[command(flatten)]
    pub folder: crate::sweep_folder::SweepFolder,
}

/// Where one run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    /// Steps logged, fewer than planned: training now, or interrupted (see the log's age).
    Training,
    /// Every step trained, not yet recorded: its evaluations are running, come next, or were
    /// interrupted.
    Trained,
    /// Recorded, but lacking evaluations the sweep file added since (`sweep run --extend`).
    ToEvaluate,
    /// Its last attempt failed (`runs/NAME/FAILED` holds the error).
    Failed,
    Done,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::NotStarted => "not started",
            State::Training => "training",
            State::Trained => "trained",
            State::ToEvaluate => "evals added",
            State::Failed => "failed",
            State::Done => "done",
        }
    }
}

/// One planned run as its folder shows it.
struct RunStatus<'a> {
    plan: &'a RunPlan,
    state: State,
    /// Steps trained.
    steps: u64,
    /// The last logged training loss.
    loss: Option<f32>,
    /// Seconds of training, as last logged.
    trained_s: Option<f64>,
    val_loss: Option<f32>,
    evals_done: usize,
    evals: usize,
    /// Since metrics.jsonl was last written.
    log_age: Option<Duration>,
    /// The error of its last attempt, when that failed.
    failure: Option<String>,
}

impl RunStatus<'_> {
    /// The planned FLOPs of the steps trained.
    fn flops_done(&self) -> f64 {
        self.plan.flops() * self.steps as f64 / self.plan.steps().max(1) as f64
    }

    /// `NAME (state, step S of N)`, or `NAME (not started)`.
    fn describe(&self) -> String {
        match self.state {
            State::NotStarted => format!("{} (not started)", self.plan.name),
            state => format!(
                "{} ({}, step {} of {})",
                self.plan.name,
                state.name(),
                self.steps,
                self.plan.steps()
            ),
        }
    }
}

/// The planned runs of the sweep in `dir` that `sweep.jsonl` does not record, each as where it
/// stands (`RunStatus::describe`), and the number of runs planned.
pub(crate) fn unfinished(dir: &Path) -> Result<(Vec<String>, usize)> {
    let plan = folder_plan(dir)?;
    let records = recorded(dir)?;
    let left = (plan.runs.iter())
        .filter(|run| !records.iter().any(|r| r.run == run.name))
        .map(|run| status(dir, &plan, run, &records).map(|s| s.describe()))
        .collect::<Result<_>>()?;
    Ok((left, plan.runs.len()))
}

fn status<'a>(
    dir: &Path,
    plan: &'a SweepPlan,
    run: &'a RunPlan,
    records: &[SweepRecord],
) -> Result<RunStatus<'a>> {
    let record = records.iter().find(|r| r.run == run.name);
    // A recorded run's folder, or in a published `results/` copy its folder of result files.
    let run_dir = match record {
        Some(rec) => record::result_dir(dir, rec),
        None => dir.join("runs").join(&run.name),
    };
    let metrics = run_dir.join("metrics.jsonl");
    let logged = match read_records(&metrics) {
        Ok(logged) => logged,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", metrics.display())),
    };
    let log_age = std::fs::metadata(&metrics)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    let evals = evaluations(plan, run).len();
    let evals_done = evals - missing_evaluations(plan, run, &run_dir).len();
    let failure = sweep_failure::reason(&run_dir);
    // A finished run whose log is not there (a published `results/` copy holds none) stands as
    // its record says.
    let from_record = record.filter(|_| logged.is_empty());
    let steps = (logged.last().map(|l| l.step + 1))
        .or(from_record.map(|r| r.steps))
        .unwrap_or(0);
    let state = match (record.is_some(), logged.is_empty()) {
        _ if failure.is_some() => State::Failed,
        (true, _) if evals_done == evals => State::Done,
        (true, _) => State::ToEvaluate,
        (false, true) => State::NotStarted,
        (false, false) if steps >= run.steps() => State::Trained,
        (false, false) => State::Training,
    };
    Ok(RunStatus {
        plan: run,
        state,
        steps,
        loss: logged
            .last()
            .map(|l| l.loss)
            .or_else(|| from_record?.final_train_loss.map(|l| l as f32)),
        trained_s: logged
            .last()
            .map(|l| l.elapsed_s)
            .or_else(|| from_record.map(|r| r.train_s)),
        val_loss: logged
            .iter()
            .rev()
            .find_map(|r| r.val_loss)
            .or_else(|| from_record?.final_val_loss.map(|l| l as f32)),
        evals_done,
        evals,
        log_age,
        failure,
    })
}

/// Runs `ecgfm sweep status`.
pub fn run(args: &SweepStatusArgs) -> Result<()> {
    let dir = args.folder.path();
    let plan = folder_plan(dir)?;
    let records = recorded(dir)?;
    let runs: Vec<RunStatus> = plan
        .runs
        .iter()
        .map(|run| status(dir, &plan, run, &records))
        .collect::<Result<_>>()?;
    say_inline!("{}", render(dir, &plan, &runs));
    for warning in warnings(dir, records) {
        say!("warning: {warning}");
    }
    Ok(())
}

/// The status table and its summary lines.
fn render(dir: &Path, plan: &SweepPlan, runs: &[RunStatus]) -> String {
    let mut out = format!(
        "{:<40} {:<12} {:>17} {:>8} {:>8} {:>6} {:>16}\n",
        "run", "state", "step", "loss", "val loss", "evals", "last log"
    );
    let loss = |v: Option<f32>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for r in runs {
        out += &format!(
            "{:<40} {:<12} {:>17} {:>8} {:>8} {:>6} {:>16}\n",
            r.plan.name,
            r.state.name(),
            format!("{}/{}", r.steps, r.plan.steps()),
            loss(r.loss),
            loss(r.val_loss),
            format!("{}/{}", r.evals_done, r.evals),
            r.log_age
                .map_or("-".into(), |age| format!("{} ago", HumanDuration(age))),
        );
    }
    let count = |state: State| runs.iter().filter(|r| r.state == state).count();
    let states: Vec<String> = [
        State::Done,
        State::Failed,
        State::ToEvaluate,
        State::Trained,
        State::Training,
        State::NotStarted,
    ]
    .into_iter()
    .filter(|&s| count(s) > 0)
    .map(|s| format!("{} {}", count(s), s.name()))
    .collect();
    for r in runs {
        if let Some(error) = &r.failure {
            let first = error.lines().next().unwrap_or_default();
            out += &format!("{} failed: {first}\n", r.plan.name);
        }
    }
    out += &format!(
        "sweep {} in {}: {} runs: {}\n",
        plan.spec.name,
        dir.display(),
        runs.len(),
        states.join(", ")
    );
    for (dataset, budget) in left_out_groups(plan) {
        let sizes: Vec<String> = (plan.left_out.iter())
            .filter(|l| l.dataset == dataset && l.budget == budget)
            .map(LeftOut::describe)
            .collect();
        out += &format!(
            "left out at C = {budget:.3e} on {dataset}: {}\n",
            sizes.join(", ")
        );
    }
    let planned: f64 = runs.iter().map(|r| r.plan.flops()).sum();
    let done: f64 = runs.iter().map(RunStatus::flops_done).sum();
    let trained_s: f64 = runs
        .iter()
        .filter_map(|r| r.trained_s)
        // A metrics file edited by hand (or damaged) must not stop the status report.
        .filter(|s| s.is_finite() && *s >= 0.0)
        .sum();
    out += &format!(
        "trained {done:.3e} of {planned:.3e} FLOPs ({:.0}%) in {}",
        100.0 * done / planned.max(f64::MIN_POSITIVE),
        duration(trained_s)
    );
    if done > 0.0 && trained_s > 0.0 && done < planned {
        let left = (planned - done) * trained_s / done;
        out += &format!(
            "; about {} of training left at that rate, one run at a time (evaluations not \
             counted)",
            duration(left)
        );
    }
    out.push('\n');
    out
}

/// The (dataset, budget) pairs the plan left sizes out of, in its order.
fn left_out_groups(plan: &SweepPlan) -> Vec<(&str, f64)> {
    let mut groups: Vec<(&str, f64)> = Vec::new();
    for l in &plan.left_out {
        if !groups.contains(&(l.dataset.as_str(), l.budget)) {
            groups.push((l.dataset.as_str(), l.budget));
        }
    }
    groups
}

/// `seconds` for people ("3 hours"); beyond what a `Duration` holds, "ages".
fn duration(seconds: f64) -> String {
    Duration::try_from_secs_f64(seconds)
        .map_or_else(|_| "ages".to_string(), |d| HumanDuration(d).to_string())
}

/// What the sweep's records warn of (`ecgfm_sweep::analysis::warnings`), their result files
/// read from `dir`.
fn warnings(dir: &Path, mut records: Vec<SweepRecord>) -> Vec<String> {
    ecgfm_sweep::record::read_result_files(&mut records, dir);
    ecgfm_sweep::analysis::warnings(&records)
}
