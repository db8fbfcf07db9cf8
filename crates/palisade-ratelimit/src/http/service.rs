use core::fmt;
use core::task::{Context, Poll};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use palisade_core::rate::RateStore;

use super::{ResponseFuture, set_headers};
use crate::Limiter;

/// The service of a [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<I, S, F> {
    inner: I,
    limiter: Arc<Limiter<S>>,
    key: Arc<F>,
}

impl<I, S, F> RateLimit<I, S, F> {
    pub(crate) fn new(inner: I, limiter: Arc<Limiter<S>>, key: Arc<F>) -> Self {
        Self {
            inner,
            limiter,
            key,
        }
    }
}

impl<I: Clone, S, F> Clone for RateLimit<I, S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            key: self.key.clone(),
        }
    }
}

impl<I: fmt::Debug, S, F> fmt::Debug for RateLimit<I, S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<I, S, F, ReqB, ResB> tower::Service<Request<ReqB>> for RateLimit<I, S, F>
where
    I: tower::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    I::Future: Send + 'static,
    S: RateStore + 'static,
    F: Fn(&Request<ReqB>) -> Option<Vec<u8>> + Send + Sync + 'static,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = I::Error;
    type Future = ResponseFuture<Response<ResB>, I::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = core::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        let key = (self.key)(&req);
        ResponseFuture::new(async move {
            let Some(key) = key else {
                return inner.call(req).await;
            };
            let decision = limiter
                .check(&key, 1)
                .await
                .unwrap_or_else(|e| e.fallback());
            if !decision.is_allowed() {
                let mut res = Response::new(ResB::default());
                *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                set_headers(&decision, res.headers_mut());
                return Ok(res);
            }
            let mut res = inner.call(req).await?;
            set_headers(&decision, res.headers_mut());
            Ok(res)
        })
    }
}
