//! Where events come from. `live` reads the probes' ring buffer; recorded files come later
//! through the same `Sink`, so the model and exporters cannot tell the two apart.
pub mod exec;
pub mod live;
pub mod recording;
pub mod sampler;
pub mod stacks;

mod events;

pub use events::{Derive, Sink, DERIVED};
