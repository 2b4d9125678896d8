//! The evaluations of a sweep's runs: which ones a run gets (each task's protocols, from scratch
//! on the first seed where asked), which are still missing from its folder, and running them as
//! `ecgfm eval` subprocesses whose result files are read back into the run's record (a
//! from-scratch result another run of the same architecture and seed has is copied instead, into
//! the run's `eval/` folder too, as `ecgfm eval` would keep it).

use anyhow::{Context, Result};
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store::{self, redact_url};
use ecgfm_sweep::record::{self, EvalResult, SweepRecord};
use ecgfm_sweep::spec::EvalSpec;
use ecgfm_sweep::{RunPlan, SweepPlan, SweepSpec};
use ecgfm_trainer::eval::Vocabulary;
use ecgfm_trainer::write_whole::write_whole;
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

use crate::eval_copy::RunCopy;
use crate::pretrained::load_pretrained;
use crate::pretraining_check;
use crate::sweep_child::run_child;
use crate::sweep_run::append_record;

/// The evaluations the sweep runs after `run`, in its file's order: each task's protocols, and
/// from scratch on the first seed where the task asks for it.
pub(crate) fn evaluations<'a>(plan: &'a SweepPlan, run: &RunPlan) -> Vec<(&'a EvalSpec, &'a str)> {
    let first_seed = run.seed == plan.spec.seeds[0];
    let per_task = |eval: &'a EvalSpec| {
        let scratch = (eval.scratch && first_seed).then_some("scratch");
        let protocols = eval.protocols.iter().map(String::as_str).chain(scratch);
        protocols.map(move |protocol| (eval, protocol))
    };
    plan.spec.eval.iter().flat_map(per_task).collect()
}

/// The evaluations of `run` (in `run_dir`) whose result file is not there yet.
pub(crate) fn missing_evaluations<'a>(
    plan: &'a SweepPlan,
    run: &RunPlan,
    run_dir: &Path,
) -> Vec<(&'a EvalSpec, &'a str)> {
    let mut planned = evaluations(plan, run);
    planned.retain(|(eval, protocol)| !record::eval_file(run_dir, &eval.task, protocol).exists());
    planned
}

/// Every evaluation of `run` (those whose result file exists are read, not run again).
pub(crate) fn evaluate_run(
    dir: &Path,
    plan: &SweepPlan,
    run: &RunPlan,
    run_dir: &Path,
    threads: Option<usize>,
) -> Result<Vec<EvalResult>> {
    let mut results = Vec::new();
    for (eval, protocol) in evaluations(plan, run) {
        if protocol == "scratch" {
            copy_scratch(dir, plan, run, run_dir, eval)?;
        }
        results.extend(evaluate(dir, run_dir, run, eval, protocol, threads)?);
    }
    Ok(results)
}

