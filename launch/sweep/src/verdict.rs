//! The verdict of `report.md`, one group (dataset and budget) at a time: does the largest encoder
//! give a lower validation loss and a higher downstream AUROC than the smallest, by how much, is
//! the difference outside the CI (for losses, the Welch t interval over seeds; for AUROCs, the
//! paired interval over the test patients (or records), and over seeds where both sizes have two
//! or more), where a middle size scores best, how the largest compares with it, and which sizes
//! are still on the plateau of the trivial solution. Written from the numbers of `analysis`; where they
//! are too few, or the runs were scored on different test sets or validated on different
//! validation sets, it says so.

use crate::analysis::{self, compare, AurocDiff, Comparison, Group, OTHER_VALIDATION_SETS};
use crate::expand::LeftOut;
use crate::report::human;
use ecgfm_trainer::eval::IntervalNoise;
use std::fmt::Write as _;

/// How the answer names the largest size of a group whose budget left out none.
const LARGEST: &str = "the largest encoder";

/// "d3w96 (19 steps, fewer than min_steps 30)", for each size the group's budget left out.
fn left_out_list(left_out: &[&LeftOut]) -> String {
    let each = |l: &&LeftOut| l.describe();
    left_out.iter().map(each).collect::<Vec<_>>().join(", ")
}

/// The verdict of one group: larger vs smaller on val loss and downstream AUROC; `left_out`:
/// the sizes its budget left out.
pub(crate) fn verdict(md: &mut String, g: &Group, tasks: &[String], left_out: &[&LeftOut]) {
    let _ = writeln!(md, "### {}\n", g.label());
    if g.sizes.len() < 2 {
        let _ = writeln!(
            md,
            "Only one size finished here ({}){}: nothing to compare; too few data to say \
             whether a larger encoder helps.\n",
            g.sizes.first().map_or("none", |s| s.size.as_str()),
            match left_out.is_empty() {
                true => String::new(),
                false => format!("; left out at this budget: {}", left_out_list(left_out)),
            }
        );
        return;
    }
    let last = g.sizes.len() - 1;
    let c = compare(g, 0, last, tasks);
    let (s, l) = (&g.sizes[0], &g.sizes[last]);
    let _ = writeln!(
        md,
        "Sizes {} (N = {} to {}), seeds per size: {}.\n",
        g.sizes
            .iter()
            .map(|s| s.size.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        human(s.n as f64),
        human(l.n as f64),
        g.sizes
            .iter()
            .map(|s| s.losses.len().to_string())
            .collect::<Vec<_>>()
            .join("/")
    );
    if !left_out.is_empty() {
        let _ = writeln!(
            md,
            "Left out at this budget: {}; the largest size compared here is {}, not the \
             sweep's largest.\n",
            left_out_list(left_out),
            l.size
        );
    }
    let _ = writeln!(md, "- Validation loss: {}", loss_sentence(g, &c));
    if g.several_validation_sets() {
        let _ = writeln!(
            md,
            "  The sizes' validation losses were measured on different validation sets, so they \
             are not ranked (`ecgfm sweep status` names the runs of each set; train the older \
             runs again in a new folder)."
        );
    } else {
        loss_ranking(md, g);
    }
    plateau_sentence(md, g);
    for task in tasks {
        let said = "Downstream";
        downstream(md, said, (task, "linear probe"), (s, l), &c.probe, |r| {
            r.probe(task)
        });
        downstream(md, said, (task, "fine-tuned"), (s, l), &c.finetune, |r| {
            r.finetune(task)
        });
        if let Some(scratch) = l.scratch(task) {
            let against = |what: &str, t: Option<&analysis::TaskAuroc>| {
                t.map(|t| {
                    let d = AurocDiff::new(task, scratch, t);
                    if d.other_test_sets() {
                        return format!("the {what} was {OTHER_TEST_SETS}");
                    }
                    let paired = against_scratch_interval(&d);
                    format!("the {what} is {:+.3}{paired}", d.diff)
                })
            };
            let claims: Vec<String> = [
                against("pretrained probe", l.probe(task)),
                against("fine-tuned encoder", l.finetune(task)),
            ]
            .into_iter()
            .flatten()
            .collect();
            if claims.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "  From scratch, {} reaches {:.3}{}: {} against it.",
                l.size,
                scratch.mean,
                ci(scratch),
                claims.join(", ")
            );
        }
    }
    // Where a middle size scores best, the largest against it; the probe's gap, for the answer.
    let mut peaks = Vec::new();
    for task in tasks {
        for (protocol, result) in [
            ("linear probe", analysis::SizeResult::probe as ResultOf),
            ("fine-tuned", analysis::SizeResult::finetune),
        ] {
            let Some((best, chosen)) = middle_peak(g, |r| result(r, task)) else {
                continue;
            };
            let b = &g.sizes[best];
            let (Some(top), Some(largest)) = (result(b, task), result(l, task)) else {
                continue;
            };
            let d = AurocDiff::new(task, top, largest);
            let said = format!("Against the best size {}, {}", chosen.words(), b.size);
            let diffs = std::slice::from_ref(&d);
            downstream(md, &said, (task, protocol), (b, l), diffs, |r| {
                result(r, task)
            });
            // A difference that rounds to zero at the digits shown leaves the answer as it is.
            if protocol == "linear probe" && d.diff <= -0.0005 && !d.other_test_sets() {
                peaks.push(format!(
                    "the best probe on {task} {} is {}'s, and the largest's is {:+.3} against it \
                     ({})",
                    chosen.words(),
                    b.size,
                    d.diff,
                    certainty(&d)
                ));
            }
        }
    }
    let peaks = if peaks.is_empty() {
        String::new()
    } else {
        format!(" But {}.", peaks.join("; "))
    };
    let largest = match left_out.is_empty() {
        true => LARGEST,
        false => "the largest size trained at this budget",
    };
    let _ = writeln!(md, "- Answer: {}{peaks}\n", answer(&c, largest));
    crate::size_table::against_smallest(md, g, tasks);
}

