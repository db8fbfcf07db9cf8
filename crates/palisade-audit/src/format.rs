//! The JSON form of an [`AuditEvent`] and its canonical bytes for hashing.
//!
//! # The JSON form (schema version 1)
//! One object, members in this order, `null` for an absent optional field:
//!
//! | member | JSON type | meaning |
//! |---|---|---|
//! | `schema_version` | integer | `1`, [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) |
//! | `id` | string | UUIDv7, hyphenated lower case |
//! | `timestamp` | integer | nanoseconds since the Unix epoch (UTC) |
//! | `action` | string | `snake_case` name: `login_failed`, `pin_mismatch`, ... or a custom name |
//! | `severity` | string | `informational`, `low`, `medium`, `high`, `critical` |
//! | `outcome` | string | `success`, `failure`, `unknown` |
//! | `resource` | string or null | what was acted on |
//! | `user_name` | string or null | the user's name |
//! | `user_id` | string or null | the user's stable id |
//! | `record_id` | string or null | the record acted on |
//! | `ip_address` | string or null | `203.0.113.9`, `2001:db8::1` |
//! | `device_fingerprint` | string or null | the device's fingerprint |
//! | `user_agent` | string or null | the client's user agent |
//! | `correlation_id` | string or null | ties the events of one flow together |
//! | `tenant` | string or null | the tenant |
//! | `metadata` | object of strings | sorted by key (byte order) |
//!
//! Example:
//! ```json
//! {"schema_version":1,"id":"018bcfe5-6800-7000-8000-000000000000","timestamp":1700000000000000000,
//!  "action":"login_failed","severity":"low","outcome":"failure","resource":null,"user_name":null,
//!  "user_id":"u-42","record_id":null,"ip_address":"203.0.113.9","device_fingerprint":null,
//!  "user_agent":null,"correlation_id":null,"tenant":null,"metadata":{"reason":"bad password"}}
//! ```
//!
//! Readers accept members in any order and ignore members they do not know, so a later schema
//! version can add fields without breaking older readers.
//!
//! # Canonical form
//! The canonical bytes of an event are exactly what [`to_canonical_json`] writes: the layout
//! above with no whitespace, members in the order above, metadata sorted by key, strings escaped
//! the way `serde_json` escapes them (`\"`, `\\`, `\n`, `\u001b`, ...; non-ASCII as UTF-8).
//! The hash chain hashes these bytes. [`from_canonical_json`] accepts only bytes that are
//! canonical, so two different byte strings never decode to the same hashed event.
//!
//! # Errors
//! Decoding returns [`AuditError::Json`] for malformed or non-canonical input. Never panics.

use palisade_core::audit::{AuditEvent, Outcome, Severity};

use crate::AuditError;

/// The canonical JSON bytes of `event` (see the module docs), as hashed by the chain.
///
/// # Errors
/// None in practice: every field of an event serializes. The `Result` keeps a serializer
/// failure a value rather than a panic.
pub fn to_canonical_json(event: &AuditEvent) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::with_capacity(384);
    write_canonical_json(event, &mut out)?;
    Ok(out)
}

