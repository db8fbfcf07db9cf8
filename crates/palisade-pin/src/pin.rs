//! Pins: what they are, how they are written, and how to compute them from certificates.
//!
//! Two forms are supported:
//! - **SPKI pins**, `sha256/<base64>`: the SHA-256 of the certificate's DER
//!   `SubjectPublicKeyInfo`, as in HPKP (RFC 7469), OkHttp, TrustKit and Android's network
//!   security config. The recommended form.
//! - **Certificate fingerprints**, `AA:BB:...:FF`: the SHA-256 of the whole DER certificate, as
//!   `openssl x509 -noout -fingerprint -sha256` prints it.
//!
//! # Why SPKI pins are the better choice
//! A certificate fingerprint changes every time the certificate is renewed, even when the key
//! stays the same: with Let's Encrypt that is every 60 to 90 days, and a client that shipped
//! the old fingerprint breaks on renewal day. An SPKI pin names the key, so it survives
//! renewals that keep the key, and it lets you pin a CA's key (an intermediate or a root) and
//! accept every certificate that CA issues. Backup pins are also only practical with SPKI pins:
//! you can generate a backup key pair today, pin its public key, and keep it offline, whereas a
//! backup *certificate* fingerprint requires the backup certificate to exist already.
//! Fingerprints are supported because existing deployments use them.
//!
//! # Parsing
//! [`Pin::parse`] is tolerant of what operators paste: the `sha256/` prefix in any case, base64
//! with or without `=` padding, hex in either case, with or without colons, and the
//! `sha256 Fingerprint=` prefix that openssl prints. [`Pin`]'s `Display` is canonical
//! (`sha256/` + padded base64, or upper-case colon-separated hex) and parses back to the same
//! pin.
//!
//! # Errors and panics
//! Parsing returns [`PinError::InvalidPin`] saying what was expected; computing pins returns
//! [`PinError::UnparseableCertificate`] or [`PinError::NoCertificate`]. Nothing here panics, on
//! any input.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use palisade_core::time::UnixTime;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{PinError, shorten};

/// What a pin hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PinKind {
    /// SHA-256 of the DER `SubjectPublicKeyInfo` (`sha256/<base64>`).
    Spki,
    /// SHA-256 of the whole DER certificate (`AA:BB:...`).
    Certificate,
}

/// One pin: a SHA-256 digest of a public key or of a whole certificate.
///
/// ```
/// use palisade_pin::{Pin, PinKind};
///
/// let pin: Pin = "SHA256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw".parse()?;
/// assert_eq!(pin.kind(), PinKind::Spki);
/// assert_eq!(pin.to_string(), "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=");
///
/// let fp = Pin::parse("cdce7b43f0d1a28cd02bf0c2223d66eb3453bf74fd2ef078e902b2db23064e1f")?;
/// assert_eq!(fp.kind(), PinKind::Certificate);
/// assert!(fp.to_string().starts_with("CD:CE:7B:43:"));
/// # Ok::<(), palisade_pin::PinError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin {
    kind: PinKind,
    digest: [u8; 32],
}

const EXPECTED: &str = "`sha256/` followed by the base64 SHA-256 of a SubjectPublicKeyInfo \
     (44 characters with padding), or a SHA-256 certificate fingerprint (64 hex digits, \
     optionally colon-separated as `AA:BB:...`)";

impl Pin {
    /// An SPKI pin from a SHA-256 digest of a DER `SubjectPublicKeyInfo`.
    pub const fn spki_sha256(digest: [u8; 32]) -> Self {
        Self {
            kind: PinKind::Spki,
            digest,
        }
    }

    /// A certificate pin from a SHA-256 digest of a whole DER certificate.
    pub const fn certificate_sha256(digest: [u8; 32]) -> Self {
        Self {
            kind: PinKind::Certificate,
            digest,
        }
    }

    /// The SPKI pin of a DER `SubjectPublicKeyInfo` (hashes it; does not parse it).
    pub fn of_spki_der(spki: &[u8]) -> Self {
        Self::spki_sha256(sha256(spki))
    }

    /// The fingerprint pin of a DER certificate (hashes it; does not parse it).
    pub fn of_certificate_der(certificate: &[u8]) -> Self {
        Self::certificate_sha256(sha256(certificate))
    }

