#![no_main]
//! Target `safetensors`: see `lazyforge::fuzzing::safetensors`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lazyforge::fuzzing::safetensors(data));
