//! Configuration resolution: presets, overrides, validation, and the config.toml round trip.

use ecgfm_trainer::config::{self, apply_override, merge, TrainConfig};
use ecgfm_trainer::ModelConfig;

fn table(text: &str) -> toml::Table {
    text.parse().expect("test TOML parses")
}

#[test]
fn defaults_are_nano_on_synthetic_data() {
    let config = TrainConfig::default_config();
    assert_eq!(config.preset, "nano");
    assert_eq!(config.model, ModelConfig::preset("nano").unwrap());
    assert_eq!(config.data.source, "synth");
    assert!(config.train.steps >= 100);
}

/// The defaults the documentation states: the README's default run, docs/model.md's AdamW.
#[test]
fn the_documented_defaults_are_the_defaults() {
    let c = TrainConfig::default_config();
    let readme = ecgfm_test_support::markdown::one_line(include_str!("../../README.md"));
    let run = format!(
        "The default run is {} steps of batch {}",
        c.train.steps, c.train.batch_size
    );
    assert!(readme.contains(&run), "README: {run}");
    let validation = format!(
        "validation loss every {} steps on {} held-out windows",
        c.train.val_every, c.train.val_windows
    );
    assert!(readme.contains(&validation), "README: {validation}");
    let model = include_str!("../../docs/model.md");
    let o = &c.optim;
    let adamw = format!(
        "Defaults b1 = {}, b2 = {}, eps = {:e}, wd = {}.",
        o.beta1, o.beta2, o.eps, o.weight_decay
    );
    assert!(model.contains(&adamw), "docs/model.md: {adamw}");
}

#[test]
fn preset_then_explicit_fields_win() {
    let config = TrainConfig::from_table(table(
        "[model]\npreset = \"tiny\"\ndepth = 2\n[optim]\nlr = 3e-4\n",
    ))
    .unwrap();
    let tiny = ModelConfig::preset("tiny").unwrap();
    assert_eq!(config.model.dim, tiny.dim);
    assert_eq!(config.model.depth, 2);
    assert_eq!(config.optim.lr, 3e-4);
}

#[test]
fn overrides_parse_toml_values_and_create_tables() {
    let mut doc = toml::Table::new();
    apply_override(&mut doc, "optim.lr=2e-4").unwrap();
    apply_override(&mut doc, "model.norm_pix=false").unwrap();
    apply_override(&mut doc, "data.source=memory://ds").unwrap();
    apply_override(&mut doc, "train.batch_size = 8").unwrap();
    let config = TrainConfig::from_table(doc).unwrap();
    assert_eq!(config.optim.lr, 2e-4);
    assert!(!config.model.norm_pix);
    assert_eq!(config.data.source, "memory://ds");
    assert_eq!(config.train.batch_size, 8);
}

#[test]
fn bad_overrides_and_unknown_fields_are_rejected() {
    let mut doc = toml::Table::new();
    assert!(apply_override(&mut doc, "no-equals-sign").is_err());
    assert!(apply_override(&mut doc, "=3").is_err());
    apply_override(&mut doc, "optim.lr=1").unwrap();
    assert!(apply_override(&mut doc, "optim.lr.x=1").is_err());

    let typo = TrainConfig::from_table(table("[optim]\nlearning_rate = 1e-3\n"));
    assert!(typo.unwrap_err().to_string().contains("learning_rate"));
    let model_typo = TrainConfig::from_table(table("[model]\ndepht = 3\n"));
    assert!(model_typo.unwrap_err().to_string().contains("depht"));
    // A typo names its own section and the nearest key; a section typo lists `model` too.
    for (text, said) in [
        (
            "[train]\nstep = 5\n",
            "unknown key `step` in [train] (did you mean `steps`?); [train] reads `steps`, `batch_size`,",
        ),
        ("[optim]\nlrr = 1\n", "unknown key `lrr` in [optim] (did you mean `lr`?)"),
        ("[data]\nsplits = \"val\"\n", "in [data] (did you mean `split`?)"),
        (
            "[optm]\nlr = 1\n",
            "unknown section `optm` (did you mean `optim`?); the sections are `model`, `data`, `optim`, `train`",
        ),
        ("[model]\nmaskng = \"aligned\"\n", "(did you mean `masking`?)"),
        ("[train]\nwhatever = 1\n", "unknown key `whatever` in [train]; [train] reads"),
        ("[train]\nsteps = \"many\"\n", "invalid [train] configuration"),
    ] {
        let err = config::check_sections(&table(text)).unwrap_err().to_string();
        assert!(err.contains(said), "{err}");
        let err = TrainConfig::from_table(table(text)).unwrap_err().to_string();
        assert!(err.contains(said), "{err}");
    }
    config::check_sections(&table(
        "[model]\npreset = \"tiny\"\n[train]\nval_batches = 2\n",
    ))
    .unwrap();
    let preset = TrainConfig::from_table(table("[model]\npreset = \"gigantic\"\n"));
    assert!(preset.unwrap_err().to_string().contains("gigantic"));
    let zero = TrainConfig::from_table(table("[train]\nbatch_size = 0\n"));
    assert!(zero.is_err());
    let heads = TrainConfig::from_table(table("[model]\ndim = 65\n"));
    assert!(heads.is_err());
    // The data always has 12 lead slots: another lead count would panic in the generator.
    let leads = TrainConfig::from_table(table("[model]\nleads = 1\n")).unwrap_err();
    assert!(
        leads.to_string().contains("model.leads must be 12 (got 1)"),
        "{leads}"
    );
    // A split no dataset has, refused with the synthetic source too (it was ignored there).
    let split = TrainConfig::from_table(table(
        "[data]
split = \"foo\"\n",
    ))
    .unwrap_err();
    assert!(
        split
            .to_string()
            .contains("data.split must be one of train, val, test, all (got \"foo\")"),
        "{split}"
    );
}

