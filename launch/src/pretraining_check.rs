//! Was the encoder pretrained on the records it is evaluated on? `ecgfm eval` describes the
//! checkpoint's pretraining data (`Pretraining`) and refuses, unless told to go on, when a
//! validation or test record of the evaluation was in the split pretraining read: the same
//! dataset pretrained on another split than `train`, or another ingest of the same source
//! (another split seed) whose pretraining split holds the evaluation's held-out records. Only
//! each record's source, id and split are read (`ecgfm_data::record_ids`), not the signals.

use std::collections::{BTreeSet, HashSet};

use anyhow::{bail, Result};
use ecgfm_data::manifest::Manifest;
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
    if pretrained.config.data.source == "synth" {
        return Ok((pretraining, Vec::new()));
    }
    // The pretraining records are looked up as they are read, never held (millions of them,
    // maybe); the evaluation's own are those it read.
    let mut overlap = Overlap::new(&split, held_out);
    let sources = match same {
        true => {
            eval.records.iter().for_each(|r| overlap.note(r));
            Ok(source_names(eval.manifest))
        }
        false => visit_record_ids(&pretrained.config.data.source, |r| overlap.note(r))
            .map(|manifest| source_names(&manifest)),
    };
    match sources {
        Ok(sources) => pretraining.sources = sources,
        Err(e) => {
            let warning = format!(
                "could not verify that the validation and test records of {eval_shown} were \
                 unseen in pretraining: the pretraining data {shown} does not open ({e:#})"
            );
            return Ok((pretraining, vec![warning]));
        }
    }
    let seen = overlap.seen();
    if seen.is_empty() {
        return Ok((pretraining, Vec::new()));
    }
    let example: Vec<String> = (seen.iter().take(3))
        .map(|(source, id)| format!("{source}:{id}"))
        .collect();
    let which = match same {
        true => format!("this dataset ({shown}), split {split}"),
        false => format!("split {split} of {shown}"),
    };
    let what = format!(
        "{} of the {} validation and test records of {eval_shown} (e.g. {}) were in the \
         pretraining data, {which}: the encoder has seen them, so the metrics are optimistic",
        seen.len(),
        held_out.len(),
        example.join(", ")
    );
    if !allow {
        bail!(
            "{what}. Evaluate on records the encoder did not pretrain on (pretrain on the train \
             split of the same ingest: data.split = \"train\"; or ingest the pretraining data \
             without them: `ecgfm data inspect {eval_shown} --record-ids val,test > \
             held-out.txt`, then `ecgfm data ingest ... --exclude held-out.txt`), or pass \
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

/// The records of `held_out` among the records noted of `split` (`all`: every split). Only the
/// held-out keys and the matches are kept, never the records noted.
struct Overlap<'a> {
    split: &'a str,
    held: HashSet<(&'a str, &'a str)>,
    seen: BTreeSet<RecordKey>,
}

impl<'a> Overlap<'a> {
    fn new(split: &'a str, held_out: &'a BTreeSet<RecordKey>) -> Self {
        let held = (held_out.iter())
            .map(|(source, id)| (source.as_str(), id.as_str()))
            .collect();
        Self {
            split,
            held,
            seen: BTreeSet::new(),
        }
    }

    /// Notes a record pretraining may have read.
    fn note(&mut self, record: &RecordId) {
        if self.split != "all" && record.split != self.split {
            return;
        }
        // The set seen with the record's (shorter) lifetime: `HashSet` is covariant.
        let held: &HashSet<(&str, &str)> = &self.held;
        if held.contains(&(record.source.as_str(), record.record_id.as_str())) {
            (self.seen).insert((record.source.clone(), record.record_id.clone()));
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
        let mut overlap = Overlap::new(split, held_out);
        records.iter().for_each(|r| overlap.note(r));
        overlap.seen()
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
