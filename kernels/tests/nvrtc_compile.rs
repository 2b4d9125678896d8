//! Every kernel file of kernels/cuda compiles with NVRTC for sm_80, sm_90 and sm_100 (A100,
//! H100/H200, B200), without a warning (no GPU needed: only libnvrtc, from the `nvidia-cuda-nvrtc` wheel that
//! scripts/test.sh installs and puts on LD_LIBRARY_PATH). Without NVRTC the test skips with a message, or fails where the oracles
//! are required (CI, scripts/test.sh).

use ecgfm_kernels::cuda::compile::{compile_cubin, preprocess};
use ecgfm_kernels::cuda::device::MODULES;
use ecgfm_kernels::cuda::probe::check_nvrtc;

/// Every kernel file compiles to a CUBIN for `sm_{arch}`, with nothing in NVRTC's log. One test per architecture, so the
/// test harness compiles them on separate threads (NVRTC takes about 35 s per architecture).
fn every_kernel_file_compiles_for(arch: u32) {
    if let Err(e) = check_nvrtc() {
        ecgfm_test_support::skip_without_oracle(&format!("NVRTC ({e})"));
        return;
    }
    for (_, file, src) in MODULES {
        let compiled = compile_cubin(file, &preprocess(src), arch)
            .unwrap_or_else(|log| panic!("{file} for sm_{arch}:\n{log}"));
        // An ELF image (CUBIN) came back.
        assert_eq!(
            &compiled.cubin[..4],
            b"\x7fELF",
            "{file} for sm_{arch}: not a CUBIN"
        );
        let log = compiled
            .log
            .trim_matches(|c: char| c.is_whitespace() || c == '\0');
        assert!(log.is_empty(), "{file} for sm_{arch}: NVRTC says\n{log}");
    }
}

#[test]
fn every_kernel_file_compiles_for_sm80() {
    every_kernel_file_compiles_for(80);
}

#[test]
fn every_kernel_file_compiles_for_sm90() {
    every_kernel_file_compiles_for(90);
}

#[test]
fn every_kernel_file_compiles_for_sm100() {
    every_kernel_file_compiles_for(100);
}

#[test]
fn a_kernel_error_comes_back_as_the_nvrtc_log() {
    if check_nvrtc().is_err() {
        ecgfm_test_support::skip_without_oracle("NVRTC");
        return;
    }
    let log = compile_cubin(
        "broken.cu",
        "extern \"C\" __global__ void k() { undefined_name; }",
        90,
    )
    .expect_err("an undefined name must not compile");
    assert!(log.contains("undefined_name"), "log names the error: {log}");
}