/// A size's result on one task under one protocol.
type ResultOf = for<'r> fn(&'r analysis::SizeResult, &str) -> Option<&'r analysis::TaskAuroc>;

/// What a best size was chosen by.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ChosenBy {
    /// Its validation AUROC: the test set then judges a choice it did not make.
    Validation,
    /// Its test AUROC, where the results hold no validation AUROC (records of before
    /// 2026-12-07): the test set judges its own choice, which no interval allows for.
    Test,
}

impl ChosenBy {
    fn words(self) -> &'static str {
        match self {
            ChosenBy::Validation => "by validation AUROC",
            ChosenBy::Test => {
                "by test AUROC (no validation AUROC recorded: chosen on the test set that \
                 judges it, so optimistic)"
            }
        }
    }
}

/// The size with the highest mean validation `result` (test `result` where a size has no
/// validation AUROC), when it is neither the smallest nor the largest (there the comparison of
/// those two already says it). Chosen on validation, a size that peaks by chance on the test
/// set is not picked and then judged on that same test set.
fn middle_peak(
    g: &Group,
    result: impl Fn(&analysis::SizeResult) -> Option<&analysis::TaskAuroc>,
) -> Option<(usize, ChosenBy)> {
    let scored: Vec<(usize, &analysis::TaskAuroc)> = (g.sizes.iter().enumerate())
        .filter_map(|(i, s)| Some((i, result(s)?)))
        .collect();
    let by_validation: Option<Vec<(usize, f64)>> = (scored.iter())
        .map(|&(i, r)| Some((i, r.val_mean?)))
        .collect();
    let (chosen, scores) = match by_validation {
        Some(scores) => (ChosenBy::Validation, scores),
        None => (
            ChosenBy::Test,
            scored.iter().map(|&(i, r)| (i, r.mean)).collect(),
        ),
    };
    let (best, _) = (scores.into_iter()).max_by(|a, b| a.1.total_cmp(&b.1))?;
    (best != 0 && best != g.sizes.len() - 1).then_some((best, chosen))
}

/// What the verdict says of two results scored on different test sets.
const OTHER_TEST_SETS: &str = "scored on different test sets: not comparable";

/// How sure a difference is, in the answer's words: where a size has one seed, an interval
/// over the test set alone says nothing of the seed-to-seed spread, and the words say so.
fn certainty(d: &AurocDiff) -> &'static str {
    match d.outside() {
        Some(true) => outside_words(d),
        Some(false) => "within the CI",
        None => "no CI",
    }
}

