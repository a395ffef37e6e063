#![no_main]
//! Target `dequant`: see `lazyforge::fuzzing::dequant`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lazyforge::fuzzing::dequant(data));
