//! Redaction: what is masked or escaped before an event leaves the process.
//!
//! A [`Redactor`] rewrites an event in place:
//! - **Sensitive metadata keys.** A value whose key contains (case-insensitively) any of the
//!   configured substrings is replaced with [`MASK`]. The default list: `password`, `passwd`,
//!   `passphrase`, `pwd`, `secret`, `token`, `code`, `key`, `otpauth`, `authorization`,
//!   `cookie`, `credential`, `seed`, `private`, `bearer`, `session`, `signature`, `nonce`.
//!   Exact key names on an allow list (default `key_id`, `kid`, `api_key_id`, `key_state`)
//!   are kept.
//! - **Secret-looking values, whatever their key:** `otpauth://` URIs, `Bearer `/`Basic `
//!   credentials, and JSON Web Tokens (`eyJ...` with three dot-separated parts).
//! - **Control characters escaped** in every text field (metadata keys too): C0 and C1
//!   controls, DEL, the Unicode line and paragraph separators and the bidirectional overrides
//!   become `\u{..}` text, so an attacker-supplied user agent cannot forge a log line or hide
//!   text in a viewer.
//! - **Length cap:** text longer than [`Redactor::max_len`] characters is cut, with `…` appended.
//! - **IP truncation** (off by default): keep only the network part, for example /24 of IPv4 and
//!   /48 of IPv6, where the full address is personal data you need not keep.
//!
//! The sinks of this crate apply a redactor (the default one unless configured) before an event
//! is chained, written or emitted. Wrap any other sink in a [`RedactingSink`].
//!
//! # Security
//! Redaction is a second line of defence: components must not put secrets into events at all.
//! Substring matching errs towards masking (`status_code` is masked by `code`); add such keys to
//! the allow list if you need them.
//!
//! # Errors and panics
//! None.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_core::audit::{AuditEvent, AuditSink};

use crate::format::{control_mask, del_or_high_mask, eq_mask, fold_words};

/// What a masked value is replaced with.
pub const MASK: &str = "***";

const DEFAULT_SENSITIVE: [&str; 18] = [
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "code",
    "key",
    "otpauth",
    "authorization",
    "cookie",
    "credential",
    "seed",
    "private",
    "bearer",
    "session",
    "signature",
    "nonce",
];

const DEFAULT_ALLOWED: [&str; 4] = ["key_id", "kid", "api_key_id", "key_state"];

/// Masks, escapes and truncates event fields. See the module docs.
#[derive(Clone)]
pub struct Redactor {
    sensitive: Vec<String>,
    /// `sensitive`, indexed for matching.
    patterns: KeyPatterns,
    allowed: Vec<String>,
    max_len: usize,
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("sensitive", &self.sensitive)
            .field("allowed", &self.allowed)
            .field("max_len", &self.max_len)
            .field("ipv4_prefix", &self.ipv4_prefix)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}

/// The sensitive substrings indexed by their first byte, so that a key is matched in one pass
/// over its bytes rather than one pass per substring.
#[derive(Clone)]
struct KeyPatterns {
    /// For each byte, 1 + the index in `groups` of the substrings that start with it, or 0.
    slot: [u16; 256],
    /// The substrings without their first byte, grouped by first byte.
    groups: Vec<Vec<Box<[u8]>>>,
    /// An empty substring is configured: every key matches.
    every_key: bool,
}

impl KeyPatterns {
    fn new(substrings: &[String]) -> Self {
        let mut p = Self {
            slot: [0; 256],
            groups: Vec::new(),
            every_key: false,
        };
        for s in substrings {
            let Some((first, rest)) = s.as_bytes().split_first() else {
                p.every_key = true;
                continue;
            };
            let slot = p.slot.get_mut(usize::from(*first));
            match slot {
                Some(&mut g) if g > 0 => {
                    if let Some(group) = p.groups.get_mut(usize::from(g - 1)) {
                        group.push(rest.into());
                    }
                }
                Some(slot) => {
                    p.groups.push(vec![rest.into()]);
                    // At most 256 groups, one per byte value.
                    *slot = u16::try_from(p.groups.len()).unwrap_or(u16::MAX);
                }
                None => {}
            }
        }
        p
    }

