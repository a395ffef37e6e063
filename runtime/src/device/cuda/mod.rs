//! [`Cuda`]: the [`Backend`] of an NVIDIA GPU (feature `cuda`), through cudarc with the
//! driver, NVRTC and cuBLAS loaded at run time, so the build needs no CUDA toolkit and a
//! machine without a driver gets an error, never a panic.
//!
//! - **Memory**: every device tensor is one device allocation ([`CudaMemory`]) in the
//!   tensor's stored dtype; quantized weights keep their ggml blocks on the device.
//! - **Kernels**: the CUDA C sources of [`kernels`](super::kernels), compiled once per device
//!   with NVRTC for the device's compute capability, without fast math.
//! - **Uploads**: through a ring of pinned staging buffers ([`staging`]) on a copy stream
//!   that the compute stream then waits for.
//! - **Prefill**: weights dequantized on the device tile by tile into `f32`, multiplied with
//!   cuBLAS SGEMM in pedantic math mode (no TF32), or with the sources' own tiled kernel when
//!   cuBLAS is not found.
//!
//! Everything here is compiled and checked on hosts without a GPU; see docs/gpu.md for what
//! has and has not run on a device.

mod staging;

use super::kernels;
use super::{Backend, Device, DeviceBuffer, DeviceMemory, Storage, Tensor};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{Activation, KvCache, RopeStyle, RopeTable};
use crate::source::AlignedBytes;
use cudarc::driver::{
    result as dr, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Bytes of `f32` a dequantized weight tile may take during prefill (64 MiB).
const TILE_BYTES: usize = 64 << 20;
/// Threads per block of the element-wise kernels.
const THREADS: u32 = 256;

/// Device memory allocated by [`Cuda`]: what a CUDA tensor's [`DeviceBuffer`] holds.
pub struct CudaMemory {
    device: Device,
    len: usize,
    buf: CudaSlice<u8>,
}

impl fmt::Debug for CudaMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaMemory")
            .field("device", &self.device)
            .field("len", &self.len)
            .finish()
    }
}

impl DeviceMemory for CudaMemory {
    fn device(&self) -> Device {
        self.device
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The CUDA backend of one device: its context, a compute stream and a copy stream, the
/// compiled kernels, cuBLAS (when found) and the staging ring.
pub struct Cuda {
    device: Device,
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    copy: Arc<CudaStream>,
    functions: HashMap<String, CudaFunction>,
    blas: Option<Mutex<cudarc::cublas::CudaBlas>>,
    staging: Mutex<staging::Staging>,
}

impl fmt::Debug for Cuda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cuda")
            .field("device", &self.device)
            .field("name", &self.name)
            .field("cublas", &self.blas.is_some())
            .finish()
    }
}

/// A kernel argument.
#[derive(Clone, Copy)]
enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// The backend of CUDA device `n`, made on first use (context, kernels compiled) and kept for
/// the process; an error naming the device when there is no driver, no such device, or the
/// kernels do not compile.
pub(crate) fn backend(n: usize) -> Result<&'static Cuda> {
    static OPENED: Mutex<Vec<(usize, std::result::Result<&'static Cuda, Error>)>> =
        Mutex::new(Vec::new());
    let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, r)) = opened.iter().find(|(i, _)| *i == n) {
        return r.clone();
    }
    let r = open(n).map(|c| &*Box::leak(Box::new(c)));
    opened.push((n, r.clone()));
    r
}

fn device_error(n: usize, reason: impl Into<String>) -> Error {
    Error::Device {
        device: format!("cuda:{n}"),
        reason: reason.into(),
    }
}

/// Probes for the libraries (cudarc's loader panics on a missing one), then opens the device
/// with any panic caught and turned into an error.
fn open(n: usize) -> Result<Cuda> {
    // SAFETY: these only try to dlopen the libraries by their usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(device_error(
            n,
            "no NVIDIA driver: libcuda.so.1 was not found",
        ));
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(device_error(
            n,
            "NVRTC (libnvrtc.so.13) was not found, so the kernels cannot be compiled; put its \
             directory on LD_LIBRARY_PATH (tools/fetch_nvrtc.sh installs one)",
        ));
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open_device(n))) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            Err(device_error(
                n,
                format!("the CUDA libraries failed to load: {what}"),
            ))
        }
    }
}

