//! An `s3://`, `gs://` or `az://` address with no credentials anywhere: the store asks the
//! cloud's instance metadata service (here a local port where nothing listens, as on a laptop)
//! and the error then says which variables to set, besides naming the object it wanted.

mod common;
use common::{failed, temp_dir, ECGFM};
use std::process::Command;

/// Runs `ecgfm data inspect url` with no cloud settings from this process's environment (a
/// developer's credentials must not turn the test into a real request), a home folder holding
/// no gcloud credentials, and `env` on top; returns its standard error.
fn inspect_without_credentials(url: &str, env: &[(&str, String)]) -> String {
    let home = temp_dir(&format!("no-credentials-{}", &url[..2]));
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
    failed(&[url], output)
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
