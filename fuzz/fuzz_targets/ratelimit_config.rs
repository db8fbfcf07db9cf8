#![no_main]
//! The rate-limit policy parsers (TOML and `RATE_LIMIT_*` variables) on arbitrary input: a
//! typed error or a configuration, never a panic; every parsed configuration survives a round
//! trip through the variable form.
use libfuzzer_sys::fuzz_target;
use palisade_ratelimit::{Config, IpNet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text) {
        let back = Config::from_vars(config.to_vars()).expect("the variable form parses");
        assert_eq!(back, config, "round trip through RATE_LIMIT_* variables");
    }
    let vars = text.lines().filter_map(|l| l.split_once('='));
    if let Ok(config) = Config::from_vars(vars) {
        let back = Config::from_vars(config.to_vars()).expect("the variable form parses");
        assert_eq!(back, config);
    }
    if let Ok(net) = text.parse::<IpNet>() {
        assert_eq!(net.to_string().parse::<IpNet>().ok(), Some(net));
    }
});
