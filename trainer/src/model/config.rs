//! `ModelConfig`: the dimensions of the ViT masked autoencoder, its presets and their validation
//! (the rules and the preset table are in docs/model.md).

use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// Every dimension of the model. Missing fields in a serialised config take the `tiny` preset's
/// values (see `Default`); unknown fields are an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Number of leads L (always 12 for standard ECGs).
    pub leads: usize,
    /// Samples per lead S (the model input length).
    pub samples: usize,
    /// Patch length P in samples; `samples` must be a multiple of it.
    pub patch: usize,
    /// Encoder width D.
    pub dim: usize,
    /// Encoder blocks.
    pub depth: usize,
    /// Encoder attention heads H.
    pub heads: usize,
    /// Decoder width Dd.
    pub dec_dim: usize,
    /// Decoder blocks.
    pub dec_depth: usize,
    /// Decoder attention heads Hd.
    pub dec_heads: usize,
    /// MLP hidden width as a multiple of the block width.
    pub mlp_ratio: usize,
    /// Fraction r of each present lead's patches that is masked.
    pub mask_ratio: f64,
    /// Which patches the mask hides: each lead its own (default) or the same moments in every
    /// lead. Written to a config only when not the default, so configs of before it read and
    /// write as they did.
    #[serde(skip_serializing_if = "Masking::is_per_lead")]
    pub masking: Masking,
    /// Normalise each target patch by its own mean and unbiased variance.
    pub norm_pix: bool,
}

/// Which patches of a sample the mask hides (`model.masking`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Masking {
    /// Each present lead hides its own N - K random patches (ST-MEM's masking): the moment a
    /// masked patch covers is usually visible in another lead.
    #[default]
    PerLead,
    /// Every present lead hides the same N - K moments: no lead shows what a masked patch covers,
    /// so it is reconstructed from the moments around it.
    Aligned,
}

impl Masking {
    fn is_per_lead(&self) -> bool {
        *self == Masking::PerLead
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::with_widths(192, 12, 3, 256, 4, 4)
    }
}

