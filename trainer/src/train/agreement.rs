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
    use super::{agree_on_checkpoint, agree_on_config, by_value, TrainError};
    use crate::config::TrainConfig;
    use crate::data_parallel::{DataParallel, DpOptions};
    use crate::loopback_ranks::on_loopback_ranks;
    use ecgfm_kernels::CpuBackend;
    use std::path::Path;

    /// Each rank's outcome of `check` on two loopback ranks.
    fn on_two_ranks(
        check: impl Fn(usize, &mut DataParallel<CpuBackend>) -> Result<(), TrainError> + Sync,
    ) -> Vec<Result<(), String>> {
        on_loopback_ranks(2, |coll| {
            let rank = coll.rank();
            let mut dp = DataParallel::over_cpu(coll, 8, DpOptions::default()).unwrap();
            check(rank, &mut dp).map_err(|e| e.to_string())
        })
    }

    /// `agree_on_config` with rank r running `configs[r]` on the data of digest `digests[r]`.
    fn agree(configs: [TrainConfig; 2], digests: [Option<&str>; 2]) -> Vec<Result<(), String>> {
        on_two_ranks(|rank, dp| agree_on_config(dp, &configs[rank], digests[rank]))
    }

    /// Ranks that differ only in per-rank settings agree; ranks that differ in anything else
    /// both stop, naming the setting and each rank's value.
    #[test]
    fn ranks_agree_unless_a_shared_setting_differs() {
        let base = TrainConfig::default_config();
        let mut own = base.clone();
        own.train.threads = base.train.threads + 3;
        own.data.decode_threads = base.data.decode_threads + 1;
        assert_eq!(agree([base.clone(), own], [None, None]), [Ok(()), Ok(())]);

        let mut seed = base.clone();
        seed.train.seed = base.train.seed + 1;
        for outcome in agree([base.clone(), seed], [None, None]) {
            let err = outcome.unwrap_err();
            let said = format!(
                "train.seed is {} on rank 0 but {} on rank 1",
                base.train.seed,
                base.train.seed + 1
            );
            assert!(err.contains(&said), "{err}");
        }
    }

    /// A dataset is the same data wherever each rank reads it from when its digest is the same,
    /// and other data when the digests differ.
    #[test]
    fn ranks_reading_one_dataset_from_different_places_agree() {
        let mut a = TrainConfig::default_config();
        a.data.source = "/mnt/a/ecg".into();
        let mut b = a.clone();
        b.data.source = "/mnt/b/ecg".into();
        let same = agree([a.clone(), b.clone()], [Some("abc"), Some("abc")]);
        assert_eq!(same, [Ok(()), Ok(())]);
        let other = agree([a, b], [Some("abc"), Some("abd")]);
        for outcome in other {
            let err = outcome.unwrap_err();
            assert!(
                err.contains("data.source is the dataset of digest abc"),
                "{err}"
            );
        }
    }

    /// `agree_on_checkpoint` with rank r resumed from `resumed[r]`.
    fn agree_on_resume(resumed: [Option<(u64, &Path)>; 2]) -> Vec<Result<(), String>> {
        on_two_ranks(|rank, dp| agree_on_checkpoint(dp, resumed[rank]))
    }

    /// Ranks agree when all start fresh or all resumed the same weights at the same step; a
    /// rank that starts fresh beside one that resumed, or ranks that resumed other weights,
    /// stop every rank.
    #[test]
    fn ranks_agree_only_on_the_same_checkpoint() {
        let root = tempfile::tempdir().unwrap();
        // Checkpoint folders as an older ecgfm sealed them (a bare `ok` marker): the weights'
        // SHA-256 is that of the file.
        let folder = |name: &str, weights: &[u8]| {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("model.safetensors"), weights).unwrap();
            std::fs::write(dir.join("COMPLETE"), b"ok\n").unwrap();
            dir
        };
        let (a, b) = (folder("a", b"weights a"), folder("b", b"weights b"));
        assert_eq!(agree_on_resume([None, None]), [Ok(()), Ok(())]);
        let same = [Some((3, a.as_path())), Some((3, a.as_path()))];
        assert_eq!(agree_on_resume(same), [Ok(()), Ok(())]);
        let differing = [
            [Some((3, a.as_path())), None],
            [Some((3, a.as_path())), Some((3, b.as_path()))],
            [Some((3, a.as_path())), Some((4, a.as_path()))],
        ];
        for resumed in differing {
            for outcome in agree_on_resume(resumed) {
                let err = outcome.unwrap_err();
                assert!(err.contains("resumed from different checkpoints"), "{err}");
            }
        }
    }

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
