#![no_main]
//! Host patterns: `pattern\nhost`. Parsing, canonicalising and matching never panic; a parsed
//! pattern prints in a form that parses back to itself; an exact pattern matches its own name.
use libfuzzer_sys::fuzz_target;
use palisade_pin::{HostPattern, canonical_host};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, host) = text.split_once('\n').unwrap_or((text, ""));
    let canonical = canonical_host(host);
    if let Ok(c) = &canonical {
        assert_eq!(
            canonical_host(c).as_ref(),
            Ok(c),
            "canonical form is stable"
        );
    }
    if let Ok(p) = HostPattern::parse(pattern) {
        let printed = p.to_string();
        assert_eq!(HostPattern::parse(&printed).as_ref(), Ok(&p));
        if p.is_exact() {
            assert!(p.matches(&printed));
        }
        let matched = p.matches_host(host);
        if let Ok(c) = &canonical {
            assert_eq!(matched, p.matches(c));
        } else {
            assert!(!matched);
        }
    }
});
