//! `otpauth://` URIs, the Google Authenticator Key URI format that enrollment QR codes carry.
//!
//! [`OtpauthUri::expose_uri`] writes the canonical form: the issuer both as the label prefix and
//! as the `issuer` parameter (the format's recommendation, for old and new apps alike), every
//! parameter explicit, unpadded upper-case base32, and percent-encoding of everything outside
//! the unreserved characters and `@`:
//!
//! `otpauth://totp/ACME%20Co:alice@example.com?secret=...&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30`
//!
//! [`OtpauthUri::parse`] reads what real apps and services produce: any case in the scheme,
//! type, parameter names and algorithm; spaces, lower case and padding in the secret; `:` or
//! `%3A` between issuer and account, with optional spaces before the account; `+` or `%20` for
//! spaces in parameters; unknown parameters (`image`, ...) ignored.
//!
//! # Label and parameter issuers
//! When the label's prefix and the `issuer` parameter differ, the parameter wins by default
//! ([`IssuerMismatch::PreferParameter`]), as Google Authenticator and otphp do: Microsoft 365
//! puts the tenant in the label (`Contoso:alice@contoso.com`) and `issuer=Microsoft` in the
//! parameter, and the parameter is what the app shows. The two are compared ignoring ASCII case
//! and reading a `+` in the label as a space (PHP's `urlencode` writes `ACME+Co`), so those are
//! no conflict even under [`IssuerMismatch::Reject`], which refuses any other difference. An
//! account's `+` stays a `+` (`alice+tag@example.com`).
//!
//! # Errors
//! [`OtpError::InvalidUri`] names what is wrong (never the secret); [`OtpError::IssuerMismatch`];
//! the secret's errors ([`OtpError::WeakSecret`], [`OtpError::InvalidBase32`], ...).
//!
//! # Security
//! A URI holds the secret: the emitting method is named `expose_uri` and returns a zeroizing
//! string; `Debug` shows `***` for the secret. A secret below 128 bits is refused unless the
//! caller opts in with [`UriOptions::accept_weak_secret`], and the parsed value reports its
//! [`SecretStrength`].

use core::fmt;
use core::fmt::Write as _;

use zeroize::Zeroizing;

use crate::OtpError;
use crate::otp::{Digits, Period, TotpParams};
use crate::secret::{Algorithm, OtpSecret, SecretStrength};

/// The longest URI [`OtpauthUri::parse`] reads.
pub const MAX_URI_LEN: usize = 4_096;
/// The longest issuer or account name, in bytes. Percent-encoding can triple a name and the
/// issuer appears twice, so this keeps every emitted URI below [`MAX_URI_LEN`] (and readable
/// by the parser again).
pub const MAX_NAME_LEN: usize = 256;

/// Time-based or counter-based, with the parameter that goes with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtpKind {
    /// `otpauth://totp/...` with its `period`.
    Totp {
        /// The step length.
        period: Period,
    },
    /// `otpauth://hotp/...` with its initial `counter`.
    Hotp {
        /// The first counter.
        counter: u64,
    },
}

/// What to do when the label's issuer and the `issuer` parameter differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum IssuerMismatch {
    /// Refuse the URI ([`OtpError::IssuerMismatch`]): for URIs from an untrusted source, where
    /// a difference may be a phishing attempt.
    Reject,
    /// Keep the parameter, as Google Authenticator and otphp do (the default).
    #[default]
    PreferParameter,
    /// Keep the label's prefix.
    PreferLabel,
}

/// How tolerant [`OtpauthUri::parse_with`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UriOptions {
    issuer_mismatch: IssuerMismatch,
    accept_weak_secret: bool,
}

impl UriOptions {
    /// The defaults: the `issuer` parameter wins over the label (see
    /// [Label and parameter issuers](self#label-and-parameter-issuers)); secrets below 128
    /// bits are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the issuer-mismatch policy.
    #[must_use]
    pub const fn issuer_mismatch(mut self, policy: IssuerMismatch) -> Self {
        self.issuer_mismatch = policy;
        self
    }

    /// Accepts secrets below 128 bits (importing from a legacy system); check
    /// [`OtpauthUri::secret_strength`] afterwards.
    #[must_use]
    pub const fn accept_weak_secret(mut self) -> Self {
        self.accept_weak_secret = true;
        self
    }

