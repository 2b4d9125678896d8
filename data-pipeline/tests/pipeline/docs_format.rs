//! docs/dataset-format.md against the code: its `manifest.json` example is one the manifest
//! type reads and writes back unchanged (every field it shows exists, with its type, and every
//! field the type requires is shown), and every field of a manifest ingest writes is documented.

use std::collections::BTreeSet;

use ecgfm_data::manifest::Manifest;
use serde_json::Value;

use crate::ingest_support::small_shards_synth;

/// Fields whose values are maps keyed by data (labels, splits, lead counts, quarantine kinds)
/// or free-form (the preprocessing settings): their keys are not field names.
const MAPS: [&str; 5] = [
    "preprocessing",
    "labels",
    "splits",
    "leads_present",
    "quarantine",
];

/// The JSON example of docs/dataset-format.md.
fn documented() -> Value {
    let guide = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dataset-format.md");
    let text = std::fs::read_to_string(guide).unwrap();
    let example = ecgfm_test_support::markdown::code_block(&text, "## `manifest.json`", "```json");
    serde_json::from_str(example).expect("the example is JSON")
}

/// Every object key of `value`, not descending into the maps of [`MAPS`].
fn field_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                names.insert(name.clone());
                if !(MAPS.contains(&name.as_str()) && inner.is_object()) {
                    field_names(inner, names);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| field_names(i, names)),
        _ => {}
    }
}

#[test]
fn the_documented_manifest_reads_and_writes_back_unchanged() {
    let example = documented();
    let manifest: Manifest = serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("docs/dataset-format.md's manifest does not read: {e}"));
    // Through text, as a manifest is written (an f32 such as 0.001 as written, not widened).
    let written: Value = serde_json::from_str(&serde_json::to_string(&manifest).unwrap()).unwrap();
    assert_eq!(written, example);
}

#[test]
fn every_field_of_a_written_manifest_is_documented() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap();
    small_shards_synth(url, 12, 3, 8);
    let written = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    let mut names = BTreeSet::new();
    field_names(&serde_json::from_str(&written).unwrap(), &mut names);
    let mut shown = BTreeSet::new();
    field_names(&documented(), &mut shown);
    let missing: Vec<&String> = names.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "undocumented manifest fields: {missing:?}"
    );
    assert!(names.len() > 20, "{names:?}");
}
