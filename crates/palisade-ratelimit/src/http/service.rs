use core::fmt;
use core::task::{Context, Poll};
use std::sync::Arc;

use http::{Request, Response};
use palisade_core::rate::RateStore;

use super::{HeaderStyle, Options, ResponseFuture, write_headers};
use crate::Limiter;

/// The service of a [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<I, S, F> {
    inner: I,
    limiter: Arc<Limiter<S>>,
    key: Arc<F>,
    options: Arc<Options>,
}

impl<I, S, F> RateLimit<I, S, F> {
    pub(crate) fn new(
        inner: I,
        limiter: Arc<Limiter<S>>,
        key: Arc<F>,
        options: Arc<Options>,
    ) -> Self {
        Self {
            inner,
            limiter,
            key,
            options,
        }
    }
}

impl<I: Clone, S, F> Clone for RateLimit<I, S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            options: self.options.clone(),
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
    ResB: From<String> + Send + 'static,
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
        let options = self.options.clone();
        let key = (self.key)(&req);
        ResponseFuture::new(async move {
            let Some(key) = key else {
                return inner.call(req).await;
            };
            // A store failure answers with the fail policy, and advertises no quota: the
            // limiter does not know it (failing open must not promise a full one).
            let (decision, style) = match limiter.check(&key, 1).await {
                Ok(d) => (d, options.style),
                Err(e) => (e.fallback(), HeaderStyle::None),
            };
            if !decision.is_allowed() {
                let mut res = options.rejection.to_response();
                write_headers(&decision, style, &options.policy, res.headers_mut());
                return Ok(res);
            }
            let mut res = inner.call(req).await?;
            write_headers(&decision, style, &options.policy, res.headers_mut());
            Ok(res)
        })
    }
}
