//! Replay protection: the same code twice and threads racing (two Redis clients racing:
//! palisade-redis).

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
