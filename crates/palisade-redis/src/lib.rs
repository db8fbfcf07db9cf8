#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod connection;
pub mod family;
pub mod model;
pub mod once;
pub mod rate;

pub use connection::{OpenError, Redis};
pub use family::RedisFamilyStore;
pub use once::RedisOneTimeStore;
pub use rate::RedisRateStore;
