//! Missing-sample policy: non-finite samples (NaN, ±inf) are bridged before any filtering and
//! remembered in a mask, so the resampler and filters see a continuous signal and the quality
//! checks (and the final windows, which zero them) know where the data was missing.
//!
//! Gaps between two valid samples are filled by linear interpolation; leading and trailing gaps
//! hold the nearest valid value. Gap length does not matter: long gaps are filled too and then
//! flagged by the missing-fraction quality check.

/// What [`fill_gaps`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapFill {
    /// Every sample was finite; nothing changed.
    Complete,
    /// Some samples were missing and have been filled; `true` marks them.
    Filled(Vec<bool>),
    /// No sample is finite: the lead carries no data.
    AllMissing,
}

/// Fills the non-finite samples of `x` in place and reports which ones were missing.
pub fn fill_gaps(x: &mut [f64]) -> GapFill {
    let Some(first_bad) = x.iter().position(|v| !v.is_finite()) else {
        return GapFill::Complete;
    };
    let mask: Vec<bool> = x.iter().map(|v| !v.is_finite()).collect();
    let Some(first_good) = mask.iter().position(|m| !m) else {
        return GapFill::AllMissing;
    };
    let head = x[first_good];
    x[..first_good].fill(head);
    // `i - 1` is valid: the first sample after a leading gap, or the one just before the first gap.
    let mut i = first_bad.max(first_good + 1);
    let mut last_good = i - 1;
    while i < x.len() {
        if !mask[i] {
            last_good = i;
            i += 1;
            continue;
        }
        let gap_end = (i..x.len()).find(|&j| !mask[j]);
        match gap_end {
            Some(end) => {
                let (a, b) = (x[last_good], x[end]);
                let span = (end - last_good) as f64;
                for (j, v) in x.iter_mut().enumerate().take(end).skip(i) {
                    *v = a + (b - a) * ((j - last_good) as f64 / span);
                }
                i = end;
            }
            None => {
                let tail = x[last_good];
                x[i..].fill(tail);
                break;
            }
        }
    }
    GapFill::Filled(mask)
}
