//! The migration engine over the in-memory store and a store that fails.

// Test helpers may unwrap and index: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use palisade_core::audit::{Action, MemorySink};
use palisade_core::keyring::{Key, KeyId, KeyState, Keyring};
use palisade_core::random::SystemRandom;
use palisade_core::time::UnixTime;
use palisade_field::fernet::{Fernet, FernetKey};
use palisade_field::migrate::{Encoding, MemoryStore, MigrationStore, Migrator, SourceRow, Update};
use palisade_field::{Context, FieldCipher, FieldError};

const K1: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn value(id: i64) -> Vec<u8> {
    format!("secret-{id}").into_bytes()
}

fn store(n: i64, encoding: Encoding, in_place: bool) -> MemoryStore {
    let mut s = if in_place {
        MemoryStore::in_place(encoding)
    } else {
        MemoryStore::separate(encoding)
    };
    for id in 1..=n {
        s.insert(id, if id % 10 == 0 { None } else { Some(value(id)) });
    }
    s
}

fn check_all(cipher: &FieldCipher, s: &MemoryStore, n: i64) {
    for id in 1..=n {
        let got = s.target(id);
        if id % 10 == 0 {
            assert!(got.is_none());
        } else {
            let ctx = Context::new("users", "secret", id);
            assert_eq!(
                *cipher.decrypt(got.unwrap(), &ctx).unwrap(),
                value(id),
                "row {id}"
            );
        }
    }
}

#[test]
fn interrupted_runs_resume_without_loss_or_double_encryption() {
    for (encoding, in_place) in [
        (Encoding::Text, true),
        (Encoding::Text, false),
        (Encoding::Raw, true),
        (Encoding::Raw, false),
    ] {
        let ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
        let cipher = FieldCipher::new(&ring).unwrap();
        let mut s = store(1000, encoding, in_place);
        let m = Migrator::new(&cipher, "users", "secret").batch_size(64);
        // Killed after 5 batches.
        let first = block_on(
            Migrator::new(&cipher, "users", "secret")
                .batch_size(64)
                .max_batches(Some(5))
                .run(&mut s),
        )
        .unwrap();
        assert!(!first.finished);
        assert_eq!(first.batches, 5);
        assert_eq!(first.last_id, Some(320));
        let mid = block_on(m.status(&mut s)).unwrap();
        assert_eq!(mid.current, 288);
        assert_eq!(mid.plaintext, 1000 - 100 - 288);
        let before: Vec<_> = (1..=320)
            .map(|id| s.target(id).map(<[u8]>::to_vec))
            .collect();
        // Resumed: starts after row 320, so the first 320 rows are not touched again.
        let second = block_on(m.run(&mut s)).unwrap();
        assert!(second.finished);
        assert_eq!(second.rows, 680);
        assert_eq!(first.encrypted + second.encrypted, 900);
        let after: Vec<_> = (1..=320)
            .map(|id| s.target(id).map(<[u8]>::to_vec))
            .collect();
        assert_eq!(before, after);
        check_all(&cipher, &s, 1000);
        // A full re-run skips everything.
        let third = block_on(m.run(&mut s)).unwrap();
        assert_eq!((third.encrypted, third.skipped, third.nulls), (0, 900, 100));
        let status = block_on(m.status(&mut s)).unwrap();
        assert_eq!(
            (status.plaintext, status.current, status.nulls),
            (0, 900, 100)
        );
        assert!(status.is_complete());
    }
}

#[test]
fn rotation_rewraps_and_reports_older_keys() {
    let sink = Arc::new(MemorySink::new());
    let mut ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
    let c1 = FieldCipher::new(&ring).unwrap();
    let mut s = store(100, Encoding::Text, true);
    block_on(Migrator::new(&c1, "users", "secret").run(&mut s)).unwrap();
    let k2 = KeyId::new("k2").unwrap();
    ring.insert(Key::generate(k2.clone(), KeyState::Active, 32, &SystemRandom).unwrap())
        .unwrap_err(); // still one active key: phase one adds it decrypt-only
    ring.insert(Key::generate(k2.clone(), KeyState::DecryptOnly, 32, &SystemRandom).unwrap())
        .unwrap();
    ring.set_state(&k2, KeyState::Active).unwrap();
    let c2 = FieldCipher::builder(&ring)
        .audit(sink.clone())
        .build()
        .unwrap();
    let m = Migrator::new(&c2, "users", "secret").batch_size(16);
    let status = block_on(m.status(&mut s)).unwrap();
    assert_eq!(status.older.get(&KeyId::new("k1").unwrap()), Some(&90));
    assert_eq!(status.current, 0);
    let report = block_on(m.run(&mut s)).unwrap();
    assert_eq!(report.rewrapped, 90);
    let status = block_on(m.status(&mut s)).unwrap();
    assert_eq!(status.current, 90);
    assert!(status.older.is_empty());
    check_all(&c2, &s, 100);
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, Action::KeyRotated);
    assert_eq!(
        events[0].metadata.get("rewrapped").map(String::as_str),
        Some("90")
    );
}

