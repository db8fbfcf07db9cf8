//! Property tests of the configuration formats: TOML and variables describe the same policies,
//! and the variable form round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use palisade_ratelimit::{Algorithm, Config};
use proptest::prelude::*;

fn policy() -> impl Strategy<Value = (String, u64, u64, &'static str, &'static str)> {
    (
        "[a-z][a-z0-9-]{0,10}",
        0u64..1_000_000,
        1u64..86_400,
        prop_oneof![
            Just("ip"),
            Just("user"),
            Just("api_key"),
            Just("ip_user"),
            Just("header:x-tenant")
        ],
        prop_oneof![Just("sliding"), Just("log")],
    )
}

proptest! {
    #[test]
    fn toml_and_variables_agree(
        policies in prop::collection::btree_map("[a-z][a-z0-9-]{0,10}", policy(), 0..5),
        nets in prop::collection::vec((any::<[u8; 4]>(), 0u8..=32), 0..4),
    ) {
        let mut toml = String::new();
        let nets: Vec<String> = nets
            .iter()
            .map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3]))
            .collect();
        toml.push_str(&format!("allowlist = {nets:?}\n"));
        for (name, (_, limit, secs, key, algorithm)) in &policies {
            let limit = if *algorithm == "log" { limit % 10_000 } else { *limit };
            toml.push_str(&format!(
                "[limits.{name}]\nlimit = {limit}\nperiod = {secs}\nkey = \"{key}\"\nalgorithm = \"{algorithm}\"\n"
            ));
        }
        let config = Config::from_toml(&toml).unwrap();
        prop_assert_eq!(config.policies.len(), policies.len());
        for (name, (_, _, secs, _, algorithm)) in &policies {
            let p = config.policy(name).unwrap();
            prop_assert_eq!(p.quota.period().as_secs(), *secs);
            let want = if *algorithm == "log" { Algorithm::ExactLog } else { Algorithm::SlidingWindow };
            prop_assert_eq!(p.quota.algorithm(), want);
        }
        let back = Config::from_vars(config.to_vars()).unwrap();
        prop_assert_eq!(back, config);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Config::from_toml(&text);
        let _ = Config::from_vars(text.lines().filter_map(|l| l.split_once('=')));
    }
}
