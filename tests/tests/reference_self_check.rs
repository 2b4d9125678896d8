//! The PyTorch reference checks itself (`tests/reference/self_check.py`): the committed parity
//! fixture recomputes (loss, gradients, the AdamW run's losses and final weights, to float64's
//! last bits), the float32 model agrees with the float64 one, gradcheck passes on the whole loss,
//! and torch's AdamW equals the formula docs/model.md states. The Rust parity test trusts the
//! fixture; this is what the fixture rests on. Runs with whichever python3 imports torch (1.13 or
//! later).

use std::path::Path;
use std::process::Command;

#[test]
fn the_pytorch_reference_and_its_fixture_pass_their_self_checks() {
    let Some(python) = ecgfm_test_support::torch_python() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(&python)
        .arg("tests/reference/self_check.py")
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{python}: {stdout}\n{stderr}");
    assert!(
        stdout.contains("all reference self-checks passed"),
        "{stdout}"
    );
    for check in [
        "stored loss recomputes",
        "stored AdamW losses recompute",
        "stored AdamW final weights recompute",
        "gradcheck of the full loss",
    ] {
        assert!(
            stdout.contains(&format!("ok: {check}")),
            "{check}:\n{stdout}"
        );
    }
}
