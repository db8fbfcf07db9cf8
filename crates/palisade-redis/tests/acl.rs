//! An ACL user that may only run the stores' commands on its own prefix
//! ([`Redis::acl_rules`]), on a private `redis-server`: every store works through it, and
//! nothing else does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use common::{PrivateRedis, free_port};
use palisade_core::StoreError;
use palisade_core::once::OneTimeStore;
use palisade_core::time::{Clock, SystemClock};
use palisade_core::{family, once, rate};
use palisade_redis::{Redis, RedisFamilyStore, RedisOneTimeStore, RedisRateStore};

#[test]
fn a_least_privilege_user_runs_the_stores_and_nothing_else() {
    if !common::have_redis_server() {
        return;
    }
    let server = PrivateRedis::start(free_port(), &[]).expect("start redis-server");
    let port = server.port;
    let app = Redis::open("redis://127.0.0.1:1")
        .unwrap()
        .with_prefix("acl-app")
        .unwrap();
    common::runtime().block_on(async {
        let mut admin = common::inspect(&server.url()).await;
        let mut setuser = redis::cmd("ACL");
        setuser
            .arg("SETUSER")
            .arg("palisade")
            .arg("on")
            .arg(">s3cret-pass-for-tests");
        for rule in app.acl_rules().split(' ') {
            setuser.arg(rule);
        }
        let _: () = setuser.query_async(&mut admin).await.unwrap();

        let url = format!("redis://palisade:s3cret-pass-for-tests@127.0.0.1:{port}");
        let redis = Redis::open(&url).unwrap().with_prefix("acl-app").unwrap();
        rate::conformance::rate_store(&RedisRateStore::new(redis.clone())).await;
        once::conformance::one_time_store(
            &RedisOneTimeStore::new(redis.clone()),
            SystemClock.now(),
        )
        .await;
        family::conformance::family_store(&RedisFamilyStore::new(redis.clone()), SystemClock.now())
            .await;

        // A prefix that would fall inside this user's `~acl-app:*` pattern cannot exist: with
        // `acl-app:eu` allowed, this user could read and write every key of that application.
        let nested = Redis::open(&url).unwrap().with_prefix("acl-app:eu");
        assert!(
            nested.is_err(),
            "a prefix nested in another's ACL pattern was accepted"
        );

        // The same user under another application's prefix: refused.
        let other = Redis::open(&url).unwrap().with_prefix("other-app").unwrap();
        let err = RedisOneTimeStore::new(other)
            .claim("s", b"t", SystemClock.now())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }));
        assert!(
            format!("{:?}", err).to_ascii_lowercase().contains("noperm"),
            "{err:?}"
        );
        // Anything but the stores' commands: refused.
        let mut refused = 0;
        let attempts = [
            redis::cmd("FLUSHALL"),
            redis::cmd("KEYS").arg("*").clone(),
            redis::cmd("CONFIG").arg("GET").arg("*").clone(),
            redis::cmd("EVAL").arg("return 1").arg(0).clone(),
            redis::cmd("GET").arg("acl-app:once:x").clone(),
            redis::cmd("SCRIPT").arg("FLUSH").clone(),
        ];
        for cmd in &attempts {
            if redis.query::<redis::Value>(cmd).await.is_err() {
                refused += 1;
            }
        }
        eprintln!("{refused} of {} other commands refused", attempts.len());
        assert_eq!(refused, attempts.len());
        // A wrong password is a typed error, and the password is not in it.
        let bad = Redis::open(&format!("redis://palisade:wrong-pass@127.0.0.1:{port}")).unwrap();
        let err = RedisOneTimeStore::new(bad.with_prefix("acl-app").unwrap())
            .claim("s", b"t", SystemClock.now())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }));
        assert!(!format!("{err:?} {err}").contains("wrong-pass"));
        assert!(!format!("{redis:?}").contains("s3cret"));
    });
    server.stop();
}
