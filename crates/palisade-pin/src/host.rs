//! Host names and host patterns: canonical forms and matching.
//!
//! Both the configured patterns and the host of a connection go through
//! [`canonical_host`] before they are compared, so `Api.Example.COM.`, `api.example.com` and
//! the IDNA form of a Unicode name all select the same pin set:
//! - ASCII upper case is folded to lower case;
//! - one trailing dot (the DNS root) is removed;
//! - Unicode names are mapped to their ASCII (`xn--`) form with UTS 46 through the
//!   [`idna`](https://docs.rs/idna) crate, the implementation that `url`, reqwest and hyper
//!   use (the WHATWG URL standard's "domain to ASCII"), so a name matches the way the HTTP
//!   client that resolves it spells it;
//! - IP addresses are written in their standard text form (`::1`, not `0:0::1`; brackets
//!   removed).
//!
//! Patterns follow OkHttp's `CertificatePinner`:
//! - `api.example.com` matches that host only;
//! - `*.example.com` matches exactly one more label: `api.example.com`, not `example.com` and
//!   not `a.b.example.com`;
//! - `**.example.com` matches `example.com` and any name below it, at any depth.
//!
//! # Errors and panics
//! [`PinError::InvalidHost`] and [`PinError::InvalidHostPattern`]; nothing here panics.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

use idna::AsciiDenyList;

use crate::error::{PinError, shorten};

/// The canonical form of a host name or IP address (see the [module docs](self)).
///
/// ```
/// use palisade_pin::canonical_host;
///
/// assert_eq!(canonical_host("API.Example.com.")?, "api.example.com");
/// assert_eq!(canonical_host("bücher.example")?, "xn--bcher-kva.example");
/// assert_eq!(canonical_host("[0:0::1]")?, "::1");
/// # Ok::<(), palisade_pin::PinError>(())
/// ```
///
/// # Errors
/// [`PinError::InvalidHost`] for an empty name, an empty label, a wildcard, or a name that IDNA
/// refuses (forbidden characters such as `/`, `%`, spaces).
pub fn canonical_host(host: &str) -> Result<String, PinError> {
    let invalid = |reason: &'static str| PinError::InvalidHost {
        input: shorten(host),
        reason,
    };
    let trimmed = host.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.contains('*') {
        return Err(invalid("a host name cannot contain `*`"));
    }
    let ascii = idna::domain_to_ascii_cow(name.as_bytes(), AsciiDenyList::URL)
        .map_err(|_| invalid("not a valid domain name (IDNA / UTS 46 processing failed)"))?;
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        return Err(invalid("a label is empty"));
    }
    if ascii.len() > 253 {
        return Err(invalid("longer than 253 characters"));
    }
    Ok(ascii.into_owned())
}

/// Which hosts a pin set applies to: `host`, `*.suffix` or `**.suffix`.
///
/// ```
/// use palisade_pin::HostPattern;
///
/// let one: HostPattern = "*.Example.com".parse()?;
/// assert!(one.matches("api.example.com"));
/// assert!(!one.matches("example.com"));
/// assert!(!one.matches("a.b.example.com"));
///
/// let any: HostPattern = "**.example.com".parse()?;
/// assert!(any.matches("example.com") && any.matches("a.b.example.com"));
/// assert_eq!(any.to_string(), "**.example.com");
/// # Ok::<(), palisade_pin::PinError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    kind: PatternKind,
    /// The canonical host, or the canonical suffix after `*.` / `**.`.
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PatternKind {
    AnyDepth,
    OneLabel,
    Exact,
}

const PATTERN_EXPECTED: &str =
    "a host name, `*.` followed by a domain (one label) or `**.` followed by a domain (any depth)";

