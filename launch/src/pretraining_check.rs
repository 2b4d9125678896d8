//! Was the encoder pretrained on the records it is evaluated on? `ecgfm eval` describes the
//! checkpoint's pretraining data (`Pretraining`) and refuses, unless told to go on, when a
//! validation or test record of the evaluation was in what pretraining read: the same dataset
//! pretrained on another split than `train`, another ingest of the same recordings (another
//! split seed, another source name: records are matched by their source's origin, the folder
//! they were read from, and their id), or the synthetic generator's stream of the seed that
//! wrote a synthetic evaluation set (its record N is the stream's sample N). Only each record's
//! source, id and split are read (`ecgfm_data::record_ids`), not the signals.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{bail, Result};
use ecgfm_data::manifest::{synth_origin, Manifest};
use ecgfm_data::record_ids::{visit_record_ids, RecordId};
use ecgfm_data::store::redact_url;
use ecgfm_trainer::eval::Pretraining;

use crate::pretrained::Pretrained;

/// The flag that evaluates anyway.
pub const ALLOW_FLAG: &str = "--allow-pretraining-overlap";

/// A record by source and id.
pub type RecordKey = (String, String);

/// What the evaluation knows of its own dataset: its manifest and records.
pub struct EvalData<'a> {
    pub url: &'a str,
    pub manifest: &'a Manifest,
    pub records: &'a [RecordId],
}

/// The pretraining data of `pretrained`, its sources from its manifest where it still opens at
/// the run's saved address (`ecgfm embed`'s metadata).
pub fn describe(pretrained: &Pretrained) -> Pretraining {
    let mut pretraining = described(pretrained);
    let source = &pretrained.config.data.source;
    let manifest = ecgfm_data::store::open_url(source)
        .and_then(|(store, root)| Manifest::load(store.as_ref(), &root));
    if let (false, Ok(manifest)) = (source == "synth", manifest) {
        pretraining.sources = source_names(&manifest);
    }
    pretraining
}

/// Describes the pretraining data and checks that none of `held_out` (the evaluation's
/// validation and test records) was in the split pretraining read. Fails when one was, unless
/// `allow` (then says so in the warnings it returns); warns when it cannot tell.
pub fn check(
    pretrained: &Pretrained,
    eval: &EvalData<'_>,
    held_out: &BTreeSet<RecordKey>,
    allow: bool,
) -> Result<(Pretraining, Vec<String>)> {
    let split = pretrained.config.data.split.clone();
    let shown = redact_url(&pretrained.config.data.source);
    let eval_shown = redact_url(eval.url);
    // The checkpoint's digest names the dataset wherever it is now: the evaluation's own records
    // are then the pretraining records.
    let same = pretrained.data_digest.as_deref() == Some(eval.manifest.data_digest().as_str());
    let mut pretraining = described(pretrained);
    let eval_origins = origins(eval.manifest);
    let (seen, which, how) = if pretrained.config.data.source == "synth" {
        let seed = pretrained.config.train.seed;
        let consumed = pretrained.synth_consumed.unwrap_or(0);
        let seen = synth_seen(held_out, &eval_origins, seed, consumed);
        let which = format!(
            "the synthetic generator's stream of seed {seed} (its first {consumed} samples, \
             which `ecgfm data synth --seed {seed}` writes as records synth-000000 on)"
        );
        let how = format!(
            "write the synthetic evaluation set with a seed no pretraining run used (`ecgfm \
             data synth --seed N`, N other than {seed})"
        );
        (seen, which, how)
    } else {
        // The pretraining records are looked up as they are read, never held (millions of
        // them, maybe); the evaluation's own are those it read.
        let mut overlap = Overlap::new(&split, held_out, &eval_origins);
        let sources = match same {
            true => {
                (eval.records.iter()).for_each(|r| overlap.note(r, &eval_origins));
                Ok(source_names(eval.manifest))
            }
            false => {
                let noting = &mut overlap;
                visit_record_ids(&pretrained.config.data.source, move |manifest| {
                    let origins = origins(manifest);
                    move |r| noting.note(r, &origins)
                })
                .map(|manifest| source_names(&manifest))
            }
        };
        match sources {
            Ok(sources) => pretraining.sources = sources,
            Err(e) => {
                let warning = format!(
                    "could not verify that the validation and test records of {eval_shown} \
                     were unseen in pretraining: the pretraining data {shown} does not open \
                     ({})",
                    crate::error_text(&e.into())
                );
                return Ok((pretraining, vec![warning]));
            }
        }
        let which = match same {
            true => format!("this dataset ({shown}), split {split}"),
            false => format!("split {split} of {shown}"),
        };
        let how = format!(
            "pretrain on the train split of the same ingest: data.split = \"train\"; or ingest \
             the pretraining data without them: `ecgfm data inspect {eval_shown} --record-ids \
             val,test > held-out.txt`, then `ecgfm data ingest ... --exclude held-out.txt`"
        );
        (overlap.seen(), which, how)
    };
    if seen.is_empty() {
        return Ok((pretraining, Vec::new()));
    }
    let example: Vec<String> = (seen.iter().take(3))
        .map(|(source, id)| format!("{source}:{id}"))
        .collect();
    let what = format!(
        "{} of the {} validation and test records of {eval_shown} (e.g. {}) were in the \
         pretraining data, {which}: the encoder has seen them, so the metrics are optimistic",
        seen.len(),
        held_out.len(),
        example.join(", ")
    );
    if !allow {
        bail!(
            "{what}. Evaluate on records the encoder did not pretrain on ({how}), or pass \
             {ALLOW_FLAG} to evaluate anyway (the result's warnings then say so)"
        );
    }
    Ok((pretraining, vec![format!("{ALLOW_FLAG}: {what}")]))
}

