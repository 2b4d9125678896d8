//! The host harness's checks find bugs planted on purpose (tests/planted/bugs.cu), so that the
//! kernels passing them means something: a race shows in the descending schedule, and under
//! ThreadSanitizer as a data race; a read of shared memory no thread wrote gives NaN; a write
//! past the launch's shared memory stops the launch (and AddressSanitizer, when built with it);
//! a write past a buffer's end is AddressSanitizer's to find; a barrier some threads never reach
//! is a deadlock, not a hang; a full-mask shuffle in a warp without all 32 lanes, a barrier
//! after threads returned and lanes of a warp at different collectives are refused (undefined on
//! a GPU), and so is a shuffle with a partial mask (which the harness does not emulate). `scripts/host-sanitize.sh` runs these under both sanitizers (CI
//! does); a sanitizer ends the process at its first report, so each such bug runs in a child
//! process, this test binary run again for that one test.

use ecgfm_cuda_host::{HostBuf, HostDevice, Schedule, SANITIZER};
use ecgfm_kernels::cuda::{Arg, Device, LaunchDims, Module};
use std::process::Command;

/// Set in the child process: run the planted bug instead of watching a child run it.
const CHILD: &str = "ECGFM_PLANTED_BUG_CHILD";

/// Runs `bug` in a child process (this binary, test `name` alone) and returns its stderr after
/// checking that it failed; in that child, runs `bug` and returns None.
fn child_stderr(name: &str, bug: impl FnOnce()) -> Option<String> {
    if std::env::var_os(CHILD).is_some() {
        bug();
        return None;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .expect("running this test binary again");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the planted bug of {name} ran to the end unnoticed; its stderr:\n{stderr}"
    );
    Some(stderr)
}

/// Launches planted kernel `name` (the module only names it in errors) with `args`.
fn launch(dev: &HostDevice, name: &'static str, dims: LaunchDims, args: &[Arg]) {
    dev.launch(Module::Elementwise, name, dims, args);
}

fn dims(grid: u32, block: u32, shared_bytes: u32) -> LaunchDims {
    LaunchDims {
        grid: (grid, 1, 1),
        block,
        shared_bytes,
    }
}

/// `out` after launching kernel `name` on a buffer of `n` zeros under `schedule`.
fn launched_output(name: &'static str, d: LaunchDims, n: usize, schedule: Schedule) -> Vec<f32> {
    let dev = HostDevice::new(schedule);
    let mut out = dev.alloc(n);
    launch(&dev, name, d, &[Arg::Ptr(dev.addr_mut(&mut out, 0, n))]);
    let mut host = vec![0.0; n];
    dev.download(&out, 0, &mut host);
    host
}

/// A race is found by the schedules' disagreement, or by ThreadSanitizer in either schedule.
fn race_is_found(test: &str, name: &'static str, d: LaunchDims, n: usize) {
    if SANITIZER == "thread" {
        if let Some(stderr) = child_stderr(test, || {
            launched_output(name, d, n, Schedule::Ascending);
        }) {
            assert!(
                stderr.contains("ThreadSanitizer: data race"),
                "ThreadSanitizer did not report {name}'s race; stderr:\n{stderr}"
            );
        }
        return;
    }
    let ascending = launched_output(name, d, n, Schedule::Ascending);
    let descending = launched_output(name, d, n, Schedule::Descending);
    assert_ne!(
        ascending.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        descending.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "{name}: the two schedules agree, the race went unseen"
    );
}

#[test]
fn a_race_on_shared_memory_is_found() {
    race_is_found(
        "a_race_on_shared_memory_is_found",
        "planted_shared_race",
        dims(1, 2, 4),
        1,
    );
}

#[test]
fn a_race_between_two_blocks_is_found() {
    race_is_found(
        "a_race_between_two_blocks_is_found",
        "planted_block_race",
        dims(2, 1, 0),
        2,
    );
}

#[test]
fn a_read_of_unwritten_shared_memory_gives_nan() {
    let out = launched_output(
        "planted_unwritten_shared_read",
        dims(1, 1, 4),
        1,
        Schedule::Ascending,
    );
    assert!(
        out[0].is_nan(),
        "read {} from unwritten shared memory",
        out[0]
    );
}

