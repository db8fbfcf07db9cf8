//! The tower layer answers 429 with Retry-After and the RateLimit-* headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use palisade_ratelimit::MemoryRateStore;
use palisade_ratelimit::http::RateLimitLayer;
use palisade_ratelimit::{Allowlist, Limiter, Quota};
use tower::{Layer, ServiceExt, service_fn};

fn request(ip: &str) -> Request<()> {
    Request::builder()
        .uri("/login")
        .header("x-client-ip", ip)
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn oneshot_gets_429_with_headers() {
    let limiter = Arc::new(Limiter::new(MemoryRateStore::new(), Quota::per_minute(2)));
    let allowlist = Allowlist::new(vec!["10.0.0.0/8".parse().unwrap()]);
    let layer = RateLimitLayer::new(limiter, move |req: &Request<()>| {
        let ip = req.headers().get("x-client-ip")?.to_str().ok()?;
        let addr = ip.parse().ok()?;
        if allowlist.contains(addr) {
            None
        } else {
            Some(ip.as_bytes().to_vec())
        }
    });
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));

    let first = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["ratelimit-policy"], "\"default\";q=2");
    let state = first.headers()["ratelimit"].to_str().unwrap();
    assert!(state.starts_with("\"default\";r=1;t="), "{state}");
    assert!(
        first.headers().get("ratelimit-limit").is_none(),
        "legacy only when asked"
    );
    assert!(first.headers().get("retry-after").is_none());

    let second = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert!(
        second.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains(";r=0;")
    );

    let third = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let state = third.headers()["ratelimit"].to_str().unwrap().to_owned();
    let retry: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    let reset: u64 = state.rsplit("t=").next().unwrap().parse().unwrap();
    assert!(reset >= retry);
    assert!(third.body().is_empty());

    // Another client has its own budget; an allowlisted one is never limited.
    let other = svc.clone().oneshot(request("203.0.113.2")).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    for _ in 0..5 {
        let internal = svc.clone().oneshot(request("10.1.2.3")).await.unwrap();
        assert_eq!(internal.status(), StatusCode::OK);
        assert!(internal.headers().get("ratelimit").is_none());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn legacy_headers_a_custom_rejection_and_no_quota_when_failing_open() {
    use palisade_ratelimit::FailPolicy;
    use palisade_ratelimit::http::{HeaderStyle, Rejection};

    let limiter = Arc::new(Limiter::new(MemoryRateStore::new(), Quota::per_minute(1)));
    let layer = RateLimitLayer::new(limiter, |_: &Request<()>| Some(b"k".to_vec()))
        .header_style(HeaderStyle::Both)
        .policy_name("api \"v1\"")
        .rejection(
            Rejection::default()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(
                    http::HeaderValue::from_static("application/problem+json"),
                    r#"{"title":"slow down"}"#,
                ),
        );
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    }));
    let ok = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(ok.headers()["ratelimit-policy"], "\"api \\\"v1\\\"\";q=1");
    assert_eq!(ok.headers()["ratelimit-limit"], "1");
    assert_eq!(ok.headers()["ratelimit-remaining"], "0");
    let refused = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(refused.body(), r#"{"title":"slow down"}"#);
    assert!(refused.headers().contains_key("retry-after"));

    // A store that is down; failing open lets the request through with no quota.
    let open = Arc::new(Limiter::new(Down, Quota::per_minute(1)).fail_policy(FailPolicy::Open));
    let svc = RateLimitLayer::new(open, |_: &Request<()>| Some(b"k".to_vec())).layer(service_fn(
        |_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::from("ok"))) },
    ));
    let passed = svc.oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(passed.status(), StatusCode::OK);
    assert!(
        passed.headers().get("ratelimit").is_none(),
        "no quota promised"
    );
    assert!(passed.headers().get("ratelimit-policy").is_none());
}

/// A store that cannot answer.
#[derive(Debug)]
struct Down;

impl palisade_core::rate::RateStore for Down {
    async fn apply(
        &self,
        _key: &[u8],
        _request: palisade_core::rate::RateRequest,
    ) -> Result<palisade_core::rate::RateCounts, palisade_core::StoreError> {
        Err(palisade_core::StoreError::unavailable(
            std::io::Error::other("down"),
        ))
    }
}
