//! The audited MFA flows end to end, and what their events may not contain.

use palisade_core::audit::{Action, AuditEvent, MemorySink};
use palisade_core::keyring::{KeyId, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::secret::SecretBytes;
use palisade_core::time::UnixTime;
use palisade_otp::recovery::RecoveryOutcome;
use palisade_otp::{Mfa, Rejection, Totp};

#[test]
fn enrollment_login_recovery_and_removal_are_audited_without_secrets() {
    let sink = MemorySink::new();
    let mfa = Mfa::new("ACME").audit(sink.clone());
    let keyring = Keyring::single(
        KeyId::new("rc").unwrap(),
        SecretBytes::from_slice(&[3u8; 32]),
    );
    let t0 = UnixTime::from_secs(1_800_000_000);
    let mut leaked: Vec<String> = Vec::new();

    let pending = mfa
        .start_enrollment("u42", "ann@example.com", t0, &SystemRandom)
        .unwrap();
    leaked.push(pending.secret().expose_base32().to_string());
    let uri = pending.uri().unwrap();
    assert!(uri.expose_uri().contains(leaked[0].as_str()));
    let totp = Totp::new(pending.secret(), *pending.params());

    // A wrong first code leaves the enrollment pending.
    let good = totp.generate(t0).unwrap();
    let bad = if good.expose_secret() == "123456" {
        "654321"
    } else {
        "123456"
    };
    let pending = mfa
        .confirm_enrollment("u42", pending, bad, t0)
        .unwrap_err()
        .into_pending();
    let mut enrollment = mfa
        .confirm_enrollment("u42", pending, good.expose_secret(), t0)
        .unwrap();
    let mut codes_typed = vec![good.expose_secret().to_owned()];

    // Login: the enrollment code is a replay; the next step's code is accepted once.
    assert_eq!(
        mfa.verify("u42", &mut enrollment, good.expose_secret(), t0),
        Err(Rejection::Replayed)
    );
    let t1 = UnixTime::from_secs(1_800_000_031);
    let next = totp.generate(t1).unwrap();
    codes_typed.push(next.expose_secret().to_owned());
    assert!(
        mfa.verify("u42", &mut enrollment, next.expose_secret(), t1)
            .is_ok()
    );
    assert_eq!(
        mfa.verify("u42", &mut enrollment, next.expose_secret(), t1),
        Err(Rejection::Replayed)
    );

    // Recovery codes.
    let issued = mfa
        .regenerate_recovery_codes("u42", &keyring, t1, &SystemRandom)
        .unwrap();
    let (codes, mut stored) = issued.into_parts();
    assert_eq!(codes.len(), 10);
    for c in &codes {
        leaked.push(c.expose_formatted().to_string());
        leaked.push(c.expose_formatted().replace('-', ""));
    }
    let outcome = mfa
        .use_recovery_code(
            "u42",
            &mut stored,
            &keyring,
            &codes[0].expose_formatted(),
            t1,
        )
        .unwrap();
    assert_eq!(
        outcome,
        RecoveryOutcome::Accepted {
            remaining: 9,
            low_balance: false
        }
    );
    let again = mfa
        .use_recovery_code(
            "u42",
            &mut stored,
            &keyring,
            &codes[0].expose_formatted(),
            t1,
        )
        .unwrap();
    assert_eq!(again, RecoveryOutcome::Rejected);

    mfa.remove("u42", enrollment, t1);

    let events: Vec<AuditEvent> = sink.take();
    let actions: Vec<Action> = events.iter().map(|e| e.action.clone()).collect();
    assert_eq!(
        actions,
        [
            Action::MfaEnrollmentStarted,
            Action::MfaCodeRejected,
            Action::MfaEnrolled,
            Action::MfaCodeReplayed,
            Action::MfaCodeAccepted,
            Action::MfaCodeReplayed,
            Action::RecoveryCodesRegenerated,
            Action::RecoveryCodeUsed,
            Action::MfaCodeRejected,
            Action::MfaRemoved,
        ]
    );
    assert!(events.iter().all(|e| e.user_id.as_deref() == Some("u42")));
    let used = &events[7];
    assert_eq!(used.metadata["remaining"], "9");
    assert_eq!(events[1].metadata["reason"], "invalid");
    assert_eq!(
        events[4].metadata["step"],
        (1_800_000_031u64 / 30).to_string()
    );

    let json = serde_json::to_string(&events).unwrap();
    for secret in &leaked {
        assert!(
            !json.contains(secret.as_str()),
            "an event contains {secret}"
        );
    }
}
