//! Policies from configuration: named limits, the key each is counted by, and an allowlist of
//! addresses that bypass every limit.
//!
//! From TOML ([`Config::from_toml`]):
//!
//! ```toml
//! allowlist = ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]
//!
//! [limits.auth]
//! limit = 10
//! period = "1m"          # a number of seconds, or with a unit: ms, s, m, h, d (default 1m)
//! key = "ip"             # ip | user | api_key | ip_user | header:<name> (default ip)
//! algorithm = "log"      # sliding (default) | log
//!
//! [limits.api]
//! limit = 200
//! key = "api_key"
//! ```
//!
//! or from environment variables ([`Config::from_env`], [`Config::from_vars`]):
//! `RATE_LIMIT_AUTH=10` (per minute), `RATE_LIMIT_API=200/1m`, `RATE_LIMIT_AUTH_KEY=ip`,
//! `RATE_LIMIT_AUTH_ALGORITHM=log`, `RATE_LIMIT_ALLOWLIST=10.0.0.0/8,::1`. The suffixes `_KEY`
//! and `_ALGORITHM` are reserved; policy names are lower-cased.
//!
//! TOML through the `toml` crate, the Rust ecosystem's standard parser (the format of
//! `Cargo.toml`), with unknown fields refused so that a typo is an error, not a silently absent
//! limit.
//!
//! # Errors
//! [`RateLimitError::Config`], naming the policy and the field; never a panic on any input (the
//! parser is fuzzed: `fuzz/fuzz_targets/ratelimit_config.rs`).

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;
use core::time::Duration;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::RateLimitError;
use crate::quota::{Algorithm, Quota};

/// What a policy counts requests by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// The client's IP address.
    Ip,
    /// The authenticated user's id.
    User,
    /// The API key's id.
    ApiKey,
    /// The pair (IP address, user).
    IpUser,
    /// The value of a request header.
    Header(String),
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("ip"),
            Self::User => f.write_str("user"),
            Self::ApiKey => f.write_str("api_key"),
            Self::IpUser => f.write_str("ip_user"),
            Self::Header(h) => write!(f, "header:{h}"),
        }
    }
}

impl FromStr for KeyKind {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ip" => Self::Ip,
            "user" => Self::User,
            "api_key" => Self::ApiKey,
            "ip_user" => Self::IpUser,
            _ => match s.strip_prefix("header:") {
                Some(h) if http_token(h) => Self::Header(h.to_ascii_lowercase()),
                _ => return Err(RateLimitError::Config(format!("unknown key kind {s:?}"))),
            },
        })
    }
}

/// Whether `s` is an HTTP header name (RFC 9110 token).
fn http_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A named limit: a quota, counted per key of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name (`auth`, `api`), used in audit events.
    pub name: String,
    /// The quota.
    pub quota: Quota,
    /// What it counts by.
    pub key: KeyKind,
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`; a bare address is a /32 or
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    (a & mask) == (b & mask)
}

impl FromStr for IpNet {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RateLimitError::Config(format!("invalid ip network {s:?}"));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Addresses and networks that bypass every limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// An allowlist of `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `ip` bypasses the limits.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// A set of named policies and an allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The policies by name.
    pub policies: BTreeMap<String, Policy>,
    /// Addresses that bypass every limit.
    pub allowlist: Allowlist,
}