/// `--set` takes the value with the spaces around it trimmed, also one kept as a plain string,
/// and refuses a key with an empty part (`optim..lr`, `optim.`, `.lr`).
#[test]
fn override_values_are_trimmed_and_empty_key_parts_refused() {
    let mut doc = toml::Table::new();
    apply_override(&mut doc, "data.source =  /data/merged ").unwrap();
    apply_override(&mut doc, "data.split= val").unwrap();
    let config = TrainConfig::from_table(doc).unwrap();
    assert_eq!(config.data.source, "/data/merged");
    assert_eq!(config.data.split, "val");
    for bad in ["optim..lr=1", "optim.=1", ".lr=1"] {
        let err = apply_override(&mut toml::Table::new(), bad).unwrap_err();
        assert!(
            err.to_string().contains("must look like key=value"),
            "{bad}: {err}"
        );
    }
}

/// A key within the did-you-mean reach of a valid one (2 edits, or a third of the valid key's
/// length when that is more) is pointed at it.
#[test]
fn typos_at_the_edge_of_the_suggestion_reach_are_pointed_at_the_key() {
    for (text, said) in [
        ("[train]\nsede = 1\n", "(did you mean `seed`?)"),
        (
            "[optim]\nwt_decay = 0.1\n",
            "(did you mean `weight_decay`?)",
        ),
    ] {
        let err = TrainConfig::from_table(table(text))
            .unwrap_err()
            .to_string();
        assert!(err.contains(said), "{err}");
    }
}

/// A negative final learning rate is refused like the other optimiser settings out of range.
#[test]
fn a_negative_min_lr_is_refused() {
    let err = TrainConfig::from_table(table("[optim]\nmin_lr = -1e-5\n")).unwrap_err();
    assert!(err.to_string().contains("0 <= optim.min_lr"), "{err}");
}

/// The model fields a configuration changes from its preset are exactly those whose values
/// differ; one set to the preset's own value is not among them.
#[test]
fn model_fields_over_preset_are_the_changed_ones() {
    let small = ModelConfig::preset("small").unwrap();
    let text = format!(
        "[model]\npreset = \"small\"\ndepth = {}\ndec_depth = {}\n",
        small.depth + 1,
        small.dec_depth
    );
    let config = TrainConfig::from_table(table(&text)).unwrap();
    assert_eq!(config.model_fields_over_preset(), ["depth"]);
    assert!(TrainConfig::default_config()
        .model_fields_over_preset()
        .is_empty());
}

/// Merging overlays table by table: a key the overlay leaves out keeps the base's value, also
/// one that is not the default (a `--config` file's `min_lr` survives a `--set optim.lr`).
#[test]
fn merge_keeps_the_keys_an_overlay_leaves_out() {
    let mut base = table("[optim]\nlr = 1e-3\nmin_lr = 2e-5\n[data.repeat]\nptbxl = 2\n");
    merge(
        &mut base,
        table("[optim]\nlr = 5e-4\n[data]\nsource = \"d\"\n[data.repeat]\nsami = 3\n"),
    );
    let config = TrainConfig::from_table(base).unwrap();
    assert_eq!((config.optim.lr, config.optim.min_lr), (5e-4, 2e-5));
    assert_eq!(config.data.source, "d");
    assert_eq!(config.data.repeat.len(), 2);
}

