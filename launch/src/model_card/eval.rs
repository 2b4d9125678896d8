//! The model card's evaluation section: each `ecgfm eval` result given to `ecgfm export` as one
//! table row per protocol (macro AUROC and F1 with their intervals), the pretrained encoder
//! against the same network from scratch by paired intervals where a file has both, and notes
//! (another step than the package's, the device, the result's warnings).

use super::CardInputs;
use anyhow::{bail, Context, Result};
use ecgfm_trainer::checkpoint;
use ecgfm_trainer::eval::{against_scratch, ScoredResult};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One `ecgfm eval` result file.
pub struct EvalResult {
    pub path: PathBuf,
    pub value: serde_json::Value,
}

impl EvalResult {
    pub fn read(path: &Path) -> Result<EvalResult> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the evaluation result {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not an `ecgfm eval` result (JSON)", path.display()))?;
        if !value["results"].is_array() || !value["vocabulary"].is_string() {
            bail!(
                "{} is not an `ecgfm eval` result (it has no `vocabulary` and `results`)",
                path.display()
            );
        }
        Ok(EvalResult {
            path: path.to_path_buf(),
            value,
        })
    }
}

/// `0.812 [0.751, 0.870]`: a value and its interval (`-` where absent).
fn with_ci(value: &serde_json::Value, ci: &serde_json::Value) -> String {
    let number = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.3}"));
    let Some(value) = number(value) else {
        return "-".to_string();
    };
    match (number(&ci[0]), number(&ci[1])) {
        (Some(low), Some(high)) => format!("{value} [{low}, {high}]"),
        _ => value,
    }
}

pub(super) fn eval_section(card: &mut String, inputs: &CardInputs) {
    card.push_str("## Evaluation\n\n");
    if inputs.evals.is_empty() {
        card.push_str(
            "Not evaluated in this export. `ecgfm eval --run DIR` measures linear-probe, \
             fine-tune and from-scratch macro AUROC with bootstrap confidence intervals; \
             `ecgfm export --eval RESULT.json` reports them here.\n\n",
        );
        return;
    }
    card.push_str(
        "Results of `ecgfm eval` on each task's test split, with 95% bootstrap confidence \
         intervals over the test patients (each resample draws patients with all their \
         records' windows; a source without patient ids counts each record as a patient). \
         `scratch` is the same network trained from a random \
         initialisation: the baseline the pretrained encoder (`probe`, `finetune`) is judged \
         against.\n\n\
         | task | data | protocol | training labels | macro AUROC [95% CI] | macro F1, one-vs-rest at validation thresholds [95% CI] | \
         test windows |\n|---|---|---|---|---|---|---|\n",
    );
    // An evaluation repeated in two result files (the run's eval/ keeps each) is listed once.
    let (mut notes, mut paired, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for eval in inputs.evals {
        let v = &eval.value;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
        let task = text(&v["vocabulary"]);
        if let Some(step) = v["step"].as_u64().filter(|s| *s != inputs.ckpt.state.step) {
            let kept =
                checkpoint::is_complete(&checkpoint::checkpoint_dir(&inputs.ckpt.run_dir, step));
            notes.push(format!(
                "{task} ({}) evaluated {}, not this package's step {}",
                eval.path.display(),
                match kept {
                    true => format!("this run's checkpoint of step {step}"),
                    false => format!(
                        "a checkpoint of step {step}, which this run no longer keeps (so not \
                         checked to be this run's)"
                    ),
                },
                inputs.ckpt.state.step
            ));
        }
        if let (Some(device), Some(precision)) = (v["device"].as_str(), v["precision"].as_str()) {
            notes.push(format!(
                "{task}: evaluated on {device}, {precision} matrix products"
            ));
        }
        for warning in v["warnings"].as_array().into_iter().flatten() {
            notes.push(format!("{task}: {}", text(warning)));
        }
        paired.extend(against_scratch_lines(v, &task));
        for r in v["results"].as_array().into_iter().flatten() {
            let fraction = percent(r["fraction"].as_f64());
            rows.push(format!(
                "| {task} | {} | {} | {fraction} | {} | {} | {} |",
                text(&v["data"]),
                text(&r["protocol"]),
                with_ci(&r["macro_auroc"], &r["macro_auroc_ci"]),
                with_ci(&f1(r)["value"], &f1(r)["ci"]),
                r["test_windows"]
                    .as_u64()
                    .map_or("-".to_string(), |n| n.to_string()),
            ));
        }
    }
    for lines in [&mut rows, &mut paired, &mut notes] {
        let mut seen = std::collections::HashSet::new();
        lines.retain(|line| seen.insert(line.clone()));
    }
    for row in rows {
        let _ = writeln!(card, "{row}");
    }
    card.push('\n');
    if !paired.is_empty() {
        card.push_str(
            "Pretrained against the same network from scratch: the macro AUROC difference with \
             its paired 95% bootstrap interval over the same test patients (`ecgfm compare`).\n\n",
        );
        for line in paired {
            let _ = writeln!(card, "- {line}");
        }
        card.push('\n');
    }
    for note in notes {
        let _ = writeln!(card, "- {note}");
    }
    card.push('\n');
}

/// A result's one-vs-rest thresholded macro F1 (`macro_f1` in files written before its rename).
fn f1(result: &serde_json::Value) -> &serde_json::Value {
    match &result["macro_f1_ovr_thresholded"] {
        serde_json::Value::Null => &result["macro_f1"],
        f1 => f1,
    }
}

/// A share of the training labels, as a percentage.
fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(
        || "-".to_string(),
        |f| format!("{}%", (f * 1e4).round() / 1e2),
    )
}

/// The pretrained results of a result file (`probe`, `finetune`) against its `scratch` result
/// at the same label fraction, where both kept their scored test units.
fn against_scratch_lines(v: &serde_json::Value, task: &str) -> Vec<String> {
    let results: Vec<ScoredResult> =
        serde_json::from_value(v["results"].clone()).unwrap_or_default();
    against_scratch(&results, 1000, 0)
        .iter()
        .map(|x| {
            let [low, high] = x.interval;
            let noise = x.noise.label().map_or(String::new(), |l| format!(" ({l})"));
            format!(
                "{task}, {} with {} of the training labels: {:+.3} [{low:+.3}, {high:+.3}]{noise}",
                x.result.protocol,
                percent(Some(x.result.fraction)),
                x.diff
            )
        })
        .collect()
}
