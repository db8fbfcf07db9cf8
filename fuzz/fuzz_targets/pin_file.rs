//! The pin file parser: any text gives a file or a located error, never a panic, and a parsed
//! file prints back to TOML that parses to the same file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_pin::PinFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = PinFile::parse(text) {
        let again = PinFile::parse(&file.to_toml()).expect("printed file parses");
        assert_eq!(again, file);
        let _ = file.into_policy().expect("a parsed file builds a policy");
    }
    let _ = PinFile::from_fingerprints("**.example.com", text);
});
