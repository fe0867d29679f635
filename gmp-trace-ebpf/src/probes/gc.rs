//! Garbage collection and stop-the-world: when the world stops and restarts, and when a GC cycle
//! starts and ends.
use aya_ebpf::programs::ProbeContext;
use gmp_trace_common::EventKind;

use super::simple;
use crate::read::regs;

/// runtime.stopTheWorldWithSema(reason) (reason in AL from Go 1.21; 0 before).
#[inline(always)]
pub(crate) fn on_stw_start(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::StwStart, regs(&ctx).rax & 0xff);
    0
}

#[inline(always)]
pub(crate) fn on_stw_done(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::StwDone, 0);
    0
}

/// runtime.gcStart(trigger gcTrigger): the trigger struct arrives in registers, kind in RAX.
#[inline(always)]
pub(crate) fn on_gc_start(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::GcStart, regs(&ctx).rax & 0xff);
    0
}

#[inline(always)]
pub(crate) fn on_gc_done(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::GcDone, 0);
    0
}
