//! Where `ecgfm eval` keeps the dataset's windows while it revisits them (`--hold-windows`): in
//! memory, or in a mapped scratch file when they would crowd the machine's memory (a labelled set
//! larger than RAM still evaluates; the page cache keeps what fits).

use clap::{Args, ValueEnum};
use ecgfm_data::windows::held::Hold;
use ecgfm_kernels::gib;
use std::path::{Path, PathBuf};

/// The flags choosing where the windows stay.
#[derive(Args, Debug, Clone)]
pub struct HoldArgs {
    /// Where the windows stay while evaluating: memory, disk (a scratch file mapped into memory,
    /// deleted as soon as it is created, so nothing is left behind), or auto (disk when they would
    /// take more than half of the available memory).
    #[arg(long, default_value = "auto", value_name = "auto|memory|disk")]
    pub hold_windows: HoldChoice,
    /// Folder of the scratch file (default: the folder of --out).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HoldChoice {
    Auto,
    Memory,
    Disk,
}

impl HoldArgs {
    /// Where to hold `bytes` of stored values (the scratch file in `--scratch-dir`, else in
    /// `default_dir`), and a line saying where and why.
    pub fn choose(&self, bytes: u64, default_dir: &Path) -> (Hold, String) {
        let available = available_memory();
        let disk = on_disk(self.hold_windows, bytes, available);
        let size = format!("up to {:.2} GiB of stored values", gib(bytes));
        let free = match available {
            Some(a) => format!("{:.1} GiB of memory available", gib(a)),
            None => "available memory unknown".into(),
        };
        if !disk {
            return (
                Hold::Memory,
                format!("windows: {size}, held in memory ({free})"),
            );
        }
        let dir = self.scratch_dir.as_deref().unwrap_or(default_dir);
        let why = match self.hold_windows {
            HoldChoice::Auto => {
                format!("more than half of the {free}; --hold-windows memory keeps them in RAM")
            }
            _ => format!("--hold-windows disk; {free}"),
        };
        let line = format!(
            "windows: {size}, held in a scratch file in {} ({why})",
            dir.display()
        );
        (Hold::Disk(dir.to_path_buf()), line)
    }
}

/// Whether `bytes` go to disk: as asked, or (auto) when they exceed half of `available`.
fn on_disk(choice: HoldChoice, bytes: u64, available: Option<u64>) -> bool {
    match choice {
        HoldChoice::Memory => false,
        HoldChoice::Disk => true,
        HoldChoice::Auto => available.is_some_and(|a| bytes > a / 2),
    }
}

/// The memory this process may still take: the kernel's `MemAvailable`, lowered to what its
/// memory cgroup leaves (a SLURM job's or a container's limit) and to what its address-space
/// limit leaves (`ulimit -v`, which some clusters set per job), in bytes.
pub(crate) fn available_memory() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    available_within(address_space_limit(), read)
}

/// `available_memory` for a process whose address-space limit is `limit` (`None`: unlimited)
/// and whose `/proc` and `/sys/fs/cgroup` files `read` reads.
fn available_within(limit: Option<u64>, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let host = mem_available(&read("/proc/meminfo")?)?;
    let room = read("/proc/self/cgroup").and_then(|t| cgroup_room(&t, &read));
    let address_space = limit
        .zip(read("/proc/self/status"))
        .and_then(|(limit, status)| address_space_room(limit, &status));
    Some(
        [room, address_space]
            .into_iter()
            .flatten()
            .fold(host, u64::min),
    )
}

/// This process's address-space limit (`RLIMIT_AS`, set by `ulimit -v`), if it has one.
fn address_space_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Address space the work adds beyond what it counts: its threads' stacks and the allocator's
/// per-thread arenas, which an address-space limit counts in full though they are mostly
/// untouched (measured: `tiny` at batch 32, counted 1.4 GiB, aborts under `ulimit -v` 1.62 GiB
/// and runs under 1.91 GiB).
const UNCOUNTED_ADDRESS_SPACE: u64 = 256 << 20;