impl ModelConfig {
    /// The preset names accepted by [`ModelConfig::preset`], smallest first.
    pub const PRESETS: [&'static str; 6] = ["nano", "tiny", "small", "base", "large", "huge"];

    fn with_widths(
        dim: usize,
        depth: usize,
        heads: usize,
        dec_dim: usize,
        dec_depth: usize,
        dec_heads: usize,
    ) -> Self {
        ModelConfig {
            leads: 12,
            samples: 2250,
            patch: 75,
            dim,
            depth,
            heads,
            dec_dim,
            dec_depth,
            dec_heads,
            mlp_ratio: 4,
            mask_ratio: 0.75,
            masking: Masking::PerLead,
            norm_pix: true,
        }
    }

    /// The named preset of docs/model.md with the default input shape (12 x 2250, patch 75).
    pub fn preset(name: &str) -> Result<ModelConfig, ModelError> {
        let cfg = match name {
            "nano" => Self::with_widths(64, 2, 2, 32, 1, 2),
            "tiny" => Self::with_widths(192, 12, 3, 256, 4, 4),
            "small" => Self::with_widths(384, 12, 6, 256, 4, 4),
            "base" => Self::with_widths(768, 12, 12, 256, 4, 4),
            "large" => Self::with_widths(1024, 24, 16, 256, 4, 4),
            "huge" => Self::with_widths(1280, 32, 16, 256, 4, 4),
            other => return Err(ModelError::UnknownPreset(other.to_string())),
        };
        Ok(cfg)
    }

    /// Checks every rule the model relies on and names the first one broken.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::InvalidConfig(msg));
        for (name, value) in [
            ("leads", self.leads),
            ("samples", self.samples),
            ("patch", self.patch),
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("dec_dim", self.dec_dim),
            ("dec_depth", self.dec_depth),
            ("dec_heads", self.dec_heads),
            ("mlp_ratio", self.mlp_ratio),
        ] {
            if value == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.patch < 2 {
            return bad(format!(
                "patch must be at least 2 (the norm-pix target uses the unbiased variance), got {}",
                self.patch
            ));
        }
        if !self.samples.is_multiple_of(self.patch) {
            return bad(format!(
                "samples ({}) must be a multiple of patch ({})",
                self.samples, self.patch
            ));
        }
        if !self.dim.is_multiple_of(self.heads) {
            return bad(format!(
                "dim ({}) must be divisible by heads ({})",
                self.dim, self.heads
            ));
        }
        if !self.dec_dim.is_multiple_of(self.dec_heads) {
            return bad(format!(
                "dec_dim ({}) must be divisible by dec_heads ({})",
                self.dec_dim, self.dec_heads
            ));
        }
        if !self.dim.is_multiple_of(2) || !self.dec_dim.is_multiple_of(2) {
            return bad(format!(
                "dim ({}) and dec_dim ({}) must be even (sin-cos position embedding)",
                self.dim, self.dec_dim
            ));
        }
        if !(self.mask_ratio >= 0.0 && self.mask_ratio < 1.0) {
            return bad(format!(
                "mask_ratio must be in [0, 1), got {}",
                self.mask_ratio
            ));
        }
        if self.visible_per_lead() >= self.patches_per_lead() {
            return bad(format!(
                "mask_ratio {} masks no patch of a lead with {} patches",
                self.mask_ratio,
                self.patches_per_lead()
            ));
        }
        Ok(())
    }

    /// N = samples / patch.
    pub fn patches_per_lead(&self) -> usize {
        self.samples / self.patch
    }

    /// K = max(1, floor(N * (1 - r))): visible patches per present lead.
    pub fn visible_per_lead(&self) -> usize {
        let n = self.patches_per_lead() as f64;
        ((n * (1.0 - self.mask_ratio)).floor() as usize).max(1)
    }

    /// N - K: masked patches per present lead.
    pub fn masked_per_lead(&self) -> usize {
        self.patches_per_lead() - self.visible_per_lead()
    }

    /// Encoder MLP hidden width M.
    pub fn mlp_dim(&self) -> usize {
        self.mlp_ratio * self.dim
    }

    /// Decoder MLP hidden width Md.
    pub fn dec_mlp_dim(&self) -> usize {
        self.mlp_ratio * self.dec_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_the_table() {
        for name in ModelConfig::PRESETS {
            let cfg = ModelConfig::preset(name).unwrap();
            cfg.validate().unwrap();
            assert_eq!(cfg.patches_per_lead(), 30);
            assert_eq!(cfg.visible_per_lead(), 7);
        }
        let base = ModelConfig::preset("base").unwrap();
        assert_eq!((base.dim, base.depth, base.heads), (768, 12, 12));
        assert!(matches!(
            ModelConfig::preset("giant"),
            Err(ModelError::UnknownPreset(_))
        ));
    }

    #[test]
    fn presets_are_those_of_docs_model_md() {
        let doc = include_str!("../../../docs/model.md");
        let rows = ecgfm_test_support::markdown::table(doc, "| name | D | depth |");
        let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ModelConfig::PRESETS);
        for row in rows {
            let cfg = ModelConfig::preset(&row[0]).unwrap();
            let ours = [
                cfg.dim,
                cfg.depth,
                cfg.heads,
                cfg.dec_dim,
                cfg.dec_depth,
                cfg.dec_heads,
            ];
            let documented: Vec<usize> = row[1..].iter().map(|v| v.parse().unwrap()).collect();
            assert_eq!(ours[..], documented[..], "{}", row[0]);
        }
    }

    #[test]
    fn validation_names_the_broken_rule() {
        let mut cfg = ModelConfig::preset("nano").unwrap();
        cfg.samples = 2251;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("multiple of patch"), "{err}");
        let mut cfg = ModelConfig::preset("nano").unwrap();
        cfg.heads = 3;
        assert!(cfg.validate().unwrap_err().to_string().contains("heads"));
        let mut cfg = ModelConfig::preset("nano").unwrap();
        cfg.dim = 66;
        cfg.heads = 3;
        cfg.validate().unwrap();
        cfg.dim = 63;
        assert!(cfg.validate().unwrap_err().to_string().contains("even"));
    }

    #[test]
    fn serde_fills_defaults_and_rejects_unknown_fields() {
        let cfg: ModelConfig = serde_json::from_str(r#"{"dim": 64, "heads": 2}"#).unwrap();
        assert_eq!(cfg.dim, 64);
        assert_eq!(cfg.depth, 12);
        assert!(serde_json::from_str::<ModelConfig>(r#"{"dimm": 64}"#).is_err());
    }

    #[test]
    fn masking_is_written_only_when_not_the_default() {
        let mut cfg = ModelConfig::preset("nano").unwrap();
        let text = toml::to_string(&cfg).unwrap();
        assert!(!text.contains("masking"), "{text}");
        assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), cfg);
        cfg.masking = Masking::Aligned;
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("masking = \"aligned\""), "{text}");
        assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), cfg);
        assert!(toml::from_str::<ModelConfig>("masking = \"diagonal\"").is_err());
    }
}
