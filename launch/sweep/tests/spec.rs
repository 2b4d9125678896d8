//! Sweep files: what they expand to (sizes, steps per budget, learning rates, run names) and
//! the clear errors bad ones get.

use ecgfm_sweep::expand::{non_embedding_params, LeadMix};
use ecgfm_sweep::{SweepPlan, SweepSpec};
use ecgfm_trainer::model::FlopCounter;
use ecgfm_trainer::ModelStats;
use std::collections::BTreeMap;
use std::path::Path;

const FAMILY: &str = r#"
name = "t"
seeds = [0, 1]
[sizes]
family = { depths = [1, 2, 4], aspect_ratio = 32, head_dim = 32 }
[lr]
rule = "inverse-width"
base = 1e-3
base_width = 64
[budget]
kind = "iso-flops"
flops = [1e12, 4e12]
warmup_fraction = 0.1
[base]
train = { batch_size = 8 }
"#;

const SYNTH_EVAL: &str = "[[eval]]\ntask = \"synth\"\ndata = \"synth\"\n";

fn plan(text: &str) -> SweepPlan {
    let spec = SweepSpec::parse(text, "t.toml").unwrap();
    SweepPlan::expand(&spec, "t.toml", Path::new("/sweep/data"), &|_, _, _| None).unwrap()
}

fn error(text: &str) -> String {
    match SweepSpec::parse(text, "bad.toml") {
        Ok(spec) => SweepPlan::expand(&spec, "bad.toml", Path::new("data"), &|_, _, _| None)
            .expect_err("the sweep should be rejected")
            .to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_family_at_fixed_aspect_ratio_expands_to_iso_flop_runs() {
    let p = plan(FAMILY);
    let names: Vec<&str> = p.sizes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["d1w32", "d2w64", "d4w128"]);
    // 3 sizes x 2 budgets x 2 seeds, none too short.
    assert_eq!(p.runs.len(), 12, "{:?}", p.warnings);
    for run in &p.runs {
        let m = &run.config.model;
        assert_eq!(m.dim, 32 * m.depth);
        assert_eq!(m.heads, m.depth);
        // Blocks of 12 D^2 + 13 D parameters plus the final norm.
        assert_eq!(
            run.n(),
            m.depth * (12 * m.dim * m.dim + 13 * m.dim) + 2 * m.dim
        );
        assert_eq!(run.n(), non_embedding_params(m));
        let c = run.budget.unwrap();
        let per_step = ModelStats::new(m).train_flops * 8.0;
        assert_eq!(run.steps(), (c / per_step).round() as u64);
        assert!((run.flops() - c).abs() < 0.5 * per_step);
        assert_eq!(run.config.optim.lr, 1e-3 * 64.0 / m.dim as f64);
        assert_eq!(
            run.config.optim.warmup_steps,
            (run.steps() as f64 * 0.1).round() as u64
        );
        assert_eq!(run.samples(), run.steps() * 8);
        assert_eq!(run.tokens(), run.samples() * 12 * 30);
        assert_eq!(run.config.data.source, "synth");
    }
    // The larger model trains fewer steps at the same budget.
    let steps = |size: &str| {
        p.runs
            .iter()
            .find(|r| r.size == size && r.budget == Some(1e12))
            .unwrap()
            .steps()
    };
    assert!(steps("d1w32") > steps("d4w128"));
    let mut names: Vec<&str> = p.runs.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 12, "run names must be unique");
    assert!(p.runs.iter().any(|r| r.name == "synth-d4w128-C4e12-f1-s1"));
}

