//! Logging setup: `tracing` to stderr, level from `RUST_LOG` or `-v`.

use std::io::{IsTerminal, Write};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `verbose` raises the default level from info to debug.
/// By default rustls-platform-verifier's own log of a refused certificate is left out: the
/// command's error says the same and what to do about it.
pub fn init(verbose: bool) {
    let default = if verbose {
        "debug"
    } else {
        "info,rustls_platform_verifier=off"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| DroppingFailures(std::io::stderr()))
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A writer whose failed writes are dropped: on a terminal that is gone (`crate::say`) the
/// subscriber's own report of a failed write is an `eprintln!`, which panicked.
struct DroppingFailures<W>(W);

impl<W: Write> Write for DroppingFailures<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
