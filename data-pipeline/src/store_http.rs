//! The HTTP client of the cloud stores: object_store's own (reqwest, built from every option the
//! store's builder was given), except that a TLS certificate the client refused is not retried.
//! object_store retries every connection error, ten times with backoff (about 4 s, two log lines
//! each); a refused certificate is refused the same way every time, so the user waited for
//! nothing and read twenty lines of it before the error that says what to set.

use std::error::Error;
use std::fmt;

use async_trait::async_trait;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpService, ReqwestConnector,
};

/// Connects as object_store's [`ReqwestConnector`] does; the client it makes reports a refused
/// certificate as an error not to retry.
#[derive(Debug, Default)]
pub(crate) struct CertificateRefusalIsFinal;

impl HttpConnector for CertificateRefusalIsFinal {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Client { inner }))
    }
}

#[derive(Debug)]
struct Client {
    inner: HttpClient,
}

#[async_trait]
impl HttpService for Client {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.inner.execute(request).await.map_err(|error| {
            if refuses_certificate(&error) {
                // object_store retries none of `Unknown`'s kind.
                HttpError::new(HttpErrorKind::Unknown, Refused(error))
            } else {
                error
            }
        })
    }
}

/// Whether `error` or one of its sources is rustls refusing the server's certificate (an
/// authority this machine does not trust, a name it was not issued for, an expired one). rustls's
/// error reaches us inside `io::Error`s (tokio-rustls's, inside hyper's), whose `source()` skips
/// the error they carry: each is opened with `get_ref`.
fn refuses_certificate(error: &(dyn Error + 'static)) -> bool {
    std::iter::successors(Some(error), |&e| e.source()).any(|e| {
        let carried = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        carried.is_some_and(|inner| refuses_certificate(inner))
            || matches!(
                e.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::InvalidCertificate(_))
            )
    })
}

/// A refused certificate's error, saying what it said: the wrapping `HttpError` adds its own
/// "HTTP error: " before it, so this shows the original's source and chain, not the original.
struct Refused(HttpError);

impl Refused {
    fn cause(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cause() {
            Some(cause) => write!(f, "{cause}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Error for Refused {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause().and_then(|cause| cause.source())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_refusal_is_found_inside_the_io_error_that_carries_it() {
        let refusal = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refusal);
        let http = HttpError::new(HttpErrorKind::Connect, io);
        assert!(refuses_certificate(&http));
        // As hyper hands it on: tokio-rustls's io::Error inside another.
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(refuses_certificate(&HttpError::new(
            HttpErrorKind::Connect,
            nested
        )));
        let other =
            std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(!refuses_certificate(&HttpError::new(
            HttpErrorKind::Connect,
            other
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!refuses_certificate(&HttpError::new(
            HttpErrorKind::Connect,
            refused
        )));
    }

    #[test]
    fn a_refusal_reads_as_the_original_without_a_second_prefix() {
        let refusal = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refusal);
        let original = HttpError::new(HttpErrorKind::Connect, io);
        let said = original.to_string();
        let final_error = HttpError::new(HttpErrorKind::Unknown, Refused(original));
        assert_eq!(final_error.to_string(), said);
        assert_eq!(final_error.kind(), HttpErrorKind::Unknown);
    }
}
