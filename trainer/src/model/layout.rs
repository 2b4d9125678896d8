//! `ParamLayout`: where every named parameter tensor lives inside the one contiguous parameter
//! buffer (the gradient and AdamW-moment buffers use the same layout). Order and names follow
//! docs/model.md exactly.

use super::config::ModelConfig;

/// One parameter tensor inside the contiguous buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// The documented name, e.g. `enc.0.attn.qkv.weight`.
    pub name: String,
    /// First element of the tensor in the buffer.
    pub offset: usize,
    /// PyTorch shape (Linear weights are `(out, in)`).
    pub shape: Vec<usize>,
    /// Whether AdamW applies weight decay (Linear weights only).
    pub decay: bool,
}

impl ParamEntry {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a tensor with no elements (never the case for a valid config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the last element.
    pub fn end(&self) -> usize {
        self.offset + self.len()
    }
}

/// The full, ordered list of parameter tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamLayout {
    /// Every tensor in buffer order.
    pub entries: Vec<ParamEntry>,
    /// Total number of parameters (length of the buffer).
    pub total: usize,
    encoder_total: usize,
}

struct Builder {
    entries: Vec<ParamEntry>,
    total: usize,
}

impl Builder {
    /// The encoder's tensors, in the documented order.
    fn encoder(cfg: &ModelConfig) -> Self {
        let d = cfg.dim;
        let mut b = Builder {
            entries: Vec::new(),
            total: 0,
        };
        b.linear("patch_embed", d, cfg.patch);
        b.push("lead_embed".into(), &[cfg.leads, d], false);
        for i in 0..cfg.depth {
            b.block(&format!("enc.{i}"), d, cfg.mlp_dim());
        }
        b.norm("enc_norm", d);
        b
    }

    fn push(&mut self, name: String, shape: &[usize], decay: bool) {
        let entry = ParamEntry {
            name,
            offset: self.total,
            shape: shape.to_vec(),
            decay,
        };
        self.total = entry.end();
        self.entries.push(entry);
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) {
        self.push(format!("{name}.weight"), &[out, inp], true);
        self.push(format!("{name}.bias"), &[out], false);
    }

    fn norm(&mut self, name: &str, width: usize) {
        self.push(format!("{name}.weight"), &[width], false);
        self.push(format!("{name}.bias"), &[width], false);
    }

    fn block(&mut self, prefix: &str, width: usize, mlp: usize) {
        self.norm(&format!("{prefix}.ln1"), width);
        self.linear(&format!("{prefix}.attn.qkv"), 3 * width, width);
        self.linear(&format!("{prefix}.attn.proj"), width, width);
        self.norm(&format!("{prefix}.ln2"), width);
        self.linear(&format!("{prefix}.mlp.fc1"), mlp, width);
        self.linear(&format!("{prefix}.mlp.fc2"), width, mlp);
    }
}

impl ParamLayout {
    /// The layout of `cfg`'s parameters in the documented order.
    pub fn new(cfg: &ModelConfig) -> Self {
        let dd = cfg.dec_dim;
        let mut b = Builder::encoder(cfg);
        let encoder_total = b.total;
        b.linear("dec_embed", dd, cfg.dim);
        b.push("mask_token".into(), &[dd], false);
        b.push("dec_lead_embed".into(), &[cfg.leads, dd], false);
        for i in 0..cfg.dec_depth {
            b.block(&format!("dec.{i}"), dd, cfg.dec_mlp_dim());
        }
        b.norm("dec_norm", dd);
        b.linear("dec_pred", cfg.patch, dd);
        ParamLayout {
            entries: b.entries,
            total: b.total,
            encoder_total,
        }
    }

    /// The encoder alone (`patch_embed.weight` through `enc_norm.bias`, at the same offsets as
    /// in [`ParamLayout::new`]): what evaluation loads from a pretraining checkpoint.
    pub fn encoder(cfg: &ModelConfig) -> Self {
        let b = Builder::encoder(cfg);
        ParamLayout {
            encoder_total: b.total,
            entries: b.entries,
            total: b.total,
        }
    }

    /// The encoder followed by a classification head `head.weight (classes, features)`,
    /// `head.bias (classes)`: the network evaluation fine-tunes (docs/model.md, "Evaluation").
    pub fn encoder_with_head(cfg: &ModelConfig, features: usize, classes: usize) -> Self {
        let mut b = Builder::encoder(cfg);
        let encoder_total = b.total;
        b.linear("head", classes, features);
        ParamLayout {
            entries: b.entries,
            total: b.total,
            encoder_total,
        }
    }

    /// The tensor called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Parameters of the encoder (`patch_embed.weight` through `enc_norm.bias`).
    pub fn encoder_params(&self) -> usize {
        self.encoder_total
    }

    /// Parameters of the decoder (everything after the encoder).
    pub fn decoder_params(&self) -> usize {
        self.total - self.encoder_total
    }