#[test]
fn the_base_configs_source_repeats_choose_the_lead_mix_planned() {
    let text = FAMILY
        .replace(
            "seeds = [0, 1]",
            "seeds = [0, 1]\ndatasets = [\"/data/merged\"]",
        )
        .replace(
            "train = { batch_size = 8 }",
            "train = { batch_size = 8 }\ndata = { repeat = { ptbxl = 3 } }",
        );
    let spec = SweepSpec::parse(&text, "t.toml").unwrap();
    // Half the windows are single-lead, half 12-lead once PTB-XL's are read three times.
    let mix_of = |_: &str, _: &str, repeat: &BTreeMap<String, f64>| -> Option<LeadMix> {
        (repeat == &BTreeMap::from([("ptbxl".to_string(), 3.0)]))
            .then(|| BTreeMap::from([(1, 300.0), (12, 300.0)]))
    };
    let p = SweepPlan::expand(&spec, "t.toml", Path::new("/sweep/data"), &mix_of).unwrap();
    assert!(
        p.warnings.iter().all(|w| !w.contains("unknown")),
        "{:?}",
        p.warnings
    );
    for run in &p.runs {
        let m = &run.config.model;
        let half = FlopCounter::new(m).mean_sample_flops(&BTreeMap::from([(1, 0.5), (12, 0.5)]));
        assert_eq!(run.sample_flops, half, "{}", run.name);
        assert_eq!(run.config.data.repeat["ptbxl"], 3.0);
    }
}

#[test]
fn a_dataset_of_single_lead_rows_is_planned_at_their_cost() {
    let text = FAMILY.replace("[sizes]", "datasets = [\"@cinc\", \"@old\"]\n[sizes]")
        + "[ingest.cinc]\nsource = \"x\"\nformat = \"cinc2017\"\n\
           [ingest.old]\nsource = \"y\"\nformat = \"ptbxl\"\n";
    let spec = SweepSpec::parse(&text, "t.toml").unwrap();
    // The ingested cinc's train split: single-lead rows only; old's mix is unknown.
    let mix_of = |url: &str, split: &str, repeat: &BTreeMap<String, f64>| -> Option<LeadMix> {
        (url == "/sweep/data/cinc" && split == "train" && repeat.is_empty())
            .then(|| BTreeMap::from([(1, 7665.0)]))
    };
    let p = SweepPlan::expand(&spec, "t.toml", Path::new("/sweep/data"), &mix_of).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("dataset old") && w.contains("full 12-lead")),
        "{:?}",
        p.warnings
    );
    assert!(!p.warnings.iter().any(|w| w.contains("dataset cinc")));
    for run in &p.runs {
        let m = &run.config.model;
        let full = ModelStats::new(m).train_flops;
        let expected = match run.dataset.as_str() {
            "cinc" => FlopCounter::new(m).batch_flops(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            _ => full,
        };
        assert_eq!(run.sample_flops, expected, "{}", run.name);
        let c = run.budget.unwrap();
        assert_eq!(run.steps(), (c / (expected * 8.0)).round() as u64);
    }
    // Single-lead samples cost a size less than a twelfth of a full one, and the share
    // differs by size (the decoder's attention weighs most in the smallest): planning with
    // full samples would give the sizes unequal compute.
    let ratio = |size: &str| {
        let run = p
            .runs
            .iter()
            .find(|r| r.size == size && r.dataset == "cinc")
            .unwrap();
        ModelStats::new(&run.config.model).train_flops / run.sample_flops
    };
    assert!(ratio("d1w32") > ratio("d4w128") && ratio("d4w128") > 12.0);
}

#[test]
fn ranks_multiply_the_global_batch() {
    let one = plan(FAMILY);
    let two = plan(&FAMILY.replace("seeds = [0, 1]", "seeds = [0, 1]\nranks = 2"));
    for (a, b) in one.runs.iter().zip(&two.runs) {
        assert_eq!((a.ranks, b.ranks), (1, 2));
        assert_eq!(b.global_batch(), 16);
        // Same budget, twice the samples per step: half the steps.
        assert!((b.steps() as f64 - a.steps() as f64 / 2.0).abs() <= 1.0);
        assert_eq!(b.samples(), b.steps() * 16);
        assert_eq!(b.flops_per_step(), 2.0 * a.flops_per_step());
    }
}

