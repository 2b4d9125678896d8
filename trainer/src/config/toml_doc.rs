//! The configuration as a TOML document before it is resolved: reading a file, merging one
//! document over another, `--set key=value` overrides, and the rewriting of keys older files
//! spell otherwise.

use super::{ConfigError, RunConfig};
use std::path::Path;

/// Rewrites the settings older files spell otherwise into today's: `train.val_batches = N`
/// (the validation set was N batches of the first batch size) becomes `train.val_windows =
/// N x train.batch_size`, the same number of windows. Apply it to each file as read, before
/// flags change its batch size (`from_table` applies it too). A document giving both is
/// refused.
pub fn upgrade_legacy_keys(doc: &mut toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(train)) = doc.get_mut("train") else {
        return Ok(());
    };
    let Some(batches) = train.remove("val_batches") else {
        return Ok(());
    };
    if train.contains_key("val_windows") {
        return Err(ConfigError::Value(
            "train.val_batches is the older form of train.val_windows: give only val_windows"
                .into(),
        ));
    }
    let (Some(batches), batch) = (batches.as_integer(), train.get("batch_size")) else {
        return Err(ConfigError::Value(format!(
            "train.val_batches must be an integer, got {batches}"
        )));
    };
    let batch = match batch {
        Some(b) => b.as_integer().ok_or_else(|| {
            ConfigError::Value(format!("train.batch_size must be an integer, got {b}"))
        })?,
        None => RunConfig::default().batch_size as i64,
    };
    let windows = batches.checked_mul(batch).ok_or_else(|| {
        ConfigError::Value(format!(
            "train.val_batches {batches} x train.batch_size {batch} is too large"
        ))
    })?;
    train.insert("val_windows".into(), toml::Value::Integer(windows));
    Ok(())
}

/// Reads a TOML file into a table.
pub fn read_toml_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
}

/// Merges `overlay` into `base`, recursing into tables.
pub fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies one `key.path=value` override. The value is read as TOML (`3e-4`, `true`, `"x"`,
/// `[1, 2]`); anything that is not valid TOML is taken as a plain string.
pub fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<(), ConfigError> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| ConfigError::BadOverride(assignment.to_string()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(ConfigError::BadOverride(assignment.to_string()));
    }
    let raw = raw.trim();
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    set_path(doc, key, value)
}

/// Sets `value` at the dotted `key`, creating tables on the way.
pub fn set_path(doc: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().expect("key is not empty");
    let mut table = doc;
    for (i, part) in parents.iter().enumerate() {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::NotATable {
            key: key.to_string(),
            parent: parts[..=i].join("."),
        })?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}