/// What an address-space limit of `limit` bytes leaves a process whose `/proc/self/status`
/// reads `status`: the limit less its virtual size (`VmSize`) and `UNCOUNTED_ADDRESS_SPACE`,
/// in bytes. Every allocation counts against it, whether or not its pages are ever touched, so
/// an allocation past it aborts the process with one line where a check before the work could
/// have said why.
fn address_space_room(limit: u64, status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(limit.saturating_sub(kib * 1024 + UNCOUNTED_ADDRESS_SPACE))
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The least room (limit less working set) of the memory cgroup that `proc_self_cgroup` (the
/// text of `/proc/self/cgroup`) names and of its ancestors up to the mount's root, v2
/// (`memory.max`) or v1 (`memory.limit_in_bytes`), their files read through `read`; `None`
/// without a limit. Ancestors count: SLURM's v2 layout puts the job's limit above the task's
/// cgroup, whose own `memory.max` is `max`; inside a container the process's cgroup path may not
/// exist under the mount, whose root is then the container's own cgroup. The working set is the
/// usage less the inactive file pages of `memory.stat`, which the kernel reclaims before it kills
/// (as kubelet counts it): a cgroup whose page cache fills its limit still has that room.
fn cgroup_room(proc_self_cgroup: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let number = |path: String| read(&path).and_then(|t| t.trim().parse::<u64>().ok());
    let room_in = |dir: &str, (limit, usage, inactive_file): (&str, &str, &str)| {
        let limit = number(format!("{dir}/{limit}"))?;
        let usage = number(format!("{dir}/{usage}")).unwrap_or(0);
        let reclaimable = read(&format!("{dir}/memory.stat"))
            .and_then(|stat| stat_value(&stat, inactive_file))
            .unwrap_or(0);
        Some(limit.saturating_sub(usage.saturating_sub(reclaimable)))
    };
    let mut least: Option<u64> = None;
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (mount, files) = match controllers {
            "" => (
                "/sys/fs/cgroup",
                ("memory.max", "memory.current", "inactive_file"),
            ),
            c if c.split(',').any(|c| c == "memory") => (
                "/sys/fs/cgroup/memory",
                (
                    "memory.limit_in_bytes",
                    "memory.usage_in_bytes",
                    "total_inactive_file",
                ),
            ),
            _ => continue,
        };
        let mut dir = format!("{mount}{}", path.trim_end_matches('/'));
        loop {
            if let Some(room) = room_in(&dir, files) {
                least = Some(least.map_or(room, |l| l.min(room)));
            }
            if dir.len() <= mount.len() {
                break;
            }
            dir.truncate(dir.rfind('/').unwrap_or(0).max(mount.len()));
        }
    }
    least
}

/// The value of `key` in a `memory.stat` text (`key value` lines).
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_space_limit_leaves_its_room_past_the_virtual_size() {
        let status = "Name:\tecgfm\nVmPeak:\t  900000 kB\nVmSize:\t  524288 kB\nVmRSS:\t 1000 kB\n";
        let gib = 1u64 << 30;
        let room = 2 * gib - gib / 2 - UNCOUNTED_ADDRESS_SPACE;
        assert_eq!(address_space_room(2 * gib, status), Some(room));
        assert_eq!(address_space_room(gib / 4, status), Some(0));
        assert_eq!(address_space_room(gib, "Name:\tecgfm\n"), None);
    }

    #[test]
    fn auto_goes_to_disk_past_half_the_available_memory() {
        use HoldChoice::*;
        assert!(!on_disk(Auto, 50, Some(100)));
        assert!(on_disk(Auto, 51, Some(100)));
        assert!(
            !on_disk(Auto, u64::MAX, None),
            "unknown memory: as before, in memory"
        );
        assert!(on_disk(Disk, 0, Some(100)));
        assert!(!on_disk(Memory, u64::MAX, Some(100)));
    }

    #[test]
    fn a_memory_cgroup_lowers_the_available_memory() {
        let files = |path: &str| match path {
            "/sys/fs/cgroup/memory/job_7/memory.limit_in_bytes" => Some("1000\n".to_string()),
            "/sys/fs/cgroup/memory/job_7/memory.usage_in_bytes" => Some("300\n".to_string()),
            "/sys/fs/cgroup/slice/memory.max" => Some("max\n".to_string()),
            "/sys/fs/cgroup/limited/memory.max" => Some("4096\n".to_string()),
            "/sys/fs/cgroup/limited/memory.current" => Some("96\n".to_string()),
            "/sys/fs/cgroup/cached/memory.max" => Some("4096\n".to_string()),
            "/sys/fs/cgroup/cached/memory.current" => Some("4000\n".to_string()),
            "/sys/fs/cgroup/cached/memory.stat" => {
                Some("anon 1000\nfile 3000\nactive_file 500\ninactive_file 2500\n".to_string())
            }
            "/sys/fs/cgroup/memory/cached_v1/memory.limit_in_bytes" => Some("1000\n".to_string()),
            "/sys/fs/cgroup/memory/cached_v1/memory.usage_in_bytes" => Some("900\n".to_string()),
            "/sys/fs/cgroup/memory/cached_v1/memory.stat" => {
                Some("inactive_file 5\ntotal_inactive_file 600\n".to_string())
            }
            _ => None,
        };
        let v1 = "5:cpu,cpuacct:/\n4:memory:/job_7\n0::/";
        assert_eq!(cgroup_room(v1, files), Some(700));
        assert_eq!(cgroup_room("0::/limited", files), Some(4000));
        assert_eq!(cgroup_room("0::/slice", files), None, "max: no limit");
        // Page cache the kernel can drop is room: 4096 - (4000 - 2500), 1000 - (900 - 600).
        assert_eq!(cgroup_room("0::/cached", files), Some(2596));
        assert_eq!(cgroup_room("9:memory:/cached_v1", files), Some(700));
        assert_eq!(cgroup_room("4:memory:/elsewhere", files), None);
        // SLURM's v2 layout: the task's cgroup has no limit of its own, the job's above it has.
        let slurm = |path: &str| match path {
            "/sys/fs/cgroup/job_9/memory.max" => Some("2000\n".to_string()),
            "/sys/fs/cgroup/job_9/memory.current" => Some("500\n".to_string()),
            "/sys/fs/cgroup/job_9/step_0/memory.max" => Some("max\n".to_string()),
            "/sys/fs/cgroup/job_9/step_0/user/task_0/memory.max" => Some("max\n".to_string()),
            _ => None,
        };
        assert_eq!(
            cgroup_room("0::/job_9/step_0/user/task_0", slurm),
            Some(1500)
        );
        // A v1 container: its cgroup path is the host's, the mount's root is its own cgroup.
        let container = |path: &str| match path {
            "/sys/fs/cgroup/memory/memory.limit_in_bytes" => Some("800\n".to_string()),
            "/sys/fs/cgroup/memory/memory.usage_in_bytes" => Some("200\n".to_string()),
            _ => None,
        };
        assert_eq!(
            cgroup_room("7:memory:/docker/0123abcd", container),
            Some(600)
        );
        // The tighter of a cgroup's and its parent's room.
        let nested = |path: &str| match path {
            "/sys/fs/cgroup/a/memory.max" => Some("1000\n".to_string()),
            "/sys/fs/cgroup/a/memory.current" => Some("900\n".to_string()),
            "/sys/fs/cgroup/a/b/memory.max" => Some("500\n".to_string()),
            "/sys/fs/cgroup/a/b/memory.current" => Some("100\n".to_string()),
            _ => None,
        };
        assert_eq!(cgroup_room("0::/a/b", nested), Some(100));
        let meminfo = "MemTotal: 100 kB\nMemAvailable:   42 kB\n";
        assert_eq!(mem_available(meminfo), Some(42 * 1024));
    }

    #[test]
    fn the_available_memory_is_the_least_of_the_host_the_cgroup_and_the_address_space() {
        let gib = 1u64 << 30;
        // 8 GiB available on the host; a cgroup limit of 4 GiB, 1 GiB used; 1 GiB mapped.
        let machine = |path: &str| {
            let text = match path {
                "/proc/meminfo" => "MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n",
                "/proc/self/cgroup" => "0::/job",
                "/sys/fs/cgroup/job/memory.max" => "4294967296\n",
                "/sys/fs/cgroup/job/memory.current" => "1073741824\n",
                "/proc/self/status" => "Name:\tecgfm\nVmSize:\t 1048576 kB\n",
                _ => return None,
            };
            Some(text.to_string())
        };
        let unlimited = Some(3 * gib);
        assert_eq!(available_within(None, machine), unlimited);
        assert_eq!(available_within(Some(64 * gib), machine), unlimited);
        // `ulimit -v` 3 GiB: less the 1 GiB mapped and what the work maps uncounted.
        let limited = Some(2 * gib - UNCOUNTED_ADDRESS_SPACE);
        assert_eq!(available_within(Some(3 * gib), machine), limited);
        // Outside a memory cgroup: the host's `MemAvailable`, unless the limit leaves less.
        let host = |path: &str| machine(path).filter(|_| path != "/proc/self/cgroup");
        assert_eq!(available_within(None, host), Some(8 * gib));
        assert_eq!(available_within(Some(3 * gib), host), limited);
        assert_eq!(
            available_within(Some(gib), |_| None),
            None,
            "no /proc/meminfo"
        );
    }

    #[test]
    fn this_machine_reports_its_available_memory() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|a| a > 0));
        }
    }
}
