//! Exporters: turn events (and the model) into files people read. Each writer takes events one
//! at a time (jsonl, perfetto), the finished model (summary, graph) or a finished profile
//! (pprof); none reads the probes or the process, so live tracing and replay produce the same
//! bytes.
pub mod files;
pub mod godump;
pub mod gotrace;
pub mod graph;
pub mod jsonl;
pub mod many;
pub mod perfetto;
pub mod pprof;
pub mod stacks;
pub mod summary;

/// Naming functions is the binary's job; exporters take it as a `&dyn Symbolize`.
pub use crate::binary::{Biased, Symbolize};
