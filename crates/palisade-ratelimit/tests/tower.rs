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
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    assert!(first.headers().get("retry-after").is_none());

    let second = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.headers()["ratelimit-remaining"], "0");

    let third = svc.clone().oneshot(request("203.0.113.1")).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["ratelimit-remaining"], "0");
    let retry: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    let reset: u64 = third.headers()["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= retry);
    assert!(third.body().is_empty());

    // Another client has its own budget; an allowlisted one is never limited.
    let other = svc.clone().oneshot(request("203.0.113.2")).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    for _ in 0..5 {
        let internal = svc.clone().oneshot(request("10.1.2.3")).await.unwrap();
        assert_eq!(internal.status(), StatusCode::OK);
        assert!(internal.headers().get("ratelimit-limit").is_none());
    }
}
