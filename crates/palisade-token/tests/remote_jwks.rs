//! PyJWT-signed RS256 and PS256 tokens verified through a JWKS served over HTTP by a local
//! server (`tests/python/jwks_server.py`, port 0), with the cache's refresh, `kid`-miss refetch
//! and its rate limit counted from the server's side. Skipped (with a message) without python3
//! and PyJWT with its `crypto` extra (`.ci/python.sh`).

// Test helpers may unwrap and index like the tests themselves: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use palisade_core::time::UnixTime;
use palisade_token::jwt::{JwtRejection, JwtValidation, StandardClaims};
use palisade_token::remote_jwks::max_age;
use palisade_token::{
    JwksFetchError, JwksResponse, JwksSource, RemoteJwks, RemoteJwksConfig, RemoteJwksError,
};

const ISSUER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pyjwt_rsa.py");
const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/jwks_server.py");
const NOW: u64 = 1_800_000_000;

fn pyjwt_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 with pyjwt[crypto] is not installed");
    }
    ok
}

/// PyJWT's keys and tokens (see `tests/data/pyjwt_rsa.py`).
fn issue() -> serde_json::Value {
    let out = Command::new("python3")
        .args([ISSUER, "issue", &NOW.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The local JWKS endpoint; killed (by its own PID) on drop.
struct Server {
    child: Child,
    log: BufReader<ChildStdout>,
    port: u16,
}

impl Server {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new("python3")
            .args([SERVER, dir.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        log.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap();
        Self { child, log, port }
    }

    /// Waits for the server's next request line (it prints one per request served).
    fn served(&mut self) {
        let mut line = String::new();
        self.log.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "GET");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET, enough for a loopback test (an application plugs its own client in).
struct HttpGet {
    port: u16,
}

impl JwksSource for HttpGet {
    fn fetch(&self) -> Result<JwksResponse, JwksFetchError> {
        let transport = |e: std::io::Error| JwksFetchError::Transport(e.to_string());
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(transport)?;
        write!(
            stream,
            "GET /jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .map_err(transport)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(transport)?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        if status != 200 {
            return Err(JwksFetchError::Status(status));
        }
        let cache_control = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("cache-control")
                .then(|| value.trim().to_owned())
        });
        Ok(JwksResponse {
            body: raw[split + 4..].to_vec(),
            max_age: cache_control.as_deref().and_then(max_age),
        })
    }
}

fn rules() -> JwtValidation {
    JwtValidation::new().issuer("https://py.example")
}

#[test]
fn pyjwt_tokens_verify_through_a_jwks_served_over_http() {
    if !pyjwt_available() {
        return;
    }
    let made = issue();
    let dir = std::env::temp_dir().join(format!("palisade-remote-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // First the issuer publishes only its RS256 key, and one key nobody can use (a 1024-bit
    // RSA modulus), which must be reported.
    let mut jwks = made["jwks"].clone();
    let ps_key = jwks["keys"].as_array_mut().unwrap().remove(1);
    let mut weak = jwks["keys"][0].clone();
    weak["kid"] = "weak-1".into();
    weak["n"] = serde_json::Value::String("A".repeat(171));
    jwks["keys"].as_array_mut().unwrap().push(weak);
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();

    let mut server = Server::start(&dir);
    let remote = RemoteJwks::new(
        HttpGet { port: server.port },
        RemoteJwksConfig {
            refresh: Duration::from_secs(3600),
            min_refetch: Duration::from_secs(30),
        },
    );
    let mut now = UnixTime::from_secs(NOW + 5);
    let rs256 = made["rs256"].as_str().unwrap();
    let ps256 = made["ps256"].as_str().unwrap();

    let verified = remote
        .verify::<StandardClaims>(rs256, &rules(), now)
        .unwrap();
    assert_eq!(verified.claims().sub.as_deref(), Some("pyjwt-user"));
    server.served();
    let skipped = remote.skipped();
    assert_eq!(skipped.len(), 1, "the unusable key is reported");
    assert_eq!(skipped[0].kid.as_deref(), Some("weak-1"));

    // 50 more verifications inside max-age: served from the cache, no request.
    for _ in 0..50 {
        assert!(
            remote
                .verify::<StandardClaims>(rs256, &rules(), now)
                .is_ok()
        );
    }
    assert_eq!(remote.fetches(), 1);

    // The issuer rotates in its PS256 key. A PS256 token is a `kid` miss: one refetch at once
    // would be rate-limited (the last fetch was 0 s ago), so 100 tokens with the new kid, or
    // with made-up kids, cost no request and are refused.
    jwks["keys"].as_array_mut().unwrap().push(ps_key);
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    for _ in 0..100 {
        assert_eq!(
            remote.verify::<StandardClaims>(ps256, &rules(), now).err(),
            Some(RemoteJwksError::Rejected(JwtRejection::UnknownKey))
        );
    }
    assert_eq!(
        remote.fetches(),
        1,
        "0 of 100 kid misses reached the server"
    );

    // Past the rate limit, the first miss refetches and the PS256 token verifies.
    now = now.saturating_add(Duration::from_secs(31));
    let verified = remote
        .verify::<StandardClaims>(ps256, &rules(), now)
        .unwrap();
    assert_eq!(verified.claims().sub.as_deref(), Some("pyjwt-user"));
    server.served();
    assert_eq!(remote.fetches(), 2);

    // max-age=300 from the server (below the 3600 s refresh) decides when the set is stale.
    now = now.saturating_add(Duration::from_secs(299));
    assert!(
        remote
            .verify::<StandardClaims>(rs256, &rules(), now)
            .is_ok()
    );
    assert_eq!(remote.fetches(), 2);
    now = now.saturating_add(Duration::from_secs(2));
    assert!(
        remote
            .verify::<StandardClaims>(rs256, &rules(), now)
            .is_ok()
    );
    server.served();
    assert_eq!(remote.fetches(), 3);

    // The endpoint goes away: the stale set keeps serving; a new cache has nothing and fails
    // closed with a typed error.
    let port = server.port;
    drop(server);
    now = now.saturating_add(Duration::from_secs(400));
    assert!(
        remote
            .verify::<StandardClaims>(rs256, &rules().leeway(Duration::from_secs(3600)), now)
            .is_ok()
    );
    let cold = RemoteJwks::new(HttpGet { port }, RemoteJwksConfig::default());
    assert!(matches!(
        cold.verify::<StandardClaims>(rs256, &rules(), now),
        Err(RemoteJwksError::Fetch(JwksFetchError::Transport(_)))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
