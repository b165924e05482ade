//! libFuzzer target: `utcp_fuzz::drill_parser::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| utcp_fuzz::drill_parser::run(data));
