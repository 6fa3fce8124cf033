//! cargo-fuzz target: see `qtools_fuzz::check_recipients`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qtools_fuzz::check_recipients(data));
