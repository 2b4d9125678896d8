//! What the verdict may call "outside the CI", and what it must not compare: under the null
//! (two sizes whose seed losses come from one distribution) the loss interval over seeds
//! excludes 0 about 5% of the time whatever the seed count; runs scored on different test sets
//! are not compared and named, nor are losses on different validation sets (in text or chart);
//! and a report made again from its published `results/` folder says the same as the original.

use ecgfm_sweep::analysis::{self, compare, AurocDiff, Group, SizeResult};
use ecgfm_sweep::charts;
use ecgfm_sweep::plot::Style;
use ecgfm_sweep::record::{append, eval_file, EvalResult, SweepRecord};
use ecgfm_trainer::eval::UnitScores;
use ecgfm_trainer::model::rng::SplitMix64;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-verdict-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn size(name: &str, n: usize, losses: Vec<f64>) -> SizeResult {
    SizeResult {
        size: name.into(),
        n,
        steps: 100,
        samples: 3200,
        flops: 1e12,
        validation_sets: vec![Some(2); losses.len()],
        losses,
        trivial_loss: None,
        probe: Vec::new(),
        finetune: Vec::new(),
        scratch: Vec::new(),
    }
}

/// How often, over 2000 seeded draws, the loss interval of two sizes whose `seeds` losses are
/// normal with the same mean (standard deviations `sd`) excludes 0.
fn false_positive_rate(seeds: [usize; 2], sd: [f64; 2]) -> f64 {
    let mut rng = SplitMix64::new(7 + seeds[0] as u64 * 10 + seeds[1] as u64);
    let draws = 2000;
    let mut outside = 0;
    for _ in 0..draws {
        let mut losses =
            |k: usize| -> Vec<f64> { (0..seeds[k]).map(|_| 0.9 + sd[k] * rng.normal()).collect() };
        let (small, large) = (losses(0), losses(1));
        let group = Group {
            dataset: "synth".into(),
            budget: None,
            fraction: 1.0,
            sizes: vec![size("a", 1000, small), size("b", 8000, large)],
        };
        let ci = compare(&group, 0, 1, &[])
            .loss_ci
            .expect("two seeds a side");
        if !ci.contains(0.0) {
            outside += 1;
        }
    }
    outside as f64 / draws as f64
}

#[test]
fn under_the_null_the_loss_difference_is_outside_the_ci_about_5_percent_of_the_time() {
    // A bootstrap over 2 to 5 seeds said "outside" 33% to 12% of the time; the Welch t
    // interval is at or a little below its nominal 5% (conservative with 2 seeds a side).
    for (seeds, sd) in [
        ([2, 2], [0.01, 0.01]),
        ([3, 3], [0.01, 0.01]),
        ([5, 5], [0.01, 0.01]),
        ([3, 5], [0.005, 0.02]),
    ] {
        let rate = false_positive_rate(seeds, sd);
        assert!(
            (0.015..=0.07).contains(&rate),
            "{seeds:?} seeds, sd {sd:?}: false 'outside the CI' rate {rate}"
        );
    }
    // One seed a side: no interval.
    let group = Group {
        dataset: "synth".into(),
        budget: None,
        fraction: 1.0,
        sizes: vec![size("a", 1000, vec![1.0]), size("b", 8000, vec![0.9, 0.8])],
    };
    assert!(compare(&group, 0, 1, &[]).loss_ci.is_none());
}

/// Scored units of `records` test records (two classes, two records a patient), the scores
/// drawn from `seed`.
fn units(records: u32, seed: u64) -> UnitScores {
    let mut rng = SplitMix64::new(seed);
    let targets: Vec<u8> = (0..records)
        .flat_map(|i| [u8::from(i % 3 == 0), u8::from(i % 3 != 0)])
        .collect();
    let scores = targets
        .iter()
        .map(|&t| (0.5 * f64::from(t) + rng.next_f64()) as f32)
        .collect();
    UnitScores {
        records: (0..records).collect(),
        targets,
        scores,
        patients: (0..records).map(|r| r / 2).collect(),
    }
}