/// "outside the CI" where the interval over seeds excludes 0; else qualified, since what was
/// judged is over the test set alone, blind to how much the difference varies from seed to
/// seed: with one seed a size, or (both sizes with two or more seeds) where the result files
/// keep no scored units, so there is no interval over seeds and only the two sizes' test-set
/// intervals (each the mean of its seeds' ends) were found apart.
fn outside_words(d: &AurocDiff) -> &'static str {
    if d.over_seeds.is_some() {
        "outside the CI"
    } else if d.one_seed() {
        "outside the test-set CI (one seed a size: seed-to-seed spread unknown)"
    } else {
        "outside the test-set CIs (no scored units: no interval over seeds)"
    }
}

/// The paired interval of a pretrained result against `scratch` (`d`), as ` [low, high] paired
/// ...`: over seeds and the test set where both have two or more seeds; else over the test set
/// given the seeds, labelled as such, since scratch's result moves with its training seed
/// (`paired::seed_dependent`), which that interval does not resample (as `ecgfm eval` labels
/// it); nothing without an interval.
fn against_scratch_interval(d: &AurocDiff) -> String {
    match (&d.over_seeds, &d.paired) {
        (Some(ci), _) => format!(
            " [{:+.3}, {:+.3}] paired over seeds and {}",
            ci.low,
            ci.high,
            d.drawn()
        ),
        (None, Some(ci)) => format!(
            " [{:+.3}, {:+.3}] paired ({})",
            ci.low,
            ci.high,
            IntervalNoise::TestSetOnly
                .label()
                .expect("test-set-only intervals are labelled")
        ),
        (None, None) => String::new(),
    }
}

/// A result's interval as ` [low, high]`, or nothing.
fn ci(t: &analysis::TaskAuroc) -> String {
    t.ci.map_or(String::new(), |c| format!(" [{:.3}, {:.3}]", c[0], c[1]))
}

/// The `large` size against the `small` one on one task under one protocol (`diffs`: that
/// protocol's comparisons, by task), as a line that starts with `what`.
fn downstream(
    md: &mut String,
    what: &str,
    (task, protocol): (&str, &str),
    (small, large): (&analysis::SizeResult, &analysis::SizeResult),
    diffs: &[AurocDiff],
    result: impl Fn(&analysis::SizeResult) -> Option<&analysis::TaskAuroc>,
) {
    let (Some(a), Some(b), Some(d)) = (
        result(small),
        result(large),
        diffs.iter().find(|d| d.task == task),
    ) else {
        return;
    };
    if d.other_test_sets() {
        let _ = writeln!(
            md,
            "- {what} ({task}, {protocol}): {} {:.3}{} vs {} {:.3}{}: {OTHER_TEST_SETS} (their \
             result files hold other test units: another dataset, split, label vocabulary or \
             --score-by; evaluate them again on one test set).",
            large.size,
            b.mean,
            ci(b),
            small.size,
            a.mean,
            ci(a),
        );
        return;
    }
    let which = |ci: &crate::fit::bootstrap::Interval| {
        if ci.contains(0.0) {
            "includes 0: not established".to_string()
        } else {
            format!("excludes 0: {}", outside_words(d))
        }
    };
    let judged = match (&d.paired, &d.over_seeds, d.apart) {
        (Some(ci), Some(seeds), _) => format!(
            "paired 95% interval over the {units} [{:+.3}, {:+.3}], over seeds and {units} \
             [{:+.3}, {:+.3}], which {}",
            ci.low,
            ci.high,
            seeds.low,
            seeds.high,
            which(seeds),
            units = d.drawn()
        ),
        (Some(ci), None, _) => format!(
            "paired 95% interval over the {} [{:+.3}, {:+.3}], which {}",
            d.drawn(),
            ci.low,
            ci.high,
            which(ci)
        ),
        (None, _, Some(true)) => format!("the intervals do not overlap: {}", outside_words(d)),
        (None, _, Some(false)) => "the intervals overlap: within the CI, not established".into(),
        (None, _, None) => "no intervals to judge it by".into(),
    };
    let _ = writeln!(
        md,
        "- {what} ({task}, {protocol}): {} {:.3}{} vs {} {:.3}{}: {:+.3}, {judged}.",
        large.size,
        b.mean,
        ci(b),
        small.size,
        a.mean,
        ci(a),
        d.diff
    );
}

