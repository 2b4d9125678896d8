//! `ecgfm publish`: uploads an exported package to a folder, to S3 (a moto server on localhost,
//! credentials from the environment and never printed) and to the in-memory store; a second
//! publish of the same package is a no-op, a damaged remote file is uploaded again, a different
//! package or foreign objects are refused without `--force`, a replacement that fails partway
//! leaves no package listing, and a package that no longer matches its own checksums is refused
//! before anything is sent.

mod common;
// The data tests' moto helper; this file uses part of it.
#[allow(dead_code)]
#[path = "../../data-pipeline/tests/pipeline/common/s3.rs"]
mod s3;

use common::{
    assert_same_files, ecgfm_env, export, run_err, run_ok, short_run, temp_dir,
    PACKAGE_FILES as FILES,
};
use ecgfm_data::store;
use ecgfm_launch::package;
use ecgfm_launch::publish::{publish, Outcome};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// A run exported at step 8 (`pkg`) and at step 4 (`pkg4`), two different packages.
fn two_packages(dir: &Path) -> (PathBuf, PathBuf) {
    let run = short_run(dir, None, &[]);
    let (pkg, pkg4) = (dir.join("pkg"), dir.join("pkg4"));
    export(&run, &pkg, &[]);
    export(&run, &pkg4, &["--step", "4"]);
    (pkg, pkg4)
}