#[test]
fn too_short_runs_are_left_out_with_a_warning() {
    let p = plan(&FAMILY.replace("flops = [1e12, 4e12]", "flops = [4e10, 4e12]"));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("d4w128") && w.contains("left out")));
    assert!(!p
        .runs
        .iter()
        .any(|r| r.size == "d4w128" && r.budget == Some(4e10)));
    // With min_steps = 0 a budget too small for one step leaves the sizes out all the same.
    let p = plan(&FAMILY.replace("flops = [1e12, 4e12]", "flops = [1e8, 4e12]\nmin_steps = 0"));
    for size in ["d1w32", "d2w64", "d4w128"] {
        let said = format!("size {size} at C = 1.000e8 would train 0 steps");
        assert!(
            p.warnings.iter().any(|w| w.contains(&said)),
            "{said} in {:?}",
            p.warnings
        );
    }
    assert!(p
        .runs
        .iter()
        .all(|r| r.budget == Some(4e12) && r.steps() > 0));
    let err = error(&FAMILY.replace("flops = [1e12, 4e12]", "flops = [1e8]\nmin_steps = 0"));
    assert!(
        err.contains("expands to no run: size d1w32 at C = 1.000e8 would train 0 steps"),
        "{err}"
    );
}

/// Without budget.warmup_fraction every size keeps the trainer's warmup of 40 steps, and a size
/// the budget trains fewer steps than that would end inside its warmup, never at its peak
/// learning rate (the audit's d2w64: 24 steps at 57.5% of its peak): the sweep is refused, naming
/// the size and the setting; with the fraction the same budget plans.
#[test]
fn a_size_that_would_end_inside_its_warmup_is_refused() {
    let fixed = FAMILY.replace("warmup_fraction = 0.1\n", "");
    let short = fixed.replace("flops = [1e12, 4e12]", "flops = [1.5e11, 4e12]");
    let err = error(&short);
    assert!(
        err.contains("size d4w128 (") && err.contains("ends inside its warmup"),
        "{err}"
    );
    assert!(err.contains("set budget.warmup_fraction"), "{err}");
    let p = plan(&FAMILY.replace("flops = [1e12, 4e12]", "flops = [1.5e11, 4e12]"));
    assert!(p
        .runs
        .iter()
        .any(|r| r.size == "d4w128" && r.budget == Some(1.5e11)));
    // Runs that all leave the fixed warmup plan as before.
    assert!(!plan(&fixed).runs.is_empty());
}

#[test]
fn equal_steps_presets_with_fractions_a_table_and_ingested_data() {
    let p = plan(
        r#"
name = "e"
data_fractions = [1.0, 0.5]
datasets = ["synth", "@ptbxl", "@both"]
[sizes]
presets = ["nano", "tiny"]
[lr]
rule = "table"
table = { nano = 1e-3, tiny = 5e-4 }
[budget]
kind = "equal-steps"
steps = 100
[ingest.ptbxl]
source = "../shared/data/ptbxl-500"
format = "ptbxl"
[ingest.cinc]
source = "../shared/data/cinc2017"
format = "cinc2017"
[merge.both]
datasets = ["@ptbxl", "@cinc"]
"#,
    );
    assert_eq!(p.runs.len(), 12);
    let merged = p.runs.iter().find(|r| r.dataset == "both").unwrap();
    assert_eq!(merged.config.data.source, "/sweep/data/both");
    let half = p
        .runs
        .iter()
        .find(|r| r.size == "tiny" && r.fraction == 0.5 && r.dataset == "ptbxl")
        .unwrap();
    assert_eq!(half.steps(), 50);
    assert_eq!(half.config.optim.lr, 5e-4);
    assert_eq!(half.config.data.source, "/sweep/data/ptbxl");
    assert_eq!(half.name, "ptbxl-tiny-steps-f0p5-s0");
    assert!(p.warnings.iter().all(|w| !w.contains("decade")));
}

