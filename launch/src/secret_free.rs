//! Files that ecgfm keeps for later runs (a sweep folder's sweep file, a SLURM script) must not
//! hold a URL's secrets: such a file is read again on every resume or requeue, so the secret
//! would have to stay in it. A URL with a SAS token or a user name is refused there with a
//! pointer to the environment variables that carry the same secret.

use anyhow::{bail, Result};
use ecgfm_data::store_env::redact_secrets_in;

/// Fails when `text`, to be kept as `file`, names a URL with a secret in it.
pub fn check(text: &str, file: &str) -> Result<()> {
    let redacted = redact_secrets_in(text);
    if redacted == text {
        return Ok(());
    }
    let url = redacted
        .split_whitespace()
        .find(|word| word.contains("***"))
        .unwrap_or_default()
        .trim_matches(|c| "\"'[],".contains(c));
    bail!(
        "{file} would keep the secret in {url} (a query string or user name), to be read again on \
         every resume: give it through the environment instead (an Azure SAS token in \
         AZURE_STORAGE_SAS_KEY, S3 keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and the URL \
         without it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_token_or_user_is_refused_and_named_without_it() {
        assert!(check("datasets = [\"s3://bucket/ecg\", \"/data/ecg\"]", "f").is_ok());
        for text in [
            "datasets = [\"https://a.blob.core.windows.net/c/ecg?sv=1&sig=TOKEN\"]",
            "pretrain --data s3://user:TOKEN@bucket/ecg --out runs/x",
            // A key's unescaped `/` makes the URL fail to parse: refused all the same.
            "datasets = [\"s3://AKID:SE/TOKEN@bucket/ecg\"]",
        ] {
            let err = check(text, "the sweep file").unwrap_err().to_string();
            assert!(!err.contains("TOKEN"), "{err}");
            assert!(
                err.contains("the sweep file would keep the secret in "),
                "{err}"
            );
            assert!(err.contains("***"), "{err}");
        }
    }
}
