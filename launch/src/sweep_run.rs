//! `ecgfm sweep run`: expands a sweep file into runs and runs them one after another as
//! subprocesses of this same binary (`ecgfm pretrain`, then `ecgfm eval` on the sweep's tasks),
//! appending one line per finished run to `DIR/sweep.jsonl`; or, with `--slurm`, writes an
//! sbatch array script whose task i runs grid point i (`ecgfm sweep run-one`).
//!
//! Resumable: a run already in `sweep.jsonl` is not trained again (only evaluated on what the
//! sweep file added since, after `--extend`), an interrupted one resumes from its newest
//! checkpoint (`pretrain --resume`), and an evaluation whose result file exists is not run again.

use anyhow::{bail, Context, Result};
use clap::Args;
use ecgfm_data::manifest::{synth_origin, Manifest};
use ecgfm_data::store::redact_url;
use ecgfm_sweep::expand::LeadMix;
use ecgfm_sweep::record::{self, SweepRecord};
use ecgfm_sweep::spec::EVAL_SYNTH_SEED;
use ecgfm_sweep::{presets, RunPlan, SweepPlan, SweepSpec};
use ecgfm_trainer::metrics::read_records;
use ecgfm_trainer::write_whole::write_whole;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sweep_child::{check_child_args, ingest_command, run_child, run_data_child};
use crate::sweep_eval::{check_eval_data, complete_evals, eval_data, evaluate_run};
use crate::{damaged_data, signals, sweep_extend, sweep_failure};

#[derive(Args, Debug, Clone)]
pub struct SweepRunArgs {
    /// The sweep file (TOML); or give --preset.
    #[arg(value_name = "FILE", required_unless_present = "preset")]
    pub file: Option<PathBuf>,
    /// A built-in sweep: demo (CPU, about 20 minutes on 2 cores), gpu (one H200, about
    /// 8 minutes), toy (seconds: the CI test's size).
    #[arg(long, conflicts_with = "file")]
    pub preset: Option<String>,
    /// The sweep folder: sweep.toml, runs/, sweep.jsonl, report/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Override a field of the sweep file, e.g. --set budget.steps=50 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Write DIR/sweep.sbatch (a SLURM array, one grid point per task) instead of running.
    #[arg(long)]
    pub slurm: bool,
    /// Print the runs and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Grow the sweep in DIR with this file (more budgets, seeds, sizes or data fractions): it
    /// must plan and evaluate every run already there as before; only the new runs train.
    #[arg(long)]
    pub extend: bool,
    /// Go on past a run that fails (its training or an evaluation): its error is printed and
    /// kept in DIR/runs/NAME/FAILED, the other runs go on, and the sweep ends with an error
    /// naming the failed runs. Running the sweep again retries them, resuming their training.
    /// Damaged data (exit status 65) stops the sweep all the same: every run reading it would
    /// stop the same way.
    #[arg(long)]
    pub keep_going: bool,
    /// Train and evaluate only the runs whose names have one of these as whole `-`-separated
    /// parts (comma-separated: `--only d4w128,d6w192`, `--only s1` for seed 1 but not 10,
    /// `--only d4w128-C1e13`); the others wait for a later `sweep run`. The report covers every
    /// finished run.
    #[arg(
        long,
        value_name = "PARTS",
        value_delimiter = ',',
        conflicts_with = "slurm"
    )]
    pub only: Vec<String>,
    /// Where the report goes when the sweep is done (default DIR/report).
    #[arg(long, value_name = "DIR")]
    pub report_to: Option<PathBuf>,
    #[command(flatten)]
    pub launch: RunLaunch,
}

/// How each run is started.
#[derive(Args, Debug, Clone, Default)]
pub struct RunLaunch {
    /// CPU threads of each run (default: all cores); at most 4 per core.
    #[arg(long, value_name = "N", value_parser = crate::cli::cpu_threads)]
    pub threads: Option<usize>,
}

