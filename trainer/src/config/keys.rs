//! Which keys a configuration may hold: the four tables and each one's fields, with a
//! did-you-mean for a key that is not one of them (`unknown_key_text`).

use super::{section, upgrade_legacy_keys, ConfigError, DataConfig, OptimConfig, RunConfig};
use crate::ModelConfig;

/// The top-level tables of a configuration.
const SECTIONS: [&str; 4] = ["model", "data", "optim", "train"];

/// The keys `section` reads: its struct's fields (serde's own list), `[model]`'s `preset`, and
/// `[train]`'s older `val_batches`.
fn section_keys(section: &str) -> Vec<&'static str> {
    let (extra, fields): (&[&'static str], _) = match section {
        "model" => (&["preset"], field_names::<ModelConfig>()),
        "data" => (&[], field_names::<DataConfig>()),
        "optim" => (&[], field_names::<OptimConfig>()),
        _ => (&["val_batches"], field_names::<RunConfig>()),
    };
    fields.iter().chain(extra).copied().collect()
}

/// The field names a derived `Deserialize` of a struct reads: a deserializer that asks for
/// nothing but the list serde hands to `deserialize_struct`.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom(
                "only the field names were asked for",
            ))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// `ConfigError::UnknownKey`'s message: the key, the nearest valid one, and every valid one.
pub(super) fn unknown_key_text(key: &str, section: &str, valid: &[&str]) -> String {
    let nearest = valid
        .iter()
        .map(|v| (edit_distance(key, v), *v))
        .min()
        .filter(|&(d, v)| d <= 2.max(v.len() / 3))
        .map_or(String::new(), |(_, v)| format!(" (did you mean `{v}`?)"));
    let listed = valid
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match section {
        "" => format!("unknown section `{key}`{nearest}; the sections are {listed}"),
        _ => format!("unknown key `{key}` in [{section}]{nearest}; [{section}] reads {listed}"),
    }
}

/// Levenshtein distance between two keys, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Checks a configuration document on its own (a file, or one `--set`), so that its errors can
/// name it: every section and key is one a run reads (else the nearest that is), and each
/// section's values have their types. Rules over the whole configuration are `from_table`'s.
pub fn check_sections(doc: &toml::Table) -> Result<(), ConfigError> {
    check_keys(doc)?;
    let mut doc = doc.clone();
    upgrade_legacy_keys(&mut doc)?;
    if let Some(toml::Value::Table(model)) = doc.get_mut("model") {
        model.remove("preset");
    }
    section::<ModelConfig>(&mut doc, "model")?;
    section::<DataConfig>(&mut doc, "data")?;
    section::<OptimConfig>(&mut doc, "optim")?;
    section::<RunConfig>(&mut doc, "train")?;
    Ok(())
}

/// Every section of `doc` and every key in it is one a run reads (else the nearest that is).
pub(super) fn check_keys(doc: &toml::Table) -> Result<(), ConfigError> {
    for (name, value) in doc {
        let Some(section) = SECTIONS.iter().copied().find(|s| *s == name.as_str()) else {
            return Err(ConfigError::UnknownKey {
                key: name.clone(),
                section: "",
                valid: SECTIONS.to_vec(),
            });
        };
        let Some(table) = value.as_table() else {
            return Err(ConfigError::Value(format!("`{name}` must be a table")));
        };
        let valid = section_keys(section);
        if let Some(key) = table.keys().find(|k| !valid.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey {
                key: key.clone(),
                section,
                valid,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The did-you-mean distance is Levenshtein's: one per inserted, deleted or replaced
    /// character, also at the start of either key.
    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        for (a, b, d) in [
            ("kitten", "sitting", 3),
            ("xlr", "lr", 1),
            ("lr", "xlr", 1),
            ("xxxlr", "lr", 3),
            ("", "seed", 4),
            ("steps", "", 5),
            ("sede", "seed", 2),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} -> {b}");
        }
    }
}