fn source_names(manifest: &Manifest) -> Vec<String> {
    manifest.sources.iter().map(|s| s.name.clone()).collect()
}

/// The description of `pretrained`'s data without opening it.
fn described(pretrained: &Pretrained) -> Pretraining {
    Pretraining::of(
        &pretrained.config,
        redact_url(&pretrained.config.data.source),
        Vec::new(),
        pretrained.step,
        pretrained.data_digest.clone(),
    )
}

/// Each source name of `manifest` with its origin (`SourceEntry::origin`).
fn origins(manifest: &Manifest) -> BTreeMap<String, String> {
    (manifest.sources.iter())
        .map(|s| (s.name.clone(), s.origin().to_string()))
        .collect()
}

/// A record's origin: its source's, or its source's name where the manifest lists no such
/// source.
fn origin_of<'a>(origins: &'a BTreeMap<String, String>, source: &'a str) -> &'a str {
    origins.get(source).map_or(source, String::as_str)
}

/// The records of `held_out` (of sources with `origins`) that are samples below `consumed` of
/// the generator's stream of `seed`: records `synth-N` of a source of that seed's origin.
fn synth_seen(
    held_out: &BTreeSet<RecordKey>,
    origins: &BTreeMap<String, String>,
    seed: u64,
    consumed: u64,
) -> Vec<RecordKey> {
    let stream = synth_origin(seed);
    (held_out.iter())
        .filter(|(source, _)| origin_of(origins, source) == stream)
        .filter(|(_, id)| {
            (id.strip_prefix("synth-"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < consumed)
        })
        .cloned()
        .collect()
}

/// The records of `held_out` among the records noted of `split` (`all`: every split), matched
/// by origin and id. Only the held-out keys and the matches are kept, never the records noted.
struct Overlap<'a> {
    split: &'a str,
    /// Each held-out record by (origin, id), with its key as the evaluation names it.
    held: HashMap<(&'a str, &'a str), &'a RecordKey>,
    seen: BTreeSet<RecordKey>,
}