/// Names the sizes that ended on the plateau of the trivial solution: they have not begun to
/// reconstruct, so the comparison says which sizes leave it sooner, not which model ECGs better.
fn plateau_sentence(md: &mut String, g: &Group) {
    let stuck: Vec<&analysis::SizeResult> = g.sizes.iter().filter(|s| s.on_plateau()).collect();
    let Some(trivial) = stuck.first().and_then(|s| s.trivial_loss) else {
        return;
    };
    let names = stuck
        .iter()
        .map(|s| format!("{} ({:.4}, {} steps)", s.size, s.mean_loss(), s.steps))
        .collect::<Vec<_>>()
        .join(", ");
    let all = stuck.len() == g.sizes.len();
    let _ = writeln!(
        md,
        "  On the plateau: {names} {} at most 1% below {trivial:.4} (or above it), the loss of \
         predicting each masked patch's mean. {} not begun to reconstruct: at this budget the \
         comparison says which sizes leave the plateau sooner, not which models ECGs better; \
         give {} more steps.",
        if stuck.len() == 1 { "ends" } else { "end" },
        if stuck.len() == 1 {
            "It has"
        } else {
            "They have"
        },
        if all { "every size" } else { "them" },
    );
}

/// Which size has the lowest validation loss, and where the loss does not fall with size.
fn loss_ranking(md: &mut String, g: &Group) {
    let worse: Vec<String> = g
        .sizes
        .windows(2)
        .filter(|w| w[1].mean_loss() >= w[0].mean_loss())
        .map(|w| {
            format!(
                "{} ({:.4}) is not below {} ({:.4})",
                w[1].size,
                w[1].mean_loss(),
                w[0].size,
                w[0].mean_loss()
            )
        })
        .collect();
    let best = g
        .sizes
        .iter()
        .min_by(|a, b| a.mean_loss().total_cmp(&b.mean_loss()))
        .expect("two sizes");
    let _ = writeln!(
        md,
        "  Lowest validation loss at this budget: {} (N = {}, {:.4}).",
        best.size,
        human(best.n as f64),
        best.mean_loss()
    );
    if worse.is_empty() {
        let _ = writeln!(md, "  The loss falls at every step up in size.");
    } else {
        let _ = writeln!(
            md,
            "  The loss does not fall at every step up in size: {}.",
            worse.join("; ")
        );
    }
}

fn loss_sentence(g: &Group, c: &Comparison) -> String {
    let (s, l) = (&g.sizes[c.small], &g.sizes[c.large]);
    if c.other_validation_sets {
        return format!(
            "{} {:.4} vs {} {:.4}: {OTHER_VALIDATION_SETS}, not comparable.",
            l.size,
            l.mean_loss(),
            s.size,
            s.mean_loss()
        );
    }
    let direction = if c.loss_diff < 0.0 { "lower" } else { "higher" };
    let mut out = format!(
        "{} reaches {:.4} vs {:.4} for {}: {:.4} {direction} ({:+.1}%).",
        l.size,
        l.mean_loss(),
        s.mean_loss(),
        s.size,
        c.loss_diff.abs(),
        100.0 * c.loss_diff / s.mean_loss()
    );
    match &c.loss_ci {
        Some(ci) => {
            let outside = !ci.contains(0.0);
            let _ = write!(
                out,
                " 95% Welch t interval of the difference over seeds: [{:+.4}, {:+.4}], {}.",
                ci.low,
                ci.high,
                if outside {
                    "which excludes 0: outside the CI"
                } else {
                    "which includes 0: not established"
                }
            );
        }
        None => out.push_str(
            " With one seed on a side (either size) its seed-to-seed spread is unknown, so \
             whether this is outside the noise cannot be said (run more seeds).",
        ),
    }
    out
}

