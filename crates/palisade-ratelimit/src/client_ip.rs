//! Who the client is: its address behind trusted reverse proxies, aggregated for limits.
//!
//! [`ClientIpResolver::resolve`] takes the socket's peer address and the `Forwarded`
//! (RFC 7239) or `X-Forwarded-For` header lines, and walks the hops right to left: each hop
//! was appended by the proxy to its right, so only hops appended by trusted proxies can be
//! believed. The first hop whose own address is not a trusted proxy is the client. With no
//! proxy trusted (the default), the peer address is the client and the headers are ignored:
//! anyone can write them.
//!
//! [`ClientIp::key`] aggregates the address for limits and lockout: IPv6 to a prefix (/64 by
//! default, the size of one customer's network: an attacker holding one /64 has 2^64
//! addresses), IPv4 and IPv4-mapped IPv6 to the whole /32. [`ClientIp::key_bytes`] is the
//! same key as a fixed array, for a store key without allocating.
//!
//! The module uses no HTTP types, so every integration (the tower layer, an axum extractor)
//! shares one resolver.
//!
//! # Errors
//! [`parse_forwarded`] returns [`ForwardedError`] for a malformed `Forwarded` value; the
//! resolver treats a malformed or obfuscated hop as the end of what it can believe.
//!
//! # Security
//! - Trust only the addresses your own proxies connect from. A trusted range that an attacker
//!   can connect from lets them choose their address.
//! - `Forwarded` is read when present, `X-Forwarded-For` otherwise; configure your proxy to
//!   append to the one you read and to strip or overwrite the other, or an attacker can send
//!   the header your proxy ignores.
//! - A hop the resolver cannot read (`unknown`, an obfuscated `_name`, garbage) stops the
//!   walk: the client is then the trusted proxy that appended it, so such requests share that
//!   proxy's bucket rather than choose their own.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::IpNet;

/// Resolves the client address of a request from its peer address and forwarding headers.
#[derive(Debug, Clone)]
pub struct ClientIpResolver {
    trusted: Vec<IpNet>,
    ipv6_prefix: u8,
}

impl Default for ClientIpResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIpResolver {
    /// A resolver trusting no proxy (the peer address is the client), aggregating IPv6 to /64.
    pub const fn new() -> Self {
        Self {
            trusted: Vec::new(),
            ipv6_prefix: 64,
        }
    }

    /// Also trusts the proxies in `net` to append a true hop.
    #[must_use]
    pub fn trust(mut self, net: IpNet) -> Self {
        self.trusted.push(net);
        self
    }

    /// Aggregates IPv6 clients to their first `len` bits (at most 128) for limits and
    /// lockout.
    ///
    /// # Errors
    /// [`crate::RateLimitError::Config`] when `len` is above 128.
    pub fn ipv6_prefix(mut self, len: u8) -> Result<Self, crate::RateLimitError> {
        if len > 128 {
            return Err(crate::RateLimitError::Config(format!(
                "ipv6 prefix /{len} is longer than 128 bits"
            )));
        }
        self.ipv6_prefix = len;
        Ok(self)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client of a request from `peer`, with the values of its `Forwarded` and
    /// `X-Forwarded-For` header lines in the order they arrived.
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> ClientIp {
        let peer = canonical(peer);
        let client = |ip| ClientIp {
            ip,
            ipv6_prefix: self.ipv6_prefix,
        };
        if !self.is_trusted(peer) {
            return client(peer);
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        for line in forwarded {
            match core::str::from_utf8(line).map_err(|_| ForwardedError) {
                Ok(s) => match parse_forwarded(s) {
                    Ok(h) => hops.extend(h.into_iter().map(|h| h.ip())),
                    Err(_) => hops.push(None),
                },
                Err(_) => hops.push(None),
            }
        }
        if hops.is_empty() {
            for line in x_forwarded_for {
                let s = core::str::from_utf8(line).unwrap_or("\u{0}");
                hops.extend(s.split(',').map(|h| parse_node(h.trim())));
            }
        }
        // Right to left: `last` is the nearest hop believed so far.
        let mut last = peer;
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop else {
                return client(last);
            };
            if !self.is_trusted(ip) {
                return client(ip);
            }
            last = ip;
        }
        // Every hop was a trusted proxy: the furthest is the client.
        client(last)
    }
}

/// A resolved client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp {
    ip: IpAddr,
    ipv6_prefix: u8,
}

