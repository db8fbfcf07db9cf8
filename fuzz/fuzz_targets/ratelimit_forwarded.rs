#![no_main]
//! The `Forwarded` / `X-Forwarded-For` readers on arbitrary input: a typed error or the nodes,
//! never a panic; parsed nodes survive a round trip; an untrusted peer is always the client.
use core::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use palisade_ratelimit::ClientIpResolver;
use palisade_ratelimit::client_ip::{Node, parse_forwarded};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(nodes) = parse_forwarded(text)
    {
        let again = nodes
            .iter()
            .map(|n| match n {
                Node::Ip(IpAddr::V4(v4)) => format!("for={v4}"),
                Node::Ip(IpAddr::V6(v6)) => format!("for=\"[{v6}]\""),
                _ => "for=unknown".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse_forwarded(&again).ok(), Some(nodes), "round trip");
    }
    let (fwd, xff) = data.split_at(data.len() / 2);
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let behind = ClientIpResolver::new().trust("10.0.0.0/8".parse().unwrap());
    let _ = behind.resolve(proxy, [fwd], [xff]).key_bytes();
    let _ = behind.resolve(proxy, [], [data]).key();
    let outside: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        behind.resolve(outside, [fwd], [xff]).ip(),
        outside,
        "untrusted peer"
    );
});