    /// Parses a pin in either form (see the [module docs](self) for what is accepted).
    ///
    /// # Errors
    /// [`PinError::InvalidPin`], naming the accepted forms.
    pub fn parse(input: &str) -> Result<Self, PinError> {
        let invalid = |expected: &'static str| PinError::InvalidPin {
            input: shorten(input),
            expected,
        };
        let s = input.trim();
        if let Some(b64) = strip_prefix_ignore_case(s, "sha256/") {
            let engine = if b64.ends_with('=') {
                &STANDARD
            } else {
                &STANDARD_NO_PAD
            };
            let bytes = engine.decode(b64).map_err(|_| {
                invalid("`sha256/` followed by standard base64 (A-Z a-z 0-9 + /, `=` padding)")
            })?;
            let digest = <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| invalid("`sha256/` followed by the base64 of exactly 32 bytes"))?;
            return Ok(Self::spki_sha256(digest));
        }
        if strip_prefix_ignore_case(s, "sha1/").is_some() {
            return Err(invalid(
                "a SHA-256 pin (`sha256/...`): SHA-1 pins are not supported",
            ));
        }
        let hex = strip_prefix_ignore_case(s, "sha256 fingerprint=")
            .or_else(|| strip_prefix_ignore_case(s, "sha256:"))
            .unwrap_or(s);
        parse_hex_fingerprint(hex)
            .map(Self::certificate_sha256)
            .ok_or_else(|| invalid(EXPECTED))
    }

    /// What the pin hashes.
    pub const fn kind(&self) -> PinKind {
        self.kind
    }

    /// The SHA-256 digest.
    pub const fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Whether this is an SPKI pin.
    pub const fn is_spki(&self) -> bool {
        matches!(self.kind, PinKind::Spki)
    }
}

impl FromStr for Pin {
    type Err = PinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PinKind::Spki => {
                let mut buf = [0u8; 44];
                // 32 bytes always encode to exactly 44 padded base64 characters.
                match STANDARD.encode_slice(self.digest, &mut buf) {
                    Ok(n) => {
                        let text = buf.get(..n).unwrap_or_default();
                        let text = core::str::from_utf8(text).map_err(|_| fmt::Error)?;
                        write!(f, "sha256/{text}")
                    }
                    Err(_) => Err(fmt::Error),
                }
            }
            PinKind::Certificate => {
                for (i, b) in self.digest.iter().enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{b:02X}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// Both pins of one certificate, with its subject for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePins {
    spki: Pin,
    certificate: Pin,
    subject: String,
    not_after: UnixTime,
}

impl CertificatePins {
    /// The `sha256/` SPKI pin (recommended).
    pub fn spki(&self) -> Pin {
        self.spki
    }

    /// The SHA-256 fingerprint of the whole certificate.
    pub fn certificate(&self) -> Pin {
        self.certificate
    }

    /// The certificate's subject, as an RFC 4514 string (`CN=example.com, O=...`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// When the certificate expires (`notAfter`; the epoch for a date before 1970).
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }
}

impl fmt::Display for CertificatePins {
    /// `sha256/...  AA:BB:...  CN=...`, one line, for tools.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}  {}", self.spki, self.certificate, self.subject)
    }
}

/// Computes the pins of one or more DER certificates, concatenated.
///
/// # Errors
/// [`PinError::NoCertificate`] for empty input; [`PinError::UnparseableCertificate`] when a
/// certificate (or trailing bytes) is not valid X.509 DER.
pub fn pins_from_der(der: &[u8]) -> Result<Vec<CertificatePins>, PinError> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let index = out.len();
        let (remaining, pins) = certificate_pins(rest, index)?;
        out.push(pins);
        rest = remaining;
    }
    if out.is_empty() {
        return Err(PinError::NoCertificate);
    }
    Ok(out)
}

/// Computes the pins of every `CERTIFICATE` block of a PEM file (one certificate or a chain).
/// Other blocks (keys, parameters) and text between blocks are ignored.
///
/// # Errors
/// [`PinError::NoCertificate`] when there is no certificate block;
/// [`PinError::UnparseableCertificate`] for broken armour or a certificate that is not valid
/// X.509.
pub fn pins_from_pem(pem: &[u8]) -> Result<Vec<CertificatePins>, PinError> {
    let mut out = Vec::new();
    for (index, item) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let der = item.map_err(|e| PinError::UnparseableCertificate {
            index,
            reason: format!("bad PEM: {e}"),
        })?;
        let (rest, pins) = certificate_pins(&der, index)?;
        if !rest.is_empty() {
            return Err(trailing(index));
        }
        out.push(pins);
    }
    if out.is_empty() {
        return Err(PinError::NoCertificate);
    }
    Ok(out)
}

/// Computes pins from PEM (if the input contains a `-----BEGIN` line) or else from DER.
///
/// # Errors
/// As [`pins_from_pem`] and [`pins_from_der`].
pub fn pins_from_bytes(input: &[u8]) -> Result<Vec<CertificatePins>, PinError> {
    if input.windows(10).any(|w| w == b"-----BEGIN") {
        pins_from_pem(input)
    } else {
        pins_from_der(input)
    }
}

/// The DER `SubjectPublicKeyInfo` of one certificate at the start of `der`, and what follows.
pub(crate) fn spki_of(der: &[u8], index: usize) -> Result<(&[u8], &[u8]), PinError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PinError::UnparseableCertificate {
            index,
            reason: e.to_string(),
        })?;
    Ok((rest, cert.tbs_certificate.subject_pki.raw))
}

