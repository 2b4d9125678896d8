//! Bootstrap resampling for the fits' confidence intervals: over seeds when every grid point was
//! trained with several seeds (each point's replicas are redrawn), else over points.

use ecgfm_trainer::model::rng::SplitMix64;

/// Resamples per bootstrap.
pub const RESAMPLES: usize = 200;

/// What a bootstrap redraws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resampling {
    /// Each grid point's seeds, with replacement (every point had two or more).
    Seeds,
    /// The points themselves, with replacement.
    Points,
}

impl Resampling {
    pub fn describe(self) -> &'static str {
        match self {
            Resampling::Seeds => "seeds within each grid point",
            Resampling::Points => "points",
        }
    }
}

/// A 95% interval; infinite ends mean the data do not bound the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// The data do not bound the value.
    pub const UNBOUNDED: Interval = Interval {
        low: f64::NEG_INFINITY,
        high: f64::INFINITY,
    };

    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    pub fn is_bounded(&self) -> bool {
        self.low.is_finite() && self.high.is_finite()
    }

    pub fn contains(&self, v: f64) -> bool {
        self.low <= v && v <= self.high
    }
}

/// A value with its bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci: Interval,
}

/// Index sets of the resamples of `n` items grouped by `groups` (items with equal keys are
/// replicas of one grid point), seeded.
pub struct Bootstrap {
    groups: Vec<Vec<usize>>,
    n: usize,
    pub resampling: Resampling,
}

impl Bootstrap {
    /// `keys[i]` identifies the grid point of item i.
    pub fn new<K: PartialEq>(keys: &[K]) -> Bootstrap {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match groups.iter_mut().find(|g| keys[g[0]] == *key) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let resampling = if !groups.is_empty() && groups.iter().all(|g| g.len() >= 2) {
            Resampling::Seeds
        } else {
            Resampling::Points
        };
        Bootstrap {
            groups,
            n: keys.len(),
            resampling,
        }
    }

    /// Distinct grid points.
    pub fn distinct(&self) -> usize {
        self.groups.len()
    }

    /// The fewest replicas (seeds) of any grid point; 0 with no items.
    pub fn min_replicas(&self) -> usize {
        self.groups.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// `RESAMPLES` index sets from `seed`.
    pub fn resamples(&self, seed: u64) -> Vec<Vec<usize>> {
        (0..RESAMPLES as u64)
            .map(|r| {
                let mut rng = SplitMix64::from_words(&[seed, r]);
                match self.resampling {
                    Resampling::Seeds => self
                        .groups
                        .iter()
                        .flat_map(|g| {
                            (0..g.len())
                                .map(|_| g[rng.below(g.len() as u64) as usize])
                                .collect::<Vec<_>>()
                        })
                        .collect(),
                    Resampling::Points => (0..self.n)
                        .map(|_| rng.below(self.n as u64) as usize)
                        .collect(),
                }
            })
            .collect()
    }

    /// Grid points present in a resample.
    pub fn distinct_in(&self, resample: &[usize]) -> usize {
        self.groups
            .iter()
            .filter(|g| g.iter().any(|i| resample.contains(i)))
            .count()
    }
}

/// The 2.5th and 97.5th percentiles of `values` (infinities included, NaN taken as unbounded).
pub fn percentile_interval(values: &[f64]) -> Interval {
    if values.is_empty() {
        return Interval::UNBOUNDED;
    }
    let mut v: Vec<f64> = values.to_vec();
    // An unbounded resample pulls both ends: NaN counts at both tails.
    let nan = v.iter().filter(|x| x.is_nan()).count();
    v.retain(|x| !x.is_nan());
    for i in 0..nan {
        v.push(if i % 2 == 0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Interval {
        low: at(0.025),
        high: at(0.975),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_points_resample_seeds_within_each_point() {
        let keys = [1, 1, 2, 2, 3, 3];
        let b = Bootstrap::new(&keys);
        assert_eq!(b.resampling, Resampling::Seeds);
        for r in b.resamples(7) {
            assert_eq!(r.len(), 6);
            // Each pair of slots draws from its own grid point.
            for (slot, &i) in r.iter().enumerate() {
                assert_eq!(keys[i], keys[slot]);
            }
        }
        let single = Bootstrap::new(&[1, 2, 3]);
        assert_eq!(single.resampling, Resampling::Points);
        assert_eq!(single.distinct(), 3);
    }

    /// Seeds are resampled only when every grid point has two or more: where some point has one,
    /// resampling within points would never move it and the intervals would come out too narrow,
    /// so the points are resampled.
    #[test]
    fn one_unreplicated_point_resamples_points() {
        let mixed = Bootstrap::new(&[1, 1, 2, 3, 3]);
        assert_eq!(mixed.resampling, Resampling::Points);
        assert_eq!((mixed.distinct(), mixed.min_replicas()), (3, 1));
        // Some resample draws a slot from another grid point than its own.
        let keys = [1, 1, 2, 3, 3];
        assert!(mixed
            .resamples(20)
            .iter()
            .any(|r| r.iter().enumerate().any(|(slot, &i)| keys[i] != keys[slot])));
    }

    #[test]
    fn unbounded_resamples_widen_the_interval() {
        let mut values: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let ci = percentile_interval(&values);
        assert!(ci.is_bounded() && ci.low < 5.0 && ci.high > 94.0);
        values.extend([f64::NAN; 10]);
        let ci = percentile_interval(&values);
        assert!(!ci.is_bounded());
    }
}
