//! `ecgfm publish PKG --to URL`: uploads an exported package to an object store (s3://, gs://,
//! az://, file://, a local path, memory://; credentials from the environment, never logged).
//!
//! - The package is checked against its own `SHA256SUMS` before anything is sent.
//! - Each file is streamed from disk as a multipart upload (S3's single PUT stops at 5 GB), so
//!   a package of any size publishes in about 50 MB of memory (parts in flight).
//! - Every file is read back after upload and its SHA-256 compared with the list; `SHA256SUMS`
//!   is uploaded last, so a URL with a `SHA256SUMS` holds a complete package.
//! - A URL that already holds this package (same `SHA256SUMS`, every file verified) is left as
//!   it is; files of it that are missing or damaged are uploaded again.
//! - A URL holding a different package, or objects that are not this package's, is refused
//!   unless `--force`, which overwrites the old package's files (every package has the same
//!   file names) or uploads beside the other objects, and deletes none of them.

use crate::package::{self, FileSum, SUMS_FILE};
use crate::progress::byte_bar;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use ecgfm_data::object_sink::ObjectSink;
use ecgfm_data::store::{self, StoreRoot};
use indicatif::ProgressBar;
use object_store::ObjectStoreExt;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Bytes of a package file buffered per write to its upload.
const UPLOAD_PIECE: usize = 1 << 20;

#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    /// Package folder written by `ecgfm export`.
    #[arg(value_name = "PKG")]
    pub package: PathBuf,
    /// Destination: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// file:///abs/path or a local folder (credentials from the environment, e.g.
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Replace a different package (or other objects) already at the URL.
    #[arg(long)]
    pub force: bool,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The URL already held this package, every file verified: nothing sent.
    AlreadyPublished { files: usize },
    /// Files sent (all others already there and verified), then every file verified.
    Uploaded {
        files: usize,
        bytes: u64,
        replaced: bool,
    },
}

/// Runs `ecgfm publish`.
pub fn run(args: &PublishArgs) -> Result<()> {
    let shown = store::redact_url(&args.to);
    let bar = byte_bar("publishing");
    let outcome = publish(&args.package, &args.to, &[], args.force, &bar)?;
    bar.finish_and_clear();
    match outcome {
        Outcome::AlreadyPublished { files } => say!(
            "{shown} already holds this package ({files} files, every checksum verified): \
             nothing to upload"
        ),
        Outcome::Uploaded {
            files,
            bytes,
            replaced,
        } => say!(
            "published {} to {shown}: uploaded {files} files ({bytes} bytes){}, every file's \
             SHA-256 verified after upload",
            args.package.display(),
            if replaced {
                ", replacing the package that was there"
            } else {
                ""
            }
        ),
    }
    Ok(())
}

/// Uploads the package folder `pkg` to `url`, with explicit store `options` on top of the
/// environment (see `ecgfm_data::store::open_url_with`); `bar` counts the package's bytes as
/// they are uploaded or found in place.
pub fn publish(
    pkg: &Path,
    url: &str,
    options: &[(&str, &str)],
    force: bool,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let verified = package::read_verified(pkg)?;
    refuse_inside(pkg, url)?;
    let target = store::open_url_with(url, options)?;
    publish_to(pkg, verified, &target, &store::redact_url(url), force, bar)
}

