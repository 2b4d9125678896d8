//! The shared suite of kernels/tests/against_cpu once more, with every launch run in reverse
//! order (blocks, and each block's threads between barriers): a kernel that reads what another
//! thread or block writes without a barrier between passes in one order only. A GPU guarantees
//! neither order, and the ascending order of the plain suite hides reads of lower threads'
//! writes.

#[macro_use]
#[path = "../../tests/against_cpu/mod.rs"]
mod against_cpu;

use ecgfm_cuda_host::{host_backend_scheduled, Schedule};

against_cpu_tests!(Some(host_backend_scheduled(Schedule::Descending)));
