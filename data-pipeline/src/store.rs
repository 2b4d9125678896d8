//! Object stores behind one URL syntax: local paths, `file://`, `memory://`, `s3://`, `gs://`,
//! `az://` (via the `object_store` crate), plus the few async helpers the rest of the crate uses
//! (get, ranged get, suffix get, put, list) and a process-wide tokio runtime to drive them from
//! synchronous code. Credentials come from the standard environment variables or explicit
//! options, and never appear in errors: URLs are redacted first (`store_redact`).

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::DataError;
use crate::store_env;
use crate::store_http::CertificateRefusalIsFinal;
use crate::store_redact::scrub;
pub use crate::store_redact::{is_redacted, redact_url, redact_urls_in};

/// A store and the dataset root inside it.
pub type StoreRoot = (Arc<dyn ObjectStore>, Path);

/// Opens the store a URL names, configured from the environment (S3: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...; GCS:
/// `GOOGLE_*`; Azure: `AZURE_*`), and returns it with the root path the URL points at.
///
/// Accepted: a local path (relative or absolute, need not exist yet), `file:///abs/path`,
/// `memory://name/prefix` (one in-memory store shared by the whole process, for tests),
/// `s3://bucket/prefix` (also `s3a://`), `gs://bucket/prefix`, `az://container/prefix` (and
/// the other Azure forms `object_store` knows). An Azure URL's query string is taken as a SAS
/// token (`https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX?sv=...&sig=...`, as the portal
/// gives it) and used instead of any credential in the environment.
pub fn open_url(url: &str) -> Result<StoreRoot, DataError> {
    open_url_with::<&str, &str>(url, &[])
}

/// The scheme of a store address written without its `//` (`file:data/x`, `s3:bucket/x`), which
/// would otherwise open as a local folder of that name; None for anything else (a path, `C:x`).
fn scheme_without_slashes(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let known = [
        "file", "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https",
    ];
    known
        .contains(&scheme.to_ascii_lowercase().as_str())
        .then_some(scheme)
}

/// Like [`open_url`], then applies explicit `(key, value)` settings on top of the environment,
/// with the keys `object_store` uses for that store (`aws_endpoint`, `aws_access_key_id`,
/// `aws_allow_http`, `google_service_account`, `azure_storage_account_name`, ...). Tests use this
/// to point at a local S3 server without touching the process environment.
pub fn open_url_with<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    options: &[(K, V)],
) -> Result<StoreRoot, DataError> {
    let bad = |reason: String| DataError::BadUrl {
        url: redact_url(url),
        reason: scrub(&reason, url),
    };
    if is_redacted(url) {
        return Err(bad(
            "this address was saved or shown without its secrets (`***`): give the full URL".into(),
        ));
    }
    if let Some(rest) = url.strip_prefix("memory://") {
        return Ok((memory_store(), Path::from(rest.trim_matches('/'))));
    }
    if !url.contains("://") {
        if let Some(scheme) = scheme_without_slashes(url) {
            return Err(bad(format!(
                "a {scheme}: address needs `//` after its scheme ({scheme}://...); a local \
                 folder is given by its path alone"
            )));
        }
        return local_root(std::path::Path::new(url)).map_err(bad);
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        let userinfo = url
            .split_once("://")
            .is_some_and(|(_, after)| after.contains('@'));
        bad(match userinfo {
            true => format!(
                "malformed URL: {e} (a user name or key in a URL must have its `/`, `+`, `#`, \
                 `?` and `@` percent-encoded; better, leave them out of the URL and give them \
                 through the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3)"
            ),
            false => format!("malformed URL: {e}"),
        })
    })?;
    if parsed.scheme() == "file" {
        let path = parsed
            .to_file_path()
            .map_err(|()| bad("a file:// URL needs an absolute path".into()))?;
        return local_root(&path).map_err(bad);
    }
    let (scheme, root) = object_store::ObjectStoreScheme::parse(&parsed)
        .map_err(|e| bad(format!("unrecognised URL: {e}")))?;
    install_tls_provider();
    store_env::check_certificate_file()?;
    // A builder's error names no setting: the variables it read are named after it.
    let not_built = |prefix: &'static str| {
        move |e: object_store::Error| bad(format!("{e}{}", store_env::settings_named(prefix)))
    };
    use object_store::ObjectStoreScheme as S;
    let store: Arc<dyn ObjectStore> = match scheme {
        S::AmazonS3 => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(url)
                .with_http_connector(CertificateRefusalIsFinal);
            for (key, value) in config_keys::<AmazonS3ConfigKey, _, _>(options).map_err(bad)? {
                b = b.with_config(key, value);
            }
            store_env::check_endpoints(&[
                (
                    "AWS_ENDPOINT_URL_S3",
                    b.get_config_value(&AmazonS3ConfigKey::S3Endpoint),
                ),
                (
                    "AWS_ENDPOINT_URL",
                    b.get_config_value(&AmazonS3ConfigKey::Endpoint),
                ),
            ])?;
            Arc::new(b.build().map_err(not_built("AWS_"))?)
        }
        S::GoogleCloudStorage => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_http_connector(CertificateRefusalIsFinal);
            for (key, value) in config_keys::<GoogleConfigKey, _, _>(options).map_err(bad)? {
                b = b.with_config(key, value);
            }
            Arc::new(b.build().map_err(not_built("GOOGLE_"))?)
        }
        S::MicrosoftAzure => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_http_connector(CertificateRefusalIsFinal);
            if let Some(sas) = parsed.query().filter(|q| !q.is_empty()) {
                // A SAS URL as the Azure portal gives it: its token is the credential.
                b = b
                    .with_config(AzureConfigKey::SasKey, sas)
                    .with_config(AzureConfigKey::CredentialType, "sas_token");
            }
            for (key, value) in config_keys::<AzureConfigKey, _, _>(options).map_err(bad)? {
                b = b.with_config(key, value);
            }
            store_env::check_endpoints(&[(
                "AZURE_STORAGE_ENDPOINT",
                b.get_config_value(&AzureConfigKey::Endpoint),
            )])?;
            Arc::new(b.build().map_err(not_built("AZURE_"))?)
        }
        _ => return Err(bad(format!("unsupported scheme {}", parsed.scheme()))),
    };
    Ok((store, root))
}