/// The answer line; `largest` names the group's largest size.
fn answer(c: &Comparison, largest: &str) -> String {
    let loss = match (&c.loss_ci, c.loss_diff < 0.0) {
        _ if c.other_validation_sets => {
            "a val loss measured on another validation set (not compared)"
        }
        (Some(ci), true) if !ci.contains(0.0) => "lower val loss (outside the CI)",
        (Some(_), true) => "lower val loss, but within the seed noise",
        (None, true) => "lower val loss (one seed: no CI)",
        (Some(ci), false) if !ci.contains(0.0) => "higher val loss (outside the CI)",
        (_, false) => "no lower val loss",
    };
    let downstream: Vec<String> = c
        .probe
        .iter()
        .map(|d| {
            let (task, diff) = (&d.task, d.diff);
            if d.other_test_sets() {
                return format!("AUROC on {task} {OTHER_TEST_SETS}");
            }
            let sure = certainty(d);
            // A difference that rounds to zero at the three decimals shown is none.
            let word = match diff {
                d if d >= 0.0005 => "higher",
                d if d > -0.0005 => "the same",
                _ if d.outside() == Some(true) => "lower",
                _ => "no higher",
            };
            format!("{word} AUROC on {task} ({diff:+.3}, {sure})")
        })
        .collect();
    let downstream = if downstream.is_empty() {
        "no downstream evaluation ran".to_string()
    } else {
        downstream.join(", ")
    };
    format!("compared with the smallest, {largest} gives {loss}; {downstream}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::bootstrap::Interval;
    use ecgfm_trainer::eval::PairError;

    fn comparison(diff: f64) -> Comparison {
        Comparison {
            small: 0,
            large: 1,
            loss_diff: 0.01,
            loss_ci: None,
            other_validation_sets: false,
            probe: vec![AurocDiff {
                task: "t".into(),
                diff,
                paired: None,
                over_seeds: None,
                apart: Some(false),
                seeds: [2, 2],
                unpaired: None,
                by_patient: false,
            }],
            finetune: Vec::new(),
        }
    }

    /// A size of mean loss `loss` (two seeds) and, where given, a probe on task `t` of test mean
    /// `probe.0` and validation mean `probe.1`.
    fn size(name: &str, n: usize, loss: f64, probe: Option<(f64, f64)>) -> analysis::SizeResult {
        let probe = probe.map(|(mean, val)| analysis::TaskAuroc {
            task: "t".into(),
            mean,
            val_mean: Some(val),
            ci: Some([mean - 0.05, mean + 0.05]),
            runs: vec![format!("{name}-s0"), format!("{name}-s1")],
            units: Vec::new(),
        });
        analysis::SizeResult {
            size: name.into(),
            n,
            steps: 100,
            samples: 3200,
            flops: 1e12,
            losses: vec![loss, loss],
            validation_sets: vec![Some(2), Some(2)],
            trivial_loss: None,
            probe: probe.into_iter().collect(),
            finetune: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn group(sizes: Vec<analysis::SizeResult>) -> Group {
        Group {
            dataset: "synth".into(),
            budget: Some(1e12),
            fraction: 1.0,
            sizes,
        }
    }

    /// Equal mean losses at consecutive sizes are not a fall: the verdict names the pair.
    #[test]
    fn an_equal_loss_one_size_up_is_not_a_fall() {
        let g = group(vec![
            size("s1", 1000, 0.9, None),
            size("s2", 2000, 0.8, None),
            size("s3", 4000, 0.8, None),
        ]);
        let mut md = String::new();
        verdict(&mut md, &g, &[], &[]);
        assert!(
            md.contains("does not fall at every step up in size: s3 (0.8000) is not below s2"),
            "{md}"
        );
    }

    /// A middle size whose probe beats the largest's by less than the digits shown (0.0003)
    /// adds no "But" to the answer; by 0.002 it does.
    #[test]
    fn a_best_middle_probe_ahead_by_less_than_shown_leaves_the_answer_alone() {
        let answer = |middle: f64| {
            let g = group(vec![
                size("s1", 1000, 0.9, Some((0.70, 0.60))),
                size("s2", 2000, 0.8, Some((middle, 0.80))),
                size("s3", 4000, 0.7, Some((0.70, 0.70))),
            ]);
            let mut md = String::new();
            verdict(&mut md, &g, &["t".to_string()], &[]);
            let line = md.lines().find(|l| l.starts_with("- Answer:"));
            line.unwrap_or_else(|| panic!("{md}")).to_string()
        };
        assert!(!answer(0.7003).contains("But"), "{}", answer(0.7003));
        assert!(
            answer(0.702).contains("But the best probe on t by validation AUROC is s2's"),
            "{}",
            answer(0.702)
        );
    }

    #[test]
    fn the_answer_calls_a_difference_below_the_digits_shown_the_same() {
        let said = |diff| answer(&comparison(diff), LARGEST);
        assert!(
            said(0.0003).contains("the same AUROC on t (+0.000"),
            "{}",
            said(0.0003)
        );
        assert!(said(-0.0004).contains("the same AUROC on t (-0.000"));
        assert!(said(0.0006).contains("higher AUROC on t (+0.001"));
        assert!(said(-0.02).contains("no higher AUROC on t (-0.020, within the CI)"));
        let mut apart = comparison(-0.02);
        apart.probe[0].apart = Some(true);
        let said = answer(&apart, LARGEST);
        assert!(
            said.contains("; lower AUROC on t (-0.020, outside the test-set CIs"),
            "{said}"
        );
    }

    #[test]
    fn only_an_interval_over_seeds_is_called_outside_the_ci() {
        let excludes = Interval {
            low: 0.01,
            high: 0.05,
        };
        let mut c = comparison(0.03);
        c.probe[0].paired = Some(excludes);
        c.probe[0].seeds = [1, 1];
        let said = answer(&c, LARGEST);
        assert!(
            said.contains(
                "higher AUROC on t (+0.030, outside the test-set CI (one seed a size: \
                 seed-to-seed spread unknown))"
            ),
            "{said}"
        );
        c.probe[0].seeds = [3, 3];
        c.probe[0].over_seeds = Some(excludes);
        let said = answer(&c, LARGEST);
        assert!(
            said.contains("higher AUROC on t (+0.030, outside the CI)"),
            "{said}"
        );
        // Two seeds a size in result files without scored units: only the sizes' test-set
        // intervals (their seeds' ends averaged) are found apart, with nothing over seeds.
        c.probe[0].seeds = [2, 2];
        (c.probe[0].paired, c.probe[0].over_seeds) = (None, None);
        c.probe[0].apart = Some(true);
        let said = answer(&c, LARGEST);
        assert!(
            said.contains(
                "higher AUROC on t (+0.030, outside the test-set CIs (no scored units: no \
                 interval over seeds))"
            ),
            "{said}"
        );
        let mut md = String::new();
        let (small, large) = (size_with_probe("a", 0.80), size_with_probe("b", 0.83));
        downstream(
            &mut md,
            "Downstream",
            ("t", "linear probe"),
            (&small, &large),
            &c.probe,
            |r| r.probe("t"),
        );
        assert!(
            md.contains("the intervals do not overlap: outside the test-set CIs"),
            "{md}"
        );
    }

    /// A size with a probe result on task `t` of AUROC `auroc`, two seeds, no scored units.
    fn size_with_probe(name: &str, auroc: f64) -> analysis::SizeResult {
        analysis::SizeResult {
            size: name.into(),
            n: 1000,
            steps: 10,
            samples: 320,
            flops: 1e12,
            losses: vec![0.9, 0.9],
            validation_sets: vec![Some(2), Some(2)],
            trivial_loss: None,
            probe: vec![analysis::TaskAuroc {
                task: "t".into(),
                mean: auroc,
                val_mean: None,
                ci: Some([auroc - 0.01, auroc + 0.01]),
                runs: vec![format!("{name}-s0"), format!("{name}-s1")],
                units: Vec::new(),
            }],
            finetune: Vec::new(),
            scratch: Vec::new(),
        }
    }

    #[test]
    fn results_on_different_test_sets_are_not_compared() {
        let mut c = comparison(0.084);
        c.probe[0].apart = Some(true);
        c.probe[0].unpaired = Some(PairError::OtherUnits);
        let said = answer(&c, LARGEST);
        assert!(
            said.contains("AUROC on t scored on different test sets: not comparable"),
            "{said}"
        );
        assert!(!said.contains("0.084"), "{said}");
        assert_eq!(c.probe[0].outside(), None);
    }
}
