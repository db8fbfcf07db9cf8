//! HTTP integration (feature `tower`): a tower [`Layer`](tower::Layer) that limits requests and
//! answers `429 Too Many Requests` (or the configured [`Rejection`]) with `Retry-After`, and
//! describes the quota in the `RateLimit-Policy` and `RateLimit` structured fields of the
//! current draft-ietf-httpapi-ratelimit-headers (09), or in the earlier drafts'
//! `RateLimit-Limit`, `-Remaining` and `-Reset` ([`HeaderStyle`]). Admitted responses carry the
//! quota headers too. Usable from axum, hyper or any tower stack.
//!
//! When the store fails, the limiter's fail policy answers and no quota is advertised: a
//! request let through by failing open was not counted.
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

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode};

use crate::Decision;

/// Which headers describe the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit`, the structured fields of the current
    /// draft-ietf-httpapi-ratelimit-headers (09): `RateLimit-Policy: "default";q=100` and
    /// `RateLimit: "default";r=42;t=30` (remaining, seconds to reset).
    #[default]
    Draft,
    /// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` of the earlier drafts,
    /// for clients written against them.
    Legacy,
    /// Both.
    Both,
    /// No quota headers (a denial still carries `Retry-After`).
    None,
}

/// The response to a refused request: 429 with an empty body unless configured.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Arc<str>,
}

impl Default for Rejection {
    fn default() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            content_type: None,
            body: Arc::from(""),
        }
    }
}

impl Rejection {
    /// A rejection with `status` (429 by default; 503 suits a failing-closed store).
    #[must_use]
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The body, with its `Content-Type`.
    #[must_use]
    pub fn body(mut self, content_type: HeaderValue, body: impl Into<Arc<str>>) -> Self {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }

    /// The response, with an empty header map for the layer to fill.
    fn to_response<B: From<String>>(&self) -> http::Response<B> {
        let mut res = http::Response::new(B::from(String::from(&*self.body)));
        *res.status_mut() = self.status;
        if let Some(ct) = &self.content_type {
            res.headers_mut()
                .insert(http::header::CONTENT_TYPE, ct.clone());
        }
        res
    }
}

/// How the layer describes its decisions.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    style: HeaderStyle,
    /// The policy's name as a structured-field string, quoted and escaped.
    policy: Arc<str>,
    rejection: Rejection,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            style: HeaderStyle::Draft,
            policy: Arc::from("\"default\""),
            rejection: Rejection::default(),
        }
    }
}

/// `name` as a structured-field string (RFC 8941 section 3.3.3): printable ASCII, with `"`
/// and `\\` escaped; other characters dropped.
fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whole seconds, rounded up.
fn whole_secs(d: core::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Whole seconds, rounded up, as an HTTP header value.
fn secs(d: core::time::Duration) -> HeaderValue {
    HeaderValue::from(whole_secs(d))
}

/// Sets the headers of the current draft (`RateLimit-Policy`, `RateLimit`, for a policy named
/// `default`) and, for a denial that can be retried, `Retry-After`, describing `decision`.
pub fn set_headers(decision: &Decision, headers: &mut HeaderMap) {
    write_headers(decision, HeaderStyle::Draft, "\"default\"", headers);
}

fn write_headers(decision: &Decision, style: HeaderStyle, policy: &str, headers: &mut HeaderMap) {
    if !decision.is_allowed()
        && let Some(retry) = decision.retry_after()
    {
        headers.insert(http::header::RETRY_AFTER, secs(retry));
    }
    if decision.limit() == u64::MAX {
        return; // unlimited: nothing to advertise
    }
    if matches!(style, HeaderStyle::Draft | HeaderStyle::Both) {
        let policy_value = format!("{policy};q={}", decision.limit());
        let state = format!(
            "{policy};r={};t={}",
            decision.remaining(),
            whole_secs(decision.reset())
        );
        if let (Ok(p), Ok(s)) = (
            HeaderValue::from_str(&policy_value),
            HeaderValue::from_str(&state),
        ) {
            headers.insert("ratelimit-policy", p);
            headers.insert("ratelimit", s);
        }
    }
    if matches!(style, HeaderStyle::Legacy | HeaderStyle::Both) {
        headers.insert("ratelimit-limit", HeaderValue::from(decision.limit()));
        headers.insert(
            "ratelimit-remaining",
            HeaderValue::from(decision.remaining()),
        );
        headers.insert("ratelimit-reset", secs(decision.reset()));
    }
}