impl<'a> Overlap<'a> {
    fn new(
        split: &'a str,
        held_out: &'a BTreeSet<RecordKey>,
        origins: &'a BTreeMap<String, String>,
    ) -> Self {
        let held = (held_out.iter())
            .map(|key| ((origin_of(origins, &key.0), key.1.as_str()), key))
            .collect();
        Self {
            split,
            held,
            seen: BTreeSet::new(),
        }
    }

    /// Notes a record pretraining may have read, of a dataset whose sources have `origins`.
    fn note(&mut self, record: &RecordId, origins: &BTreeMap<String, String>) {
        if self.split != "all" && record.split != self.split {
            return;
        }
        let origin = origin_of(origins, &record.source);
        if let Some(key) = self.held.get(&(origin, record.record_id.as_str())) {
            self.seen.insert((*key).clone());
        }
    }

    /// The held-out records noted, sorted.
    fn seen(self) -> Vec<RecordKey> {
        self.seen.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, split: &str) -> RecordId {
        RecordId {
            source: "cinc2017".into(),
            record_id: id.into(),
            patient_id: format!("cinc2017:{id}"),
            split: split.into(),
        }
    }

    fn overlap(
        records: &[RecordId],
        split: &str,
        held_out: &BTreeSet<RecordKey>,
    ) -> Vec<RecordKey> {
        let none = BTreeMap::new();
        let mut overlap = Overlap::new(split, held_out, &none);
        records.iter().for_each(|r| overlap.note(r, &none));
        overlap.seen()
    }

    fn keys(pairs: &[(&str, &str)]) -> BTreeSet<RecordKey> {
        (pairs.iter())
            .map(|(s, r)| (s.to_string(), r.to_string()))
            .collect()
    }

