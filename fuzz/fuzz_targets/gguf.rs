#![no_main]
//! Target `gguf`: see `lazyforge::fuzzing::gguf`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lazyforge::fuzzing::gguf(data));