/// An older file's `val_batches` whose window count overflows is refused, not wrapped around.
#[test]
fn an_overflowing_val_batches_is_refused() {
    let mut doc = toml::Table::new();
    apply_override(&mut doc, "train.val_batches=4611686018427387904").unwrap();
    apply_override(&mut doc, "train.batch_size=16").unwrap();
    let err = TrainConfig::from_table(doc).unwrap_err();
    assert!(err.to_string().contains("is too large"), "{err}");
}

#[test]
fn optimiser_settings_that_would_train_on_nan_are_refused() {
    for (setting, named) in [
        ("lr = inf", "optim.lr"),
        ("lr = nan", "optim.lr"),
        ("lr = -1e-3", "optim.lr"),
        ("weight_decay = nan", "optim.weight_decay"),
        ("weight_decay = -0.1", "optim.weight_decay"),
        ("clip_norm = inf", "optim.clip_norm"),
        ("beta1 = 1.5", "optim.beta1"),
        ("lr = 1e300", "optim.lr"),
        ("eps = nan", "optim.eps"),
        ("eps = inf", "optim.eps"),
        ("eps = 0.0", "optim.eps"),
    ] {
        let err = TrainConfig::from_table(table(&format!("[optim]\n{setting}\n")))
            .unwrap_err()
            .to_string();
        assert!(err.contains(named), "{setting}: {err}");
    }
    TrainConfig::from_table(table("[optim]\nweight_decay = 0.0\nclip_norm = 0.0\n")).unwrap();
}

