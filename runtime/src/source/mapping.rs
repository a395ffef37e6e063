//! One read-only view of a checkpoint file: a memory map when the OS allows it, positioned
//! reads otherwise (network filesystems, `/proc` files, or when forced).

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    Mapped(memmap2::Mmap),
    Read(File),
}

/// A read-only checkpoint file. Shared (`Arc<Mapping>`) by every tensor that lives in it.
pub struct Mapping {
    path: PathBuf,
    len: u64,
    backing: Backing,
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
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let backing = match policy {
            MapPolicy::ForceRead => Backing::Read(file),
            // An empty file cannot be mapped on every OS; reads handle it uniformly.
            MapPolicy::Auto if len == 0 => Backing::Read(file),
            MapPolicy::Auto => {
                // SAFETY: the map is read-only and we never hand out a `&mut`. A checkpoint
                // truncated or rewritten by another process while mapped is outside what
                // any mmap-based loader can defend against (same contract as memmap2's
                // docs, safetensors and llama.cpp); we document that checkpoints must not
                // be modified while open.
                match unsafe { memmap2::Mmap::map(&file) } {
                    Ok(map) => Backing::Mapped(map),
                    Err(_) => Backing::Read(file),
                }
            }
        };
        Ok(Mapping {
            path: path.to_path_buf(),
            len,
            backing,
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
        matches!(self.backing, Backing::Mapped(_))
    }

    /// The mapped bytes `offset..offset+len`, or `None` when the file is not mapped.
    /// Errors when the range is outside the file.
    pub fn mapped_slice(&self, offset: u64, len: usize) -> Result<Option<&[u8]>> {
        let range = self.check_range(offset, len)?;
        Ok(match &self.backing {
            Backing::Mapped(m) => Some(&m[range]),
            Backing::Read(_) => None,
        })
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let range = self.check_range(offset, buf.len())?;
        match &self.backing {
            Backing::Mapped(m) => buf.copy_from_slice(&m[range]),
            Backing::Read(f) => {
                read_exact_at(f, buf, offset).map_err(|e| Error::io(&self.path, e))?
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new 16-byte-aligned buffer.
    pub fn read_to_aligned(&self, offset: u64, len: usize) -> Result<AlignedBytes> {
        let mut out = AlignedBytes::zeroed(len);
        self.read_exact_at(offset, out.as_mut_slice())?;
        Ok(out)
    }

    /// Brings the mapped pages of `offset..offset+len` into memory (asks the kernel to read
    /// ahead, then touches one byte per page), so that later reads do not fault. Returns the
    /// time it took; a no-op for positioned reads.
    pub fn fault_in(&self, offset: u64, len: usize) -> Result<Duration> {
        let range = self.check_range(offset, len)?;
        let Backing::Mapped(m) = &self.backing else {
            return Ok(Duration::ZERO);
        };
        let start = Instant::now();
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
        let Backing::Mapped(m) = &self.backing else {
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

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}
