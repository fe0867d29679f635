//! The parts of gmp-trace's `source` module that need no BPF: the sink and the derived events
//! (`events.rs`), and recordings.
#[path = "../../../gmp-trace/src/source/events.rs"]
mod events;
#[path = "../../../gmp-trace/src/source/recording/mod.rs"]
pub mod recording;

pub use events::{Derive, Sink};
