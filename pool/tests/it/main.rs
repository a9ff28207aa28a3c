//! Integration tests of the `pool` crate, through its public API only.

mod batcher;
mod cores;
mod listener;
