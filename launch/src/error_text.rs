//! How ecgfm shows an error (terminal, `FAILED` files, a parent's error file, warnings): the
//! error and its causes joined by ": ", each cause once, with every URL and secret redacted.

/// `err` and its causes joined by ": ", every URL in them redacted, and every secret a store's
/// error may repeat (`store_env::redact_secrets_in`), whichever context named one. A cause whose text an earlier one already holds is left out:
/// many errors (ours naming their cause, object_store's, TOML's) print their source in their own
/// message and also return it as `source()`, which would show every such cause twice.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    ecgfm_data::store_env::redact_secrets_in(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Like most error types here: its message holds its source, which it also returns.
    #[derive(Debug)]
    struct ReadError {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for ReadError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for ReadError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_shown_once_and_urls_are_redacted() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(ReadError {
            path: "s3://bucket/run.toml?token=SECRET".into(),
            source: io,
        })
        .context("starting the run");
        assert_eq!(
            error_text(&err),
            "starting the run: cannot read s3://bucket/run.toml?***: no such file"
        );
        let plain = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(error_text(&plain), "outer: inner cause");
    }
}
