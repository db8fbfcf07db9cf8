//! The one connection every store shares: a single node or a cluster, connected lazily.
//!
//! [`Redis`] is created once by the application, synchronously and without touching the
//! network, and handed (cloned: it is a handle) to every store. The first call connects; a
//! call made while Redis is unreachable fails within the handle's time-out with
//! [`StoreError::Unavailable`], and a later call connects again, so a service can start while
//! Redis restarts and recovers by itself when it returns.
//!
//! # Key layout
//! Every key starts with the application's prefix and the store's name:
//! `<prefix>:<store>:...`. A key that a script reads together with others carries a hash tag,
//! `{...}`, so that all keys of one script fall in one Redis Cluster slot by construction
//! ([`Redis::tagged_key`]); the bytes `{`, `}` and `%` inside a tag or a name are written
//! `%7B`, `%7D` and `%25`, so that caller data can neither end a tag early nor open another.
//! The prefix itself may hold no brace and no glob character, so `~<prefix>:*` is an exact ACL
//! key pattern for the application.
//!
//! # Errors
//! Building a handle fails with [`OpenError`] for a malformed URL or prefix. Calls fail with
//! [`StoreError::Unavailable`] when Redis cannot be reached or does not answer in time.

use core::fmt;
use core::future::Future;
use core::time::Duration;
use std::sync::Arc;

use palisade_core::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, ScriptInvocation, Value};
use tokio::sync::OnceCell;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "palisade";
/// The default time-out: for connecting, and for each call as a whole.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest prefix accepted.
pub const MAX_PREFIX_LEN: usize = 64;

/// A [`Redis`] handle could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is malformed (`redis://host:port/db` or `rediss://` for TLS).
    #[error("invalid redis url")]
    Url(#[source] redis::RedisError),
    /// A cluster needs at least one node.
    #[error("a redis cluster needs at least one node url")]
    NoNodes,
    /// The prefix is empty, longer than 64 bytes, or holds a character other than ASCII
    /// letters, digits and `-_.:/`.
    #[error("invalid key prefix")]
    Prefix,
}

/// A call did not finish within the handle's time-out.
#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
struct TimedOut(Duration);

/// A shared, lazily connected Redis: one node or a cluster. Cheap to clone; clones share the
/// connection.
///
/// The connection's background task runs on the Tokio runtime of the first call; keep a
/// handle to one runtime (the usual case), or give each runtime a handle of its own.
///
/// ```
/// use palisade_redis::Redis;
///
/// // No connection is made here: the first store call connects.
/// let redis = Redis::open("redis://127.0.0.1:6379")?.with_prefix("myapp")?;
/// let cluster = Redis::open_cluster(["redis://127.0.0.1:7100", "redis://127.0.0.1:7101"])?;
/// assert!(cluster.is_cluster() && !redis.is_cluster());
/// # Ok::<(), palisade_redis::OpenError>(())
/// ```
#[derive(Clone)]
pub struct Redis {
    shared: Arc<Shared>,
    prefix: Arc<str>,
    timeout: Duration,
}

struct Shared {
    target: Target,
    conn: OnceCell<Conn>,
}

/// Built once per handle and kept behind its `Arc`: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Target {
    Single(redis::Client),
    Cluster(ClusterClient),
}

impl Redis {
    /// A handle on the single server at `url` (`redis://[user:password@]host:port/db`, or
    /// `rediss://` for TLS with the `tls` feature, trusting the system's roots), with the
    /// default prefix and time-out. Does not connect.
    ///
    /// # Errors
    /// [`OpenError::Url`] when the URL is malformed.
    pub fn open(url: &str) -> Result<Self, OpenError> {
        let client = redis::Client::open(url).map_err(OpenError::Url)?;
        Ok(Self::new(Target::Single(client)))
    }

    /// A handle on the Redis Cluster that `urls` belong to (any reachable node is enough to
    /// learn the rest), with the default prefix and time-out. Does not connect.
    ///
    /// # Errors
    /// [`OpenError::Url`] when a URL is malformed, [`OpenError::NoNodes`] when there is none.
    pub fn open_cluster<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<Self, OpenError> {
        let urls: Vec<&str> = urls.into_iter().collect();
        if urls.is_empty() {
            return Err(OpenError::NoNodes);
        }
        // Validated one by one so that a bad URL is a typed error, not a panic deeper down.
        let infos = urls
            .iter()
            .map(|u| redis::IntoConnectionInfo::into_connection_info(*u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(OpenError::Url)?;
        let client = ClusterClient::builder(infos)
            .connection_timeout(DEFAULT_TIMEOUT)
            .response_timeout(DEFAULT_TIMEOUT)
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(200)
            .build()
            .map_err(OpenError::Url)?;
        Ok(Self::new(Target::Cluster(client)))
    }

    /// A handle on the single server at `url` (`rediss://`) over TLS, trusting only the CA
    /// certificates in `root_ca_pem` (a private or managed service's CA) rather than the
    /// system's roots. Does not connect.
    ///
    /// The TLS stack is rustls with its `ring` provider (the workspace's). A build that also
    /// turns on rustls's `aws-lc-rs` must install one provider
    /// (`rustls::crypto::CryptoProvider::install_default`) before the first call.
    ///
    /// # Errors
    /// [`OpenError::Url`] when the URL is malformed or the PEM holds no certificate.
    #[cfg(feature = "tls")]
    pub fn open_tls(url: &str, root_ca_pem: &[u8]) -> Result<Self, OpenError> {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_ca_pem.to_vec()),
        };
        let client = redis::Client::build_with_tls(url, certs).map_err(OpenError::Url)?;
        Ok(Self::new(Target::Single(client)))
    }

