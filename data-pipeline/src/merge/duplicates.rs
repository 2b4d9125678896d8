//! Sources known to share recordings under other ids: CinC 2020/2021's `HR*` records are
//! PTB-XL's ECGs, split by their own patient hash independently of PTB-XL's folds. Merged, the
//! two copies of one ECG can sit in different splits (pretraining on one split then sees a test
//! record of the other); their ids differ, so nothing downstream can pair them.

use crate::manifest::SourceEntry;

/// A warning for each pair of `sources` (a merge's) known to hold the same recordings.
pub fn shared_recordings(sources: &[SourceEntry]) -> Vec<String> {
    let named = |format: &str| sources.iter().find(|s| s.format == format);
    match (named("ptbxl"), named("cinc2021")) {
        (Some(ptbxl), Some(cinc)) => vec![format!(
            "{} (CinC 2020/2021) and {} (PTB-XL) may hold the same ECGs: CinC's HR* records are \
             PTB-XL recordings, split independently of PTB-XL's folds, so a copy of a test ECG \
             of one can be in the train split of the other (leave the HR* records out of one of \
             them to rule it out)",
            cinc.name, ptbxl.name
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, format: &str) -> SourceEntry {
        SourceEntry {
            name: name.into(),
            uri: String::new(),
            format: format.into(),
            records_seen: 1,
            leads_present: Default::default(),
        }
    }

    #[test]
    fn ptbxl_with_cinc2021_is_warned_about() {
        let (ptbxl, cinc) = (source("ptbxl", "ptbxl"), source("c21", "cinc2021"));
        let warned = shared_recordings(&[ptbxl.clone(), source("x", "wfdb"), cinc.clone()]);
        assert!(
            warned.len() == 1 && warned[0].starts_with("c21 (CinC 2020/2021) and ptbxl (PTB-XL)"),
            "{warned:?}"
        );
        assert!(shared_recordings(&[ptbxl, source("c17", "cinc2017")]).is_empty());
        assert!(shared_recordings(&[cinc]).is_empty());
    }
}