/// A policy's variables: (limit, period), key kind, algorithm.
type EnvPolicy = (Option<(u64, Duration)>, Option<String>, Option<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    allowlist: Vec<String>,
    #[serde(default)]
    limits: BTreeMap<String, RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    limit: u64,
    #[serde(default)]
    period: Option<RawPeriod>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPeriod {
    Secs(u64),
    Text(String),
}

impl Config {
    /// Parses a TOML configuration.
    ///
    /// # Errors
    /// [`RateLimitError::Config`] for malformed TOML, unknown fields, bad values.
    pub fn from_toml(text: &str) -> Result<Self, RateLimitError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| RateLimitError::Config(e.message().to_owned()))?;
        let mut config = Self::default();
        for net in &raw.allowlist {
            config.allowlist.nets.push(net.parse()?);
        }
        for (name, p) in raw.limits {
            let period = match p.period {
                None => Duration::from_secs(60),
                Some(RawPeriod::Secs(s)) => Duration::from_secs(s),
                Some(RawPeriod::Text(t)) => parse_period(&t)?,
            };
            let policy = build_policy(
                &name,
                p.limit,
                period,
                p.key.as_deref(),
                p.algorithm.as_deref(),
            )?;
            config.policies.insert(policy.name.clone(), policy);
        }
        Ok(config)
    }

    /// Reads `RATE_LIMIT_*` variables from the process environment.
    ///
    /// # Errors
    /// [`RateLimitError::Config`] for a malformed variable.
    pub fn from_env() -> Result<Self, RateLimitError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads `RATE_LIMIT_*` variables from `vars` (name, value); others are ignored.
    ///
    /// # Errors
    /// [`RateLimitError::Config`] for a malformed variable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, RateLimitError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut limits: BTreeMap<String, EnvPolicy> = BTreeMap::new();
        let mut config = Self::default();
        for (k, v) in vars {
            let Some(rest) = k.as_ref().strip_prefix("RATE_LIMIT_") else {
                continue;
            };
            let v = v.as_ref().trim();
            if rest == "ALLOWLIST" {
                for net in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    config.allowlist.nets.push(net.parse()?);
                }
                continue;
            }
            let (name, field) = if let Some(n) = rest.strip_suffix("_KEY") {
                (n, 1)
            } else if let Some(n) = rest.strip_suffix("_ALGORITHM") {
                (n, 2)
            } else {
                (rest, 0)
            };
            let entry = limits.entry(name.to_ascii_lowercase()).or_default();
            match field {
                1 => entry.1 = Some(v.to_owned()),
                2 => entry.2 = Some(v.to_owned()),
                _ => {
                    let (limit, period) = match v.split_once('/') {
                        Some((l, p)) => (l, parse_period(p)?),
                        None => (v, Duration::from_secs(60)),
                    };
                    let limit = limit.trim().parse::<u64>().map_err(|_| {
                        RateLimitError::Config(format!("RATE_LIMIT_{rest}: invalid limit"))
                    })?;
                    entry.0 = Some((limit, period));
                }
            }
        }
        for (name, (quota, key, algorithm)) in limits {
            let (limit, period) = quota.ok_or_else(|| {
                RateLimitError::Config(format!(
                    "policy {name:?} has a key or algorithm but no limit"
                ))
            })?;
            let policy = build_policy(&name, limit, period, key.as_deref(), algorithm.as_deref())?;
            config.policies.insert(name, policy);
        }
        Ok(config)
    }

    /// The policy named `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    /// The configuration as `RATE_LIMIT_*` variables, which [`Config::from_vars`] reads back to
    /// an equal configuration.
    pub fn to_vars(&self) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        if !self.allowlist.nets.is_empty() {
            let nets: Vec<String> = self
                .allowlist
                .nets
                .iter()
                .map(ToString::to_string)
                .collect();
            vars.push(("RATE_LIMIT_ALLOWLIST".to_owned(), nets.join(",")));
        }
        for (name, p) in &self.policies {
            let upper = name.to_ascii_uppercase();
            let period = format!("{}ms", p.quota.period().as_millis());
            vars.push((
                format!("RATE_LIMIT_{upper}"),
                format!("{}/{period}", p.quota.limit()),
            ));
            vars.push((format!("RATE_LIMIT_{upper}_KEY"), p.key.to_string()));
            let algorithm = match p.quota.algorithm() {
                Algorithm::ExactLog => "log",
                _ => "sliding",
            };
            vars.push((
                format!("RATE_LIMIT_{upper}_ALGORITHM"),
                algorithm.to_owned(),
            ));
        }
        vars
    }
}

