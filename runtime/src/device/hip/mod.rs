//! HIP (feature `hip`), for AMD GPUs, through `hip-sys` (libamdhip64, which also exports
//! hiprtc). This build finds devices and compiles the kernel sources with hiprtc (behind
//! [`HIP_COMPAT`](super::kernels::HIP_COMPAT)); the ops themselves run only on CUDA so far,
//! so asking for a HIP device is an error that says which of these it is: no device, no such
//! device, or no HIP ops yet. See docs/gpu.md.

use super::kernels;
use crate::error::{Error, Result};
use hip_sys::hiprt;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

fn device_error(n: usize, reason: impl Into<String>) -> Error {
    Error::Device {
        device: format!("hip:{n}"),
        reason: reason.into(),
    }
}

/// The number of HIP devices (0 when the runtime finds none or fails to start).
pub fn device_count() -> usize {
    let mut count: c_int = 0;
    // SAFETY: `count` is a valid place for the runtime to write one int.
    let r = unsafe { hiprt::hipGetDeviceCount(&mut count) };
    if r == hiprt::hipError_t::hipSuccess {
        count.max(0) as usize
    } else {
        0
    }
}

/// Opens HIP device `n`: an error naming the device in every case today (see the module
/// docs), never a panic.
pub(crate) fn open(n: usize) -> Result<()> {
    let mut count: c_int = 0;
    // SAFETY: as in `device_count`.
    let r = unsafe { hiprt::hipGetDeviceCount(&mut count) };
    if r != hiprt::hipError_t::hipSuccess || count <= 0 {
        return Err(device_error(
            n,
            format!("no HIP device (hipGetDeviceCount: {})", error_name(r)),
        ));
    }
    if n >= count as usize {
        return Err(device_error(
            n,
            format!(
                "no such HIP device: {count} found (hip:0 to hip:{})",
                count - 1
            ),
        ));
    }
    Err(device_error(
        n,
        "a HIP device is present, but this build runs lazyforge's ops on CUDA and the CPU \
         only (the HIP backend compiles its kernels with hiprtc but has no ops yet)",
    ))
}

fn error_name(e: hiprt::hipError_t) -> String {
    // SAFETY: hipGetErrorString returns a static NUL-terminated string for any error code.
    let s = unsafe { hiprt::hipGetErrorString(e) };
    if s.is_null() {
        return format!("{e:?}");
    }
    // SAFETY: non-null, NUL-terminated, static (checked above).
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

type HiprtcProgram = *mut c_void;

// hiprtc, exported by libamdhip64 (linked by hip-sys). Return values are hiprtcResult
// (0 = success).
extern "C" {
    fn hiprtcCreateProgram(
        prog: *mut HiprtcProgram,
        src: *const c_char,
        name: *const c_char,
        num_headers: c_int,
        headers: *const *const c_char,
        include_names: *const *const c_char,
    ) -> c_int;
    fn hiprtcCompileProgram(
        prog: HiprtcProgram,
        num_options: c_int,
        options: *const *const c_char,
    ) -> c_int;
    fn hiprtcGetProgramLogSize(prog: HiprtcProgram, size: *mut usize) -> c_int;
    fn hiprtcGetProgramLog(prog: HiprtcProgram, log: *mut c_char) -> c_int;
    fn hiprtcGetCodeSize(prog: HiprtcProgram, size: *mut usize) -> c_int;
    fn hiprtcDestroyProgram(prog: *mut HiprtcProgram) -> c_int;
}

/// Compiles every kernel source with hiprtc for `arch` (`gfx90a`, `gfx942`, ...) and returns
/// the size of the code object; an error carrying hiprtc's log when it does not compile.
/// Needs no device, but hiprtc needs its device libraries (ROCm's comgr) to be installed.
pub fn compile_kernels(arch: &str) -> Result<usize> {
    let fail = |what: String| Error::Device {
        device: "hip".into(),
        reason: what,
    };
    let src = CString::new(kernels::hip_source())
        .map_err(|_| fail("the kernel source holds a NUL byte".into()))?;
    let name = c"lazyforge_kernels.hip";
    let mut prog: HiprtcProgram = std::ptr::null_mut();
    // SAFETY: `src` and `name` are NUL-terminated and outlive the call; no headers are passed.
    let r = unsafe {
        hiprtcCreateProgram(
            &mut prog,
            src.as_ptr(),
            name.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(fail(format!("hiprtcCreateProgram failed ({r})")));
    }
    let options = [
        CString::new(format!("--offload-arch={arch}")).expect("no NUL in an arch name"),
        CString::new("-std=c++17").expect("no NUL"),
    ];
    let ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: `prog` was created above; the options are NUL-terminated and outlive the call.
    let r = unsafe { hiprtcCompileProgram(prog, ptrs.len() as c_int, ptrs.as_ptr()) };
    let mut result = Ok(0);
    if r != 0 {
        let mut size = 0usize;
        let mut log = String::new();
        // SAFETY: `prog` is valid; the buffer holds `size` bytes as hiprtc asked.
        unsafe {
            if hiprtcGetProgramLogSize(prog, &mut size) == 0 && size > 0 {
                let mut buf = vec![0u8; size];
                if hiprtcGetProgramLog(prog, buf.as_mut_ptr().cast()) == 0 {
                    log = String::from_utf8_lossy(&buf)
                        .trim_end_matches('\0')
                        .to_string();
                }
            }
        }
        result = Err(fail(format!("hiprtc failed for {arch} ({r}): {log}")));
    } else {
        let mut size = 0usize;
        // SAFETY: `prog` compiled successfully.
        if unsafe { hiprtcGetCodeSize(prog, &mut size) } == 0 {
            result = Ok(size);
        }
    }
    // SAFETY: `prog` is valid and destroyed once.
    unsafe { hiprtcDestroyProgram(&mut prog) };
    result
}
