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
}

impl GcsStandIn {
    /// Starts the stand-in and creates `bucket`; `None` (after printing why) without moto, as
    /// [`MotoS3::start`].
    pub fn start(bucket: &str) -> Option<Self> {
        let server = MotoS3::start_with(bucket, &["-c", include_str!("gcs_stand_in.py")])?;
        let key_dir = tempfile::tempdir().unwrap();
        // The fields a service account key has; object_store reads the last two to reach an
        // emulator.
        let key = serde_json::json!({
            "type": "service_account",
            "private_key": PRIVATE_KEY,
            "private_key_id": "stand-in",
            "client_email": "ecgfm-tests@stand-in.iam.gserviceaccount.com",
            "gcs_base_url": server.endpoint,
            "disable_oauth": true,
        });
        std::fs::write(key_dir.path().join("key.json"), key.to_string()).unwrap();
        Some(GcsStandIn { server, key_dir })
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
