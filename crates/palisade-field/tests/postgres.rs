//! The PostgreSQL migration driver against a real server (`PALISADE_DATABASE_URL`).
#![cfg(feature = "postgres")]
// Test helpers may unwrap and print: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::indexing_slicing)]

use palisade_core::keyring::Keyring;
use palisade_core::random::{SecureRandom, SystemRandom};
use palisade_core::time::UnixTime;
use palisade_field::fernet::{Fernet, FernetKey};
use palisade_field::migrate::Migrator;
use palisade_field::migrate::postgres::PgStore;
use palisade_field::{Context, FieldCipher};
use tokio_postgres::{Client, NoTls};

const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

async fn connect() -> Option<Client> {
    let Ok(url) = std::env::var("PALISADE_DATABASE_URL") else {
        eprintln!("skipped: PALISADE_DATABASE_URL is not set");
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

fn unique_table(prefix: &str) -> String {
    let r: [u8; 4] = palisade_core::random::array(&SystemRandom).unwrap();
    format!("{prefix}_{}_{}", std::process::id(), u32::from_be_bytes(r))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn migrates_100k_rows_survives_a_kill_and_resumes() {
    runtime().block_on(async {
        let Some(mut client) = connect().await else {
            return;
        };
        let table = unique_table("pf_mig");
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, secret text);
                 INSERT INTO {table} SELECT g, 'value-' || g FROM generate_series(1, 100000) g;"
            ))
            .await
            .unwrap();
        let result = std::panic::AssertUnwindSafe(run_100k(&mut client, &table));
        let outcome = futures_catch(result).await;
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 DELETE FROM palisade_field_migrations WHERE job = '{table}.secret';"
            ))
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Runs a future and catches a panic in it, so the table is dropped either way.
async fn futures_catch<F: std::future::Future>(
    f: std::panic::AssertUnwindSafe<F>,
) -> Result<F::Output, Box<dyn std::any::Any + Send>> {
    let mut f = std::pin::pin!(f.0);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(p) => std::task::Poll::Ready(Err(p)),
        }
    })
    .await
}

async fn run_100k(client: &mut Client, table: &str) {
    let ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
    let cipher = FieldCipher::new(&ring).unwrap();
    let m = Migrator::new(&cipher, table, "secret").batch_size(1000);

    // First run: killed half-way. The progress callback raises a flag after batch 50; the
    // select drops the run future at its next await, in the middle of batch 51.
    {
        let mut store = PgStore::new(client, table, "id", "secret", "secret").unwrap();
        store.prepare().await.unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let run = m.run_with_progress(&mut store, |p| {
            if p.batches == 50 {
                let _ = tx.send(true);
            }
        });
        let mut rx = rx;
        tokio::select! {
            r = run => panic!("the run should have been killed: {r:?}"),
            _ = rx.wait_for(|k| *k) => {}
        }
    }
    let snapshot: Vec<String> = client
        .query(
            &format!("SELECT secret FROM {table} WHERE id <= 50000 ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(snapshot.iter().all(|v| palisade_field::is_encrypted(v)));
    let mut store = PgStore::new(client, table, "id", "secret", "secret").unwrap();
    let status = m.status(&mut store).await.unwrap();
    assert_eq!(status.current, 50_000);
    assert_eq!(status.plaintext, 50_000);

    // Resumed: continues after the checkpoint (id 50000) and finishes.
    let report = m.run(&mut store).await.unwrap();
    eprintln!("resumed run: {report:?}");
    assert!(report.finished);
    assert_eq!(report.encrypted, 50_000);
    assert_eq!(
        report.skipped, 0,
        "resumed after the checkpoint, not from the start"
    );
    let status = m.status(&mut store).await.unwrap();
    assert_eq!(status.plaintext, 0);
    assert_eq!(status.current, 100_000);
    assert!(status.is_complete());
    drop(store);

    let rows = client
        .query(&format!("SELECT id, secret FROM {table} ORDER BY id"), &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 100_000);
    for (i, row) in rows.iter().enumerate() {
        let id: i64 = row.get(0);
        let stored: String = row.get(1);
        let plain = cipher
            .decrypt_string(&stored, &Context::new(table, "secret", id))
            .unwrap();
        assert_eq!(*plain, format!("value-{id}"));
        if i < 50_000 {
            assert_eq!(stored, snapshot[i], "row {id} was encrypted twice");
        }
    }
}

#[test]
fn converts_fernet_into_a_separate_column() {
    runtime().block_on(async {
        let Some(mut client) = connect().await else { return };
        let table = unique_table("pf_fer");
        let key = FernetKey::generate(&SystemRandom).unwrap();
        let fernet = Fernet::new(FernetKey::from_base64(&key.expose_base64()).unwrap());
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, token text, token_enc text)"
            ))
            .await
            .unwrap();
        let now = UnixTime::from_secs(1_700_000_000);
        for id in 1..=200i64 {
            let mut pad = [0u8; 4];
            SystemRandom.fill(&mut pad).unwrap();
            let v = match id % 4 {
                0 => None,
                1 => Some(format!("plain-{id}")),
                _ => Some(fernet.encrypt(format!("oauth-{id}").as_bytes(), now, &SystemRandom).unwrap()),
            };
            client
                .execute(&format!("INSERT INTO {table} VALUES ($1, $2, NULL)"), &[&id, &v])
                .await
                .unwrap();
        }
        let ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
        let cipher = FieldCipher::new(&ring).unwrap();
        let m = Migrator::new(&cipher, "accounts", "token")
            .batch_size(64)
            .fernet(Fernet::new(key));
        let mut store = PgStore::new(&mut client, &table, "id", "token", "token_enc").unwrap();
        store.prepare().await.unwrap();
        let report = m.run(&mut store).await.unwrap();
        let status = m.status(&mut store).await.unwrap();
        drop(store);
        let rows = client
            .query(&format!("SELECT id, token, token_enc FROM {table} ORDER BY id"), &[])
            .await
            .unwrap();
        client
            .batch_execute(&format!(
                "DROP TABLE {table}; DELETE FROM palisade_field_migrations WHERE job = '{table}.token_enc';"
            ))
            .await
            .unwrap();
        assert_eq!((report.converted, report.encrypted, report.nulls), (100, 50, 50));
        assert_eq!((status.plaintext, status.fernet, status.current), (0, 0, 150));
        for row in rows {
            let id: i64 = row.get(0);
            let source: Option<String> = row.get(1);
            let enc: Option<String> = row.get(2);
            assert_eq!(source.is_none(), enc.is_none());
            if let Some(enc) = enc {
                let plain = cipher
                    .decrypt_string(&enc, &Context::new("accounts", "token", id))
                    .unwrap();
                let expected = if id % 4 == 1 { format!("plain-{id}") } else { format!("oauth-{id}") };
                assert_eq!(*plain, expected);
            }
        }
    });
}