/// A copy of the package `pkg` at `out` whose weights are 13 MiB of other bytes (publish checks
/// checksums, not contents): larger than an upload part, so a multipart upload of three parts.
fn with_large_weights(pkg: &Path, out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    let mut sums = Vec::new();
    for name in FILES.iter().filter(|name| **name != "SHA256SUMS") {
        let bytes = match *name {
            "model.safetensors" => (0..13u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
            _ => std::fs::read(pkg.join(name)).unwrap(),
        };
        std::fs::write(out.join(name), &bytes).unwrap();
        sums.push(package::FileSum {
            name: name.to_string(),
            sha256: package::sha256_hex(&bytes),
        });
    }
    std::fs::write(out.join("SHA256SUMS"), package::render(&sums)).unwrap();
    out.to_path_buf()
}

fn publish_args<'a>(pkg: &'a Path, to: &'a str, force: bool) -> Vec<&'a str> {
    let mut args = vec!["publish", pkg.to_str().unwrap(), "--to", to];
    if force {
        args.push("--force");
    }
    args
}

#[test]
fn folder_publish_verifies_repairs_and_refuses_another_package() {
    let dir = temp_dir("publish-folder");
    let (pkg, pkg4) = two_packages(&dir);
    let dest = dir.join("published/nano");
    let to = dest.to_str().unwrap();

    let out = run_ok(&publish_args(&pkg, to, false));
    let uploaded_all = format!("uploaded {} files", FILES.len());
    assert!(out.contains(&uploaded_all), "{out}");
    assert_same_files(&dest, &pkg);

    let out = run_ok(&publish_args(&pkg, to, false));
    assert!(out.contains("already holds this package"), "{out}");

    // A damaged copy at the destination is found by reading it back, and uploaded again.
    std::fs::write(dest.join("model.safetensors"), b"damaged").unwrap();
    let out = run_ok(&publish_args(&pkg, to, false));
    assert!(out.contains("uploaded 2 files"), "{out}");
    assert_same_files(&dest, &pkg);

    let err = run_err(&publish_args(&pkg4, to, false));
    assert!(
        err.contains("already holds a different package")
            && err.contains("model.safetensors")
            && err.contains("--force"),
        "{err}"
    );
    assert_same_files(&dest, &pkg);
    let out = run_ok(&publish_args(&pkg4, to, true));
    assert!(
        out.contains("replacing the package that was there"),
        "{out}"
    );
    assert_same_files(&dest, &pkg4);

    // A folder holding something else: refused, or shared with --force (its files kept).
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = run_err(&publish_args(&pkg, other.to_str().unwrap(), false));
    assert!(
        err.contains("holds no ecgfm package") && err.contains("notes.txt"),
        "{err}"
    );
    run_ok(&publish_args(&pkg, other.to_str().unwrap(), true));
    assert_same_files(&other, &pkg);
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "mine"
    );

    // A folder whose SHA256SUMS lists other files is not a package: --force overwrites that
    // list but deletes none of the files it names.
    let listed = dir.join("listed");
    std::fs::create_dir_all(&listed).unwrap();
    let mut sums = String::new();
    for (name, text) in [("data.csv", "a,b\n"), ("notes.txt", "mine")] {
        std::fs::write(listed.join(name), text).unwrap();
        let hash = package::sha256_hex(text.as_bytes());
        sums += &format!("{hash}  {name}\n");
    }
    std::fs::write(listed.join("SHA256SUMS"), sums).unwrap();
    let err = run_err(&publish_args(&pkg, listed.to_str().unwrap(), false));
    assert!(err.contains("holds no ecgfm package"), "{err}");
    run_ok(&publish_args(&pkg, listed.to_str().unwrap(), true));
    assert_eq!(
        std::fs::read_to_string(listed.join("data.csv")).unwrap(),
        "a,b\n"
    );
    assert!(listed.join("notes.txt").is_file());

    // Python's bytecode cache beside the loader (`import ecgfm_encoder` from the package) is
    // not part of the package: publishing goes on without it.
    std::fs::create_dir_all(pkg.join("__pycache__")).unwrap();
    std::fs::write(
        pkg.join("__pycache__/ecgfm_encoder.cpython-311.pyc"),
        b"pyc",
    )
    .unwrap();
    let cached = dir.join("cached");
    run_ok(&publish_args(&pkg, cached.to_str().unwrap(), false));
    assert!(!cached.join("__pycache__").exists());
    std::fs::remove_dir_all(pkg.join("__pycache__")).unwrap();

    // A killed upload to a folder leaves a local store's staging file (`NAME#N`): removed.
    let killed = dir.join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("model.safetensors#3"), b"half an upload").unwrap();
    std::fs::write(killed.join("notes#2"), b"a user's file").unwrap();
    run_ok(&publish_args(&pkg, killed.to_str().unwrap(), true));
    assert!(!killed.join("model.safetensors#3").exists());
    assert!(
        killed.join("notes#2").exists(),
        "another file of that shape is left alone"
    );
    assert_same_files(&killed, &pkg);

    // A destination inside the package would become part of it.
    let inside = pkg.join("sub");
    let err = run_err(&publish_args(&pkg, inside.to_str().unwrap(), false));
    assert!(err.contains("is inside the package"), "{err}");
    assert!(!inside.exists());

    // A package edited after export is refused before anything is sent.
    std::fs::write(pkg.join("README.md"), "edited").unwrap();
    let fresh = dir.join("fresh");
    let err = run_err(&publish_args(&pkg, fresh.to_str().unwrap(), false));
    assert!(err.contains("README.md does not match SHA256SUMS"), "{err}");
    assert!(!fresh.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A replacement (`--force`) that fails partway leaves no `SHA256SUMS` behind: the old list
/// goes before the first new file, so the folder never looks like a complete package whose
/// files are half the old one's and half the new one's. Run again once the fault is gone, it
/// finishes. (The fault: a folder where the weights file goes, so its upload cannot land.)
#[test]
fn a_replacement_that_fails_partway_leaves_no_package_listing() {
    let dir = temp_dir("publish-broken-replace");
    let (pkg, pkg4) = two_packages(&dir);
    let dest = dir.join("published");
    let to = dest.to_str().unwrap();
    run_ok(&publish_args(&pkg, to, false));
    let weights = dest.join("model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::fs::create_dir_all(weights.join("in-the-way")).unwrap();
    let err = run_err(&publish_args(&pkg4, to, true));
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(
        !dest.join("SHA256SUMS").exists(),
        "the old package's SHA256SUMS outlived a replacement that failed"
    );
    std::fs::remove_dir_all(&weights).unwrap();
    let out = run_ok(&publish_args(&pkg4, to, true));
    assert!(out.contains("uploaded"), "{out}");
    assert_same_files(&dest, &pkg4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn interrupted_upload_resumes_in_the_memory_store() {
    let dir = temp_dir("publish-memory");
    let (pkg, _) = two_packages(&dir);
    let url = "memory://publish-test/models/nano";
    // An earlier upload stopped after one file: that file is kept, the rest sent.
    let (mem, root) = store::open_url(url).unwrap();
    let weights = std::fs::read(pkg.join("model.safetensors")).unwrap();
    let location = store::join(&root, "model.safetensors");
    store::block_on(store::put_bytes(mem.as_ref(), &location, weights.into())).unwrap();
    let bar = ProgressBar::hidden();
    let outcome = publish(&pkg, url, &[], false, &bar).unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Uploaded {
                files,
                replaced: false,
                ..
            } if files == FILES.len() - 1
        ),
        "{outcome:?}"
    );
    // The progress counts every file of the package but SHA256SUMS, kept or sent.
    let package_bytes: u64 = (FILES.iter())
        .filter(|name| **name != "SHA256SUMS")
        .map(|name| std::fs::metadata(pkg.join(name)).unwrap().len())
        .sum();
    assert_eq!(
        (bar.position(), bar.length()),
        (package_bytes, Some(package_bytes))
    );
    let bar = ProgressBar::hidden();
    assert_eq!(
        publish(&pkg, url, &[], false, &bar).unwrap(),
        Outcome::AlreadyPublished { files: FILES.len() }
    );
    assert_eq!(bar.position(), package_bytes);
    for name in FILES {
        let got = store::block_on(store::get_bytes(mem.as_ref(), &store::join(&root, name)));
        assert_eq!(
            got.unwrap().to_vec(),
            std::fs::read(pkg.join(name)).unwrap()
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn s3_publish_through_moto_with_credentials_from_the_environment() {
    let Some(moto) = s3::MotoS3::start("ecgfm-models") else {
        return;
    };
    let dir = temp_dir("publish-s3");
    let (pkg, pkg4) = two_packages(&dir);
    let secret = "moto-secret-do-not-print-7f3a";
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let url = moto.url("models/nano");
    let publish_s3 = |pkg: &Path, force: bool| {
        let output = ecgfm_env(&publish_args(pkg, &url, force), &env);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        );
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the secret was printed"
        );
        (output.status.success(), stdout + &stderr)
    };

    let (ok, out) = publish_s3(&pkg, false);
    let uploaded_all = format!("uploaded {} files", FILES.len());
    assert!(ok && out.contains(&uploaded_all), "{out}");
    let (s3_store, root) = moto.open("models/nano");
    let objects = store::block_on(store::list(s3_store.as_ref(), &root)).unwrap();
    assert_eq!(objects.len(), FILES.len());
    let read = |name: &str| {
        store::block_on(store::get_bytes(
            s3_store.as_ref(),
            &store::join(&root, name),
        ))
        .unwrap()
        .to_vec()
    };
    for name in FILES {
        assert_eq!(read(name), std::fs::read(pkg.join(name)).unwrap(), "{name}");
    }

    let (ok, out) = publish_s3(&pkg, false);
    assert!(ok && out.contains("already holds this package"), "{out}");
    let (ok, out) = publish_s3(&pkg4, false);
    assert!(
        !ok && out.contains("already holds a different package"),
        "{out}"
    );
    assert_eq!(
        read("model.safetensors"),
        std::fs::read(pkg.join("model.safetensors")).unwrap()
    );
    let (ok, out) = publish_s3(&pkg4, true);
    assert!(ok && out.contains("replacing"), "{out}");
    for name in FILES {
        assert_eq!(
            read(name),
            std::fs::read(pkg4.join(name)).unwrap(),
            "{name}"
        );
    }

    // Weights larger than an upload part go up in parts, and read back whole.
    let large = with_large_weights(&pkg, &dir.join("large"));
    let (ok, out) = publish_s3(&large, true);
    assert!(ok && out.contains("replacing"), "{out}");
    for name in FILES {
        assert_eq!(
            read(name),
            std::fs::read(large.join(name)).unwrap(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
