//! What the ranks of a data-parallel job check with each other before their first step: that
//! they run the same configuration on the same data (the per-rank settings aside), and that they
//! resumed from the same checkpoint. Each rank sends its own to every other, so every rank
//! stops with the same error, naming what differs and on which ranks.

use std::collections::BTreeMap;
use std::path::Path;

use ecgfm_kernels::Backend;

use super::resume::flat_settings;
use super::TrainError;
use crate::checkpoint;
use crate::config::TrainConfig;
use crate::data_parallel::DataParallel;

/// Settings each rank may choose for itself: where and how fast it computes, not what.
pub(super) const PER_RANK_SETTINGS: [&str; 5] = [
    "train.threads",
    "train.device",
    "train.recompute",
    "data.decode_threads",
    "data.prefetch_batches",
];

/// Fails unless every rank runs `config` (its settings other than [`PER_RANK_SETTINGS`]) on the
/// same data: the dataset with digest `data_digest` wherever each rank reads it from, or, for a
/// source without one, the same `data.source`.
pub(super) fn agree_on_config<B: Backend>(
    dp: &mut DataParallel<B>,
    config: &TrainConfig,
    data_digest: Option<&str>,
) -> Result<(), TrainError> {
    let mut settings = flat_settings(config);
    for key in PER_RANK_SETTINGS {
        settings.remove(key);
    }
    if let Some(digest) = data_digest {
        settings.insert(
            "data.source".into(),
            format!("the dataset of digest {digest}"),
        );
    }
    let mine = serde_json::to_vec(&settings).expect("settings serialise");
    let ranks: Vec<BTreeMap<String, String>> = dp
        .all_gather_bytes(&mine)?
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).unwrap_or_default())
        .collect();
    let keys: std::collections::BTreeSet<&String> = ranks.iter().flat_map(|r| r.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter_map(|key| {
            let values: Vec<Option<&String>> = ranks.iter().map(|r| r.get(key)).collect();
            let unset = "unset".to_string();
            let values: Vec<&String> = values.iter().map(|v| v.unwrap_or(&unset)).collect();
            let groups: Vec<String> = by_value(&values)
                .into_iter()
                .map(|(value, ranks)| format!("{value} on {ranks}"))
                .collect();
            (groups.len() > 1).then(|| format!("{key} is {}", groups.join(" but ")))
        })
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(TrainError::RanksDiffer(format!(
        "their configurations differ: {}; start every rank with the same command and \
         settings (only {} may differ between ranks)",
        differing.join("; "),
        PER_RANK_SETTINGS.join(", ")
    )))
}

/// Fails unless every rank resumed from the same checkpoint (the same step and the same
/// weights: the SHA-256 its `COMPLETE` marker records for them) or every rank starts fresh.
/// `resumed`: this rank's checkpoint step and folder.
pub(super) fn agree_on_checkpoint<B: Backend>(
    dp: &mut DataParallel<B>,
    resumed: Option<(u64, &Path)>,
) -> Result<(), TrainError> {
    let mine = match resumed {
        Some((step, dir)) => format!(
            "from step {step} ({}, weights SHA-256 {})",
            dir.display(),
            checkpoint::weights_sha256(dir)?
        ),
        None => "with no checkpoint (a fresh start)".to_string(),
    };
    let ranks: Vec<String> = dp
        .all_gather_bytes(mine.as_bytes())?
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    if ranks.iter().all(|r| *r == ranks[0]) {
        return Ok(());
    }
    let refs: Vec<&String> = ranks.iter().collect();
    let groups: Vec<String> = by_value(&refs)
        .into_iter()
        .map(|(from, ranks)| format!("{ranks} resumed {from}"))
        .collect();
    Err(TrainError::RanksDiffer(format!(
        "they resumed from different checkpoints: {}; every rank must see the same run folder \
         (a shared file system) with the same newest intact checkpoint",
        groups.join(", but ")
    )))
}

/// Each value with the ranks that have it ("rank 1", "ranks 0, 2"), in order of first appearance.
fn by_value<'a>(values: &[&'a String]) -> Vec<(&'a String, String)> {
    let mut groups: Vec<(&String, Vec<String>)> = Vec::new();
    for (rank, &value) in values.iter().enumerate() {
        match groups.iter_mut().find(|(v, _)| *v == value) {
            Some((_, ranks)) => ranks.push(rank.to_string()),
            None => groups.push((value, vec![rank.to_string()])),
        }
    }
    groups
        .into_iter()
        .map(|(value, ranks)| {
            let s = if ranks.len() > 1 { "s" } else { "" };
            (value, format!("rank{s} {}", ranks.join(", ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::by_value;

    #[test]
    fn values_are_listed_with_their_ranks() {
        let (a, b) = ("1".to_string(), "2".to_string());
        let groups = by_value(&[&a, &b, &a]);
        assert_eq!(
            groups,
            vec![(&a, "ranks 0, 2".into()), (&b, "rank 1".into())]
        );
    }
}