impl RunLaunch {
    /// The command line that trains one run from `config` into `run_dir` on `ranks` local
    /// ranks (through `ecgfm launch` when more than one).
    fn pretrain_args(
        &self,
        ranks: usize,
        config: &str,
        run_dir: &str,
        resume: bool,
    ) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        if ranks > 1 {
            // A free port: two sweeps, or a sweep beside another job, on one node must not meet
            // on the default one.
            let ranks = ranks.to_string();
            let launch = [
                "launch",
                "--nproc-per-node",
                &ranks,
                "--master-port",
                "0",
                "--",
            ];
            args.extend(launch.map(String::from));
        }
        args.extend(["pretrain", "--config", config, "--out", run_dir].map(String::from));
        if let Some(t) = self.threads {
            args.extend(["--threads".to_string(), t.to_string()]);
        }
        if resume {
            args.push("--resume".into());
        }
        args
    }

    /// The same settings as `sweep run-one` flags.
    pub(crate) fn flags(&self) -> String {
        let mut out = String::new();
        if let Some(t) = self.threads {
            out.push_str(&format!(" --threads {t}"));
        }
        out
    }
}

#[derive(Args, Debug, Clone)]
pub struct SweepRunOneArgs {
    /// The sweep folder written by `ecgfm sweep run --slurm`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Index of the run in the expanded grid (SLURM_ARRAY_TASK_ID).
    #[arg(long)]
    pub index: usize,
    #[command(flatten)]
    pub launch: RunLaunch,
}

/// The sweep file's text after `--set` overrides, and where it came from.
fn spec_text(args: &SweepRunArgs) -> Result<(String, String)> {
    let (text, origin) = match (&args.file, &args.preset) {
        (Some(path), _) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the sweep file {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(name)) => (
            presets::text(name)
                .with_context(|| format!("--preset {name}: one of {:?}", presets::NAMES))?
                .to_string(),
            format!("preset {name}"),
        ),
        (None, None) => bail!("give a sweep file or --preset"),
    };
    if args.set.is_empty() {
        return Ok((text, origin));
    }
    let mut doc: toml::Table = text
        .parse()
        .with_context(|| format!("{origin} is not valid TOML"))?;
    for assignment in &args.set {
        ecgfm_trainer::config::apply_override(&mut doc, assignment)?;
    }
    Ok((
        toml::to_string_pretty(&doc)?,
        format!("{origin} with --set"),
    ))
}