    /// Whether `lower` (lower case) contains one of the substrings.
    fn matches(&self, lower: &[u8]) -> bool {
        if self.every_key {
            return true;
        }
        lower.iter().enumerate().any(|(i, b)| {
            let g = self.slot.get(usize::from(*b)).copied().unwrap_or(0);
            g > 0
                && self.groups.get(usize::from(g - 1)).is_some_and(|group| {
                    let rest = lower.get(i.saturating_add(1)..).unwrap_or(&[]);
                    group.iter().any(|p| rest.starts_with(p))
                })
        })
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    /// The default policy: the default sensitive keys and allow list, a 4096-character cap,
    /// no IP truncation.
    pub fn new() -> Self {
        let sensitive: Vec<String> = DEFAULT_SENSITIVE.iter().map(|s| (*s).to_owned()).collect();
        Self {
            patterns: KeyPatterns::new(&sensitive),
            sensitive,
            allowed: DEFAULT_ALLOWED.iter().map(|s| (*s).to_owned()).collect(),
            max_len: 4096,
            ipv4_prefix: None,
            ipv6_prefix: None,
        }
    }

    /// Also masks values under keys containing `substring` (case-insensitive).
    #[must_use]
    pub fn sensitive_key(mut self, substring: &str) -> Self {
        self.sensitive.push(substring.to_ascii_lowercase());
        self.patterns = KeyPatterns::new(&self.sensitive);
        self
    }

    /// Never masks the value under exactly this key (case-insensitive), unless the value itself
    /// looks like a secret.
    #[must_use]
    pub fn allow_key(mut self, key: &str) -> Self {
        self.allowed.push(key.to_ascii_lowercase());
        self
    }

    /// Caps every text field at `chars` characters (at least 16).
    #[must_use]
    pub fn max_len(mut self, chars: usize) -> Self {
        self.max_len = chars.max(16);
        self
    }

    /// Keeps only the first `v4` bits of IPv4 and `v6` bits of IPv6 addresses (for example 24
    /// and 48).
    #[must_use]
    pub fn truncate_ip(mut self, v4: u8, v6: u8) -> Self {
        self.ipv4_prefix = Some(v4.min(32));
        self.ipv6_prefix = Some(v6.min(128));
        self
    }

    /// Whether a value under `key` is masked.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(key)) {
            return false;
        }
        // Lower-case into a stack buffer for the usual short key; allocate only for long ones.
        let mut stack = [0u8; 64];
        let owned;
        let lower: &[u8] = match stack.get_mut(..key.len()) {
            Some(buf) => {
                buf.copy_from_slice(key.as_bytes());
                buf.make_ascii_lowercase();
                buf
            }
            None => {
                owned = key.to_ascii_lowercase();
                owned.as_bytes()
            }
        };
        self.patterns.matches(lower)
    }

    /// Redacts `event` in place.
    pub fn redact(&self, event: &mut AuditEvent) {
        for field in [
            &mut event.resource,
            &mut event.user_name,
            &mut event.user_id,
            &mut event.record_id,
            &mut event.device_fingerprint,
            &mut event.user_agent,
            &mut event.correlation_id,
            &mut event.tenant,
        ]
        .into_iter()
        .flatten()
        {
            let scan = Scan::of(field);
            if looks_secret_scanned(field, scan) {
                MASK.clone_into(field);
            } else if self.needs_clean_scanned(field, scan) {
                *field = self.clean(field).into_owned();
            }
        }
        if let palisade_core::audit::Action::Custom(name) = &mut event.action {
            self.clean_in_place(name);
        }
        if let Some(ip) = event.ip_address {
            event.ip_address = Some(self.truncate(ip));
        }
        if event.metadata.is_empty() {
            return;
        }
        let needs_rebuild = event
            .metadata
            .keys()
            .any(|k| self.needs_clean_scanned(k, Scan::of(k)));
        if needs_rebuild {
            let old = std::mem::take(&mut event.metadata);
            for (k, v) in old {
                let key = self.clean(&k).into_owned();
                event.metadata.insert(key, v);
            }
        }
        for (k, v) in &mut event.metadata {
            if self.is_sensitive_key(k) {
                if v != MASK {
                    MASK.clone_into(v);
                }
                continue;
            }
            let scan = Scan::of(v);
            if looks_secret_scanned(v, scan) {
                MASK.clone_into(v);
            } else if self.needs_clean_scanned(v, scan) {
                *v = self.clean(v).into_owned();
            }
        }
    }

    /// Redacts a copy of `event`.
    pub fn redacted(&self, event: &AuditEvent) -> AuditEvent {
        let mut e = event.clone();
        self.redact(&mut e);
        e
    }

    fn truncate(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => match self.ipv4_prefix {
                Some(bits) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                    IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
                }
                None => ip,
            },
            IpAddr::V6(v6) => match self.ipv6_prefix {
                Some(bits) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                    IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
                }
                None => ip,
            },
        }
    }

    fn needs_clean(&self, s: &str) -> bool {
        self.needs_clean_scanned(s, Scan::of(s))
    }

    fn needs_clean_scanned(&self, s: &str, scan: Scan) -> bool {
        // Printable ASCII needs no escaping.
        (!scan.printable_ascii && s.chars().any(must_escape))
            || (s.len() > self.max_len && s.chars().count() > self.max_len)
    }

    fn clean_in_place(&self, s: &mut String) {
        if self.needs_clean(s) {
            let cleaned = self.clean(s).into_owned();
            *s = cleaned;
        }
    }

    /// `s` with control characters escaped, then cut to the length cap (the last kept
    /// character replaced by `…`). Cleaning a cleaned string changes nothing.
    pub fn clean<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if !self.needs_clean(s) {
            return Cow::Borrowed(s);
        }
        let mut out = String::with_capacity(s.len().saturating_add(8));
        for c in s.chars() {
            if must_escape(c) {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            } else {
                out.push(c);
            }
        }
        if out.chars().count() > self.max_len {
            let cut = out
                .char_indices()
                .nth(self.max_len.saturating_sub(1))
                .map_or(out.len(), |(i, _)| i);
            out.truncate(cut);
            out.push('…');
        }
        Cow::Owned(out)
    }
}

