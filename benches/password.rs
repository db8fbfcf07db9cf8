//! Benches of palisade-password beside their peers.

fn main() {}
