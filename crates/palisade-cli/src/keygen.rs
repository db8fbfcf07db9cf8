//! `palisade keygen`: new keys in the forms the crates load.

use std::io::Write as _;

use anyhow::Result;
use base64::Engine as _;
use palisade_core::keyring::{Key, KeyId, KeyState};
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::time::{Clock, SystemClock};
use zeroize::Zeroizing;

/// What kind of key to make.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A 256-bit field-encryption key, as `id:active:base64` for a keyring variable or file.
    Field,
    /// A Fernet key (URL-safe base64 of 32 bytes), as Python's `Fernet.generate_key()` prints.
    Fernet,
    /// A 256-bit HMAC key (blind indexes, recovery codes, API keys), as `id:active:base64`.
    Hmac,
    /// A 256-bit HS256 JWT signing key, as `id:active:base64`.
    #[value(name = "jwt-hs256")]
    JwtHs256,
    /// An Ed25519 signing key (JWT EdDSA, audit checkpoints), as `id:active:base64` of its seed.
    Ed25519,
}

/// `palisade keygen` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The kind of key.
    #[arg(value_enum)]
    kind: Kind,
    /// The key id (default: the year and quarter, for example `2026q4`).
    #[arg(long)]
    id: Option<String>,
    /// The key's state: `decrypt-only` to roll a key in before it becomes active.
    #[arg(long, value_enum, default_value = "active")]
    state: State,
}

/// The state a new key starts in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum State {
    /// Encrypts (signs) and decrypts (verifies).
    Active,
    /// Decrypts (verifies) only, until made active.
    DecryptOnly,
}

/// Prints one new key.
pub(crate) fn run(args: &Args) -> Result<()> {
    let rng = SystemRandom;
    let line = match args.kind {
        Kind::Fernet => {
            let mut raw = Zeroizing::new([0u8; 32]);
            rng.fill(raw.as_mut())?;
            Zeroizing::new(base64::engine::general_purpose::URL_SAFE.encode(raw.as_ref()))
        }
        Kind::Field | Kind::Hmac | Kind::JwtHs256 | Kind::Ed25519 => {
            let id = match &args.id {
                Some(id) => KeyId::new(id)?,
                None => KeyId::new(&quarter_id(SystemClock.now().as_secs()))?,
            };
            let state = match args.state {
                State::Active => KeyState::Active,
                State::DecryptOnly => KeyState::DecryptOnly,
            };
            if matches!(args.kind, Kind::Field) {
                // The field cipher's own rule (ids of at most 16 bytes), checked here too, so
                // no key is printed that `palisade field` would refuse.
                palisade_field::generate_key(id.as_str(), state)?
            } else {
                Key::generate(id, state, 32, &rng)?.expose_spec()
            }
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.as_str())?;
    if matches!(args.kind, Kind::Ed25519) {
        // The public half on stderr, so that `> key` stores the seed alone.
        let mut err = std::io::stderr().lock();
        writeln!(err, "{}", ed25519_public(line.as_str())?)?;
    }
    Ok(())
}

/// What `keygen ed25519` says beside the seed: the public key as an audit checkpoint verifier
/// key (note encoding, named by the key id), and where to keep each half.
fn ed25519_public(spec: &str) -> Result<String> {
    let ring = palisade_core::keyring::Keyring::parse(spec)?;
    let key = ring.active()?;
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        key.material()
            .expose_secret()
            .try_into()
            .map_err(|_| anyhow::anyhow!("an ed25519 seed is 32 bytes"))?,
    );
    let origin = "unused"; // the verifier key does not depend on the origin
    let signer = palisade_audit::CheckpointSigner::from_seed(key.id().as_str(), origin, &seed)?;
    Ok(format!(
        "# public key (audit checkpoint verifier key): {}\n\
         # keep the line on stdout (the seed) secret, with the writer only (a file or an\n\
         # environment variable, never a command line); publish the public key and give it to\n\
         # `palisade audit verify --public-key-file`.",
        signer.verifier().to_vkey()
    ))
}

/// `2026q4` for a time in the last quarter of 2026 (UTC).
fn quarter_id(unix_secs: u64) -> String {
    let (year, month) = civil_year_month(unix_secs / 86_400);
    format!("{year}q{}", (month - 1) / 3 + 1)
}

/// Year and month of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_year_month(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_ids() {
        assert_eq!(quarter_id(0), "1970q1");
        assert_eq!(quarter_id(1_700_000_000), "2023q4"); // 2023-11-14
        assert_eq!(quarter_id(1_711_929_599), "2024q1"); // 2024-03-31T23:59:59Z
        assert_eq!(quarter_id(1_711_929_600), "2024q2"); // 2024-04-01
        assert_eq!(quarter_id(951_782_400), "2000q1"); // 2000-02-29
    }
}
