//! Benches of palisade-token beside their peers.

fn main() {}
