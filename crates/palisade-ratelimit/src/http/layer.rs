use core::fmt;
use std::sync::Arc;

use crate::Limiter;

use super::RateLimit;

/// Applies a [`Limiter`] to every request, keyed by a function of the request.
pub struct RateLimitLayer<S, F> {
    limiter: Arc<Limiter<S>>,
    key: Arc<F>,
}

impl<S, F> RateLimitLayer<S, F> {
    /// Limits requests with `limiter`, counted per `key(&request)`; `None` passes unlimited.
    pub fn new(limiter: Arc<Limiter<S>>, key: F) -> Self {
        Self {
            limiter,
            key: Arc::new(key),
        }
    }
}

impl<S, F> Clone for RateLimitLayer<S, F> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
        }
    }
}

impl<S, F> fmt::Debug for RateLimitLayer<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").finish_non_exhaustive()
    }
}

impl<I, S, F> tower::Layer<I> for RateLimitLayer<S, F> {
    type Service = RateLimit<I, S, F>;

    fn layer(&self, inner: I) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone(), self.key.clone())
    }
}