    /// Whether secrets below 128 bits are accepted.
    pub const fn accepts_weak_secret(&self) -> bool {
        self.accept_weak_secret
    }
}

/// A parsed or to-be-emitted `otpauth://` URI.
///
/// ```
/// use palisade_otp::uri::OtpauthUri;
///
/// let uri = OtpauthUri::parse(
///     "OTPAUTH://totp/ACME%20Co%3A%20alice@example.com?secret=gezd gnbv gy3t qojq gezd gnbv gy3t qojq&issuer=ACME+Co",
/// )?;
/// assert_eq!(uri.issuer(), Some("ACME Co"));
/// assert_eq!(uri.account(), "alice@example.com");
/// assert_eq!(
///     uri.expose_uri().as_str(),
///     "otpauth://totp/ACME%20Co:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
///      &issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
/// );
/// # Ok::<(), palisade_otp::OtpError>(())
/// ```
pub struct OtpauthUri {
    kind: OtpKind,
    secret: OtpSecret,
    issuer: Option<String>,
    account: String,
    algorithm: Algorithm,
    digits: Digits,
}

impl OtpauthUri {
    /// A TOTP URI for `account` at `issuer`.
    ///
    /// # Errors
    /// [`OtpError::InvalidUri`] when the account is empty or either name holds a `:` (the
    /// format forbids it) or a control character.
    pub fn totp(
        secret: OtpSecret,
        params: &TotpParams,
        issuer: Option<&str>,
        account: &str,
    ) -> Result<Self, OtpError> {
        if params.t0 != 0 {
            return Err(OtpError::InvalidUri {
                reason: "the format cannot carry a t0 other than 0",
            });
        }
        Self::new(
            OtpKind::Totp {
                period: params.period,
            },
            secret,
            params.algorithm,
            params.digits,
            issuer,
            account,
        )
    }

    /// A URI of either kind.
    ///
    /// # Errors
    /// As [`OtpauthUri::totp`].
    pub fn new(
        kind: OtpKind,
        secret: OtpSecret,
        algorithm: Algorithm,
        digits: Digits,
        issuer: Option<&str>,
        account: &str,
    ) -> Result<Self, OtpError> {
        let account = account.trim();
        if account.is_empty() {
            return Err(OtpError::InvalidUri {
                reason: "the account name is empty",
            });
        }
        let issuer = issuer.map(str::trim).filter(|i| !i.is_empty());
        for name in issuer.into_iter().chain([account]) {
            if name.len() > MAX_NAME_LEN {
                return Err(OtpError::InvalidUri {
                    reason: "issuer and account are limited to 256 bytes each",
                });
            }
            if name.contains(':') || name.chars().any(char::is_control) {
                return Err(OtpError::InvalidUri {
                    reason: "issuer and account may not hold ':' or control characters",
                });
            }
        }
        Ok(Self {
            kind,
            secret,
            issuer: issuer.map(str::to_owned),
            account: account.to_owned(),
            algorithm,
            digits,
        })
    }

    /// Parses with the strict defaults of [`UriOptions::new`].
    ///
    /// # Errors
    /// See the module documentation.
    pub fn parse(uri: &str) -> Result<Self, OtpError> {
        Self::parse_with(uri, &UriOptions::new())
    }