    fn new(target: Target) -> Self {
        Self {
            shared: Arc::new(Shared {
                target,
                conn: OnceCell::new(),
            }),
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same connection under another key prefix (default `palisade`), to keep
    /// applications sharing a server apart.
    ///
    /// # Errors
    /// [`OpenError::Prefix`] unless the prefix is 1 to 64 ASCII letters, digits or `-_./`. No
    /// `:`, the separator: with `app:eu` allowed, `app`'s ACL pattern `~app:*` would also
    /// cover every key of `app:eu`.
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, OpenError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_./".contains(&b);
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !prefix.bytes().all(allowed) {
            return Err(OpenError::Prefix);
        }
        self.prefix = prefix.into();
        Ok(self)
    }

    /// The same connection with another time-out (default one second) for each call as a
    /// whole: connecting if need be, sending, and waiting for the answer. At least 1 ms.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The time-out of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this handle talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.shared.target, Target::Cluster(_))
    }

    /// `<prefix>:<store>:{<tag>}<suffix>`: a key whose slot depends on `tag` only, so that
    /// every key built with the same `tag` (and any prefix and store) is in one cluster slot.
    pub fn tagged_key(&self, store: &str, tag: &[u8], suffix: &str) -> Vec<u8> {
        let mut key = self.start_key(store, tag.len() + suffix.len() + 2);
        key.push(b'{');
        escape_into(&mut key, tag);
        key.push(b'}');
        key.extend_from_slice(suffix.as_bytes());
        key
    }

    /// `<prefix>:<store>:<name>`, with no hash tag: the slot depends on the whole key, so
    /// independent keys spread over the cluster.
    pub fn plain_key(&self, store: &str, name: &[u8]) -> Vec<u8> {
        let mut key = self.start_key(store, name.len());
        escape_into(&mut key, name);
        key
    }

    fn start_key(&self, store: &str, more: usize) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + store.len() + more + 8);
        key.extend_from_slice(self.prefix.as_bytes());
        key.push(b':');
        escape_into(&mut key, store.as_bytes());
        key.push(b':');
        key
    }

    /// The ACL rules of a Redis user that may run exactly what the stores need, on this
    /// handle's keys only: `ACL SETUSER <name> on ><password> ` followed by these rules.
    ///
    /// The commands are the scripts' calls (`EVALSHA`, `SCRIPT LOAD` after `NOSCRIPT`, and
    /// what the scripts run: the rate script's hash and sorted-set commands, `TIME`,
    /// `PEXPIRE`, `DEL`; the family script's `PEXPIRETIME` and `SET`), the claims' and
    /// families' `SET` and `EXISTS`, and `PING`; on a cluster, `CLUSTER SLOTS` and
    /// `CLUSTER NODES` to learn the slot map. Keys: `~<prefix>:*`; no pub/sub channel.
    pub fn acl_rules(&self) -> String {
        let mut rules = format!("resetkeys ~{}:* resetchannels -@all", self.prefix);
        for command in [
            "evalsha",
            "script|load",
            "ping",
            "set",
            "exists",
            "del",
            "time",
            "pexpire",
            "pexpiretime",
            "hmget",
            "hset",
            "zremrangebyscore",
            "zcard",
            "zrange",
            "zadd",
            "zpopmax",
            "cluster|slots",
            "cluster|nodes",
            "cluster|shards",
            "readonly",
        ] {
            rules.push_str(" +");
            rules.push_str(command);
        }
        rules
    }

    /// Runs `cmd` (routed by its key on a cluster) within the time-out.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis is unreachable, slow, or answers with an error.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs a script by `EVALSHA` within the time-out, loading it (`SCRIPT LOAD`, on every
    /// node of a cluster) when the server answers `NOSCRIPT`, as after a restart or a
    /// failover.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis is unreachable, slow, or answers with an error.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// The server's time (`TIME`), in microseconds since the epoch: the clock every script
    /// reads, so that instances with skewed clocks agree.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] as for [`query`](Self::query).
    pub async fn server_time_micros(&self) -> Result<u64, StoreError> {
        let (secs, micros): (u64, u64) = self.query(&redis::cmd("TIME")).await?;
        Ok(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    async fn run<'a, T, F, Fut>(&'a self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + 'a,
    {
        let work = async {
            let conn = self.connection().await?;
            call(conn).await.map_err(StoreError::unavailable)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::unavailable(TimedOut(self.timeout))),
        }
    }

    /// The shared connection, connecting first if no call has yet. A failed or cancelled
    /// attempt leaves the cell empty, so the next call tries again.
    async fn connection(&self) -> Result<Conn, StoreError> {
        let timeout = self.timeout;
        self.shared
            .conn
            .get_or_try_init(|| async {
                match &self.shared.target {
                    Target::Single(client) => {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(timeout))
                            .set_response_timeout(Some(timeout))
                            .set_number_of_retries(1)
                            .set_min_delay(Duration::from_millis(10))
                            .set_max_delay(Duration::from_millis(100));
                        client
                            .get_connection_manager_with_config(config)
                            .await
                            .map(Conn::Single)
                    }
                    Target::Cluster(client) => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
                .map_err(StoreError::unavailable)
            })
            .await
            .cloned()
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs may carry a password: never printed.
        f.debug_struct("Redis")
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connected", &self.shared.conn.initialized())
            .finish()
    }
}