#[test]
fn fernet_values_are_converted_and_bad_values_left_alone() {
    let ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
    let cipher = FieldCipher::new(&ring).unwrap();
    let fkey = FernetKey::generate(&SystemRandom).unwrap();
    let fkey_copy = FernetKey::from_base64(&fkey.expose_base64()).unwrap();
    let fernet = Fernet::new(fkey);
    let stranger = Fernet::new(FernetKey::generate(&SystemRandom).unwrap());
    let now = UnixTime::from_secs(1_700_000_000);
    let mut s = MemoryStore::in_place(Encoding::Text);
    s.insert(
        1,
        Some(
            fernet
                .encrypt(b"from-python", now, &SystemRandom)
                .unwrap()
                .into_bytes(),
        ),
    );
    s.insert(2, Some(b"plain".to_vec()));
    s.insert(
        3,
        Some(
            stranger
                .encrypt(b"other", now, &SystemRandom)
                .unwrap()
                .into_bytes(),
        ),
    );
    let foreign = cipher
        .encrypt_text(b"x", &Context::new("users", "secret", 999))
        .unwrap();
    s.insert(4, Some(foreign.clone().into_bytes()));
    s.insert(5, Some(b"pal1:not-base64!".to_vec()));
    let m = Migrator::new(&cipher, "users", "secret").fernet(Fernet::new(fkey_copy));
    let before = block_on(m.status(&mut s)).unwrap();
    assert_eq!(
        (before.fernet, before.plaintext, before.undecryptable),
        (1, 1, 3)
    );
    let report = block_on(m.run(&mut s)).unwrap();
    // A run judges values under the active key by their header alone (row 4 is skipped);
    // status decrypts and finds it undecryptable.
    assert_eq!(
        (
            report.converted,
            report.encrypted,
            report.undecryptable,
            report.skipped
        ),
        (1, 1, 2, 1)
    );
    let ctx = |id| Context::new("users", "secret", id);
    assert_eq!(
        &*cipher.decrypt(s.target(1).unwrap(), &ctx(1)).unwrap(),
        b"from-python"
    );
    assert_eq!(
        &*cipher.decrypt(s.target(2).unwrap(), &ctx(2)).unwrap(),
        b"plain"
    );
    // Untouched: nothing is lost.
    assert!(Fernet::looks_like_token(s.target(3).unwrap()));
    assert_eq!(s.target(4).unwrap(), foreign.as_bytes());
    assert_eq!(s.target(5).unwrap(), b"pal1:not-base64!");
    let after = block_on(m.status(&mut s)).unwrap();
    assert_eq!(
        (after.current, after.undecryptable, after.plaintext),
        (2, 3, 0)
    );
}

/// Wraps a store: the application rewrites row 3 between the read and the write, and the
/// second commit fails (the database went away).
struct Meddling {
    inner: MemoryStore,
    commits: usize,
}

impl MigrationStore for Meddling {
    fn in_place(&self) -> bool {
        self.inner.in_place()
    }
    fn encoding(&self) -> Encoding {
        self.inner.encoding()
    }
    async fn fetch(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SourceRow>, FieldError> {
        let rows = self.inner.fetch(after, limit).await?;
        if after.is_none() {
            self.inner.insert(3, Some(b"changed-by-app".to_vec()));
        }
        Ok(rows)
    }
    async fn commit(&mut self, updates: &[Update], checkpoint: i64) -> Result<u64, FieldError> {
        self.commits += 1;
        if self.commits == 2 {
            return Err(FieldError::storage(std::io::Error::other(
                "connection reset",
            )));
        }
        self.inner.commit(updates, checkpoint).await
    }
    async fn checkpoint(&mut self) -> Result<Option<i64>, FieldError> {
        self.inner.checkpoint().await
    }
    async fn clear_checkpoint(&mut self) -> Result<(), FieldError> {
        self.inner.clear_checkpoint().await
    }
}

#[test]
fn concurrent_changes_and_storage_failures_lose_nothing() {
    let ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
    let cipher = FieldCipher::new(&ring).unwrap();
    let mut s = Meddling {
        inner: store(30, Encoding::Text, true),
        commits: 0,
    };
    let m = Migrator::new(&cipher, "users", "secret").batch_size(10);
    let err = block_on(m.run(&mut s)).unwrap_err();
    assert!(matches!(err, FieldError::Storage { .. }));
    // Row 3 was changed after it was read: the stale encryption was not written over it.
    assert_eq!(s.inner.target(3), Some(&b"changed-by-app"[..]));
    // The second batch never committed; the checkpoint is after batch one.
    let report = block_on(m.run(&mut s)).unwrap();
    assert!(report.finished);
    assert_eq!(report.rows, 20);
    let again = block_on(m.run(&mut s)).unwrap();
    assert_eq!(
        again.encrypted, 1,
        "the changed row is picked up by the next pass"
    );
    let ctx = Context::new("users", "secret", 3);
    assert_eq!(
        &*cipher.decrypt(s.inner.target(3).unwrap(), &ctx).unwrap(),
        b"changed-by-app"
    );
    let status = block_on(m.status(&mut s)).unwrap();
    assert_eq!((status.plaintext, status.current), (0, 27));
}

#[test]
fn progress_is_reported_per_batch() {
    let ring = Keyring::parse(&format!("k1:active:{K1}")).unwrap();
    let cipher = FieldCipher::new(&ring).unwrap();
    let mut s = store(25, Encoding::Text, true);
    let mut seen = Vec::new();
    let m = Migrator::new(&cipher, "users", "secret").batch_size(10);
    block_on(m.run_with_progress(&mut s, |p| seen.push((p.batches, p.last_id)))).unwrap();
    assert_eq!(seen, vec![(1, Some(10)), (2, Some(20)), (3, Some(25))]);
}