#[test]
fn bad_sweep_files_get_clear_errors() {
    let cases = [
        (
            FAMILY.replace("[1e12, 4e12]", "[4e12, 1e12]"),
            "must increase",
        ),
        (
            FAMILY.replace("kind = \"iso-flops\"", "kind = \"isoflops\""),
            "budget.kind",
        ),
        (
            FAMILY.replace("seeds = [0, 1]", "seeds = [0, 0]"),
            "repeat a seed",
        ),
        (
            FAMILY.replace("rule = \"inverse-width\"", "rule = \"table\""),
            "[lr.table]",
        ),
        (
            FAMILY.replace("train = { batch_size = 8 }", "model = { dim = 64 }"),
            "base.model.dim",
        ),
        (
            FAMILY.replace("train = { batch_size = 8 }", "train = { steps = 5 }"),
            "base.train.steps",
        ),
        // What [lr] and budget.warmup_fraction set (a base lr was dropped silently).
        (
            FAMILY.replace("train = { batch_size = 8 }", "optim = { lr = 5e-4 }"),
            "base.optim.lr is set by the sweep ([lr]): take it out",
        ),
        (
            FAMILY.replace("train = { batch_size = 8 }", "optim = { warmup_steps = 5 }"),
            "base.optim.warmup_steps is set by the sweep (budget.warmup_fraction)",
        ),
        (
            FAMILY.replace("[sizes]", "data_fractions = [0.5]\n[sizes]"),
            "equal-steps budgets only",
        ),
        (
            FAMILY.replace("head_dim = 32", "head_dim = 32, depths2 = [1]"),
            "unknown field",
        ),
        (
            FAMILY.replace("seeds = [0, 1]", "seeds = [0]\ndatasets = [\"@nowhere\"]"),
            "[ingest.nowhere] or [merge.nowhere]",
        ),
        (
            FAMILY.replace("[sizes]", "[merge.m]\ndatasets = [\"@a\", \"b\"]\n[sizes]"),
            "[merge.m]: @a names no [ingest.a] table",
        ),
        (
            FAMILY.replace("[sizes]", "[merge.m]\ndatasets = [\"a\"]\n[sizes]"),
            "[merge.m] needs two or more datasets",
        ),
        (
            FAMILY.replace("[base]", "[base.optim]\nmin_lr = 1.0\n[base.x]"),
            "size d1w32",
        ),
        (
            format!("{FAMILY}{SYNTH_EVAL}{SYNTH_EVAL}"),
            "[[eval]] task \"synth\" appears twice",
        ),
        (
            FAMILY.replace("[1e12, 4e12]", "[1e12, 1e40]"),
            "d1w32 at C = 1.000e40 would train",
        ),
        // Budgets whose labels round alike would give two runs one name.
        (
            FAMILY.replace("[1e12, 4e12]", "[4e12, 4.004e12]"),
            "two grid points have the run name synth-d1w32-C4e12-f1-s0 (C = 4e12, fraction 1, \
             seed 0 and C = 4.004e12, fraction 1, seed 0)",
        ),
    ];
    for (text, expected) in cases {
        let err = error(&text);
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
}

/// A size the budget trains exactly `min_steps` steps is planned ("fewer than min_steps" leaves
/// a size out); one step more of minimum leaves it out, named in `left_out`.
#[test]
fn a_size_at_exactly_min_steps_is_planned() {
    let base = FAMILY.replace("flops = [1e12, 4e12]", "flops = [1e12]\nmin_steps = 0");
    let steps = plan(&base)
        .runs
        .iter()
        .find(|r| r.size == "d4w128")
        .map(|r| r.steps())
        .unwrap();
    let at =
        |min_steps: u64| plan(&base.replace("min_steps = 0", &format!("min_steps = {min_steps}")));
    let exactly = at(steps);
    assert!(exactly.runs.iter().any(|r| r.size == "d4w128"));
    assert!(exactly.left_out.is_empty(), "{:?}", exactly.left_out);
    let above = at(steps + 1);
    assert!(!above.runs.iter().any(|r| r.size == "d4w128"));
    assert_eq!(
        above
            .left_out
            .iter()
            .map(|l| (l.size.as_str(), l.steps))
            .collect::<Vec<_>>(),
        [("d4w128", steps)]
    );
}

/// A family's width is aspect_ratio x depth rounded to a multiple of head_dim, as its
/// documentation says: 48 x 1 is 1.5 heads of 32, rounded to 2 (width 64), and 40 x 1 is 1.25,
/// rounded to 1 (width 32).
#[test]
fn family_widths_round_to_the_nearest_multiple_of_the_head_size() {
    for (aspect, name) in [(48, "d1w64"), (40, "d1w32")] {
        let text = FAMILY.replace(
            "depths = [1, 2, 4], aspect_ratio = 32",
            &format!("depths = [1, 2], aspect_ratio = {aspect}"),
        );
        let p = plan(&text);
        assert_eq!(p.sizes[0].name, name, "aspect ratio {aspect}");
    }
}
