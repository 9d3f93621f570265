#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealog_testkit::fuzz::recovery(data));
