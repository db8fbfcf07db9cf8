//! The one error type of this crate, [`PinError`].
//!
//! Variants fall in three groups a caller acts on differently:
//! - configuration errors (a malformed pin, host or pattern; a pin set without a backup pin),
//!   raised while building a [`PinPolicy`](crate::PinPolicy), never at connection time;
//! - input errors ([`PinError::UnparseableCertificate`], [`PinError::NoCertificate`]);
//! - verdicts on a connection: [`PinError::NoPins`], [`PinError::Mismatch`],
//!   [`PinError::Denied`].
//!
//! Pins and host names are public values, so they appear in messages: an operator can copy the
//! right `sha256/...` pin straight from a mismatch error.

use core::fmt;

use crate::pin::Pin;

/// Everything that can go wrong when parsing pins, building pin sets or checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// A pin string is neither a `sha256/<base64>` SPKI pin nor a SHA-256 certificate fingerprint.
    #[error("invalid pin {input:?}: expected {expected}")]
    InvalidPin {
        /// The input, shortened to 100 characters.
        input: String,
        /// What a valid pin looks like.
        expected: &'static str,
    },
    /// A host name cannot be canonicalised (empty, bad characters, invalid IDNA).
    #[error("invalid host name {input:?}: {reason}")]
    InvalidHost {
        /// The input, shortened to 100 characters.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A host pattern is not `host`, `*.suffix` or `**.suffix`.
    #[error("invalid host pattern {input:?}: expected {expected}")]
    InvalidHostPattern {
        /// The input, shortened to 100 characters.
        input: String,
        /// What a valid pattern looks like.
        expected: &'static str,
    },
    /// A certificate could not be parsed as X.509 DER (or its PEM armour is broken).
    #[error("certificate {index} cannot be parsed: {reason}")]
    UnparseableCertificate {
        /// Its position in the input, from zero.
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// The input holds no certificate at all.
    #[error("no certificate found in the input")]
    NoCertificate,
    /// A pin set has fewer than two pins and a single pin was not explicitly allowed.
    #[error(
        "the pin set for {pattern} has {count} distinct pin(s): at least two are required so that \
         a backup key exists (RFC 7469 section 2.5), unless a single pin is explicitly allowed"
    )]
    TooFewPins {
        /// The set's host pattern.
        pattern: String,
        /// How many distinct pins it has.
        count: usize,
    },
    /// Every pin of a set matches the chain the server serves today, so a key compromise or
    /// loss would lock every client out (RFC 7469 section 2.5).
    #[error(
        "every pin of the set for {pattern} matches the currently served chain: add a backup pin \
         for a key that is not in it (RFC 7469 section 2.5)"
    )]
    NoBackupPin {
        /// The set's host pattern.
        pattern: String,
    },
    /// No pin of a set matches the chain the server serves today: clients would be locked out
    /// at once.
    #[error(
        "no pin of the set for {pattern} matches the currently served chain, which presents {}",
        PinList(served)
    )]
    NoPinMatchesServedChain {
        /// The set's host pattern.
        pattern: String,
        /// The SPKI pins of the served chain.
        served: Vec<Pin>,
    },
    /// Two pin sets have the same host pattern.
    #[error("two pin sets have the host pattern {pattern}")]
    DuplicatePattern {
        /// The repeated pattern.
        pattern: String,
    },
    /// Only `sha256/` SPKI pins can go on the deny list (a denied key must stay denied across
    /// certificate renewals).
    #[error("deny-list entries must be sha256/ SPKI pins, got the certificate fingerprint {pin}")]
    DenyListNotSpki {
        /// The refused entry.
        pin: Pin,
    },
    /// The policy has no pin set for this host and unpinned hosts are not allowed.
    #[error("no pins are configured for host {host}")]
    NoPins {
        /// The canonical host name.
        host: String,
    },
    /// No verified path of the chain contains a pinned key or certificate.
    #[error(
        "pin mismatch for {host}: expected one of {}, the verified paths presented {}",
        PinList(expected),
        PathList(presented)
    )]
    Mismatch {
        /// The canonical host name.
        host: String,
        /// The pins of the host's pin set.
        expected: Vec<Pin>,
        /// For every verified path tried, the `sha256/` SPKI pin of each certificate on it, from
        /// the end-entity certificate to the trust anchor.
        presented: Vec<Vec<Pin>>,
    },
    /// A pin file (or the `CERT_PINNING_FINGERPRINTS` value) is malformed or breaks a rule.
    #[error("pin file line {line}, column {column}: {reason}")]
    File {
        /// The line, from 1 (0 when the file could not be read at all).
        line: usize,
        /// The column in characters, from 1.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// Every verified path contains a key on the deny list.
    #[error("the certificate chain for {host} contains the denied key {pin}")]
    Denied {
        /// The canonical host name.
        host: String,
        /// The denied SPKI pin found.
        pin: Pin,
    },
}

/// `[a, b, c]`.
struct PinList<'a>(&'a [Pin]);

impl fmt::Display for PinList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, pin) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(pin, f)?;
        }
        f.write_str("]")
    }
}

/// `[a, b] or [c, d]`.
struct PathList<'a>(&'a [Vec<Pin>]);

impl fmt::Display for PathList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        for (i, path) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            PinList(path).fmt(f)?;
        }
        Ok(())
    }
}

/// The first 100 characters of `s`, for error messages.
pub(crate) fn shorten(s: &str) -> String {
    s.chars().take(100).collect()
}