/// `options` with their keys parsed as one store's configuration keys `C`; an unknown key is
/// named.
fn config_keys<C: std::str::FromStr, K: AsRef<str>, V: AsRef<str>>(
    options: &[(K, V)],
) -> Result<Vec<(C, &str)>, String> {
    options
        .iter()
        .map(|(k, v)| {
            let key = k
                .as_ref()
                .parse()
                .map_err(|_| format!("unknown store option {:?}", k.as_ref()))?;
            Ok((key, v.as_ref()))
        })
        .collect()
}

/// Whether two URLs name places in one store, so that the store can copy from one to the other
/// itself (a hard link on a local disk, S3's CopyObject within a bucket, GCS's and Azure's
/// copies within a bucket or container): both local paths (or `file://`), both `memory://`, or
/// `s3://`, `gs://` or `az://` URLs of the same bucket. Other pairs, and URL forms not listed,
/// are treated as different stores.
pub fn same_store(a: &str, b: &str) -> bool {
    fn place(url: &str) -> Option<(&'static str, String)> {
        if url.starts_with("memory://") {
            return Some(("memory", String::new()));
        }
        if !url.contains("://") {
            return Some(("local", String::new()));
        }
        let parsed = url::Url::parse(url).ok()?;
        let bucket = parsed.host_str().unwrap_or_default().to_string();
        match parsed.scheme() {
            "file" => Some(("local", String::new())),
            "s3" | "s3a" => Some(("s3", bucket)),
            "gs" => Some(("gs", bucket)),
            "az" => Some(("az", bucket)),
            _ => None,
        }
    }
    matches!((place(a), place(b)), (Some(x), Some(y)) if x == y)
}

/// The process-wide in-memory store behind every `memory://` URL.
fn memory_store() -> Arc<dyn ObjectStore> {
    static MEMORY: OnceLock<Arc<InMemory>> = OnceLock::new();
    MEMORY.get_or_init(|| Arc::new(InMemory::new())).clone()
}

fn local_root(path: &std::path::Path) -> Result<StoreRoot, String> {
    let absolute = std::path::absolute(path).map_err(|e| format!("bad local path: {e}"))?;
    let absolute = without_parent_steps(&absolute);
    let root = Path::from_absolute_path(&absolute).map_err(|e| format!("bad local path: {e}"))?;
    Ok((Arc::new(LocalFileSystem::new()), root))
}

