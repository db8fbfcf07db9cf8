#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod client_ip;
mod clock;
pub mod config;
pub mod decision;
mod deny_cache;
mod error;
pub mod gcra;
#[cfg(feature = "tower")]
pub mod http;
pub mod limiter;
pub mod lockout;
pub mod memory;
pub mod quota;
mod store;

pub use client_ip::{ClientIp, ClientIpResolver};
pub use clock::FastClock;
pub use config::{Allowlist, Config, IpNet, KeyKind, Policy};
pub use decision::Decision;
pub use error::RateLimitError;
pub use gcra::GcraLimiter;
pub use limiter::{FailPolicy, Limiter};
pub use lockout::{Attempt, Begin, Lockout, LockoutPolicy, LockoutStatus};
pub use memory::MemoryLimiter;
pub use quota::{Algorithm, Quota, QuotaResolver, SharedQuota};
pub use store::MemoryRateStore;
