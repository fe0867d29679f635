//! Threads and Ps coming and going: an M starts (mstart1) or is created (newm1), and
//! GOMAXPROCS changes (procresize). These move the cache generations (cache.rs).
use aya_ebpf::programs::ProbeContext;
use gmp_trace_common::EventKind;

use crate::{
    cache::bump_generation,
    emit::emit,
    event::{base_event, base_event_g, base_event_m, NEED_P},
    maps::{offsets, GEN_PS, GEN_THREADS},
    read::{read, regs},
};

/// runtime.mstart1: the first Go code a new M runs, on its g0.
#[inline(always)]
pub(crate) fn on_mstart(ctx: ProbeContext) -> u32 {
    let o = offsets();
    // A new thread: a cached (thread id, g0) could only match by reuse of both.
    bump_generation(GEN_THREADS);
    if let Some((mut e, cur)) = base_event_m(&ctx, EventKind::MStart, o, NEED_P) {
        e.arg0 = read::<u64>(cur.m, o.m_procid).unwrap_or(0);
        emit(&e);
    }
    0
}

/// runtime.newm1(mp *m): this M creates another, whose m.id is already assigned (newm's own
/// id argument is -1 for "allocate one", so it cannot link the two).
#[inline(always)]
pub(crate) fn on_newm(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event_g(&ctx, EventKind::NewM, o) {
        e.arg0 = read::<i64>(regs(&ctx).rax, o.m_id).unwrap_or(-1) as u64;
        e.arg1 = u64::MAX;
        emit(&e);
    }
    0
}

/// runtime.procresize(nprocs int32): GOMAXPROCS changes (also once in schedinit).
#[inline(always)]
pub(crate) fn on_procresize(ctx: ProbeContext) -> u32 {
    let o = offsets();
    // Ps may be made or destroyed here: forget every cached p.id.
    bump_generation(GEN_PS);
    if let Some(mut e) = base_event(&ctx, EventKind::ProcResize, o) {
        e.arg0 = regs(&ctx).rax & 0xffff_ffff;
        emit(&e);
    }
    0
}
