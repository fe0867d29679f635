//! Probes for measuring the tracer itself (`cargo xtask bench`): attached in place of the real
//! programs, they give the cost of the trap alone and of the ring buffer alone.
use aya_ebpf::programs::ProbeContext;
use gmp_trace_common::EventKind;

use crate::{emit::emit, event::bare_event, maps::offsets};

/// Does nothing: attached in place of the real programs (hidden `--empty-probes`) it measures
/// the floor, the cost of the trap alone.
#[inline(always)]
pub(crate) fn on_empty(_ctx: ProbeContext) -> u32 {
    0
}

/// Emits a bare record (clock and thread only, no user-memory reads; kind Schedule, so the
/// model takes it as a harmless scheduler-loop entry): attached in place of the real programs
/// (hidden `--emit-only-probes`) it measures what the ring buffer itself costs per hit.
#[inline(always)]
pub(crate) fn on_emit_only(_ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = bare_event(EventKind::Schedule, o) {
        emit(&e);
    }
    0
}
