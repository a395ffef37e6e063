//! Residency: what is materialized on one device, within a byte budget.
//!
//! One [`Residency`] per device (per checkpoint unless shared with
//! [`Checkpoint::set_residency`](crate::Checkpoint::set_residency)) owns every materialized
//! weight on that device:
//!
//! - **Slots.** Each weight's loaded tensor lives in a [`Slot`]; two handles on the same bytes
//!   (tied embeddings bound under two fields) share one slot, so they load, count and evict
//!   once.
//! - **Pins.** [`LazyTensor::get`](super::LazyTensor::get) returns a [`Pinned`] guard, and a
//!   module's forward call pins its own weights for the duration of the call
//!   ([`ResidentModule::pin`]). A pinned slot is never evicted, so eviction takes `&self` and
//!   runs while other threads compute. Memory safety never depends on pins (a guard owns an
//!   `Arc` of its tensor); pins keep the accounting true and the hot weights resident.
//! - **Budget and LRU.** A load that would take resident bytes past the budget first evicts
//!   the least recently used modules that no thread has pinned; a module is the unit of
//!   eviction (its own weights come and go together). When everything resident is pinned by
//!   other threads, the load waits for them to finish; when nothing can ever be freed (the
//!   pins are this thread's own), it goes over budget and counts an `over_budget` event
//!   rather than deadlock. A module whose own weights exceed the whole budget is an error
//!   before anything is read.
//! - **Prefetch.** With [`Residency::set_prefetch`], pinning module `i` queues the next
//!   modules (in the model's tree order, which is its execution order) to a dedicated I/O
//!   thread, outside the compute thread pool. Prefetch only fills free budget; it never
//!   evicts.
//! - **Honest bytes on the CPU.** A zero-copy weight counts once its pages are in memory:
//!   materializing it faults its pages in (timed as page-fault time), and evicting it gives
//!   its whole pages back to the OS (`MADV_DONTNEED`), so the process's RSS falls.

use super::metrics::{LoadCounters, LoadStats};
use crate::device::{Device, Storage, Tensor};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::source::{AlignedBytes, Mapping, TensorInfo};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// No budget: everything may be resident.
const UNLIMITED: u64 = u64::MAX;

/// How long a load waits, in all, for other threads to unpin memory before it goes over
/// budget instead (a safety net; waits normally end when another forward call finishes).
const MAX_WAIT: Duration = Duration::from_secs(2);

/// What is materialized on one device, within a budget. See the module docs of `lazyforge::lazy` and docs/residency.md.
pub struct Residency {
    id: u64,
    device: Device,
    budget: AtomicU64,
    resident: AtomicU64,
    peak: AtomicU64,
    clock: AtomicU64,
    state: Mutex<State>,
    freed: Condvar,
    waiting: AtomicUsize,
    over_budget: AtomicU64,
    counters: LoadCounters,
    slots: Mutex<HashMap<SlotKey, Weak<Slot>>>,
    prefetch_depth: AtomicUsize,
    /// Bytes of every slot ever made here: when all of it is resident, prefetch has nothing
    /// to do and returns before taking any lock.
    slot_bytes: AtomicU64,
    prefetch: OnceLock<Mutex<Sender<Arc<ResidentModule>>>>,
}

/// What the residency lock protects.
#[derive(Default)]
struct State {
    /// Bytes of loads in progress, counted against the budget before they land.
    reserved: u64,
    /// Every module that has been pinned or registered, in tree (execution) order.
    modules: Vec<Weak<ResidentModule>>,
    /// Threads inside at least one pinned forward call.
    active: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    file: PathBuf,
    offset: u64,
    dtype: DType,
}

impl std::fmt::Debug for Residency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Residency")
            .field("device", &self.device)
            .field("budget", &self.budget())
            .field("resident_bytes", &self.resident_bytes())
            .finish()
    }
}

/// A snapshot of a [`Residency`]'s state and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResidencyStats {
    /// The byte budget (`None`: unlimited).
    pub budget: Option<u64>,
    /// Bytes materialized now.
    pub resident_bytes: u64,
    /// The most bytes ever materialized at once.
    pub peak_resident_bytes: u64,
    /// Loads that went over budget because everything resident was pinned by the loading
    /// thread itself.
    pub over_budget: u64,
    /// Loads, hits, evictions, reloads and times of every tensor on this device.
    #[serde(flatten)]
    pub loads: LoadStats,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Per residency id: how deeply this thread is nested in pinned forward calls.
    static DEPTH: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
}

