//! Mappings to the schemas SIEMs ingest: OCSF and Elastic Common Schema (ECS).
//!
//! [`ocsf_ids`] gives the OCSF numbers of an event (class, activity, status, severity) and
//! [`to_ocsf`] a full OCSF 1.3 JSON object; [`to_ecs`] an ECS 8 JSON document. Both carry the
//! event id, so a record can be traced back to the chained trail.
//!
//! | action | OCSF class (uid) | activity (id) | ECS `event.category` / `event.type` |
//! |---|---|---|---|
//! | login succeeded / failed | Authentication (3002) | Logon (1) | authentication / start |
//! | MFA code accepted / rejected, recovery code used, OAuth state rejected, API key used | Authentication (3002) | Other (99) | authentication / info |
//! | account locked / unlocked | Account Change (3001) | Lock (9) / Unlock (12) | iam / user, change |
//! | MFA enrolled / removed | Account Change (3001) | MFA Factor Enable (10) / Disable (11) | iam / user, change |
//! | MFA enrollment started, recovery codes regenerated | Account Change (3001) | Other (99) | iam / user, change |
//! | key and API key created / rotated / retired or revoked | Entity Management (3004) | Create (1) / Update (3) / Delete (4) | configuration / creation, change, deletion |
//! | MFA code replayed, token reuse, pin mismatch, pin set expired, decryption failed, rate limit exceeded | Detection Finding (2004) | Create (1) | intrusion_detection / indicator (`event.kind: alert`) |
//! | custom | Base Event (0) | Other (99) | (none) |
//!
//! Status: success 1, failure 2, unknown 0. Severity: informational 1 ... critical 5 (the same
//! numbers in OCSF `severity_id` and ECS `event.severity`).
//!
//! # Errors and panics
//! None: every event maps.

use std::fmt::Write as _;

use palisade_core::audit::{Action, AuditEvent, Outcome, Severity};
use serde_json::{Map, Value, json};

/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

/// The OCSF numbers of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OcsfIds {
    /// `class_uid`: 3002 Authentication, 3001 Account Change, 3004 Entity Management,
    /// 2004 Detection Finding, 0 Base Event.
    pub class_uid: u32,
    /// `category_uid`: the class's thousands (3 Identity & Access Management, 2 Findings).
    pub category_uid: u32,
    /// `activity_id` within the class.
    pub activity_id: u32,
    /// `type_uid` = `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    /// `status_id`: 1 success, 2 failure, 0 unknown.
    pub status_id: u32,
    /// `severity_id`: 1 informational ... 5 critical.
    pub severity_id: u32,
}

