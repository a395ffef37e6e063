//! Every CUDA kernel source compiles with NVRTC, for sm_80 and sm_90, without a GPU.
//!
//! NVRTC comes from NVIDIA's `nvidia-cuda-nvrtc` wheel (`tools/fetch_nvrtc.sh` installs it
//! and prints its directory for `LD_LIBRARY_PATH`; `tools/test.sh` does both). Without the
//! library the test prints why and passes, unless `LAZYFORGE_REQUIRE_NVRTC=1` (CI), where a
//! missing NVRTC fails it. The library is opened here directly, so the test runs in the
//! default build, without the `cuda` feature.

use lazyforge::device::kernels;
use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CString};

type Program = *mut c_void;
type Create = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type Compile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
type Size = unsafe extern "C" fn(Program, *mut usize) -> c_int;
type Fill = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
type Destroy = unsafe extern "C" fn(*mut Program) -> c_int;
type Version = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;

const NAMES: [&str; 3] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

fn open_nvrtc() -> Option<(Library, &'static str)> {
    NAMES.iter().find_map(|name| {
        // SAFETY: loading NVRTC runs only its own initializers.
        unsafe { Library::new(*name) }.ok().map(|l| (l, *name))
    })
}

/// Compiles `src` for `arch` (`compute_90`); the PTX, or NVRTC's log.
fn compile(lib: &Library, src: &str, arch: &str) -> Result<String, String> {
    // SAFETY: the symbols are NVRTC's documented C API with these signatures; every buffer
    // passed is sized as NVRTC reports, and the program is destroyed once.
    unsafe {
        let create: libloading::Symbol<Create> = lib.get(b"nvrtcCreateProgram").unwrap();
        let compile: libloading::Symbol<Compile> = lib.get(b"nvrtcCompileProgram").unwrap();
        let log_size: libloading::Symbol<Size> = lib.get(b"nvrtcGetProgramLogSize").unwrap();
        let log: libloading::Symbol<Fill> = lib.get(b"nvrtcGetProgramLog").unwrap();
        let ptx_size: libloading::Symbol<Size> = lib.get(b"nvrtcGetPTXSize").unwrap();
        let ptx: libloading::Symbol<Fill> = lib.get(b"nvrtcGetPTX").unwrap();
        let destroy: libloading::Symbol<Destroy> = lib.get(b"nvrtcDestroyProgram").unwrap();
        let src = CString::new(src).unwrap();
        let name = CString::new("lazyforge_kernels.cu").unwrap();
        let mut prog: Program = std::ptr::null_mut();
        let r = create(
            &mut prog,
            src.as_ptr(),
            name.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        );
        assert_eq!(r, 0, "nvrtcCreateProgram");
        // The options the backend compiles with (runtime/src/device/cuda/mod.rs).
        let options = [
            CString::new(format!("--gpu-architecture={arch}")).unwrap(),
            CString::new("--std=c++17").unwrap(),
        ];
        let ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let r = compile(prog, ptrs.len() as c_int, ptrs.as_ptr());
        let mut n = 0usize;
        log_size(prog, &mut n);
        let mut text = vec![0u8; n.max(1)];
        log(prog, text.as_mut_ptr().cast());
        let log_text = String::from_utf8_lossy(&text)
            .trim_end_matches('\0')
            .to_string();
        let out = if r == 0 {
            let mut n = 0usize;
            ptx_size(prog, &mut n);
            let mut code = vec![0u8; n.max(1)];
            ptx(prog, code.as_mut_ptr().cast());
            if !log_text.trim().is_empty() {
                eprintln!("NVRTC log for {arch}:\n{log_text}");
            }
            Ok(String::from_utf8_lossy(&code)
                .trim_end_matches('\0')
                .to_string())
        } else {
            Err(format!("NVRTC error {r} for {arch}:\n{log_text}"))
        };
        destroy(&mut prog);
        out
    }
}

#[test]
fn every_kernel_compiles_with_nvrtc_for_sm80_and_sm90() {
    let Some((lib, name)) = open_nvrtc() else {
        let why = format!(
            "NVRTC not found ({NAMES:?} on the library path); run `bash tools/test.sh` or set \
             LD_LIBRARY_PATH to the directory `bash tools/fetch_nvrtc.sh` prints"
        );
        if std::env::var("LAZYFORGE_REQUIRE_NVRTC").as_deref() == Ok("1") {
            panic!("LAZYFORGE_REQUIRE_NVRTC=1 but {why}");
        }
        eprintln!("skipped: {why}");
        return;
    };
    // SAFETY: nvrtcVersion writes two ints.
    unsafe {
        let version: libloading::Symbol<Version> = lib.get(b"nvrtcVersion").unwrap();
        let (mut major, mut minor) = (0, 0);
        version(&mut major, &mut minor);
        eprintln!("{name}: NVRTC {major}.{minor}");
    }
    let src = kernels::cuda_source();
    let names = kernels::kernel_names();
    for arch in ["compute_80", "compute_90"] {
        let ptx = compile(&lib, &src, arch).unwrap_or_else(|log| panic!("{log}"));
        for kernel in &names {
            assert!(
                ptx.contains(&format!(".entry {kernel}(")),
                "{arch}: kernel {kernel} is not in the PTX"
            );
        }
        eprintln!(
            "{arch}: {} kernels compiled, {} bytes of PTX",
            names.len(),
            ptx.len()
        );
    }
}
