//! Float32 arrays in NumPy's `.npy` format: what `--dump-logits` writes (readable by
//! `numpy.load`) and how the reference logits from `tools/make_refs.py` are read back.
//!
//! Only what those need: little-endian `float32`, C order, format versions 1 to 3.

use crate::error::{Error, Result};
use std::path::Path;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A float32 array and its shape (outermost first).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// The values in C (row-major) order.
    pub data: Vec<f32>,
}

impl NpyArray {
    /// Row `i` of a 2-D array.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        match self.shape.as_slice() {
            [rows, cols] if i < *rows => Some(&self.data[i * cols..(i + 1) * cols]),
            _ => None,
        }
    }
}

/// Writes `data` with `shape` as a version 1.0 `.npy` file of little-endian float32.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(Error::Npy(format!(
            "{}: shape {shape:?} holds {count} values, {} given",
            path.display(),
            data.len()
        )));
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic, version and length take 10 bytes; pad so the data starts 64-byte aligned.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| Error::Npy(format!("{}: shape {shape:?} too long", path.display())))?;
    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| Error::Npy(format!("{}: {e}", path.display())))
}

/// Reads a `.npy` file of little-endian float32 in C order.
pub fn read_f32(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Npy(format!("{}: {e}", path.display())))?;
    parse_f32(&bytes).map_err(|reason| Error::Npy(format!("{}: {reason}", path.display())))
}

/// Parses the bytes of a `.npy` file of little-endian float32 in C order.
pub fn parse_f32(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("header runs past the end of the file")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or(format!("header has no '{key}'"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    if !field("descr")?.starts_with("'<f4'") {
        return Err(format!(
            "only little-endian float32 ('<f4') is read; header: {header}"
        ));
    }
    if !field("fortran_order")?.starts_with("False") {
        return Err("only C order is read (fortran_order is not False)".into());
    }
    let shape_text = field("shape")?;
    let close = shape_text.find(')').ok_or("shape is not a tuple")?;
    let shape = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("shape overflows")?;
    let data = &bytes[start + header_len..];
    if Some(data.len()) != count.checked_mul(4) {
        return Err(format!(
            "shape {shape:?} needs {count} float32 values, the file holds {} bytes of data",
            data.len()
        ));
    }
    let data = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NpyArray { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_aligns_data_to_64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![3usize], vec![2, 3], vec![1, 2, 2]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let path = dir.path().join("a.npy");
            write_f32(&path, &shape, &data).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!((bytes.len() - n * 4) % 64, 0);
            let back = read_f32(&path).unwrap();
            assert_eq!(back.shape, shape);
            assert_eq!(back.data, data);
        }
    }

    #[test]
    fn wrong_count_and_other_dtypes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_f32(dir.path().join("a.npy"), &[2, 2], &[1.0]).is_err());
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 8]);
        assert!(parse_f32(&bytes).unwrap_err().contains("<f4"));
        assert!(parse_f32(b"not numpy").is_err());
    }
}
