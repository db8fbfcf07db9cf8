//! Benches of palisade-field beside their peers.

fn main() {}
