//! `ecgfm compare --a A.json --b B.json`: two sides of `ecgfm eval` result files (each one or
//! several seeds) scored on the same test set, compared by the paired bootstrap interval of
//! their macro AUROC difference, or with `--metric f1` of their macro F1 at each evaluation's
//! thresholds (`ecgfm_trainer::eval::paired`): is B's encoder better than A's, beyond the test
//! set's sampling noise? One seed counts once: a file given twice on one side is refused, and so
//! are two files of the same weights (`weights_sha256`) under `probe` or `finetune`, which
//! evaluate the checkpoint, or of the same evaluation seed under `scratch` or `random_probe`,
//! whose network that seed alone draws (with no --protocol, both); and one file on both sides
//! under the same protocol.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ecgfm_trainer::eval::protocols::MIN_BOOTSTRAP;
use ecgfm_trainer::eval::{
    by_patient, paired_auroc_interval, paired_f1_interval, IntervalNoise, PairError, Protocol,
    Resample, ScoredResult, UnitScores,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::bad_config::RefusedConfig;

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Result files of side A (one per seed, each seed's once; repeat the flag).
    #[arg(long = "a", value_name = "FILE.json", required = true)]
    pub a: Vec<PathBuf>,
    /// Result files of side B, scored on the same test set (a file of side A here too only with
    /// another --b-protocol).
    #[arg(long = "b", value_name = "FILE.json", required = true)]
    pub b: Vec<PathBuf>,
    /// Only this protocol of side A (probe, finetune, scratch, random_probe).
    #[arg(long)]
    pub protocol: Option<String>,
    /// Side B's protocol to set against A's (default: the same), e.g. `--protocol scratch
    /// --b-protocol probe` with the same file on both sides: pretrained against from scratch.
    #[arg(long)]
    pub b_protocol: Option<String>,
    /// Bootstrap resamples of the test patients (records in files without patients; at least
    /// 200).
    #[arg(long, default_value_t = 2000)]
    pub bootstrap: usize,
    /// Seed of the resamples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What each resample draws: the test records only (the interval is given the seeds each
    /// side has), or each side's result files (seeds) as well, then the records; auto: seeds
    /// too when both sides have two or more files.
    #[arg(long, value_enum, default_value_t = Over::Auto)]
    pub resample: Over,
    /// What to compare: macro AUROC, or macro F1 one-vs-rest at each evaluation's own per-class
    /// thresholds (picked on its validation split; not the CinC 2017 challenge's F1, which
    /// assigns each record one class).
    #[arg(long, value_enum, default_value_t = Metric::Auroc)]
    pub metric: Metric,
}

/// `--resample`: what the bootstrap draws anew.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Over {
    Auto,
    Records,
    SeedsAndRecords,
}

impl Over {
    /// The resampling for sides of `a` and `b` files.
    fn resample(self, a: usize, b: usize) -> Resample {
        match self {
            Over::Records => Resample::Records,
            Over::SeedsAndRecords => Resample::SeedsAndRecords,
            Over::Auto if a >= 2 && b >= 2 => Resample::SeedsAndRecords,
            Over::Auto => Resample::Records,
        }
    }
}

/// The measure `ecgfm compare` compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    Auroc,
    F1,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Auroc => "AUROC",
            Metric::F1 => "F1 (ovr)",
        }
    }

    /// A result's value of the measure.
    fn of(self, result: &ScoredResult) -> Option<f64> {
        match self {
            Metric::Auroc => result.macro_auroc,
            Metric::F1 => result.macro_f1.value,
        }
    }

    /// The paired interval of B's mean minus A's, over what `over` resamples.
    fn interval(
        self,
        (a, b): (&[&ScoredResult], &[&ScoredResult]),
        classes: &[String],
        over: Resample,
        (resamples, seed): (usize, u64),
    ) -> Result<Option<[f64; 2]>, PairError> {
        if self == Metric::Auroc {
            return paired_auroc_interval(&units(a), &units(b), over, resamples, seed);
        }
        let thresholds = |side: &[&ScoredResult]| -> Vec<Vec<Option<f64>>> {
            side.iter()
                .map(|r| r.thresholds_of(classes).unwrap_or_default())
                .collect()
        };
        let (ta, tb) = (thresholds(a), thresholds(b));
        paired_f1_interval(&with(a, &ta), &with(b, &tb), over, resamples, seed)
    }
}

