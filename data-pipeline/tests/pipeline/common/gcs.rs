//! A throwaway Google Cloud Storage for tests: moto's S3 server behind `gcs_stand_in.py`, which
//! renames the two things the GCS XML API calls differently (see the script), and a service
//! account key file that points object_store's GCS client at it with OAuth off. Tests pass
//! `GcsStandIn::options()` to `store::open_url_with`, or set `GOOGLE_SERVICE_ACCOUNT` to
//! `key_file()` for the `ecgfm` binary.

use std::path::PathBuf;

use super::s3::MotoS3;

/// The private key written into the key file, which no output may show. It is never used:
/// OAuth is off.
pub const PRIVATE_KEY: &str = "stand-in-private-key-do-not-print";

/// A running stand-in with one bucket, and the key file that reaches it.
pub struct GcsStandIn {
    server: MotoS3,
    key_dir: tempfile::TempDir,
    /// The private key in the key file (never to be printed).
    private_key: String,
}

impl GcsStandIn {
    /// Starts the stand-in and creates `bucket`; `None` (after printing why) without moto, as
    /// [`MotoS3::start`]. OAuth is off: requests carry no token.
    pub fn start(bucket: &str) -> Option<Self> {
        let server = MotoS3::start_with(bucket, &["-c", include_str!("gcs_stand_in.py")])?;
        let key_dir = tempfile::tempdir().unwrap();
        write_key_file(&key_dir.path().join("key.json"), &server, PRIVATE_KEY, true);
        let private_key = PRIVATE_KEY.to_string();
        Some(GcsStandIn {
            server,
            key_dir,
            private_key,
        })
    }

    /// Like [`GcsStandIn::start`], with a real RSA key in the key file and OAuth on, as a
    /// user's service account has: object_store signs each request's JWT with the key (RS256),
    /// and the stand-in refuses any whose signature the matching public key does not verify.
    pub fn start_signed(bucket: &str) -> Option<Self> {
        let key_dir = tempfile::tempdir().unwrap();
        let private_key = rsa_key_pair(key_dir.path(), "service-account")?;
        let public = key_dir.path().join("service-account.pub.pem");
        let script = include_str!("gcs_stand_in.py");
        let server = MotoS3::start_with(bucket, &["-c", script, public.to_str().unwrap()])?;
        write_key_file(
            &key_dir.path().join("key.json"),
            &server,
            &private_key,
            false,
        );
        Some(GcsStandIn {
            server,
            key_dir,
            private_key,
        })
    }

    /// A key file like [`GcsStandIn::key_file`]'s with another RSA key, which the signed
    /// stand-in refuses.
    pub fn other_key_file(&self) -> PathBuf {
        let dir = self.key_dir.path();
        let private = rsa_key_pair(dir, "other").expect("python3 made the first key");
        let file = dir.join("other.json");
        write_key_file(&file, &self.server, &private, false);
        file
    }

    /// The private key in the key file (never to be printed).
    pub fn private_key(&self) -> &str {
        &self.private_key
    }

    /// The service account key file (for `GOOGLE_SERVICE_ACCOUNT`).
    pub fn key_file(&self) -> PathBuf {
        self.key_dir.path().join("key.json")
    }

    /// Store options (`store::open_url_with`) naming the key file.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        let key = self.key_file();
        let key = key.to_str().expect("temporary paths are UTF-8");
        vec![("google_service_account", key.to_string())]
    }

    /// The same settings as owned pairs (the options fields of ingest, synth and merge).
    pub fn store_options(&self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// `gs://bucket/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("gs://{}/{}", self.server.bucket, prefix)
    }

    /// Opens `gs://bucket/prefix` on this stand-in.
    pub fn open(&self, prefix: &str) -> ecgfm_data::store::StoreRoot {
        ecgfm_data::store::open_url_with(&self.url(prefix), &self.options())
            .expect("open the GCS stand-in")
    }
}

/// Writes a service account key file reaching `server`: the fields a key has, and the two
/// object_store reads to reach an emulator (`gcs_base_url`, `disable_oauth`).
fn write_key_file(file: &std::path::Path, server: &MotoS3, private_key: &str, disable_oauth: bool) {
    let key = serde_json::json!({
        "type": "service_account",
        "private_key": private_key,
        "private_key_id": "stand-in",
        "client_email": "ecgfm-tests@stand-in.iam.gserviceaccount.com",
        "gcs_base_url": server.endpoint,
        "disable_oauth": disable_oauth,
    });
    std::fs::write(file, key.to_string()).unwrap();
}

/// A fresh 2048-bit RSA key as Google issues a service account's: writes its public half to
/// `dir/NAME.pub.pem` and returns the private one (PKCS#8 PEM); `None` (after printing why)
/// where python3 has no `cryptography` on a developer's machine.
fn rsa_key_pair(dir: &std::path::Path, name: &str) -> Option<String> {
    const SCRIPT: &str = "
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
with open(sys.argv[1], 'wb') as f:
    f.write(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
sys.stdout.write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
";
    let public = dir.join(format!("{name}.pub.pem"));
    let mut python = std::process::Command::new("python3");
    python.args(["-c", SCRIPT]).arg(&public);
    let private = ecgfm_test_support::python_stdout(&mut python, &["cryptography"], "an RSA key")?;
    Some(String::from_utf8(private).unwrap())
}
