//! Replay protection: the same code twice, threads racing, and two Redis clients racing.

// Test helpers may unwrap and print: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use palisade_core::once::{MemoryOneTimeStore, OneTimeStore};
use palisade_core::random::SystemRandom;
use palisade_core::time::{Clock, SystemClock, UnixTime};
use palisade_otp::{Algorithm, OtpSecret, Rejection, Totp, TotpParams};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn fresh_totp() -> Totp {
    Totp::new(
        &OtpSecret::generate(Algorithm::Sha1, &SystemRandom).unwrap(),
        TotpParams::new(),
    )
}

#[test]
fn the_same_code_twice_is_refused() {
    let totp = fresh_totp();
    let now = UnixTime::from_secs(1_900_000_000);
    let code = totp.generate(now).unwrap();
    let first = totp.verify(code.expose_secret(), now, None).unwrap();
    assert_eq!(
        totp.verify(code.expose_secret(), now, Some(first.step())),
        Err(Rejection::Replayed)
    );

    // Through the store, even without passing the last used step.
    let store = MemoryOneTimeStore::new();
    let now = SystemClock.now();
    let code = totp.generate(now).unwrap();
    let a = block_on(totp.verify_claimed(&store, "user-1", code.expose_secret(), now, None));
    let b = block_on(totp.verify_claimed(&store, "user-1", code.expose_secret(), now, None));
    assert!(a.unwrap().is_ok());
    assert_eq!(b.unwrap(), Err(Rejection::Replayed));
    // Another user's scope is independent.
    let c = block_on(totp.verify_claimed(&store, "user-2", code.expose_secret(), now, None));
    assert!(c.unwrap().is_ok());
    // A wrong code is rejected before the store is touched.
    let step = TotpParams::new().step_at(now).unwrap();
    let window: Vec<String> = (step - 1..=step + 1)
        .map(|s| totp.generate_step(s).expose_secret().to_owned())
        .collect();
    let wrong = (0..4u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap();
    let d = block_on(totp.verify_claimed(&store, "user-3", &wrong, now, None)).unwrap();
    assert_eq!(d, Err(Rejection::Invalid));
}

/// Verifies `code` from `contenders` threads at once; returns how many were accepted.
fn race<S: OneTimeStore + 'static>(
    store: &Arc<S>,
    totp: &Arc<Totp>,
    scope: &str,
    contenders: usize,
) -> usize {
    let scope: Arc<str> = scope.into();
    let now = SystemClock.now();
    let code: Arc<str> = totp.generate(now).unwrap().expose_secret().into();
    let barrier = Arc::new(Barrier::new(contenders));
    let winners = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..contenders)
        .map(|_| {
            let (store, totp, scope, code, barrier, winners) = (
                store.clone(),
                totp.clone(),
                scope.clone(),
                code.clone(),
                barrier.clone(),
                winners.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                let verdict =
                    block_on(totp.verify_claimed(&*store, &scope, &code, now, None)).unwrap();
                match verdict {
                    Ok(_) => {
                        winners.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(r) => assert_eq!(r, Rejection::Replayed),
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    winners.load(Ordering::SeqCst)
}

#[test]
fn threads_racing_with_one_code_have_one_winner() {
    let store = Arc::new(MemoryOneTimeStore::new());
    for round in 0..20 {
        let totp = Arc::new(fresh_totp());
        assert_eq!(
            race(&store, &totp, &format!("race-{round}"), 8),
            1,
            "round {round}"
        );
    }
}

#[cfg(feature = "redis")]
#[test]
fn two_redis_clients_racing_with_one_code_have_one_winner() {
    use palisade_core::once::RedisOneTimeStore;

    let Ok(url) = std::env::var("PALISADE_REDIS_URL") else {
        eprintln!("skipped: PALISADE_REDIS_URL is not set");
        return;
    };
    let prefix = format!(
        "palisade-otp-test:{}:{}",
        std::process::id(),
        u64::from_be_bytes(palisade_core::random::array(&SystemRandom).unwrap())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Two clients, each with its own connection.
        let a = RedisOneTimeStore::connect(&url)
            .await
            .unwrap()
            .prefix(prefix.clone());
        let b = RedisOneTimeStore::connect(&url)
            .await
            .unwrap()
            .prefix(prefix.clone());
        for round in 0..20 {
            let totp = Arc::new(fresh_totp());
            let now = SystemClock.now();
            let code: Arc<str> = totp.generate(now).unwrap().expose_secret().into();
            let scope: Arc<str> = format!("race-{round}").into();
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let contender = |store: RedisOneTimeStore| {
                let (totp, code, scope, barrier) =
                    (totp.clone(), code.clone(), scope.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    totp.verify_claimed(&store, &scope, &code, now, None)
                        .await
                        .unwrap()
                })
            };
            let (ha, hb) = (contender(a.clone()), contender(b.clone()));
            let (ra, rb) = (ha.await.unwrap(), hb.await.unwrap());
            let wins = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
            assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
            assert!(ra == Err(Rejection::Replayed) || rb == Err(Rejection::Replayed));
        }
    });
    // The claims expire by themselves (PXAT, about two periods from now).
}

#[test]
fn an_unreachable_store_fails_closed() {
    use palisade_core::StoreError;
    use palisade_otp::OtpError;

    /// A store whose backend is down.
    #[derive(Debug)]
    struct Down;
    impl OneTimeStore for Down {
        async fn claim(
            &self,
            _: &str,
            _: &[u8],
            _: UnixTime,
        ) -> Result<palisade_core::once::Claim, StoreError> {
            Err(StoreError::unavailable(std::io::Error::other(
                "connection refused",
            )))
        }
    }
    let totp = fresh_totp();
    let now = SystemClock.now();
    let code = totp.generate(now).unwrap();
    let result = block_on(totp.verify_claimed(&Down, "u", code.expose_secret(), now, None));
    assert!(matches!(result, Err(OtpError::Store(_))));
}