/// Characters that could forge a log line or disguise text: controls, line and paragraph
/// separators, and bidirectional formatting characters.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// What one pass over a string's bytes tells the redactor: whether it can need escaping, and
/// whether it can hold a URI (a `:`) or a JSON Web Token (`eyJ` and two dots). One pass,
/// eight bytes at a time, replaces one search per question.
#[derive(Clone, Copy)]
struct Scan {
    printable_ascii: bool,
    colon: bool,
    jwt: bool,
}

impl Scan {
    fn of(s: &str) -> Self {
        let (other, colon, j, dots) = fold_words(
            s.as_bytes(),
            (0u64, 0u64, 0u64, 0u32),
            |(other, colon, j, dots), w| {
                (
                    other | control_mask(w) | del_or_high_mask(w),
                    colon | eq_mask(w, b':'),
                    j | eq_mask(w, b'J'),
                    dots.saturating_add(eq_mask(w, b'.').count_ones()),
                )
            },
        );
        Self {
            printable_ascii: other == 0,
            colon: colon != 0,
            jwt: j != 0 && dots >= 2,
        }
    }
}

/// Whether a value looks like a credential whatever its key.
pub fn looks_secret(value: &str) -> bool {
    looks_secret_scanned(value, Scan::of(value))
}

fn looks_secret_scanned(value: &str, scan: Scan) -> bool {
    let v = value.trim_start();
    // A URI needs a ':'; most values have none, which skips the case-insensitive search.
    if scan.colon
        && (contains_ignore_case(v, "otpauth://")
            || contains_ignore_case(v, "otpauth-migration://"))
    {
        return true;
    }
    if starts_with_ignore_case(v, "bearer ") || starts_with_ignore_case(v, "basic ") {
        return true;
    }
    // A token has `eyJ` and at least two dots; most values do not, which skips the search.
    scan.jwt && looks_like_jwt(v)
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_case(s: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    s.as_bytes()
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(n))
}

fn looks_like_jwt(v: &str) -> bool {
    let mut start = 0;
    let bytes = v.as_bytes();
    while let Some(pos) = bytes
        .get(start..)
        .and_then(|s| s.windows(3).position(|w| matches!(w, [b'e', b'y', b'J'])))
    {
        let from = start.saturating_add(pos);
        let token: &[u8] = bytes
            .get(from..)
            .map(|rest| {
                let end = rest
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
                    .unwrap_or(rest.len());
                rest.get(..end).unwrap_or(&[])
            })
            .unwrap_or(&[]);
        let dots = token.iter().filter(|b| **b == b'.').count();
        if dots >= 2 && token.len() >= 20 {
            return true;
        }
        start = from.saturating_add(3);
    }
    false
}

/// Redacts every event before handing it to the inner sink.
#[derive(Debug, Clone)]
pub struct RedactingSink<S> {
    redactor: Redactor,
    inner: S,
}

impl<S: AuditSink> RedactingSink<S> {
    /// Wraps `inner` with `redactor`.
    pub fn new(redactor: Redactor, inner: S) -> Self {
        Self { redactor, inner }
    }

    /// The inner sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AuditSink> AuditSink for RedactingSink<S> {
    fn record(&self, mut event: AuditEvent) {
        self.redactor.redact(&mut event);
        self.inner.record(event);
    }
}

#[cfg(test)]
mod tests {
    use palisade_core::audit::Action;
    use palisade_core::time::UnixTime;

    use super::*;

    fn ev() -> AuditEvent {
        AuditEvent::new(Action::MfaEnrolled, UnixTime::from_secs(1))
    }