/// The absolute `path` with its `..` steps taken (object_store's paths have none), each as the
/// file system takes it: `..` after a folder that exists is the parent of that folder's real
/// path (so `link/..` is the parent of the link's target, as a shell's `ls link/..` shows it),
/// after one not made yet (so no link) the folder before it. A path without `..` is returned as
/// it is.
fn without_parent_steps(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    if !path.components().any(|c| c == Component::ParentDir) {
        return path.to_path_buf();
    }
    let mut resolved = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if let Ok(real) = resolved.canonicalize() {
                    resolved = real;
                }
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
}

/// `root/relative`, where `relative` is a `/`-separated path such as `shards/shard-00000.parquet`.
pub fn join(root: &Path, relative: &str) -> Path {
    relative
        .split('/')
        .filter(|part| !part.is_empty())
        .fold(root.clone(), |path, part| path.join(part))
}

/// Makes ring rustls's cryptography for this process, before the first cloud client is built
/// (reqwest is built without a provider of its own, so a client would panic without one). Once;
/// a provider the embedding program installed first is kept.
fn install_tls_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A request's error, naming the object as a person finds it ([`shown`]: a local file by its
/// absolute path, which `location`, relative to the file system's root, lacks).
pub(crate) fn store_error(
    store: &dyn ObjectStore,
    location: &Path,
) -> impl FnOnce(object_store::Error) -> DataError {
    store_error_at(shown(store, location))
}

/// As [`store_error`], for the object `shown` names (as [`shown`] names it).
pub(crate) fn store_error_at(shown: String) -> impl FnOnce(object_store::Error) -> DataError {
    move |source| DataError::Store {
        location: shown,
        source,
    }
}

/// `location` as a person finds it: a local file by its absolute path (object_store's paths
/// drop the leading `/`), another store's object by its key.
pub fn shown(store: &dyn ObjectStore, location: &Path) -> String {
    if is_local(store) {
        format!("/{location}")
    } else {
        location.to_string()
    }
}

/// Whether `store` is the local file system's.
fn is_local(store: &dyn ObjectStore) -> bool {
    store.to_string().starts_with("LocalFileSystem")
}

/// The file or folder `location` of a local store names, or `None` for another store.
pub fn local_path(store: &dyn ObjectStore, location: &Path) -> Option<std::path::PathBuf> {
    is_local(store).then(|| std::path::PathBuf::from(shown(store, location)))
}

