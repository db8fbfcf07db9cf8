//! Stored password hashes in the PHC string format.
//!
//! A [`PasswordHash`] is a parsed and checked `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`
//! string: what the database stores. Parsing takes the string as it was stored and never
//! computes a hash, so it is cheap and safe on untrusted input.
//!
//! # Errors
//! [`PasswordHash::parse`] returns [`Error::MalformedHash`] for anything that is not a complete
//! Argon2 PHC string (every field present, `m`, `t` and `p` in range, salt of 8 to 48 bytes,
//! output of 10 to 64 bytes), and [`Error::UnsupportedAlgorithm`] for a PHC string of another
//! algorithm.
//!
//! # Panics
//! None, on any input (the `password_phc` fuzz target checks this).
//!
//! # Security
//! A hash is not the password, but whoever holds it can guess passwords offline at the speed
//! of their hardware. So [`PasswordHash`] has no `Display`, and its `Debug` shows the algorithm
//! and parameters but not the salt or output: a stray `{:?}` in a log line does not leak it.
//! The full string comes out only through [`PasswordHash::as_str`], for storage.

use core::fmt;
use core::str::FromStr;

use crate::{Error, Params};

/// Salt and output buffers are at most this long (the PHC format's own limit).
const MAX_BYTES: usize = 64;

/// An Argon2 variant.
///
/// New hashes are always [`Algorithm::Argon2id`]; hashes of the other two verify, and
/// [`Hasher::needs_rehash`](crate::Hasher::needs_rehash) reports them for upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Argon2id: RFC 9106's recommendation; the one this crate creates.
    Argon2id,
    /// Argon2i (data-independent memory access only).
    Argon2i,
    /// Argon2d (data-dependent memory access only).
    Argon2d,
}

impl Algorithm {
    /// The PHC identifier (`argon2id`, `argon2i`, `argon2d`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Argon2id => "argon2id",
            Algorithm::Argon2i => "argon2i",
            Algorithm::Argon2d => "argon2d",
        }
    }

    pub(crate) const fn to_argon2(self) -> argon2::Algorithm {
        match self {
            Algorithm::Argon2id => argon2::Algorithm::Argon2id,
            Algorithm::Argon2i => argon2::Algorithm::Argon2i,
            Algorithm::Argon2d => argon2::Algorithm::Argon2d,
        }
    }
}

/// A parsed, well-formed Argon2 password hash in PHC string format.
///
/// ```
/// use palisade_password::{Algorithm, PasswordHash};
///
/// // From the Argon2 reference implementation's tests: "password", salt "somesalt".
/// let stored = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$\
///               CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
/// let hash: PasswordHash = stored.parse()?;
/// assert_eq!(hash.algorithm(), Algorithm::Argon2id);
/// assert_eq!(hash.params().m_kib(), 65536);
/// assert_eq!(hash.as_str(), stored);
/// // Debug leaves out the salt and the output.
/// assert!(!format!("{hash:?}").contains("CTFh"));
/// # Ok::<(), palisade_password::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    phc: String,
    algorithm: Algorithm,
    version: u32,
    params: Params,
    salt: [u8; MAX_BYTES],
    salt_len: usize,
    output: [u8; MAX_BYTES],
    output_len: usize,
}

impl PasswordHash {
    /// Parses and checks a stored PHC string.
    ///
    /// # Errors
    /// [`Error::MalformedHash`] or [`Error::UnsupportedAlgorithm`]; see the module docs.
    pub fn parse(phc: &str) -> Result<Self, Error> {
        let parsed = argon2::PasswordHash::new(phc).map_err(|e| malformed_from(&e))?;
        let algorithm = match parsed.algorithm.as_str() {
            "argon2id" => Algorithm::Argon2id,
            "argon2i" => Algorithm::Argon2i,
            "argon2d" => Algorithm::Argon2d,
            _ => return Err(Error::UnsupportedAlgorithm),
        };
        // The reference implementation reads a missing version as 0x10 (Argon2 1.0).
        let version = parsed.version.unwrap_or(0x10);
        if version != 0x10 && version != 0x13 {
            return Err(malformed("unknown argon2 version"));
        }

        let (mut m, mut t, mut p) = (None, None, None);
        for (name, value) in parsed.params.iter() {
            let slot = match name.as_str() {
                "m" => &mut m,
                "t" => &mut t,
                "p" => &mut p,
                _ => {
                    return Err(malformed(
                        "parameters other than m, t and p are not supported",
                    ));
                }
            };
            let value = value
                .decimal()
                .map_err(|_| malformed("parameter is not a decimal number"))?;
            *slot = Some(value);
        }
        let (Some(m), Some(t), Some(p)) = (m, t, p) else {
            return Err(malformed("m, t and p are all required"));
        };
        let params = Params::new(m, t, p).map_err(|_| malformed("parameters out of range"))?;

        let salt_value = parsed.salt.ok_or(malformed("salt missing"))?;
        let mut salt = [0u8; MAX_BYTES];
        let salt_len = salt_value
            .decode_b64(&mut salt)
            .map_err(|_| malformed("salt is not valid base64"))?
            .len();
        if salt_len < argon2::MIN_SALT_LEN {
            return Err(malformed("salt shorter than 8 bytes"));
        }

        let out = parsed.hash.ok_or(malformed("hash output missing"))?;
        let mut output = [0u8; MAX_BYTES];
        let output_len = out.len();
        output
            .get_mut(..output_len)
            .ok_or(malformed("hash output too long"))?
            .copy_from_slice(out.as_bytes());

        Ok(Self {
            phc: phc.to_owned(),
            algorithm,
            version,
            params,
            salt,
            salt_len,
            output,
            output_len,
        })
    }

