//! `rediss://` against a private `redis-server --tls-port` with a test CA made by openssl
//! here: the stores work over TLS with the CA trusted, and a client that does not trust it,
//! or expects another host name, gets a typed error and never a reply.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{PrivateRedis, free_port};
use palisade_core::StoreError;
use palisade_core::once::{OneTimeStore, conformance as once_conformance};
use palisade_core::rate::conformance;
use palisade_core::time::{Clock, SystemClock};
use palisade_redis::{Redis, RedisOneTimeStore, RedisRateStore};

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA, and a server certificate it signs for `localhost` and 127.0.0.1, in `dir`.
fn make_certs(dir: &Path, name: &str) -> bool {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &ca_key,
        ],
    ) && openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &ca_key,
            "-subj",
            "/CN=palisade test CA",
            "-days",
            "2",
            "-out",
            &ca,
        ],
    ) && openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "server.key",
        ],
    ) && openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "server.csr",
        ],
    ) && openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    )
}

#[test]
fn stores_work_over_tls_and_an_untrusted_server_is_refused() {
    if !common::have_redis_server() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("palisade-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A second CA that signed nothing: a client trusting it must refuse the server.
    if !make_certs(&dir, "other") || !make_certs(&dir, "test") {
        eprintln!("skipped: openssl could not make the test certificates");
        return;
    }
    let port = free_port();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let server = PrivateRedis::start_tls(
        port,
        &[
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("test-ca.pem"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let Some(server) = server else {
        eprintln!("skipped: redis-server would not start with --tls-port");
        return;
    };
    let ca = std::fs::read(dir.join("test-ca.pem")).unwrap();
    let other_ca = std::fs::read(dir.join("other-ca.pem")).unwrap();
    common::runtime().block_on(async {
        let url = format!("rediss://127.0.0.1:{port}");
        let redis = Redis::open_tls(&url, &ca)
            .unwrap()
            .with_prefix("tls-app")
            .unwrap();
        conformance::rate_store(&RedisRateStore::new(redis.clone())).await;
        once_conformance::one_time_store(&RedisOneTimeStore::new(redis.clone()), SystemClock.now())
            .await;
        let by_name = Redis::open_tls(&format!("rediss://localhost:{port}"), &ca).unwrap();
        assert!(by_name.server_time_micros().await.is_ok());

        // Not trusting the server's CA: the handshake fails, typed.
        let untrusted = Redis::open_tls(&url, &other_ca).unwrap();
        let err = RedisOneTimeStore::new(untrusted)
            .claim("s", b"t", SystemClock.now())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        // The system's roots do not hold the test CA either.
        let system = Redis::open(&url).unwrap();
        assert!(system.server_time_micros().await.is_err());
        // Plain text to the TLS port gets no reply.
        let plain = Redis::open(&format!("redis://127.0.0.1:{port}")).unwrap();
        assert!(plain.server_time_micros().await.is_err());
    });
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
