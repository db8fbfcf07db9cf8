//! Palisade's crates composing in one service, step by step:
//!
//! 1. keys for field encryption and recovery codes, and a hash-chained, signed audit file;
//! 2. TOTP enrollment with 10 recovery codes; the TOTP secret stored encrypted, bound to its row;
//! 3. logins through the lockout: an attacker's wrong passwords, then the user with password
//!    and TOTP code (a replay of the code is refused), then a recovery code;
//! 4. a quarterly field-key rotation: the stored secret is rewrapped under the new key;
//! 5. the audit file verified against its signed checkpoint.
//!
//! Run it with `cargo run -p palisade-examples --example quickstart`.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade_audit::file::{JsonlConfig, JsonlSink, verify_trail};
use palisade_audit::{Action, AuditEvent, AuditSink, CheckpointSigner, Verdict};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::once::MemoryOneTimeStore;
use palisade_core::random::SystemRandom;
use palisade_core::time::{Clock, FakeClock, UnixTime};
use palisade_field::{Context, FieldCipher};
use palisade_otp::recovery::RecoveryOutcome;
use palisade_otp::{Mfa, OtpSecret, Totp};
use palisade_password::{Hasher, Params, Verification};
use palisade_ratelimit::{Begin, Lockout, LockoutPolicy, MemoryRateStore};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Error> {
    let rng = SystemRandom;
    // One clock for the whole story, so that it reads the same on every run.
    let clock = FakeClock::new(UnixTime::from_secs(1_790_000_000));
    let dir = std::env::temp_dir().join(format!("palisade-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    println!("1. Keys and the audit trail");
    let q3 = KeyId::new("2026q3")?;
    let mut field_keys = Keyring::new();
    field_keys.insert(Key::generate(q3.clone(), KeyState::Active, 32, &rng)?)?;
    let mut recovery_keys = Keyring::new();
    recovery_keys.insert(Key::generate(
        KeyId::new("recovery-1")?,
        KeyState::Active,
        32,
        &rng,
    )?)?;
    let signer = CheckpointSigner::generate("quickstart", "example.com/audit", &rng)?;
    let checkpoint_key = signer.verifier(); // kept apart from the log, by whoever audits it
    let audit = Arc::new(JsonlSink::open(
        JsonlConfig::new(&dir, "audit").checkpoints(signer, 1_000),
    )?);
    let sink: Arc<dyn AuditSink> = audit.clone();
    println!(
        "   field key {q3}, recovery-code key recovery-1, audit trail in {}",
        dir.display()
    );

    println!("2. Enrollment");
    let mfa = Mfa::new("Example").audit(sink.clone());
    let pending = mfa.start_enrollment("alice", "alice@example.com", clock.now(), &rng)?;
    let uri = pending.uri()?;
    println!(
        "   show a QR code of otpauth://totp/{}:{}?secret=***",
        uri.issuer().unwrap_or(""),
        uri.account()
    );
    let phone = Totp::new(pending.secret(), *pending.params()); // the authenticator app
    let first = phone.generate(clock.now())?;
    let mut enrollment = mfa
        .confirm_enrollment("alice", pending, first.expose_secret(), clock.now())
        .map_err(|e| format!("enrollment not confirmed: {}", e.rejection()))?;
    println!("   confirmed with the app's first code");
    let issued = mfa.regenerate_recovery_codes("alice", &recovery_keys, clock.now(), &rng)?;
    let (codes, mut stored_codes) = issued.into_parts();
    println!(
        "   {} recovery codes handed out; only their HMACs are stored",
        codes.len()
    );

    let cipher = FieldCipher::builder(&field_keys)
        .audit(sink.clone())
        .build()?;
    let row = Context::new("users", "totp_secret", "alice");
    let mut stored_secret = cipher.encrypt_text(enrollment.secret().expose_secret(), &row)?;
    println!(
        "   TOTP secret stored as {}... ({} chars)",
        &stored_secret[..16],
        stored_secret.len()
    );
    let elsewhere = Context::new("users", "totp_secret", "mallory");
    assert!(cipher.decrypt(&stored_secret, &elsewhere).is_err());
    println!("   copied to mallory's row, it does not decrypt");

    println!("3. Logins");
    let hasher = Hasher::new(Params::OWASP_19_MIB);
    let password_hash = hasher.hash("correct horse battery staple")?.into_string();
    let lockout = Lockout::new(
        MemoryRateStore::with_clock(clock.clone()),
        LockoutPolicy::default(),
    )?
    .audit(sink.clone());
    let attacker: IpAddr = "198.51.100.7".parse()?;
    let alice_ip: IpAddr = "203.0.113.5".parse()?;
    for guess in ["123456", "password", "alice2026", "letmein", "qwerty"] {
        // The attempt is reserved before the password is checked, so concurrent guesses cannot
        // all slip past the limit.
        let attempt = match lockout.begin("alice", attacker).await? {
            Begin::Proceed(attempt) => attempt,
            Begin::Locked(status) => {
                println!(
                    "   attacker refused before the password check: {:?}",
                    status.reason
                );
                break;
            }
        };
        if let Verification::Mismatch = hasher.verify_or_dummy(Some(&password_hash), guess)? {
            let after = attempt.failed();
            sink.record(
                AuditEvent::new(Action::LoginFailed, clock.now())
                    .user_id("alice")
                    .ip(attacker),
            );
            println!(
                "   {guess:?} from {attacker}: wrong; {} attempts left{}",
                after.attempts_remaining,
                after.locked_until.map_or(String::new(), |t| format!(
                    ", locked for {} s",
                    t.as_secs() - clock.now().as_secs()
                )),
            );
        }
        clock.advance(Duration::from_secs(1));
    }
    let Begin::Proceed(attempt) = lockout.begin("alice", alice_ip).await? else {
        return Err("alice from her own address is locked out".into());
    };
    println!("   alice from her own address is not locked out");
    let password_ok = matches!(
        hasher.verify_or_dummy(Some(&password_hash), "correct horse battery staple")?,
        Verification::Match(_)
    );
    clock.advance(Duration::from_secs(30));
    // The secret comes back from the database, decrypted for this row only.
    let secret = OtpSecret::from_bytes(palisade_core::secret::SecretBytes::new(
        cipher.decrypt(&stored_secret, &row)?.to_vec(),
    ))?;
    assert_eq!(secret.expose_secret(), enrollment.secret().expose_secret());
    let code = phone.generate(clock.now())?;
    let replay_guard = MemoryOneTimeStore::with_clock(clock.clone());
    let totp_ok = mfa
        .verify_claimed(
            &replay_guard,
            "alice",
            &mut enrollment,
            code.expose_secret(),
            clock.now(),
        )
        .await?
        .is_ok();
    if password_ok && totp_ok {
        attempt.succeeded().await?;
        sink.record(
            AuditEvent::new(Action::LoginSucceeded, clock.now())
                .user_id("alice")
                .ip(alice_ip),
        );
        println!("   alice logs in with password and TOTP code");
    }
    let replay = mfa
        .verify_claimed(
            &replay_guard,
            "alice",
            &mut enrollment,
            code.expose_secret(),
            clock.now(),
        )
        .await?;
    println!(
        "   the same code again: {:?}",
        replay.map(|_| ()).map_err(|r| r.as_str())
    );
    let recovery = mfa.use_recovery_code(
        "alice",
        &mut stored_codes,
        &recovery_keys,
        codes[0].expose_formatted().as_str(),
        clock.now(),
    )?;
    if let RecoveryOutcome::Accepted { remaining, .. } = recovery {
        println!("   a lost phone: recovery code accepted, {remaining} left");
    }
    let again = mfa.use_recovery_code(
        "alice",
        &mut stored_codes,
        &recovery_keys,
        codes[0].expose_formatted().as_str(),
        clock.now(),
    )?;
    println!("   the same recovery code again: {again:?}");

    println!("4. Quarterly key rotation");
    let q4 = KeyId::new("2026q4")?;
    // Phase 1: every instance gets the new key as decrypt-only; phase 2: it becomes active.
    field_keys.insert(Key::generate(q4.clone(), KeyState::DecryptOnly, 32, &rng)?)?;
    field_keys.set_state(&q4, KeyState::Active)?;
    let rotated = FieldCipher::builder(&field_keys)
        .audit(sink.clone())
        .build()?;
    sink.record(
        AuditEvent::new(Action::KeyRotated, clock.now())
            .resource("users.totp_secret")
            .meta("key_id", q4.as_str()),
    );
    println!(
        "   {q4} active, {q3} decrypt-only; the stored secret needs rotation: {}",
        rotated.needs_rotation(&stored_secret)?
    );
    stored_secret = rotated.rewrap_text(&stored_secret, &row)?;
    println!(
        "   rewrapped; needs rotation now: {}",
        rotated.needs_rotation(&stored_secret)?
    );
    // Phase 3: once every row is rewrapped, the old key retires.
    field_keys.set_state(&q3, KeyState::Retired)?;
    let after = FieldCipher::builder(&field_keys)
        .audit(sink.clone())
        .build()?;
    assert_eq!(
        after.decrypt(&stored_secret, &row)?.as_ref(),
        enrollment.secret().expose_secret()
    );
    println!("   {q3} retired; the secret still decrypts");

    println!("5. Audit verification");
    audit.shutdown()?; // flushed, fsynced, final checkpoint signed
    let note = std::fs::read_to_string(dir.join("audit.checkpoint"))?;
    let checkpoint = checkpoint_key.verify(&note, "example.com/audit")?;
    let report = verify_trail(&dir, "audit", &[checkpoint])?;
    match report.verdict {
        Verdict::Intact {
            records, attested, ..
        } => {
            println!("   intact: {records} events, {attested} attested by the signed checkpoint");
        }
        Verdict::Broken { index, reason } => {
            return Err(format!("audit trail broken at {index}: {reason:?}").into());
        }
    }
    let trail = std::fs::read_to_string(dir.join("audit-00000000000000000000.jsonl"))?;
    for line in trail.lines() {
        let action = line
            .split("\"action\":\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("?");
        println!("     {action}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
