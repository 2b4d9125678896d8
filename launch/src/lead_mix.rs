//! A dataset's samples by number of present leads, read from its manifest
//! (`counts.leads_present`, or each source's with `data.repeat`): what a step really costs,
//! since the model packs only present leads. `ecgfm sweep` plans its budgets with it and
//! `ecgfm plan --data` its step time.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store;
use ecgfm_sweep::expand::LeadMix;

/// The rows of `split` (or `all`) of the dataset at `url` by number of present leads, each
/// source's rows counted `repeat[source]` times (once when not named), as an epoch reads them
/// (a fractional weight's part counted as its expected rows);
/// `None` when the manifest predates the counts (or, with repeats, the counts per source), or
/// the split has no row.
pub fn read(url: &str, split: &str, repeat: &BTreeMap<String, f64>) -> Result<Option<LeadMix>> {
    let shown = store::redact_url(url);
    let (object_store, root) =
        store::open_url(url).with_context(|| format!("opening the dataset {shown}"))?;
    let manifest = Manifest::load(object_store.as_ref(), &root)
        .with_context(|| format!("reading the manifest of {shown}"))?;
    let rows = if repeat.is_empty() {
        let rows = manifest.leads_in(split).into_iter();
        rows.map(|(leads, n)| (leads, n as f64)).collect()
    } else {
        match manifest.leads_by_source(split) {
            Some(by_source) => {
                if let Some(unknown) = repeat.keys().find(|s| !by_source.contains_key(*s)) {
                    let known: Vec<&str> = by_source.keys().map(String::as_str).collect();
                    bail!(
                        "the repeat weights name source {unknown:?}, which {shown} does not hold \
                         (its sources: {})",
                        known.join(", ")
                    );
                }
                repeated(&by_source, repeat)
            }
            None => return Ok(None),
        }
    };
    Ok((!rows.is_empty() && rows.values().sum::<f64>() > 0.0).then_some(rows))
}

/// Rows by present leads over sources, source `s` counted `repeat[s]` times (1 when not named).
fn repeated(
    by_source: &BTreeMap<String, BTreeMap<u8, u64>>,
    repeat: &BTreeMap<String, f64>,
) -> LeadMix {
    let mut rows = LeadMix::new();
    for (source, by_leads) in by_source {
        let times = repeat.get(source).copied().unwrap_or(1.0);
        for (&leads, &n) in by_leads {
            *rows.entry(leads).or_default() += times * n as f64;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_weight_each_sources_rows() {
        let by_source = BTreeMap::from([
            ("cinc2017".to_string(), BTreeMap::from([(1, 700)])),
            ("ptbxl".to_string(), BTreeMap::from([(12, 30), (11, 5)])),
        ]);
        let repeat = BTreeMap::from([("ptbxl".to_string(), 4.0)]);
        assert_eq!(
            repeated(&by_source, &repeat),
            BTreeMap::from([(1, 700.0), (11, 20.0), (12, 120.0)])
        );
        let left_out = BTreeMap::from([("cinc2017".to_string(), 0.0)]);
        let mix = repeated(&by_source, &left_out);
        assert_eq!(mix[&1], 0.0);
        assert_eq!(mix[&12], 30.0);
        let halved = BTreeMap::from([("cinc2017".to_string(), 0.5)]);
        assert_eq!(repeated(&by_source, &halved)[&1], 350.0);
    }
}
