//! Why a store request failed, where object_store's message alone does not say what to do:
//! a bucket that does not exist, no credentials found, a TLS certificate refused, an HTTPS proxy
//! down. object_store's errors have no kind for these, so the whole message (the error and its
//! sources) is what tells; `DataError::Store` puts the hint first.

/// What to do about a failed request where object_store's message alone does not say (with
/// `; ` to follow): a bucket that does not exist, no credentials found, a TLS certificate
/// refused, or an HTTPS proxy that could not be reached; empty for any other error.
/// object_store's errors have no kind for these: the message is what tells.
pub(crate) fn store_hint(error: &object_store::Error) -> String {
    let message = whole_message(error);
    if names_missing_bucket(&message) {
        return MISSING_BUCKET.to_string() + "; ";
    }
    let object_store::Error::Generic { store, .. } = error else {
        return String::new();
    };
    if let Some(hint) = proxy_hint(&message) {
        return hint;
    }
    match tls_hint(&message) {
        "" => credentials_hint(store, &message).to_string(),
        hint => hint.to_string(),
    }
}

/// `error` and each of its sources, joined: the refused certificate or the server's error code
/// is a source of a source of the request's error.
fn whole_message(error: &object_store::Error) -> String {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        message.push_str(": ");
        message.push_str(&error.to_string());
        cause = error.source();
    }
    message
}

/// What a request to a bucket (an Azure container) that does not exist means for a user.
pub const MISSING_BUCKET: &str = "the bucket (Azure: container) does not exist; check its name \
     and the store's endpoint and region, and create it first (ecgfm writes objects, never \
     buckets)";

/// Whether the server answered that the bucket does not exist: S3's and the GCS XML API's
/// `NoSuchBucket`, Azure's `ContainerNotFound`.
fn names_missing_bucket(message: &str) -> bool {
    message.contains("NoSuchBucket") || message.contains("ContainerNotFound")
}

/// Whether `error` is a request to a bucket that does not exist.
pub fn is_missing_bucket(error: &object_store::Error) -> bool {
    names_missing_bucket(&whole_message(error))
}

/// The proxy a request went through, named without its credentials, when it could not be
/// reached: an HTTPS request's tunnel through it failed (hyper's `tunnel error`), or an HTTP
/// request, which goes to the proxy itself, found nothing listening there (the message then
/// names the store's address, which was not the one that failed).
fn proxy_hint(message: &str) -> Option<String> {
    // The variables naming the proxy, the one to name, and what to say where none is set (an
    // HTTPS tunnel needs a proxy; a plain request that failed to connect without one did not
    // go through any).
    let (variables, variable, unset) = if message.contains("tunnel error") {
        (
            ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
            "HTTPS_PROXY",
            Some("the HTTPS proxy"),
        )
    } else if http_request_host(message).is_some_and(|host| !bypasses_proxy(host))
        && message.contains("connect")
    {
        (
            ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
            "HTTP_PROXY",
            None,
        )
    } else {
        return None;
    };
    let set = (variables.iter()).find_map(|key| std::env::var(key).ok().filter(|v| !v.is_empty()));
    let proxy = match set {
        Some(url) => crate::store::redact_url(&url),
        None => unset?.to_string(),
    };
    Some(format!(
        "the request went through the proxy {proxy} ({variable}), which could not be reached \
         or would not connect to the store (NO_PROXY lists the hosts to reach directly); "
    ))
}

/// The host of the plain-HTTP request object_store's message names (`Error performing GET
/// http://HOST:PORT/...`), if it names one.
fn http_request_host(message: &str) -> Option<&str> {
    let rest = &message[message.find("Error performing ")?..];
    let url = &rest[rest.find(" http://")? + " http://".len()..];
    let host = url.split(['/', ' ']).next()?;
    Some(host.rsplit_once(':').map_or(host, |(name, _)| name))
}

/// Whether `NO_PROXY` sends requests to `host` directly (an entry that is the host, a domain
/// it ends in, or `*`).
fn bypasses_proxy(host: &str) -> bool {
    let list = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .unwrap_or_default();
    list.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches('.');
        entry == "*"
            || (!entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))))
    })
}

/// What to set when the store found no credentials in the environment, asked the cloud's
/// instance metadata service for some (as it should on a cloud machine) and got none, as on a
/// laptop or a cluster outside that cloud; object_store's message names only the metadata
/// address it tried, and that address's path is what tells.
fn credentials_hint(store: &str, message: &str) -> &'static str {
    // The paths of the metadata services' token requests (AWS IMDS, GCE, Azure managed identity).
    let asked_metadata = [
        "/latest/api/token",
        "/latest/meta-data/",
        "/computeMetadata/",
        "/metadata/identity/",
    ]
    .iter()
    .any(|path| message.contains(path));
    if !asked_metadata {
        return "";
    }
    match store {
        "S3" => {
            "no AWS credentials in the environment and none from an instance metadata service \
             (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_ENDPOINT_URL for an \
             S3-compatible service other than AWS; ~/.aws and AWS_PROFILE are not read, \
             `eval \"$(aws configure export-credentials --format env)\"` exports a profile's); "
        }
        "GCS" => {
            "no Google credentials in the environment and none from an instance metadata \
             service (set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT to a service \
             account's key file, or run `gcloud auth application-default login`); "
        }
        "MicrosoftAzure" => {
            "no Azure credentials in the environment and none from a managed identity (set \
             AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY, or AZURE_USE_AZURE_CLI=true \
             after `az login`, or give the container's SAS URL); "
        }
        _ => "",
    }
}

/// What to do when the server's TLS certificate was refused (rustls's `invalid peer
/// certificate: REASON` ends object_store's message): most often an on-premises store (MinIO, a
/// hospital's own S3) whose certificate its own authority signed.
fn tls_hint(message: &str) -> &'static str {
    if !message.contains("invalid peer certificate") {
        return "";
    }
    if message.contains("UnknownIssuer") {
        return "the server's TLS certificate is signed by an authority this machine does not \
                trust, as a store's own certificate authority is (set SSL_CERT_FILE to a PEM \
                file holding that authority's certificate; it then replaces the system's list, \
                so to keep both append it to a copy of /etc/ssl/certs/ca-certificates.crt); ";
    }
    "the server's TLS certificate was refused for the reason that ends this message (an \
     address the certificate was not issued for, or an expired certificate); "
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_plain_http_request_is_read_from_the_message() {
        let message = "Generic S3 error: Error performing GET http://localhost:5055/ecg/m.json \
                       in 3ms - HTTP error: error sending request: client error (Connect): tcp \
                       connect error: Connection refused";
        assert_eq!(http_request_host(message), Some("localhost"));
        let https = "Error performing GET https://s3.amazonaws.com/b/m.json in 1ms";
        assert_eq!(http_request_host(https), None);
    }

    #[test]
    fn a_refused_certificate_is_explained_by_its_reason() {
        // rustls's words, as they end object_store's message (cli_tls.rs has the real one).
        let unknown = "client error (Connect): invalid peer certificate: UnknownIssuer";
        assert!(tls_hint(unknown).contains("set SSL_CERT_FILE"));
        let name = "invalid peer certificate: certificate not valid for name \"minio\"; \
                    certificate is only valid for IpAddress(10.0.0.5)";
        assert!(tls_hint(name).contains("an address the certificate was not issued for"));
        assert_eq!(tls_hint("error sending request: connection refused"), "");
    }
}
