//! Where tensors live, and the backend that computes on them. The CPU is always present
//! ([`Cpu`]); CUDA and HIP backends arrive behind the `cuda` and `hip` features, filling in
//! [`Backend`] and [`DeviceMemory`].

mod backend;
mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "hip")]
pub mod hip;
pub mod kernels;
mod tensor;

pub use backend::{backend, Backend};
pub use cpu::Cpu;
pub use tensor::{DeviceBuffer, DeviceMemory, Storage, Tensor};

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Device {
    /// Host memory and CPU kernels.
    #[default]
    Cpu,
    /// NVIDIA GPU number `n`.
    Cuda(usize),
    /// AMD GPU number `n`.
    Hip(usize),
}

impl Device {
    /// Ok when this build and machine can place tensors on this device.
    pub fn ensure_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => cuda::backend(n).map(|_| ()),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(Error::Device {
                device: self.to_string(),
                reason: "this build of lazyforge has no CUDA backend (enable the `cuda` feature)"
                    .into(),
            }),
            #[cfg(feature = "hip")]
            Device::Hip(n) => hip::open(n),
            #[cfg(not(feature = "hip"))]
            Device::Hip(_) => Err(Error::Device {
                device: self.to_string(),
                reason: "this build of lazyforge has no HIP backend (enable the `hip` feature)"
                    .into(),
            }),
        }
    }

    /// The backend that computes on this device (see [`backend`]).
    pub fn backend(self) -> Result<&'static dyn Backend> {
        backend(self)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Hip(n) => write!(f, "hip:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = Error;

    /// Parses `cpu`, `cuda`, `cuda:N`, `hip`, `hip:N`.
    fn from_str(s: &str) -> Result<Device> {
        let bad = || {
            Error::Invalid(format!(
                "unknown device '{s}': expected cpu, cuda, cuda:N, hip or hip:N"
            ))
        };
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (k, i.parse::<usize>().map_err(|_| bad())?),
            None => (s, 0),
        };
        match kind.to_ascii_lowercase().as_str() {
            "cpu" if !s.contains(':') => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(index)),
            "hip" => Ok(Device::Hip(index)),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert_eq!("hip".parse::<Device>().unwrap(), Device::Hip(0));
        assert!("tpu:0".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
