//! The built-in sweep files (`ecgfm sweep run --preset NAME`), kept as TOML in `presets/`.

/// Preset names, smallest first.
pub const NAMES: [&str; 3] = ["toy", "demo", "gpu"];

/// The text of the preset sweep file `name`.
pub fn text(name: &str) -> Option<&'static str> {
    match name {
        "toy" => Some(include_str!("../presets/toy.toml")),
        "demo" => Some(include_str!("../presets/demo.toml")),
        "gpu" => Some(include_str!("../presets/gpu.toml")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SweepPlan, SweepSpec};

    #[test]
    fn every_preset_parses_and_expands() {
        for name in NAMES {
            let spec = SweepSpec::parse(text(name).unwrap(), name).unwrap();
            let plan =
                SweepPlan::expand(&spec, name, std::path::Path::new("data"), &|_, _, _| None)
                    .unwrap();
            assert!(plan.runs.len() >= 2, "{name}");
        }
        assert!(text("huge").is_none());
    }
}
