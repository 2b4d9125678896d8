//! A listening socket handed from `ecgfm launch` to rank 0, so `--master-port 0` can pick a free
//! port with no window in which another process takes it.
//!
//! Picking a port by binding port 0, reading the number and closing the socket races: until rank 0
//! binds the number again, the kernel may give it to anything else. Instead the launcher keeps the
//! socket it bound (already listening, so ranks that arrive early wait in its queue) and rank 0
//! inherits it: [`pass_to`] lets the socket survive `exec` in the child and names its descriptor
//! in `ECGFM_RENDEZVOUS_FD`; [`take`] in rank 0 adopts it when it listens on the master port.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable naming the inherited descriptor.
pub const ENV: &str = "ECGFM_RENDEZVOUS_FD";

/// Makes `listener` an inherited descriptor of the process `cmd` starts, named in [`ENV`].
pub fn pass_to(cmd: &mut Command, listener: &TcpListener) {
    let fd = listener.as_raw_fd();
    cmd.env(ENV, fd.to_string());
    // SAFETY: runs in the forked child before exec; fcntl is async-signal-safe and only clears
    // the close-on-exec flag of a descriptor the child inherited from us.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The socket the launcher handed this process, when [`ENV`] names a descriptor listening on
/// `port`; at most once per process.
pub fn take(port: u16) -> Option<TcpListener> {
    let fd: RawFd = std::env::var(ENV).ok()?.trim().parse().ok()?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return None;
    }
    let listener = adopt(fd, port);
    if listener.is_none() {
        TAKEN.store(false, Ordering::SeqCst);
    }
    listener
}

/// `fd` as a listener when it is an open socket bound to `port` (made close-on-exec, so this
/// process's own children do not inherit it); anything else (a closed descriptor, a file, a
/// socket on another port) gives None and leaves the descriptor alone.
fn adopt(fd: RawFd, port: u16) -> Option<TcpListener> {
    // SAFETY: fcntl(F_GETFD) only queries whether `fd` is open.
    if fd < 0 || port == 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: `fd` is open; ownership is given back (into_raw_fd) unless it is the listener.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    match listener.local_addr() {
        Ok(addr) if addr.port() == port => {
            // SAFETY: sets close-on-exec on a descriptor we now own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            Some(listener)
        }
        _ => {
            let _ = listener.into_raw_fd();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: only queries the descriptor's flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
    }

    #[test]
    fn only_a_socket_on_the_master_port_is_adopted_and_others_stay_open() {
        let file = std::fs::File::open("Cargo.toml").unwrap();
        assert!(adopt(file.as_raw_fd(), 1234).is_none());
        assert!(is_open(file.as_raw_fd()));

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fd = listener.into_raw_fd();
        assert!(adopt(fd, port.wrapping_add(1)).is_none());
        assert!(is_open(fd));
        assert!(adopt(-1, port).is_none());

        let adopted = adopt(fd, port).expect("the listener on the master port");
        // SAFETY: only queries the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, from) = adopted.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        drop(accepted);
        drop(adopted);
        // The adopted listener owned the descriptor: dropping it closed the socket, so the port
        // refuses connections. (Not `!is_open(fd)`: another test of this binary, running at the
        // same time, may be given the same descriptor number at once.)
        let refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
