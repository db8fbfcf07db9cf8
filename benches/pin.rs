//! Benches of palisade-pin beside their peers.

fn main() {}
