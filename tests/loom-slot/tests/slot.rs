//! A loom model of the synchronization in `Slot` (runtime/src/lazy/residency.rs): pins,
//! the tensor's mutex and its `resident` mirror, the load lock, and `failures_seen`, which
//! lets callers that waited on a failed load share its error instead of starting another.
//!
//! It is a model, not the code itself: the residency around the slot (budget, condvar,
//! I/O thread, thread-local depth counters, `OnceLock`) uses primitives loom cannot
//! replace, so the protocol is restated here line for line and must be kept in step with
//! `Slot::get`, `Slot::materialize` and `Residency::evict_slot` by hand.
//!
//! Run: `cd tests/loom-slot && cargo test --release`.

use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

#[derive(Default)]
struct Attempts {
    failures: u64,
    last_error: Option<&'static str>,
}

/// Model only: what one caller saw on its way through `materialize`.
#[derive(Default, Clone, Copy, Debug)]
struct Trace {
    /// `failures_seen` before queueing on the load lock.
    failures_before: u64,
    /// Failures already recorded when it got the lock; `None` if it never took the lock.
    failures_at_lock: Option<u64>,
}

#[derive(Default)]
struct Slot {
    tensor: Mutex<Option<Arc<u32>>>,
    resident: AtomicBool,
    pins: AtomicUsize,
    attempt: Mutex<Attempts>,
    failures_seen: AtomicU64,
    /// Model only: loads started, and whether the next one fails.
    loads: AtomicUsize,
    fail_next: AtomicBool,
}

/// A pinned tensor: unpins on drop, as `Pinned` does.
struct Pinned<'a> {
    slot: &'a Slot,
    tensor: Arc<u32>,
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        self.slot.pins.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slot {
    fn get(&self) -> Result<Pinned<'_>, &'static str> {
        self.get_traced(&mut Trace::default())
    }

    fn get_traced(&self, trace: &mut Trace) -> Result<Pinned<'_>, &'static str> {
        self.pins.fetch_add(1, Ordering::AcqRel);
        match self.materialize(trace) {
            Ok(tensor) => Ok(Pinned { slot: self, tensor }),
            Err(e) => {
                self.pins.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    fn resident_tensor(&self) -> Option<Arc<u32>> {
        self.tensor.lock().unwrap().clone()
    }

    fn materialize(&self, trace: &mut Trace) -> Result<Arc<u32>, &'static str> {
        if let Some(t) = self.resident_tensor() {
            return Ok(t);
        }
        let failures_before = self.failures_seen.load(Ordering::Acquire);
        let mut attempts = self.attempt.lock().unwrap();
        trace.failures_before = failures_before;
        trace.failures_at_lock = Some(attempts.failures);
        if let Some(t) = self.resident_tensor() {
            return Ok(t);
        }
        if attempts.failures != failures_before {
            if let Some(e) = attempts.last_error {
                return Err(e);
            }
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        if self.fail_next.swap(false, Ordering::Relaxed) {
            attempts.failures += 1;
            attempts.last_error = Some("load failed");
            self.failures_seen
                .store(attempts.failures, Ordering::Release);
            return Err("load failed");
        }
        attempts.last_error = None;
        let tensor = Arc::new(42);
        *self.tensor.lock().unwrap() = Some(Arc::clone(&tensor));
        self.resident.store(true, Ordering::Release);
        Ok(tensor)
    }

    fn evict(&self) -> bool {
        let mut t = self.tensor.lock().unwrap();
        if self.pins.load(Ordering::Acquire) > 0 {
            return false;
        }
        let taken = t.take();
        if taken.is_some() {
            self.resident.store(false, Ordering::Release);
        }
        taken.is_some()
    }
}

/// Two threads ask for the tensor at once: one load, both get the same tensor.
#[test]
fn concurrent_first_uses_load_exactly_once() {
    loom::model(|| {
        let slot = Arc::new(Slot::default());
        let other = Arc::clone(&slot);
        let t = thread::spawn(move || *other.get().unwrap().tensor);
        let here = *slot.get().unwrap().tensor;
        assert_eq!(t.join().unwrap(), here);
        assert_eq!(slot.loads.load(Ordering::Relaxed), 1);
        assert!(slot.resident.load(Ordering::Acquire));
    });
}

/// An eviction racing a use never takes a pinned tensor: while a caller holds its pin,
/// the slot still holds the very tensor it was given.
#[test]
fn eviction_never_takes_a_pinned_tensor() {
    loom::model(|| {
        let slot = Arc::new(Slot::default());
        let evictor = Arc::clone(&slot);
        let t = thread::spawn(move || evictor.evict());
        {
            let pinned = slot.get().unwrap();
            let held = slot.resident_tensor();
            assert!(held.is_some_and(|h| Arc::ptr_eq(&h, &pinned.tensor)));
        }
        let evicted = t.join().unwrap();
        // Evicted only when it ran before the load or after the pin was dropped; a reload
        // after an eviction is a second load.
        let loads = slot.loads.load(Ordering::Relaxed);
        assert!(loads == 1 || (loads == 2 && evicted));
    });
}

/// A failed load is reported to the callers that waited for it (they queued on the load
/// lock before the failure was published), not retried by them; a caller that arrives
/// after the failure retries.
#[test]
fn a_failure_is_shared_with_waiters_and_retried_by_later_callers() {
    loom::model(|| {
        let slot = Arc::new(Slot {
            fail_next: AtomicBool::new(true),
            ..Slot::default()
        });
        let other = Arc::clone(&slot);
        let t = thread::spawn(move || {
            let mut trace = Trace::default();
            let r = other.get_traced(&mut trace).map(|p| *p.tensor);
            (r, trace)
        });
        let mut trace = Trace::default();
        let here = (slot.get_traced(&mut trace).map(|p| *p.tensor), trace);
        let there = t.join().unwrap();
        for (result, trace) in [here, there] {
            if let Some(at_lock) = trace.failures_at_lock {
                // Queued before a failure it then found: it must share that error.
                if at_lock > trace.failures_before {
                    assert_eq!(result, Err("load failed"), "{trace:?}");
                }
            }
        }
        let errors = [here.0, there.0].iter().filter(|r| r.is_err()).count();
        let loads = slot.loads.load(Ordering::Relaxed);
        assert!(
            (errors == 2 && loads == 1) || (errors == 1 && loads == 2),
            "{errors} errors after {loads} loads"
        );
        assert_eq!(slot.pins.load(Ordering::Acquire), 0);
    });
}
