//! The PostgreSQL sink against the real server (`PALISADE_DATABASE_URL`): 100 000 events with
//! the sink's connection killed twice mid-run, then exactly 100 000 rows, in order, chain
//! intact; and a restart resumes the chain.
#![cfg(feature = "postgres")]
#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use palisade_audit::postgres::{PostgresConfig, PostgresSink, checkpoint_notes, verify_table};
use palisade_audit::{Action, AuditEvent, AuditSink, CheckpointSigner, Verdict};
use palisade_core::time::UnixTime;
use tokio_postgres::{Client, NoTls};

const ORIGIN: &str = "test.example/pg-audit";

fn url() -> Option<String> {
    let url = std::env::var("PALISADE_DATABASE_URL").ok();
    if url.is_none() {
        eprintln!("skipped: PALISADE_DATABASE_URL not set");
    }
    url
}

fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::SystemTime::now()) % 1_000_000_000;
    format!("{prefix}_{}_{r}", std::process::id())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn admin(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::from_seed("pg-key", ORIGIN, &[5; 32]).unwrap()
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(Action::LoginFailed, UnixTime::from_secs(1_700_000_000 + i))
        .user_id(format!("user-{}", i % 100))
        .ip(std::net::IpAddr::from([203, 0, 113, (i % 250) as u8]))
        .meta("i", i.to_string())
}

async fn backends(client: &Client, app: &str) -> Vec<i32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn hundred_thousand_events_through_an_outage() {
    let Some(url) = url() else { return };
    let table = unique("audit_outage");
    let app = unique("palisade_audit_test");
    let sink = PostgresSink::open(
        PostgresConfig::new(&url, &table)
            .unwrap()
            .application_name(&app)
            .checkpoints(signer(), 25_000)
            .max_backoff(Duration::from_millis(200))
            .flush_timeout(Duration::from_secs(300)),
    )
    .unwrap();
    let rt = rt();
    let admin = rt.block_on(admin(&url));
    let mut killed = Vec::new();
    for i in 0..100_000u64 {
        sink.record(event(i));
        if i == 30_000 || i == 70_000 {
            // Wait until the sink is connected and writing, then cut its connection.
            let pids = loop {
                let pids = rt.block_on(backends(&admin, &app));
                if !pids.is_empty() && sink.stats().written > 0 {
                    break pids;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let n = rt
                .block_on(admin.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&app],
                ))
                .unwrap()
                .len();
            assert!(n >= 1);
            killed.extend(pids);
        }
    }
    sink.flush().unwrap();
    let stats = sink.stats();
    eprintln!("stats after outage: {stats:?}");
    assert_eq!(stats.written, 100_000);
    assert_eq!(stats.dropped, 0);
    // The sink reconnected: its backend now is not one of those killed.
    let now = rt.block_on(backends(&admin, &app));
    assert!(
        !now.is_empty() && now.iter().all(|p| !killed.contains(p)),
        "{now:?} {killed:?}"
    );
    sink.shutdown().unwrap();

    rt.block_on(async {
        let row = admin
            .query_one(
                &format!("SELECT count(*), min(seq), max(seq), count(DISTINCT event_id) FROM {table}"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 100_000);
        assert_eq!(row.get::<_, i64>(1), 0);
        assert_eq!(row.get::<_, i64>(2), 99_999);
        assert_eq!(row.get::<_, i64>(3), 100_000);
        // In order: the i-th row by seq is the i-th event recorded.
        let out_of_order = admin
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE (event::jsonb -> 'metadata' ->> 'i')::bigint <> seq"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(out_of_order.get::<_, i64>(0), 0);

        let verifier = signer().verifier();
        let checkpoints: Vec<_> = checkpoint_notes(&url, &table)
            .await
            .unwrap()
            .iter()
            .map(|n| verifier.verify(n, ORIGIN).unwrap())
            .collect();
        assert_eq!(checkpoints.last().map(|c| c.size()), Some(100_000));
        let verdict = verify_table(&url, &table, &checkpoints).await.unwrap().verdict;
        assert!(
            matches!(verdict, Verdict::Intact { records: 100_000, attested: 100_000, .. }),
            "{verdict:?}"
        );

        // Tampering with one row is caught, at that row.
        admin
            .batch_execute(&format!(
                "UPDATE {table} SET event = replace(event, 'user-7\"', 'user-8\"') WHERE seq = 4007"
            ))
            .await
            .unwrap();
        let verdict = verify_table(&url, &table, &checkpoints).await.unwrap().verdict;
        assert!(matches!(verdict, Verdict::Broken { index: 4007, .. }), "{verdict:?}");

        admin
            .batch_execute(&format!("DROP TABLE {table}; DROP TABLE {table}_checkpoints"))
            .await
            .unwrap();
    });
}

#[test]
fn restart_resumes_the_chain() {
    let Some(url) = url() else { return };
    let table = unique("audit_resume");
    for round in 0..2u64 {
        let sink = PostgresSink::open(PostgresConfig::new(&url, &table).unwrap()).unwrap();
        for i in 0..500 {
            sink.record(event(round * 500 + i));
        }
        sink.shutdown().unwrap();
    }
    let rt = rt();
    rt.block_on(async {
        let verdict = verify_table(&url, &table, &[]).await.unwrap().verdict;
        assert!(
            matches!(verdict, Verdict::Intact { records: 1000, .. }),
            "{verdict:?}"
        );
        admin(&url)
            .await
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    });
}

#[test]
fn unreachable_server_buffers_then_flush_times_out() {
    // A port where nothing listens: the sink keeps the events and reports them pending.
    let sink = PostgresSink::open(
        PostgresConfig::new("postgres://postgres@127.0.0.1:9/none", "audit_never")
            .unwrap()
            .max_backoff(Duration::from_millis(20))
            .flush_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    for i in 0..10 {
        sink.record(event(i));
    }
    match sink.flush_within(Duration::from_millis(300)) {
        Err(palisade_audit::AuditError::Pending { pending }) => assert_eq!(pending, 10),
        other => panic!("{other:?}"),
    }
    let stats = sink.stats();
    assert!(stats.write_failures >= 1);
    assert!(stats.last_error.is_some());
    assert_eq!(stats.written, 0);
}
