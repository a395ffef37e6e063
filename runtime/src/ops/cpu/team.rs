//! [`Team`]: a persistent team of worker threads for decode's small parallel loops.
//!
//! Decode runs a few hundred matrix-vector products per token, many of them on matrices of a
//! few hundred kilobytes that take tens of microseconds. A rayon dispatch (queue a job, wake a
//! sleeping worker, join) costs a noticeable share of that on two threads. A team keeps
//! `threads - 1` workers that spin for a short while after each job before they park on a
//! condition variable, so a product that follows another within the spin finds them awake.
//!
//! One job runs at a time: [`Team::run`] publishes `n_parts` part indices, the workers and the
//! calling thread claim them one by one (so a worker that is late to wake, on a loaded machine,
//! only means the others take more parts), and `run` returns once every part has finished.
//! A second caller while a job runs (another thread, or a part that itself calls `run`) does
//! its parts alone on its own thread instead of waiting.

use crate::error::{Error, Result};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins (checking for a new job) before it parks. Decode's jobs
/// follow each other within microseconds during a token; between tokens the sampler runs.
const SPIN: Duration = Duration::from_micros(300);
/// Most parts of one job (the part counter has 16 bits).
pub(crate) const MAX_PARTS: usize = (1 << 16) - 1;

/// The job state, packed into one atomic so that a claim is one compare-and-swap: the job's
/// epoch (bits 32..64), the next unclaimed part (bits 16..32) and the number of parts
/// (bits 0..16).
fn pack(epoch: u32, next: usize, n: usize) -> u64 {
    (epoch as u64) << 32 | (next as u64) << 16 | n as u64
}

fn epoch_of(state: u64) -> u32 {
    (state >> 32) as u32
}

/// The job being run: which epoch it belongs to, and how to call its part function.
#[derive(Clone, Copy)]
struct JobRef {
    epoch: u32,
    /// The caller's closure, type-erased.
    data: *const (),
    /// Calls the closure behind `data` on one part index.
    call: unsafe fn(*const (), usize),
}

// SAFETY: `data` points to a closure that is `Sync` (see `Team::run`), so calling it from
// another thread through a shared pointer is sound; the pointer is only dereferenced while
// the closure is alive (a part is claimed only while its job has parts left, and `run` does
// not return before every claimed part has finished).
unsafe impl Send for JobRef {}

/// Calls the closure of type `F` behind `data` on part `i`.
///
/// # Safety
///
/// `data` must point to a live `F`.
unsafe fn call_part<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: the caller guarantees `data` is a live `F`.
    let f = unsafe { &*data.cast::<F>() };
    f(i)
}

/// What the workers and the caller share.
struct Shared {
    state: AtomicU64,
    job: Mutex<Option<JobRef>>,
    /// Parts of the current job that have finished.
    done: AtomicUsize,
    /// Whether a part of the current job panicked.
    panicked: AtomicBool,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
}

impl Shared {
    /// Claims the next part of the job of `epoch`, if it has one left.
    fn claim(&self, epoch: u32) -> Option<usize> {
        let mut v = self.state.load(Ordering::Acquire);
        loop {
            let (next, n) = ((v >> 16) as usize & 0xFFFF, v as usize & 0xFFFF);
            if epoch_of(v) != epoch || next >= n {
                return None;
            }
            match self.state.compare_exchange_weak(
                v,
                v + (1 << 16),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(now) => v = now,
            }
        }
    }

    /// Runs every part of `job` this thread can claim.
    fn work(&self, job: JobRef) {
        while let Some(i) = self.claim(job.epoch) {
            // SAFETY: part `i` of the job of `job.epoch` was just claimed, so that job has
            // not finished and its closure (behind `job.data`, of the type `job.call`
            // expects) is alive until this part is counted in `done`.
            let ok = catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, i) }));
            if ok.is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }

    /// A worker's life: wait for a job newer than the last one seen, help with it, repeat.
    fn worker(&self) {
        let mut seen = 0u32;
        loop {
            if !self.wait_for_job(seen) {
                return;
            }
            let job = match *self.job.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(job) => job,
                None => continue,
            };
            seen = job.epoch;
            self.work(job);
        }
    }

    /// Spins, then parks, until the state's epoch differs from `seen`; false on shutdown.
    fn wait_for_job(&self, seen: u32) -> bool {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return false;
            }
            if epoch_of(self.state.load(Ordering::Acquire)) != seen {
                return true;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                break;
            }
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while epoch_of(self.state.load(Ordering::SeqCst)) == seen
            && !self.shutdown.load(Ordering::SeqCst)
        {
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        !self.shutdown.load(Ordering::Acquire)
    }

    /// Wakes every parked worker (they check the state under `lock`, so none misses it).
    fn wake_all(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }
}

