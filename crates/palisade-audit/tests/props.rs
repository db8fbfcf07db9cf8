//! Property tests of redaction, checkpoints and the alert window.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use palisade_audit::alert::{AlertEngine, LogChannel, ThresholdRule};
use palisade_audit::{
    Action, AuditEvent, ChainHash, CheckpointSigner, Redactor, Severity, format, siem,
};
use palisade_core::time::UnixTime;
use proptest::prelude::*;

const SENSITIVE: [&str; 10] = [
    "password",
    "token",
    "secret",
    "code",
    "key",
    "otpauth",
    "authorization",
    "cookie",
    "credential",
    "seed",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn secrets_under_sensitive_keys_never_leave(
        word in 0..SENSITIVE.len(),
        prefix in "[A-Za-z_-]{0,6}",
        suffix in "[A-Za-z_-]{0,6}",
        upper in any::<bool>(),
        secret in "[A-Za-z0-9]{12,32}",
        other in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,20}", 0..4),
    ) {
        let mut key = format!("{prefix}{}{suffix}", SENSITIVE[word]);
        if upper {
            key = key.to_uppercase();
        }
        let mut e = AuditEvent::new(Action::MfaEnrolled, UnixTime::from_secs(1));
        for (k, v) in other {
            e = e.meta(k, v);
        }
        e = e.meta(key.clone(), secret.clone());
        let r = Redactor::new();
        let allowed = !r.is_sensitive_key(&key);
        prop_assume!(!allowed);
        r.redact(&mut e);
        let json = String::from_utf8(format::to_canonical_json(&e).unwrap()).unwrap();
        prop_assert!(!json.contains(&secret));
        prop_assert!(!siem::to_ocsf(&e).to_string().contains(&secret));
        prop_assert!(!siem::to_ecs(&e).to_string().contains(&secret));
    }

    #[test]
    fn redacted_text_has_no_control_characters(
        ua in any::<String>(),
        meta in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..4),
        short in any::<bool>(),
    ) {
        let r = if short { Redactor::new().max_len(16) } else { Redactor::new() };
        let mut e = AuditEvent::new(Action::LoginFailed, UnixTime::EPOCH).user_agent(ua);
        e.metadata = meta;
        r.redact(&mut e);
        let texts = e.metadata.iter().flat_map(|(k, v)| [k, v]).chain(e.user_agent.iter());
        for t in texts {
            prop_assert!(!t.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{202e}'), "{:?}", t);
            if short {
                prop_assert!(t.chars().count() <= 16);
            }
        }
        // Redaction is idempotent.
        let once = e.clone();
        r.redact(&mut e);
        prop_assert_eq!(once, e);
    }

    #[test]
    fn checkpoints_round_trip_and_any_byte_flip_fails(
        size in any::<u64>(),
        head in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
        time in 0u64..(1 << 33),
        pos in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let s = CheckpointSigner::from_seed("k1", "example.com/log", &[4; 32]).unwrap();
        let v = s.verifier();
        let signed = s.sign(size, palisade_audit::TreeHash(root), ChainHash(head), UnixTime::from_secs(time));
        let cp = v.verify(&signed.note, "example.com/log").unwrap();
        prop_assert_eq!(cp.size(), size);
        prop_assert_eq!(cp.head(), ChainHash(head));
        prop_assert_eq!(cp.root(), palisade_audit::TreeHash(root));
        prop_assert_eq!(cp.time(), time);
        let mut bytes = signed.note.into_bytes();
        let pos = pos % bytes.len();
        bytes[pos] ^= mask;
        if let Ok(text) = String::from_utf8(bytes) {
            prop_assert!(v.verify(&text, "example.com/log").is_err(), "{}", text);
        }
    }

    #[test]
    fn alerts_fire_exactly_when_the_window_holds_the_threshold(
        gaps in proptest::collection::vec(0u64..120, 1..60),
        threshold in 1u32..6,
        window in 1u64..300,
    ) {
        let engine = AlertEngine::new(
            vec![ThresholdRule::new("r", Action::LoginFailed, threshold, Duration::from_secs(window))],
            Severity::Informational,
            LogChannel,
        );
        // Model: the times counted since the last alert, within the window.
        let mut counted: Vec<u64> = Vec::new();
        let mut t = 1_000u64;
        for g in gaps {
            t += g;
            let e = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(t)).user_id("u");
            let fired = !engine.observe(&e).is_empty();
            counted.retain(|x| *x + window >= t);
            counted.push(t);
            let expect = counted.len() >= threshold as usize;
            prop_assert_eq!(fired, expect);
            if expect {
                counted.clear();
            }
        }
    }
}
