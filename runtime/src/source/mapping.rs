//! One read-only view of a checkpoint file: a memory map when the OS allows it, positioned
//! reads otherwise (network filesystems, `/proc` files, or when forced).
//!
//! # Files that change while open
//!
//! A mapped page past the end of a file that was truncated after it was mapped raises
//! `SIGBUS` when touched. So that a checkpoint truncated or rewritten by another process
//! gives an error naming the file instead of a signal:
//!
//! - Every load first compares the open file's size and modification time (`fstat` on the
//!   descriptor kept open) with what they were at open, and refuses with
//!   [`Error::Changed`] when they differ ([`Mapping::check_unchanged`]).
//! - Mapped pages are brought in with `MADV_POPULATE_READ` (Linux 5.14+), which reports a
//!   page past the end of the file as an error rather than a signal; older kernels fall
//!   back to touching the pages. Copies ([`Mapping::read_exact_at`]) are positioned reads,
//!   which report a short file as an error.
//!
//! What remains: a zero-copy tensor (a mapped view) that is already resident can still
//! raise `SIGBUS` when a kernel reads it after the file was truncated below it, because the
//! kernel drops those pages from every mapping. Replacing the file by a rename is harmless:
//! the open descriptor and the map keep the old file's bytes.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The smallest page size of the platforms lazyforge runs on; touching one byte per `PAGE`
/// faults in every page, and larger pages are only touched more than once.
const PAGE: usize = 4096;

/// Drops `file`'s clean pages from the OS page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`).
#[cfg(target_os = "linux")]
pub fn drop_page_cache(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own for the duration of the call; it
    // reads or writes no memory of ours.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// How a [`Mapping`] reaches the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapPolicy {
    /// Memory-map, falling back to positioned reads if mapping fails.
    #[default]
    Auto,
    /// Never map; every access is a positioned read into an owned buffer.
    ForceRead,
}

enum Backing {
    /// The map, and the file kept open to check it has not changed and to copy from it.
    Mapped(memmap2::Mmap, File),
    Read(File),
    /// Bytes already in memory (fuzzing and tests): nothing can change under them.
    Memory(AlignedBytes),
}

