//! Locating the shared real-data folder for the integration tests.

use std::path::PathBuf;

/// The shared data folder (`ECGFM_SHARED_DATA` or `<workspace>/../shared/data`), or `None`
/// after printing a skip message when it is absent.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("ECGFM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping {test}: shared data folder {} not found",
            dir.display()
        );
        None
    }
}
