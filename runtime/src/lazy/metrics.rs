//! Load counters, per tensor and in total. Lock-free: counted with relaxed atomics, read as
//! a [`LoadStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Live counters of loads. One per lazy tensor, and one shared by every tensor of a
/// checkpoint for the totals.
#[derive(Debug, Default)]
pub struct LoadCounters {
    loads: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
    bytes_read: AtomicU64,
    bytes_resident: AtomicU64,
    load_nanos: AtomicU64,
    evictions: AtomicU64,
    reloads: AtomicU64,
    fault_nanos: AtomicU64,
}

/// A snapshot of [`LoadCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadStats {
    /// Successful loads (materializations).
    pub loads: u64,
    /// Failed load attempts.
    pub failures: u64,
    /// Accesses served by an already-materialized tensor.
    pub hits: u64,
    /// Bytes of checkpoint data consumed by loads (copied, or mapped as zero-copy views).
    pub bytes_read: u64,
    /// Bytes currently held by materialized tensors on their device.
    pub bytes_resident: u64,
    /// Time spent in loads, in nanoseconds.
    pub load_nanos: u64,
    /// Materialized tensors dropped to make room (or on request).
    pub evictions: u64,
    /// Loads of a tensor that had been evicted before (included in `loads`).
    pub reloads: u64,
    /// Time spent bringing mapped pages into memory (part of `load_nanos`), in nanoseconds.
    pub fault_nanos: u64,
}

impl LoadStats {
    /// Time spent in loads.
    pub fn load_time(&self) -> Duration {
        Duration::from_nanos(self.load_nanos)
    }

    /// Time spent faulting mapped pages in.
    pub fn fault_time(&self) -> Duration {
        Duration::from_nanos(self.fault_nanos)
    }

    /// The sum of two snapshots (a module's weights, a tree's modules).
    pub fn merged(self, o: LoadStats) -> LoadStats {
        LoadStats {
            loads: self.loads + o.loads,
            failures: self.failures + o.failures,
            hits: self.hits + o.hits,
            bytes_read: self.bytes_read + o.bytes_read,
            bytes_resident: self.bytes_resident + o.bytes_resident,
            load_nanos: self.load_nanos + o.load_nanos,
            evictions: self.evictions + o.evictions,
            reloads: self.reloads + o.reloads,
            fault_nanos: self.fault_nanos + o.fault_nanos,
        }
    }
}

impl LoadCounters {
    /// A snapshot of the counters.
    pub fn snapshot(&self) -> LoadStats {
        LoadStats {
            loads: self.loads.load(Relaxed),
            failures: self.failures.load(Relaxed),
            hits: self.hits.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_resident: self.bytes_resident.load(Relaxed),
            load_nanos: self.load_nanos.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            fault_nanos: self.fault_nanos.load(Relaxed),
        }
    }

    pub(crate) fn record_load(
        &self,
        bytes_read: u64,
        bytes_resident: u64,
        time: Duration,
        fault: Duration,
        reload: bool,
    ) {
        self.loads.fetch_add(1, Relaxed);
        self.reloads.fetch_add(u64::from(reload), Relaxed);
        self.fault_nanos.fetch_add(nanos(fault), Relaxed);
        self.bytes_read.fetch_add(bytes_read, Relaxed);
        self.bytes_resident.fetch_add(bytes_resident, Relaxed);
        self.load_nanos.fetch_add(nanos(time), Relaxed);
    }

    pub(crate) fn record_failure(&self) {
        self.failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_eviction(&self, bytes_resident: u64) {
        self.evictions.fetch_add(1, Relaxed);
        self.bytes_resident.fetch_sub(bytes_resident, Relaxed);
    }
}

fn nanos(t: Duration) -> u64 {
    t.as_nanos().min(u64::MAX as u128) as u64
}