/// Runs `ecgfm sweep run`.
pub fn run(args: &SweepRunArgs) -> Result<()> {
    signals::catch(&signals::STOPS);
    let (text, origin) = spec_text(args)?;
    crate::secret_free::check(&text, &format!("the sweep folder's copy of {origin}"))?;
    let spec = SweepSpec::parse(&text, &origin)?;
    check_child_args(&spec, args.launch.threads)?;
    let dir = &args.out;
    let expand = || SweepPlan::expand(&spec, &origin, &dir.join("data"), &lead_mix_of);
    let plan = expand()?;
    let left = left_out_by_only(&plan, &args.only)?;
    if args.dry_run {
        check_folder_dry(dir, &text, &spec, &origin, args.extend, &plan)?;
        print_plan(&plan);
        if !left.is_empty() {
            say!(
                "not in --only {}, so not run now: {}",
                args.only.join(","),
                left.join(", ")
            );
        }
        return Ok(());
    }
    check_ingest_sources(dir, &spec)?;
    let earlier = match claim_folder(dir, &text, args.extend)? {
        Some(old_text) => Some(sweep_extend::check_shared(dir, &old_text, &spec)?),
        None => None,
    };
    prepare_data(dir, &spec)?;
    // Again, now that the ingested datasets can tell their samples' lead counts.
    let plan = expand()?;
    if let Some(old) = earlier {
        let old_plan = SweepPlan::expand(&old, &origin, &dir.join("data"), &lead_mix_of)?;
        let extension = sweep_extend::extend(dir, &old_plan, &text, &plan)?;
        say!(
            "extending the sweep in {}: its {} runs kept, {} added (its earlier file is now {})",
            dir.display(),
            extension.kept,
            extension.added,
            extension.previous.display()
        );
    }
    print_plan(&plan);
    let left_out = dir.join(ecgfm_sweep::expand::LEFT_OUT_FILE);
    let listed = serde_json::to_string_pretty(&plan.left_out).expect("left-out sizes serialise");
    write_whole(&left_out, listed.as_bytes())
        .with_context(|| format!("writing {}", left_out.display()))?;
    check_eval_data(dir, &spec)?;
    if args.slurm {
        return crate::sweep_sbatch::write(dir, &plan, &args.launch);
    }
    let chosen = |run: &RunPlan| !left.contains(&run.name.as_str());
    let done_before = recorded(dir)?;
    let recorded_as = |run: &RunPlan| done_before.iter().find(|r| r.run == run.name);
    let total = plan.runs.len();
    let started = Instant::now();
    let todo: Vec<&RunPlan> = plan
        .runs
        .iter()
        .filter(|r| chosen(r) && recorded_as(r).is_none())
        .collect();
    let flops_todo: f64 = todo.iter().map(|r| r.flops()).sum();
    let mut flops_done = 0.0;
    let mut failed: Vec<&str> = Vec::new();
    for (i, run) in plan.runs.iter().enumerate() {
        if !chosen(run) {
            continue;
        }
        let label = format!("[{}/{total}] {}", i + 1, run.name);
        let outcome = match recorded_as(run) {
            Some(rec) => attempt(dir, run, || {
                complete_evals(dir, &plan, run, rec, &label, args.launch.threads)
            })
            .map(|()| None),
            None => {
                say!(
                    "{label}: N = {}, {} steps, C = {:.3e} FLOPs",
                    run.n(),
                    run.steps(),
                    run.flops()
                );
                attempt(dir, run, || run_one(dir, &plan, run, &args.launch)).map(Some)
            }
        };
        let rec = match outcome {
            Ok(Some(rec)) => rec,
            Ok(None) => continue,
            Err(e) if signals::is_stop(&e) => {
                return Err(e.context(format!(
                    "{label}: the sweep stopped on a signal; run the same `ecgfm sweep run` \
                     again to go on (this run continues from its checkpoint, finished runs stay)"
                )));
            }
            Err(e) if args.keep_going && damaged_data::is_damaged(&e) => {
                return Err(e.context(format!(
                    "{label}: stopping despite --keep-going: the data is damaged, and every run \
                     reading it would stop the same way; repair it (`ecgfm data inspect` checks \
                     a dataset) and run the sweep again (finished runs stay)"
                )));
            }
            Err(e) if args.keep_going => {
                say_err!(
                    "{label} failed: {}\n(going on: --keep-going)",
                    crate::error_text(&e)
                );
                failed.push(&run.name);
                continue;
            }
            Err(e) => return Err(e),
        };
        flops_done += run.flops();
        let elapsed = started.elapsed().as_secs_f64();
        // Time per FLOP so far (evaluation included) times the FLOPs still to train.
        let eta = elapsed * (flops_todo - flops_done) / flops_done;
        say!(
            "[{}/{total}] done {}: val loss {} | {:.0} s train + {:.0} s eval | sweep {:.0} s, \
             about {:.0} s to go",
            i + 1,
            run.name,
            rec.final_val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            rec.train_s,
            rec.eval_s,
            elapsed,
            eta.max(0.0)
        );
    }
    // Runs outside --only that have not finished (finished ones are not left for later).
    let finished = recorded(dir)?;
    let unfinished: Vec<&str> = left
        .iter()
        .copied()
        .filter(|name| !finished.iter().any(|r| r.run == *name))
        .collect();
    if !unfinished.is_empty() {
        say!(
            "{} of {total} runs left for a later `sweep run` (not in --only {}): {}",
            unfinished.len(),
            args.only.join(","),
            unfinished.join(", ")
        );
    }
    let report = args.report_to.clone().unwrap_or_else(|| dir.join("report"));
    if failed.is_empty() || !recorded(dir)?.is_empty() {
        crate::sweep_report::write(dir, &report)?;
    }
    if !failed.is_empty() {
        bail!(
            "{} of {total} runs failed: {} (their errors are above and in DIR/runs/NAME/{}); \
             run the sweep again to retry them (their training resumes from its checkpoints)",
            failed.len(),
            failed.join(", "),
            sweep_failure::FILE
        );
    }
    Ok(())
}

/// The names of the runs `--only PARTS` leaves out (those whose names have none of the parts,
/// `has_part`); an error when that is every run.
fn left_out_by_only<'a>(plan: &'a SweepPlan, only: &[String]) -> Result<Vec<&'a str>> {
    let names = plan.runs.iter().map(|r| r.name.as_str());
    let chosen = |name: &str| only.is_empty() || only.iter().any(|part| has_part(name, part));
    let left: Vec<&str> = names.clone().filter(|n| !chosen(n)).collect();
    if left.len() == plan.runs.len() {
        bail!(
            "--only {}: no run's name has any of these as a whole `-`-separated part; the runs \
             are {}",
            only.join(","),
            names.collect::<Vec<_>>().join(", ")
        );
    }
    Ok(left)
}

/// Whether run `name` has `part` as one or more whole `-`-separated components: `s1` is a
/// part of `synth-d1w32-steps-f1-s1` but not of `synth-d1w32-steps-f1-s10`.
fn has_part(name: &str, part: &str) -> bool {
    let name: Vec<&str> = name.split('-').collect();
    let part: Vec<&str> = part.split('-').collect();
    name.windows(part.len()).any(|w| w == part)
}

