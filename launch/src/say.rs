//! Printing that a vanished terminal cannot stop. `say!`, `say_err!` and `say_inline!` write as
//! `println!`, `eprintln!` and `print!` do, but those panic when the write fails, and a write to
//! a terminal that is gone fails: a run or a sweep started in the background and `disown`ed
//! keeps its closed terminal as its output (no SIGHUP reaches it), and its next line panicked
//! with exit status 101 (an hours-long sweep stopped; a finished run's last line turned its
//! success into a failure). Here such a line is dropped and the work goes on to its end and
//! its exit status. A reader that stopped (`ecgfm data inspect URL | head`, EPIPE) ends ecgfm by
//! SIGPIPE, silently, as other command-line tools end (Rust ignores SIGPIPE, so that a write to
//! a closed socket, ours or NCCL's, is an error rather than death).

use std::fmt::Arguments;
use std::io::Write;

/// Writes `args` (and a newline when `newline`) to `out`; see the module documentation for
/// what a failed write does.
pub fn write(mut out: impl Write, args: Arguments<'_>, newline: bool) {
    let written = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(err) = written {
        if err.raw_os_error() == Some(libc::EPIPE) {
            // SAFETY: restoring the default action and raising the signal in this process.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
    }
}

/// `println!` that a vanished terminal cannot stop (module documentation).
macro_rules! say {
    () => {
        $crate::say::write(std::io::stdout().lock(), format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::say::write(std::io::stdout().lock(), format_args!($($arg)*), true)
    };
}

/// `eprintln!` that a vanished terminal cannot stop (module documentation).
macro_rules! say_err {
    () => {
        $crate::say::write(std::io::stderr().lock(), format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::say::write(std::io::stderr().lock(), format_args!($($arg)*), true)
    };
}

/// `print!` that a vanished terminal cannot stop (module documentation).
macro_rules! say_inline {
    ($($arg:tt)*) => {
        $crate::say::write(std::io::stdout().lock(), format_args!($($arg)*), false)
    };
}
