//! What the report says, computed from `sweep.jsonl`: runs grouped by dataset and budget (an
//! iso-FLOP budget, or under equal steps a data fraction), each size's losses and AUROCs over
//! seeds, the comparisons of larger with smaller sizes, and the scaling fits.

use std::cmp::Ordering;

use crate::fit::bootstrap::Interval;
use crate::fit::isoflop::{self, BudgetPoint, Profile, Trend};
use crate::fit::{fit_loss_vs_nd, try_fit_loss_vs_n, LawFit, Observation};
use crate::record::SweepRecord;
use crate::welch::welch_interval;
use ecgfm_trainer::eval::{by_patient, paired_auroc_interval, PairError, Resample, UnitScores};

/// Seed of every bootstrap of the report, so a report is reproducible.
pub const REPORT_SEED: u64 = 2024;

/// One task's downstream result for a size, over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskAuroc {
    pub task: String,
    pub mean: f64,
    /// The mean validation AUROC, where every run's result gives one.
    pub val_mean: Option<f64>,
    /// The seeds' 95% test-set intervals, averaged end by end.
    pub ci: Option<[f64; 2]>,
    /// The runs (seeds) it is the mean of.
    pub runs: Vec<String>,
    /// Each run's scored test units where every run saved them (else empty): what a paired
    /// comparison resamples (`ecgfm_trainer::eval::paired`).
    pub units: Vec<UnitScores>,
}

/// One size within a group.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeResult {
    pub size: String,
    pub n: usize,
    pub steps: u64,
    pub samples: u64,
    pub flops: f64,
    /// Final validation loss of each seed.
    pub losses: Vec<f64>,
    /// The validation set each seed's validation loss was measured on
    /// (`SweepRecord::validation_version`; seeds that fell back to the training loss have none).
    pub validation_sets: Vec<Option<u32>>,
    /// The loss of predicting each masked patch's mean (`record::trivial_loss`), when known.
    pub trivial_loss: Option<f64>,
    pub probe: Vec<TaskAuroc>,
    /// Fine-tuned, where the sweep's evaluation asked for it.
    pub finetune: Vec<TaskAuroc>,
    pub scratch: Vec<TaskAuroc>,
}

impl SizeResult {
    pub fn mean_loss(&self) -> f64 {
        mean(&self.losses)
    }

    /// Whether the size ended on the plateau: its mean validation loss within 1% of the trivial
    /// solution's, or above it.
    pub fn on_plateau(&self) -> bool {
        self.trivial_loss
            .is_some_and(|t| !self.losses.is_empty() && self.mean_loss() >= 0.99 * t)
    }

    pub fn probe(&self, task: &str) -> Option<&TaskAuroc> {
        self.probe.iter().find(|t| t.task == task)
    }

    pub fn finetune(&self, task: &str) -> Option<&TaskAuroc> {
        self.finetune.iter().find(|t| t.task == task)
    }

    pub fn scratch(&self, task: &str) -> Option<&TaskAuroc> {
        self.scratch.iter().find(|t| t.task == task)
    }
}

/// Runs that share a dataset and a budget, by increasing N.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub dataset: String,
    pub budget: Option<f64>,
    pub fraction: f64,
    pub sizes: Vec<SizeResult>,
}

impl Group {
    /// Whether the sizes' validation losses were measured on more than one validation set, so
    /// they do not rank the sizes.
    pub fn several_validation_sets(&self) -> bool {
        several_sets(self.sizes.iter().flat_map(|s| &s.validation_sets))
    }

    pub fn label(&self) -> String {
        match self.budget {
            Some(c) => format!("{}, C = {c:.2e} FLOPs", self.dataset),
            None => format!(
                "{}, equal steps, data fraction {}",
                self.dataset, self.fraction
            ),
        }
    }
}

/// The largest size of a group against a smaller one.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub small: usize,
    pub large: usize,
    /// Mean val loss of the larger minus the smaller (negative: the larger is better).
    pub loss_diff: f64,
    /// 95% Welch t interval of that difference over seeds (both sizes need two or more).
    pub loss_ci: Option<Interval>,
    /// Whether the two sizes' validation losses were measured on different validation sets, so
    /// `loss_diff` is no comparison.
    pub other_validation_sets: bool,
    /// Per task: the larger's linear-probe AUROC against the smaller's (what the answer is
    /// judged on).
    pub probe: Vec<AurocDiff>,
    /// Per task: the same fine-tuned, where the sweep fine-tuned.
    pub finetune: Vec<AurocDiff>,
}

