//! A dataset's samples by number of present leads, read from its manifest
//! (`counts.leads_present`): what a step really costs, since the model packs only present leads.
//! `ecgfm sweep` plans its budgets with it and `ecgfm plan --data` its step time.

use anyhow::{Context, Result};
use ecgfm_data::manifest::Manifest;
use ecgfm_data::store;
use ecgfm_sweep::expand::LeadMix;

/// The rows of `split` of the dataset at `url` by number of present leads; `None` when the
/// manifest predates the count (or the split has no row).
pub fn read(url: &str, split: &str) -> Result<Option<LeadMix>> {
    let shown = store::redact_url(url);
    let (object_store, root) =
        store::open_url(url).with_context(|| format!("opening the dataset {shown}"))?;
    let manifest = Manifest::load(object_store.as_ref(), &root)
        .with_context(|| format!("reading the manifest of {shown}"))?;
    let rows = match split {
        "all" => {
            let mut all = LeadMix::new();
            for (&leads, &n) in manifest.counts.leads_present.values().flatten() {
                *all.entry(leads).or_default() += n as f64;
            }
            all
        }
        split => manifest
            .counts
            .leads_present
            .get(split)
            .map(|rows| rows.iter().map(|(&n, &count)| (n, count as f64)).collect())
            .unwrap_or_default(),
    };
    Ok((!rows.is_empty()).then_some(rows))
}
