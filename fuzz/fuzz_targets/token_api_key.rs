#![no_main]
// PLACEHOLDER: replaced by the crate that owns this target.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
