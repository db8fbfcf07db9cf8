//! Benches of palisade-ratelimit beside their peers.

fn main() {}
