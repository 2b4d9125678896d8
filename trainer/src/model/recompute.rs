//! `Recompute` (`train.recompute`, `--recompute`): which activations a training step reruns in
//! its backward pass instead of keeping them from the forward pass. Every mode computes the same
//! bits (the backend's ops are deterministic); they trade memory for work, as docs/model.md
//! ("Memory") measures.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recompute {
    /// Keep every activation.
    #[default]
    None,
    /// Keep the outputs of the GEMMs and attention; rerun each block's two LayerNorms and its
    /// GELU (elementwise work, no matrix product) just before the block's backward.
    Pointwise,
    /// Keep each block's input only; rerun the block's whole forward before its backward.
    Blocks,
}

impl Recompute {
    /// Words for the start-up table ("" for `None`).
    pub fn describe(self) -> &'static str {
        match self {
            Recompute::None => "",
            Recompute::Pointwise => "LayerNorms and GELU recomputed in the backward pass",
            Recompute::Blocks => "blocks recomputed in the backward pass",
        }
    }
}

impl FromStr for Recompute {
    type Err = String;

    /// `none`, `pointwise` or `blocks`; `false` and `true` (the settings before `pointwise`
    /// existed) mean `none` and `blocks`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" | "false" => Ok(Recompute::None),
            "pointwise" => Ok(Recompute::Pointwise),
            "blocks" | "true" => Ok(Recompute::Blocks),
            _ => Err(format!(
                "train.recompute must be none, pointwise or blocks, got {text:?}"
            )),
        }
    }
}

impl fmt::Display for Recompute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Recompute::None => "none",
            Recompute::Pointwise => "pointwise",
            Recompute::Blocks => "blocks",
        })
    }
}

impl Serialize for Recompute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Recompute {
    /// A mode name, or a boolean as older `config.toml` files hold.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Name(String),
        }
        match Written::deserialize(d)? {
            Written::Flag(on) => Ok(if on {
                Recompute::Blocks
            } else {
                Recompute::None
            }),
            Written::Name(name) => name.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Recompute;

    #[test]
    fn modes_parse_from_names_and_from_the_older_booleans() {
        for (text, mode) in [
            ("none", Recompute::None),
            ("pointwise", Recompute::Pointwise),
            ("blocks", Recompute::Blocks),
            ("true", Recompute::Blocks),
            ("false", Recompute::None),
        ] {
            assert_eq!(text.parse::<Recompute>().unwrap(), mode);
        }
        assert!("all"
            .parse::<Recompute>()
            .unwrap_err()
            .contains("none, pointwise or blocks"));
        #[derive(serde::Deserialize)]
        struct T {
            r: Recompute,
        }
        let old: T = toml::from_str("r = true").unwrap();
        assert_eq!(old.r, Recompute::Blocks);
        let new: T = toml::from_str("r = \"pointwise\"").unwrap();
        assert_eq!(new.r, Recompute::Pointwise);
        assert!(toml::from_str::<T>("r = \"some\"").is_err());
    }
}
