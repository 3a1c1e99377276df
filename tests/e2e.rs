//! The end-to-end tests, one module a capability, in one test binary: each
//! file was a binary of its own, and each linked wasmtime (about half a
//! minute a binary on two cores; fifteen of them were most of CI's build).
//! `tests/cluster.rs` stays apart: it runs three daemons and a NATS server
//! through 10,000 events, and times a failover.
//!
//! Run one capability with a filter, e.g. `cargo test --test e2e flows::`.

mod support;

mod authoring;
mod cli;
mod compat;
mod console;
mod daemon;
mod entities;
mod flows;
mod fuzz_corpus;
mod insights;
mod languages;
mod peer;
mod registry;
mod sandbox;
mod writes;