#[test]
fn a_write_past_shared_memory_stops_the_launch() {
    let bug = || {
        let dev = HostDevice::new(Schedule::Ascending);
        launch(
            &dev,
            "planted_shared_overrun",
            dims(1, 32, 64),
            &[Arg::I32(64)],
        );
    };
    let Some(stderr) = child_stderr("a_write_past_shared_memory_stops_the_launch", bug) else {
        return;
    };
    let expected = match SANITIZER {
        "address" => "AddressSanitizer: use-after-poison",
        _ => "kernel planted_shared_overrun: a block wrote past its 64 bytes of shared memory",
    };
    assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
}

#[test]
fn a_write_past_a_buffer_is_found_by_address_sanitizer() {
    if SANITIZER != "address" {
        eprintln!(
            "a write past a buffer's end is AddressSanitizer's to find: \
             scripts/host-sanitize.sh address runs this test"
        );
        return;
    }
    let bug = || {
        let dev = HostDevice::new(Schedule::Ascending);
        let n = 20;
        // Exactly n floats, so that the element past them lies in the allocator's red zone.
        let mut out = HostBuf::F32(vec![0.0; n]);
        let at = dev.addr_mut(&mut out, 0, n);
        launch(
            &dev,
            "planted_global_overrun",
            dims(1, n as u32 + 1, 0),
            &[Arg::Ptr(at), Arg::I32(n as i32)],
        );
    };
    if let Some(stderr) = child_stderr("a_write_past_a_buffer_is_found_by_address_sanitizer", bug) {
        assert!(
            stderr.contains("AddressSanitizer: heap-buffer-overflow"),
            "AddressSanitizer did not report the overrun; stderr:\n{stderr}"
        );
    }
}

#[test]
#[should_panic(expected = "kernel planted_deadlock: a block's threads deadlocked on a barrier")]
fn a_barrier_some_threads_never_reach_is_a_deadlock() {
    let dev = HostDevice::new(Schedule::Ascending);
    let mut out = dev.alloc(1);
    launch(
        &dev,
        "planted_deadlock",
        dims(1, 2, 0),
        &[Arg::Ptr(dev.addr_mut(&mut out, 0, 1))],
    );
}

/// A warp shuffle in a block of 48 threads: its second warp's shuffles read lanes that do not
/// exist (the harness gave them the caller's own value; a GPU's are undefined).
#[test]
#[should_panic(
    expected = "kernel planted_partial_warp_shuffle: a warp shuffle or tensor-core \
                           MMA ran in a warp without all 32 lanes live"
)]
fn a_shuffle_in_a_partial_warp_is_refused() {
    launched_output(
        "planted_partial_warp_shuffle",
        dims(1, 48, 0),
        48,
        Schedule::Ascending,
    );
}

/// A full-mask shuffle after half the warp returned (the harness gave their stale slots).
#[test]
#[should_panic(
    expected = "kernel planted_shuffle_after_return: a warp shuffle or tensor-core \
                           MMA ran in a warp without all 32 lanes live"
)]
fn a_shuffle_after_lanes_returned_is_refused() {
    launched_output(
        "planted_shuffle_after_return",
        dims(1, 32, 0),
        32,
        Schedule::Ascending,
    );
}

/// A barrier one thread of the block never reaches because it returned (the harness counted it
/// as arrived).
#[test]
#[should_panic(
    expected = "kernel planted_barrier_after_return: a barrier was reached after \
                           threads of the block had returned"
)]
fn a_barrier_after_a_thread_returned_is_refused() {
    launched_output(
        "planted_barrier_after_return",
        dims(1, 2, 0),
        1,
        Schedule::Ascending,
    );
}

/// Half a warp at a shuffle while the other half is at an MMA: the harness would hand each half
/// the other's registers.
#[test]
#[should_panic(
    expected = "kernel planted_mixed_collectives: lanes of a warp met at different warp collectives"
)]
fn lanes_at_different_warp_collectives_are_refused() {
    launched_output(
        "planted_mixed_collectives",
        dims(1, 32, 0),
        32,
        Schedule::Ascending,
    );
}

/// A shuffle whose member mask is half the warp, which the harness cannot honour.
#[test]
#[should_panic(
    expected = "kernel planted_half_mask_shuffle: a warp shuffle with a member mask other than all \
                32 lanes"
)]
fn a_shuffle_with_a_partial_mask_is_refused() {
    launched_output(
        "planted_half_mask_shuffle",
        dims(1, 32, 0),
        32,
        Schedule::Ascending,
    );
}