/// Removes the staging files a local store's writes leave when the process is killed in one
/// (`NAME#N` beside `NAME`, which object_store's listings never show) from the folder
/// `prefix`; other stores write an object in one request and leave none.
pub fn remove_local_staging(store: &dyn ObjectStore, prefix: &Path) -> Result<(), DataError> {
    let Some(dir) = local_path(store, prefix) else {
        return Ok(());
    };
    let entries = match std::fs::read_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        entries => entries,
    };
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| DataError::Io { path, source }
    };
    for entry in entries.map_err(io(&dir))? {
        let path = entry.map_err(io(&dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if staged_name(name).is_some() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// The object a local store's staging file `file_name` (`NAME#N`) was writing: `NAME`.
pub fn staged_name(file_name: &str) -> Option<&str> {
    let (name, n) = file_name.rsplit_once('#')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// Deletes the object at `location` (blocking); one that is not there is no error.
pub fn remove(store: &dyn ObjectStore, location: &Path) -> Result<(), DataError> {
    match block_on(store.delete(location)) {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(err) => Err(store_error(store, location)(err)),
    }
}

/// The whole object.
pub async fn get_bytes(store: &dyn ObjectStore, location: &Path) -> Result<Bytes, DataError> {
    let result = store
        .get(location)
        .await
        .map_err(store_error(store, location))?;
    result.bytes().await.map_err(store_error(store, location))
}

/// The bytes `range` of the object.
pub async fn get_range(
    store: &dyn ObjectStore,
    location: &Path,
    range: Range<u64>,
) -> Result<Bytes, DataError> {
    store
        .get_range(location, range)
        .await
        .map_err(store_error(store, location))
}

/// Several byte ranges of one object (adjacent ranges are coalesced into one request).
pub async fn get_ranges(
    store: &dyn ObjectStore,
    location: &Path,
    ranges: &[Range<u64>],
) -> Result<Vec<Bytes>, DataError> {
    store
        .get_ranges(location, ranges)
        .await
        .map_err(store_error(store, location))
}

/// The last `n` bytes of the object (all of it when shorter) and the object's total size, in
/// one request; in two (its size, then a bounded range) where the store has no suffix ranges
/// (Azure Blob Storage).
pub async fn get_suffix(
    store: &dyn ObjectStore,
    location: &Path,
    n: u64,
) -> Result<(Bytes, u64), DataError> {
    let options = GetOptions {
        range: Some(GetRange::Suffix(n)),
        ..Default::default()
    };
    let result = match store.get_opts(location, options).await {
        Err(object_store::Error::NotSupported { .. }) => {
            let size = store
                .head(location)
                .await
                .map_err(store_error(store, location))?
                .size;
            let tail = match size {
                0 => Bytes::new(),
                _ => get_range(store, location, size.saturating_sub(n)..size).await?,
            };
            return Ok((tail, size));
        }
        result => result.map_err(store_error(store, location))?,
    };
    let size = result.meta.size;
    let bytes = result.bytes().await.map_err(store_error(store, location))?;
    Ok((bytes, size))
}

/// Writes the object in one request: readers see the old object or the whole new one, never a
/// part (a single PUT on object stores; write-to-temporary-then-rename on local disks).
pub async fn put_bytes(
    store: &dyn ObjectStore,
    location: &Path,
    bytes: Bytes,
) -> Result<(), DataError> {
    store
        .put(location, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(store_error(store, location))
}

/// The size and SHA-256 (hex) of an object, read as a stream (never whole in memory).
pub async fn sha256_of(
    store: &dyn ObjectStore,
    location: &Path,
) -> Result<(u64, String), DataError> {
    use sha2::{Digest, Sha256};
    let result = store
        .get(location)
        .await
        .map_err(store_error(store, location))?;
    let mut chunks = result.into_stream();
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = chunks
        .try_next()
        .await
        .map_err(store_error(store, location))?
    {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Every object under `prefix`, sorted by path.
pub async fn list(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>, DataError> {
    let mut objects: Vec<ObjectMeta> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(store_error(store, prefix))?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(objects)
}

/// The tokio runtime every store request of this crate runs on. One runtime for the process:
/// HTTP connection pools are tied to the runtime that opened them, so mixing runtimes breaks them.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ecgfm-io")
            .enable_all()
            .build()
            .expect("the operating system refused to start the tokio I/O runtime")
    })
}

/// Requests a reader keeps in flight where it fetches many small objects or byte ranges (shard
/// footers, row groups' columns, a journal's shards): an object store's round trip is paid once
/// per this many of them, not once each.
pub const REQUESTS_IN_FLIGHT: usize = 16;

/// Runs a future to completion on [`runtime`] from synchronous code (not from inside it).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `file:store/x` opened as a local folder named `file:store`; a scheme without its `//`
    /// is refused, a plain path (even one with a colon later on) still opens.
    #[test]
    fn a_scheme_without_its_slashes_is_refused() {
        for url in ["file:store/x", "S3:bucket/x", "gs:b"] {
            let err = open_url(url).unwrap_err().to_string();
            assert!(err.contains("needs `//`"), "{url}: {err}");
        }
        for path in ["/tmp/a:b", "runs/s3:x", "notes:x", "C:data"] {
            assert_eq!(scheme_without_slashes(path), None, "{path}");
        }
    }

    #[test]
    fn an_address_without_its_secrets_does_not_open() {
        for url in ["file:///tmp/ecg?***", "s3://***@bucket/ecg"] {
            let err = open_url(url).unwrap_err().to_string();
            assert!(err.contains("without its secrets"), "{err}");
        }
    }

    #[test]
    fn bad_url_errors_never_echo_secrets() {
        let err = open_url("ftp://user:hunter2pass@host/x?sig=SIGNATURE123").unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("hunter2pass") && !text.contains("SIGNATURE123"),
            "{text}"
        );
        assert!(text.contains("ftp"), "{text}");
    }

    #[test]
    fn same_store_is_one_bucket_or_one_machine() {
        assert!(same_store("data/a", "/tmp/b"));
        assert!(same_store("data/a", "file:///tmp/b"));
        assert!(same_store("memory://x/a", "memory://y/b"));
        assert!(same_store("s3://bucket/a", "s3a://bucket/b"));
        assert!(same_store("gs://b1/x", "gs://b1/y"));
        assert!(!same_store("s3://bucket/a", "s3://other/a"));
        assert!(!same_store("s3://bucket/a", "gs://bucket/a"));
        assert!(!same_store("data/a", "memory://x/a"));
        assert!(!same_store("data/a", "s3://bucket/a"));
        assert!(!same_store("https://host/a", "https://host/b"));
    }

    /// Two Azure containers are two stores (as two S3 or GCS buckets are), and one container
    /// is one store whatever the prefixes.
    #[test]
    fn same_store_tells_azure_containers_apart() {
        assert!(same_store("az://records/a", "az://records/b"));
        assert!(!same_store("az://records/a", "az://other/a"));
        assert!(!same_store("gs://b1/x", "gs://b2/x"));
    }

    #[test]
    fn sha256_of_streams_an_object() {
        let (store, root) = open_url("memory://store-test/sha").unwrap();
        let path = join(&root, "x.bin");
        block_on(put_bytes(store.as_ref(), &path, Bytes::from_static(b"abc"))).unwrap();
        let (size, sha) = block_on(sha256_of(store.as_ref(), &path)).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn memory_round_trip_is_shared_by_the_process() {
        let (store, root) = open_url("memory://store-test/ds").unwrap();
        let path = join(&root, "shards/a.bin");
        block_on(put_bytes(
            store.as_ref(),
            &path,
            Bytes::from_static(b"0123456789"),
        ))
        .unwrap();
        let (again, root2) = open_url("memory://store-test/ds").unwrap();
        assert_eq!(root, root2);
        let got = block_on(get_range(again.as_ref(), &path, 2..5)).unwrap();
        assert_eq!(&got[..], b"234");
        let (tail, size) = block_on(get_suffix(again.as_ref(), &path, 3)).unwrap();
        assert_eq!((&tail[..], size), (&b"789"[..], 10));
        let listed = block_on(list(again.as_ref(), &root)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, path);
    }

    #[test]
    fn local_paths_with_parent_steps_name_the_folder_they_lead_to() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::create_dir_all(base.join("real/inner")).unwrap();
        std::os::unix::fs::symlink(base.join("real/inner"), base.join("a/link")).unwrap();
        let shown_root = |path: std::path::PathBuf| {
            let (store, root) = open_url(path.to_str().unwrap()).unwrap();
            shown(store.as_ref(), &root)
        };
        let at = |rel: &str| base.join(rel).display().to_string();
        assert_eq!(shown_root(base.join("a/b/../out")), at("a/out"));
        assert_eq!(shown_root(base.join("a/b/../../out/ds")), at("out/ds"));
        // Through a symbolic link, `..` is the target's parent, as the file system has it.
        assert_eq!(shown_root(base.join("a/link/../out")), at("real/out"));
        // Folders not made yet step back by name.
        assert_eq!(shown_root(base.join("new/x/../ds")), at("new/ds"));
        // ...and a link's `..` before them is still its target's parent.
        assert_eq!(
            shown_root(base.join("a/link/../new/../out")),
            at("real/out")
        );
        let (store, root) = open_url(base.join("a/b/../ds").to_str().unwrap()).unwrap();
        block_on(put_bytes(
            store.as_ref(),
            &join(&root, "f"),
            Bytes::from_static(b"1"),
        ))
        .unwrap();
        assert_eq!(std::fs::read(base.join("a/ds/f")).unwrap(), b"1");
    }

    #[test]
    fn local_paths_and_file_urls_name_the_same_objects() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("ds");
        let (store, root) = open_url(plain.to_str().unwrap()).unwrap();
        let path = join(&root, "manifest.json");
        block_on(put_bytes(store.as_ref(), &path, Bytes::from_static(b"{}"))).unwrap();
        assert_eq!(std::fs::read(plain.join("manifest.json")).unwrap(), b"{}");
        let url = format!("file://{}", plain.display());
        let (store2, root2) = open_url(&url).unwrap();
        let got = block_on(get_bytes(store2.as_ref(), &join(&root2, "manifest.json"))).unwrap();
        assert_eq!(&got[..], b"{}");
        let missing = block_on(get_bytes(store2.as_ref(), &join(&root2, "nope.json")));
        assert!(missing.unwrap_err().to_string().contains("nope.json"));
    }
}