/// What identifies the file's contents as they were when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(file: &File) -> std::io::Result<Stamp> {
        let meta = file.metadata()?;
        Ok(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// A read-only checkpoint file. Shared (`Arc<Mapping>`) by every tensor that lives in it.
pub struct Mapping {
    path: PathBuf,
    len: u64,
    backing: Backing,
    opened: Stamp,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl Mapping {
    /// Opens `path` under `policy`. Costs an `open`, an `fstat` and (usually) an `mmap`: no
    /// file data is read.
    pub fn open(path: impl AsRef<Path>, policy: MapPolicy) -> Result<Mapping> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let opened = Stamp::of(&file).map_err(|e| Error::io(path, e))?;
        let len = opened.len;
        let backing = match policy {
            MapPolicy::ForceRead => Backing::Read(file),
            // An empty file cannot be mapped on every OS; reads handle it uniformly.
            MapPolicy::Auto if len == 0 => Backing::Read(file),
            MapPolicy::Auto => {
                // SAFETY: the map is read-only and we never hand out a `&mut`. Another
                // process may still truncate or rewrite the file: loads check the file's
                // size and time first and fault pages in with a call that reports a
                // missing page instead of raising SIGBUS (see the module docs for the
                // window that remains); the bytes themselves are plain `u8`s, valid
                // whatever they hold.
                match unsafe { memmap2::Mmap::map(&file) } {
                    Ok(map) => Backing::Mapped(map, file),
                    Err(_) => Backing::Read(file),
                }
            }
        };
        Ok(Mapping {
            path: path.to_path_buf(),
            len,
            backing,
            opened,
        })
    }

    /// A mapping over bytes already in memory, named `path` in messages. Used to parse
    /// untrusted bytes without a file (fuzzing).
    pub(crate) fn from_bytes(path: impl Into<PathBuf>, bytes: &[u8]) -> Mapping {
        Mapping {
            path: path.into(),
            len: bytes.len() as u64,
            backing: Backing::Memory(AlignedBytes::from_slice(bytes)),
            opened: Stamp {
                len: bytes.len() as u64,
                modified: None,
            },
        }
    }

    /// Errors ([`Error::Changed`], naming the file) when the open file's size or
    /// modification time differs from what it was at open: it was truncated, extended or
    /// rewritten since, and the offsets read at open no longer describe it. Costs one
    /// `fstat`.
    pub fn check_unchanged(&self) -> Result<()> {
        let file = match &self.backing {
            Backing::Mapped(_, f) | Backing::Read(f) => f,
            Backing::Memory(_) => return Ok(()),
        };
        let now = Stamp::of(file).map_err(|e| Error::io(&self.path, e))?;
        if now == self.opened {
            return Ok(());
        }
        let reason = if now.len != self.opened.len {
            format!(
                "it was {} bytes when opened and is {} bytes now",
                self.opened.len, now.len
            )
        } else {
            "it was modified after it was opened".to_string()
        };
        Err(Error::Changed {
            path: self.path.clone(),
            reason,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes are memory-mapped (zero-copy views are possible).
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped(..) | Backing::Memory(_))
    }

    /// The mapped bytes `offset..offset+len`, or `None` when the file is not mapped.
    /// Errors when the range is outside the file.
    pub fn mapped_slice(&self, offset: u64, len: usize) -> Result<Option<&[u8]>> {
        let range = self.check_range(offset, len)?;
        Ok(match &self.backing {
            Backing::Mapped(m, _) => Some(&m[range]),
            Backing::Memory(b) => Some(&b.as_slice()[range]),
            Backing::Read(_) => None,
        })
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`. A mapped file is copied
    /// with a positioned read too, not from the map, so that a file truncated since it was
    /// opened is an error (naming the file), never a `SIGBUS`.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let range = self.check_range(offset, buf.len())?;
        match &self.backing {
            Backing::Memory(b) => buf.copy_from_slice(&b.as_slice()[range]),
            Backing::Mapped(_, f) | Backing::Read(f) => {
                read_exact_at(f, buf, offset).map_err(|e| self.read_error(offset, buf.len(), e))?
            }
        }
        Ok(())
    }

    /// A failed positioned read: a file that ends early has changed since it was opened
    /// (offsets were checked against its length then).
    fn read_error(&self, offset: u64, len: usize, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            if let Err(changed) = self.check_unchanged() {
                return changed;
            }
            return Error::Changed {
                path: self.path.clone(),
                reason: format!("it ends before byte {}", offset + len as u64),
            };
        }
        Error::io(&self.path, e)
    }

    /// Reads `len` bytes at `offset` into a new 16-byte-aligned buffer.
    pub fn read_to_aligned(&self, offset: u64, len: usize) -> Result<AlignedBytes> {
        let mut out = AlignedBytes::zeroed(len);
        self.read_exact_at(offset, out.as_mut_slice())?;
        Ok(out)
    }

    /// Brings the mapped pages of `offset..offset+len` into memory, so that later reads do
    /// not fault. Returns the time it took; a no-op for positioned reads.
    ///
    /// First checks that the file has not changed since it was opened
    /// ([`Mapping::check_unchanged`]). On Linux 5.14+ the pages are populated with
    /// `MADV_POPULATE_READ`, which reports pages past the end of a file truncated since
    /// (a race with the check) as [`Error::Changed`] instead of raising `SIGBUS`; elsewhere
    /// the kernel is asked to read ahead and one byte per page is touched.
    pub fn fault_in(&self, offset: u64, len: usize) -> Result<Duration> {
        let range = self.check_range(offset, len)?;
        let Backing::Mapped(m, _) = &self.backing else {
            return Ok(Duration::ZERO);
        };
        self.check_unchanged()?;
        self.fault_in_unchecked(m, range)
    }

    /// [`Mapping::fault_in`] without the check that the file is unchanged.
    fn fault_in_unchecked(
        &self,
        m: &memmap2::Mmap,
        range: std::ops::Range<usize>,
    ) -> Result<Duration> {
        let start = Instant::now();
        if range.is_empty() {
            return Ok(Duration::ZERO);
        }
        #[cfg(target_os = "linux")]
        match m.advise_range(memmap2::Advice::PopulateRead, range.start, range.len()) {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                return Err(self
                    .check_unchanged()
                    .err()
                    .unwrap_or_else(|| Error::Changed {
                        path: self.path.clone(),
                        reason: format!(
                            "bytes {}..{} can no longer be read from it",
                            range.start, range.end
                        ),
                    }))
            }
            // EINVAL: a kernel before 5.14; touch the pages below.
            Err(_) => {}
        }
        #[cfg(unix)]
        // Advice is a hint: a kernel that refuses it still faults the pages in below.
        let _ = m.advise_range(memmap2::Advice::WillNeed, range.start, range.len());
        let bytes = &m[range];
        let mut sum = 0u8;
        for i in (0..bytes.len()).step_by(PAGE) {
            sum = sum.wrapping_add(bytes[i]);
        }
        if let Some(&last) = bytes.last() {
            sum = sum.wrapping_add(last);
        }
        std::hint::black_box(sum);
        Ok(start.elapsed())
    }

    /// Gives back the memory of the whole pages inside `offset..offset+len`, so the
    /// process's resident set really shrinks; a later read faults them in again from the
    /// page cache or the file. Partial pages at either end (shared with neighbouring
    /// tensors) are kept. A no-op for positioned reads.
    pub fn drop_pages(&self, offset: u64, len: usize) -> Result<()> {
        let range = self.check_range(offset, len)?;
        let Backing::Mapped(m, _) = &self.backing else {
            return Ok(());
        };
        let base = m.as_ptr() as usize;
        let first = (base + range.start).next_multiple_of(PAGE) - base;
        let end = (base + range.end) / PAGE * PAGE - base;
        if end <= first {
            return Ok(());
        }
        #[cfg(not(unix))]
        return Ok(());
        #[cfg(unix)]
        // SAFETY: the mapping is a read-only shared map of a file (never MAP_PRIVATE with
        // writes), so MADV_DONTNEED discards no data: the pages are re-read from the file on
        // the next access, and every `&[u8]` handed out over them stays valid and sees the
        // same bytes. The range is inside the mapping (checked above) and page-aligned.
        unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first) }
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Drops the file's pages from the operating system's page cache (for measuring cold
    /// starts honestly); pages mapped by this or another process may stay. A no-op where
    /// the OS has no such call.
    pub fn drop_page_cache(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        {
            let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
            drop_page_cache(&file).map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>> {
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= self.len => Ok(offset as usize..end as usize),
            _ => Err(Error::Corrupt {
                path: self.path.clone(),
                format: "checkpoint",
                offset,
                reason: format!(
                    "{len} bytes at offset {offset} run past the end of the file ({} bytes)",
                    self.len
                ),
            }),
        }
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// An owned byte buffer aligned to 16 bytes, so it can be viewed as `f32`/`f16` slices.
#[derive(Clone, Default)]
pub struct AlignedBytes {
    words: Vec<u128>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes {
            words: vec![0u128; len.div_ceil(16)],
            len,
        }
    }

    /// A copy of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> AlignedBytes {
        let mut out = AlignedBytes::zeroed(bytes.len());
        out.as_mut_slice().copy_from_slice(bytes);
        out
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The race the size check cannot close: the file is cut after the check and before
    /// the pages are touched. Populating reports it instead of raising SIGBUS.
    #[test]
    fn faulting_in_pages_past_a_new_end_of_file_is_an_error_not_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        std::fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
        let m = Mapping::open(&path, MapPolicy::Auto).unwrap();
        let Backing::Mapped(map, _) = &m.backing else {
            panic!("not mapped");
        };
        if map
            .advise_range(memmap2::Advice::PopulateRead, 0, PAGE)
            .is_err()
        {
            eprintln!("MADV_POPULATE_READ unsupported by this kernel: skipped");
            return;
        }
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(PAGE as u64)
            .unwrap();
        let err = m.fault_in_unchecked(map, 0..64 * 1024).unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err:?}");
        assert!(err.to_string().contains("w.bin"), "{err}");
        // The first page is still in the file.
        m.fault_in_unchecked(map, 0..PAGE).unwrap();
        // And positioned reads past the new end are errors too.
        let mut buf = [0u8; 16];
        let err = m.read_exact_at(2 * PAGE as u64, &mut buf).unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err:?}");
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}
