//! Datasets on Azure Blob Storage end to end, against Azurite (Microsoft's storage emulator) on a
//! localhost port, with Microsoft's own Python SDK (`azure-storage-blob`) as the oracle: `data
//! synth` to `az://` writes the bytes it writes to a local folder, a run trains on it to the bits
//! of a run on the local copy and `eval` scores it as the local one, `embed` writes its Parquet
//! there (a block upload) with the bytes of a local one, `publish` uploads an exported package
//! (and, published again, uploads nothing), and `data merge` joins two datasets in the container
//! (server-side copies); raw CinC 2017 records uploaded there ingest into the shards the same files
//! give from a folder. A SAS URL
//! (`https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH?sv=...&sig=...`, the SDK's token) reads
//! and trains with its token and never shows it; a wrong signature and a read-only token's write
//! are refused with Azure's reason. A dataset another writer's lease holds (`_ingest.lock`) is
//! refused, naming that writer, and nothing is written there; a lease is renewed through Azure's
//! conditional writes and lost once another writer replaces it. The account key, given in the
//! environment, reaches no output and no file of a run.
//!
//! Azurite is a Node.js program: `ECGFM_AZURITE` names its `azurite-blob`, else it is looked up on
//! PATH (scripts/test.sh installs it with npm). Without it these tests skip, saying so, unless
//! `ECGFM_REQUIRE_AZURITE` is set (scripts/test.sh sets it when the install worked).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

mod common;
#[allow(dead_code)]
#[path = "../../data-pipeline/tests/pipeline/common/lease.rs"]
mod lease;
use common::{logged_losses, path_str, pretrain_args, succeeded, temp_dir, ECGFM, PACKAGE_FILES};
use sha2::Digest;

/// The storage account the tests' Azurite holds (`AZURITE_ACCOUNTS`) and its key: a key of our
/// own, not the emulator's well-known one, so a request signs with what the environment gives.
const ACCOUNT: &str = "ecgfmtest";
const ACCOUNT_KEY: &str =
    "ZWNnZm0gdGVzdCBrZXksIG5vdCBhIHNlY3JldDogMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYg==";
const CONTAINER: &str = "ecg";

/// The SDK's side: `create` makes the container; `sas PERMISSIONS` prints a container SAS token
/// (an hour long); `digests PREFIX` prints `sha256 name` of every blob under PREFIX; `upload
/// PREFIX FILE...` stores each file as PREFIX + its name.
const SDK: &str = r#"
import hashlib, os, sys
from datetime import datetime, timedelta, timezone
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas
endpoint, account, key, container, command = sys.argv[1:6]
conn = (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
        f"BlobEndpoint={endpoint}/{account};")
client = ContainerClient.from_connection_string(conn, container)
if command == "create":
    client.create_container()
elif command == "sas":
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    permission = ContainerSasPermissions.from_string(sys.argv[6])
    print(generate_container_sas(account, container, account_key=key, permission=permission,
                                 expiry=expiry))
elif command == "digests":
    for blob in client.list_blobs(name_starts_with=sys.argv[6]):
        data = client.download_blob(blob.name).readall()
        print(hashlib.sha256(data).hexdigest(), blob.name)
elif command == "upload":
    for path in sys.argv[7:]:
        with open(path, "rb") as f:
            client.upload_blob(sys.argv[6] + os.path.basename(path), f)
"#;

/// A running Azurite blob service with the container `ecg`, killed when dropped.
struct Azurite {
    child: Child,
    endpoint: String,
}

