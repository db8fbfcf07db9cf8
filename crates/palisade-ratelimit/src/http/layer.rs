use core::fmt;
use std::sync::Arc;

use crate::Limiter;

use super::{HeaderStyle, Options, RateLimit, Rejection, sf_string};

/// Applies a [`Limiter`] to every request, keyed by a function of the request.
pub struct RateLimitLayer<S, F> {
    limiter: Arc<Limiter<S>>,
    key: Arc<F>,
    options: Arc<Options>,
}

impl<S, F> RateLimitLayer<S, F> {
    /// Limits requests with `limiter`, counted per `key(&request)`; `None` passes unlimited.
    pub fn new(limiter: Arc<Limiter<S>>, key: F) -> Self {
        Self {
            limiter,
            key: Arc::new(key),
            options: Arc::new(Options::default()),
        }
    }

    /// Which quota headers to send ([`HeaderStyle::Draft`] by default).
    #[must_use]
    pub fn header_style(mut self, style: HeaderStyle) -> Self {
        Arc::make_mut(&mut self.options).style = style;
        self
    }

    /// The policy name the draft headers give (`default` by default); characters outside
    /// printable ASCII are dropped.
    #[must_use]
    pub fn policy_name(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.options).policy = sf_string(name).into();
        self
    }

    /// The response to a refused request (429, empty, by default).
    #[must_use]
    pub fn rejection(mut self, rejection: Rejection) -> Self {
        Arc::make_mut(&mut self.options).rejection = rejection;
        self
    }
}

impl<S, F> Clone for RateLimitLayer<S, F> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            options: self.options.clone(),
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
        RateLimit::new(
            inner,
            self.limiter.clone(),
            self.key.clone(),
            self.options.clone(),
        )
    }
}
