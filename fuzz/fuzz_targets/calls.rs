//! libFuzzer target: `utcp_fuzz::calls::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| utcp_fuzz::calls::run(data));
