#![no_main]
//! Target `tokenizer`: see `lazyforge_models::fuzzing::tokenizer`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lazyforge_models::fuzzing::tokenizer(data));
