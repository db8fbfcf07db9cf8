//! HTTP integration (feature `tower`): a tower [`Layer`](tower::Layer) that limits requests and
//! answers `429 Too Many Requests` with `Retry-After` and the `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` headers of the IETF draft
//! (draft-ietf-httpapi-ratelimit-headers). Admitted responses carry the `RateLimit-*` headers
//! too. Usable from axum, hyper or any tower stack.
//!
//! The key is the application's choice, through a function of the request: a header (an API
//! key's id), the authenticated user in the request's extensions, the client address that the
//! server put there (`axum::extract::ConnectInfo`). A function that returns `None` lets the
//! request through unlimited (an allowlisted address).
//!
//! # Errors
//! The layer adds none: a store failure is answered by the limiter's
//! [`FailPolicy`](crate::FailPolicy) (429 when closed, pass when open).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use palisade_ratelimit::MemoryRateStore;
//! use palisade_ratelimit::http::RateLimitLayer;
//! use palisade_ratelimit::{Limiter, Quota};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! let limiter = Arc::new(Limiter::new(MemoryRateStore::new(), Quota::per_minute(1)));
//! let layer = RateLimitLayer::new(limiter, |req: &http::Request<()>| {
//!     req.headers().get("x-api-key").map(|v| v.as_bytes().to_vec())
//! });
//! let mut svc = layer.layer(service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
//! }));
//! let req = || http::Request::builder().header("x-api-key", "k1").body(()).unwrap();
//! let ok = svc.ready().await.unwrap().call(req()).await.unwrap();
//! assert_eq!(ok.status(), 200);
//! let limited = svc.ready().await.unwrap().call(req()).await.unwrap();
//! assert_eq!(limited.status(), 429);
//! assert!(limited.headers().contains_key("retry-after"));
//! # });
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::RateLimitLayer;
pub use service::RateLimit;

use http::{HeaderMap, HeaderValue};

use crate::Decision;

/// Whole seconds, rounded up, as an HTTP header value.
fn secs(d: core::time::Duration) -> HeaderValue {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(s)
}

/// Sets the `RateLimit-*` headers (and `Retry-After` for a denial) that describe `decision`.
pub fn set_headers(decision: &Decision, headers: &mut HeaderMap) {
    if decision.limit() == u64::MAX {
        return; // unlimited: nothing to advertise
    }
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit()));
    headers.insert(
        "ratelimit-remaining",
        HeaderValue::from(decision.remaining()),
    );
    headers.insert("ratelimit-reset", secs(decision.reset()));
    if !decision.is_allowed()
        && let Some(retry) = decision.retry_after()
    {
        headers.insert(http::header::RETRY_AFTER, secs(retry));
    }
}