    fn named(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(name, origin)| (name.to_string(), origin.to_string()))
            .collect()
    }

    /// The same recordings ingested under another source name (`--source-name`) are the same
    /// records: matched by their source's origin, not its name.
    #[test]
    fn records_of_one_origin_overlap_whatever_their_source_is_called() {
        let held_out = keys(&[("cinc2017", "A1"), ("cinc2017", "A2")]);
        let eval = named(&[("cinc2017", "/data/cinc2017")]);
        let mut overlap = Overlap::new("train", &held_out, &eval);
        let renamed = named(&[("cinc_b", "/data/cinc2017")]);
        let elsewhere = named(&[("cinc_b", "/data/other")]);
        let read = |id: &str| RecordId {
            source: "cinc_b".into(),
            ..record(id, "train")
        };
        overlap.note(&read("A1"), &elsewhere);
        overlap.note(&read("A2"), &renamed);
        assert_eq!(overlap.seen(), [("cinc2017".to_string(), "A2".to_string())]);
    }

    /// A synthetic evaluation set of the pretraining seed holds the stream's samples as its
    /// records: those below the samples consumed were pretrained on.
    #[test]
    fn synthetic_records_are_the_stream_samples_of_their_seed() {
        let held_out = keys(&[
            ("synth", "synth-000003"),
            ("synth", "synth-000600"),
            ("other", "synth-000001"),
        ]);
        let origins = named(&[("synth", &synth_origin(0)), ("other", &synth_origin(7))]);
        let ids = |seed, consumed| -> Vec<String> {
            (synth_seen(&held_out, &origins, seed, consumed).into_iter())
                .map(|(s, r)| format!("{s}:{r}"))
                .collect()
        };
        assert_eq!(ids(0, 600), ["synth:synth-000003"]);
        assert_eq!(ids(0, 601), ["synth:synth-000003", "synth:synth-000600"]);
        assert_eq!(ids(7, 2), ["other:synth-000001"]);
        assert!(ids(1, 10_000).is_empty(), "another seed's stream");
        assert!(ids(0, 0).is_empty());
    }

    /// The refusal counts the held-out records pretrained on out of all of them and names the
    /// first few; `allow` turns it into one warning saying the same.
    #[test]
    fn the_refusal_counts_the_records_seen_of_those_held_out() {
        let mut config = ecgfm_trainer::config::TrainConfig::default_config();
        config.data.source = "synth".into();
        config.train.seed = 0;
        let pretrained = Pretrained {
            dir: "run".into(),
            step: 8,
            weights_sha256: String::new(),
            config,
            data_digest: None,
            synth_consumed: Some(10),
            encoder: Vec::new(),
        };
        let mut manifest = Manifest::new(250.0, 2500, 64);
        manifest.sources.push(ecgfm_data::manifest::SourceEntry {
            name: "mine".into(),
            uri: synth_origin(0),
            format: "synth".into(),
            records_seen: 1000,
            leads_present: BTreeMap::new(),
        });
        let eval = EvalData {
            url: "memory://overlap/ds",
            manifest: &manifest,
            records: &[],
        };
        let held_out = keys(&[
            ("mine", "synth-000001"),
            ("mine", "synth-000005"),
            ("mine", "synth-000900"),
        ]);
        let err = check(&pretrained, &eval, &held_out, false)
            .unwrap_err()
            .to_string();
        let said = "2 of the 3 validation and test records of memory://overlap/ds (e.g. \
                    mine:synth-000001, mine:synth-000005) were in the pretraining data";
        assert!(err.starts_with(said), "{err}");
        let (_, warnings) = check(&pretrained, &eval, &held_out, true).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("{ALLOW_FLAG}: {said}")),
            "{warnings:?}"
        );
    }

    #[test]
    fn only_records_of_the_pretraining_split_overlap() {
        let records = [
            record("A1", "train"),
            record("A2", "test"),
            record("A3", "val"),
        ];
        let held_out: BTreeSet<RecordKey> = [("cinc2017", "A1"), ("cinc2017", "A2"), ("x", "A3")]
            .map(|(s, r)| (s.to_string(), r.to_string()))
            .into();
        let ids = |split| -> Vec<String> {
            overlap(&records, split, &held_out)
                .into_iter()
                .map(|k| k.1)
                .collect()
        };
        assert_eq!(ids("train"), ["A1"]);
        assert_eq!(ids("test"), ["A2"]);
        assert_eq!(ids("val"), Vec::<String>::new(), "another source's A3");
        assert_eq!(ids("all"), ["A1", "A2"]);
    }

    #[test]
    fn the_overlap_is_sorted_and_distinct_as_the_intersection_of_two_sets_gives_it() {
        // Records out of order, one listed twice (its windows in two runs of rows), of two
        // sources sharing an id.
        let mut records: Vec<RecordId> = ["B2", "A9", "B2", "A1", "C3", "A5"]
            .iter()
            .map(|id| record(id, "train"))
            .collect();
        records.push(RecordId {
            source: "ptbxl".into(),
            ..record("A1", "train")
        });
        records.push(record("A7", "test"));
        let held_out: BTreeSet<RecordKey> = [
            ("ptbxl", "A1"),
            ("cinc2017", "C3"),
            ("cinc2017", "B2"),
            ("cinc2017", "A1"),
            ("cinc2017", "A7"),
            ("cinc2017", "Z0"),
        ]
        .map(|(s, r)| (s.to_string(), r.to_string()))
        .into();
        for split in ["train", "test", "all"] {
            // What `overlap` returned before it kept only the held-out keys as a set.
            let read: BTreeSet<RecordKey> = (records.iter())
                .filter(|r| split == "all" || r.split == split)
                .map(|r| (r.source.clone(), r.record_id.clone()))
                .collect();
            let expected: Vec<RecordKey> = held_out.intersection(&read).cloned().collect();
            assert_eq!(overlap(&records, split, &held_out), expected, "{split}");
        }
        let keys = |split| -> Vec<String> {
            (overlap(&records, split, &held_out).into_iter())
                .map(|(s, r)| format!("{s}:{r}"))
                .collect()
        };
        assert_eq!(
            keys("train"),
            ["cinc2017:A1", "cinc2017:B2", "cinc2017:C3", "ptbxl:A1"]
        );
        assert_eq!(keys("test"), ["cinc2017:A7"]);
    }
}
