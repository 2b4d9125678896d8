//! The environment the cloud stores read, from ecgfm's side: the settings checked before a store
//! is built (an endpoint that is not a URL made object_store panic, an `SSL_CERT_FILE` that is
//! missing or holds no certificate was ignored for the system's list), the variables named when
//! a store cannot be built from them, and the secrets among them, kept out of every text shown
//! ([`redact_secrets_in`]: a server's error may echo a signed request).

use crate::error::DataError;
use crate::store::redact_urls_in;

/// Variables whose values are secrets (object_store's names, and the AWS CLI's session token).
const SECRET_VARIABLES: [&str; 12] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

/// Query parameters and headers whose values sign or authorise a request (an Azure SAS's `sig`,
/// S3's presigned-URL fields, the session token header), as a server's error may echo them.
const SECRET_FIELDS: [&str; 6] = [
    "sig=",
    "x-amz-signature=",
    "x-amz-credential=",
    "x-amz-security-token=",
    "x-amz-security-token:",
    "signature=",
];

/// `text` safe to show or keep: every URL redacted ([`redact_urls_in`]), the value of every
/// secret variable set in the environment replaced by `***`, and so the value of every
/// signature or token field (`SECRET_FIELDS`). Applied to whatever an error says, since
/// object_store's errors carry the server's answer, which may repeat the signed request.
pub fn redact_secrets_in(text: &str) -> String {
    let mut out = redact_fields(&redact_urls_in(text));
    for name in SECRET_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            // A value this short is no real key, and would replace innocent text.
            if value.len() >= 8 {
                out = out.replace(&value, "***");
            }
        }
    }
    out
}

/// `text` with the value after each of [`SECRET_FIELDS`] (any case) replaced by `***`.
fn redact_fields(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        let field = SECRET_FIELDS.iter().find(|f| {
            bytes[i..]
                .get(..f.len())
                .is_some_and(|b| b.eq_ignore_ascii_case(f.as_bytes()))
        });
        let Some(field) = field else {
            i += 1;
            continue;
        };
        let after = i + field.len();
        // A header's value may follow a space (`x-amz-security-token: VALUE`).
        let start = after + (text[after..].len() - text[after..].trim_start_matches(' ').len());
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || "&<>\"',;)".contains(c))
            .unwrap_or(text.len() - start);
        if len > 0 && &text[start..start + len] != "***" {
            out.push_str(&text[copied..start]);
            out.push_str("***");
            copied = start + len;
        }
        i = start + len;
    }
    out.push_str(&text[copied..]);
    out
}

/// The endpoint settings of a store (`(name, value)`: where the value came from and what it
/// is), each checked to be an `http://` or `https://` URL: object_store panics on a request to an
/// endpoint that is not one (`localhost:9000`, a trailing space).
pub(crate) fn check_endpoints(endpoints: &[(&str, Option<String>)]) -> Result<(), DataError> {
    for (name, value) in endpoints {
        let Some(value) = value else { continue };
        let why = if value.chars().any(|c| !c.is_ascii_graphic()) {
            Some("it holds a space or another character a URL cannot".to_string())
        } else {
            match url::Url::parse(value) {
                Ok(url) if !matches!(url.scheme(), "http" | "https") || !url.has_host() => {
                    Some("it needs to start with http:// or https:// and name a host".into())
                }
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(why) = why {
            return Err(DataError::Config(format!(
                "the store's endpoint {name} = {:?} is not a URL: {why} (as in \
                 http://localhost:9000)",
                crate::store::redact_url(value)
            )));
        }
    }
    Ok(())
}

/// Checks `SSL_CERT_FILE`, when set: a file that cannot be read or holds no PEM certificate was
/// ignored, the system's authorities trusted in its place, and the refusal of the store's
/// certificate that followed told the user to set the variable they had set.
pub(crate) fn check_certificate_file() -> Result<(), DataError> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let refused = |why: String| {
        DataError::Config(format!(
            "SSL_CERT_FILE names {shown}, {why}: it must be a PEM file of the certificate \
             authorities to trust (-----BEGIN CERTIFICATE----- blocks)"
        ))
    };
    let text = std::fs::read(&path).map_err(|e| refused(format!("which cannot be read ({e})")))?;
    let begins = text
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----");
    if !begins {
        return Err(refused("which holds no certificate".into()));
    }
    Ok(())
}

/// The variables starting with `prefix` (a store's: `AWS_`, `GOOGLE_`, `AZURE_`), named for an
/// error in building the store from them: a key file by its path
/// (`GOOGLE_SERVICE_ACCOUNT=/keys/sa.json`), anything else by its name alone. Empty when none is
/// set.
pub(crate) fn settings_named(prefix: &str) -> String {
    let mut named: Vec<String> = std::env::vars()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, value)| {
            let is_path = name.ends_with("_CREDENTIALS")
                || name.ends_with("_FILE")
                || name.ends_with("_PATH")
                || name == "GOOGLE_SERVICE_ACCOUNT";
            match is_path {
                true => format!("{name}={value}"),
                false => name,
            }
        })
        .collect();
    named.sort();
    match named.is_empty() {
        true => String::new(),
        false => format!(
            " (the store's settings come from the environment: {})",
            named.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_tokens_a_server_echoes_are_redacted() {
        let echoed = "<CanonicalRequest>GET /ecg\nx-amz-security-token:TOKEN77\nhost:s3\
                      X-Amz-Security-Token: TOKEN88\n\
                      </CanonicalRequest> path was /c/ds?sv=2022-11-02&sp=r&SIG=SIGLEAK \
                      https://h/x?X-Amz-Signature=ABC";
        let shown = redact_secrets_in(echoed);
        for secret in ["TOKEN77", "TOKEN88", "SIGLEAK", "ABC"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("x-amz-security-token:***\nhost:s3"),
            "{shown}"
        );
        assert!(shown.contains("sv=2022-11-02&sp=r&SIG=***"), "{shown}");
        assert_eq!(redact_secrets_in("no secret here"), "no secret here");
        assert_eq!(redact_fields("sig=***"), "sig=***");
    }

    #[test]
    fn an_endpoint_that_is_not_a_url_is_refused_naming_it() {
        let ok = [(
            "AWS_ENDPOINT_URL",
            Some("http://localhost:5055".to_string()),
        )];
        check_endpoints(&ok).unwrap();
        check_endpoints(&[("AWS_ENDPOINT_URL", None)]).unwrap();
        for bad in [
            "localhost:5055",
            "http://localhost:5055 ",
            "ftp://host",
            "http//host",
        ] {
            let err = check_endpoints(&[("AWS_ENDPOINT_URL", Some(bad.into()))])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("the store's endpoint AWS_ENDPOINT_URL"),
                "{err}"
            );
            assert!(matches!(
                check_endpoints(&[("e", Some(bad.into()))]),
                Err(DataError::Config(_))
            ));
        }
    }
}