impl HostPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// [`PinError::InvalidHostPattern`] when the `*` is anywhere but a whole leftmost label, or
    /// the name after it is not a valid host name.
    pub fn parse(pattern: &str) -> Result<Self, PinError> {
        let invalid = || PinError::InvalidHostPattern {
            input: shorten(pattern),
            expected: PATTERN_EXPECTED,
        };
        let p = pattern.trim();
        let (kind, rest) = if let Some(rest) = p.strip_prefix("**.") {
            (PatternKind::AnyDepth, rest)
        } else if let Some(rest) = p.strip_prefix("*.") {
            (PatternKind::OneLabel, rest)
        } else {
            (PatternKind::Exact, p)
        };
        let name = canonical_host(rest).map_err(|_| invalid())?;
        if kind != PatternKind::Exact && name.parse::<IpAddr>().is_ok() {
            return Err(invalid());
        }
        Ok(Self { kind, name })
    }

    /// The pattern for exactly one host.
    ///
    /// # Errors
    /// [`PinError::InvalidHost`] as [`canonical_host`].
    pub fn exact(host: &str) -> Result<Self, PinError> {
        Ok(Self {
            kind: PatternKind::Exact,
            name: canonical_host(host)?,
        })
    }

    /// Whether the pattern matches `host`, which must already be canonical (see
    /// [`canonical_host`]); a non-canonical host simply does not match.
    pub fn matches(&self, host: &str) -> bool {
        match self.kind {
            PatternKind::Exact => host == self.name,
            PatternKind::OneLabel => self
                .label_before_suffix(host)
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            PatternKind::AnyDepth => {
                host == self.name
                    || self
                        .label_before_suffix(host)
                        .is_some_and(|labels| !labels.is_empty())
            }
        }
    }

    /// Canonicalises `host`, then [`matches`](Self::matches) it.
    pub fn matches_host(&self, host: &str) -> bool {
        canonical_host(host).is_ok_and(|h| self.matches(&h))
    }

    /// Whether the pattern names one host only (no wildcard).
    pub fn is_exact(&self) -> bool {
        self.kind == PatternKind::Exact
    }

    /// Orders patterns that match the same host: an exact name first, then the longest suffix,
    /// then `*.` before `**.`. Larger is more specific.
    pub(crate) fn specificity(&self) -> (bool, usize, PatternKind) {
        (self.is_exact(), self.name.len(), self.kind)
    }

    /// For `x.y.<name>` returns `x.y`; `None` when `host` does not end in `.<name>`.
    fn label_before_suffix<'h>(&self, host: &'h str) -> Option<&'h str> {
        let prefix = host.strip_suffix(self.name.as_str())?;
        prefix.strip_suffix('.')
    }
}

impl FromStr for HostPattern {
    type Err = PinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PatternKind::Exact => f.write_str(&self.name),
            PatternKind::OneLabel => write!(f, "*.{}", self.name),
            PatternKind::AnyDepth => write!(f, "**.{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonicalises() {
        assert_eq!(canonical_host("Example.COM").unwrap(), "example.com");
        assert_eq!(canonical_host("example.com.").unwrap(), "example.com");
        assert_eq!(
            canonical_host("ÉCOLE.example").unwrap(),
            "xn--cole-9oa.example"
        );
        assert_eq!(canonical_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(canonical_host("::0001").unwrap(), "::1");
        for bad in [
            "",
            ".",
            "a..b",
            "*.example.com",
            "exa mple.com",
            "a/b",
            "%41.com",
        ] {
            assert!(
                matches!(canonical_host(bad), Err(PinError::InvalidHost { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn patterns_match_as_okhttp() {
        let exact = HostPattern::parse("API.example.com.").unwrap();
        assert!(exact.matches("api.example.com"));
        assert!(!exact.matches("x.api.example.com"));

        let one = HostPattern::parse("*.example.com").unwrap();
        assert!(one.matches("a.example.com"));
        assert!(!one.matches("example.com"));
        assert!(!one.matches("a.b.example.com"));
        assert!(!one.matches("aexample.com"));
        assert!(!one.matches(".example.com"));

        let any = HostPattern::parse("**.example.com").unwrap();
        assert!(any.matches("example.com"));
        assert!(any.matches("a.example.com"));
        assert!(any.matches("a.b.example.com"));
        assert!(!any.matches("badexample.com"));
        assert!(!any.matches("example.org"));

        assert!(
            HostPattern::parse("*.bücher.example")
                .unwrap()
                .matches_host("Shop.Bücher.example")
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "*",
            "*.",
            "**",
            "a.*.example.com",
            "*example.com",
            "***.example.com",
            "*.127.0.0.1",
        ] {
            assert!(
                matches!(
                    HostPattern::parse(bad),
                    Err(PinError::InvalidHostPattern { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn more_specific_patterns_rank_higher() {
        let exact = HostPattern::parse("a.b.example.com").unwrap();
        let one = HostPattern::parse("*.b.example.com").unwrap();
        let any_long = HostPattern::parse("**.b.example.com").unwrap();
        let any_short = HostPattern::parse("**.example.com").unwrap();
        assert!(exact.specificity() > one.specificity());
        assert!(one.specificity() > any_long.specificity());
        assert!(any_long.specificity() > any_short.specificity());
    }

    proptest! {
        #[test]
        fn display_round_trips(labels in proptest::collection::vec("[a-z][a-z0-9]{0,9}", 1..5), kind in 0u8..3) {
            let name = labels.join(".");
            let text = match kind { 0 => name.clone(), 1 => format!("*.{name}"), _ => format!("**.{name}") };
            let pattern = HostPattern::parse(&text)?;
            prop_assert_eq!(pattern.to_string(), text);
            prop_assert_eq!(&HostPattern::parse(&pattern.to_string())?, &pattern);
            let child = format!("x.{name}");
            prop_assert_eq!(pattern.matches(&child), kind != 0);
            prop_assert_eq!(pattern.matches(&name), kind != 1);
        }

        #[test]
        fn never_panics(pattern in "\\PC*", host in "\\PC*") {
            if let Ok(p) = HostPattern::parse(&pattern) {
                let _ = p.matches_host(&host);
            }
            let _ = canonical_host(&host);
        }
    }
}