/// Appends the canonical JSON bytes of `event` to `out`.
///
/// # Errors
/// As [`to_canonical_json`]. On error `out` may hold a partial document.
pub fn write_canonical_json(event: &AuditEvent, out: &mut Vec<u8>) -> Result<(), AuditError> {
    // Written member by member rather than through serde: the same bytes (a test compares
    // them with `serde_json` on every field), without serde's per-byte string escaping for
    // the common string that needs no escape.
    use std::io::Write as _;
    out.reserve(512);
    out.extend_from_slice(b"{\"schema_version\":");
    push_decimal(u64::from(event.schema_version), out);
    out.extend_from_slice(b",\"id\":\"");
    write!(out, "{}", event.id)?;
    out.extend_from_slice(b"\",\"timestamp\":");
    push_decimal(event.timestamp.as_nanos(), out);
    out.extend_from_slice(b",\"action\":");
    write_json_str(event.action.as_str(), out)?;
    out.extend_from_slice(b",\"severity\":\"");
    out.extend_from_slice(severity_name(event.severity).as_bytes());
    out.extend_from_slice(b"\",\"outcome\":\"");
    out.extend_from_slice(outcome_name(event.outcome).as_bytes());
    out.push(b'"');
    // An address's text (at most 45 bytes) on the stack; it never needs escaping.
    let mut ip_buf = [0u8; 64];
    let ip = match event.ip_address {
        Some(std::net::IpAddr::V4(v4)) => {
            // The common case without `core::fmt`: four decimal octets.
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0
                    && let Some(dot) = ip_buf.get_mut(len)
                {
                    *dot = b'.';
                    len += 1;
                }
                let (digits, at) = decimal(u64::from(octet));
                let text = digits.get(at..).unwrap_or(&[]);
                if let Some(slot) = ip_buf.get_mut(len..len.saturating_add(text.len())) {
                    slot.copy_from_slice(text);
                    len += text.len();
                }
            }
            ip_buf.get(..len).and_then(|b| std::str::from_utf8(b).ok())
        }
        Some(ip) => {
            let mut cursor = std::io::Cursor::new(&mut ip_buf[..]);
            write!(cursor, "{ip}")?;
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            ip_buf.get(..len).and_then(|b| std::str::from_utf8(b).ok())
        }
        None => None,
    };
    for (name, value) in [
        ("resource", event.resource.as_deref()),
        ("user_name", event.user_name.as_deref()),
        ("user_id", event.user_id.as_deref()),
        ("record_id", event.record_id.as_deref()),
        ("ip_address", ip),
        ("device_fingerprint", event.device_fingerprint.as_deref()),
        ("user_agent", event.user_agent.as_deref()),
        ("correlation_id", event.correlation_id.as_deref()),
        ("tenant", event.tenant.as_deref()),
    ] {
        write_member(name, value, out)?;
    }
    out.extend_from_slice(b",\"metadata\":{");
    for (i, (k, v)) in event.metadata.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(k, out)?;
        out.push(b':');
        write_json_str(v, out)?;
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// The decimal digits of `n`: a buffer and where in it the digits start.
pub(crate) fn decimal(mut n: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    for d in digits.iter_mut().rev() {
        // u64 has at most 20 decimal digits, so the loop ends by `n == 0` in time.
        *d = b'0' + u8::try_from(n % 10).unwrap_or(0);
        at = at.saturating_sub(1);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    (digits, at)
}

/// Appends the decimal text of `n` (what `Display` writes).
pub(crate) fn push_decimal(n: u64, out: &mut Vec<u8>) {
    let (digits, at) = decimal(n);
    out.extend_from_slice(digits.get(at..).unwrap_or(&[]));
}

/// `,"name":"value"` or `,"name":null`.
fn write_member(name: &str, value: Option<&str>, out: &mut Vec<u8>) -> Result<(), AuditError> {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) => write_json_str(v, out),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A JSON string exactly as `serde_json` writes it: copied as is when nothing needs escaping
/// (no control character, quote or backslash), else escaped by `serde_json` itself.
fn write_json_str(s: &str, out: &mut Vec<u8>) -> Result<(), AuditError> {
    let needs_escape = fold_words(s.as_bytes(), 0, |found, w| {
        found | control_mask(w) | eq_mask(w, b'"') | eq_mask(w, b'\\')
    }) != 0;
    if !needs_escape {
        out.reserve(s.len().saturating_add(2));
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)?;
        Ok(())
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const SPACES: u64 = ONES * 0x20;

/// Folds `f` over `bytes` read eight at a time as little-endian words ("SWAR"), with spaces in
/// place of bytes past the end or already seen, so callers look for bytes other than a space.
/// Short strings are the common case: this needs no copy (a padded copy read back by vector
/// loads stalled on store forwarding) and no vector setup.
pub(crate) fn fold_words<T>(bytes: &[u8], init: T, mut f: impl FnMut(T, u64) -> T) -> T {
    let mut words = bytes.chunks_exact(8);
    let mut acc = init;
    for w in &mut words {
        acc = f(acc, u64::from_le_bytes(w.try_into().unwrap_or([b' '; 8])));
    }
    let rest = words.remainder().len();
    if rest == 0 {
        return acc;
    }
    let last = match bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) {
        Some(tail) => {
            // The last eight bytes, overlapping what was seen; those bytes become spaces.
            let w = u64::from_le_bytes(tail.try_into().unwrap_or([b' '; 8]));
            let seen = u64::MAX >> (8 * rest);
            (w & !seen) | (SPACES & seen)
        }
        None => bytes.iter().enumerate().fold(SPACES, |w, (i, b)| {
            let shift = 8 * i;
            (w & !(0xff << shift)) | (u64::from(*b) << shift)
        }),
    };
    f(acc, last)
}

/// The high bit of every byte of `word` equal to `byte`, and no other bit.
pub(crate) fn eq_mask(word: u64, byte: u8) -> u64 {
    let v = word ^ (ONES * u64::from(byte));
    // A byte of `v` is zero exactly when adding 0x7f to its low seven bits leaves the high
    // bit clear and its own high bit is clear; no carry crosses bytes.
    !(((v & LOWS) + LOWS) | v | LOWS)
}

/// The high bit of every byte of `word` below 0x20 (a control character), and no other bit.
pub(crate) fn control_mask(word: u64) -> u64 {
    // Low seven bits + 0x60 reach 0x80 exactly when they are at least 0x20.
    !((word & LOWS) + ONES * 0x60) & !word & HIGHS
}

/// The high bit of every byte of `word` from 0x7f up (DEL or not ASCII), and no other bit.
pub(crate) fn del_or_high_mask(word: u64) -> u64 {
    (((word & LOWS) + ONES) | word) & HIGHS
}

/// The JSON name of a severity.
pub(crate) fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "informational",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The JSON name of an outcome.
pub(crate) fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Unknown => "unknown",
    }
}