    /// Builds the PHC string of a hash this crate just computed.
    pub(crate) fn from_parts(params: Params, salt: &[u8], output: &[u8]) -> Result<Self, Error> {
        let argon2_params = params.to_argon2()?;
        let salt_string = argon2::password_hash::SaltString::encode_b64(salt)
            .map_err(|_| malformed("salt length"))?;
        let phc = argon2::PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: argon2::password_hash::ParamsString::try_from(&argon2_params)
                .map_err(|_| malformed("parameters"))?,
            salt: Some(salt_string.as_salt()),
            hash: Some(
                argon2::password_hash::Output::new(output).map_err(|_| malformed("output"))?,
            ),
        }
        .to_string();
        Self::parse(&phc)
    }

    /// The PHC string, exactly as parsed or created: what to store.
    pub fn as_str(&self) -> &str {
        &self.phc
    }

    /// The PHC string, by value.
    pub fn into_string(self) -> String {
        self.phc
    }

    /// The Argon2 variant.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The Argon2 version: `0x13` (19) for current hashes, `0x10` for Argon2 1.0.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The cost parameters the hash was made with.
    pub fn params(&self) -> Params {
        self.params
    }

    pub(crate) fn salt(&self) -> &[u8] {
        self.salt.get(..self.salt_len).unwrap_or_default()
    }

    pub(crate) fn output(&self) -> &[u8] {
        self.output.get(..self.output_len).unwrap_or_default()
    }

    pub(crate) fn argon2_version(&self) -> argon2::Version {
        if self.version == 0x10 {
            argon2::Version::V0x10
        } else {
            argon2::Version::V0x13
        }
    }
}

impl FromStr for PasswordHash {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Debug for PasswordHash {
    /// Algorithm and parameters only: the salt and output stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("algorithm", &self.algorithm)
            .field("version", &self.version)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn malformed(reason: &'static str) -> Error {
    Error::MalformedHash { reason }
}

fn malformed_from(e: &argon2::password_hash::Error) -> Error {
    use argon2::password_hash::Error as E;
    malformed(match e {
        E::PhcStringField => "not a phc string or a field is missing",
        E::PhcStringTrailingData => "trailing data after the hash output",
        E::B64Encoding(_) => "hash output is not valid base64",
        E::OutputSize { .. } => "hash output length out of range",
        E::SaltInvalid(_) => "salt is invalid",
        E::ParamNameDuplicated => "duplicate parameter",
        E::ParamNameInvalid | E::ParamValueInvalid(_) | E::ParamsMaxExceeded => {
            "invalid parameters"
        }
        E::Version => "invalid version",
        _ => "invalid phc string",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                        WKq6Hh2S2bV4bWFfJ9lKqG9Yq4z8lX3s1zqK7rXz0aE";

    #[test]
    fn parses_fields() {
        let h = PasswordHash::parse(GOOD).unwrap();
        assert_eq!(h.algorithm(), Algorithm::Argon2id);
        assert_eq!(h.version(), 19);
        assert_eq!(h.params(), Params::OWASP_19_MIB);
        assert_eq!(h.salt(), b"somesaltsomesalt");
        assert_eq!(h.output().len(), 32);
        assert_eq!(h.as_str(), GOOD);
    }

    #[test]
    fn debug_hides_salt_and_output() {
        let h = PasswordHash::parse(GOOD).unwrap();
        let shown = format!("{h:?}");
        assert!(shown.contains("Argon2id"));
        assert!(!shown.contains("c29tZXNhbHRzb21lc2FsdA"));
        assert!(!shown.contains("WKq6"));
    }

    #[test]
    fn missing_version_is_argon2_1_0() {
        let h = PasswordHash::parse(
            "$argon2i$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$\
             WKq6Hh2S2bV4bWFfJ9lKqG9Yq4z8lX3s1zqK7rXz0aE",
        )
        .unwrap();
        assert_eq!(h.version(), 0x10);
        assert_eq!(h.algorithm(), Algorithm::Argon2i);
    }

    #[test]
    fn rejects_malformed() {
        let salt_out = "$c29tZXNhbHRzb21lc2FsdA$WKq6Hh2S2bV4bWFfJ9lKqG9Yq4z8lX3s1zqK7rXz0aE";
        for bad in [
            String::new(),
            "$".to_owned(),
            "argon2id$v=19".to_owned(),
            format!("$argon2id$v=19$m=19456,t=2{salt_out}"),
            format!("$argon2id$v=19$m=19456,t=2,p=1,keyid=AAAA{salt_out}"),
            format!("$argon2id$v=18$m=19456,t=2,p=1{salt_out}"),
            format!("$argon2id$v=19$m=7,t=2,p=1{salt_out}"),
            format!("$argon2id$v=19$m=19456,t=0,p=1{salt_out}"),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$WKq6Hh2S2bV4bWFfJ9lKqG9Yq4z8lX3s1zqK7rXz0aE"
                .to_owned(),
            format!("$argon2id$v=19$m=19456,t=2,p=1{salt_out}$extra"),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$!!!".to_owned(),
        ] {
            assert!(
                matches!(PasswordHash::parse(&bad), Err(Error::MalformedHash { .. })),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn other_algorithms_are_unsupported() {
        assert!(matches!(
            PasswordHash::parse(
                "$scrypt$ln=16,r=8,p=1$c29tZXNhbHRzb21lc2FsdA$WKq6Hh2S2bV4bWFfJ9lKqG9Yq4z8lX3s1zqK7rXz0aE"
            ),
            Err(Error::UnsupportedAlgorithm)
        ));
    }
}
