//! The report's four kinds of chart, built from the analysis and the runs' metrics:
//! val loss vs N (one line per data size or budget, fits dashed: an L(N) fit only where it is
//! determined and falls with N; a group whose losses come from different validation sets only as
//! markers), loss vs compute with the compute frontier, downstream AUROC vs N
//! with CI bars and the from-scratch baseline (one chart per task), and the loss curves of every
//! run.

use crate::analysis::{self, Analysis, Group};
use crate::fit::isoflop::{self, Optimum};
use crate::fit::LawFit;
use crate::plot::{colour, Axis, Chart, Series, Style, GREY};
use plotters::style::RGBColor;

/// A run's logged losses: (step, training loss) and (step, val loss), steps 1-based.
#[derive(Clone, Debug, Default)]
pub struct Curve {
    pub run: String,
    pub flops_per_step: f64,
    pub train: Vec<(f64, f64)>,
    pub val: Vec<(f64, f64)>,
}

fn log_grid(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (count - 1) as f64).exp())
        .collect()
}

fn n_range(group: &Group) -> (f64, f64) {
    let first = group.sizes.first().map_or(1.0, |s| s.n as f64);
    let last = group.sizes.last().map_or(1.0, |s| s.n as f64);
    (first, last)
}

/// Val loss vs N: every run as a marker, the mean over seeds as a line, the fit dashed (L(N)
/// under equal steps, the iso-FLOP parabola per budget).
pub fn loss_vs_n(a: &Analysis) -> Chart {
    let mut series = Vec::new();
    for (i, g) in a.groups.iter().enumerate() {
        let c = colour(i);
        let runs: Vec<(f64, f64)> = g
            .sizes
            .iter()
            .flat_map(|s| s.losses.iter().map(move |&l| (s.n as f64, l)))
            .collect();
        // Losses on different validation sets are not joined into one line (nor fitted).
        if g.several_validation_sets() {
            let label = format!(
                "{} ({}: not comparable)",
                g.label(),
                analysis::OTHER_VALIDATION_SETS
            );
            series.push(Series::new(Some(label), c, Style::Markers, runs));
            continue;
        }
        series.push(Series::new(None, c, Style::Markers, runs));
        let means = g
            .sizes
            .iter()
            .map(|s| (s.n as f64, s.mean_loss()))
            .collect();
        series.push(Series::new(Some(g.label()), c, Style::Line, means));
        let (lo, hi) = n_range(g);
        let fit = a.loss_vs_n.iter().find(|(gi, _)| *gi == i);
        // Only a determined fit whose loss falls with N is drawn as a law.
        let law = |f: &Result<LawFit, String>| {
            f.as_ref()
                .is_ok_and(|f| f.determined && f.not_falling().is_empty())
        };
        if let Some((_, Ok(fit))) = fit.filter(|(_, f)| law(f)) {
            let curve = log_grid(lo, hi, 40)
                .into_iter()
                .map(|n| (n, fit.law.predict(&[n])))
                .collect();
            series.push(Series::new(
                Some(format!("L(N) fit, alpha = {:.2}", fit.exponents[0].value)),
                c,
                Style::Dashed,
                curve,
            ));
        }
        let profile = a
            .isoflop
            .iter()
            .filter(|f| f.dataset == g.dataset)
            .flat_map(|f| &f.profiles)
            .find(|p| Some(p.budget) == g.budget);
        if let Some((pa, pb, pc)) = profile.and_then(isoflop::fitted_parabola) {
            let curve = log_grid(lo, hi, 40)
                .into_iter()
                .map(|n| (n, pa * n.ln() * n.ln() + pb * n.ln() + pc))
                .collect();
            series.push(Series::new(None, c, Style::Dashed, curve));
        }
        if let Some(Optimum::Interior { n_opt, loss }) = profile.map(|p| &p.optimum) {
            series.push(Series::new(
                Some(format!("N_opt = {:.3e}", n_opt.value)),
                c,
                Style::Markers,
                vec![(n_opt.value, *loss)],
            ));
        }
    }
    Chart {
        title: "Validation loss vs non-embedding parameters N".into(),
        x: Axis {
            label: "N (non-embedding encoder parameters)".into(),
            log: true,
        },
        y: Axis {
            label: "final validation loss".into(),
            log: false,
        },
        series,
    }
}

