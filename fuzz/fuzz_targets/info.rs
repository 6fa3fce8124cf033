//! cargo-fuzz target: see `qtools_fuzz::check_info`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qtools_fuzz::check_info(data));