fn build_policy(
    name: &str,
    limit: u64,
    period: Duration,
    key: Option<&str>,
    algorithm: Option<&str>,
) -> Result<Policy, RateLimitError> {
    let ctx = |e: RateLimitError| RateLimitError::Config(format!("policy {name:?}: {e}"));
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(RateLimitError::Config(format!(
            "policy name {name:?} is not 1-64 of a-z 0-9 _ -"
        )));
    }
    if name == "allowlist" || name.ends_with("_key") || name.ends_with("_algorithm") {
        return Err(RateLimitError::Config(format!(
            "policy name {name:?} is reserved by the variable form"
        )));
    }
    let algorithm = match algorithm {
        None | Some("sliding") => Algorithm::SlidingWindow,
        Some("log") => Algorithm::ExactLog,
        Some(other) => {
            return Err(RateLimitError::Config(format!(
                "policy {name:?}: unknown algorithm {other:?}"
            )));
        }
    };
    let quota = Quota::new(limit, period)
        .and_then(|q| q.with_algorithm(algorithm))
        .map_err(ctx)?;
    let key = key.map_or(Ok(KeyKind::Ip), str::parse).map_err(ctx)?;
    Ok(Policy {
        name: name.to_owned(),
        quota,
        key,
    })
}

/// Parses `90`, `500ms`, `30s`, `1m`, `1h`, `1d`.
fn parse_period(text: &str) -> Result<Duration, RateLimitError> {
    let t = text.trim();
    let bad = || RateLimitError::Config(format!("invalid period {text:?}"));
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.len() > 12 {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3_600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => return Err(bad()),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_every_field() {
        let c = Config::from_toml(
            r#"
            allowlist = ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]
            [limits.auth]
            limit = 10
            period = "1m"
            key = "ip"
            algorithm = "log"
            [limits.api]
            limit = 200
            period = 60
            key = "header:X-Api-Key"
            [limits.general]
            limit = 100
            "#,
        )
        .unwrap();
        let auth = c.policy("auth").unwrap();
        assert_eq!(auth.quota.limit(), 10);
        assert_eq!(auth.quota.algorithm(), Algorithm::ExactLog);
        assert_eq!(
            c.policy("api").unwrap().key,
            KeyKind::Header("x-api-key".into())
        );
        assert_eq!(c.policy("general").unwrap().quota, Quota::per_minute(100));
        assert!(c.allowlist.contains("10.1.2.3".parse().unwrap()));
        assert!(c.allowlist.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(c.allowlist.contains("2001:db8::1".parse().unwrap()));
        assert!(c.allowlist.contains("127.0.0.1".parse().unwrap()));
        assert!(!c.allowlist.contains("127.0.0.2".parse().unwrap()));
        assert!(!c.allowlist.contains("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn typos_are_errors() {
        assert!(Config::from_toml("[limits.auth]\nlimt = 10").is_err());
        assert!(Config::from_toml("[limits.auth]\nlimit = 10\nalgorithm = \"exact\"").is_err());
        assert!(Config::from_toml("[limits.auth]\nlimit = 10\nperiod = \"1 fortnight\"").is_err());
        assert!(Config::from_toml("allowlist = [\"10.0.0.0/33\"]").is_err());
        assert!(Config::from_toml("[limits.Auth]\nlimit = 10").is_err());
        assert!(Config::from_toml("[limits.auth]\nlimit = -1").is_err());
        assert!(Config::from_toml("[limits.auth_key]\nlimit = 1").is_err());
        assert!(Config::from_toml("[limits.allowlist]\nlimit = 1").is_err());
    }

    #[test]
    fn env_style() {
        let c = Config::from_vars([
            ("RATE_LIMIT_AUTH", "10"),
            ("RATE_LIMIT_AUTH_ALGORITHM", "log"),
            ("RATE_LIMIT_API", "200/1m"),
            ("RATE_LIMIT_API_KEY", "api_key"),
            ("RATE_LIMIT_ALLOWLIST", "10.0.0.0/8, ::1"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(c.policy("auth").unwrap().quota.limit(), 10);
        assert_eq!(c.policy("api").unwrap().key, KeyKind::ApiKey);
        assert!(c.allowlist.contains("::1".parse().unwrap()));
        assert_eq!(Config::from_vars(c.to_vars()).unwrap(), c);
        assert!(Config::from_vars([("RATE_LIMIT_X", "ten")]).is_err());
        assert!(Config::from_vars([("RATE_LIMIT_X_KEY", "ip")]).is_err());
    }
}
