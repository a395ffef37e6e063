#![no_main]
//! Target `chat_template`: see `lazyforge_models::fuzzing::chat_template`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| lazyforge_models::fuzzing::chat_template(data));
