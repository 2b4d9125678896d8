//! Which failures to read a source file are the record's, and which the environment's. A record
//! whose files are missing, short or garbled is quarantined and the ingest goes on; one that
//! could not be read for a reason outside its files (too many open files, no permission, an I/O
//! or network failure, no memory) stops the ingest instead: quarantined, it would stay out of
//! the dataset on every rerun although nothing is wrong with it.

use std::io;

use ecgfm_wfdb::WfdbError;

/// The cause of a failed object-store read (not "not found"), kept inside the `io::Error` a
/// record source returns, so that [`outside_the_record`] knows it for the environment's.
#[derive(Debug)]
pub struct StoreReadFailed(pub String);

impl std::fmt::Display for StoreReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreReadFailed {}

/// Whether `error` says nothing about the record: the same read may succeed once the machine,
/// its limits or the store are mended.
pub fn outside_the_record(error: &WfdbError) -> bool {
    let WfdbError::Io { source, .. } = error else {
        return false;
    };
    if (source.get_ref()).is_some_and(|inner| inner.is::<StoreReadFailed>()) {
        return true;
    }
    let by_kind = matches!(
        source.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::OutOfMemory
            | io::ErrorKind::Interrupted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ResourceBusy
            | io::ErrorKind::StaleNetworkFileHandle
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    );
    let by_code = matches!(
        source.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EIO | libc::ENOBUFS)
    );
    by_kind || by_code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error(source: io::Error) -> WfdbError {
        WfdbError::Io {
            file: "a.dat".into(),
            source,
        }
    }

    #[test]
    fn limits_permissions_and_stores_are_the_environments_and_bad_files_the_records() {
        let environment = [
            io::Error::from_raw_os_error(libc::EMFILE),
            io::Error::from_raw_os_error(libc::ENFILE),
            io::Error::from_raw_os_error(libc::EACCES),
            io::Error::from_raw_os_error(libc::EIO),
            io::Error::from_raw_os_error(libc::ENOMEM),
            io::Error::other(StoreReadFailed("503 Slow Down".into())),
        ];
        for source in environment {
            let shown = source.to_string();
            assert!(outside_the_record(&io_error(source)), "{shown}");
        }
        let record = [
            io::Error::from_raw_os_error(libc::EISDIR),
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ),
            io::Error::other("anything else"),
        ];
        for source in record {
            let shown = source.to_string();
            assert!(!outside_the_record(&io_error(source)), "{shown}");
        }
        let not_found = WfdbError::NotFound {
            file: "a.dat".into(),
        };
        assert!(!outside_the_record(&not_found));
    }
}