/// [`publish`] into the open store `target` (named `shown` in messages), of the package `pkg`
/// whose `SHA256SUMS` text and files `package::read_verified` returned.
fn publish_to(
    pkg: &Path,
    (sums_text, files): (String, Vec<(FileSum, u64)>),
    target: &StoreRoot,
    shown: &str,
    force: bool,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let remote = Remote::list(target, shown)?;

    let old_sums = match remote.names.contains(SUMS_FILE) {
        true => Some(remote.read_text(SUMS_FILE)?),
        false => None,
    };
    // The package there, if any: a SHA256SUMS listing exactly a package's files (one of
    // `sha256sum` over other files is not, and --force then overwrites but deletes nothing).
    let old_package = old_sums
        .as_deref()
        .and_then(|text| package::parse(text, "").ok())
        .filter(|sums| package::is_package_listing(sums));
    let mut replaced = false;
    match &old_package {
        _ if old_sums.as_deref() == Some(sums_text.as_str()) => {}
        Some(old_files) => {
            if !force {
                bail!(
                    "{shown} already holds a different package ({}); pass --force to replace it",
                    describe_difference(old_files, &files)
                );
            }
            replaced = true;
        }
        None => {
            let foreign: Vec<&String> = remote
                .names
                .iter()
                .filter(|name| !files.iter().any(|(s, _)| s.name == **name))
                .collect();
            if !foreign.is_empty() && !force {
                bail!(
                    "{shown} is not empty and holds no ecgfm package ({} other objects, e.g. \
                     {}); pass --force to upload there anyway",
                    foreign.len(),
                    foreign.first().expect("not empty")
                );
            }
        }
    }

    let names: Vec<&str> = (files.iter().map(|(sum, _)| sum.name.as_str()))
        .chain([SUMS_FILE])
        .collect();
    remove_own_staging(target, &names)?;
    // Files already there with the right checksum (a re-publish, or an interrupted upload of
    // the same package) are not sent again.
    let mut sent = (0usize, 0u64);
    bar.set_length(files.iter().map(|(_, size)| size).sum());
    for (sum, size) in &files {
        if remote.names.contains(&sum.name) && remote.matches(sum)? {
            bar.inc(*size);
            continue;
        }
        if sent.0 == 0 && old_sums.is_some() {
            // The old SHA256SUMS goes first: until the new one is written, the URL must not
            // look like a complete package.
            remote.delete(SUMS_FILE)?;
        }
        remote.upload(&sum.name, &pkg.join(&sum.name), bar)?;
        if !remote.matches(sum)? {
            bail!(
                "{shown}/{} does not read back with the SHA-256 {SUMS_FILE} lists ({}): the \
                 store damaged it, or the package's file changed while it was uploaded",
                sum.name,
                sum.sha256
            );
        }
        sent = (sent.0 + 1, sent.1 + size);
    }
    let sums_in_place = old_sums.as_deref() == Some(sums_text.as_str()) && sent.0 == 0;
    if sums_in_place {
        return Ok(Outcome::AlreadyPublished {
            files: files.len() + 1,
        });
    }
    remote.put(SUMS_FILE, Bytes::from(sums_text.clone()))?;
    if remote.read_text(SUMS_FILE)? != sums_text {
        // Removed again: a damaged listing would pass for a package, and the same command could
        // not resume (it refuses a URL whose listing is not its package's without --force).
        remote.delete(SUMS_FILE)?;
        bail!(
            "{shown}/{SUMS_FILE} does not read back as uploaded (the store damaged it; removed \
             again): run the same command again"
        );
    }
    Ok(Outcome::Uploaded {
        files: sent.0 + 1,
        bytes: sent.1 + sums_text.len() as u64,
        replaced,
    })
}

/// Removes what a killed upload to a local folder left of the package's files `names`: their
/// staging files (`NAME#N`, which object_store's listings never show). Other files there are
/// left alone, whatever their names.
fn remove_own_staging(target: &StoreRoot, names: &[&str]) -> Result<()> {
    let Some(dir) = store::local_path(target.0.as_ref(), &target.1) else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if store::staged_name(&name).is_some_and(|staged| names.contains(&staged)) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("removing {}, left by a killed upload", path.display()))?;
        }
    }
    Ok(())
}

/// Fails when `url` is a local folder inside the package `pkg` (or the package itself): the
/// upload would become part of the package and break its checksums.
fn refuse_inside(pkg: &Path, url: &str) -> Result<()> {
    let local = url.strip_prefix("file://").unwrap_or(url);
    if url.contains("://") && !url.starts_with("file://") {
        return Ok(());
    }
    // The destination may not exist yet: compare its nearest existing ancestor.
    let dest = Path::new(local);
    let existing = dest
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    let (Ok(pkg_real), Ok(existing_real)) = (pkg.canonicalize(), existing.canonicalize()) else {
        return Ok(());
    };
    if existing_real.starts_with(&pkg_real) {
        bail!(
            "--to {url} is inside the package {}: publish it somewhere else",
            pkg.display()
        );
    }
    Ok(())
}