    /// Parses with `options`.
    ///
    /// # Errors
    /// See the module documentation.
    pub fn parse_with(uri: &str, options: &UriOptions) -> Result<Self, OtpError> {
        let invalid = |reason| OtpError::InvalidUri { reason };
        let uri = uri.trim();
        if uri.len() > MAX_URI_LEN {
            return Err(invalid("longer than 4096 bytes"));
        }
        let scheme = uri.get(..10).ok_or(invalid("not an otpauth:// uri"))?;
        if !scheme.eq_ignore_ascii_case("otpauth://") {
            return Err(invalid("not an otpauth:// uri"));
        }
        let rest = uri.get(10..).unwrap_or_default();
        let (kind_name, rest) = rest.split_once('/').ok_or(invalid("missing label"))?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (label_issuer, account) = {
            let label =
                percent_decode(label, false).ok_or(invalid("bad percent-encoding in label"))?;
            match label.split_once(':') {
                Some((issuer, account)) => {
                    (Some(issuer.trim().to_owned()), account.trim().to_owned())
                }
                None => (None, label.trim().to_owned()),
            }
        };
        if account.is_empty() {
            return Err(invalid("the account name is empty"));
        }

        let mut secret: Option<Zeroizing<String>> = None;
        let mut issuer_param: Option<String> = None;
        let mut algorithm: Option<String> = None;
        let mut digits: Option<String> = None;
        let mut period: Option<String> = None;
        let mut counter: Option<String> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.trim().to_ascii_lowercase();
            let slot = match key.as_str() {
                "secret" => {
                    if secret.is_some() {
                        return Err(invalid("duplicate secret parameter"));
                    }
                    let decoded = percent_decode(value, true)
                        .ok_or(invalid("bad percent-encoding in secret"))?;
                    secret = Some(Zeroizing::new(decoded));
                    continue;
                }
                "issuer" => &mut issuer_param,
                "algorithm" => &mut algorithm,
                "digits" => &mut digits,
                "period" => &mut period,
                "counter" => &mut counter,
                _ => continue,
            };
            if slot.is_some() {
                return Err(invalid("duplicate parameter"));
            }
            *slot = Some(
                percent_decode(value, true)
                    .ok_or(invalid("bad percent-encoding in a parameter"))?,
            );
        }

        let kind = if kind_name.eq_ignore_ascii_case("totp") {
            let period = match period {
                Some(p) => {
                    Period::from_secs(parse_number(&p).ok_or(invalid("period is not a number"))?)?
                }
                None => Period::default(),
            };
            OtpKind::Totp { period }
        } else if kind_name.eq_ignore_ascii_case("hotp") {
            let counter = counter.ok_or(invalid("hotp needs a counter"))?;
            OtpKind::Hotp {
                counter: parse_number(&counter).ok_or(invalid("counter is not a number"))?,
            }
        } else {
            return Err(invalid("type must be totp or hotp"));
        };
        let algorithm = match algorithm {
            Some(a) => Algorithm::from_name(&a).ok_or(invalid("unknown algorithm"))?,
            None => Algorithm::Sha1,
        };
        let digits = match digits {
            Some(d) => {
                let n = parse_number(&d).ok_or(invalid("digits is not a number"))?;
                Digits::new(u32::try_from(n).unwrap_or(u32::MAX))?
            }
            None => Digits::SIX,
        };
        let secret = secret.ok_or(invalid("missing secret"))?;
        let secret = if options.accept_weak_secret {
            OtpSecret::import_weak_base32(&secret)?.0
        } else {
            OtpSecret::from_base32(&secret)?
        };

        let issuer_param = issuer_param
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty());
        let label_issuer = label_issuer.filter(|i| !i.is_empty());
        let issuer = match (label_issuer, issuer_param) {
            (Some(label), Some(param)) if !same_issuer(&label, &param) => {
                match options.issuer_mismatch {
                    IssuerMismatch::Reject => return Err(OtpError::IssuerMismatch),
                    IssuerMismatch::PreferLabel => Some(label),
                    IssuerMismatch::PreferParameter => Some(param),
                }
            }
            (label, param) => param.or(label),
        };
        Self::new(kind, secret, algorithm, digits, issuer.as_deref(), &account)
    }

    /// Time- or counter-based, with its parameter.
    pub fn kind(&self) -> OtpKind {
        self.kind
    }

    /// The issuer (service name), if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The HMAC hash.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The code length.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The secret.
    pub fn secret(&self) -> &OtpSecret {
        &self.secret
    }

    /// Takes the secret out.
    pub fn into_secret(self) -> OtpSecret {
        self.secret
    }

    /// The secret's strength (below 128 bits only with [`UriOptions::accept_weak_secret`]).
    pub fn secret_strength(&self) -> SecretStrength {
        self.secret.strength()
    }

    /// The TOTP parameters, or `None` for an HOTP URI.
    pub fn totp_params(&self) -> Option<TotpParams> {
        match self.kind {
            OtpKind::Totp { period } => Some(
                TotpParams::new()
                    .algorithm(self.algorithm)
                    .digits(self.digits)
                    .period(period),
            ),
            OtpKind::Hotp { .. } => None,
        }
    }

    /// The canonical URI. It contains the secret, hence the name and the zeroizing string.
    pub fn expose_uri(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(160));
        let kind = match self.kind {
            OtpKind::Totp { .. } => "totp",
            OtpKind::Hotp { .. } => "hotp",
        };
        out.push_str("otpauth://");
        out.push_str(kind);
        out.push('/');
        if let Some(issuer) = &self.issuer {
            percent_encode(issuer, &mut out);
            out.push(':');
        }
        percent_encode(&self.account, &mut out);
        out.push_str("?secret=");
        out.push_str(&self.secret.expose_base32());
        if let Some(issuer) = &self.issuer {
            out.push_str("&issuer=");
            percent_encode(issuer, &mut out);
        }
        let _ = write!(
            out,
            "&algorithm={}&digits={}",
            self.algorithm.as_str(),
            self.digits.get()
        );
        let _ = match self.kind {
            OtpKind::Totp { period } => write!(out, "&period={}", period.as_secs()),
            OtpKind::Hotp { counter } => write!(out, "&counter={counter}"),
        };
        out
    }
}

