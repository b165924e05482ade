//! libFuzzer target: `utcp_fuzz::packet_input::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| utcp_fuzz::packet_input::run(data));