fn certificate_pins(der: &[u8], index: usize) -> Result<(&[u8], CertificatePins), PinError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PinError::UnparseableCertificate {
            index,
            reason: e.to_string(),
        })?;
    let used = der.len().saturating_sub(rest.len());
    let whole = der.get(..used).ok_or_else(|| trailing(index))?;
    Ok((
        rest,
        CertificatePins {
            spki: Pin::of_spki_der(cert.tbs_certificate.subject_pki.raw),
            certificate: Pin::of_certificate_der(whole),
            subject: cert.subject().to_string(),
            not_after: UnixTime::from_secs(
                u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
            ),
        },
    ))
}

fn trailing(index: usize) -> PinError {
    PinError::UnparseableCertificate {
        index,
        reason: "trailing bytes after the certificate".to_owned(),
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// 64 hex digits, or 32 colon-separated pairs.
fn parse_hex_fingerprint(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let bytes = s.as_bytes();
    let pairs: Vec<&[u8]> = if s.contains(':') {
        bytes.split(|&b| b == b':').collect()
    } else if bytes.len() == 64 {
        bytes.chunks(2).collect()
    } else {
        return None;
    };
    if pairs.len() != 32 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(pairs) {
        let [hi, lo] = <[u8; 2]>::try_from(pair).ok()?;
        *slot = (hex_digit(hi)? << 4) | hex_digit(lo)?;
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_tolerantly_and_prints_canonically() {
        let canonical = "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=";
        for input in [
            canonical,
            "SHA256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw=",
            "  sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw \n",
        ] {
            assert_eq!(Pin::parse(input).unwrap().to_string(), canonical, "{input}");
        }
        let fp = "CD:CE:7B:43:F0:D1:A2:8C:D0:2B:F0:C2:22:3D:66:EB:34:53:BF:74:FD:2E:F0:78:E9:02:B2:DB:23:06:4E:1F";
        for input in [
            fp.to_owned(),
            fp.to_lowercase(),
            fp.replace(':', ""),
            format!("sha256 Fingerprint={fp}"),
            format!("SHA256:{}", fp.replace(':', "").to_lowercase()),
        ] {
            let pin = Pin::parse(&input).unwrap();
            assert_eq!(pin.kind(), PinKind::Certificate);
            assert_eq!(pin.to_string(), fp, "{input}");
        }
    }

    #[test]
    fn rejects_with_what_was_expected() {
        for input in [
            "",
            "sha256/",
            "sha256/AAAA",
            "sha256/!!!!",
            "sha1/DmxUShsZuNiqPQsX2Oi9uv2sCnw=",
            "CD:CE",
            "CD:CE:7B:43:F0:D1:A2:8C:D0:2B:F0:C2:22:3D:66:EB:34:53:BF:74:FD:2E:F0:78:E9:02:B2:DB:23:06:4E:1", // odd
            "CDCE7B43F0D1A28CD02BF0C2223D66EB3453BF74FD2EF078E902B2DB23064E1G",
            "CD:CE:7B:43:F0:D1:A2:8C:D0:2B:F0:C2:22:3D:66:EB:34:53:BF:74:FD:2E:F0:78:E9:02:B2:DB:23:06:4E:1F:00",
            "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYswAA=",
            "sha256/Qki64/MqmbIdrm1rNK01w/86A+mqRG8Oznlpkr1PYsw==",
            "é",
        ] {
            match Pin::parse(input) {
                Err(PinError::InvalidPin { expected, .. }) => {
                    assert!(!expected.is_empty());
                }
                other => panic!("{input:?} gave {other:?}"),
            }
        }
        let err = Pin::parse("sha1/DmxUShsZuNiqPQsX2Oi9uv2sCnw=").unwrap_err();
        assert!(err.to_string().contains("SHA-1 pins are not supported"));
    }

    #[test]
    fn empty_and_garbage_certificates_are_errors() {
        assert_eq!(pins_from_der(b""), Err(PinError::NoCertificate));
        assert_eq!(pins_from_pem(b"hello"), Err(PinError::NoCertificate));
        assert!(matches!(
            pins_from_der(b"\x30\x03\x02\x01\x01"),
            Err(PinError::UnparseableCertificate { index: 0, .. })
        ));
        assert!(matches!(
            pins_from_bytes(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(PinError::UnparseableCertificate { index: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn display_parses_back(digest in any::<[u8; 32]>(), spki in any::<bool>()) {
            let pin = if spki { Pin::spki_sha256(digest) } else { Pin::certificate_sha256(digest) };
            let text = pin.to_string();
            prop_assert_eq!(Pin::parse(&text)?, pin);
            if !spki {
                prop_assert_eq!(Pin::parse(&text.to_lowercase())?, pin);
                prop_assert_eq!(Pin::parse(&text.replace(':', ""))?, pin);
            }
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = Pin::parse(&s);
        }

        #[test]
        fn certificate_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = pins_from_bytes(&bytes);
        }
    }
}