/// `work` for `run` of the sweep in `dir`, its failure kept in the run's folder.
fn attempt<T>(dir: &Path, run: &RunPlan, work: impl FnOnce() -> Result<T>) -> Result<T> {
    sweep_failure::tracked(&dir.join("runs").join(&run.name), work)
}

/// Runs `ecgfm sweep run-one` (a SLURM array task).
pub fn run_index(args: &SweepRunOneArgs) -> Result<()> {
    signals::catch(&signals::STOPS);
    let plan = folder_plan(&args.out)?;
    let run = plan.runs.get(args.index).with_context(|| {
        format!(
            "--index {}: the sweep has {} runs",
            args.index,
            plan.runs.len()
        )
    })?;
    let dir = &args.out;
    if let Some(rec) = recorded(dir)?.iter().find(|r| r.run == run.name) {
        let threads = args.launch.threads;
        return attempt(dir, run, || {
            complete_evals(dir, &plan, run, rec, &run.name, threads)
        });
    }
    attempt(dir, run, || run_one(dir, &plan, run, &args.launch)).map(|_| ())
}

/// The plan of the sweep in folder `dir`, from its `sweep.toml`.
pub(crate) fn folder_plan(dir: &Path) -> Result<SweepPlan> {
    let path = dir.join("sweep.toml");
    let spec = SweepSpec::read(&path)
        .with_context(|| format!("{} holds no sweep (ecgfm sweep run --out)", dir.display()))?;
    let origin = path.display().to_string();
    Ok(SweepPlan::expand(
        &spec,
        &origin,
        &dir.join("data"),
        &lead_mix_of,
    )?)
}

/// The rows of `split` of the dataset at `url` by number of present leads, its sources
/// weighted as `repeat` says; `None` where the manifest cannot be read (not ingested yet) or
/// predates the count.
pub(crate) fn lead_mix_of(
    url: &str,
    split: &str,
    repeat: &BTreeMap<String, f64>,
) -> Option<LeadMix> {
    crate::lead_mix::read(url, split, repeat).ok().flatten()
}

fn print_plan(plan: &SweepPlan) {
    say!(
        "sweep {}: {} runs ({} sizes x {} seeds x {} data fractions x {} datasets{})",
        plan.spec.name,
        plan.runs.len(),
        plan.sizes.len(),
        plan.spec.seeds.len(),
        plan.spec.data_fractions.len(),
        plan.spec.datasets.len(),
        plan.spec
            .budget
            .flops
            .as_ref()
            .map_or(String::new(), |f| format!(" x {} budgets", f.len()))
    );
    say!(
        "{:<40} {:>12} {:>8} {:>12} {:>10}",
        "run",
        "N",
        "steps",
        "C (FLOPs)",
        "lr"
    );
    // An iso-FLOPs run on a dataset not ingested yet is planned with 12-lead samples: its steps
    // change once the data is there (a sweep that runs ingests first, then plans again).
    let provisional = |run: &RunPlan| {
        run.budget.is_some() && ecgfm_sweep::expand::lead_mix(&run.config, &lead_mix_of).is_none()
    };
    let mut any_provisional = false;
    for run in &plan.runs {
        let mark = match provisional(run) {
            true => "*",
            false => "",
        };
        any_provisional |= !mark.is_empty();
        say!(
            "{:<40} {:>12} {:>8} {:>12.3e} {:>10.3e}",
            run.name,
            run.n(),
            format!("{}{mark}", run.steps()),
            run.flops(),
            run.config.optim.lr
        );
    }
    if any_provisional {
        say!(
            "* provisional: planned with 12-lead samples until the dataset is ingested (the \
             sweep ingests it first, then plans the steps from its leads)"
        );
    }
    for warning in &plan.warnings {
        say!("warning: {warning}");
    }
}

