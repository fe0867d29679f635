//! The uprobe bodies (plus the exec tracepoint), one file per family of runtime functions.
//! main.rs exports each body as two programs (uprobe.multi and perf-event flavours) under the
//! names the loader looks up. A new probe on the runtime goes in its family's file here, and
//! its body into main.rs's `uprobe_programs!` list.
use aya_ebpf::programs::ProbeContext;
use gmp_trace_common::EventKind;

use crate::{emit::emit, event::base_event_g, maps::offsets};

pub(crate) mod bench;
pub(crate) mod gc;
pub(crate) mod lifecycle;
pub(crate) mod scheduler;
pub(crate) mod startup;
pub(crate) mod syscalls;
pub(crate) mod threads;

/// Go-ABI functions that only need "this happened now, here": the kind is the attach cookie.
#[inline(always)]
fn simple(ctx: &ProbeContext, kind: EventKind, arg0: u64) {
    let o = offsets();
    if let Some(mut e) = base_event_g(ctx, kind, o) {
        e.arg0 = arg0;
        emit(&e);
    }
}
