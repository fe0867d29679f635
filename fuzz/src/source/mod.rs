//! The parts of gmp-trace's `source` module that need no BPF: the sink and the derived events
//! (`events.rs`), exec of a new image (the model keeps the replacement), and recordings.
#[path = "../../../gmp-trace/src/source/events.rs"]
mod events;
#[path = "../../../gmp-trace/src/source/exec.rs"]
pub mod exec;
#[path = "../../../gmp-trace/src/source/recording/mod.rs"]
pub mod recording;

pub use events::{Derive, Sink};