/// The severity as the 1-5 number OCSF and ECS use.
pub fn severity_number(severity: Severity) -> u32 {
    match severity {
        Severity::Informational => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn class_activity(action: &Action) -> (u32, u32) {
    match action {
        Action::LoginSucceeded | Action::LoginFailed => (3002, 1),
        Action::MfaCodeAccepted
        | Action::MfaCodeRejected
        | Action::RecoveryCodeUsed
        | Action::OAuthStateRejected
        | Action::ApiKeyUsed => (3002, 99),
        Action::AccountLocked => (3001, 9),
        Action::AccountUnlocked => (3001, 12),
        Action::MfaEnrolled => (3001, 10),
        Action::MfaRemoved => (3001, 11),
        Action::MfaEnrollmentStarted | Action::RecoveryCodesRegenerated => (3001, 99),
        Action::KeyCreated | Action::ApiKeyCreated => (3004, 1),
        Action::KeyRotated | Action::ApiKeyRotated => (3004, 3),
        Action::KeyRetired | Action::ApiKeyRevoked => (3004, 4),
        Action::MfaCodeReplayed
        | Action::TokenReuseDetected
        | Action::PinMismatch
        | Action::PinSetExpired
        | Action::DecryptionFailed
        | Action::RateLimitExceeded => (2004, 1),
        _ => (0, 99),
    }
}

/// The OCSF class, activity, status and severity numbers of `event`.
pub fn ocsf_ids(event: &AuditEvent) -> OcsfIds {
    let (class_uid, activity_id) = class_activity(&event.action);
    OcsfIds {
        class_uid,
        category_uid: class_uid / 1000,
        activity_id,
        type_uid: class_uid.saturating_mul(100).saturating_add(activity_id),
        status_id: match event.outcome {
            Outcome::Success => 1,
            Outcome::Failure => 2,
            Outcome::Unknown => 0,
        },
        severity_id: severity_number(event.severity),
    }
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}

/// `event` as an OCSF 1.3 JSON object. Metadata goes under `unmapped`.
pub fn to_ocsf(event: &AuditEvent) -> Value {
    let ids = ocsf_ids(event);
    let mut meta = Map::new();
    meta.insert("version".into(), json!(OCSF_VERSION));
    meta.insert("uid".into(), json!(event.id.to_string()));
    meta.insert(
        "product".into(),
        json!({"name": "palisade", "vendor_name": "palisade"}),
    );
    insert_opt(
        &mut meta,
        "correlation_uid",
        event.correlation_id.as_deref(),
    );
    insert_opt(&mut meta, "tenant_uid", event.tenant.as_deref());
    let mut out = Map::new();
    out.insert("class_uid".into(), json!(ids.class_uid));
    out.insert("category_uid".into(), json!(ids.category_uid));
    out.insert("activity_id".into(), json!(ids.activity_id));
    out.insert("type_uid".into(), json!(ids.type_uid));
    out.insert("status_id".into(), json!(ids.status_id));
    out.insert("severity_id".into(), json!(ids.severity_id));
    out.insert("time".into(), json!(event.timestamp.as_millis()));
    out.insert("message".into(), json!(event.action.as_str()));
    out.insert("metadata".into(), Value::Object(meta));
    let mut user = Map::new();
    insert_opt(&mut user, "name", event.user_name.as_deref());
    insert_opt(&mut user, "uid", event.user_id.as_deref());
    if !user.is_empty() {
        out.insert("user".into(), Value::Object(user));
    }
    let mut src = Map::new();
    if let Some(ip) = event.ip_address {
        src.insert("ip".into(), json!(ip.to_string()));
    }
    insert_opt(&mut src, "uid", event.device_fingerprint.as_deref());
    if !src.is_empty() {
        out.insert("src_endpoint".into(), Value::Object(src));
    }
    if let Some(ua) = &event.user_agent {
        out.insert("http_request".into(), json!({"user_agent": ua}));
    }
    if event.resource.is_some() || event.record_id.is_some() {
        let mut r = Map::new();
        insert_opt(&mut r, "name", event.resource.as_deref());
        insert_opt(&mut r, "uid", event.record_id.as_deref());
        out.insert("resources".into(), Value::Array(vec![Value::Object(r)]));
    }
    let mut unmapped = Map::new();
    unmapped.insert("action".into(), json!(event.action.as_str()));
    if !event.metadata.is_empty() {
        unmapped.insert("metadata".into(), json!(event.metadata));
    }
    out.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(out)
}

/// `event` as an Elastic Common Schema 8 document. Metadata goes under `palisade.metadata`.
pub fn to_ecs(event: &AuditEvent) -> Value {
    let (category, kind, types): (Option<&str>, &str, &[&str]) =
        match class_activity(&event.action).0 {
            3002 if matches!(event.action, Action::LoginSucceeded | Action::LoginFailed) => {
                (Some("authentication"), "event", &["start"])
            }
            3002 => (Some("authentication"), "event", &["info"]),
            3001 => (Some("iam"), "event", &["user", "change"]),
            3004 => (
                Some("configuration"),
                "event",
                match class_activity(&event.action).1 {
                    1 => &["creation"],
                    4 => &["deletion"],
                    _ => &["change"],
                },
            ),
            2004 => (Some("intrusion_detection"), "alert", &["indicator"]),
            _ => (None, "event", &[]),
        };
    let mut ev = Map::new();
    ev.insert("id".into(), json!(event.id.to_string()));
    ev.insert("action".into(), json!(event.action.as_str()));
    ev.insert("kind".into(), json!(kind));
    if let Some(c) = category {
        ev.insert("category".into(), json!([c]));
        ev.insert("type".into(), json!(types));
    }
    ev.insert(
        "outcome".into(),
        json!(match event.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }),
    );
    ev.insert("severity".into(), json!(severity_number(event.severity)));
    ev.insert("dataset".into(), json!("palisade.audit"));
    let mut out = Map::new();
    out.insert(
        "@timestamp".into(),
        json!(rfc3339(event.timestamp.as_nanos())),
    );
    out.insert("ecs".into(), json!({"version": "8.11.0"}));
    out.insert("event".into(), Value::Object(ev));
    let mut user = Map::new();
    insert_opt(&mut user, "name", event.user_name.as_deref());
    insert_opt(&mut user, "id", event.user_id.as_deref());
    if !user.is_empty() {
        out.insert("user".into(), Value::Object(user));
    }
    if let Some(ip) = event.ip_address {
        out.insert("source".into(), json!({"ip": ip.to_string()}));
    }
    if let Some(ua) = &event.user_agent {
        out.insert("user_agent".into(), json!({"original": ua}));
    }
    if let Some(fp) = &event.device_fingerprint {
        out.insert("device".into(), json!({"id": fp}));
    }
    if let Some(t) = &event.tenant {
        out.insert("organization".into(), json!({"id": t}));
    }
    if let Some(c) = &event.correlation_id {
        out.insert("transaction".into(), json!({"id": c}));
    }
    let mut pal = Map::new();
    insert_opt(&mut pal, "resource", event.resource.as_deref());
    insert_opt(&mut pal, "record_id", event.record_id.as_deref());
    pal.insert("schema_version".into(), json!(event.schema_version));
    if !event.metadata.is_empty() {
        pal.insert("metadata".into(), json!(event.metadata));
    }
    out.insert("palisade".into(), Value::Object(pal));
    Value::Object(out)
}

/// RFC 3339 UTC with nanoseconds, `2023-11-14T22:13:20.000000000Z`.
pub fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(30);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use palisade_core::time::UnixTime;

    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn every_standard_action_maps() {
        for a in Action::STANDARD {
            let e = AuditEvent::new(a.clone(), UnixTime::from_secs(1));
            let ids = ocsf_ids(&e);
            assert_ne!(ids.class_uid, 0, "{a}");
            assert_eq!(ids.type_uid, ids.class_uid * 100 + ids.activity_id);
            assert!((1..=5).contains(&ids.severity_id));
            assert!(to_ecs(&e)["event"]["category"].is_array(), "{a}");
        }
        let c = AuditEvent::new(Action::Custom("door".into()), UnixTime::EPOCH);
        assert_eq!(ocsf_ids(&c).class_uid, 0);
    }

    #[test]
    fn login_failed_maps_to_authentication_logon_failure() {
        let e = AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000))
            .user_id("u1")
            .user_name("ann")
            .ip("203.0.113.9".parse().unwrap())
            .meta("reason", "bad password");
        let o = to_ocsf(&e);
        assert_eq!(o["class_uid"], 3002);
        assert_eq!(o["activity_id"], 1);
        assert_eq!(o["type_uid"], 300_201);
        assert_eq!(o["status_id"], 2);
        assert_eq!(o["severity_id"], 2);
        assert_eq!(o["user"]["uid"], "u1");
        assert_eq!(o["src_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(o["time"], 1_700_000_000_000u64);
        let x = to_ecs(&e);
        assert_eq!(x["event"]["outcome"], "failure");
        assert_eq!(x["event"]["category"][0], "authentication");
        assert_eq!(x["user"]["name"], "ann");
        assert_eq!(x["source"]["ip"], "203.0.113.9");
        assert_eq!(x["@timestamp"], "2023-11-14T22:13:20.000000000Z");
        assert_eq!(x["palisade"]["metadata"]["reason"], "bad password");
    }
}
