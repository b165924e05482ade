//! libFuzzer target: `utcp_fuzz::wire::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| utcp_fuzz::wire::run(data));
