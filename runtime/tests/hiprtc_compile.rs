//! The kernel sources compile with hiprtc (behind hip_compat.cuh) for gfx90a (MI200),
//! without a device (feature `hip`). Not gfx942 (MI300): Debian 12's hiprtc 5.2 predates it and
//! aborts inside hiprtcCompileProgram when asked for it (seen here), so that target waits
//! for a newer ROCm. hiprtc needs ROCm's device libraries (comgr) at run
//! time; where it cannot compile for that reason the test prints why and passes, unless
//! `LAZYFORGE_REQUIRE_HIPRTC=1`. Asking for a HIP device where there is none is an error.
#![cfg(feature = "hip")]

use lazyforge::device::hip;
use lazyforge::Device;

#[test]
fn asking_for_a_missing_hip_device_is_an_error() {
    if hip::device_count() == 0 {
        let e = Device::Hip(0).ensure_available().unwrap_err().to_string();
        assert!(e.contains("no HIP device"), "{e}");
        eprintln!("{e}");
    }
}

#[test]
fn every_kernel_compiles_with_hiprtc_for_gfx90a() {
    for arch in ["gfx90a"] {
        match hip::compile_kernels(arch) {
            Ok(bytes) => eprintln!("{arch}: {bytes} bytes of code"),
            Err(e) if std::env::var("LAZYFORGE_REQUIRE_HIPRTC").as_deref() != Ok("1") => {
                eprintln!("skipped: hiprtc could not compile for {arch}: {e}");
                return;
            }
            Err(e) => panic!("{arch}: {e}"),
        }
    }
}
