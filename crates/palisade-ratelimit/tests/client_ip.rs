//! The client-IP resolver from the attacker's side, through a real axum server on loopback.
//! The test's own connections come from 127.0.0.1: the "proxy" when the server trusts it, an
//! untrusted peer when it does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use palisade_ratelimit::{Begin, ClientIpResolver, Lockout, LockoutPolicy, MemoryLimiter};
use palisade_ratelimit::{MemoryRateStore, Quota};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct App {
    resolver: ClientIpResolver,
    limiter: MemoryLimiter,
    lockout: Lockout<MemoryRateStore>,
    verified: AtomicU64,
}

/// A request limited per client: 200 or 429.
async fn limited(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> StatusCode {
    let client = resolve(&app, peer, &headers);
    match app.limiter.check(client.key_bytes().as_ref()) {
        Ok(d) if d.is_allowed() => StatusCode::OK,
        _ => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// A wrong-password login: counts how many reach the verifier.
async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> StatusCode {
    let client = resolve(&app, peer, &headers);
    match app.lockout.begin("alice", client.key()).await.unwrap() {
        Begin::Proceed(attempt) => {
            app.verified.fetch_add(1, Ordering::SeqCst);
            let _ = attempt.failed();
            StatusCode::UNAUTHORIZED
        }
        Begin::Locked(_) => StatusCode::UNAUTHORIZED,
    }
}

fn resolve(app: &App, peer: SocketAddr, headers: &HeaderMap) -> palisade_ratelimit::ClientIp {
    let lines = |name| headers.get_all(name).iter().map(|v| v.as_bytes());
    app.resolver
        .resolve(peer.ip(), lines("forwarded"), lines("x-forwarded-for"))
}

/// Serves `app` on a free loopback port.
async fn serve(resolver: ClientIpResolver) -> (SocketAddr, Arc<App>) {
    let mut policy = LockoutPolicy::default();
    policy.delay_after = 1_000;
    let app = Arc::new(App {
        resolver,
        limiter: MemoryLimiter::new(Quota::per_hour(1)),
        lockout: Lockout::new(MemoryRateStore::new(), policy).unwrap(),
        verified: AtomicU64::new(0),
    });
    let router = axum::Router::new()
        .route("/", get(limited))
        .route("/login", get(login))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, app)
}

/// One HTTP/1.1 request with `headers`; the status code.
async fn get_status(addr: SocketAddr, path: &str, headers: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn loopback_proxy() -> ClientIpResolver {
    ClientIpResolver::new().trust("127.0.0.1/32".parse().unwrap())
}

#[test]
fn behind_a_trusted_proxy_twelve_clients_get_twelve_buckets() {
    runtime().block_on(async {
        let (addr, _) = serve(loopback_proxy()).await;
        let (mut first, mut second) = (0, 0);
        for i in 1..=12 {
            // The proxy appends the client; what the client sent is left of it.
            let xff = format!("X-Forwarded-For: 6.6.6.6, 198.51.100.{i}\r\n");
            first += u32::from(get_status(addr, "/", &xff).await == 200);
            second += u32::from(get_status(addr, "/", &xff).await == 200);
        }
        // The same through `Forwarded`, bracketed IPv6 with a port.
        let fwd = "Forwarded: for=\"[2001:db8:9::1]:4711\"\r\n";
        let v6 = get_status(addr, "/", fwd).await;
        eprintln!("12 clients behind the proxy: {first} of 12 first requests admitted, {second} of 12 second");
        assert_eq!(first, 12, "each client has its own bucket");
        assert_eq!(second, 0, "and each bucket holds one request an hour");
        assert_eq!(v6, 200);
    });
}

#[test]
fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    runtime().block_on(async {
        // Only 10.0.0.0/8 is a proxy: the loopback peer is a client writing its own headers.
        let (addr, _) = serve(ClientIpResolver::new().trust("10.0.0.0/8".parse().unwrap())).await;
        let mut admitted = 0;
        for i in 0..30 {
            let headers =
                format!("X-Forwarded-For: 203.0.113.{i}\r\nForwarded: for=192.0.2.{i}\r\n");
            admitted += u32::from(get_status(addr, "/", &headers).await == 200);
        }
        eprintln!("rotating X-Forwarded-For from an untrusted peer: {admitted} of 30 admitted");
        assert_eq!(admitted, 1, "all 30 share the peer's bucket of 1");
    });
}

#[test]
fn two_hundred_addresses_of_one_64_share_one_lockout_counter() {
    runtime().block_on(async {
        let (addr, app) = serve(loopback_proxy()).await;
        for i in 0..200u32 {
            let xff = format!("X-Forwarded-For: 2001:db8:1:2:{i:x}::{:x}\r\n", i * 7 + 1);
            assert_eq!(get_status(addr, "/login", &xff).await, 401);
        }
        let verified = app.verified.load(Ordering::SeqCst);
        eprintln!("200 addresses of one /64: {verified} of 200 guesses reached verification");
        let limit = LockoutPolicy::default().max_per_account_ip;
        assert!(
            verified <= limit,
            "{verified} of 200 guesses reached verification"
        );
    });
}