/// A team of `threads - 1` persistent workers plus the calling thread.
pub struct Team {
    shared: Arc<Shared>,
    threads: usize,
    /// Held by the one caller whose job the team runs.
    caller: Mutex<u32>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Team {
    /// A team of `threads` threads in all: the caller of [`run`](Team::run) and
    /// `threads - 1` workers (none for `threads <= 1`). Fails if a thread cannot be spawned.
    pub fn new(threads: usize) -> Result<Team> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(pack(0, 0, 0)),
            job: Mutex::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut team = Team {
            shared: shared.clone(),
            threads,
            caller: Mutex::new(0),
            workers: Vec::with_capacity(threads - 1),
        };
        for i in 1..threads {
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("lazyforge-team-{i}"))
                .spawn(move || shared.worker())
                .map_err(|e| Error::Invalid(format!("team: cannot spawn worker {i}: {e}")))?;
            team.workers.push(handle);
        }
        Ok(team)
    }

    /// The process's team, made on first use with as many threads as rayon's pool (which
    /// `--threads` sets); a team of one if its workers cannot be spawned.
    pub fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| {
            let n = rayon::current_num_threads();
            Team::new(n).unwrap_or_else(|_| Team::new(1).expect("a team of one spawns nothing"))
        })
    }

    /// Threads in the team, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(i)` once for every `i < n_parts`, spread over the team; returns when all
    /// have returned. Parts are claimed in increasing order, each by whichever thread is
    /// free. If a part panics, the panic is raised here once all parts have finished.
    pub fn run<F: Fn(usize) + Sync>(&self, n_parts: usize, f: F) {
        if n_parts == 0 {
            return;
        }
        let mut epoch = match self.caller.try_lock() {
            Ok(guard) if self.threads > 1 && n_parts > 1 && n_parts <= MAX_PARTS => guard,
            Ok(_) | Err(TryLockError::WouldBlock) => return (0..n_parts).for_each(f),
            Err(TryLockError::Poisoned(_)) => return (0..n_parts).for_each(f),
        };
        *epoch = epoch.wrapping_add(1);
        let job = JobRef {
            epoch: *epoch,
            data: (&f as *const F).cast(),
            call: call_part::<F>,
        };
        let s = &*self.shared;
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        s.done.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        s.state.store(pack(job.epoch, 0, n_parts), Ordering::SeqCst);
        s.wake_all();
        s.work(job);
        // The workers' last parts: they are running now, so spin, yielding now and then in
        // case a worker was descheduled mid-part.
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < n_parts {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                std::thread::yield_now();
            }
        }
        if s.panicked.load(Ordering::Relaxed) {
            drop(epoch);
            resume_unwind(Box::new("a part of a team job panicked"));
        }
    }

    /// [`run`](Team::run) for fallible parts: every part runs, and the first error (by
    /// completion) is returned.
    pub fn try_run<F: Fn(usize) -> Result<()> + Sync>(&self, n_parts: usize, f: F) -> Result<()> {
        let first = Mutex::new(None);
        self.run(n_parts, |i| {
            if let Err(e) = f(i) {
                first
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
            }
        });
        match first.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Calls `f(i, slices[i])` for every slice, spread over the team as [`try_run`]'s parts
    /// (the slices are disjoint, so each part writes its own).
    ///
    /// [`try_run`]: Team::try_run
    pub fn try_for_each_slice<T: Send, F>(&self, slices: Vec<&mut [T]>, f: F) -> Result<()>
    where
        F: Fn(usize, &mut [T]) -> Result<()> + Sync,
    {
        // One lock per part, only ever taken by the thread that claimed that part: never
        // contended, and it keeps this free of unsafe code.
        let slots: Vec<Mutex<&mut [T]>> = slices.into_iter().map(Mutex::new).collect();
        self.try_run(slots.len(), |i| {
            let mut slot = slots[i].lock().unwrap_or_else(|e| e.into_inner());
            f(i, &mut slot)
        })
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_part_runs_exactly_once_with_more_parts_than_threads() {
        for threads in [1, 2, 3, 8] {
            let team = Team::new(threads).unwrap();
            assert_eq!(team.threads(), threads);
            for n in [0, 1, 2, 3, 7, 64, 1000] {
                for _ in 0..20 {
                    let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                    team.run(n, |i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(
                        hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                        "threads {threads}, {n} parts"
                    );
                }
            }
        }
    }

    #[test]
    fn slices_are_written_by_their_parts_and_errors_come_back() {
        let team = Team::new(2).unwrap();
        let mut data = vec![0usize; 100];
        let slices: Vec<&mut [usize]> = data.chunks_mut(7).collect();
        team.try_for_each_slice(slices, |i, s| {
            s.iter_mut().for_each(|v| *v = i);
            Ok(())
        })
        .unwrap();
        assert!(data.iter().enumerate().all(|(j, &v)| v == j / 7));
        let r = team.try_run(10, |i| {
            if i == 3 {
                Err(Error::Invalid("part 3".into()))
            } else {
                Ok(())
            }
        });
        assert!(r.unwrap_err().to_string().contains("part 3"));
    }

    #[test]
    fn a_nested_or_concurrent_run_does_its_parts_itself() {
        let team = Arc::new(Team::new(2).unwrap());
        let total = AtomicUsize::new(0);
        team.run(4, |_| {
            team.run(5, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 20);
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let team = team.clone();
                std::thread::spawn(move || {
                    let count = AtomicUsize::new(0);
                    for _ in 0..200 {
                        team.run(9, |_| {
                            count.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    count.load(Ordering::Relaxed)
                })
            })
            .collect();
        for c in callers {
            assert_eq!(c.join().unwrap(), 1800);
        }
    }

    #[test]
    fn a_panicking_part_is_raised_by_run_and_the_team_still_works() {
        let team = Team::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(8, |i| {
                if i == 5 {
                    panic!("part 5");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        team.run(8, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn workers_that_parked_wake_for_the_next_job() {
        let team = Team::new(3).unwrap();
        for _ in 0..3 {
            std::thread::sleep(SPIN * 3);
            let count = AtomicUsize::new(0);
            team.run(30, |_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), 30);
        }
    }
}