/// Training from scratch reads nothing of a run but its architecture (the encoder starts from
/// the seed's initialisation, not the run's weights), so every run of the same `[model]` and
/// seed gets the same from-scratch result: where another run of the sweep (data fraction,
/// budget or dataset) already has it, `run` takes a copy of that result file instead of
/// training it again. Does nothing when `run`'s own file exists or no other run's does.
fn copy_scratch(
    dir: &Path,
    plan: &SweepPlan,
    run: &RunPlan,
    run_dir: &Path,
    eval: &EvalSpec,
) -> Result<()> {
    let out = record::eval_file(run_dir, &eval.task, "scratch");
    if out.exists() {
        return Ok(());
    }
    let same_baseline = |other: &&RunPlan| {
        other.name != run.name && other.seed == run.seed && other.config.model == run.config.model
    };
    let mut donors = plan.runs.iter().filter(same_baseline).map(|other| {
        let other_dir = dir.join("runs").join(&other.name);
        (other, record::eval_file(&other_dir, &eval.task, "scratch"))
    });
    let Some((donor, file)) = donors.find(|(_, file)| file.exists()) else {
        return Ok(());
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let donated: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let json = scratch_report_of(donated, run_dir)?;
    // Like `ecgfm eval`: the run's `eval/` copy (which `ecgfm export` reports) first, then the
    // result file, whose existence means the evaluation is done.
    let run_copy = RunCopy::prepare(run_dir)?;
    let name = out.file_name().context("a result file has a name")?;
    if let Some(copy) = run_copy.path_for(&name.to_string_lossy(), &json) {
        write_report(&copy, &json)?;
    }
    write_report(&out, &json)?;
    say!(
        "{}: {} from scratch copied from {} (the same architecture and seed train the same \
         baseline)",
        run.name,
        eval.task,
        donor.name
    );
    Ok(())
}

/// Another run's from-scratch result file as `ecgfm eval` of the run in `run_dir` would write
/// it: the fields naming the evaluated checkpoint (its folder, step, weights and pretraining)
/// become the run's own, and `scratch_copied_from` names the checkpoint whose evaluation
/// trained the baseline. Its numbers, counts and warnings are the donor's.
fn scratch_report_of(mut donated: Value, run_dir: &Path) -> Result<Value> {
    let own = load_pretrained(run_dir, None)?;
    donated["scratch_copied_from"] = donated["checkpoint"].take();
    donated["checkpoint"] = own.dir.display().to_string().into();
    donated["step"] = own.step.into();
    donated["weights_sha256"] = own.weights_sha256.clone().into();
    donated["pretraining"] = serde_json::to_value(pretraining_check::describe(&own))
        .context("describing the run's pretraining")?;
    Ok(donated)
}

fn write_report(path: &Path, json: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json).context("serialising a result file")?;
    write_whole(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// A recorded run: evaluates it on what the sweep file asks for and it lacks (tasks or
/// protocols an extension added) and records it again with every result, or says it is done.
pub(crate) fn complete_evals(
    dir: &Path,
    plan: &SweepPlan,
    run: &RunPlan,
    rec: &SweepRecord,
    label: &str,
    threads: Option<usize>,
) -> Result<()> {
    let run_dir = dir.join(&rec.run_dir);
    let missing: Vec<String> = missing_evaluations(plan, run, &run_dir)
        .into_iter()
        .map(|(eval, protocol)| format!("{} {protocol}", eval.task))
        .collect();
    if missing.is_empty() {
        say!("{label} already done");
        return Ok(());
    }
    say!(
        "{label} already trained; evaluating it on {}",
        missing.join(", ")
    );
    let started = Instant::now();
    let mut rec = rec.clone();
    rec.eval = evaluate_run(dir, plan, run, &run_dir, threads)?;
    rec.eval_s += started.elapsed().as_secs_f64();
    append_record(dir, &rec)
}

/// `ecgfm eval` of one run on one task under one protocol (skipped when its result exists).
fn evaluate(
    dir: &Path,
    run_dir: &Path,
    run: &RunPlan,
    eval: &EvalSpec,
    protocol: &str,
    threads: Option<usize>,
) -> Result<Vec<EvalResult>> {
    let out = record::eval_file(run_dir, &eval.task, protocol);
    // `ecgfm eval` writes its result file last and whole: it exists once the evaluation ran.
    if !out.exists() {
        let args = eval_command(
            &run_dir.display().to_string(),
            &eval_data(dir, eval),
            eval,
            protocol,
            run.seed,
            &out.display().to_string(),
            threads,
        );
        run_child(&args).with_context(|| format!("evaluating {} on {}", run.name, eval.task))?;
    }
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", out.display()))?;
    let results: Vec<EvalResult> = record::parse_eval_file(&json, &eval.task)
        .into_iter()
        .filter(|r| r.protocol == protocol)
        .collect();
    if results.is_empty() {
        say!(
            "warning: {} holds no {protocol} result with a macro AUROC (see its warnings): \
             {} has no {} result",
            out.display(),
            run.name,
            eval.task
        );
    }
    Ok(results)
}

/// The arguments of the `ecgfm eval` the sweep runs for one evaluation: the sweep's own flags,
/// then the task's `args` as they are.
pub(crate) fn eval_command(
    run_dir: &str,
    data: &str,
    eval: &EvalSpec,
    protocol: &str,
    seed: u64,
    out: &str,
    threads: Option<usize>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "eval",
        "--run",
        run_dir,
        "--data",
        data,
        "--labels",
        &eval.task,
        "--protocol",
        protocol,
        "--fractions",
        "1",
        "--seed",
        &seed.to_string(),
        "--out",
        out,
    ]
    .map(String::from)
    .into();
    if let Some(t) = threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    args.extend(eval.args.iter().cloned());
    args
}

/// Checks each evaluation dataset before the first run trains, since every run's evaluation
/// would fail once it has: one that holds no label of its task is refused (exit 78), naming the
/// vocabularies it holds; one whose manifest cannot be read now earns a warning, no refusal,
/// since it may yet be written (by another job) before then.
pub(crate) fn check_eval_data(dir: &Path, spec: &SweepSpec) -> Result<()> {
    for eval in &spec.eval {
        let url = eval_data(dir, eval);
        let read = store::open_url(&url)
            .and_then(|(object_store, root)| Manifest::load(object_store.as_ref(), &root));
        let manifest = match read {
            Ok(manifest) => manifest,
            Err(e) => {
                say!(
                    "warning: [[eval]] task {}: the dataset {} cannot be read now ({e}): each \
                     run's evaluation will fail unless it can be read by the time the run has \
                     trained",
                    eval.task,
                    redact_url(&url)
                );
                continue;
            }
        };
        let vocabulary = Vocabulary::parse(&eval.task)?;
        crate::eval::check_vocabulary(&manifest, &vocabulary, &url).with_context(|| {
            format!(
                "[[eval]] task {} (every run's evaluation would fail once it trained)",
                eval.task
            )
        })?;
    }
    Ok(())
}

/// The labelled dataset an eval task reads: a URL, an ingested `@NAME`, or the sweep's
/// generated synthetic set.
pub(crate) fn eval_data(dir: &Path, eval: &EvalSpec) -> String {
    if eval.data == "synth" {
        dir.join("data")
            .join(format!("synth-{}", eval.synth_records))
            .display()
            .to_string()
    } else {
        SweepSpec::resolve_data(&eval.data, &dir.join("data"))
    }
}