    #[test]
    fn masks_sensitive_keys_case_insensitively() {
        let r = Redactor::new();
        let mut e = ev()
            .meta("Password", "hunter2")
            .meta("X-Api-Token", "t0k")
            .meta("totp_code", "123456")
            .meta("key_id", "k1")
            .meta("reason", "bad password");
        r.redact(&mut e);
        assert_eq!(e.metadata["Password"], MASK);
        assert_eq!(e.metadata["X-Api-Token"], MASK);
        assert_eq!(e.metadata["totp_code"], MASK);
        assert_eq!(e.metadata["key_id"], "k1");
        assert_eq!(e.metadata["reason"], "bad password");
    }

    #[test]
    fn masks_secret_values_whatever_the_key() {
        let r = Redactor::new();
        let mut e = ev()
            .meta("uri", "OTPAUTH://totp/x?secret=JBSWY3DPEHPK3PXP")
            .meta("hdr", "Bearer abc.def")
            .meta("note", "got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln here")
            .user_agent("otpauth://totp/leak");
        r.redact(&mut e);
        assert_eq!(e.metadata["uri"], MASK);
        assert_eq!(e.metadata["hdr"], MASK);
        assert_eq!(e.metadata["note"], MASK);
        assert_eq!(e.user_agent.as_deref(), Some(MASK));
    }

    #[test]
    fn escapes_controls_everywhere() {
        let r = Redactor::new();
        let mut e = ev()
            .user_agent("curl\r\n2026 login_succeeded user=admin")
            .meta("k\nx", "a\u{1b}[31m\u{202e}b");
        r.redact(&mut e);
        assert_eq!(
            e.user_agent.as_deref(),
            Some("curl\\u{d}\\u{a}2026 login_succeeded user=admin")
        );
        assert_eq!(e.metadata["k\\u{a}x"], "a\\u{1b}[31m\\u{202e}b");
        assert!(!serde_json::to_string(&e).unwrap().contains("\\n"));
    }

    #[test]
    fn truncates_ips_and_long_values() {
        let r = Redactor::new().truncate_ip(24, 48).max_len(20);
        let mut e = ev()
            .ip("203.0.113.77".parse().unwrap())
            .meta("note", "x".repeat(100));
        r.redact(&mut e);
        assert_eq!(e.ip_address, Some("203.0.113.0".parse().unwrap()));
        assert_eq!(e.metadata["note"].chars().count(), 20);
        let again = r.redacted(&e);
        assert_eq!(again, e);
        let mut e6 = ev().ip("2001:db8:1:2:3::4".parse().unwrap());
        r.redact(&mut e6);
        assert_eq!(e6.ip_address, Some("2001:db8:1::".parse().unwrap()));
        let r0 = Redactor::new().truncate_ip(0, 0);
        let mut z = ev().ip("203.0.113.77".parse().unwrap());
        r0.redact(&mut z);
        assert_eq!(z.ip_address, Some("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn one_pass_scan_sees_every_position() {
        let r = Redactor::new();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        for pad in 0..70 {
            let padding = "x".repeat(pad);
            let mut e = ev()
                .user_agent(format!("{padding}\u{1b}"))
                .user_id(format!("{padding} {jwt} "))
                .resource(format!("{padding}otpauth://totp/x"));
            r.redact(&mut e);
            assert_eq!(e.user_agent, Some(format!("{padding}\\u{{1b}}")), "{pad}");
            assert_eq!(e.user_id.as_deref(), Some(MASK), "{pad}");
            assert_eq!(e.resource.as_deref(), Some(MASK), "{pad}");
        }
    }

    /// The indexed key match agrees with "some substring occurs in the lower-cased key".
    #[test]
    fn key_index_matches_plain_substring_search() {
        use proptest::prelude::*;

        let r = Redactor::new()
            .sensitive_key("Se")
            .sensitive_key("x-y")
            .sensitive_key("ké");
        let naive = |key: &str| {
            let lower = key.to_ascii_lowercase();
            !r.allowed.iter().any(|a| a.eq_ignore_ascii_case(key))
                && r.sensitive.iter().any(|s| lower.contains(s.as_str()))
        };
        for key in [
            "", "s", "se", "PassWord", "my_pwd2", "kéy", "kid", "KEY_ID", "x-Y",
        ] {
            assert_eq!(r.is_sensitive_key(key), naive(key), "{key}");
        }
        proptest!(|(key in "[a-zA-Z_é -]{0,24}")| {
            prop_assert_eq!(r.is_sensitive_key(&key), naive(&key));
        });
        let every = Redactor::new().sensitive_key("");
        assert!(every.is_sensitive_key("reason"));
        assert!(!every.is_sensitive_key("kid"));
    }

    #[test]
    fn redacting_sink_masks() {
        let mem = palisade_core::audit::MemorySink::new();
        let s = RedactingSink::new(Redactor::new(), mem.clone());
        s.record(ev().meta("secret", "s3cr3t"));
        assert_eq!(mem.events()[0].metadata["secret"], MASK);
    }
}
