//! One read-only view of a checkpoint file: a memory map when the OS allows it, positioned
//! reads otherwise (network filesystems, `/proc` files, or when forced).

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

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