/// The scored units of each result (every result has them: `read` refuses files without).
fn units<'a>(side: &[&'a ScoredResult]) -> Vec<&'a UnitScores> {
    side.iter().filter_map(|r| r.test_units.as_ref()).collect()
}

/// Each result's units with its thresholds.
fn with<'a>(
    side: &[&'a ScoredResult],
    thresholds: &'a [Vec<Option<f64>>],
) -> Vec<(&'a UnitScores, &'a [Option<f64>])> {
    units(side)
        .into_iter()
        .zip(thresholds.iter().map(Vec::as_slice))
        .collect()
}

/// What a result file evaluates: its label vocabulary and classes.
type TaskName = (String, Vec<String>);

/// What `compare` reads of an `ecgfm eval` result file.
#[derive(Deserialize)]
struct ResultFile {
    vocabulary: String,
    classes: Vec<String>,
    /// The evaluated weights' SHA-256 (empty where unknown).
    #[serde(default)]
    weights_sha256: String,
    /// The evaluation's seed (absent in hand-made files).
    #[serde(default)]
    seed: Option<u64>,
    results: Vec<ScoredResult>,
}

/// What a result file is one seed of: the weights it evaluates (`None` where the file does not
/// say) and its evaluation seed.
struct Unit {
    weights: Option<String>,
    seed: Option<u64>,
}

/// Which of a file's units count on a side compared under `protocol` (`None`: every protocol):
/// (the weights, the evaluation seed). `scratch` and `random_probe` never read the checkpoint.
fn counted(protocol: Option<&str>) -> (bool, bool) {
    match protocol {
        Some("scratch" | "random_probe") => (false, true),
        Some(_) => (true, false),
        None => (true, true),
    }
}

/// A result file's task, its results and what it is one seed of.
fn read(path: &Path) -> Result<(TaskName, Vec<ScoredResult>, Unit)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: ResultFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an `ecgfm eval` result file", path.display()))?;
    if let Some(old) = file.results.iter().find(|r| r.test_units.is_none()) {
        bail!(
            "{}: the {} result has no scored test units (written before ecgfm kept them): run \
             `ecgfm eval` again",
            path.display(),
            old.protocol
        );
    }
    let unit = Unit {
        weights: Some(file.weights_sha256).filter(|w| !w.is_empty()),
        seed: file.seed,
    };
    Ok(((file.vocabulary, file.classes), file.results, unit))
}

/// One file given to `compare`: which file it is (its canonical path) and what it is one seed of.
struct Given<'a> {
    path: &'a Path,
    file: PathBuf,
    unit: Unit,
}

impl Given<'_> {
    /// Why `self` and `other` are one seed's result: the same file, or the same weights or
    /// evaluation seed where those count (`counted`).
    fn same_as(&self, other: &Given, (weights, seed): (bool, bool)) -> Option<String> {
        if self.file == other.file {
            return Some("is the same file".into());
        }
        if let (Some(x), Some(y)) = (&self.unit.weights, &other.unit.weights) {
            if weights && x == y {
                return Some(format!("evaluates the same weights (weights_sha256 {x})"));
            }
        }
        match (self.unit.seed, other.unit.seed) {
            (Some(x), Some(y)) if seed && x == y => Some(format!(
                "has the same evaluation seed ({x}), which alone draws scratch's and \
                 random_probe's network,"
            )),
            _ => None,
        }
    }
}