impl ClientIp {
    /// The client's address as resolved (IPv4-mapped IPv6 as IPv4).
    pub const fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The address limits and lockout count: IPv6 cut to the resolver's prefix, IPv4 whole.
    pub fn key(&self) -> IpAddr {
        match self.ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }

    /// [`key`](Self::key) as bytes for a store key, without allocating: a family byte
    /// (4 or 6), the address, and (IPv6) the prefix length.
    pub fn key_bytes(&self) -> KeyBytes {
        let mut b = [0u8; 18];
        let len = match self.key() {
            IpAddr::V4(v4) => {
                b[0] = 4;
                b[1..5].copy_from_slice(&v4.octets());
                5
            }
            IpAddr::V6(v6) => {
                b[0] = 6;
                b[1..17].copy_from_slice(&v6.octets());
                b[17] = self.ipv6_prefix;
                18
            }
        };
        KeyBytes { b, len }
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip.fmt(f)
    }
}

/// A client key as bytes, on the stack ([`ClientIp::key_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyBytes {
    b: [u8; 18],
    len: usize,
}

impl AsRef<[u8]> for KeyBytes {
    fn as_ref(&self) -> &[u8] {
        self.b.get(..self.len).unwrap_or(&self.b)
    }
}

/// One `for=` node of a `Forwarded` element (RFC 7239 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Node {
    /// An address (the port, if any, dropped).
    Ip(IpAddr),
    /// `unknown`, an obfuscated `_name`, or no `for=` parameter in the element.
    Hidden,
}

impl Node {
    fn ip(self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(ip),
            Self::Hidden => None,
        }
    }
}

/// A `Forwarded` value that is not RFC 7239 syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed forwarded header")]
#[non_exhaustive]
pub struct ForwardedError;

/// The `for=` node of each element of a `Forwarded` header value, left to right
/// (RFC 7239 section 4: `forwarded-element *( "," forwarded-element )`, each element
/// `forwarded-pair *( ";" forwarded-pair )`, each pair `token "=" ( token / quoted-string )`).
///
/// ```
/// use palisade_ratelimit::client_ip::{parse_forwarded, Node};
///
/// let nodes = parse_forwarded(r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711""#)
///     .unwrap();
/// assert_eq!(nodes[0], Node::Ip("192.0.2.60".parse().unwrap()));
/// assert_eq!(nodes[1], Node::Ip("2001:db8:cafe::17".parse().unwrap()));
/// assert!(parse_forwarded("for=\"unterminated").is_err());
/// ```
///
/// # Errors
/// [`ForwardedError`] when the value is not that syntax.
pub fn parse_forwarded(value: &str) -> Result<Vec<Node>, ForwardedError> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        let mut node = None;
        // One element: pairs until a comma or the end.
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let eq = rest.find('=').ok_or(ForwardedError)?;
            let (name, after) = (
                rest.get(..eq).unwrap_or(""),
                rest.get(eq + 1..).unwrap_or(""),
            );
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(ForwardedError);
            }
            let (v, after) = value_of(after)?;
            if name.eq_ignore_ascii_case("for") {
                if node.is_some() {
                    return Err(ForwardedError);
                }
                node = Some(parse_node(&v).map_or(Node::Hidden, Node::Ip));
            }
            rest = after.trim_start_matches([' ', '\t']);
            match rest.as_bytes().first() {
                Some(b';') => rest = rest.get(1..).unwrap_or(""),
                _ => break,
            }
        }
        out.push(node.unwrap_or(Node::Hidden));
        match rest.as_bytes().first() {
            None => return Ok(out),
            Some(b',') => rest = rest.get(1..).unwrap_or(""),
            Some(_) => return Err(ForwardedError),
        }
    }
}

/// A token or a quoted-string at the start of `s`, and what follows it.
fn value_of(s: &str) -> Result<(String, &str), ForwardedError> {
    if let Some(q) = s.strip_prefix('"') {
        let mut v = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((v, q.get(i + 1..).unwrap_or(""))),
                '\\' => v.push(chars.next().ok_or(ForwardedError)?.1),
                c if c == '\t' || (' '..='~').contains(&c) => v.push(c),
                _ => return Err(ForwardedError),
            }
        }
        Err(ForwardedError)
    } else {
        let end = s.bytes().position(|b| !is_tchar(b)).unwrap_or(s.len());
        if end == 0 {
            return Err(ForwardedError);
        }
        Ok((
            s.get(..end).unwrap_or("").to_owned(),
            s.get(end..).unwrap_or(""),
        ))
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An address, bracketed IPv6, or either with a port; `None` for anything else.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|v6| canonical(IpAddr::V6(v6)))
}

