//! Benches of palisade-audit beside their peers.

fn main() {}
