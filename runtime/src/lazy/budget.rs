//! [`Budget`]: how much of a device's memory weights may occupy, as written on a command
//! line (`512MiB`, `2GB`, `60%`, `1000000`).

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A memory budget: a number of bytes, or a share of the model's own bytes.
///
/// ```
/// use lazyforge::lazy::Budget;
/// assert_eq!("512MiB".parse::<Budget>()?.bytes_for(0), 512 << 20);
/// assert_eq!("2GB".parse::<Budget>()?.bytes_for(0), 2_000_000_000);
/// assert_eq!("60%".parse::<Budget>()?.bytes_for(1000), 600);
/// assert!("60 parsecs".parse::<Budget>().is_err());
/// # Ok::<(), lazyforge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// This many bytes.
    Bytes(u64),
    /// This share (0 < share, 1.0 = 100%) of the model's bytes.
    Share(f64),
}

impl Budget {
    /// The budget in bytes for a model of `model_bytes` bytes.
    pub fn bytes_for(self, model_bytes: u64) -> u64 {
        match self {
            Budget::Bytes(b) => b,
            Budget::Share(s) => (model_bytes as f64 * s).floor() as u64,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Bytes(b) => write!(f, "{b} bytes"),
            Budget::Share(s) => write!(f, "{}% of the model", s * 100.0),
        }
    }
}

impl FromStr for Budget {
    type Err = Error;

    /// Parses bytes (`1048576`), a size with a unit (`KB`, `MB`, `GB`, `TB` in powers of
    /// 1000; `KiB`, `MiB`, `GiB`, `TiB` in powers of 1024; `B`), or a percentage (`60%`).
    fn from_str(s: &str) -> Result<Budget> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "budget '{s}': {why}; write bytes (1048576), a size (512MiB, 2GB) or a share \
                 of the model (60%)"
            ))
        };
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad("not a number"))?;
            if !(v.is_finite() && v > 0.0) {
                return Err(bad("a share must be above 0%"));
            }
            return Ok(Budget::Share(v / 100.0));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num.parse().map_err(|_| bad("not a number"))?;
        let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" | "k" => 1e3,
            "mb" | "m" => 1e6,
            "gb" | "g" => 1e9,
            "tb" | "t" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(bad("unknown unit")),
        };
        let bytes = v * scale;
        if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
            return Err(bad("out of range"));
        }
        Ok(Budget::Bytes(bytes as u64))
    }
}