fn open_device(n: usize) -> Result<Cuda> {
    let err = |what: &str, e: &dyn fmt::Display| device_error(n, format!("{what}: {e}"));
    let count = CudaContext::device_count()
        .map_err(|e| device_error(n, format!("no CUDA device (the driver says: {e})")))?;
    if count <= 0 {
        return Err(device_error(n, "no CUDA device"));
    }
    if n >= count as usize {
        return Err(device_error(
            n,
            format!(
                "no such CUDA device: {count} found (cuda:0 to cuda:{})",
                count - 1
            ),
        ));
    }
    let ctx = CudaContext::new(n).map_err(|e| err("creating the context", &e))?;
    // The backend orders work itself: one compute stream, a copy stream joined with events.
    // SAFETY: no allocation, stream or event exists on this context yet.
    unsafe { ctx.disable_event_tracking() };
    let name = ctx.name().unwrap_or_else(|_| "unknown".into());
    let stream = ctx.new_stream().map_err(|e| err("creating a stream", &e))?;
    let copy = ctx.new_stream().map_err(|e| err("creating a stream", &e))?;
    let (major, minor) = ctx
        .compute_capability()
        .map_err(|e| err("reading the compute capability", &e))?;
    let opts = cudarc::nvrtc::CompileOptions {
        options: vec![
            format!("--gpu-architecture=compute_{major}{minor}"),
            "--std=c++17".into(),
        ],
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(kernels::cuda_source(), opts)
        .map_err(|e| err("compiling the kernels with NVRTC", &e))?;
    let module = ctx
        .load_module(ptx)
        .map_err(|e| err("loading the compiled kernels", &e))?;
    let mut functions = HashMap::new();
    for name in kernels::kernel_names() {
        let f = module
            .load_function(&name)
            .map_err(|e| err(&format!("finding kernel {name}"), &e))?;
        functions.insert(name, f);
    }
    // SAFETY: only tries to dlopen cuBLAS; prefill falls back to the sources' own GEMM.
    let blas = if unsafe { cudarc::cublas::sys::is_culib_present() } {
        let blas = cudarc::cublas::CudaBlas::new(Arc::clone(&stream))
            .map_err(|e| err("creating the cuBLAS handle", &e))?;
        // Full f32: never TF32 tensor cores, whatever NVIDIA_TF32_OVERRIDE says.
        // SAFETY: the handle is valid (just created) and owned by `blas`.
        unsafe {
            cudarc::cublas::sys::cublasSetMathMode(
                *blas.handle(),
                cudarc::cublas::sys::cublasMath_t::CUBLAS_PEDANTIC_MATH,
            )
        }
        .result()
        .map_err(|e| err("setting cuBLAS to pedantic f32 math", &e))?;
        Some(Mutex::new(blas))
    } else {
        None
    };
    let staging = staging::Staging::new(&ctx).map_err(|e| err("allocating pinned staging", &e))?;
    Ok(Cuda {
        device: Device::Cuda(n),
        name,
        ctx,
        stream,
        copy,
        functions,
        blas,
        staging: Mutex::new(staging),
    })
}

impl Cuda {
    /// The device's name, as the driver reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether prefill products use cuBLAS (else the sources' own tiled kernel).
    pub fn has_cublas(&self) -> bool {
        self.blas.is_some()
    }

    /// Makes the device's context current on this thread (raw driver and cuBLAS calls need
    /// it; cudarc's own calls do it themselves). Loads may run on the I/O thread.
    fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| self.fail("making the context current", e))
    }

    fn fail(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::Device {
            device: self.device.to_string(),
            reason: format!("{what}: {e}"),
        }
    }

    /// `len` uninitialized bytes on the device (at least one byte is allocated).
    fn alloc(&self, len: usize) -> Result<CudaMemory> {
        // SAFETY: the bytes are written (by a copy or a kernel) before they are read; the
        // callers that read first use `alloc_zeros`.
        let buf = unsafe { self.stream.alloc::<u8>(len.max(1)) }
            .map_err(|e| self.fail(&format!("allocating {len} bytes"), e))?;
        Ok(CudaMemory {
            device: self.device,
            len,
            buf,
        })
    }

    fn alloc_zeros(&self, len: usize) -> Result<CudaMemory> {
        let buf = self
            .stream
            .alloc_zeros::<u8>(len.max(1))
            .map_err(|e| self.fail(&format!("allocating {len} bytes"), e))?;
        Ok(CudaMemory {
            device: self.device,
            len,
            buf,
        })
    }

    fn ptr(&self, m: &CudaMemory) -> u64 {
        m.buf.device_ptr(&self.stream).0
    }

    /// A tensor over `m`.
    fn tensor(&self, shape: Vec<usize>, dtype: DType, m: CudaMemory) -> Result<Tensor> {
        Tensor::from_storage(
            shape,
            dtype,
            Storage::Device(DeviceBuffer::new(Arc::new(m))),
        )
    }

    /// An `f32` tensor of `shape`, uninitialized, and its device pointer.
    fn output(&self, shape: &[usize]) -> Result<(Tensor, u64)> {
        let n: usize = shape.iter().product();
        let m = self.alloc(n * 4)?;
        let p = self.ptr(&m);
        Ok((self.tensor(shape.to_vec(), DType::F32, m)?, p))
    }

    /// The memory of `t`, which must be this device's.
    fn memory<'a>(&self, t: &'a Tensor, what: &str) -> Result<&'a CudaMemory> {
        let mismatch = || Error::DeviceMismatch {
            op: format!("Cuda::{what}"),
            found: format!("{what} on {}, the backend on {}", t.device(), self.device),
        };
        match t.storage() {
            Storage::Device(b) if b.device() == self.device => {
                b.downcast_ref::<CudaMemory>().ok_or_else(mismatch)
            }
            _ => Err(mismatch()),
        }
    }

    fn dptr(&self, t: &Tensor, what: &str) -> Result<u64> {
        Ok(self.ptr(self.memory(t, what)?))
    }

    /// The device pointer of `x` for writing in place; a buffer shared with another handle is
    /// copied first, so that writing never changes a clone.
    fn dptr_mut(&self, x: &mut Tensor, what: &str) -> Result<u64> {
        let shared = match x.storage() {
            Storage::Device(b) => Arc::strong_count(b.memory()) > 1,
            _ => false,
        };
        if shared {
            self.bind()?;
            let len = x.byte_len();
            let src = self.dptr(x, what)?;
            let m = self.alloc(len)?;
            // SAFETY: both ranges are `len` bytes of live allocations on this context.
            unsafe { dr::memcpy_dtod_async(self.ptr(&m), src, len, self.stream.cu_stream()) }
                .map_err(|e| self.fail("copying a shared tensor", e))?;
            *x = self.tensor(x.shape().to_vec(), x.dtype(), m)?;
        }
        self.dptr(x, what)
    }

    /// Small host data (positions, angles) as a fresh device buffer.
    fn upload_small<T: bytemuck::Pod>(&self, data: &[T]) -> Result<CudaMemory> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.bind()?;
        let m = self.alloc(bytes.len())?;
        if !bytes.is_empty() {
            // SAFETY: the destination holds `bytes.len()` bytes; a pageable source is copied
            // to the driver's staging before the call returns.
            unsafe { dr::memcpy_htod_async(self.ptr(&m), bytes, self.stream.cu_stream()) }
                .map_err(|e| self.fail("copying to the device", e))?;
        }
        Ok(m)
    }

    fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &[Arg]) -> Result<()> {
        let f = self
            .functions
            .get(kernel)
            .ok_or_else(|| self.fail("no such kernel", kernel))?;
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::Ptr(p) => b.arg(p),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
            };
        }
        // SAFETY: every kernel's parameters are the ones listed in kernels.cu for it, and the
        // callers pass pointers to allocations of the sizes the launch shape covers.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| self.fail(&format!("launching {kernel}"), e))
    }

    /// A launch of one thread per value for `n` values.
    fn launch_n(&self, kernel: &str, n: usize, args: &[Arg]) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let blocks = u32::try_from(n.div_ceil(THREADS as usize))
            .map_err(|_| self.fail("too many values for one launch", n))?;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        self.launch(kernel, cfg, args)
    }

    /// `rows` rows of `w` (from `row0`, or the rows `ids` when given) dequantized into `f32`
    /// at `out`.
    fn dequant_rows(
        &self,
        w: &Tensor,
        ids: Option<u64>,
        row0: usize,
        rows: usize,
        out: u64,
    ) -> Result<()> {
        let k = w.shape().last().copied().unwrap_or(1);
        let suffix = self.suffix(w.dtype(), "dequantize")?;
        let chunks = k.div_ceil(32);
        self.launch_n(
            &format!("lf_dequant_rows_{suffix}"),
            rows * chunks,
            &[
                Arg::Ptr(self.dptr(w, "w")?),
                Arg::Ptr(ids.unwrap_or(0)),
                Arg::I32(int(row0)?),
                Arg::I32(int(rows)?),
                Arg::I32(int(k)?),
                Arg::I64(w.row_stride_bytes() as i64),
                Arg::Ptr(out),
            ],
        )
    }

    fn suffix(&self, dtype: DType, op: &str) -> Result<&'static str> {
        kernels::suffix(dtype).ok_or_else(|| Error::Device {
            device: self.device.to_string(),
            reason: format!(
                "{op} of {dtype} weights: the GPU kernels read F32, F16, BF16, Q4_0, Q4_1, \
                 Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K"
            ),
        })
    }

    /// A `[d]` parameter (norm weight, bias) as `f32` on the device: its own pointer when it is
    /// `f32`, else a dequantized copy kept alive by the returned memory.
    fn f32_param(&self, t: &Tensor) -> Result<(u64, Option<CudaMemory>)> {
        if t.dtype() == DType::F32 {
            return Ok((self.dptr(t, "parameter")?, None));
        }
        let m = self.alloc(t.elem_count() * 4)?;
        let p = self.ptr(&m);
        let rows = t.elem_count() / t.shape().last().copied().unwrap_or(1).max(1);
        self.dequant_rows(t, None, 0, rows, p)?;
        Ok((p, Some(m)))
    }

    /// `y[n, m] = x[n, k] · wᵀ` for the `f32` weight tile `w` (`[mt, k]`), written to columns
    /// `col0..col0 + mt` of `y`.
    fn gemm(&self, g: Gemm) -> Result<()> {
        let Gemm {
            x,
            w: wp,
            y,
            n,
            mt,
            k,
            m,
            col0,
        } = g;
        if let Some(blas) = &self.blas {
            self.bind()?;
            let blas = blas.lock().unwrap_or_else(|p| p.into_inner());
            let (alpha, beta) = (1.0f32, 0.0f32);
            use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
            // Column-major: Yᵀ (mt x n, ldc = m) = Wᵀᵀ (op T on the k x mt tile) · Xᵀ (k x n).
            // SAFETY: the pointers are live allocations of at least the sizes these
            // dimensions address (the caller allocated them for n, m, k).
            unsafe {
                cudarc::cublas::result::sgemm(
                    *blas.handle(),
                    CUBLAS_OP_T,
                    CUBLAS_OP_N,
                    int(mt)?,
                    int(n)?,
                    int(k)?,
                    &alpha,
                    wp as *const f32,
                    int(k)?,
                    x as *const f32,
                    int(k)?,
                    &beta,
                    (y as *mut f32).wrapping_add(col0),
                    int(m)?,
                )
            }
            .map_err(|e| self.fail("cuBLAS SGEMM", e))?;
            return Ok(());
        }
        let cfg = LaunchConfig {
            grid_dim: (int(mt.div_ceil(16))? as u32, int(n.div_ceil(16))? as u32, 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        self.launch(
            "lf_gemm_xwt",
            cfg,
            &[
                Arg::Ptr(x),
                Arg::Ptr(wp),
                Arg::Ptr(y),
                Arg::I32(int(n)?),
                Arg::I32(int(mt)?),
                Arg::I32(int(k)?),
                Arg::I32(int(m)?),
                Arg::I32(int(col0)?),
            ],
        )
    }

    fn elementwise(&self, kernel: &str, x: &mut Tensor, extra: &[Arg], tail: &[Arg]) -> Result<()> {
        let n = x.elem_count();
        let mut args = vec![Arg::Ptr(self.dptr_mut(x, "x")?)];
        args.extend_from_slice(extra);
        args.push(Arg::I64(n as i64));
        args.extend_from_slice(tail);
        self.launch_n(kernel, n, &args)
    }
}

/// Operands of one prefill product: device pointers and sizes.
struct Gemm {
    x: u64,
    w: u64,
    y: u64,
    n: usize,
    mt: usize,
    k: usize,
    m: usize,
    col0: usize,
}

/// `v` as a kernel's `int`, or an error.
fn int(v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::Invalid(format!("{v} does not fit the GPU kernels' 32-bit sizes")))
}

