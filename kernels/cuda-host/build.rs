//! Compiles every kernel file of kernels/cuda/*.cu for the host with g++, through
//! src/host_compat.h, together with the fiber runtime and a registry of the kernels by name
//! (every `extern "C" __global__ void NAME(` in the sources).
//!
//! `ECGFM_HOST_SANITIZE=address` builds kernels and runtime with AddressSanitizer, the host
//! twin of `compute-sanitizer --tool memcheck`; `ECGFM_HOST_SANITIZE=thread` builds the kernels
//! with ThreadSanitizer and the runtime uninstrumented but telling it the orderings a GPU
//! guarantees (src/sanitizer_hooks.h), the host twin of `--tool racecheck`.
//! `scripts/host-sanitize.sh` runs the harness's tests either way.
//!
//! `ECGFM_HOST_FIBERS=ucontext` switches the block threads with glibc's swapcontext, as on
//! hosts other than x86-64 (src/fiber_switch.h), so that path is tested on x86-64 too.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let cuda_dir = manifest
        .join("../cuda")
        .canonicalize()
        .expect("kernels/cuda exists");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let compat = manifest.join("src/host_compat.h");
    println!("cargo:rerun-if-changed={}", cuda_dir.display());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-env-changed=ECGFM_HOST_SANITIZE");
    println!("cargo:rerun-if-env-changed=ECGFM_HOST_FIBERS");
    let ucontext = match std::env::var("ECGFM_HOST_FIBERS").as_deref() {
        Err(_) | Ok("") => false,
        Ok("ucontext") => true,
        Ok(other) => panic!("ECGFM_HOST_FIBERS={other}: ucontext, or unset"),
    };
    // What `ecgfm_cuda_host::fibers()` must report for this build.
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let fibers = if ucontext || !x86_64 {
        "ucontext"
    } else {
        "switch"
    };
    println!("cargo:rustc-env=ECGFM_HOST_FIBERS_CHOSEN={fibers}");
    let sanitizer = std::env::var("ECGFM_HOST_SANITIZE").ok();
    let sanitizer = match sanitizer.as_deref() {
        None | Some("") => None,
        Some(s @ ("address" | "thread")) => Some(s),
        Some(other) => panic!("ECGFM_HOST_SANITIZE={other}: address or thread"),
    };

    // The kernels, and the deliberately broken ones tests/planted_bugs.rs launches.
    let planted = manifest.join("tests/planted");
    println!("cargo:rerun-if-changed={}", planted.display());
    let mut sources: Vec<PathBuf> = [&cuda_dir, &planted]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).expect("reading a kernel folder"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    // What the tests' expectations depend on (`ecgfm_cuda_host::SANITIZER`).
    println!(
        "cargo:rustc-env=ECGFM_HOST_SANITIZER={}",
        sanitizer.unwrap_or("")
    );

    let base = || {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .std("c++17")
            .opt_level(2)
            .flag("-ffp-contract=off")
            .flag("-fno-fast-math")
            .flag("-w")
            .include(&cuda_dir)
            .include(manifest.join("src"))
            .define("ECGFM_HOST", None);
        if sanitizer.is_some() {
            build.flag("-fno-omit-frame-pointer");
        }
        build
    };
    // The runtime first: the kernels' archive, linked after it, resolves what it calls. Under
    // ThreadSanitizer it is not instrumented, only announcing orderings (src/sanitizer_hooks.h).
    let mut runtime = base();
    match sanitizer {
        Some("address") => {
            runtime.flag("-fsanitize=address");
            println!("cargo:rustc-link-lib=dylib=asan");
        }
        Some(_) => {
            runtime.define("ECGFM_HOST_TSAN", None);
            println!("cargo:rustc-link-lib=dylib=tsan");
        }
        None => {}
    }
    if ucontext {
        runtime.define("ECGFM_HOST_UCONTEXT", None);
    }
    runtime
        .file(manifest.join("src/runtime.cpp"))
        .compile("ecgfm_cuda_host_runtime");

    let mut build = base();
    build.flag("-include").flag(compat.to_str().unwrap());
    if let Some(s) = sanitizer {
        build.flag(format!("-fsanitize={s}"));
    }
    let mut registry = String::from("#include \"host_compat.h\"\n#include <cstring>\n");
    let mut lookups = String::new();
    for src in &sources {
        let stem = src.file_stem().unwrap().to_str().unwrap();
        let names = kernel_names(src);
        let wrapper = out.join(format!("kernels_{stem}.cpp"));
        let mut text = format!(
            "#include \"{}\"\nnamespace {{\nconst ecgfm_host::Kernel table[] = {{\n",
            src.display()
        );
        for name in &names {
            writeln!(text, "    ecgfm_host::entry(\"{name}\", {name}),").unwrap();
        }
        writeln!(
            text,
            "}};\n}}\nextern \"C\" const ecgfm_host::Kernel* ecgfm_host_table_{stem}(unsigned* n) {{\n    *n = {};\n    return table;\n}}",
            names.len()
        )
        .unwrap();
        std::fs::write(&wrapper, text).unwrap();
        build.file(&wrapper);
        writeln!(
            registry,
            "extern \"C\" const ecgfm_host::Kernel* ecgfm_host_table_{stem}(unsigned* n);"
        )
        .unwrap();
        writeln!(lookups, "    {{ unsigned n; const ecgfm_host::Kernel* t = ecgfm_host_table_{stem}(&n); for (unsigned i = 0; i < n; i++) if (std::strcmp(t[i].name, name) == 0) return &t[i]; }}").unwrap();
    }
    write!(
        registry,
        "extern \"C\" const ecgfm_host::Kernel* ecgfm_host_find(const char* name) {{\n{lookups}    return nullptr;\n}}\n"
    )
    .unwrap();
    let registry_path = out.join("registry.cpp");
    std::fs::write(&registry_path, registry).unwrap();
    build.file(&registry_path);
    build.compile("ecgfm_cuda_host_kernels");
}

/// The names of the `extern "C" __global__ void NAME(` kernels of a source file.
fn kernel_names(path: &Path) -> Vec<String> {
    const MARK: &str = "extern \"C\" __global__ void ";
    let text = std::fs::read_to_string(path).expect("reading a kernel file");
    text.match_indices(MARK)
        .map(|(i, _)| {
            let rest = &text[i + MARK.len()..];
            rest[..rest.find('(').expect("kernel name followed by '('")]
                .trim()
                .to_string()
        })
        .collect()
}
