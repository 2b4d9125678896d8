//! Who holds a lease: what the lock object holds, and how a writer tells its own lease, a live
//! writer's and an ended process's apart.
//!
//! A lease is known by a random id (`lease`): a lock holding it is this writer's whatever its
//! version, so a write the store applied but whose answer was lost is recognised when read
//! back. A process is known on its machine by its pid together with the machine's boot id, its
//! pid namespace and its start time: the pid alone names another process after a reboot, in
//! another container with the same host name, or once the pid is reused.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use object_store::PutPayload;
use serde::{Deserialize, Serialize};

use crate::out_lock::Writer;

/// What the lock object holds (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Holder {
    pub writer: String,
    pub pid: u32,
    pub host: String,
    /// This lease's random id (never empty).
    #[serde(default)]
    pub lease: String,
    /// `/proc/sys/kernel/random/boot_id` of the holder's machine, where it has one.
    #[serde(default)]
    pub boot: Option<String>,
    /// The holder's pid namespace (`pid:[4026531836]`), where it has one.
    #[serde(default)]
    pub pid_ns: Option<String>,
    /// The holder's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
    #[serde(default)]
    pub start: Option<u64>,
    /// Renewals so far: every renewal writes other bytes, hence a new version on every store.
    pub renewals: u64,
}

impl Holder {
    /// This process, running `writer`, with a new lease id.
    pub fn this_process(writer: Writer) -> Self {
        let pid = std::process::id();
        Holder {
            writer: writer.name().to_string(),
            pid,
            host: host_name(),
            lease: format!("{:016x}", RandomState::new().build_hasher().finish()),
            boot: boot_id(),
            pid_ns: pid_namespace(),
            start: start_ticks(pid),
            renewals: 0,
        }
    }

    pub fn bytes(&self) -> PutPayload {
        PutPayload::from(serde_json::to_vec(self).expect("a lock holder serialises"))
    }

    /// "ingest (pid 4242 on node17)"
    pub fn describe(&self) -> String {
        format!("{} (pid {} on {})", self.writer, self.pid, self.host)
    }

    /// Whether the holder is a process of this machine (same host, boot and pid namespace) that
    /// has ended: its pid is gone, names a process started at another time, or an ended one not
    /// yet reaped. Where another user's processes are hidden (`/proc` mounted `hidepid`), a pid
    /// the kernel still knows counts as running.
    pub fn ended_here(&self) -> bool {
        let same_machine = self.host == host_name()
            && self.boot.is_some()
            && self.boot == boot_id()
            && self.pid_ns.is_some()
            && self.pid_ns == pid_namespace();
        let Some(start) = self.start.filter(|_| same_machine) else {
            return false;
        };
        match process_start(self.pid) {
            Ok(Some(running)) => running != start,
            Ok(None) => true,
            Err(()) => !pid_exists(self.pid),
        }
    }
}

/// This machine's name (as `hostname` prints it).
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an unnamed host".to_string())
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string())
}

fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// The start time of process `pid` in clock ticks since boot, where `/proc` tells it and the
/// process runs.
pub(super) fn start_ticks(pid: u32) -> Option<u64> {
    process_start(pid).ok().flatten()
}

/// Whether the kernel knows process `pid` (a process of another user included).
pub(super) fn pid_exists(pid: u32) -> bool {
    // Not 0, nor negative as a pid_t: kill(2) would take those for process groups.
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|&pid| pid > 0) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only asks whether the pid exists (ESRCH: it does not; EPERM:
    // it does, another user's).
    let refused = unsafe { libc::kill(pid, 0) } != 0;
    !refused || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The start time of process `pid` in clock ticks since boot: `Ok(None)` for a process that has
/// ended and awaits its parent (a zombie), `Err` when `/proc` has no entry for it (no such
/// process, no `/proc`, or the process hidden from this user; the caller tells them apart).
fn process_start(pid: u32) -> Result<Option<u64>, ()> {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Err(());
    };
    // The command name (field 2) is in parentheses and may hold spaces and parentheses; the
    // fields after the last `)` start at field 3 (the state), so field 22 is the 20th of them.
    let Some(close) = stat.rfind(')') else {
        return Err(());
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return Ok(None);
    }
    fields
        .get(19)
        .and_then(|f| f.parse().ok())
        .map(Some)
        .ok_or(())
}
