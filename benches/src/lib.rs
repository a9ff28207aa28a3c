//! Criterion benchmarks across Protea's crates. The benchmarks live in `benches/` (run
//! `cargo bench -p benches`); this library is empty.
