//! A model definition costs about a kilobyte until used: 100 of them in one process, heap
//! measured by a counting global allocator.

mod common;

use lazyforge::{Device, LazyModule};
use lazyforge_models::llama::Llama;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Bytes allocated and not yet freed, by every thread of this test binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// arithmetic on the sizes it was given.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// One test in this binary, so no other test allocates while it measures.
#[test]
fn a_hundred_definitions_cost_at_most_2_kib_each_until_used() {
    let path = common::smollm2_path();
    let before = LIVE.load(Ordering::SeqCst);
    let defs: Vec<_> = (0..100)
        .map(|_| Llama::define(&path, Device::Cpu).expect("SmolLM2's config reads"))
        .collect();
    let per_definition = (LIVE.load(Ordering::SeqCst) - before) / 100;
    eprintln!("one definition holds {per_definition} bytes of heap until used");
    assert!(
        per_definition <= 2048,
        "{per_definition} bytes per definition"
    );
    assert!(defs.iter().all(|d| !d.is_bound()));

    // Used: bound on first use, to the same model, still lazy.
    let model = defs[7].get().unwrap();
    assert_eq!(model.config().n_layers, 30);
    assert!(!model.is_materialized());
    assert!(defs[7].is_bound() && !defs[8].is_bound());
    let bound = LIVE.load(Ordering::SeqCst) - before;
    assert!(
        bound > 100 * per_definition,
        "binding builds the weight table"
    );
}
