//! Benches of palisade-otp beside their peers.

fn main() {}
