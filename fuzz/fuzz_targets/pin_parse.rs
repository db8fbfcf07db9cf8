#![no_main]
//! Pin strings: parsing never panics, and a parsed pin prints canonically and parses back.
use libfuzzer_sys::fuzz_target;
use palisade_pin::Pin;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pin) = Pin::parse(text) {
        let canonical = pin.to_string();
        let again = Pin::parse(&canonical).expect("canonical form parses");
        assert_eq!(again, pin);
        assert_eq!(again.to_string(), canonical);
    }
});
