//! A secret put into an event's metadata never appears in any output: JSON, OCSF, ECS,
//! tracing, the JSON-lines file, PostgreSQL.
#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use palisade_audit::file::{JsonlConfig, JsonlSink};
use palisade_audit::redact::Redactor;
use palisade_audit::{Action, AuditEvent, AuditSink, TracingSink, format, siem};
use palisade_core::time::UnixTime;

const SECRETS: [&str; 4] = [
    "hunter2-S3CRET-9f8e",
    "JBSWY3DPEHPK3PXP",
    "tok_live_abcdef123456",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlc2ln",
];

fn leaky_event() -> AuditEvent {
    AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000))
        .user_id("u-1")
        .user_agent("Mozilla/5.0\r\nlogin_succeeded user=admin")
        .meta("Password", SECRETS[0])
        .meta(
            "enroll_uri",
            format!("otpauth://totp/Acme:ann?secret={}", SECRETS[1]),
        )
        .meta("X-Api-Token", SECRETS[2])
        .meta("note", format!("client sent {}", SECRETS[3]))
        .meta("reason", "bad password")
}

fn assert_clean(what: &str, output: &str) {
    for s in SECRETS {
        assert!(!output.contains(s), "{what} leaked {s}: {output}");
    }
    assert!(output.contains("bad password"), "{what} lost the reason");
    assert!(!output.contains("\r\n"), "{what} kept a raw line break");
}

#[test]
fn json_and_siem_outputs_are_clean() {
    let e = Redactor::new().redacted(&leaky_event());
    let json = String::from_utf8(format::to_canonical_json(&e).unwrap()).unwrap();
    assert_clean("json", &json);
    assert_clean("ocsf", &siem::to_ocsf(&e).to_string());
    assert_clean("ecs", &siem::to_ecs(&e).to_string());
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, "{}={} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap();
        event.record(&mut Visitor(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn tracing_output_is_clean() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        TracingSink::new().record(leaky_event());
    });
    let out = capture.0.lock().unwrap().clone();
    assert!(out.contains("action=login_failed"), "{out}");
    assert!(out.contains("user_id=u-1"), "{out}");
    assert_clean("tracing", &out);
    // Only the one line break that ends the captured event.
    assert_eq!(out.matches('\n').count(), 1, "{out}");
}

#[test]
fn file_output_is_clean() {
    let dir = std::env::temp_dir().join(format!("palisade-audit-redact-{}", std::process::id()));
    let sink = JsonlSink::open(JsonlConfig::new(&dir, "t")).unwrap();
    sink.record(leaky_event());
    sink.shutdown().unwrap();
    let mut all = String::new();
    for f in palisade_audit::file::trail_files(&dir, "t").unwrap() {
        all.push_str(&std::fs::read_to_string(f).unwrap());
    }
    assert_eq!(all.lines().count(), 1);
    assert_clean("file", &all);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_output_is_clean() {
    use palisade_audit::postgres::{PostgresConfig, PostgresSink};

    let Ok(url) = std::env::var("PALISADE_DATABASE_URL") else {
        eprintln!("skipped: PALISADE_DATABASE_URL not set");
        return;
    };
    let table = format!("audit_redact_{}_{}", std::process::id(), rand_suffix());
    let sink = PostgresSink::open(PostgresConfig::new(&url, &table).unwrap()).unwrap();
    sink.record(leaky_event());
    sink.shutdown().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let text: String = rows[0].get(0);
        client
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
        // The row's text form escapes backslashes; the secrets contain none.
        for s in SECRETS {
            assert!(!text.contains(s), "postgres leaked {s}");
        }
        assert!(text.contains("bad password"));
    });
}

#[cfg(feature = "postgres")]
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) % 1_000_000
}