/// Each range check's edges: the largest value allowed is accepted (the most micro-batches,
/// a constant learning rate with min_lr = lr, beta1 = 0, only single-lead synthetic samples)
/// and the first one past it refused (beta2 = 1 would divide AdamW's bias correction by zero).
#[test]
fn settings_at_the_edges_of_their_ranges() {
    let max = config::MAX_ACCUM_STEPS;
    for ok in [
        format!("[train]\naccum_steps = {max}\n"),
        "[optim]\nlr = 1e-3\nmin_lr = 1e-3\n".into(),
        "[optim]\nbeta1 = 0.0\n".into(),
        "[data]\nsynth_single_lead_fraction = 1.0\n".into(),
    ] {
        TrainConfig::from_table(table(&ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, named) in [
        (
            format!("[train]\naccum_steps = {}\n", max + 1),
            "train.accum_steps",
        ),
        ("[optim]\nlr = 1e-3\nmin_lr = 2e-3\n".into(), "optim.min_lr"),
        ("[optim]\nbeta2 = 1.0\n".into(), "optim.beta2"),
        (
            "[data]\nsynth_single_lead_fraction = 1.5\n".into(),
            "synth_single_lead_fraction",
        ),
    ] {
        let err = TrainConfig::from_table(table(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains(named), "{bad}: {err}");
    }
}

#[test]
fn thread_counts_past_four_per_core_are_refused_where_the_run_would_start() {
    let cores = std::thread::available_parallelism().unwrap().get();
    for (section, key) in [("train", "threads"), ("data", "decode_threads")] {
        let set = |n: usize| {
            // A saved configuration reads on any machine; running it here is what is refused.
            TrainConfig::from_table(table(&format!("[{section}]\n{key} = {n}\n")))
                .unwrap()
                .check_threads()
        };
        let err = set(100_000).unwrap_err().to_string();
        let expected = format!("{section}.{key} = 100000");
        assert!(err.contains(&expected), "{err}");
        let expected = format!("100000 threads on {cores} cores");
        assert!(err.contains(&expected), "{err}");
        assert!(err.contains(&format!("at most {}", 4 * cores)), "{err}");
        set(4 * cores).unwrap();
        set(4 * cores + 1).unwrap_err();
    }
}

#[test]
fn a_run_ending_inside_its_warmup_is_warned_of() {
    let config = |text: &str| TrainConfig::from_table(table(text)).unwrap();
    let short = config("[train]\nsteps = 10\n").warning().unwrap();
    let said = "the run ends inside its warmup (optim.warmup_steps = 40, train.steps = 10): its \
                last step's learning rate is 2.250e-4, not optim.lr = 1e-3";
    assert!(short.contains(said), "{short}");
    assert_eq!(config("[train]\nsteps = 41\n").warning(), None);
    assert_eq!(
        config("[train]\nsteps = 10\n[optim]\nwarmup_steps = 2\n").warning(),
        None
    );
}

#[test]
fn merge_overlays_nested_tables() {
    let mut base = table("[optim]\nlr = 1e-3\nmin_lr = 1e-5\n");
    merge(&mut base, table("[optim]\nlr = 5e-4\n[train]\nsteps = 7\n"));
    let config = TrainConfig::from_table(base).unwrap();
    assert_eq!(config.optim.lr, 5e-4);
    assert_eq!(config.optim.min_lr, 1e-5);
    assert_eq!(config.train.steps, 7);
}

#[test]
fn written_config_resolves_to_itself() {
    let config = TrainConfig::from_table(table(
        "[model]\npreset = \"small\"\ndec_depth = 2\n[train]\nseed = 9\n",
    ))
    .unwrap();
    let text = config.to_toml_string();
    let again = TrainConfig::from_table(table(&text)).unwrap();
    assert_eq!(again, config);
    assert!(text.contains("preset = \"small\""));
}

#[test]
fn f32_settings_are_written_as_the_user_wrote_them() {
    let config = TrainConfig::from_table(table(
        "[optim]\nbeta1 = 0.9\nweight_decay = 0.05\neps = 1e-8\n[data]\nsynth_single_lead_fraction = 0.3\n",
    ))
    .unwrap();
    let text = config.to_toml_string();
    for line in [
        "beta1 = 0.9\n",
        "weight_decay = 0.05\n",
        "eps = 0.00000001\n",
        "synth_single_lead_fraction = 0.3\n",
    ] {
        assert!(text.contains(line), "`{}` not in:\n{text}", line.trim());
    }
    assert!(!text.contains("0.8999999"), "{text}");
    assert_eq!(TrainConfig::from_table(table(&text)).unwrap(), config);
}

#[test]
fn source_repeats_are_a_table_set_by_override_and_written_back() {
    let mut doc = table("[data]\nsource = \"/data/merged\"\n");
    apply_override(&mut doc, "data.repeat.ptbxl=4").unwrap();
    apply_override(&mut doc, "data.repeat.cinc2017=0").unwrap();
    apply_override(&mut doc, "data.repeat.georgia=0.25").unwrap();
    let config = TrainConfig::from_table(doc).unwrap();
    assert_eq!(config.data.repeat["ptbxl"], 4.0);
    assert_eq!(config.data.repeat["cinc2017"], 0.0);
    assert_eq!(config.data.repeat["georgia"], 0.25);
    let text = config.to_toml_string();
    assert!(
        text.contains("[data.repeat]\ncinc2017 = 0\ngeorgia = 0.25\nptbxl = 4\n"),
        "{text}"
    );
    assert_eq!(TrainConfig::from_table(table(&text)).unwrap(), config);
    // Without repeats config.toml does not mention them.
    assert!(!TrainConfig::from_table(toml::Table::new())
        .unwrap()
        .to_toml_string()
        .contains("repeat"));
    let err = TrainConfig::from_table(table("[data]\nrepeat = { ptbxl = 2 }\n")).unwrap_err();
    assert!(err.to_string().contains("synthetic generator"), "{err}");
    let err = TrainConfig::from_table(table("[data]\nsource = \"d\"\nrepeat = { ptbxl = -1 }\n"))
        .unwrap_err();
    assert!(err.to_string().contains("data.repeat.ptbxl"), "{err}");
    let err = TrainConfig::from_table(table("[data]\nsource = \"d\"\nrepeat = { ptbxl = 1e5 }\n"))
        .unwrap_err();
    assert!(err.to_string().contains("from 0 to 10000"), "{err}");
}

#[test]
fn an_older_files_val_batches_reads_as_as_many_windows() {
    let windows = |sets: &[&str]| {
        let mut doc = toml::Table::new();
        for set in sets {
            config::apply_override(&mut doc, set).unwrap();
        }
        TrainConfig::from_table(doc).map(|c| c.train.val_windows)
    };
    assert_eq!(windows(&[]).unwrap(), config::DEFAULT_VAL_WINDOWS);
    assert_eq!(
        windows(&["train.val_batches=3", "train.batch_size=8"]).unwrap(),
        24
    );
    assert_eq!(windows(&["train.val_batches=2"]).unwrap(), 32);
    assert_eq!(windows(&["train.val_batches=0"]).unwrap(), 0);
    let both = windows(&["train.val_batches=2", "train.val_windows=64"]).unwrap_err();
    assert!(both.to_string().contains("give only val_windows"), "{both}");
    // Written back, a config names only val_windows.
    let mut doc = toml::Table::new();
    config::apply_override(&mut doc, "train.val_batches=1").unwrap();
    let text = TrainConfig::from_table(doc).unwrap().to_toml_string();
    assert!(
        text.contains("val_windows = 16") && !text.contains("val_batches"),
        "{text}"
    );
}
