//! Execution modes, the [`Strategy`] trait `#[strategy]` implements, and per-module forward
//! metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The name of a forward path: `prefill`, `decode`, `unified`, or one a model author
/// invents (`long_context`, `speculative`). An open set: a new mode needs no change here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecutionMode(&'static str);

impl ExecutionMode {
    /// Many tokens at once: compute-bound, matrix-matrix products.
    pub const PREFILL: ExecutionMode = ExecutionMode("prefill");
    /// One token against the KV cache: memory-bound, matrix-vector products.
    pub const DECODE: ExecutionMode = ExecutionMode("decode");
    /// One path for every shape of input.
    pub const UNIFIED: ExecutionMode = ExecutionMode("unified");

    /// A mode named `name` (the name of the method that implements it).
    pub const fn new(name: &'static str) -> ExecutionMode {
        ExecutionMode(name)
    }

    /// The mode's name.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A module with one forward entry point per execution mode; implemented by `#[strategy]`.
pub trait Strategy: super::LazyModule {
    /// The modes this module runs in, in the order the strategy lists them.
    const MODES: &'static [ExecutionMode];

    /// Whether `mode` is one of [`Strategy::MODES`].
    fn supports(mode: ExecutionMode) -> bool {
        Self::MODES.contains(&mode)
    }
}

/// Calls and time spent in one mode's forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModeStats {
    /// Completed calls (successful or not).
    pub calls: u64,
    /// Wall time in those calls, in nanoseconds (children's time included).
    pub nanos: u64,
}

impl ModeStats {
    /// Wall time in those calls.
    pub fn time(&self) -> Duration {
        Duration::from_nanos(self.nanos)
    }
}

/// Per-module forward metrics: calls and time per execution mode. Shared by the threads that
/// run the module and updated on every forward call, so the first few modes (all a module
/// usually has) are counted with atomics, without a lock.
#[derive(Debug, Default)]
pub struct ForwardMetrics {
    slots: [ModeSlot; MODE_SLOTS],
    /// Modes past the first [`MODE_SLOTS`], rare enough for a lock.
    overflow: Mutex<BTreeMap<ExecutionMode, ModeStats>>,
}

/// Modes counted without a lock.
const MODE_SLOTS: usize = 8;

/// One mode's counters; the mode is claimed on its first call.
#[derive(Debug, Default)]
struct ModeSlot {
    mode: OnceLock<ExecutionMode>,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl ModeSlot {
    fn stats(&self) -> ModeStats {
        ModeStats {
            calls: self.calls.load(Ordering::Relaxed),
            nanos: self.nanos.load(Ordering::Relaxed),
        }
    }
}

impl ForwardMetrics {
    /// Adds one call of `mode` that took `time`.
    pub fn record(&self, mode: ExecutionMode, time: Duration) {
        let nanos = time.as_nanos().min(u64::MAX as u128) as u64;
        for slot in &self.slots {
            // Claims a free slot for `mode`; if another mode won the race, look further.
            if *slot.mode.get_or_init(|| mode) == mode {
                slot.calls.fetch_add(1, Ordering::Relaxed);
                slot.nanos.fetch_add(nanos, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.overflow.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(mode).or_default();
        entry.calls += 1;
        entry.nanos += nanos;
    }

    /// The counts for `mode` (zero if it never ran).
    pub fn get(&self, mode: ExecutionMode) -> ModeStats {
        self.snapshot().get(&mode).copied().unwrap_or_default()
    }

    /// Every mode that ran, with its counts.
    pub fn snapshot(&self) -> BTreeMap<ExecutionMode, ModeStats> {
        let mut out = self
            .overflow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for slot in &self.slots {
            if let Some(&mode) = slot.mode.get() {
                out.insert(mode, slot.stats());
            }
        }
        out
    }
}