impl Azurite {
    /// Starts Azurite in memory on a free port and creates the container. `None` (after a skip
    /// message) when Azurite or the SDK is missing where they are not required.
    fn start() -> Option<Azurite> {
        let Some(program) = azurite_program() else {
            let required = std::env::var_os("ECGFM_REQUIRE_AZURITE").is_some();
            assert!(
                !required,
                "ECGFM_REQUIRE_AZURITE is set but no azurite-blob was found"
            );
            eprintln!(
                "skipping: Azurite not found (npm install azurite; ECGFM_AZURITE=.../azurite-blob)"
            );
            return None;
        };
        if !ecgfm_test_support::python_has(&["azure.storage.blob"]) {
            ecgfm_test_support::skip_without_oracle("azure-storage-blob (Azure's Python SDK)");
            return None;
        }
        let port = ecgfm_test_support::free_port();
        let child = Command::new(&program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"])
            // The SDK and object_store send API versions newer than some Azurite releases know.
            .arg("--skipApiVersionCheck")
            .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{ACCOUNT_KEY}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let server = Azurite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        ecgfm_test_support::wait_until_listening(port, "Azurite");
        server.sdk(&["create"]);
        Some(server)
    }

    /// Runs the SDK script with `args` after its connection arguments; its standard output.
    fn sdk(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .args(["-c", SDK, &self.endpoint, ACCOUNT, ACCOUNT_KEY, CONTAINER])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "azure-storage-blob {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `ecgfm args` against this Azurite (object_store's emulator settings), with the
    /// account and its key in `AZURE_STORAGE_ACCOUNT_NAME` and `_KEY` unless an argument is a SAS
    /// URL (the key would take precedence over its token); asserts the key appears in no output.
    fn ecgfm<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        let mut command = Command::new(ECGFM);
        command
            .args(args)
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", &self.endpoint);
        let signed = args
            .iter()
            .any(|a| a.as_ref().to_string_lossy().contains('?'));
        if !signed {
            command
                .env("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
                .env("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY);
        }
        let output = command.output().unwrap();
        let printed =
            String::from_utf8_lossy(&[&output.stdout[..], &output.stderr].concat()).into_owned();
        assert!(
            !printed.contains(ACCOUNT_KEY),
            "the key was printed:\n{printed}"
        );
        output
    }

    /// `ecgfm args` against this Azurite, asserted to succeed; its standard output.
    fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        succeeded(args, self.ecgfm(args))
    }

    /// `ecgfm args` against this Azurite, asserted to fail; its standard output and error.
    fn err<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let out = self.ecgfm(args);
        assert!(!out.status.success(), "ecgfm {args:?} should have failed");
        String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned()
    }

    /// `(name, sha256)` of every blob under `prefix`, as the SDK reads them, sorted by name.
    fn digests(&self, prefix: &str) -> Vec<(String, String)> {
        let mut digests: Vec<(String, String)> = self
            .sdk(&["digests", prefix])
            .lines()
            .map(|line| {
                let (sha, name) = line.split_once(' ').unwrap();
                (name.to_string(), sha.to_string())
            })
            .collect();
        digests.sort();
        digests
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$ECGFM_AZURITE`, else `azurite-blob` on PATH.
fn azurite_program() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ECGFM_AZURITE") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("azurite-blob"))
        .find(|path| path.is_file())
}

/// `data synth` of 40 three-second records with `seed` to `out`.
fn synth_args(out: &str, seed: u64) -> Vec<String> {
    let args = [
        "data",
        "synth",
        "--out",
        out,
        "--records",
        "40",
        "--window-s",
        "3",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--seed".into(), seed.to_string()]);
    args
}

/// The SHA-256 of a file, in hex.
fn sha256_of(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// `(name, sha256)` of every file under `dir`, named by its path below it after `prefix`,
/// sorted by name.
fn local_digests(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut digests: Vec<(String, String)> = ecgfm_test_support::files_below(dir)
        .iter()
        .map(|path| {
            let below = path.strip_prefix(dir).unwrap().display();
            (format!("{prefix}{below}"), sha256_of(path))
        })
        .collect();
    digests.sort();
    digests
}

/// `pretrain_args` of 4 steps into `out` on `data`.
fn train_args(out: &Path, data: &str) -> Vec<String> {
    let mut args = pretrain_args(out, 4);
    args.extend(["--data".to_string(), data.to_string()]);
    args
}

#[test]
fn a_dataset_on_azure_holds_the_local_bytes_and_trains_embeds_and_merges_the_same() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let dir = temp_dir("azure-dataset");
    let local = dir.join("ds");
    azurite.ok(&synth_args(path_str(&local), 5));
    azurite.ok(&synth_args("az://ecg/ds", 5));
    let stored = azurite.digests("ds/");
    assert_eq!(stored, local_digests(&local, "ds/"));
    assert!(stored.iter().any(|(name, _)| name.ends_with(".parquet")));

    let (on_disk, on_azure) = (dir.join("run-disk"), dir.join("run-azure"));
    azurite.ok(&train_args(&on_disk, path_str(&local)));
    azurite.ok(&train_args(&on_azure, "az://ecg/ds"));
    assert_eq!(logged_losses(&on_azure), logged_losses(&on_disk));
    for file in ecgfm_test_support::files_below(&on_azure) {
        let bytes = std::fs::read(&file).unwrap();
        let key = ACCOUNT_KEY.as_bytes();
        let holds_key = bytes.windows(key.len()).any(|w| w == key);
        assert!(!holds_key, "{} holds the account key", file.display());
    }
    assert_eq!(logged_losses(&on_disk).len(), 4);

    // `eval` reads the record ids from each shard's footer, as the loader does.
    let eval = |run: &Path, data: &str| {
        let out = dir.join("eval.json");
        let args = [
            "eval",
            "--run",
            path_str(run),
            "--data",
            data,
            "--labels",
            "synth",
        ];
        let rest = ["--protocol", "probe", "--epochs", "1", "--bootstrap", "0"];
        azurite.ok(&[&args[..], &rest, &["--out", path_str(&out)]].concat());
        let mut result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        for protocol in result["results"].as_array_mut().unwrap() {
            protocol.as_object_mut().unwrap().remove("seconds");
        }
        result["results"].take()
    };
    assert_eq!(
        eval(&on_azure, "az://ecg/ds"),
        eval(&on_disk, path_str(&local))
    );

    let embed = |data: &str, out: &str| {
        let args = [
            "embed",
            "--run",
            path_str(&on_disk),
            "--data",
            data,
            "--out",
            out,
        ];
        azurite.ok(&[&args[..], &["--threads", "2"]].concat());
    };
    let embedded = dir.join("emb.parquet");
    embed("az://ecg/ds", path_str(&embedded));
    embed("az://ecg/ds", "az://ecg/emb.parquet");
    let stored = azurite.digests("emb.parquet");
    assert_eq!(stored, [("emb.parquet".into(), sha256_of(&embedded))]);

    let pkg = dir.join("pkg");
    azurite.ok(&[
        "export",
        "--run",
        path_str(&on_disk),
        "--out",
        path_str(&pkg),
    ]);
    let published = azurite.ok(&["publish", path_str(&pkg), "--to", "az://ecg/models/nano"]);
    let uploaded_all = format!("uploaded {} files", PACKAGE_FILES.len());
    assert!(published.contains(&uploaded_all), "{published}");
    let stored = azurite.digests("models/nano/");
    assert_eq!(stored, local_digests(&pkg, "models/nano/"));
    let again = azurite.ok(&["publish", path_str(&pkg), "--to", "az://ecg/models/nano"]);
    assert!(again.contains("already holds this package"), "{again}");

    let other = [
        synth_args("az://ecg/ds2", 6),
        vec!["--source-name".into(), "other".into()],
    ];
    azurite.ok(&other.concat());
    azurite.ok(&[
        "data",
        "merge",
        "az://ecg/ds",
        "az://ecg/ds2",
        "--out",
        "az://ecg/both",
    ]);
    let inspected = azurite.ok(&["data", "inspect", "az://ecg/both"]);
    assert!(
        inspected.contains("240 rows from 80 records"),
        "{inspected}"
    );

    // A container that does not exist is named as such, read or written.
    let missing = ecgfm_data::store_hint::MISSING_BUCKET;
    let read = azurite.err(&["data", "inspect", "az://nocontainer/ds"]);
    assert!(
        read.contains(&format!("ds/manifest.json not found: {missing}")),
        "{read}"
    );
    let written = azurite.err(&synth_args("az://nocontainer/ds", 5));
    assert!(written.contains(missing), "{written}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_sas_url_reads_and_trains_with_its_token_and_a_wrong_or_read_only_one_is_refused() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.ok(&synth_args("az://ecg/ds", 7));
    let sas = azurite.sdk(&["sas", "rl"]).trim().to_string();
    let sig = sas
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="))
        .expect("the SDK's token has a signature")
        .to_string();
    let address = format!("https://{ACCOUNT}.blob.core.windows.net/{CONTAINER}/ds");
    let signed = format!("{address}?{sas}");

    let inspected = azurite.ok(&["data", "inspect", &signed]);
    assert!(inspected.contains(&format!("{address}?***")), "{inspected}");
    assert!(
        inspected.contains("120 rows from 40 records"),
        "{inspected}"
    );
    assert!(!inspected.contains(&sig), "{inspected}");

    let dir = temp_dir("azure-sas");
    let (with_key, with_sas) = (dir.join("run-key"), dir.join("run-sas"));
    azurite.ok(&train_args(&with_key, "az://ecg/ds"));
    azurite.ok(&train_args(&with_sas, &signed));
    assert_eq!(logged_losses(&with_sas), logged_losses(&with_key));

    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let forged = signed.replace(&sig, &format!("{first}{}", &sig[1..]));
    assert_ne!(forged, signed);
    let refused = azurite.err(&["data", "inspect", &forged]);
    assert!(refused.contains("403 Forbidden"), "{refused}");
    assert!(refused.contains("AuthorizationFailure"), "{refused}");
    assert!(!refused.contains(&sig[1..]), "{refused}");

    let read_only = format!("https://{ACCOUNT}.blob.core.windows.net/{CONTAINER}/new?{sas}");
    let refused = azurite.err(&synth_args(&read_only, 7));
    assert!(
        refused.contains("AuthorizationPermissionMismatch"),
        "{refused}"
    );
    assert!(!refused.contains(&sig), "{refused}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Raw WFDB records in the container ingest into the dataset the same files give from a folder:
/// the same shards, byte for byte, and the source's address in the manifest.
#[test]
fn records_on_azure_ingest_into_the_shards_of_the_same_records_on_disk() {
    let Some(cinc) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let dir = temp_dir("azure-ingest");
    let raw = dir.join("raw");
    std::fs::create_dir(&raw).unwrap();
    let mut files = vec![cinc.join("REFERENCE.csv")];
    for record in 1..=6 {
        for ext in ["hea", "mat"] {
            files.push(cinc.join(format!("A{record:05}.{ext}")));
        }
    }
    for file in &files {
        std::fs::copy(file, raw.join(file.file_name().unwrap())).unwrap();
    }
    let names: Vec<&str> = files.iter().map(|f| path_str(f)).collect();
    azurite.sdk(&[&["upload", "raw/"][..], &names].concat());

    let ingest = |source: &str, out: &str| {
        azurite.ok(&[
            "data", "ingest", source, "--format", "cinc2017", "--out", out,
        ])
    };
    let local = dir.join("ds");
    ingest(path_str(&raw), path_str(&local));
    let report = ingest("az://ecg/raw", "az://ecg/cinc");
    assert!(report.contains("6 records"), "{report}");
    let shards = |digests: Vec<(String, String)>| -> Vec<(String, String)> {
        let shard = |(name, _): &(String, String)| name.contains("/shards/");
        digests.into_iter().filter(shard).collect()
    };
    let stored = shards(azurite.digests("cinc/"));
    assert!(!stored.is_empty());
    assert_eq!(stored, shards(local_digests(&local, "cinc/")));
    let inspected = azurite.ok(&["data", "inspect", "az://ecg/cinc"]);
    assert!(inspected.contains("az://ecg/raw"), "{inspected}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_dataset_another_writer_holds_on_azure_is_refused() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let dir = temp_dir("azure-lease");
    let lock = dir.join("_ingest.lock");
    let holder = r#"{"writer":"merge","pid":7,"host":"elsewhere","renewals":0}"#;
    std::fs::write(&lock, holder).unwrap();
    azurite.sdk(&["upload", "held/", path_str(&lock)]);
    let err = azurite.err(&synth_args("az://ecg/held", 5));
    assert!(
        err.contains(
            "az://ecg/held is being written by another merge (pid 7 on elsewhere), whose lock \
             az://ecg/held/_ingest.lock was renewed"
        ),
        "{err}"
    );
    let held = azurite.digests("held/");
    assert_eq!(held.len(), 1, "the synth wrote beside the lock: {held:?}");
    // A synth where no one writes leaves no lock behind.
    azurite.ok(&synth_args("az://ecg/free", 5));
    let written = azurite.digests("free/");
    assert!(written.iter().any(|(name, _)| name == "free/manifest.json"));
    let lock_left = written
        .iter()
        .any(|(name, _)| name.ends_with("_ingest.lock"));
    assert!(!lock_left, "{written:?}");
}

#[test]
fn a_lease_on_azure_is_renewed_and_lost_once_replaced() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    // The emulator's account as a custom endpoint (object_store's emulator setting reads its
    // address from the process environment, shared by every test here).
    let endpoint = format!("{}/{ACCOUNT}", azurite.endpoint);
    let options = [
        ("azure_storage_account_name", ACCOUNT),
        ("azure_storage_account_key", ACCOUNT_KEY),
        ("azure_storage_endpoint", &endpoint),
        ("azure_allow_http", "true"),
    ];
    let url = "az://ecg/renewed";
    let (store, root) = ecgfm_data::store::open_url_with(url, &options).unwrap();
    lease::renewed_then_lost_when_replaced(&store, &root, url);
}