/// Creates the sweep folder with its `sweep.toml`, or checks that it holds the same sweep; with
/// `extend`, returns the folder's other sweep file for `sweep_extend` to check.
fn claim_folder(dir: &Path, text: &str, extend: bool) -> Result<Option<String>> {
    std::fs::create_dir_all(dir.join("runs"))
        .with_context(|| format!("creating the sweep folder {}", dir.display()))?;
    let path = dir.join("sweep.toml");
    if !path.exists() {
        write_whole(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(None);
    }
    earlier_sweep(dir, text, extend)
}

/// The folder's sweep file when it is not `text`: refused without `extend` (the folder holds
/// another sweep), returned with it for `sweep_extend` to check; `None` when the folder has no
/// sweep file or this one.
fn earlier_sweep(dir: &Path, text: &str, extend: bool) -> Result<Option<String>> {
    match std::fs::read_to_string(dir.join("sweep.toml")) {
        Ok(existing) if existing != text && !extend => bail!(
            "{} holds another sweep (its sweep.toml differs): resume it with the same file and \
             --set flags, grow it with --extend (the new file must plan its runs as before), or \
             choose another --out",
            dir.display()
        ),
        Ok(existing) if existing != text => Ok(Some(existing)),
        _ => Ok(None),
    }
}

/// What `claim_folder` and the extension's checks would refuse, checked for `--dry-run`
/// without writing: a folder holding another sweep, or (with `--extend`) a file that does not
/// plan and evaluate the folder's runs as before. Says what the run would do with the folder.
fn check_folder_dry(
    dir: &Path,
    text: &str,
    spec: &SweepSpec,
    origin: &str,
    extend: bool,
    plan: &SweepPlan,
) -> Result<()> {
    let Some(existing) = earlier_sweep(dir, text, extend)? else {
        return Ok(());
    };
    let old = sweep_extend::check_shared(dir, &existing, spec)?;
    let old_plan = SweepPlan::expand(&old, origin, &dir.join("data"), &lead_mix_of)?;
    let (kept, added) = sweep_extend::check_runs(dir, &old_plan, plan)?;
    say!(
        "would extend the sweep in {}: its {kept} runs kept, {added} added",
        dir.display()
    );
    Ok(())
}

/// The runs `DIR/sweep.jsonl` records, each as its last line says.
pub(crate) fn recorded(dir: &Path) -> Result<Vec<SweepRecord>> {
    let path = dir.join("sweep.jsonl");
    let (records, _) =
        record::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(records)
}

/// Refuses, before the sweep folder is claimed, an `[ingest]` dataset still to ingest whose
/// local source folder is missing, naming the `--set` that points the sweep at it.
fn check_ingest_sources(dir: &Path, spec: &SweepSpec) -> Result<()> {
    for (name, ingest) in &spec.ingest {
        let out = SweepSpec::resolve_data(&format!("@{name}"), &dir.join("data"));
        let source = ingest
            .source
            .strip_prefix("file://")
            .unwrap_or(&ingest.source);
        let local = ingest.source.starts_with("file://") || !ingest.source.contains("://");
        if !local || Path::new(&out).join("manifest.json").exists() || Path::new(source).is_dir() {
            continue;
        }
        let relative = match std::env::current_dir() {
            Ok(cwd) if Path::new(source).is_relative() => {
                format!(
                    " (a relative path is taken from the working directory, {})",
                    cwd.display()
                )
            }
            _ => String::new(),
        };
        bail!(
            "[ingest.{name}]: source folder {source} not found{relative}; give the folder \
             holding the {format} records with --set ingest.{name}.source=DIR",
            format = ingest.format
        );
    }
    Ok(())
}

/// Ingests the sweep's `[ingest]` datasets, merges its `[merge]` ones and writes the synthetic evaluation datasets its
/// tasks name, each once (a dataset with a manifest is done).
fn prepare_data(dir: &Path, spec: &SweepSpec) -> Result<()> {
    let done = |out: &str| Path::new(out).join("manifest.json").exists();
    for (name, ingest) in &spec.ingest {
        let out = SweepSpec::resolve_data(&format!("@{name}"), &dir.join("data"));
        if done(&out) {
            continue;
        }
        say!("ingesting {} into {out}", redact_url(&ingest.source));
        let args = ingest_command(ingest, &out);
        run_data_child(&args).with_context(|| {
            format!(
                "ingesting [ingest.{name}] (--set ingest.{name}.source=DIR or \
                 ingest.{name}.format=FORMAT changes what it reads)"
            )
        })?;
    }
    for (name, merge) in &spec.merge {
        let out = SweepSpec::resolve_data(&format!("@{name}"), &dir.join("data"));
        if done(&out) {
            continue;
        }
        let shown: Vec<String> = merge.datasets.iter().map(|d| redact_url(d)).collect();
        say!("merging {} into {out}", shown.join(", "));
        let inputs: Vec<String> = merge
            .datasets
            .iter()
            .map(|d| SweepSpec::resolve_data(d, &dir.join("data")))
            .collect();
        let mut args = vec!["data", "merge"];
        args.extend(inputs.iter().map(String::as_str));
        args.extend(["--out", &out]);
        run_data_child(&args).with_context(|| format!("merging [merge.{name}]"))?;
    }
    for eval in spec.eval.iter().filter(|e| e.data == "synth") {
        let out = eval_data(dir, eval);
        if done(&out) {
            check_eval_synth_seed(&out)?;
            continue;
        }
        say!("writing the labelled synthetic dataset {out}");
        let records = eval.synth_records.to_string();
        let seed = EVAL_SYNTH_SEED.to_string();
        let args = [
            "data",
            "synth",
            "--out",
            &out,
            "--records",
            &records,
            "--seed",
            &seed,
        ];
        run_data_child(&args).context("writing the synthetic evaluation dataset")?;
    }
    Ok(())
}

/// Refuses a synthetic evaluation dataset an earlier ecgfm wrote into the sweep folder with the
/// generator seed 0, whose samples the runs of seed 0 pretrained on.
fn check_eval_synth_seed(out: &str) -> Result<()> {
    let (store, root) = ecgfm_data::store::open_url(out)?;
    let manifest = Manifest::load(store.as_ref(), &root)?;
    let expected = synth_origin(EVAL_SYNTH_SEED);
    if manifest.sources.iter().all(|s| s.origin() == expected) {
        return Ok(());
    }
    bail!(
        "{out} was written by an earlier ecgfm with the generator seed the runs pretrain on \
         (before 2026-12-07): its records are samples the runs of seed 0 pretrained on, so their \
         evaluations would be optimistic; start the sweep again in a new folder (the evaluation \
         dataset is then written with a seed no run pretrains with)"
    )
}

/// Trains, evaluates and records one run.
fn run_one(dir: &Path, plan: &SweepPlan, run: &RunPlan, launch: &RunLaunch) -> Result<SweepRecord> {
    let rel = format!("runs/{}", run.name);
    let run_dir = dir.join(&rel);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let config_path = run_dir.join("pretrain.toml");
    write_whole(&config_path, run.config.to_toml_string().as_bytes())
        .with_context(|| format!("writing {}", config_path.display()))?;
    let (config_arg, out_arg) = (
        config_path.display().to_string(),
        run_dir.display().to_string(),
    );
    let resume = run_dir.join("config.toml").exists();
    let args = launch.pretrain_args(run.ranks, &config_arg, &out_arg, resume);
    run_child(&args).with_context(|| format!("run {}", run.name))?;

    let mut rec = SweepRecord::planned(run, &rel);
    let metrics = read_records(&run_dir.join("metrics.jsonl"))
        .with_context(|| format!("reading the metrics of {}", run.name))?;
    let last = metrics.last().context("the run logged no metrics")?;
    rec.final_train_loss = Some(last.loss as f64);
    let validated = metrics.iter().rev().find(|m| m.val_loss.is_some());
    rec.final_val_loss = validated.and_then(|m| m.val_loss).map(f64::from);
    rec.final_val_loss_by_source = validated.map_or_else(BTreeMap::new, |m| {
        let by_source = m.val_loss_by_source.iter();
        by_source.map(|(s, &v)| (s.clone(), f64::from(v))).collect()
    });
    rec.train_s = last.elapsed_s;
    rec.flops_done = last.flops;
    rec.validation_version = validation_version(&run_dir)
        .with_context(|| format!("reading the last checkpoint of {}", run.name))?;

    let eval_started = Instant::now();
    rec.eval = evaluate_run(dir, plan, run, &run_dir, launch.threads)?;
    rec.eval_s = eval_started.elapsed().as_secs_f64();
    append_record(dir, &rec)?;
    Ok(rec)
}

/// The validation set's definition the run at `run_dir` last measured on, from its newest
/// complete checkpoint (`None` for one written before it was kept, or without a checkpoint).
fn validation_version(run_dir: &Path) -> Result<Option<u32>> {
    let Some(newest) = ecgfm_trainer::checkpoint::latest_complete(run_dir)? else {
        return Ok(None);
    };
    Ok(ecgfm_trainer::checkpoint::load_state(&newest)?.validation_version)
}

pub(crate) fn append_record(dir: &Path, rec: &SweepRecord) -> Result<()> {
    let path = dir.join("sweep.jsonl");
    record::append(&path, rec).with_context(|| format!("appending to {}", path.display()))
}