/// An error where one seed would count twice: a file, or weights or an evaluation seed where
/// they count (`counted` of each side's protocol), given twice on one side; or one file on both
/// sides when B is compared under A's protocol.
fn refuse_repeats(
    sides: &[Vec<Given>; 2],
    protocols: [Option<&str>; 2],
    same_protocol: bool,
) -> Result<()> {
    for ((name, side), protocol) in ["A", "B"].iter().zip(sides).zip(protocols) {
        for (i, later) in side.iter().enumerate() {
            let earlier = side[..i]
                .iter()
                .find_map(|e| Some((e, later.same_as(e, counted(protocol))?)));
            if let Some((earlier, why)) = earlier {
                bail!(
                    "{} on side {name} {why} as {}: one seed would count as two; give each \
                     seed's result once",
                    later.path.display(),
                    earlier.path.display()
                );
            }
        }
    }
    if same_protocol {
        for b in &sides[1] {
            let file_only = (false, false);
            if let Some(a) = sides[0].iter().find(|a| b.same_as(a, file_only).is_some()) {
                bail!(
                    "{} is on both sides ({}): a result compared with itself under one protocol; \
                     give another --b-protocol to set two protocols of one file against each \
                     other",
                    b.path.display(),
                    a.path.display()
                );
            }
        }
    }
    Ok(())
}

/// One side's results: each file's.
type Side = Vec<Vec<ScoredResult>>;

/// Each side's files read, checked to hold the same task; and that task's classes.
fn read_sides(args: &CompareArgs) -> Result<([Side; 2], Vec<String>)> {
    let mut first: Option<(TaskName, &Path)> = None;
    let mut sides = [Vec::new(), Vec::new()];
    let mut given: [Vec<Given>; 2] = [Vec::new(), Vec::new()];
    for ((side, given), files) in sides.iter_mut().zip(&mut given).zip([&args.a, &args.b]) {
        for path in files {
            let (task, results, unit) = read(path)?;
            let file = path
                .canonicalize()
                .with_context(|| format!("locating {}", path.display()))?;
            given.push(Given { path, file, unit });
            let unthresholded = || results.iter().find(|r| r.thresholds_of(&task.1).is_none());
            if let Some(old) = (args.metric == Metric::F1).then(unthresholded).flatten() {
                bail!(
                    "{}: the {} result keeps no decision threshold for every class (written \
                     before ecgfm kept them), which --metric f1 needs: run `ecgfm eval` again, \
                     or compare --metric auroc",
                    path.display(),
                    old.protocol
                );
            }
            match &first {
                Some((expected, at)) if *expected != task => bail!(
                    "{} evaluates {} ({}) but {} evaluates {} ({}): not the same task",
                    path.display(),
                    task.0,
                    task.1.join(", "),
                    at.display(),
                    expected.0,
                    expected.1.join(", ")
                ),
                Some(_) => {}
                None => first = Some((task, path)),
            }
            side.push(results);
        }
    }
    let same_protocol = args.b_protocol.is_none() || args.b_protocol == args.protocol;
    let b_protocol = args.b_protocol.as_deref().or(args.protocol.as_deref());
    refuse_repeats(
        &given,
        [args.protocol.as_deref(), b_protocol],
        same_protocol,
    )?;
    let classes = first.map(|((_, classes), _)| classes).unwrap_or_default();
    Ok((sides, classes))
}

/// Each file's result of `protocol` at `fraction` with a value of `metric`; `None` unless
/// every file has one.
fn pick<'a>(
    side: &'a Side,
    protocol: &str,
    fraction: f64,
    metric: Metric,
) -> Option<Vec<&'a ScoredResult>> {
    side.iter()
        .map(|file| {
            file.iter().find(|r| {
                r.protocol == protocol && r.fraction == fraction && metric.of(r).is_some()
            })
        })
        .collect()
}

