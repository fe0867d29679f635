//! Where events come from. `live` reads the probes' ring buffer; recorded files come later
//! through the same `Sink`, so the model and exporters cannot tell the two apart.
pub mod live;
pub mod recording;

use gmp_trace_common::Event;

/// Consumes decoded events in arrival order.
pub trait Sink {
    fn event(&mut self, e: &Event);
    /// A ring-buffer record too short to be an event (a newer or corrupt producer).
    fn malformed(&mut self, len: usize);
}