/// Decodes an event from JSON written by any writer (members in any order, unknown members
/// ignored).
///
/// # Errors
/// [`AuditError::Json`] if `bytes` is not an event.
pub fn from_json(bytes: &[u8]) -> Result<AuditEvent, AuditError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Decodes an event that must be in canonical form: decoding then encoding gives `bytes` back.
///
/// # Errors
/// [`AuditError::Json`] if `bytes` is not an event or not canonical.
pub fn from_canonical_json(bytes: &[u8]) -> Result<AuditEvent, AuditError> {
    let event = from_json(bytes)?;
    if to_canonical_json(&event)? != bytes {
        return Err(not_canonical());
    }
    Ok(event)
}

pub(crate) fn not_canonical() -> AuditError {
    AuditError::Json(std::sync::Arc::new(serde::de::Error::custom(
        "not in canonical form",
    )))
}

#[cfg(test)]
mod tests {
    use palisade_core::audit::{Action, Outcome, Severity};
    use palisade_core::time::UnixTime;

    use super::*;

    #[test]
    fn canonical_round_trip_and_rejects_reordered() {
        let e = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000))
            .user_id("u-42")
            .meta("z", "1")
            .meta("a", "2\n");
        let bytes = to_canonical_json(&e).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("{\"schema_version\":1,\"id\":"));
        assert!(text.ends_with("\"metadata\":{\"a\":\"2\\n\",\"z\":\"1\"}}"));
        assert_eq!(from_canonical_json(&bytes).unwrap(), e);
        let spaced = text.replacen(':', ": ", 1);
        assert_eq!(from_json(spaced.as_bytes()).unwrap(), e);
        assert!(from_canonical_json(spaced.as_bytes()).is_err());
        assert!(from_json(b"{").is_err());
    }

    #[test]
    fn word_masks_are_exact_per_byte() {
        // Every byte value at every position, next to every other byte value: no borrow or
        // carry leaks from one byte into another.
        let expect = |word: u64, f: &dyn Fn(u8) -> bool| {
            word.to_le_bytes()
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, b)| m | (u64::from(f(*b)) << (8 * i + 7)))
        };
        for b in 0..=255u8 {
            for other in 0..=255u8 {
                for at in [0usize, 3, 7] {
                    let mut bytes = [other; 8];
                    bytes[at] = b;
                    let w = u64::from_le_bytes(bytes);
                    assert_eq!(control_mask(w), expect(w, &|x| x < 0x20));
                    assert_eq!(del_or_high_mask(w), expect(w, &|x| x >= 0x7f));
                    assert_eq!(eq_mask(w, b'"'), expect(w, &|x| x == b'"'));
                    assert_eq!(eq_mask(w, 0), expect(w, &|x| x == 0));
                }
            }
        }
        let collect = |s: &[u8]| {
            fold_words(s, Vec::new(), |mut v, w| {
                v.push(w);
                v
            })
        };
        assert_eq!(collect(b""), Vec::<u64>::new());
        assert_eq!(collect(b"ab"), vec![u64::from_le_bytes(*b"ab      ")]);
        assert_eq!(
            collect(b"0123456789"),
            vec![
                u64::from_le_bytes(*b"01234567"),
                u64::from_le_bytes(*b"      89")
            ]
        );
    }

    #[test]
    fn escapes_found_in_every_chunk_position() {
        // The scan reads 8-byte words; a tail shorter than a word is read padded (short
        // strings) or overlapping the word before: put the byte that needs an escape at
        // every position of strings from 1 to 99 bytes, which covers both tails.
        for len in 1..100 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}'] {
                    let mut text: String = "a".repeat(len);
                    text.replace_range(at..=at, &special.to_string());
                    let mut out = Vec::new();
                    write_json_str(&text, &mut out).unwrap();
                    assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{len} {at}");
                }
            }
        }
    }

    #[test]
    fn canonical_bytes_are_serde_json_bytes() {
        let mut all = AuditEvent::new(
            Action::Custom("custom \"act\"\u{1}".into()),
            UnixTime::from_nanos(1_700_000_000_123_456_789),
        )
        .severity(Severity::Critical)
        .outcome(Outcome::Unknown)
        .resource("r\\1")
        .user_name("Zoë \u{2028}")
        .user_id("u\t42")
        .record_id("rec")
        .ip("2001:db8::1".parse().unwrap())
        .device_fingerprint("fp\u{7f}")
        .user_agent("Mozilla/5.0 \"quoted\"")
        .correlation_id("c\n")
        .tenant("t")
        .meta("b\u{1b}", "\u{0}")
        .meta("a", "plain");
        let plain = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1))
            .ip("203.0.113.9".parse().unwrap());
        for ip in ["0.0.0.0", "255.255.255.255", "10.0.100.1", "::ffff:1.2.3.4"] {
            let e = plain.clone().ip(ip.parse().unwrap());
            assert_eq!(
                to_canonical_json(&e).unwrap(),
                serde_json::to_vec(&e).unwrap()
            );
        }
        for sev in [
            Severity::Informational,
            Severity::Low,
            Severity::Medium,
            Severity::High,
        ] {
            for e in [all.clone().severity(sev), plain.clone().severity(sev)] {
                assert_eq!(
                    to_canonical_json(&e).unwrap(),
                    serde_json::to_vec(&e).unwrap()
                );
            }
        }
        for outcome in [Outcome::Success, Outcome::Failure] {
            all.outcome = outcome;
            assert_eq!(
                to_canonical_json(&all).unwrap(),
                serde_json::to_vec(&all).unwrap()
            );
        }
    }
}