/// One downstream result against another on the same task.
#[derive(Clone, Debug, PartialEq)]
pub struct AurocDiff {
    pub task: String,
    /// AUROC of the one minus the other's.
    pub diff: f64,
    /// 95% paired bootstrap interval of the difference over the test set (its patients, or
    /// records: [`AurocDiff::drawn`]), where both sides saved their scored units.
    pub paired: Option<Interval>,
    /// The same drawn over each side's seeds too, where both sides have two or more.
    pub over_seeds: Option<Interval>,
    /// Whether the two results' own intervals do not overlap.
    pub apart: Option<bool>,
    /// Seeds (runs) of the one and of the other.
    pub seeds: [usize; 2],
    /// Why no paired interval could be drawn though both sides kept their scored units: above
    /// all `PairError::OtherUnits`, runs scored on different test sets.
    pub unpaired: Option<PairError>,
    /// Whether the paired intervals draw the test patients (every result file gives the same
    /// patient for each unit), not the records.
    pub by_patient: bool,
}

impl AurocDiff {
    /// `b` against `a` on `task`.
    pub fn new(task: &str, a: &TaskAuroc, b: &TaskAuroc) -> AurocDiff {
        let (paired, unpaired) = match paired_interval(a, b, Resample::Records) {
            Ok(ci) => (ci, None),
            Err(e) => (None, Some(e)),
        };
        AurocDiff {
            task: task.to_string(),
            diff: b.mean - a.mean,
            paired,
            over_seeds: paired_interval(a, b, Resample::SeedsAndRecords)
                .ok()
                .flatten(),
            apart: apart(a, b),
            seeds: [a.runs.len(), b.runs.len()],
            unpaired,
            by_patient: by_patient(&a.units.iter().chain(&b.units).collect::<Vec<_>>()),
        }
    }

    /// What the paired intervals draw: `test patients` or `test records`.
    pub fn drawn(&self) -> &'static str {
        match self.by_patient {
            true => "test patients",
            false => "test records",
        }
    }

    /// Whether the two sides (or a side's seeds) were scored on different test sets, so their
    /// AUROCs are not comparable.
    pub fn other_test_sets(&self) -> bool {
        self.unpaired == Some(PairError::OtherUnits)
    }

    /// Whether a side has one seed, so no interval says how much the difference varies from
    /// seed to seed.
    pub fn one_seed(&self) -> bool {
        self.seeds.contains(&1)
    }

    /// Whether the difference is outside the CI: the paired interval (over seeds too where
    /// there is one) excludes 0 or, without one, the two intervals do not overlap (`None`
    /// without intervals, and where the two were scored on different test sets).
    pub fn outside(&self) -> Option<bool> {
        if self.other_test_sets() {
            return None;
        }
        match self.over_seeds.as_ref().or(self.paired.as_ref()) {
            Some(ci) => Some(!ci.contains(0.0)),
            None => self.apart,
        }
    }
}

/// Everything the report shows.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub records: Vec<SweepRecord>,
    pub groups: Vec<Group>,
    pub tasks: Vec<String>,
    /// Runs whose loss is their training loss (they logged no validation loss).
    pub train_loss_fallbacks: usize,
    /// L(N) of each equal-steps group (index into `groups`), or why it was not fitted.
    pub loss_vs_n: Vec<(usize, Result<LawFit, String>)>,
    /// L(N, D) per dataset, or why it was not fitted.
    pub loss_vs_nd: Vec<(String, Result<LawFit, String>)>,
    /// Iso-FLOP profiles and their trend per dataset.
    pub isoflop: Vec<IsoflopFits>,
}

/// One dataset's iso-FLOP profiles.
#[derive(Clone, Debug)]
pub struct IsoflopFits {
    pub dataset: String,
    pub profiles: Vec<Profile>,
    pub trend: Option<Trend>,
    /// Budgets left unprofiled because their runs' validation losses were measured on different
    /// validation sets.
    pub other_validation_sets: Vec<f64>,
}

/// The loss a record contributes: its final val loss, else its final training loss.
pub fn loss_of(r: &SweepRecord) -> Option<f64> {
    r.final_val_loss.or(r.final_train_loss)
}

