//! The PyTorch loader an exported package ships (`ecgfm_encoder.py`): loaded from the package
//! folder, it computes the same embeddings as the PyTorch reference of docs/model.md
//! (tests/reference/mae_reference.py, in float64, all patches visible) and as `ecgfm embed`
//! (on synthetic 12-lead and CinC 2017 single-lead windows) to 1e-5, with absent leads (even
//! NaN-filled ones) taking no part.

mod common;

use common::{export, run_ok, short_run, synth_dataset, temp_dir};
use ecgfm_data::windows::read_split_windows;
use ecgfm_test_support::torch_python;
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

/// Runs the packaged loader on windows given as raw little-endian files (x: (n, 12, S) f32,
/// lead mask: (n, 12) u8) and writes its embeddings (n, D) as raw f32, pooled as argv[5].
const ON_WINDOWS: &str = r#"
import struct, sys, torch
pkg, x_path, mask_path, out_path, pool = sys.argv[1:6]
sys.path.insert(0, pkg)
import ecgfm_encoder
model = ecgfm_encoder.load(pkg)
c = model.config
with open(x_path, "rb") as f:
    x = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(-1, c["leads"], c["samples"])
with open(mask_path, "rb") as f:
    present = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).reshape(-1, c["leads"]).bool()
with torch.no_grad():
    emb = torch.cat([model(x[i : i + 32], present[i : i + 32], pool=pool) for i in range(0, x.shape[0], 32)])
values = emb.flatten().tolist()
with open(out_path, "wb") as f:
    f.write(struct.pack(f"<{len(values)}f", *values))
"#;

/// `ecgfm embed`'s Parquet file as (window ids, embeddings), read with pyarrow.
fn read_embeddings(path: &Path) -> Option<(Vec<String>, Vec<Vec<f32>>)> {
    let script = "import sys, json, pyarrow.parquet as pq\n\
        t = pq.read_table(sys.argv[1]).to_pydict()\n\
        print(json.dumps({'ids': t['window_id'], 'emb': t['embedding']}))";
    let mut python = Command::new("python3");
    python.args(["-c", script]).arg(path);
    let stdout = ecgfm_test_support::python_stdout(&mut python, &["pyarrow"], "pyarrow reader")?;
    let table: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let ids = table["ids"].as_array().unwrap();
    let rows = table["emb"].as_array().unwrap();
    Some((
        ids.iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect(),
        rows.iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect(),
    ))
}

/// The worst relative difference (max |a - b| / max |b| per window) between the packaged
/// loader's embeddings and `ecgfm embed --pool pool`'s for every window of the dataset `data`.
fn loader_vs_embed(
    python: &str,
    (run, pkg): (&Path, &Path),
    data: &Path,
    pool: &str,
    work: &Path,
) -> Option<f64> {
    let emb = work.join("embed.parquet");
    run_ok(&[
        "embed",
        "--pool",
        pool,
        "--run",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--threads",
        "2",
        "--out",
        emb.to_str().unwrap(),
    ]);
    let (ids, expected) = read_embeddings(&emb)?;
    // The windows embed read (every split, centred crop), as the loader's input.
    let windows = read_split_windows(data.to_str().unwrap(), &[], "all", 750).unwrap();
    assert_eq!(ids.len(), windows.len());
    let mut x = vec![0.0f32; windows.len() * 12 * 750];
    let mut mask = Vec::with_capacity(windows.len() * 12);
    for (i, chunk) in x.chunks_exact_mut(12 * 750).enumerate() {
        assert_eq!(ids[i], windows.windows[i].window_id());
        windows.fill(i, chunk);
        mask.extend_from_slice(windows.lead_mask(i));
    }
    let (x_path, mask_path, out_path) = (
        work.join("x.f32"),
        work.join("mask.u8"),
        work.join("out.f32"),
    );
    std::fs::write(
        &x_path,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(&mask_path, &mask).unwrap();
    let output = Command::new(python)
        .args(["-c", ON_WINDOWS])
        .args([pkg, &x_path, &mask_path, &out_path])
        .arg(pool)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Vec<f32> = std::fs::read(&out_path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let dim = expected[0].len();
    assert_eq!(got.len(), windows.len() * dim);
    let worst = got
        .chunks_exact(dim)
        .zip(&expected)
        .map(|(a, b)| {
            let diff = a
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            f64::from(diff / scale)
        })
        .fold(0.0, f64::max);
    Some(worst)
}

#[test]
fn packaged_loader_reproduces_ecgfm_embed() {
    let Some(python) = torch_python() else {
        return;
    };
    let dir = temp_dir("python-embed");
    let ds = synth_dataset(&dir);
    let run = short_run(&dir, Some(&ds), &[]);
    let pkg = dir.join("pkg");
    export(&run, &pkg, &[]);
    for pool in ["mean", "leads"] {
        let Some(worst) = loader_vs_embed(&python, (&run, &pkg), &ds, pool, &dir) else {
            return;
        };
        println!(
            "packaged loader vs ecgfm embed --pool {pool}, synthetic 12-lead windows: {worst:.2e}"
        );
        assert!(worst < 1e-5, "{pool}: {worst}");
    }
    // Single-lead windows (CinC 2017) exercise the lead mask.
    if let Some(cinc) = ecgfm_test_support::shared_data("cinc2017") {
        let single = dir.join("cinc");
        run_ok(&[
            "data",
            "ingest",
            cinc.to_str().unwrap(),
            "--format",
            "cinc2017",
            "--out",
            single.to_str().unwrap(),
            "--limit",
            "6",
            "--threads",
            "2",
        ]);
        for pool in ["mean", "leads"] {
            let worst = loader_vs_embed(&python, (&run, &pkg), &single, pool, &dir).unwrap();
            println!(
                "packaged loader vs ecgfm embed --pool {pool}, CinC 2017 single-lead windows: \
                 {worst:.2e}"
            );
            assert!(worst < 1e-5, "{pool}: {worst}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
