#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod audit;
pub mod keyring;
pub mod once;
pub mod random;
pub mod rate;
pub mod secret;
pub mod time;

use std::sync::Arc;

/// A shared store (one-time claims, rate counters) could not answer.
///
/// Store failures keep their source error; callers decide whether to fail open or closed (for
/// security decisions: closed).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or answered with an error.
    #[error("the store is unavailable")]
    Unavailable {
        /// The backend's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// An in-memory store reached its configured bound.
    #[error("the store is full")]
    Full,
}

impl StoreError {
    /// Wraps a backend error.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            source: Arc::new(source),
        }
    }
}

/// Connects to the Redis server at `url` (`redis://host:port/db`), as every Palisade Redis store
/// does: with time-outs of one second for connecting and for each answer, so that an unreachable
/// or stalled server fails a call quickly with [`StoreError::Unavailable`] (and the caller's
/// fail-open or fail-closed policy applies) instead of holding the request. The manager is
/// multiplexed and reconnects by itself after a failure.
///
/// # Errors
/// [`StoreError::Unavailable`] when the URL is malformed or the server does not answer.
#[cfg(feature = "redis")]
pub async fn connect_redis(url: &str) -> Result<redis::aio::ConnectionManager, StoreError> {
    use std::time::Duration;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    redis::Client::open(url)
        .map_err(StoreError::unavailable)?
        .get_connection_manager_with_config(config)
        .await
        .map_err(StoreError::unavailable)
}