/// Appends `bytes`, writing `{`, `}` and `%` as `%7B`, `%7D`, `%25` (an injective escape).
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'{' => out.extend_from_slice(b"%7B"),
            b'}' => out.extend_from_slice(b"%7D"),
            b'%' => out.extend_from_slice(b"%25"),
            _ => out.push(b),
        }
    }
}

/// A connection to one node or to a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        let redis = Redis::open("redis://127.0.0.1:1").unwrap();
        for bad in [
            "",
            "a{b",
            "a}b",
            "a*",
            "a b",
            "a?",
            "a[b]",
            "app:eu",
            ":",
            "é",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(redis.clone().with_prefix(bad), Err(OpenError::Prefix)),
                "{bad:?}"
            );
        }
        let ok = redis.with_prefix("my-app.v1/eu-1_x").unwrap();
        assert_eq!(ok.prefix(), "my-app.v1/eu-1_x");
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        assert!(matches!(Redis::open("not a url"), Err(OpenError::Url(_))));
        assert!(matches!(
            Redis::open_cluster(["redis://127.0.0.1:7100", "nope://"]),
            Err(OpenError::Url(_))
        ));
        assert!(matches!(
            Redis::open_cluster(std::iter::empty::<&str>()),
            Err(OpenError::NoNodes)
        ));
    }

    #[test]
    fn tags_cannot_be_ended_early_and_keys_are_injective() {
        let redis = Redis::open("redis://127.0.0.1:1").unwrap();
        let key = redis.tagged_key("rate", b"a}{b%", ":c");
        assert_eq!(key, b"palisade:rate:{a%7D%7Bb%25}:c".to_vec());
        // The tag Redis Cluster hashes is the escaped caller key, whole.
        let tag_of = |k: &[u8]| {
            let open = k.iter().position(|&b| b == b'{').unwrap();
            let close = open + 1 + k[open + 1..].iter().position(|&b| b == b'}').unwrap();
            k[open + 1..close].to_vec()
        };
        assert_eq!(tag_of(&key), b"a%7D%7Bb%25".to_vec());
        assert_eq!(
            tag_of(&redis.tagged_key("lockout", b"a}{b%", ":x")),
            tag_of(&key)
        );
        // `%7D` written by a caller is escaped too, so it does not meet a real `}`.
        assert_ne!(
            redis.tagged_key("rate", b"%7D", ""),
            redis.tagged_key("rate", b"}", "")
        );
        assert_eq!(redis.plain_key("once", b"s{x}"), b"palisade:once:s%7Bx%7D");
    }

    /// The hash tag Redis Cluster hashes: between the first `{` and the next `}`, if not empty.
    fn cluster_tag(key: &[u8]) -> &[u8] {
        let Some(open) = key.iter().position(|&b| b == b'{') else {
            return key;
        };
        match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(0) | None => key,
            Some(len) => &key[open + 1..open + 1 + len],
        }
    }

    proptest::proptest! {
        /// Whatever the caller's bytes, keys of distinct (store, tag, suffix) differ, and every
        /// key built with one tag hashes on exactly that tag's escape (one slot per tag).
        #[test]
        fn tagged_keys_are_injective_and_share_their_tag(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let redis = Redis::open("redis://127.0.0.1:1").unwrap();
            let (ka, kb) = (redis.tagged_key("rate", &a, ":c"), redis.tagged_key("rate", &b, ":c"));
            proptest::prop_assert_eq!(ka == kb, a == b);
            let mut escaped = Vec::new();
            escape_into(&mut escaped, &a);
            if !escaped.is_empty() {
                proptest::prop_assert_eq!(cluster_tag(&ka), &escaped[..]);
                let other = redis.tagged_key("lockout", &a, ":x");
                proptest::prop_assert_eq!(cluster_tag(&other), cluster_tag(&ka));
            }
            let (pa, pb) = (redis.plain_key("once", &a), redis.plain_key("once", &b));
            proptest::prop_assert_eq!(pa == pb, a == b);
            proptest::prop_assert!(!pa.contains(&b'{') && !pa.contains(&b'}'), "no tag");
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_within_the_timeout() {
        // Nothing listens on port 1 of loopback.
        let redis = Redis::open("redis://127.0.0.1:1")
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let err = redis.server_time_micros().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(!format!("{redis:?}").contains("127.0.0.1"));
    }
}
