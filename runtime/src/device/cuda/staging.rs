//! The pinned staging ring: host-to-device copies go through a few page-locked buffers
//! (4 x 8 MiB), never straight from pageable (or memory-mapped) memory, which the driver
//! would stage through its own small buffer at a fraction of the bus bandwidth. While buffer
//! `i` is being copied on the copy stream, the host fills buffer `i + 1`; a buffer is refilled
//! only once the copy that used it has completed (its event).

use cudarc::driver::{
    result as dr, CudaContext, CudaEvent, CudaStream, DriverError, PinnedHostSlice,
};
use std::sync::Arc;

/// Buffers in the ring.
pub(super) const BUFFERS: usize = 4;
/// Bytes per buffer.
pub(super) const BUFFER_BYTES: usize = 8 << 20;

/// The ring: pinned buffers and, per buffer, the event of the last copy that read it.
pub(super) struct Staging {
    buffers: Vec<(PinnedHostSlice<u8>, CudaEvent)>,
    next: usize,
}

impl Staging {
    pub(super) fn new(ctx: &Arc<CudaContext>) -> Result<Staging, DriverError> {
        let mut buffers = Vec::with_capacity(BUFFERS);
        for _ in 0..BUFFERS {
            // SAFETY: the buffer is only read by a copy after the host has written the bytes
            // that copy reads.
            let pinned = unsafe { ctx.alloc_pinned::<u8>(BUFFER_BYTES) }?;
            buffers.push((pinned, ctx.new_event(None)?));
        }
        Ok(Staging { buffers, next: 0 })
    }

    /// Copies `src` to device address `dst` (at least `src.len()` bytes) on `stream`; returns
    /// once every copy is queued (the caller orders later work after `stream`).
    pub(super) fn upload(
        &mut self,
        src: &[u8],
        dst: u64,
        stream: &Arc<CudaStream>,
    ) -> Result<(), DriverError> {
        let mut offset = 0u64;
        for chunk in src.chunks(BUFFER_BYTES) {
            let (pinned, done) = &mut self.buffers[self.next];
            self.next = (self.next + 1) % BUFFERS;
            // The copy that last read this buffer must be finished before it is rewritten.
            done.synchronize()?;
            let staged = &mut pinned.as_mut_slice()?[..chunk.len()];
            staged.copy_from_slice(chunk);
            // SAFETY: `staged` is page-locked and stays untouched until `done` completes (the
            // next use of this buffer waits for it); the destination range lies in the
            // caller's allocation of at least `src.len()` bytes.
            unsafe { dr::memcpy_htod_async(dst + offset, &*staged, stream.cu_stream()) }?;
            done.record(stream)?;
            offset += chunk.len() as u64;
        }
        Ok(())
    }
}
