//! Commands: the top layer, one module per word on the command line, each a short story over
//! the layers below (process, probes, sources, model, exporters; see docs/architecture.md).
//! `main.rs` picks one by the first argument.
//!
//! Coming, each a module here and an arm in `main.rs`: `dump` (the runtime-memory reader, a
//! one-shot source), `top` and `profile` (the CPU sampler and stacks), `serve` (many processes,
//! a metrics exporter).
pub mod compare;
pub mod dump;
pub mod profile;
pub mod replay;
pub mod top;
pub mod trace;
