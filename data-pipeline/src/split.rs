//! Train / val / test assignment: by a source's own fold when it has one (PTB-XL `strat_fold`:
//! 1-8 train, 9 val, 10 test), otherwise by a stable hash of (seed, source, patient id) so one
//! patient never straddles two splits and the same inputs always give the same split.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One of the three dataset splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The value stored in the `split` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Fractions of patients sent to each split when a source has no folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            train: 0.8,
            val: 0.1,
            test: 0.1,
        }
    }
}

/// Split fractions that are negative or do not add up to 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "split fractions must be non-negative and sum to 1 (got train {train}, val {val}, test {test})"
)]
pub struct BadSplitFractions {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl SplitFractions {
    /// Checks the fractions are usable.
    pub fn validate(&self) -> Result<(), BadSplitFractions> {
        let parts = [self.train, self.val, self.test];
        let sum: f64 = parts.iter().sum();
        if parts.iter().any(|p| !p.is_finite() || *p < 0.0) || (sum - 1.0).abs() > 1e-6 {
            return Err(BadSplitFractions {
                train: self.train,
                val: self.val,
                test: self.test,
            });
        }
        Ok(())
    }
}

/// PTB-XL's recommended split of `strat_fold`: 1-8 train, 9 val, 10 test; other folds: none.
pub fn split_for_fold(fold: i8) -> Option<Split> {
    match fold {
        1..=8 => Some(Split::Train),
        9 => Some(Split::Val),
        10 => Some(Split::Test),
        _ => None,
    }
}

/// A uniform number in [0, 1) fixed by (seed, source, patient id).
fn patient_unit(seed: u64, source: &str, patient_id: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update((source.len() as u64).to_le_bytes());
    hasher.update(source.as_bytes());
    hasher.update(patient_id.as_bytes());
    let digest = hasher.finalize();
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    // 53 high bits give an exactly representable f64 in [0, 1).
    (u64::from_le_bytes(top) >> 11) as f64 / (1u64 << 53) as f64
}

/// The split of a record: its fold's split when the fold maps to one, else the patient hash.
pub fn assign_split(
    source: &str,
    patient_id: &str,
    fold: Option<i8>,
    seed: u64,
    fractions: &SplitFractions,
) -> Split {
    if let Some(split) = fold.and_then(split_for_fold) {
        return split;
    }
    let u = patient_unit(seed, source, patient_id);
    if u < fractions.train {
        Split::Train
    } else if u < fractions.train + fractions.val {
        Split::Val
    } else {
        Split::Test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_win_over_the_hash() {
        let f = SplitFractions::default();
        assert_eq!(assign_split("ptbxl", "p1", Some(3), 0, &f), Split::Train);
        assert_eq!(assign_split("ptbxl", "p1", Some(9), 0, &f), Split::Val);
        assert_eq!(assign_split("ptbxl", "p1", Some(10), 0, &f), Split::Test);
    }

    #[test]
    fn hash_split_is_stable_and_close_to_the_fractions() {
        let f = SplitFractions::default();
        let mut counts = [0usize; 3];
        for i in 0..20_000 {
            let id = format!("patient-{i}");
            let s = assign_split("cinc2017", &id, None, 7, &f);
            assert_eq!(s, assign_split("cinc2017", &id, None, 7, &f));
            counts[s as usize] += 1;
        }
        assert!((15_500..16_500).contains(&counts[0]), "{counts:?}");
        assert!((1_700..2_300).contains(&counts[1]), "{counts:?}");
        assert!((1_700..2_300).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn seed_and_source_change_the_assignment() {
        let f = SplitFractions {
            train: 0.5,
            val: 0.25,
            test: 0.25,
        };
        let ids: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
        let by = |seed, source| -> Vec<Split> {
            ids.iter()
                .map(|id| assign_split(source, id, None, seed, &f))
                .collect()
        };
        assert_ne!(by(1, "a"), by(2, "a"));
        assert_ne!(by(1, "a"), by(1, "b"));
        assert_eq!(by(1, "a"), by(1, "a"));
    }

    #[test]
    fn bad_fractions_are_rejected() {
        let bad = SplitFractions {
            train: 0.9,
            val: 0.2,
            test: 0.0,
        };
        assert!(bad.validate().is_err());
        assert!(SplitFractions::default().validate().is_ok());
    }
}