/// Loss vs training FLOPs along every run (lines: training loss, markers: validation loss), and
/// the compute frontier (the lowest validation loss any run reached with at most C FLOPs).
pub fn loss_vs_compute(a: &Analysis, curves: &[Curve]) -> Chart {
    let mut series = Vec::new();
    let sizes: Vec<&str> = {
        let mut s: Vec<(usize, &str)> = a.records.iter().map(|r| (r.n, r.size.as_str())).collect();
        s.sort();
        s.dedup();
        s.into_iter().map(|(_, name)| name).collect()
    };
    let mut frontier_points: Vec<(f64, f64)> = Vec::new();
    for curve in curves {
        let Some(record) = a.records.iter().find(|r| r.run == curve.run) else {
            continue;
        };
        let index = sizes.iter().position(|s| *s == record.size).unwrap_or(0);
        let at_c = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
            points
                .iter()
                .map(|&(step, loss)| (step * curve.flops_per_step, loss))
                .collect()
        };
        let val = at_c(&curve.val);
        frontier_points.extend(&val);
        let first_of_size = a
            .records
            .iter()
            .find(|r| r.size == record.size)
            .map(|r| &r.run);
        let label = (first_of_size == Some(&record.run)).then(|| record.size.clone());
        series.push(Series::new(
            label,
            colour(index),
            Style::Line,
            at_c(&curve.train),
        ));
        series.push(Series::new(None, colour(index), Style::Markers, val));
    }
    frontier_points.sort_by(|p, q| p.0.total_cmp(&q.0));
    let mut frontier: Vec<(f64, f64)> = Vec::new();
    for (c, loss) in frontier_points {
        let best = frontier.last().map_or(f64::INFINITY, |p| p.1);
        if loss < best {
            if let Some(last) = frontier.last() {
                frontier.push((c, last.1));
            }
            frontier.push((c, loss));
        }
    }
    series.push(Series::new(
        Some("compute frontier".into()),
        RGBColor(0, 0, 0),
        Style::Thick,
        frontier,
    ));
    Chart {
        title: "Loss vs training compute (lines: training, dots: validation)".into(),
        x: Axis {
            label: "C (training FLOPs so far)".into(),
            log: true,
        },
        y: Axis {
            label: "masked reconstruction loss".into(),
            log: false,
        },
        series,
    }
}

/// Probe AUROC vs N for `task`, one line per group, with CI bars; the from-scratch baseline
/// grey and dashed.
pub fn auroc_vs_n(a: &Analysis, task: &str) -> Chart {
    let mut series = Vec::new();
    for (i, g) in a.groups.iter().enumerate() {
        let probe: Vec<_> = g
            .sizes
            .iter()
            .filter_map(|s| Some((s.n as f64, s.probe(task)?)))
            .collect();
        let mut line = Series::new(
            Some(format!("probe, {}", g.label())),
            colour(i),
            Style::LineMarkers,
            probe.iter().map(|(n, t)| (*n, t.mean)).collect(),
        );
        line.bars = probe
            .iter()
            .filter_map(|(n, t)| Some((*n, t.ci?[0], t.ci?[1])))
            .collect();
        series.push(line);
        let scratch: Vec<_> = g
            .sizes
            .iter()
            .filter_map(|s| Some((s.n as f64, s.scratch(task)?)))
            .collect();
        if !scratch.is_empty() {
            let mut base = Series::new(
                Some(format!("from scratch, {}", g.label())),
                GREY,
                Style::Dashed,
                scratch.iter().map(|(n, t)| (*n, t.mean)).collect(),
            );
            base.bars = scratch
                .iter()
                .filter_map(|(n, t)| Some((*n, t.ci?[0], t.ci?[1])))
                .collect();
            series.push(base);
        }
    }
    Chart {
        title: format!("Downstream macro AUROC ({task}) vs N"),
        x: Axis {
            label: "N (non-embedding encoder parameters)".into(),
            log: true,
        },
        y: Axis {
            label: "test macro AUROC (95% CI)".into(),
            log: false,
        },
        series,
    }
}

/// Training loss (lines) and val loss (markers) of every run against the step.
pub fn loss_curves(a: &Analysis, curves: &[Curve]) -> Chart {
    let mut series = Vec::new();
    for (i, curve) in curves.iter().enumerate() {
        if !a.records.iter().any(|r| r.run == curve.run) {
            continue;
        }
        series.push(Series::new(
            Some(curve.run.clone()),
            colour(i),
            Style::Line,
            curve.train.clone(),
        ));
        series.push(Series::new(
            None,
            colour(i),
            Style::Markers,
            curve.val.clone(),
        ));
    }
    Chart {
        title: "Loss curves (lines: training loss, dots: validation loss)".into(),
        x: Axis {
            label: "optimiser step".into(),
            log: false,
        },
        y: Axis {
            label: "masked reconstruction loss".into(),
            log: true,
        },
        series,
    }
}