impl Residency {
    /// An empty residency for `device`: no budget on the host; on a GPU, 90% of the memory
    /// free when it is made (the rest is left to KV caches, activations and workspace).
    pub fn new(device: Device) -> Arc<Residency> {
        let budget = match device {
            Device::Cpu => UNLIMITED,
            _ => crate::device::backend(device)
                .ok()
                .and_then(|b| b.memory_info())
                .map_or(UNLIMITED, |(free, _)| free / 10 * 9),
        };
        Arc::new(Residency {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device,
            budget: AtomicU64::new(budget),
            resident: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
            waiting: AtomicUsize::new(0),
            over_budget: AtomicU64::new(0),
            counters: LoadCounters::default(),
            slots: Mutex::new(HashMap::new()),
            prefetch_depth: AtomicUsize::new(0),
            slot_bytes: AtomicU64::new(0),
            prefetch: OnceLock::new(),
        })
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The budget in bytes (`None`: unlimited).
    pub fn budget(&self) -> Option<u64> {
        match self.budget.load(Ordering::Relaxed) {
            UNLIMITED => None,
            b => Some(b),
        }
    }

    /// Sets the budget (`None`: unlimited) and evicts least recently used, unpinned modules
    /// until what is resident fits (or only pinned weights are left).
    pub fn set_budget(&self, budget: Option<u64>) {
        self.budget
            .store(budget.unwrap_or(UNLIMITED), Ordering::Relaxed);
        let mut st = self.lock();
        while self.resident_bytes() + st.reserved > self.budget.load(Ordering::Relaxed) {
            if !self.evict_lru(&mut st) {
                break;
            }
        }
    }

    /// Prefetch the next `depth` modules (tree order) when a module is pinned; 0 turns
    /// prefetch off (the default).
    pub fn set_prefetch(&self, depth: usize) {
        self.prefetch_depth.store(depth, Ordering::Relaxed);
    }

    /// How many modules ahead are prefetched.
    pub fn prefetch_depth(&self) -> usize {
        self.prefetch_depth.load(Ordering::Relaxed)
    }

    /// Bytes materialized now.
    pub fn resident_bytes(&self) -> u64 {
        self.resident.load(Ordering::Acquire)
    }

    /// The most bytes ever materialized at once.
    pub fn peak_resident_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Forgets the peak: it becomes what is resident now.
    pub fn reset_peak(&self) {
        self.peak.store(self.resident_bytes(), Ordering::Relaxed);
    }

    /// State and counters.
    pub fn stats(&self) -> ResidencyStats {
        let mut loads = self.counters.snapshot();
        loads.bytes_resident = self.resident_bytes();
        ResidencyStats {
            budget: self.budget(),
            resident_bytes: self.resident_bytes(),
            peak_resident_bytes: self.peak_resident_bytes(),
            over_budget: self.over_budget.load(Ordering::Relaxed),
            loads,
        }
    }

    /// Evicts every unpinned tensor; returns how many were dropped.
    pub fn evict_all(&self) -> usize {
        let slots: Vec<Arc<Slot>> = {
            let map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            map.values().filter_map(Weak::upgrade).collect()
        };
        let _st = self.lock();
        slots.iter().filter(|s| self.evict_slot(s)).count()
    }

    /// The one slot for `info` in `file` as `target` on this device: shared by every handle
    /// on the same bytes (tied weights).
    pub(crate) fn slot(
        self: &Arc<Residency>,
        info: TensorInfo,
        file: Arc<Mapping>,
        target: DType,
        totals: Arc<LoadCounters>,
    ) -> Arc<Slot> {
        let key = SlotKey {
            file: file.path().to_path_buf(),
            offset: info.offset,
            dtype: target,
        };
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(&key).and_then(Weak::upgrade) {
            return slot;
        }
        if slots.len() > 64 && slots.len().is_power_of_two() {
            slots.retain(|_, w| w.strong_count() > 0);
        }
        let bytes = if target == info.dtype {
            info.len
        } else {
            info.elem_count() * target.type_size() as u64
        };
        let slot = Arc::new(Slot {
            info,
            file,
            target,
            bytes,
            tensor: Mutex::new(None),
            resident: AtomicBool::new(false),
            pins: AtomicUsize::new(0),
            attempt: Mutex::new(LoadAttempts::default()),
            failures_seen: AtomicU64::new(0),
            ever_loaded: AtomicBool::new(false),
            counters: LoadCounters::default(),
            totals,
            residency: Arc::clone(self),
        });
        slots.insert(key, Arc::downgrade(&slot));
        self.slot_bytes.fetch_add(bytes, Ordering::Relaxed);
        slot
    }

    /// A module (the unit of LRU and prefetch) over `slots`, registered after every module
    /// registered so far.
    pub fn register_module(
        self: &Arc<Residency>,
        path: &str,
        type_name: &'static str,
        slots: Vec<Arc<Slot>>,
    ) -> Arc<ResidentModule> {
        let mut unique: Vec<Arc<Slot>> = Vec::with_capacity(slots.len());
        for s in slots {
            if !unique.iter().any(|u| Arc::ptr_eq(u, &s)) {
                unique.push(s);
            }
        }
        let bytes = unique.iter().map(|s| s.bytes).sum();
        let mut st = self.lock();
        let module = Arc::new(ResidentModule {
            path: path.to_string(),
            type_name,
            slots: unique,
            bytes,
            order: st.modules.len(),
            last_use: AtomicU64::new(0),
            pins: AtomicUsize::new(0),
            queued: AtomicBool::new(false),
            residency: Arc::clone(self),
        });
        st.modules.push(Arc::downgrade(&module));
        module
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Makes room for `bytes` and reserves them. `wait`: whether to wait for other threads'
    /// pins (demand loads) or give up (prefetch, returns `Ok(false)`).
    fn reserve(&self, bytes: u64, wait: bool) -> bool {
        let mut st = self.lock();
        let mut waited = Duration::ZERO;
        loop {
            let budget = self.budget.load(Ordering::Relaxed);
            if self
                .resident_bytes()
                .saturating_add(st.reserved)
                .saturating_add(bytes)
                <= budget
            {
                st.reserved += bytes;
                return true;
            }
            if !wait {
                return false;
            }
            if self.evict_lru(&mut st) {
                continue;
            }
            // Nothing unpinned is left. Other threads' forward calls will unpin theirs: wait
            // for them, unless every active thread is already waiting (or this one is alone).
            let me = usize::from(self.depth() > 0);
            let waiting = self.waiting.load(Ordering::Acquire);
            if st.active > waiting + me && waited < MAX_WAIT {
                self.waiting.fetch_add(1, Ordering::AcqRel);
                let step = Duration::from_millis(20);
                let start = Instant::now();
                st = self
                    .freed
                    .wait_timeout(st, step)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                waited += start.elapsed();
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            self.over_budget.fetch_add(1, Ordering::Relaxed);
            st.reserved += bytes;
            return true;
        }
    }

    /// Whether `bytes` more fit in the budget now, without evicting anything.
    fn has_room(&self, bytes: u64) -> bool {
        let st = self.lock();
        self.resident_bytes()
            .saturating_add(st.reserved)
            .saturating_add(bytes)
            <= self.budget.load(Ordering::Relaxed)
    }

    /// A reservation's load landed: its bytes are resident now.
    fn land(&self, bytes: u64) {
        let mut st = self.lock();
        st.reserved -= bytes;
        let now = self.resident.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// A reservation's load failed.
    fn cancel(&self, bytes: u64) {
        self.lock().reserved -= bytes;
        self.notify();
    }

    /// Evicts the least recently used module that has unpinned resident weights; false when
    /// there is none.
    fn evict_lru(&self, st: &mut State) -> bool {
        let mut victim: Option<Arc<ResidentModule>> = None;
        let mut dead = false;
        for w in &st.modules {
            let Some(m) = w.upgrade() else {
                dead = true;
                continue;
            };
            if m.pins.load(Ordering::Acquire) > 0 || !m.slots.iter().any(|s| s.is_evictable()) {
                continue;
            }
            let older = victim.as_ref().is_none_or(|v| {
                m.last_use.load(Ordering::Relaxed) < v.last_use.load(Ordering::Relaxed)
            });
            if older {
                victim = Some(m);
            }
        }
        if dead {
            st.modules.retain(|w| w.strong_count() > 0);
        }
        match victim {
            // Every slot, not short-circuiting: the module goes as a whole.
            Some(m) => m.slots.iter().filter(|s| self.evict_slot(s)).count() > 0,
            None => false,
        }
    }

    /// Drops `slot`'s tensor unless it is pinned; true when it did.
    fn evict_slot(&self, slot: &Slot) -> bool {
        let taken = {
            let mut t = slot.tensor.lock().unwrap_or_else(|p| p.into_inner());
            if slot.pins.load(Ordering::Acquire) > 0 {
                return false;
            }
            let taken = t.take();
            if taken.is_some() {
                slot.resident.store(false, Ordering::Release);
            }
            taken
        };
        let Some(tensor) = taken else {
            return false;
        };
        if let Storage::Mapped { file, offset, len } = tensor.storage() {
            // Best effort: the bytes stay correct either way; only the RSS would not fall.
            let _ = file.drop_pages(*offset, *len);
        }
        drop(tensor);
        self.resident.fetch_sub(slot.bytes, Ordering::AcqRel);
        slot.counters.record_eviction(slot.bytes);
        slot.totals.record_eviction(slot.bytes);
        self.counters.record_eviction(slot.bytes);
        true
    }

    fn notify(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            let _st = self.lock();
            self.freed.notify_all();
        }
    }

    /// This thread's depth of pinned forward calls on this residency.
    fn depth(&self) -> usize {
        DEPTH.with(|d| {
            d.borrow()
                .iter()
                .find(|(id, _)| *id == self.id)
                .map_or(0, |e| e.1)
        })
    }

    fn enter(&self) {
        let first = DEPTH.with(|d| {
            let mut d = d.borrow_mut();
            match d.iter_mut().find(|(id, _)| *id == self.id) {
                Some(e) => {
                    e.1 += 1;
                    e.1 == 1
                }
                None => {
                    d.push((self.id, 1));
                    true
                }
            }
        });
        if first {
            self.lock().active += 1;
        }
    }

    fn leave(&self) {
        let last = DEPTH.with(|d| {
            let mut d = d.borrow_mut();
            match d.iter().position(|(id, _)| *id == self.id) {
                Some(i) => {
                    d[i].1 -= 1;
                    if d[i].1 == 0 {
                        d.swap_remove(i);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            }
        });
        if last {
            self.lock().active -= 1;
            self.notify();
        }
    }

    /// Queues the modules after `order` (cyclically) that are not resident to the I/O thread.
    fn prefetch_after(&self, order: usize) {
        let depth = self.prefetch_depth();
        // The steady state of a model that fits: everything is resident, nothing to queue.
        if depth == 0 || self.resident_bytes() >= self.slot_bytes.load(Ordering::Relaxed) {
            return;
        }
        let next: Vec<Arc<ResidentModule>> = {
            let st = self.lock();
            let n = st.modules.len();
            (1..n)
                .map(|k| (order + k) % n)
                .filter_map(|i| st.modules[i].upgrade())
                .filter(|m| !m.slots.is_empty())
                .take(depth)
                .filter(|m| !m.is_materialized())
                .collect()
        };
        if next.is_empty() {
            return;
        }
        let sender = self.prefetch.get_or_init(|| {
            let (tx, rx) = channel::<Arc<ResidentModule>>();
            let spawned = std::thread::Builder::new()
                .name("lazyforge-io".into())
                .spawn(move || {
                    for module in rx {
                        module.prefetch();
                        module.queued.store(false, Ordering::Release);
                    }
                });
            if spawned.is_err() {
                // No I/O thread: prefetch is off, loads happen on first use as without it.
                self.set_prefetch(0);
            }
            Mutex::new(tx)
        });
        let sender = sender.lock().unwrap_or_else(|p| p.into_inner());
        for m in next {
            if !m.queued.swap(true, Ordering::AcqRel) && sender.send(m).is_err() {
                break;
            }
        }
    }
}

/// The load lock's state: how many attempts failed, and the last failure, shared with the
/// callers that were waiting on it.
#[derive(Default)]
struct LoadAttempts {
    failures: u64,
    last_error: Option<Error>,
}

/// One weight's place on a device: its descriptor, and its tensor while materialized.
/// Shared by every handle on the same bytes.
pub struct Slot {
    info: TensorInfo,
    file: Arc<Mapping>,
    target: DType,
    bytes: u64,
    tensor: Mutex<Option<Arc<Tensor>>>,
    /// Mirrors `tensor.is_some()`, readable without the lock.
    resident: AtomicBool,
    pins: AtomicUsize,
    attempt: Mutex<LoadAttempts>,
    failures_seen: AtomicU64,
    ever_loaded: AtomicBool,
    counters: LoadCounters,
    totals: Arc<LoadCounters>,
    residency: Arc<Residency>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("name", &self.info.name)
            .field("resident", &self.is_resident())
            .field("pins", &self.pins.load(Ordering::Relaxed))
            .finish()
    }
}

impl Slot {
    pub(crate) fn info(&self) -> &TensorInfo {
        &self.info
    }

    pub(crate) fn file(&self) -> &Arc<Mapping> {
        &self.file
    }

    pub(crate) fn target(&self) -> DType {
        self.target
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn residency(&self) -> &Arc<Residency> {
        &self.residency
    }

    pub(crate) fn stats(&self) -> LoadStats {
        self.counters.snapshot()
    }

    pub(crate) fn is_resident(&self) -> bool {
        self.resident.load(Ordering::Acquire)
    }

    fn is_evictable(&self) -> bool {
        self.is_resident() && self.pins.load(Ordering::Acquire) == 0
    }

    /// The tensor, pinned; loads it (exactly once per residency) if it is not resident.
    pub(crate) fn get(self: &Arc<Slot>) -> Result<Pinned> {
        self.pins.fetch_add(1, Ordering::AcqRel);
        // From here on the pin is owned by the guard, which undoes it on every exit.
        let mut pinned = Pinned {
            tensor: None,
            slot: Arc::clone(self),
        };
        pinned.tensor = self.materialize(Need::Get)?;
        debug_assert!(pinned.tensor.is_some(), "demand loads always find room");
        Ok(pinned)
    }

    /// Evicts the tensor unless it is pinned; true when it did.
    pub(crate) fn evict(&self) -> bool {
        self.residency.evict_slot(self)
    }

    fn resident_tensor(&self) -> Option<Arc<Tensor>> {
        self.tensor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record_hit(&self) {
        self.counters.record_hit();
        self.totals.record_hit();
        self.residency.counters.record_hit();
    }

    /// The resident tensor, loading it first if needed (exactly once per residency: callers
    /// that arrive during a load wait for it and share its result or its error). `None` only
    /// for a prefetch that found no room.
    fn materialize(&self, need: Need) -> Result<Option<Arc<Tensor>>> {
        if let Some(t) = self.resident_tensor() {
            if need == Need::Get {
                self.record_hit();
            }
            return Ok(Some(t));
        }
        // Failures counted before we queue on the lock: if this changes while we wait, the
        // attempt we waited for failed, and we report its error rather than start another.
        let failures_before = self.failures_seen.load(Ordering::Acquire);
        // A panic while loading would poison the lock; the state it guards stays valid
        // (the slot is still empty), so carry on rather than poison the tensor forever.
        let mut attempts = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = self.resident_tensor() {
            if need == Need::Get {
                self.record_hit();
            }
            return Ok(Some(t));
        }
        if attempts.failures != failures_before {
            if let Some(e) = &attempts.last_error {
                return Err(e.clone());
            }
        }
        if !self.residency.reserve(self.bytes, need != Need::Prefetch) {
            return Ok(None);
        }
        match self.load() {
            Ok(tensor) => {
                attempts.last_error = None;
                let tensor = Arc::new(tensor);
                *self.tensor.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&tensor));
                self.resident.store(true, Ordering::Release);
                self.residency.land(self.bytes);
                Ok(Some(tensor))
            }
            Err(e) => {
                self.residency.cancel(self.bytes);
                attempts.failures += 1;
                attempts.last_error = Some(e.clone());
                self.failures_seen
                    .store(attempts.failures, Ordering::Release);
                self.counters.record_failure();
                self.totals.record_failure();
                self.residency.counters.record_failure();
                Err(e)
            }
        }
    }

    fn load(&self) -> Result<Tensor> {
        let start = Instant::now();
        let (tensor, fault) = self.read_and_convert().map_err(|reason| Error::Load {
            tensor: self.info.name.clone(),
            path: self.file.path().to_path_buf(),
            reason: Box::new(reason),
        })?;
        let elapsed = start.elapsed();
        let reload = self.ever_loaded.swap(true, Ordering::AcqRel);
        for c in [&self.counters, &*self.totals, &self.residency.counters] {
            c.record_load(self.info.len, self.bytes, elapsed, fault, reload);
        }
        Ok(tensor)
    }

    /// The tensor on the device, and the time spent faulting mapped pages in: read on the
    /// host, then, for a GPU, uploaded by its backend (through its pinned staging).
    fn read_and_convert(&self) -> Result<(Tensor, Duration)> {
        let (tensor, fault) = self.read_and_convert_host()?;
        match self.residency.device {
            Device::Cpu => Ok((tensor, fault)),
            device => Ok((crate::device::backend(device)?.upload(&tensor)?, fault)),
        }
    }

    /// The tensor in host memory, and the time spent faulting mapped pages in.
    fn read_and_convert_host(&self) -> Result<(Tensor, Duration)> {
        let info = &self.info;
        // A file truncated or rewritten since it was opened is refused before any of its
        // bytes are touched.
        self.file.check_unchanged()?;
        let len = usize::try_from(info.len)
            .map_err(|_| Error::Invalid(format!("{} bytes do not fit in memory", info.len)))?;
        let shape = info.shape.clone();
        if self.target == info.dtype {
            // Zero-copy when mapped and the data is aligned for its element type (GGUF
            // guarantees 32-byte alignment; safetensors headers may leave f32 data unaligned).
            let align = info.dtype.type_size().min(4) as u64;
            if self.file.is_mapped() && info.offset.is_multiple_of(align) {
                // Resident means in memory: fault the pages in now, not in the first kernel.
                let fault = self.file.fault_in(info.offset, len)?;
                let storage = Storage::Mapped {
                    file: Arc::clone(&self.file),
                    offset: info.offset,
                    len,
                };
                return Ok((Tensor::from_storage(shape, info.dtype, storage)?, fault));
            }
            let bytes = self.file.read_to_aligned(info.offset, len)?;
            let t = Tensor::from_storage(shape, info.dtype, Storage::Bytes(bytes))?;
            return Ok((t, Duration::ZERO));
        }
        // Conversion to f32 (validated when the handle was made).
        let values = dequantize_from(&self.file, info.dtype, info.offset, len, info.elem_count())?;
        Ok((Tensor::from_f32(shape, values)?, Duration::ZERO))
    }
}

/// Values converted in one step of [`dequantize_from`]: 4 MiB of `f32`s.
const CONVERT_CHUNK_VALUES: usize = 1 << 20;

/// Reads `len` bytes of `dtype` at `offset` of `file` and dequantizes them to `n` values.
/// The stored bytes are copied in chunks with positioned reads, never read through the
/// map: a file truncated under us is an error naming it, not a `SIGBUS`, and the copy
/// needs only one chunk of memory.
fn dequantize_from(
    file: &Mapping,
    dtype: DType,
    offset: u64,
    len: usize,
    n: u64,
) -> Result<Vec<f32>> {
    let n = usize::try_from(n)
        .map_err(|_| Error::Invalid(format!("{n} values do not fit in memory")))?;
    if dtype.bytes_for(n) != Some(len) {
        return Err(Error::Invalid(format!(
            "{n} values of {dtype} do not take {len} bytes"
        )));
    }
    let mut out = vec![0.0f32; n];
    let block = dtype.block_size();
    let chunk_values = (CONVERT_CHUNK_VALUES / block).max(1) * block;
    let chunk_bytes = chunk_values / block * dtype.type_size();
    let mut buf = AlignedBytes::zeroed(chunk_bytes.min(len));
    let mut at = offset;
    for values in out.chunks_mut(chunk_values) {
        let bytes = values.len() / block * dtype.type_size();
        let buf = &mut buf.as_mut_slice()[..bytes];
        file.read_exact_at(at, buf)?;
        crate::dtype::dequantize(dtype, buf, values)?;
        at += bytes as u64;
    }
    Ok(out)
}

/// A materialized tensor, pinned: it stays resident while this guard lives. Derefs to the
/// [`Tensor`].
pub struct Pinned {
    /// Always `Some` once handed out (the option lets the guard exist, and unpin on drop,
    /// before the load finishes).
    tensor: Option<Arc<Tensor>>,
    slot: Arc<Slot>,
}

impl Pinned {
    /// The shared tensor (the same allocation for every caller in one residency).
    pub fn shared(&self) -> &Arc<Tensor> {
        self.tensor
            .as_ref()
            .expect("a Pinned is only handed out once its tensor is loaded")
    }
}

impl std::ops::Deref for Pinned {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        self.shared()
    }
}

impl AsRef<Tensor> for Pinned {
    fn as_ref(&self) -> &Tensor {
        self.shared()
    }
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pinned").field(&self.tensor).finish()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if self.slot.pins.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.slot.residency.notify();
        }
    }
}

/// A module's own weights as one unit of residency: loaded, pinned, touched (LRU) and
/// evicted together.
pub struct ResidentModule {
    path: String,
    type_name: &'static str,
    slots: Vec<Arc<Slot>>,
    bytes: u64,
    order: usize,
    last_use: AtomicU64,
    pins: AtomicUsize,
    queued: AtomicBool,
    residency: Arc<Residency>,
}

impl std::fmt::Debug for ResidentModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentModule")
            .field("path", &self.path)
            .field("bytes", &self.bytes)
            .field("materialized", &self.is_materialized())
            .finish()
    }
}