fn task_aurocs(runs: &[&SweepRecord], tasks: &[String], protocol: &str) -> Vec<TaskAuroc> {
    tasks
        .iter()
        .filter_map(|task| {
            let (names, found): (Vec<String>, Vec<_>) = runs
                .iter()
                .filter_map(|r| Some((r.run.clone(), r.eval_result(task, protocol)?)))
                .unzip();
            if found.is_empty() {
                return None;
            }
            let k = found.len() as f64;
            let cis: Vec<[f64; 2]> = found.iter().filter_map(|e| e.macro_auroc_ci).collect();
            Some(TaskAuroc {
                task: task.clone(),
                mean: found.iter().map(|e| e.macro_auroc).sum::<f64>() / k,
                val_mean: (found.iter())
                    .map(|e| e.val_macro_auroc)
                    .sum::<Option<f64>>()
                    .map(|sum| sum / k),
                ci: (cis.len() == found.len()).then(|| {
                    [
                        cis.iter().map(|c| c[0]).sum::<f64>() / k,
                        cis.iter().map(|c| c[1]).sum::<f64>() / k,
                    ]
                }),
                runs: names,
                units: found
                    .iter()
                    .map(|e| e.units.clone())
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// `records` in the order `ecgfm sweep run` plans them, whatever order they finished in
/// (parallel ranks, SLURM arrays, `--extend`): by dataset (first appearance), size, budget,
/// fraction and seed.
fn in_plan_order(mut records: Vec<SweepRecord>) -> Vec<SweepRecord> {
    let datasets = datasets_of(&records);
    let rank = |r: &SweepRecord| datasets.iter().position(|d| *d == r.dataset);
    records.sort_by(|a, b| {
        (rank(a).cmp(&rank(b)))
            .then(a.n.cmp(&b.n))
            .then(a.budget.partial_cmp(&b.budget).unwrap_or(Ordering::Equal))
            .then(a.fraction.total_cmp(&b.fraction))
            .then(a.seed.cmp(&b.seed))
    });
    records
}

/// The datasets of `records`, each once, in order of first appearance.
fn datasets_of(records: &[SweepRecord]) -> Vec<String> {
    let mut datasets: Vec<String> = Vec::new();
    for r in records {
        if !datasets.contains(&r.dataset) {
            datasets.push(r.dataset.clone());
        }
    }
    datasets
}

fn groups(records: &[SweepRecord], tasks: &[String]) -> Vec<Group> {
    let mut keys: Vec<(String, Option<u64>, u64)> = Vec::new();
    for r in records {
        let key = (
            r.dataset.clone(),
            r.budget.map(f64::to_bits),
            r.fraction.to_bits(),
        );
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    // A dataset's groups together, budgets and fractions ascending (a size may lack a budget).
    let datasets = datasets_of(records);
    let rank = |d: &String| datasets.iter().position(|x| x == d);
    keys.sort_by(|a, b| {
        let budget = |k: &(String, Option<u64>, u64)| k.1.map(f64::from_bits);
        (rank(&a.0).cmp(&rank(&b.0)))
            .then(budget(a).partial_cmp(&budget(b)).unwrap_or(Ordering::Equal))
            .then(f64::from_bits(a.2).total_cmp(&f64::from_bits(b.2)))
    });
    keys.into_iter()
        .map(|(dataset, budget, fraction)| {
            let members: Vec<&SweepRecord> = records
                .iter()
                .filter(|r| {
                    r.dataset == dataset
                        && r.budget.map(f64::to_bits) == budget
                        && r.fraction.to_bits() == fraction
                        && loss_of(r).is_some()
                })
                .collect();
            let mut sizes: Vec<SizeResult> = Vec::new();
            for r in &members {
                if sizes.iter().any(|s| s.size == r.size) {
                    continue;
                }
                let same: Vec<&SweepRecord> = members
                    .iter()
                    .filter(|m| m.size == r.size)
                    .copied()
                    .collect();
                sizes.push(SizeResult {
                    size: r.size.clone(),
                    n: r.n,
                    steps: r.steps,
                    samples: r.samples,
                    flops: r.flops,
                    losses: same.iter().filter_map(|m| loss_of(m)).collect(),
                    validation_sets: validation_sets(&same),
                    trivial_loss: r.trivial_loss,
                    probe: task_aurocs(&same, tasks, "probe"),
                    finetune: task_aurocs(&same, tasks, "finetune"),
                    scratch: task_aurocs(&same, tasks, "scratch"),
                });
            }
            sizes.sort_by_key(|s| s.n);
            Group {
                dataset,
                budget: budget.map(f64::from_bits),
                fraction: f64::from_bits(fraction),
                sizes,
            }
        })
        .collect()
}

/// The validation set of each of `runs` that measured a validation loss.
fn validation_sets(runs: &[&SweepRecord]) -> Vec<Option<u32>> {
    (runs.iter())
        .filter(|r| r.final_val_loss.is_some())
        .map(|r| r.validation_version)
        .collect()
}

/// Whether `sets` holds more than one validation set.
fn several_sets<'a>(sets: impl IntoIterator<Item = &'a Option<u32>>) -> bool {
    let mut sets = sets.into_iter();
    sets.next().is_some_and(|first| sets.any(|v| v != first))
}

/// Why losses are not fitted or profiled: they were measured on different validation sets.
pub const OTHER_VALIDATION_SETS: &str = "validation losses measured on different validation sets";

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Resamples of a paired interval.
const PAIRED_RESAMPLES: usize = 2000;

/// The 95% paired bootstrap interval of `b`'s AUROC minus `a`'s over their common test records
/// (and `over` their seeds), where every run of both saved its scored units (`Ok(None)` where
/// a side's runs did not, or too few resamples define both AUROCs); an error where they are not
/// the same units, or, over seeds, a side has one seed.
fn paired_interval(
    a: &TaskAuroc,
    b: &TaskAuroc,
    over: Resample,
) -> Result<Option<Interval>, PairError> {
    let (ua, ub): (Vec<&UnitScores>, Vec<&UnitScores>) =
        (a.units.iter().collect(), b.units.iter().collect());
    match paired_auroc_interval(&ua, &ub, over, PAIRED_RESAMPLES, REPORT_SEED) {
        Ok(ci) => Ok(ci.map(|[low, high]| Interval { low, high })),
        Err(PairError::Empty) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One line per task and protocol whose runs (their result files' scored units) were scored on
/// different test sets, naming the runs of each set: their AUROCs are not compared. Empty when
/// every run of a task and protocol that kept its units was scored on the same units.
pub fn test_set_warnings(records: &[SweepRecord]) -> Vec<String> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for e in records.iter().flat_map(|r| &r.eval) {
        if !keys.contains(&(e.task.as_str(), e.protocol.as_str())) {
            keys.push((e.task.as_str(), e.protocol.as_str()));
        }
    }
    keys.into_iter()
        .filter_map(|(task, protocol)| {
            let mut sets: Vec<(&UnitScores, Vec<&str>)> = Vec::new();
            for r in records {
                let Some(units) = r.eval_result(task, protocol).and_then(|e| e.units.as_ref())
                else {
                    continue;
                };
                match sets.iter_mut().find(|(u, _)| u.same_units(units)) {
                    Some((_, runs)) => runs.push(&r.run),
                    None => sets.push((units, vec![&r.run])),
                }
            }
            (sets.len() > 1).then(|| {
                let listed: Vec<String> = (sets.iter())
                    .map(|(_, runs)| format!("[{}]", runs.join(", ")))
                    .collect();
                format!(
                    "{task} ({protocol}): the runs were scored on {} different test sets \
                     (another dataset, split, label vocabulary or --score-by): {}; their AUROCs \
                     are not compared. Evaluate them on one test set: delete the result files \
                     eval-{task}-{protocol}.json of the runs evaluated on the wrong one and run \
                     the sweep again.",
                    sets.len(),
                    listed.join(" and ")
                )
            })
        })
        .collect()
}

/// What `sweep report` and `sweep status` warn of among `records` (their result files read):
/// runs validated on different validation sets (one line), runs scored on different test sets
/// (one line per task and protocol).
pub fn warnings(records: &[SweepRecord]) -> Vec<String> {
    (validation_set_warning(records).into_iter())
        .chain(test_set_warnings(records))
        .collect()
}

/// One line when the runs' validation losses were measured on different validation sets
/// (`SweepRecord::validation_version`), naming the runs of each: the same weights can measure
/// 0.02 apart on two sets of 256 windows, as much as sizes differ, so such losses do not compare.
/// `None` when every run with a validation loss measured on one set.
pub fn validation_set_warning(records: &[SweepRecord]) -> Option<String> {
    let mut sets: Vec<(Option<u32>, Vec<&str>)> = Vec::new();
    for r in records.iter().filter(|r| r.final_val_loss.is_some()) {
        match sets.iter_mut().find(|(v, _)| *v == r.validation_version) {
            Some((_, runs)) => runs.push(&r.run),
            None => sets.push((r.validation_version, vec![&r.run])),
        }
    }
    (sets.len() > 1).then(|| {
        let listed: Vec<String> = (sets.iter())
            .map(|(version, runs)| {
                let set = version.map_or_else(
                    || "a set of before 2026-12-04 or not recorded".to_string(),
                    |v| format!("version {v}"),
                );
                format!("[{}] ({set})", runs.join(", "))
            })
            .collect();
        format!(
            "the runs' validation losses were measured on {} different validation sets: {}; \
             losses compare only on one set, so the report neither compares nor ranks nor fits \
             losses across them. Train the runs of the older set again in a new folder (a CPU \
             run reproduces its training bit for bit) to compare their losses.",
            sets.len(),
            listed.join(" and ")
        )
    })
}

/// Whether two results' intervals do not overlap (`None` without intervals).
fn apart(a: &TaskAuroc, b: &TaskAuroc) -> Option<bool> {
    match (a.ci, b.ci) {
        (Some(ca), Some(cb)) => Some(cb[0] > ca[1] || ca[0] > cb[1]),
        _ => None,
    }
}

/// Size `large` of `group` against size `small`.
pub fn compare(group: &Group, small: usize, large: usize, tasks: &[String]) -> Comparison {
    let (s, l) = (&group.sizes[small], &group.sizes[large]);
    let diffs =
        |result: for<'r> fn(&'r SizeResult, &str) -> Option<&'r TaskAuroc>| -> Vec<AurocDiff> {
            tasks
                .iter()
                .filter_map(|task| Some(AurocDiff::new(task, result(s, task)?, result(l, task)?)))
                .collect()
        };
    Comparison {
        small,
        large,
        loss_diff: l.mean_loss() - s.mean_loss(),
        loss_ci: welch_interval(&s.losses, &l.losses, 0.95),
        other_validation_sets: several_sets(s.validation_sets.iter().chain(&l.validation_sets)),
        probe: diffs(SizeResult::probe),
        finetune: diffs(SizeResult::finetune),
    }
}

/// Analyses the records of a sweep.
pub fn analyse(records: Vec<SweepRecord>) -> Analysis {
    let records = in_plan_order(records);
    let mut tasks: Vec<String> = Vec::new();
    for e in records.iter().flat_map(|r| &r.eval) {
        if !tasks.contains(&e.task) {
            tasks.push(e.task.clone());
        }
    }
    let groups = groups(&records, &tasks);
    let observation = |r: &SweepRecord| {
        Some(Observation {
            n: r.n as f64,
            d: r.samples as f64,
            loss: loss_of(r)?,
        })
    };
    let loss_vs_n = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.budget.is_none())
        .map(|(i, g)| {
            let runs: Vec<&SweepRecord> = records
                .iter()
                .filter(|r| {
                    r.dataset == g.dataset && r.budget.is_none() && r.fraction == g.fraction
                })
                .collect();
            let obs: Vec<Observation> = runs.iter().filter_map(|r| observation(r)).collect();
            let fit = match several_sets(&validation_sets(&runs)) {
                true => Err(OTHER_VALIDATION_SETS.into()),
                false => try_fit_loss_vs_n(&obs, REPORT_SEED + i as u64),
            };
            (i, fit)
        })
        .collect();
    let datasets = datasets_of(&records);
    let loss_vs_nd = datasets
        .iter()
        .map(|d| {
            let runs: Vec<&SweepRecord> = records.iter().filter(|r| &r.dataset == d).collect();
            let obs: Vec<Observation> = runs.iter().filter_map(|r| observation(r)).collect();
            let fit = match several_sets(&validation_sets(&runs)) {
                true => Err(OTHER_VALIDATION_SETS.into()),
                false => fit_loss_vs_nd(&obs, REPORT_SEED),
            };
            (d.clone(), fit)
        })
        .collect();
    let isoflop = datasets
        .iter()
        .filter_map(|d| {
            let mixed: Vec<f64> = (groups.iter())
                .filter(|g| &g.dataset == d && g.several_validation_sets())
                .filter_map(|g| g.budget)
                .collect();
            let points: Vec<BudgetPoint> = records
                .iter()
                .filter(|r| &r.dataset == d && !r.budget.is_some_and(|b| mixed.contains(&b)))
                .filter_map(|r| {
                    Some(BudgetPoint {
                        budget: r.budget?,
                        n: r.n as f64,
                        loss: loss_of(r)?,
                    })
                })
                .collect();
            if points.is_empty() && mixed.is_empty() {
                return None;
            }
            let profiles = isoflop::profiles(&points, REPORT_SEED);
            let trend = isoflop::trend(&profiles);
            Some(IsoflopFits {
                dataset: d.clone(),
                profiles,
                trend,
                other_validation_sets: mixed,
            })
        })
        .collect();
    Analysis {
        train_loss_fallbacks: records
            .iter()
            .filter(|r| r.final_val_loss.is_none() && r.final_train_loss.is_some())
            .count(),
        records,
        groups,
        tasks,
        loss_vs_n,
        loss_vs_nd,
        isoflop,
    }
}