/// One line naming the files that differ between the package at the URL and this one.
fn describe_difference(old: &[FileSum], new: &[(FileSum, u64)]) -> String {
    let names: BTreeSet<&str> = old
        .iter()
        .map(|f| f.name.as_str())
        .chain(new.iter().map(|(f, _)| f.name.as_str()))
        .collect();
    let differing: Vec<&str> = names
        .into_iter()
        .filter(|name| {
            let before = old.iter().find(|f| f.name == *name);
            let after = new.iter().find(|(f, _)| f.name == *name).map(|(f, _)| f);
            before != after
        })
        .collect();
    let verb = if differing.len() == 1 {
        "differs"
    } else {
        "differ"
    };
    format!("{} {verb}", differing.join(", "))
}

/// The objects directly under the destination prefix.
struct Remote<'a> {
    target: &'a StoreRoot,
    shown: &'a str,
    /// Names relative to the prefix (nested ones keep their `/`).
    names: BTreeSet<String>,
}

impl<'a> Remote<'a> {
    fn list(target: &'a StoreRoot, shown: &'a str) -> Result<Remote<'a>> {
        let (object_store, root) = target;
        let objects = store::block_on(store::list(object_store.as_ref(), root))
            .with_context(|| format!("listing {shown}"))?;
        let prefix = format!("{}/", root.as_ref());
        let names = objects
            .iter()
            .map(|meta| {
                let location = meta.location.as_ref();
                location
                    .strip_prefix(&prefix)
                    .unwrap_or(location)
                    .to_string()
            })
            .collect();
        Ok(Remote {
            target,
            shown,
            names,
        })
    }

    fn location(&self, name: &str) -> object_store::path::Path {
        store::join(&self.target.1, name)
    }

    fn read(&self, name: &str) -> Result<Bytes> {
        store::block_on(store::get_bytes(
            self.target.0.as_ref(),
            &self.location(name),
        ))
        .with_context(|| format!("reading {}/{name}", self.shown))
    }

    fn read_text(&self, name: &str) -> Result<String> {
        String::from_utf8(self.read(name)?.to_vec())
            .with_context(|| format!("{}/{name} is not text", self.shown))
    }

    /// Whether the object `sum.name` has the SHA-256 `sum.sha256` (read as a stream).
    fn matches(&self, sum: &FileSum) -> Result<bool> {
        let (_, sha256) = store::block_on(store::sha256_of(
            self.target.0.as_ref(),
            &self.location(&sum.name),
        ))
        .with_context(|| format!("reading {}/{}", self.shown, sum.name))?;
        Ok(sha256 == sum.sha256)
    }

    /// Uploads the file at `path` as the object `name`, in parts as it is read; `bar` counts
    /// the bytes sent.
    fn upload(&self, name: &str, path: &Path, bar: &ProgressBar) -> Result<()> {
        let uploading = || format!("uploading {} to {}/{name}", path.display(), self.shown);
        let file = File::open(path).with_context(uploading)?;
        let sink = ObjectSink::create(self.target.0.as_ref(), &self.location(name))
            .with_context(uploading)?;
        let mut sink = BufWriter::with_capacity(UPLOAD_PIECE, sink);
        std::io::copy(&mut bar.wrap_read(file), &mut sink).with_context(uploading)?;
        let sink = sink.into_inner().map_err(|e| e.into_error());
        sink.with_context(uploading)?
            .finish()
            .with_context(uploading)
    }

    fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        store::block_on(store::put_bytes(
            self.target.0.as_ref(),
            &self.location(name),
            bytes,
        ))
        .with_context(|| format!("uploading {}/{name}", self.shown))
    }

    fn delete(&self, name: &str) -> Result<()> {
        store::block_on(self.target.0.delete(&self.location(name)))
            .with_context(|| format!("deleting {}/{name}", self.shown))
    }
}

#[cfg(test)]
mod tests;