impl fmt::Debug for OtpauthUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpauthUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("secret", &"***")
            .finish()
    }
}

/// The label's issuer and the parameter name the same issuer: equal ignoring ASCII case, with
/// a `+` in the label read as a space.
fn same_issuer(label: &str, param: &str) -> bool {
    label.len() == param.len()
        && label.bytes().zip(param.bytes()).all(|(l, p)| {
            let l = if l == b'+' { b' ' } else { l };
            l.eq_ignore_ascii_case(&p)
        })
}

fn parse_number(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Percent-encodes all but the unreserved characters (RFC 3986) and `@`.
fn percent_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); `None` on a bad escape or
/// invalid UTF-8.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
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
    use palisade_core::random::SystemRandom;

    const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn emits_the_canonical_form() {
        let secret = OtpSecret::from_base32(B32).unwrap();
        let uri = OtpauthUri::totp(
            secret,
            &TotpParams::new(),
            Some("ACME Co"),
            "john.doe@email.com",
        )
        .unwrap();
        assert_eq!(
            uri.expose_uri().as_str(),
            format!(
                "otpauth://totp/ACME%20Co:john.doe@email.com?secret={B32}&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
            )
        );
        let hotp = OtpauthUri::new(
            OtpKind::Hotp { counter: 7 },
            OtpSecret::from_base32(B32).unwrap(),
            Algorithm::Sha256,
            Digits::EIGHT,
            None,
            "bob",
        )
        .unwrap();
        assert_eq!(
            hotp.expose_uri().as_str(),
            format!("otpauth://hotp/bob?secret={B32}&algorithm=SHA256&digits=8&counter=7")
        );
    }

    #[test]
    fn parses_tolerantly() {
        for text in [
            format!("otpauth://totp/ACME%20Co:john@x.org?secret={B32}&issuer=ACME%20Co"),
            format!(
                "OTPAUTH://TOTP/ACME%20Co%3Ajohn@x.org?SECRET={}&Issuer=ACME+Co",
                B32.to_lowercase()
            ),
            "otpauth://totp/ACME Co%3a  john@x.org?secret=GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ===&issuer=acme co&image=x".to_owned(),
            format!(
                "otpauth://totp/john@x.org?secret={B32}&issuer=ACME%20Co&algorithm=sha1&digits=6&period=30"
            ),
            format!(" otpauth://totp/ACME%20Co:john@x.org?secret={B32} "),
        ] {
            let uri = OtpauthUri::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                uri.issuer().unwrap().eq_ignore_ascii_case("ACME Co"),
                "{text}"
            );
            assert_eq!(uri.account(), "john@x.org");
            assert_eq!(uri.secret().expose_base32().as_str(), B32);
            assert_eq!(uri.totp_params(), Some(TotpParams::new()));
        }
    }

    #[test]
    fn issuer_mismatch_policy() {
        let text = format!("otpauth://totp/Evil:john?secret={B32}&issuer=Good");
        assert_eq!(OtpauthUri::parse(&text).unwrap().issuer(), Some("Good"));
        assert!(matches!(
            OtpauthUri::parse_with(
                &text,
                &UriOptions::new().issuer_mismatch(IssuerMismatch::Reject)
            ),
            Err(OtpError::IssuerMismatch)
        ));
        let param = OtpauthUri::parse_with(
            &text,
            &UriOptions::new().issuer_mismatch(IssuerMismatch::PreferParameter),
        )
        .unwrap();
        assert_eq!(param.issuer(), Some("Good"));
        let label = OtpauthUri::parse_with(
            &text,
            &UriOptions::new().issuer_mismatch(IssuerMismatch::PreferLabel),
        )
        .unwrap();
        assert_eq!(label.issuer(), Some("Evil"));
    }

    #[test]
    fn weak_secrets_need_opting_in() {
        let text = "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example";
        assert!(matches!(
            OtpauthUri::parse(text),
            Err(OtpError::WeakSecret { bits: 80 })
        ));
        let uri = OtpauthUri::parse_with(text, &UriOptions::new().accept_weak_secret()).unwrap();
        assert_eq!(uri.secret_strength().bits(), 80);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "http://totp/a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_owned(),
            "otpauth://totp".to_owned(),
            format!("otpauth://motp/a?secret={B32}"),
            format!("otpauth://hotp/a?secret={B32}"),
            format!("otpauth://totp/a?secret={B32}&digits=9"),
            format!("otpauth://totp/a?secret={B32}&period=0"),
            format!("otpauth://totp/a?secret={B32}&period=-30"),
            format!("otpauth://totp/a?secret={B32}&algorithm=MD5"),
            format!("otpauth://totp/a%zz?secret={B32}"),
            format!("otpauth://totp/a%?secret={B32}"),
            format!("otpauth://totp/%FF?secret={B32}"),
            format!("otpauth://totp/?secret={B32}"),
            format!("otpauth://totp/a?secret={B32}&secret={B32}"),
            "otpauth://totp/a?issuer=x".to_owned(),
            format!(
                "otpauth://totp/a?secret={B32}&x={}",
                "y".repeat(MAX_URI_LEN)
            ),
        ] {
            let err = OtpauthUri::parse(&bad).expect_err(&bad);
            assert!(!err.to_string().contains(B32));
        }
    }

    #[test]
    fn names_with_colons_are_refused_on_emit() {
        let s = || OtpSecret::generate(Algorithm::Sha1, &SystemRandom).unwrap();
        assert!(OtpauthUri::totp(s(), &TotpParams::new(), Some("a:b"), "c").is_err());
        assert!(OtpauthUri::totp(s(), &TotpParams::new(), None, "c:d").is_err());
        assert!(OtpauthUri::totp(s(), &TotpParams::new(), None, "  ").is_err());
        assert!(
            OtpauthUri::totp(
                s(),
                &TotpParams::new().t0(palisade_core::time::UnixTime::from_secs(5)),
                None,
                "c"
            )
            .is_err()
        );
    }

    #[test]
    fn long_names_are_refused_so_emitted_uris_always_parse() {
        // Found by fuzzing: a name that fits in the input can triple when percent-encoded.
        let name = "(".repeat(MAX_NAME_LEN);
        let uri = OtpauthUri::totp(
            OtpSecret::generate(Algorithm::Sha512, &SystemRandom).unwrap(),
            &TotpParams::new(),
            Some(&name),
            &name,
        )
        .unwrap();
        let text = uri.expose_uri();
        assert!(text.len() <= MAX_URI_LEN);
        assert!(OtpauthUri::parse(&text).is_ok());
        let longer = "(".repeat(MAX_NAME_LEN + 1);
        assert!(
            OtpauthUri::totp(
                OtpSecret::generate(Algorithm::Sha1, &SystemRandom).unwrap(),
                &TotpParams::new(),
                None,
                &longer
            )
            .is_err()
        );
        let raw = format!("otpauth://totp/{longer}?secret={B32}");
        assert!(OtpauthUri::parse(&raw).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let uri = OtpauthUri::parse(&format!("otpauth://totp/a?secret={B32}")).unwrap();
        let shown = format!("{uri:?}");
        assert!(shown.contains("***") && !shown.contains(B32));
    }
}