    /// Maximal runs of adjacent tensors sharing the same decay flag: `(start, end, decay)`, in
    /// order, covering the whole buffer (the runs of the optimiser's fused step).
    pub fn decay_runs(&self) -> Vec<(usize, usize, bool)> {
        let mut runs: Vec<(usize, usize, bool)> = Vec::new();
        for e in &self.entries {
            match runs.last_mut() {
                Some(last) if last.2 == e.decay && last.1 == e.offset => last.1 = e.end(),
                _ => runs.push((e.offset, e.end(), e.decay)),
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_layout_is_contiguous_and_ordered() {
        let cfg = ModelConfig::preset("nano").unwrap();
        let layout = ParamLayout::new(&cfg);
        let mut offset = 0;
        for e in &layout.entries {
            assert_eq!(e.offset, offset, "{}", e.name);
            offset = e.end();
        }
        assert_eq!(offset, layout.total);
        assert_eq!(layout.entries[0].name, "patch_embed.weight");
        assert_eq!(layout.entries[0].shape, vec![64, 75]);
        assert_eq!(layout.entries.last().unwrap().name, "dec_pred.bias");
        let qkv = layout.get("enc.1.attn.qkv.weight").unwrap();
        assert_eq!(qkv.shape, vec![192, 64]);
        assert!(qkv.decay);
        assert!(!layout.get("mask_token").unwrap().decay);
        assert!(!layout.get("dec.0.ln2.weight").unwrap().decay);
        assert_eq!(
            layout.get("enc_norm.bias").unwrap().end(),
            layout.encoder_params()
        );
        let encoder = ParamLayout::encoder(&cfg);
        assert_eq!(encoder.entries[..], layout.entries[..encoder.entries.len()]);
        assert_eq!(encoder.total, layout.encoder_params());
        let with_head = ParamLayout::encoder_with_head(&cfg, 64, 5);
        assert_eq!(with_head.get("head.weight").unwrap().shape, vec![5, 64]);
        assert_eq!(with_head.total, encoder.total + 5 * 64 + 5);
        let runs = layout.decay_runs();
        assert_eq!(runs.first().unwrap().0, 0);
        assert_eq!(runs.last().unwrap().1, layout.total);
    }

    /// The value of a documented shape entry (`D`, `3D`, `Md`, ...); in a decoder block `D` and
    /// `M` stand for `Dd` and `Md`.
    fn dim_of(symbol: &str, cfg: &ModelConfig, decoder_block: bool) -> usize {
        let (times, name) = match symbol.strip_prefix('3') {
            Some(name) => (3, name),
            None => (1, symbol),
        };
        let value = match (name, decoder_block) {
            ("D", false) => cfg.dim,
            ("M", false) => cfg.mlp_dim(),
            ("D" | "Dd", true) | ("Dd", false) => cfg.dec_dim,
            ("M" | "Md", true) | ("Md", false) => cfg.dec_mlp_dim(),
            ("P", _) => cfg.patch,
            ("L", _) => cfg.leads,
            _ => panic!("docs/model.md: unknown dimension {symbol}"),
        };
        times * value
    }

    /// docs/model.md's parameter list, expanded for `cfg`: every tensor's name and shape in
    /// buffer order.
    fn documented_layout(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let doc = include_str!("../../../docs/model.md");
        let block = ecgfm_test_support::markdown::code_block(doc, "## Parameters", "```");
        let entry = |line: &str, i: usize, decoder_block: bool| {
            let (name, rest) = line.split_once(char::is_whitespace).unwrap();
            let shape = rest.trim_start().trim_start_matches('(');
            let (shape, _) = shape.split_once(')').unwrap();
            let name = name.replace("{i}", &i.to_string());
            let dims = shape.split(", ").map(|s| dim_of(s, cfg, decoder_block));
            (name, dims.collect())
        };
        let enc_block: Vec<&str> = block.lines().filter(|l| l.starts_with("enc.{i}")).collect();
        let mut layout = Vec::new();
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            // The encoder's blocks where its template starts, the decoder's at `dec.{i}.*`.
            if line == enc_block[0] {
                for i in 0..cfg.depth {
                    layout.extend(enc_block.iter().map(|l| entry(l, i, false)));
                }
            } else if line.starts_with("dec.{i}.*") {
                for i in 0..cfg.dec_depth {
                    for enc in &enc_block {
                        let (name, shape) = entry(enc, i, true);
                        layout.push((name.replacen("enc.", "dec.", 1), shape));
                    }
                }
            } else if !line.starts_with("enc.{i}") {
                layout.push(entry(line, 0, false));
            }
        }
        layout
    }

    #[test]
    fn the_layout_is_the_one_docs_model_md_gives_with_its_weight_decay() {
        let cfg = ModelConfig {
            // D 64, 3D 192, M 320, Dd 32, 3Dd 96, Md 160, P 75, L 12: no two alike.
            mlp_ratio: 5,
            ..ModelConfig::preset("nano").unwrap()
        };
        let layout = ParamLayout::new(&cfg);
        let ours: Vec<(String, Vec<usize>)> = layout
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.shape.clone()))
            .collect();
        assert_eq!(ours, documented_layout(&cfg));
        // "Weight decay applies to the Linear weights only (...)".
        let doc = include_str!("../../../docs/model.md");
        let (_, rule) = doc.split_once("Weight decay applies to").unwrap();
        let (listed, _) = rule.split_once(')').unwrap();
        let patterns: Vec<&str> = ecgfm_test_support::markdown::code_spans(listed).collect();
        assert!(patterns.len() >= 7, "{patterns:?}");
        for e in &layout.entries {
            let listed = patterns.iter().any(|p| match p.strip_prefix('*') {
                Some(suffix) => e.name.ends_with(suffix),
                None => e.name == *p,
            });
            assert_eq!(e.decay, listed, "{}", e.name);
        }
    }

    #[test]
    fn block_parameter_count_is_twelve_d_squared_plus_thirteen_d() {
        let cfg = ModelConfig::preset("base").unwrap();
        let layout = ParamLayout::new(&cfg);
        let d = cfg.dim;
        let block: usize = layout
            .entries
            .iter()
            .filter(|e| e.name.starts_with("enc.0."))
            .map(ParamEntry::len)
            .sum();
        assert_eq!(block, 12 * d * d + 13 * d);
        let expected_encoder = d * cfg.patch + d + cfg.leads * d + cfg.depth * block + 2 * d;
        assert_eq!(layout.encoder_params(), expected_encoder);
    }
}