/// A run of size `size` (seed `seed`) whose probe was scored on `test_records` records, its
/// result file written under `dir`.
fn run(dir: &Path, size: usize, seed: u64, test_records: u32) -> SweepRecord {
    let name = format!("synth-s{size}-steps-f1-s{seed}");
    let auroc = 0.7 + 0.05 * size as f64;
    let run_dir = format!("runs/{name}");
    std::fs::create_dir_all(dir.join(&run_dir)).unwrap();
    let file = serde_json::json!({"results": [{
        "protocol": "probe", "fraction": 1.0, "macro_auroc": auroc,
        "macro_auroc_ci": [auroc - 0.02, auroc + 0.02],
        "test_units": units(test_records, 10 * size as u64 + seed),
    }]});
    let path = eval_file(&dir.join(&run_dir), "synth", "probe");
    std::fs::write(path, file.to_string()).unwrap();
    SweepRecord {
        run: name,
        dataset: "synth".into(),
        size: format!("s{size}"),
        budget: None,
        fraction: 1.0,
        seed,
        dim: 32 * size,
        depth: size,
        n: 10_000 * size,
        params: 20_000 * size,
        steps: 100,
        batch: 32,
        lr: 1e-3,
        samples: 3200,
        tokens: 0,
        flops: 1e12 * size as f64,
        flops_done: None,
        final_train_loss: Some(1.0 - 0.05 * size as f64),
        final_val_loss: Some(1.0 - 0.05 * size as f64 + 0.001 * seed as f64),
        final_val_loss_by_source: Default::default(),
        trivial_loss: None,
        epoch_windows: None,
        validation_version: Some(2),
        train_s: 1.0,
        eval_s: 1.0,
        run_dir,
        eval: vec![EvalResult {
            task: "synth".into(),
            protocol: "probe".into(),
            fraction: 1.0,
            macro_auroc: auroc,
            macro_auroc_ci: Some([auroc - 0.02, auroc + 0.02]),
            val_macro_auroc: None,
            units: None,
        }],
    }
}

/// The report of `records` in `dir` (written to `dir/report`), and its text.
fn report(dir: &Path, records: &[SweepRecord]) -> String {
    for r in records {
        append(&dir.join("sweep.jsonl"), r).unwrap();
    }
    let written = ecgfm_sweep::report::write(dir, &dir.join("report"), "Made by a test.").unwrap();
    std::fs::read_to_string(written.report).unwrap()
}

/// The lines of `md` from the verdict to the table of runs.
fn verdict(md: &str) -> &str {
    &md[md.find("## Verdict").unwrap()..md.find("## Runs").unwrap()]
}

