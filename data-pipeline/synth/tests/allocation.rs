//! `generate_into` is the training hot path: it must not touch the heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ecgfm_synth::{generate_into, Condition, SynthConfig, LEAD_NAMES};

/// The system allocator, counting allocations per thread (the test harness allocates on its own
/// threads meanwhile).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn generate_into_does_not_allocate() {
    let configs: Vec<SynthConfig> = Condition::all()
        .into_iter()
        .map(SynthConfig::only)
        .collect();
    let mut buffer = vec![0.0f32; LEAD_NAMES.len() * configs[0].samples];
    let before = allocations();
    for cfg in &configs {
        for index in 0..20 {
            generate_into(cfg, 5, index, &mut buffer);
        }
    }
    let made = allocations() - before;
    assert_eq!(made, 0, "generate_into allocated {made} times");
}