/// A module pinned for a forward call; unpins on drop.
#[must_use = "the module is unpinned when this guard drops"]
pub struct ModulePin<'a> {
    module: &'a ResidentModule,
}

impl Drop for ModulePin<'_> {
    fn drop(&mut self) {
        let m = self.module;
        for s in &m.slots {
            s.pins.fetch_sub(1, Ordering::AcqRel);
        }
        m.pins.fetch_sub(1, Ordering::AcqRel);
        m.residency.leave();
        m.residency.notify();
    }
}

impl ResidentModule {
    /// The module's path in the tree.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Bytes of its own weights once materialized (tied weights once).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The residency it belongs to.
    pub fn residency(&self) -> &Arc<Residency> {
        &self.residency
    }

    /// Whether all its own weights are resident.
    pub fn is_materialized(&self) -> bool {
        self.slots.iter().all(|s| s.is_resident())
    }

    fn name(&self) -> String {
        match self.path.as_str() {
            "" => self.type_name.to_string(),
            p => format!("{} ({p})", self.type_name),
        }
    }

    /// An error unless its own weights fit in the budget at all.
    pub fn check_fits(&self) -> Result<()> {
        match self.residency.budget() {
            Some(budget) if self.bytes > budget => Err(Error::Budget {
                module: self.name(),
                device: self.residency.device.to_string(),
                bytes: self.bytes,
                budget,
            }),
            _ => Ok(()),
        }
    }

