//! `publish` against an in-memory store that damages one object as it is stored: the read-back
//! checks name what the store damaged and leave no listing that passes for a package; the
//! outcome's counts and the refusal of a destination inside the package.

use super::*;
use ecgfm_test_support::store::{Hooks, Intercepted};
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, PutOptions, PutPayload, PutResult, UploadPart};
use std::sync::Arc;

/// Flips a bit of every write to the object named by its `.0`, as a faulty store or network path
/// would: only reading it back tells.
#[derive(Debug)]
struct Damaging(&'static str);

fn flipped(payload: PutPayload) -> PutPayload {
    let mut bytes = Bytes::from(payload).to_vec();
    bytes[0] ^= 1;
    bytes.into()
}

/// A multipart upload whose every part is stored flipped.
#[derive(Debug)]
struct DamagingUpload(Box<dyn MultipartUpload>);

#[async_trait::async_trait]
impl MultipartUpload for DamagingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.0.put_part(flipped(data))
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.0.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.0.abort().await
    }
}

#[async_trait::async_trait]
impl Hooks for Damaging {
    async fn put_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let payload = match location.filename() == Some(self.0) {
            true => flipped(payload),
            false => payload,
        };
        inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        inner: &dyn ObjectStore,
        location: &ObjectPath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = inner.put_multipart_opts(location, opts).await?;
        match location.filename() == Some(self.0) {
            true => Ok(Box::new(DamagingUpload(upload))),
            false => Ok(upload),
        }
    }
}

/// A package of small files in `dir` (publish checks checksums, not contents).
fn small_package(dir: &Path) -> PathBuf {
    let pkg = dir.join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let sums: Vec<FileSum> = (package::PACKAGE_FILES.iter())
        .map(|name| {
            let text = format!("the {name} of a test package");
            std::fs::write(pkg.join(name), &text).unwrap();
            FileSum {
                name: name.to_string(),
                sha256: package::sha256_hex(text.as_bytes()),
            }
        })
        .collect();
    std::fs::write(pkg.join(SUMS_FILE), package::render(&sums)).unwrap();
    pkg
}

/// Publishes `pkg` to a store that damages the object `damaged`; returns the outcome and
/// the names of the objects the store then holds.
fn publish_damaging(pkg: &Path, damaged: &'static str) -> (Result<Outcome>, Vec<String>) {
    let target: StoreRoot = (
        Arc::new(Intercepted::in_memory(Damaging(damaged))),
        ObjectPath::from("models/nano"),
    );
    let verified = package::read_verified(pkg).unwrap();
    let shown = "damaging://models/nano";
    let outcome = publish_to(pkg, verified, &target, shown, false, &ProgressBar::hidden());
    let held = store::block_on(store::list(target.0.as_ref(), &target.1)).unwrap();
    let names = (held.iter())
        .filter_map(|meta| meta.location.filename().map(str::to_string))
        .collect();
    (outcome, names)
}

/// An intact store gets every file, and the outcome counts them and their bytes.
#[test]
fn an_intact_store_gets_the_package_counted_in_files_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = small_package(dir.path());
    // Its damage is kept for an object the package does not have.
    let (outcome, held) = publish_damaging(&pkg, "not-in-the-package");
    let bytes = (std::fs::read_dir(&pkg).unwrap())
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    let files = package::PACKAGE_FILES.len() + 1;
    assert_eq!(
        outcome.unwrap(),
        Outcome::Uploaded {
            files,
            bytes,
            replaced: false
        }
    );
    assert_eq!(held.len(), files, "{held:?}");
}

/// A local destination inside the package (the package itself, a folder in it that need
/// not exist yet) is refused, written as a path or as a file:// URL; a store elsewhere is
/// not a local folder and passes.
#[test]
fn a_destination_inside_the_package_is_refused_however_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = small_package(dir.path());
    let inside = pkg.join("sub/folder");
    for url in [
        pkg.display().to_string(),
        inside.display().to_string(),
        format!("file://{}", inside.display()),
    ] {
        let err = refuse_inside(&pkg, &url).unwrap_err().to_string();
        assert!(err.contains("is inside the package"), "{url}: {err}");
    }
    let beside = dir.path().join("published");
    refuse_inside(&pkg, &format!("file://{}", beside.display())).unwrap();
    refuse_inside(&pkg, "s3://bucket/pkg/sub").unwrap();
}

/// A file the store damages fails its read-back, named; no `SHA256SUMS` is written, so the
/// URL never looks like a complete package.
#[test]
fn a_file_the_store_damages_fails_its_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = small_package(dir.path());
    let (outcome, held) = publish_damaging(&pkg, "config.json");
    let err = outcome.unwrap_err().to_string();
    assert!(
        err.contains(
            "damaging://models/nano/config.json does not read back with the SHA-256 \
             SHA256SUMS lists"
        ),
        "{err}"
    );
    assert!(held.contains(&"config.json".to_string()), "{held:?}");
    assert!(!held.contains(&SUMS_FILE.to_string()), "{held:?}");
}

/// A `SHA256SUMS` the store damages fails its read-back too, and is removed again: a damaged
/// listing would pass for a package and refuse the command's own rerun.
#[test]
fn a_sha256sums_the_store_damages_fails_its_read_back_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = small_package(dir.path());
    let (outcome, held) = publish_damaging(&pkg, SUMS_FILE);
    let err = outcome.unwrap_err().to_string();
    assert!(
        err.contains(
            "damaging://models/nano/SHA256SUMS does not read back as uploaded (the store \
             damaged it; removed again)"
        ),
        "{err}"
    );
    assert!(!held.contains(&SUMS_FILE.to_string()), "{held:?}");
    assert_eq!(held.len(), package::PACKAGE_FILES.len(), "{held:?}");
}
