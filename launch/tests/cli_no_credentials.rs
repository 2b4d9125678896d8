//! An `s3://`, `gs://` or `az://` address with no credentials anywhere: the store asks the
//! cloud's instance metadata service (here a local port where nothing listens, as on a laptop)
//! and the error then says which variables to set, besides naming the object it wanted. A
//! setting that cannot work (an endpoint that is not a URL, an `SSL_CERT_FILE` without a
//! certificate, a key that does not decode) is named before any request.

mod common;
use common::{failed, temp_dir, ECGFM};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `ecgfm data inspect url` with no cloud settings from this process's environment (a
/// developer's credentials must not turn the test into a real request), a home folder holding
/// no gcloud credentials, and `env` on top; returns its standard error.
fn inspect_without_credentials(url: &str, env: &[(&str, String)]) -> String {
    failed(&[url], inspect_in(url, env))
}

/// `ecgfm data inspect url` as [`inspect_without_credentials`] runs it; its output.
fn inspect_in(url: &str, env: &[(&str, String)]) -> Output {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let home = temp_dir(&format!("no-credentials-home-{call}"));
    let mut command = Command::new(ECGFM);
    command.args(["data", "inspect", url]).env("HOME", &home);
    for (key, _) in std::env::vars() {
        if ["AWS_", "GOOGLE_", "GCE_", "AZURE_", "AZURITE_"]
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let output = command.output().unwrap();
    std::fs::remove_dir_all(&home).unwrap();
    output
}

#[test]
fn each_store_says_which_credentials_to_set_when_it_found_none() {
    let closed = format!("127.0.0.1:{}", ecgfm_test_support::free_port());
    let cases = [
        (
            "s3://ecgfm-none/ds",
            vec![("AWS_METADATA_ENDPOINT", format!("http://{closed}"))],
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_ENDPOINT_URL for an \
             S3-compatible service other than AWS; ~/.aws and AWS_PROFILE are not read",
        ),
        (
            "gs://ecgfm-none/ds",
            vec![
                ("GCE_METADATA_ROOT", closed.clone()),
                ("GCE_METADATA_IP", closed.clone()),
            ],
            "set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
        ),
        (
            "az://ecgfm-none/ds",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", "ecgfmnone".into()),
                (
                    "AZURE_MSI_ENDPOINT",
                    format!("http://{closed}/metadata/identity/oauth2/token"),
                ),
            ],
            "set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY",
        ),
    ];
    for (url, env, hint) in cases {
        let stderr = inspect_without_credentials(url, &env);
        assert!(stderr.contains(hint), "{url}: {stderr}");
        assert!(stderr.contains("ds/manifest.json"), "{url}: {stderr}");
    }
}

/// Variables set for one command.
type Env = Vec<(&'static str, String)>;

/// Each used to panic (an endpoint without `http://`, or with a trailing space), to be ignored
/// for the system's authorities (`SSL_CERT_FILE`), or to be blamed on the dataset's URL alone (a
/// key that does not decode): now named, a configuration refused (exit 78) where the setting
/// alone is at fault, and no secret shown.
#[test]
fn a_store_setting_that_cannot_work_is_named() {
    let dir = temp_dir("store-settings");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let truncated = dir.join("sa.json");
    std::fs::write(&truncated, "{\"private_key\": \"x").unwrap();
    let azure_account = ("AZURE_STORAGE_ACCOUNT_NAME", "ecgfmnone".to_string());
    let mut cases: Vec<(&str, Env, Option<i32>, String)> = vec![
        (
            "s3://ecgfm-none/ds",
            vec![("AWS_ENDPOINT_URL", "localhost:9000".into())],
            Some(78),
            "the store's endpoint AWS_ENDPOINT_URL = \"localhost:9000\" is not a URL: it needs \
             to start with http:// or https://"
                .into(),
        ),
        (
            "s3://ecgfm-none/ds",
            vec![("AWS_ENDPOINT_URL", "http://localhost:9000 ".into())],
            Some(78),
            "AWS_ENDPOINT_URL = \"http://localhost:9000 \" is not a URL: it holds a space".into(),
        ),
        (
            "az://ecgfm-none/ds",
            vec![
                azure_account.clone(),
                ("AZURE_STORAGE_ENDPOINT", "127.0.0.1:10000".into()),
            ],
            Some(78),
            "the store's endpoint AZURE_STORAGE_ENDPOINT = \"127.0.0.1:10000\" is not a URL".into(),
        ),
        (
            "s3://ecgfm-none/ds",
            vec![("SSL_CERT_FILE", dir.join("none.pem").display().to_string())],
            Some(78),
            format!(
                "SSL_CERT_FILE names {}, which cannot be read",
                dir.join("none.pem").display()
            ),
        ),
        (
            "s3://ecgfm-none/ds",
            vec![("SSL_CERT_FILE", garbage.display().to_string())],
            Some(78),
            format!(
                "SSL_CERT_FILE names {}, which holds no certificate",
                garbage.display()
            ),
        ),
        (
            "gs://ecgfm-none/ds",
            vec![("GOOGLE_SERVICE_ACCOUNT", truncated.display().to_string())],
            Some(1),
            format!(
                "(the store's settings come from the environment: GOOGLE_SERVICE_ACCOUNT={})",
                truncated.display()
            ),
        ),
        (
            "az://ecgfm-none/ds",
            vec![
                azure_account,
                ("AZURE_STORAGE_ACCOUNT_KEY", "KEYleak!!notbase64".into()),
            ],
            Some(1),
            "Invalid Access Key".into(),
        ),
    ];
    // A plain-HTTP request goes to the proxy itself: one that is down is named, not the store.
    let proxy = format!("127.0.0.1:{}", ecgfm_test_support::free_port());
    cases.push((
        "s3://ecgfm-none/ds",
        vec![
            ("AWS_ACCESS_KEY_ID", "AKID0".into()),
            ("AWS_SECRET_ACCESS_KEY", "SECRET0".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ENDPOINT_URL", "http://localhost:9".into()),
            ("HTTP_PROXY", format!("http://user:KEYleak@{proxy}")),
            ("NO_PROXY", String::new()),
        ],
        Some(1),
        format!("the request went through the proxy http://***@{proxy}/ (HTTP_PROXY)"),
    ));
    for (url, env, code, said) in cases {
        let output = inspect_in(url, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), code, "{url} {env:?}: {stderr}");
        assert!(stderr.contains(&said), "{url} {env:?}: {stderr}");
        assert!(!stderr.contains("KEYleak"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