impl Backend for Cuda {
    fn device(&self) -> Device {
        self.device
    }

    fn memory_info(&self) -> Option<(u64, u64)> {
        self.ctx.bind_to_thread().ok()?;
        let (free, total) = self.ctx.mem_get_info().ok()?;
        Some((free as u64, total as u64))
    }

    fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let m = self.alloc_zeros(n * 4)?;
        self.tensor(shape.to_vec(), DType::F32, m)
    }

    fn download(&self, t: &Tensor) -> Result<Tensor> {
        let m = self.memory(t, "t")?;
        self.bind()?;
        let len = t.byte_len();
        let storage = if t.dtype() == DType::F32 {
            let mut v = vec![0.0f32; len / 4];
            if len > 0 {
                // SAFETY: `v` holds `len` bytes and the device range is `len` bytes; the stream
                // is synchronized before `v` is read.
                unsafe {
                    dr::memcpy_dtoh_async(
                        bytemuck::cast_slice_mut::<f32, u8>(&mut v),
                        self.ptr(m),
                        self.stream.cu_stream(),
                    )
                }
                .map_err(|e| self.fail("copying to the host", e))?;
            }
            self.stream
                .synchronize()
                .map_err(|e| self.fail("waiting for the copy", e))?;
            Storage::F32(v)
        } else {
            let mut b = AlignedBytes::zeroed(len);
            if len > 0 {
                // SAFETY: as above.
                unsafe {
                    dr::memcpy_dtoh_async(b.as_mut_slice(), self.ptr(m), self.stream.cu_stream())
                }
                .map_err(|e| self.fail("copying to the host", e))?;
            }
            self.stream
                .synchronize()
                .map_err(|e| self.fail("waiting for the copy", e))?;
            Storage::Bytes(b)
        };
        Tensor::from_storage(t.shape().to_vec(), t.dtype(), storage)
    }

    fn upload(&self, t: &Tensor) -> Result<Tensor> {
        let bytes = t.host_bytes()?;
        self.bind()?;
        let m = self.alloc(bytes.len())?;
        let dst = self.ptr(&m);
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        // The copy stream writes memory the compute stream allocated: order it after the
        // allocation, and the compute stream's later kernels after the copy.
        self.copy
            .join(&self.stream)
            .map_err(|e| self.fail("ordering the copy stream", e))?;
        staging
            .upload(bytes, dst, &self.copy)
            .map_err(|e| self.fail("uploading through pinned staging", e))?;
        self.stream
            .join(&self.copy)
            .map_err(|e| self.fail("ordering the compute stream", e))?;
        self.tensor(t.shape().to_vec(), t.dtype(), m)
    }

    fn matvec(&self, w: &Tensor, x: &Tensor) -> Result<Tensor> {
        let (m, k) = w.dims2()?;
        let suffix = self.suffix(w.dtype(), "matvec")?;
        let mut shape = x.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = m;
        }
        let (y, yp) = self.output(&shape)?;
        if m == 0 {
            return Ok(y);
        }
        let cfg = LaunchConfig {
            grid_dim: (int(m.div_ceil(4))? as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        self.launch(
            &format!("lf_matvec_{suffix}"),
            cfg,
            &[
                Arg::Ptr(self.dptr(w, "w")?),
                Arg::Ptr(self.dptr(x, "x")?),
                Arg::Ptr(yp),
                Arg::I32(int(m)?),
                Arg::I32(int(k)?),
                Arg::I64(w.row_stride_bytes() as i64),
            ],
        )?;
        Ok(y)
    }

    fn matmul(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let (m, k) = w.dims2()?;
        let n = match x.shape() {
            &[n, kx] if kx == k => n,
            other => {
                return Err(Error::shape(
                    format!("matmul: x [n, k] against weight {:?}", w.shape()),
                    &[other.first().copied().unwrap_or(0), k],
                    other,
                ))
            }
        };
        if n == 1 {
            return self.matvec(w, x);
        }
        let (y, yp) = self.output(&[n, m])?;
        if n == 0 || m == 0 || k == 0 {
            return Ok(y);
        }
        let xp = self.dptr(x, "x")?;
        if w.dtype() == DType::F32 {
            let w = self.dptr(w, "w")?;
            self.gemm(Gemm {
                x: xp,
                w,
                y: yp,
                n,
                mt: m,
                k,
                m,
                col0: 0,
            })?;
            return Ok(y);
        }
        let tile_rows = (TILE_BYTES / (4 * k)).clamp(1, m);
        let tile = self.alloc(tile_rows * k * 4)?;
        let tp = self.ptr(&tile);
        for row0 in (0..m).step_by(tile_rows) {
            let rows = tile_rows.min(m - row0);
            self.dequant_rows(w, None, row0, rows, tp)?;
            self.gemm(Gemm {
                x: xp,
                w: tp,
                y: yp,
                n,
                mt: rows,
                k,
                m,
                col0: row0,
            })?;
        }
        drop(tile); // freed in stream order, after the last GEMM
        Ok(y)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        let d = norm_dim(x, weight, "rms_norm")?;
        let (wp, _keep) = self.f32_param(weight)?;
        let (y, yp) = self.output(x.shape())?;
        let rows = x.elem_count() / d;
        if rows == 0 {
            return Ok(y);
        }
        let cfg = LaunchConfig {
            grid_dim: (int(rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        self.launch(
            "lf_rms_norm",
            cfg,
            &[
                Arg::Ptr(self.dptr(x, "x")?),
                Arg::Ptr(wp),
                Arg::Ptr(yp),
                Arg::I32(int(d)?),
                Arg::F32(eps),
            ],
        )?;
        Ok(y)
    }

    fn layer_norm(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        let d = norm_dim(x, weight, "layer_norm")?;
        let (wp, _keep_w) = self.f32_param(weight)?;
        let (bp, _keep_b) = match bias {
            Some(b) => {
                norm_dim(x, b, "layer_norm")?;
                self.f32_param(b)?
            }
            None => (0, None),
        };
        let (y, yp) = self.output(x.shape())?;
        let rows = x.elem_count() / d;
        if rows == 0 {
            return Ok(y);
        }
        let cfg = LaunchConfig {
            grid_dim: (int(rows)? as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        self.launch(
            "lf_layer_norm",
            cfg,
            &[
                Arg::Ptr(self.dptr(x, "x")?),
                Arg::Ptr(wp),
                Arg::Ptr(bp),
                Arg::Ptr(yp),
                Arg::I32(int(d)?),
                Arg::F32(eps),
            ],
        )?;
        Ok(y)
    }

    fn rope_in_place(
        &self,
        x: &mut Tensor,
        style: RopeStyle,
        n_heads: usize,
        head_dim: usize,
        positions: &[usize],
        table: &RopeTable,
    ) -> Result<()> {
        if table.rot_dim() > head_dim {
            return Err(Error::Invalid(format!(
                "rope: rotary dimension {} is larger than head_dim {head_dim}",
                table.rot_dim()
            )));
        }
        let half = table.rot_dim() / 2;
        let n = positions.len();
        if n == 0 || n_heads == 0 {
            return Ok(());
        }
        // The table's own f32 angles, row per token: the CPU's numbers exactly.
        let (mut cos, mut sin) = (vec![0.0f32; n * half], vec![0.0f32; n * half]);
        table.for_each_position(positions, |t, c, s| {
            cos[t * half..(t + 1) * half].copy_from_slice(c);
            sin[t * half..(t + 1) * half].copy_from_slice(s);
        });
        let (cm, sm) = (self.upload_small(&cos)?, self.upload_small(&sin)?);
        let xp = self.dptr_mut(x, "x")?;
        self.launch_n(
            "lf_rope",
            n * n_heads * half,
            &[
                Arg::Ptr(xp),
                Arg::Ptr(self.ptr(&cm)),
                Arg::Ptr(self.ptr(&sm)),
                Arg::I32(int(n)?),
                Arg::I32(int(n_heads)?),
                Arg::I32(int(head_dim)?),
                Arg::I32(int(half)?),
                Arg::I32(matches!(style, RopeStyle::SplitHalf) as i32),
            ],
        )
    }

    fn attention(
        &self,
        q: &Tensor,
        positions: &[usize],
        n_heads: usize,
        cache: &KvCache,
        window: Option<usize>,
    ) -> Result<Tensor> {
        let (n_kv, hd) = (cache.n_kv_heads(), cache.head_dim());
        if n_heads == 0 || !n_heads.is_multiple_of(n_kv) {
            return Err(Error::Invalid(format!(
                "attention: n_heads ({n_heads}) must be a positive multiple of n_kv_heads ({n_kv})"
            )));
        }
        if q.elem_count() != positions.len() * n_heads * hd {
            return Err(Error::shape(
                format!("attention: q for {} positions", positions.len()),
                &[positions.len(), n_heads * hd],
                q.shape(),
            ));
        }
        if hd > 256 {
            return Err(Error::Device {
                device: self.device.to_string(),
                reason: format!("attention with head_dim {hd}: the kernel handles up to 256"),
            });
        }
        if window == Some(0) {
            return Err(Error::Invalid(
                "attention: a sliding window must hold at least one position".into(),
            ));
        }
        if let Some(kept) = cache.window() {
            if window.is_none_or(|w| w > kept) {
                return Err(Error::Invalid(format!(
                    "attention: the KV cache keeps a sliding window of {kept} positions; \
                     attending with window {window:?} needs keys it has evicted"
                )));
            }
        }
        // Every query must see a key (the CPU's error, checked on the host's positions).
        let held: Vec<usize> = cache.positions().collect();
        for &p in positions {
            let first = window.map_or(0, |w| (p + 1).saturating_sub(w));
            let i = held.partition_point(|&h| h <= p);
            if i == 0 || held[i - 1] < first {
                return Err(Error::Invalid(format!(
                    "attention: the query at position {p} sees no key (append its own key \
                     before attending)"
                )));
            }
        }
        let slot_pos = cache
            .slot_positions()
            .iter()
            .map(|&p| if p == usize::MAX { Ok(-1) } else { int(p) })
            .collect::<Result<Vec<i32>>>()?;
        let q_pos = positions
            .iter()
            .map(|&p| int(p))
            .collect::<Result<Vec<i32>>>()?;
        let (sp, qp) = (self.upload_small(&slot_pos)?, self.upload_small(&q_pos)?);
        let (out, op) = self.output(q.shape())?;
        if positions.is_empty() {
            return Ok(out);
        }
        let scale = (hd as f64).powf(-0.5) as f32;
        let cfg = LaunchConfig {
            grid_dim: (int(n_heads)? as u32, int(positions.len())? as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        self.launch(
            "lf_attention",
            cfg,
            &[
                Arg::Ptr(self.dptr(q, "q")?),
                Arg::Ptr(self.dptr(cache.keys(), "cache keys")?),
                Arg::Ptr(self.dptr(cache.values(), "cache values")?),
                Arg::Ptr(self.ptr(&sp)),
                Arg::Ptr(self.ptr(&qp)),
                Arg::Ptr(op),
                Arg::I32(int(n_heads)?),
                Arg::I32(int(n_kv)?),
                Arg::I32(int(hd)?),
                Arg::I32(int(cache.allocated_slots())?),
                Arg::I32(int(window.unwrap_or(0))?),
                Arg::F32(scale),
            ],
        )?;
        Ok(out)
    }

    fn kv_append(
        &self,
        cache: &mut KvCache,
        k: &Tensor,
        v: &Tensor,
        positions: &[usize],
    ) -> Result<()> {
        let (n_kv, hd) = (cache.n_kv_heads(), cache.head_dim());
        let n = positions.len() * n_kv * hd;
        if k.elem_count() != n || v.elem_count() != n {
            return Err(Error::shape(
                format!("KvCache::append: k and v for {} positions", positions.len()),
                &[positions.len(), n_kv * hd],
                k.shape(),
            ));
        }
        let (kp, vp) = (self.dptr(k, "k")?, self.dptr(v, "v")?);
        let slots = cache.claim_slots(positions)?;
        if slots.is_empty() {
            return Ok(());
        }
        let slots = slots
            .iter()
            .map(|&s| int(s))
            .collect::<Result<Vec<i32>>>()?;
        let sm = self.upload_small(&slots)?;
        self.launch_n(
            "lf_kv_write",
            n,
            &[
                Arg::Ptr(self.dptr(cache.keys(), "cache keys")?),
                Arg::Ptr(self.dptr(cache.values(), "cache values")?),
                Arg::Ptr(kp),
                Arg::Ptr(vp),
                Arg::Ptr(self.ptr(&sm)),
                Arg::I32(int(positions.len())?),
                Arg::I32(int(n_kv)?),
                Arg::I32(int(hd)?),
                Arg::I32(int(cache.allocated_slots())?),
            ],
        )
    }

    fn activation_in_place(&self, x: &mut Tensor, f: Activation) -> Result<()> {
        let code = match f {
            Activation::Silu => 0,
            Activation::GeluTanh => 1,
            Activation::GeluErf => 2,
        };
        self.elementwise("lf_activation", x, &[], &[Arg::I32(code)])
    }

    fn swiglu_in_place(&self, gate: &mut Tensor, up: &Tensor) -> Result<()> {
        let up = Arg::Ptr(self.dptr(up, "up")?);
        self.elementwise("lf_swiglu", gate, &[up], &[])
    }

    fn geglu_in_place(&self, gate: &mut Tensor, up: &Tensor) -> Result<()> {
        let up = Arg::Ptr(self.dptr(up, "up")?);
        self.elementwise("lf_geglu", gate, &[up], &[])
    }

    fn scale_in_place(&self, x: &mut Tensor, s: f32) -> Result<()> {
        self.elementwise("lf_scale", x, &[Arg::F32(s)], &[])
    }

    fn add_in_place(&self, x: &mut Tensor, y: &Tensor) -> Result<()> {
        let y = Arg::Ptr(self.dptr(y, "y")?);
        self.elementwise("lf_add", x, &[y], &[])
    }

    fn add_bias_in_place(&self, x: &mut Tensor, bias: &Tensor) -> Result<()> {
        let d = bias.elem_count();
        if d == 0 || !x.elem_count().is_multiple_of(d) {
            return Err(Error::Invalid(format!(
                "add_bias_in_place: {} values are not whole rows of the bias's {d}",
                x.elem_count()
            )));
        }
        let (bp, _keep) = self.f32_param(bias)?;
        self.elementwise("lf_add_rows", x, &[Arg::Ptr(bp), Arg::I32(int(d)?)], &[])
    }

    fn embedding(&self, table: &Tensor, ids: &[u32]) -> Result<Tensor> {
        let (vocab, hidden) = table.dims2()?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "embedding: token id {id} is out of range for a vocabulary of {vocab} tokens"
            )));
        }
        let (y, yp) = self.output(&[ids.len(), hidden])?;
        if ids.is_empty() || hidden == 0 {
            return Ok(y);
        }
        let ids32 = ids.iter().map(|&i| i as i32).collect::<Vec<i32>>();
        let im = self.upload_small(&ids32)?;
        self.dequant_rows(table, Some(self.ptr(&im)), 0, ids.len(), yp)?;
        Ok(y)
    }

    fn narrow(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        let shape = x.shape();
        let Some(&dim_len) = shape.get(dim) else {
            return Err(Error::Invalid(format!(
                "narrow: dimension {dim} of a tensor of shape {shape:?}"
            )));
        };
        if start.checked_add(len).is_none_or(|end| end > dim_len) {
            return Err(Error::Invalid(format!(
                "narrow: entries {start}..{} of dimension {dim} (size {dim_len})",
                start.saturating_add(len)
            )));
        }
        if x.dtype() != DType::F32 {
            return Err(Error::DType {
                context: "narrow: x".into(),
                dtype: x.dtype().to_string(),
            });
        }
        let inner: usize = shape[dim + 1..].iter().product();
        let mut out_shape = shape.to_vec();
        out_shape[dim] = len;
        let (y, yp) = self.output(&out_shape)?;
        let n = y.elem_count();
        self.launch_n(
            "lf_narrow",
            n,
            &[
                Arg::Ptr(self.dptr(x, "x")?),
                Arg::Ptr(yp),
                Arg::I32(int(dim_len)?),
                Arg::I32(int(start)?),
                Arg::I32(int(len)?),
                Arg::I64(inner as i64),
                Arg::I64(n as i64),
            ],
        )?;
        Ok(y)
    }
}

/// The last dimension of `x`, checking that `param` is `[d]`.
fn norm_dim(x: &Tensor, param: &Tensor, op: &str) -> Result<usize> {
    match x.shape().last() {
        Some(&d) if d > 0 && param.shape() == [d] => Ok(d),
        _ => Err(Error::shape(
            format!("{op}: parameter for x of shape {:?}", x.shape()),
            &[x.shape().last().copied().unwrap_or(0)],
            param.shape(),
        )),
    }
}
