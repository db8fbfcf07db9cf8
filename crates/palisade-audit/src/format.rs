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

use palisade_core::audit::AuditEvent;

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
    serde_json::to_writer(out, event)?;
    Ok(())
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
    use palisade_core::audit::Action;
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
}