/// IPv4-mapped IPv6 as IPv4, so one client has one key whichever socket it came in on.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(IpAddr::V6(v6), |v4: Ipv4Addr| IpAddr::V4(v4)),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn behind(nets: &[&str]) -> ClientIpResolver {
        nets.iter()
            .fold(ClientIpResolver::new(), |r, n| r.trust(n.parse().unwrap()))
    }

    #[test]
    fn no_trusted_proxy_means_the_peer() {
        let r = ClientIpResolver::new();
        let c = r.resolve(ip("198.51.100.1"), [], [b"203.0.113.9".as_slice()]);
        assert_eq!(c.ip(), ip("198.51.100.1"));
    }

    #[test]
    fn right_to_left_first_untrusted_hop_wins() {
        let r = behind(&["10.0.0.0/8"]);
        let xff = b"1.1.1.1, 203.0.113.9, 10.0.0.2".as_slice();
        let c = r.resolve(ip("10.0.0.1"), [], [xff]);
        assert_eq!(
            c.ip(),
            ip("203.0.113.9"),
            "the spoofed leftmost hop is ignored"
        );
        let fwd = b"for=1.1.1.1, for=\"203.0.113.9:443\";proto=https, for=10.0.0.2".as_slice();
        let c = r.resolve(ip("10.0.0.1"), [fwd], [b"9.9.9.9".as_slice()]);
        assert_eq!(
            c.ip(),
            ip("203.0.113.9"),
            "forwarded wins over x-forwarded-for"
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_wrote_it() {
        let r = behind(&["10.0.0.0/8"]);
        let c = r.resolve(ip("10.0.0.1"), [b"for=1.1.1.1, for=unknown".as_slice()], []);
        assert_eq!(c.ip(), ip("10.0.0.1"));
        let c = r.resolve(ip("10.0.0.1"), [], [b"1.1.1.1, garbage".as_slice()]);
        assert_eq!(c.ip(), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_aggregates_to_the_prefix() {
        let r = ClientIpResolver::new();
        let a = r.resolve(ip("2001:db8:1:2:aaaa::1"), [], []);
        let b = r.resolve(ip("2001:db8:1:2:ffff::2"), [], []);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), ip("2001:db8:1:2::"));
        assert_eq!(a.key_bytes(), b.key_bytes());
        let mapped = r.resolve(ip("::ffff:192.0.2.7"), [], []);
        assert_eq!(mapped.key(), ip("192.0.2.7"));
        let r = ClientIpResolver::new().ipv6_prefix(128).unwrap();
        assert_ne!(
            r.resolve(ip("2001:db8::1"), [], []).key(),
            r.resolve(ip("2001:db8::2"), [], []).key()
        );
        assert!(ClientIpResolver::new().ipv6_prefix(129).is_err());
        let all = ClientIpResolver::new().ipv6_prefix(0).unwrap();
        assert_eq!(all.resolve(ip("2001:db8::1"), [], []).key(), ip("::"));
    }

    proptest! {
        #[test]
        fn forwarded_never_panics(s in "\\PC{0,80}") {
            let _ = parse_forwarded(&s);
        }

        #[test]
        fn forwarded_round_trips_addresses(
            ips in proptest::collection::vec(any::<IpAddr>(), 1..6)
        ) {
            let value = ips
                .iter()
                .map(|ip| match ip {
                    IpAddr::V4(v4) => format!("for={v4}"),
                    IpAddr::V6(v6) => format!("for=\"[{v6}]:8080\""),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let nodes = parse_forwarded(&value).unwrap();
            let want: Vec<_> = ips.iter().map(|&ip| Node::Ip(canonical(ip))).collect();
            prop_assert_eq!(nodes, want);
        }

        #[test]
        fn the_client_is_never_a_hop_left_of_an_untrusted_one(
            spoofed in any::<std::net::Ipv4Addr>(),
            client in any::<std::net::Ipv4Addr>(),
        ) {
            prop_assume!(!ClientIpResolver::new().trust("10.0.0.0/8".parse().unwrap()).is_trusted(IpAddr::V4(client)));
            let r = behind(&["10.0.0.0/8"]);
            let xff = format!("{spoofed}, {client}");
            let c = r.resolve(ip("10.1.2.3"), [], [xff.as_bytes()]);
            prop_assert_eq!(c.ip(), IpAddr::V4(client));
        }
    }
}