#[test]
fn runs_scored_on_different_test_sets_are_not_compared() {
    // The larger size re-evaluated on a 300-record test set, the smaller on 200 records.
    let dir = temp_dir("other-units");
    let records = [run(&dir, 1, 0, 200), run(&dir, 2, 0, 300)];
    let md = report(&dir, &records);
    let line = md
        .lines()
        .find(|l| l.starts_with("- Downstream (synth, linear probe)"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        line.contains("scored on different test sets: not comparable"),
        "{line}"
    );
    assert!(!line.contains("+0.050"), "no difference is given: {line}");
    let answer = md.lines().find(|l| l.starts_with("- Answer:")).unwrap();
    assert!(
        answer.contains("AUROC on synth scored on different test sets: not comparable"),
        "{answer}"
    );
    // No `ecgfm compare` command that would fail.
    assert!(!md.contains("```sh\necgfm compare"), "{md}");

    let mut read = records.to_vec();
    ecgfm_sweep::record::read_result_files(&mut read, &dir);
    let warnings = analysis::test_set_warnings(&read);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(
            "synth (probe): the runs were scored on 2 different test sets \
             (another dataset, split, label vocabulary or --score-by): \
             [synth-s1-steps-f1-s0] and [synth-s2-steps-f1-s0]"
        ),
        "{}",
        warnings[0]
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Two seeds of one size scored on different test sets: their mean compares with nothing.
    let dir = temp_dir("other-units-seeds");
    let records = [
        run(&dir, 1, 0, 200),
        run(&dir, 1, 1, 200),
        run(&dir, 2, 0, 200),
        run(&dir, 2, 1, 300),
    ];
    let md = report(&dir, &records);
    assert!(
        verdict(&md).contains("scored on different test sets: not comparable"),
        "{md}"
    );
    assert!(!md.contains("```sh\necgfm compare"), "{md}");
    let mut read = records.to_vec();
    ecgfm_sweep::record::read_result_files(&mut read, &dir);
    assert_eq!(analysis::test_set_warnings(&read).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();

    // The same test set everywhere: compared, and no warning.
    let dir = temp_dir("same-units");
    let records = [run(&dir, 1, 0, 200), run(&dir, 2, 0, 200)];
    let md = report(&dir, &records);
    assert!(!md.contains("different test sets"), "{md}");
    assert!(md.contains("```sh\necgfm compare"), "{md}");
    let mut read = records.to_vec();
    ecgfm_sweep::record::read_result_files(&mut read, &dir);
    assert!(analysis::test_set_warnings(&read).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs whose validation losses were measured on different validation sets are named, each set
/// with its runs, in one warning; runs without a validation loss do not count, and one set
/// everywhere gives none.
#[test]
fn runs_validated_on_different_validation_sets_are_warned_of() {
    let dir = temp_dir("validation-sets");
    let mut records = vec![
        run(&dir, 1, 0, 200),
        run(&dir, 2, 0, 200),
        run(&dir, 3, 0, 200),
    ];
    assert_eq!(analysis::validation_set_warning(&records), None);
    records[2].final_val_loss = None;
    records[2].validation_version = None;
    assert_eq!(analysis::validation_set_warning(&records), None);
    records[1].validation_version = None;
    let warning = analysis::validation_set_warning(&records).expect("two sets");
    assert!(
        warning.starts_with(
            "the runs' validation losses were measured on 2 different validation sets: \
             [synth-s1-steps-f1-s0] (version 2) and [synth-s2-steps-f1-s0] (a set of before \
             2026-12-04 or not recorded); "
        ),
        "{warning}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Three sizes, two seeds each, in `dir`; the largest size's runs measured on the validation
/// set of before 2026-12-04 where `mixed`.
fn three_sizes(dir: &Path, mixed: bool) -> Vec<SweepRecord> {
    let mut records: Vec<SweepRecord> = (1..=3)
        .flat_map(|size| [0, 1].map(|seed| run(dir, size, seed, 200)))
        .collect();
    if mixed {
        records[4].validation_version = None;
        records[5].validation_version = None;
    }
    records
}

/// Validation losses measured on different validation sets are neither compared nor ranked nor
/// fitted: the verdict, the answer, the size table and the fits say so, where the same runs on
/// one set are compared, ranked and fitted.
#[test]
fn losses_measured_on_different_validation_sets_are_not_compared() {
    let not_fitted = format!("not fitted: {}", analysis::OTHER_VALIDATION_SETS);
    let one_dir = temp_dir("one-validation-set");
    let one = report(&one_dir, &three_sizes(&one_dir, false));
    let said = verdict(&one);
    assert!(
        said.contains("Lowest validation loss at this budget: s3"),
        "{said}"
    );
    assert!(
        said.contains("s3 reaches 0.8505 vs 0.9505 for s1"),
        "{said}"
    );
    assert!(!one.contains("validation sets"), "{one}");

    let mixed_dir = temp_dir("two-validation-sets");
    let mixed = report(&mixed_dir, &three_sizes(&mixed_dir, true));
    let said = verdict(&mixed);
    let loss = said
        .lines()
        .find(|l| l.starts_with("- Validation loss:"))
        .unwrap_or_else(|| panic!("{said}"));
    assert_eq!(
        loss,
        "- Validation loss: s3 0.8505 vs s1 0.9505: validation losses measured on different \
         validation sets, not comparable."
    );
    assert!(said.contains("so they are not ranked"), "{said}");
    assert!(!said.contains("Lowest validation loss"), "{said}");
    let answer = said.lines().find(|l| l.starts_with("- Answer:")).unwrap();
    assert!(
        answer.contains("gives a val loss measured on another validation set (not compared)"),
        "{answer}"
    );
    // The size table: s2 against s1 shares the set, s3 against s1 does not.
    let row = |size: &str| {
        let start = format!("| {size} | ");
        let line = said.lines().find(|l| l.starts_with(&start));
        line.unwrap_or_else(|| panic!("{said}")).to_string()
    };
    assert!(row("s2").contains("0.9005 (-0.0500 ["), "{}", row("s2"));
    assert!(
        row("s3").contains("0.8505 (different validation sets: not comparable)"),
        "{}",
        row("s3")
    );
    assert!(mixed.contains(&not_fitted), "{mixed}");
    assert!(!one.contains(&not_fitted));

    // At an iso-FLOP budget the profile is left out, and so is L(N, D).
    let at_budget = |mut r: SweepRecord| {
        r.budget = Some(1e13);
        r
    };
    let one = analysis::analyse(
        three_sizes(&one_dir, false)
            .into_iter()
            .map(at_budget)
            .collect(),
    );
    assert_eq!(one.isoflop[0].profiles.len(), 1);
    assert!(one.isoflop[0].other_validation_sets.is_empty());
    assert_ne!(
        one.loss_vs_nd[0].1.as_ref().err().map(String::as_str),
        Some(analysis::OTHER_VALIDATION_SETS)
    );
    let records: Vec<SweepRecord> = three_sizes(&mixed_dir, true)
        .into_iter()
        .map(at_budget)
        .collect();
    let mixed = analysis::analyse(records);
    assert!(mixed.isoflop[0].profiles.is_empty());
    assert_eq!(mixed.isoflop[0].other_validation_sets, [1e13]);
    assert_eq!(
        mixed.loss_vs_nd[0].1.as_ref().unwrap_err(),
        analysis::OTHER_VALIDATION_SETS
    );
    // The loss-vs-N chart joins one set's means into a line and draws its parabola; the mixed
    // group's runs are markers only, labelled as not comparable.
    let styles = |a: &analysis::Analysis| -> Vec<(Option<String>, Style)> {
        let chart = charts::loss_vs_n(a);
        chart
            .series
            .into_iter()
            .map(|s| (s.label, s.style))
            .collect()
    };
    let one_styles = styles(&one);
    assert!(one_styles.iter().any(|(_, s)| *s == Style::Line));
    assert!(one_styles.iter().any(|(_, s)| *s == Style::Dashed));
    let mixed_styles = styles(&mixed);
    assert_eq!(mixed_styles.len(), 1, "{mixed_styles:?}");
    let (label, style) = &mixed_styles[0];
    assert_eq!(*style, Style::Markers);
    assert!(
        label.as_deref().unwrap().ends_with(&format!(
            "({}: not comparable)",
            analysis::OTHER_VALIDATION_SETS
        )),
        "{label:?}"
    );
    std::fs::remove_dir_all(&one_dir).unwrap();
    std::fs::remove_dir_all(&mixed_dir).unwrap();
}

#[test]
fn a_report_made_again_from_its_results_folder_says_the_same() {
    let dir = temp_dir("republish");
    std::fs::write(dir.join("sweep.toml"), "name = \"t\"\n").unwrap();
    let records = [
        run(&dir, 1, 0, 200),
        run(&dir, 1, 1, 200),
        run(&dir, 2, 0, 200),
        run(&dir, 2, 1, 200),
    ];
    let original = report(&dir, &records);
    // The result files give each unit's patient: the intervals draw patients.
    assert!(verdict(&original).contains("over seeds and test patients"));
    let results = dir.join("report/results");
    assert_eq!(
        std::fs::read_to_string(results.join("sweep.toml")).unwrap(),
        "name = \"t\"\n"
    );
    // A copy of results/ alone, far from the run folders.
    let copy = temp_dir("republish-copy");
    for entry in ecgfm_test_support::files_below(&results) {
        let to = copy.join(entry.strip_prefix(&results).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, to).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let out = copy.join("again");
    let written = ecgfm_sweep::report::write(&copy, &out, "Made by a test.").unwrap();
    assert_eq!(written.results.written, 4);
    assert!(written.results.left_out.is_empty());
    let again = std::fs::read_to_string(written.report).unwrap();
    assert_eq!(verdict(&again), verdict(&original));
    std::fs::remove_dir_all(&copy).unwrap();
}

/// `record` with a from-scratch result on its probe's test set (`test_records` records), its
/// result file written under `dir`.
fn with_scratch(dir: &Path, mut record: SweepRecord, test_records: u32) -> SweepRecord {
    let auroc = 0.6;
    let file = serde_json::json!({"results": [{
        "protocol": "scratch", "fraction": 1.0, "macro_auroc": auroc,
        "macro_auroc_ci": [auroc - 0.03, auroc + 0.03],
        "test_units": units(test_records, 999 + record.seed),
    }]});
    let path = eval_file(&dir.join(&record.run_dir), "synth", "scratch");
    std::fs::write(path, file.to_string()).unwrap();
    record.eval.push(EvalResult {
        task: "synth".into(),
        protocol: "scratch".into(),
        fraction: 1.0,
        macro_auroc: auroc,
        macro_auroc_ci: Some([auroc - 0.03, auroc + 0.03]),
        val_macro_auroc: None,
        units: None,
    });
    record
}

/// Scratch trains from a seed: its interval over one seed's test set leaves the seed-to-seed
/// spread out, and the verdict labels it as `ecgfm eval` does; with two scratch seeds and two
/// probe seeds it gives the interval over seeds too.
#[test]
fn the_interval_against_scratch_says_what_it_resamples() {
    let dir = temp_dir("scratch-one-seed");
    let records = [
        run(&dir, 1, 0, 200),
        run(&dir, 1, 1, 200),
        with_scratch(&dir, run(&dir, 2, 0, 200), 200),
        run(&dir, 2, 1, 200),
    ];
    let md = report(&dir, &records);
    let line = (md.lines())
        .find(|l| l.trim_start().starts_with("From scratch"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        line.contains("paired (test-set noise only; training seed not resampled)"),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = temp_dir("scratch-two-seeds");
    let records = [
        run(&dir, 1, 0, 200),
        run(&dir, 1, 1, 200),
        with_scratch(&dir, run(&dir, 2, 0, 200), 200),
        with_scratch(&dir, run(&dir, 2, 1, 200), 200),
    ];
    let md = report(&dir, &records);
    let line = (md.lines())
        .find(|l| l.trim_start().starts_with("From scratch"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        line.contains("paired over seeds and test patients") && !line.contains("test-set noise"),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A probe result on task `t` of AUROC `mean` with test-set interval `ci`, over two seeds, with
/// no scored units (so no paired interval: the verdict judges the two intervals' overlap).
fn probe(mean: f64, ci: [f64; 2]) -> analysis::TaskAuroc {
    analysis::TaskAuroc {
        task: "t".into(),
        mean,
        val_mean: None,
        ci: Some(ci),
        runs: vec!["s0".into(), "s1".into()],
        units: Vec::new(),
    }
}

/// Two results whose intervals do not overlap are apart whichever lies above: a larger size
/// whose interval lies wholly below the smaller's is as far outside as one wholly above.
#[test]
fn intervals_apart_either_way_round_are_apart() {
    let (low, high) = (probe(0.70, [0.68, 0.72]), probe(0.80, [0.78, 0.82]));
    let near = probe(0.71, [0.69, 0.73]);
    for (a, b, apart) in [
        (&low, &high, true),
        (&high, &low, true),
        (&low, &near, false),
        (&near, &low, false),
    ] {
        let d = AurocDiff::new("t", a, b);
        assert_eq!(d.apart, Some(apart), "{:?} against {:?}", b.ci, a.ci);
        assert_eq!(d.outside(), Some(apart));
    }
}