/// Refuses a `--protocol` or `--b-protocol` that names no protocol (a typo matched nothing and
/// read as two sides with nothing in common until 2026-12-06).
fn check_protocols(args: &CompareArgs) -> Result<()> {
    let given = [
        ("--protocol", &args.protocol),
        ("--b-protocol", &args.b_protocol),
    ];
    for (flag, protocol) in given {
        if let Some(p) = protocol.as_deref().filter(|p| Protocol::parse(p).is_none()) {
            let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
            return Err(RefusedConfig(format!(
                "{flag} {p}: unknown protocol (one of {})",
                names.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

/// Runs `ecgfm compare`: one line per protocol and label fraction both sides have.
pub fn run(args: &CompareArgs) -> Result<()> {
    // At least MIN_BOOTSTRAP resamples, as `ecgfm eval` takes (with a handful, a "95% interval"
    // need not even hold the difference); refused as eval refuses it (exit 78).
    if args.bootstrap < MIN_BOOTSTRAP {
        return Err(RefusedConfig(format!(
            "--bootstrap {}: give at least {MIN_BOOTSTRAP} resamples",
            args.bootstrap
        ))
        .into());
    }
    check_protocols(args)?;
    let ([a, b], classes) = read_sides(args)?;
    let metric = args.metric;
    let over = args.resample.resample(args.a.len(), args.b.len());
    let keys: Vec<(String, f64)> = a[0]
        .iter()
        .filter(|r| args.protocol.as_deref().is_none_or(|p| p == r.protocol))
        .map(|r| (r.protocol.clone(), r.fraction))
        .collect();
    // Every row first: an error prints no half table.
    let mut rows: Vec<String> = Vec::new();
    for (protocol, fraction) in keys {
        let b_protocol = args.b_protocol.clone().unwrap_or_else(|| protocol.clone());
        let (Some(ra), Some(rb)) = (
            pick(&a, &protocol, fraction, metric),
            pick(&b, &b_protocol, fraction, metric),
        ) else {
            continue;
        };
        let mean = |r: &[&ScoredResult]| {
            r.iter().filter_map(|s| metric.of(s)).sum::<f64>() / r.len() as f64
        };
        let interval = metric
            .interval((&ra, &rb), &classes, over, (args.bootstrap, args.seed))
            .with_context(|| format!("{protocol} at fraction {fraction}"))?;
        let diff = mean(&rb) - mean(&ra);
        let noise = IntervalNoise::of(over, ra.iter().chain(&rb).any(|r| r.seed_dependent()));
        let (ci, verdict) = match interval {
            Some([low, high]) => (
                format!("[{low:+.3}, {high:+.3}]"),
                match (low > 0.0 || high < 0.0, noise.supports_verdict()) {
                    (true, true) if low > 0.0 => "B higher: the interval excludes 0",
                    (true, true) => "B lower: the interval excludes 0",
                    (true, false) => {
                        "no verdict: test-set noise only; training seed not resampled (give \
                         several seeds' files a side)"
                    }
                    (false, true) => "not established: the interval includes 0",
                    (false, false) => {
                        "not established: the interval includes 0 (test-set noise only; \
                         training seed not resampled)"
                    }
                },
            ),
            None => ("n/a".into(), "too few defined resamples"),
        };
        rows.push(format!(
            "{:<28} {:>8} {:>9.3} {:>9.3} {:>+8.3} {:>20}  {verdict}",
            format!("{protocol} vs {b_protocol}"),
            fraction,
            mean(&ra),
            mean(&rb),
            diff,
            ci
        ));
    }
    if rows.is_empty() {
        bail!("the two sides have no protocol and label fraction in common");
    }
    say!(
        "{:<28} {:>8} {:>9} {:>9} {:>8} {:>20}  verdict",
        "protocol (A vs B)",
        "fraction",
        format!("{} A", metric.name()),
        format!("{} B", metric.name()),
        "B - A",
        "paired 95% CI"
    );
    for row in rows {
        say!("{row}");
    }
    let every: Vec<&ScoredResult> = a.iter().chain(&b).flatten().collect();
    let unit = match by_patient(&units(&every)) {
        true => "test patients (each with all its units)",
        false => "test records",
    };
    let drawn = match over {
        Resample::Records => format!("the {unit}"),
        Resample::SeedsAndRecords => format!("each side's files (seeds), then the {unit}"),
    };
    say!(
        "A: {} file(s), B: {} file(s); {} resamples of {drawn}, seed {} (several files on a \
         side count as the mean of their {}s)",
        args.a.len(),
        args.b.len(),
        args.bootstrap,
        args.seed,
        metric.name()
    );
    Ok(())
}