    /// Pins its own weights for a forward call and materializes those not resident (waiting
    /// for room, evicting least recently used modules); queues the next modules for prefetch.
    /// A module bigger than the whole budget is an error before anything is read.
    pub fn pin(&self) -> Result<ModulePin<'_>> {
        self.check_fits()?;
        self.pins.fetch_add(1, Ordering::AcqRel);
        for s in &self.slots {
            s.pins.fetch_add(1, Ordering::AcqRel);
        }
        self.residency.enter();
        let pin = ModulePin { module: self };
        self.last_use
            .store(self.residency.tick(), Ordering::Relaxed);
        self.load_missing()?;
        self.residency.prefetch_after(self.order);
        Ok(pin)
    }

    /// Loads its own weights that are not resident: in parallel when they fit in the free
    /// budget (no eviction to order), one by one otherwise.
    fn load_missing(&self) -> Result<()> {
        let missing: Vec<&Arc<Slot>> = self.slots.iter().filter(|s| !s.is_resident()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let need: u64 = missing.iter().map(|s| s.bytes).sum();
        if missing.len() > 1 && self.residency.has_room(need) {
            use rayon::prelude::*;
            missing
                .par_iter()
                .try_for_each(|s| s.materialize(Need::Pin).map(|_| ()))
        } else {
            missing
                .iter()
                .try_for_each(|s| s.materialize(Need::Pin).map(|_| ()))
        }
    }

    /// Loads its own weights on the I/O thread, only into free budget.
    fn prefetch(&self) {
        self.last_use
            .store(self.residency.tick(), Ordering::Relaxed);
        for s in &self.slots {
            // A failed or refused prefetch is not an error: the forward call loads it.
            if !s.is_resident() && !matches!(s.materialize(Need::Prefetch), Ok(Some(_))) {
                return;
            }
        }
    }

    /// Evicts its own unpinned weights; returns how many were dropped.
    pub fn evict(&self) -> usize {
        self.slots.iter().filter(|s| s.evict()).count()
    }
}

/// Why a slot is being materialized.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A caller asked for the tensor (counts a hit when it is resident).
    Get,
    /// A forward call is pinning its module.
    Pin,
    /// The I/O thread is loading ahead; never waits for room, never evicts.
    Prefetch,
}
