//! The `edgemeet` command (wiring only; see the library for the parts).
fn main() {}
