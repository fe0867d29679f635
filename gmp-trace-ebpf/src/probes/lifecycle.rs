//! A goroutine's life: created (newproc, then newproc1's result), its status changes
//! (casgstatus: runnable, running, waiting with a reason, and who caused it) and its exit. They
//! keep the goid cache current, since casgstatus sees every g reborn with a new goid.
use aya_ebpf::{
    helpers::generated::bpf_get_attach_cookie, programs::ProbeContext, EbpfContext as _,
};
use gmp_trace_common::{gstatus, EventKind};

use crate::{
    cache::{forget_goid, goid_of, remember_goid},
    emit::emit,
    event::{base_event_g, base_event_m, lean, NEED_CURG, NEED_P},
    maps::offsets,
    read::{fetch, read, regs, result, Block},
    stacks,
};

/// runtime.newproc(fn *funcval): on the creating goroutine.
#[inline(always)]
pub(crate) fn on_newproc(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event_g(&ctx, EventKind::NewProc, o) {
        if !lean(EventKind::NewProc) {
            e.arg0 = read::<u64>(regs(&ctx).rax, 0).unwrap_or(0);
        }
        emit(&e);
    }
    0
}

/// runtime.newproc1 has returned (in its caller, or on a RET): its result is the new g. Runs
/// on g0, so the creator is m.curg.
#[inline(always)]
pub(crate) fn on_newproc1_ret(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some((mut e, cur)) = base_event_m(&ctx, EventKind::GoCreate, o, NEED_CURG) {
        let newg = result(&ctx);
        e.goid = read::<u64>(newg, o.g_goid).unwrap_or(0);
        if e.goid != 0 {
            remember_goid(newg, e.goid);
        }
        if lean(EventKind::GoCreate) {
            // Aggregate mode: the new goid (for its first wait to run) is all that counts.
            emit(&e);
            return 0;
        }
        e.arg0 = goid_of(cur.curg(o), o);
        e.arg1 = read::<u64>(newg, o.g_startpc).unwrap_or(0);
        e.arg2 = read::<u64>(newg, o.g_gopc).unwrap_or(0);
        if stacks::enabled() {
            // newproc1 runs inside newproc's systemstack: the creator's context is in its
            // g.sched.
            let creator = cur.curg(o);
            if creator != 0 && creator != regs(&ctx).r14 {
                if let Some(s) = stacks::from_sched(creator, o) {
                    stacks::send(&e, e.arg0, &s);
                }
            }
        }
        emit(&e);
    }
    0
}

/// runtime.goexit1: the goroutine in R14 is finishing.
#[inline(always)]
pub(crate) fn on_goexit1(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event_g(&ctx, EventKind::GoExit, o) {
        emit(&e);
    }
    0
}

/// `--stacks` for a status change: where gp stops running (blocks, yields or is preempted),
/// or who makes it runnable again. On g0 (park_m, gosched_m, ready inside systemstack) that
/// goroutine's context is in its g.sched; on the goroutine itself, in the registers.
#[inline(always)]
fn status_stack(
    e: &gmp_trace_common::Event,
    gp: u64,
    curg: u64,
    by: u64,
    r: &aya_ebpf::bindings::pt_regs,
    o: &gmp_trace_common::Offsets,
) {
    let (g, whose) = if e.arg0 == gstatus::RUNNING
        && (e.arg1 == gstatus::WAITING || e.arg1 == gstatus::RUNNABLE)
    {
        (gp, e.goid)
    } else if e.arg0 == gstatus::WAITING && e.arg1 == gstatus::RUNNABLE && curg != 0 {
        (curg, by)
    } else {
        return;
    };
    let s = if g == r.r14 {
        stacks::from_regs(r, g, o)
    } else {
        stacks::from_sched(g, o)
    };
    if let Some(s) = s {
        stacks::send(e, whose, &s);
    }
}

/// A change out of these is a g being (re)born, with a new goid.
#[inline(always)]
fn reborn(old: u64) -> bool {
    old == gstatus::DEAD || old == gstatus::IDLE || old == gstatus::DEADEXTRA
}

/// runtime.casgstatus(gp, oldval, newval uint32).
#[inline(always)]
pub(crate) fn on_casgstatus(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some((mut e, cur)) = base_event_m(&ctx, EventKind::GoStatus, o, NEED_CURG) {
        let r = regs(&ctx);
        let gp = r.rax;
        e.arg0 = r.rbx & 0xffff_ffff;
        e.arg1 = r.rcx & 0xffff_ffff;
        // gp's goid and wait reason: the reason only matters for a change to _Gwaiting, and
        // the goid is mostly cached. A change out of _Gdead (or _Gidle, _Gdeadextra) is a g
        // being born again with a new goid, assigned before or after this change by version
        // and path: read it, and drop the cached one.
        let reborn = reborn(e.arg0);
        let reason = if e.arg1 == gstatus::WAITING || reborn {
            if reborn {
                forget_goid(gp);
            }
            let mut buf = core::mem::MaybeUninit::<Block>::uninit();
            match fetch(&mut buf, gp, o.gp_block, o.gp_block_len) {
                Some(w) => {
                    e.goid = w.field(o.g_goid, 8).unwrap_or(0);
                    w.field(o.g_waitreason, 1).unwrap_or(0) as u8
                }
                None => {
                    e.goid = read::<u64>(gp, o.g_goid).unwrap_or(0);
                    read::<u8>(gp, o.g_waitreason).unwrap_or(0)
                }
            }
        } else {
            e.goid = goid_of(gp, o);
            0
        } as u64;
        if e.arg1 == gstatus::WAITING && e.goid != 0 {
            remember_goid(gp, e.goid);
        }
        // Who causes the change: the M's current goroutine (for Waiting->Runnable, the unblocker).
        // Mostly known already: on g0 in park_m/execute/goexit0 curg is gp itself, and on a
        // user goroutine (ready, casgstatus of its own) curg is the current g, whose goid the g
        // block brought. Only the rest costs a read.
        let curg = cur.curg(o);
        let by = if curg == 0 {
            0
        } else if curg == gp {
            e.goid
        } else if curg == r.r14 && cur.have_goid {
            cur.goid
        } else {
            goid_of(curg, o)
        };
        e.arg2 = reason | (by << 8);
        if stacks::enabled() {
            status_stack(&e, gp, curg, by, r, o);
        }
        emit(&e);
    }
    0
}

/// runtime.preemptPark(gp), on g0 (via mcall): gp, running until now, parks for a GC stack scan
/// without a casgstatus; reported as the status change Go's tracer records (running to waiting,
/// reason `waitReasonPreempted`: the attach cookie). The scan's resumeG readies it with a
/// casgstatus from waiting, seen as usual.
#[inline(always)]
pub(crate) fn on_preempt_park(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let reason = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } & 0xff;
    let o = offsets();
    if let Some((mut e, _)) = base_event_m(&ctx, EventKind::GoStatus, o, NEED_P) {
        let gp = regs(&ctx).rax;
        e.goid = goid_of(gp, o);
        e.arg0 = gstatus::RUNNING;
        e.arg1 = gstatus::WAITING;
        // gp parks itself (the M's curg until the dropg that follows).
        e.arg2 = reason | (e.goid << 8);
        emit(&e);
    }
    0
}
