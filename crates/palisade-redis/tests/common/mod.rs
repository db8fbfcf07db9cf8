//! What the integration tests share: the servers under test, fresh prefixes, a private
//! `redis-server` for fault tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use core::time::Duration;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use palisade_redis::Redis;

/// A multi-threaded runtime with two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A prefix no other run uses, naming `what`.
pub fn unique_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test-{what}-{}-{nanos}", std::process::id())
}

/// The shared single node (`PALISADE_REDIS_URL`), if set.
pub fn single_url() -> Option<String> {
    let url = std::env::var("PALISADE_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: PALISADE_REDIS_URL is not set");
    }
    url
}

/// The local cluster's nodes (`PALISADE_REDIS_CLUSTER_URLS`, comma-separated), if set.
pub fn cluster_urls() -> Option<Vec<String>> {
    let urls: Vec<String> = std::env::var("PALISADE_REDIS_CLUSTER_URLS")
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        eprintln!("skipped: PALISADE_REDIS_CLUSTER_URLS is not set");
        return None;
    }
    Some(urls)
}

/// A fresh handle on the single node under a prefix naming `what`.
pub fn single(what: &str) -> Option<Redis> {
    let url = single_url()?;
    Some(
        Redis::open(&url)
            .unwrap()
            .with_prefix(&unique_prefix(what))
            .unwrap(),
    )
}

/// A fresh handle on the cluster under a prefix naming `what`.
pub fn cluster(what: &str) -> Option<Redis> {
    let Some(urls) = cluster_urls() else {
        eprintln!("skipped (cluster): PALISADE_REDIS_CLUSTER_URLS is not set");
        return None;
    };
    Some(
        Redis::open_cluster(urls.iter().map(String::as_str))
            .unwrap()
            .with_prefix(&unique_prefix(what))
            .unwrap(),
    )
}

/// Every backend configured: `("single", ..)` and `("cluster", ..)`.
pub fn backends(what: &str) -> Vec<(&'static str, Redis)> {
    let mut out = Vec::new();
    if let Some(r) = single(what) {
        out.push(("single", r));
    }
    if let Some(r) = cluster(what) {
        out.push(("cluster", r));
    }
    out
}

/// A plain connection to the single node, to inspect keys.
pub async fn inspect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The remaining time to live of `key` on the server at `url`, in ms; then deletes it.
pub async fn pttl_then_delete(url: &str, key: &[u8]) -> i64 {
    let mut conn = inspect(url).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    ttl
}

/// Whether `redis-server` can be run.
pub fn have_redis_server() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: redis-server is not installed");
    }
    ok
}

/// A private `redis-server` on a port of its own, stopped (by its PID) when dropped.
pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl PrivateRedis {
    /// Starts a server on `port` with `extra` arguments, waiting until it accepts connections.
    pub fn start(port: u16, extra: &[&str]) -> Option<Self> {
        Self::spawn(port, &["--port", &port.to_string()], extra)
    }

    /// A server serving TLS only, on `port`, with the `--tls-*` arguments in `tls`.
    pub fn start_tls(port: u16, tls: &[&str]) -> Option<Self> {
        Self::spawn(port, &["--port", "0", "--tls-port", &port.to_string()], tls)
    }

    fn spawn(port: u16, ports: &[&str], extra: &[&str]) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(ports)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Self { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
