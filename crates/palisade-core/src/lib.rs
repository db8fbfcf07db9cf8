#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod audit;
pub mod family;
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

#[cfg(test)]
mod test_util {
    use core::future::Future;

    /// Runs a future that is ready without waiting on I/O (the memory stores' are): core has
    /// no async runtime, not even for its tests.
    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        loop {
            if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
