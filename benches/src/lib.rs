//! Criterion benchmarks across Protea's crates. The benchmarks live in `benches/` (run
//! `cargo bench -p benches`); the `hello` binary (`src/bin/hello.rs`) is the baseline
//! server of the side-by-side harness `benches/compare`. This library is empty.
