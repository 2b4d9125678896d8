//! What the tests that train short runs share: a configuration from `--set`-style assignments
//! and a fresh run directory.

use ecgfm_trainer::config::{self, TrainConfig};
use std::path::PathBuf;

/// The default configuration with `assignments` (`key=value`) applied.
pub fn config_from(assignments: &[String]) -> TrainConfig {
    let mut doc = toml::Table::new();
    for assignment in assignments {
        config::apply_override(&mut doc, assignment).unwrap();
    }
    TrainConfig::from_table(doc).unwrap()
}

/// An empty run directory `ecgfm-{test}-{name}-{pid}` under the system's temporary folder.
pub fn run_dir(test: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecgfm-{test}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
