//! The PyTorch loader an exported package ships (`ecgfm_encoder.py`): loaded from the package
//! folder, it computes the same embeddings as the PyTorch reference of docs/model.md
//! (tests/reference/mae_reference.py, in float64, all patches visible) to 1e-5, with absent
//! leads (even NaN-filled ones) taking no part.

mod common;

use common::{export, short_run, temp_dir, torch_python};
use std::path::Path;
use std::process::Command;

/// Loads the package with its own loader and the reference with the same weights; prints the
/// worst relative difference of the embeddings and the largest token value of an absent lead.
const AGAINST_REFERENCE: &str = r#"
import json, sys, torch
pkg, reference_dir = sys.argv[1], sys.argv[2]
sys.path[:0] = [pkg, reference_dir]
import ecgfm_encoder, mae_reference as ref

model = ecgfm_encoder.load(pkg)
c = model.config
cfg = ref.ModelConfig("exported", c["dim"], c["depth"], c["heads"], c["dec_dim"], c["dec_depth"],
                      c["dec_heads"], seq_len=c["samples"], patch_len=c["patch"], mlp_ratio=c["mlp_ratio"])
reference = ref.MaeReference(cfg).double()
weights = ecgfm_encoder.read_safetensors(pkg + "/model.safetensors")
missing, unexpected = reference.load_state_dict({k: v.double() for k, v in weights.items()}, strict=False)
assert not unexpected, unexpected
assert not [k for k in missing if k.startswith(("patch_embed", "lead_embed", "enc"))], missing

g = torch.Generator().manual_seed(0)
x = torch.randn(4, 12, c["samples"], generator=g) * 0.5
present = torch.ones(4, 12, dtype=torch.bool)
present[1, 2:] = False
present[2] = False
present[2, 1] = True
present[3, ::2] = False
x[2, 0] = float("nan")
n = c["samples"] // c["patch"]
with torch.no_grad():
    got = model(x, present).double()
    tokens = model.tokens(x, present)
    worst = 0.0
    for b in range(4):
        leads = [l for l in range(12) if present[b, l]]
        patches = reference.patches(x.double()[b : b + 1])[0]
        want = reference.encode_sample(patches, leads, [list(range(n))] * 12).mean(dim=0)
        worst = max(worst, float((got[b] - want).abs().max() / want.abs().max()))
print(json.dumps({"max_rel": worst, "dim": got.shape[1],
                  "absent_token_max": float(tokens[~present].abs().max())}))
"#;

#[test]
fn packaged_loader_matches_the_pytorch_reference_encoder() {
    let Some(python) = torch_python() else {
        return;
    };
    let dir = temp_dir("python-reference");
    let run = short_run(&dir, None, &[]);
    let pkg = dir.join("pkg");
    export(&run, &pkg, &[]);
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference");
    let output = Command::new(&python)
        .args(["-c", AGAINST_REFERENCE])
        .arg(&pkg)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{python} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let max_rel = result["max_rel"].as_f64().unwrap();
    println!("packaged loader vs reference: max relative difference {max_rel:.2e}");
    assert!(max_rel < 1e-5, "{result}");
    assert_eq!(result["dim"], 64);
    assert_eq!(result["absent_token_max"], 0.0);
    std::fs::remove_dir_all(dir).unwrap();
}
