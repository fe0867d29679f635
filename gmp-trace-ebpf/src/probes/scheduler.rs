//! The scheduler loop and Ps: schedule, acquirep/releasep, an M parking (stopm), spinning, and
//! work stealing (runqsteal's entry keeps its arguments for its returns in `STEAL_ARGS`).
use aya_ebpf::{helpers::bpf_get_current_pid_tgid, programs::ProbeContext};
use gmp_trace_common::{counter, EventKind};

use super::simple;
use crate::{
    cache::p_id,
    emit::emit,
    event::{base_event, base_event_g, base_event_m, lean, NEED_ALL},
    maps::{bump, offsets, StealArgs, STEAL_ARGS},
    read::{read, regs, result},
};

/// runtime.schedule: the M (on g0) looks for a goroutine to run.
#[inline(always)]
pub(crate) fn on_schedule(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::Schedule, o) {
        emit(&e);
    }
    0
}

/// runtime.acquirep(pp): the M takes P pp (m.p is not set yet, so read pp.id). Also
/// m.spinning: an M handed a P by startm(pp, spinning=true) (woken in stopm) or started with
/// mspinning (mstart1) is already spinning here, before it reaches stealWork.
#[inline(always)]
pub(crate) fn on_acquirep(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some((mut e, cur)) = base_event_m(&ctx, EventKind::AcquireP, o, NEED_ALL) {
        let pid = if lean(EventKind::AcquireP) {
            -1
        } else {
            p_id(regs(&ctx).rax, o)
        };
        e.p = pid;
        e.arg0 = pid as i64 as u64;
        e.arg1 = u64::from(cur.spinning(o) & 1);
        e.goid = cur.goid(regs(&ctx).r14, o);
        emit(&e);
    }
    0
}

/// runtime.stealWork(now): findRunnable calls it only with m.spinning set (it becomes
/// spinning right before if it was not), so the M is spinning from here.
#[inline(always)]
pub(crate) fn on_steal_work(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::SpinStart, o) {
        emit(&e);
    }
    0
}

/// runtime.resetspinning(): the spinning M found work (schedule calls it before execute).
#[inline(always)]
pub(crate) fn on_resetspinning(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::SpinEnd, o) {
        emit(&e);
    }
    0
}

/// runtime.runqsteal(pp, p2 *p, stealRunNextG bool) *g, after its prologue: keep what the
/// RETs need (RAX = pp, RBX = p2, CL = stealRunNextG).
#[inline(always)]
pub(crate) fn on_runqsteal(ctx: ProbeContext) -> u32 {
    let o = offsets();
    let pid_tgid = bpf_get_current_pid_tgid();
    if o.target_pid != 0 && (pid_tgid >> 32) as u32 != o.target_pid {
        return 0;
    }
    let r = regs(&ctx);
    let args = StealArgs {
        pp: r.rax,
        tail: read::<u32>(r.rax, o.p_runqtail).unwrap_or(0),
        victim: read::<i32>(r.rbx, o.p_id).unwrap_or(-1),
        runnext: r.rcx & 1,
    };
    if STEAL_ARGS.insert(&(pid_tgid as u32), &args, 0).is_err() {
        bump(counter::READ_FAILED);
    }
    0
}

/// runtime.runqsteal has returned (in stealWork, or on a RET): its result is the stolen g or
/// nil. A nil result is only counted (see
/// EventKind::StealFailed); a goroutine becomes a Steal event from the thief's P (this M's)
/// to the victim recorded at entry, with how many goroutines moved: runqsteal returns one
/// and advances pp.runqtail past the rest.
#[inline(always)]
pub(crate) fn on_runqsteal_ret(ctx: ProbeContext) -> u32 {
    let o = offsets();
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out at once; only this thread writes its own key.
    let args = unsafe { STEAL_ARGS.get(&tid) }.copied();
    let gp = result(&ctx);
    if args.is_some() {
        let _ = STEAL_ARGS.remove(&tid);
    }
    if gp == 0 {
        if o.target_pid == 0 || (bpf_get_current_pid_tgid() >> 32) as u32 == o.target_pid {
            bump(counter::STEAL_FAILED);
        }
        return 0;
    }
    if let Some(mut e) = base_event(&ctx, EventKind::Steal, o) {
        e.goid = read::<u64>(gp, o.g_goid).unwrap_or(0);
        match args {
            Some(a) => {
                e.arg0 = a.victim as i64 as u64;
                let tail = read::<u32>(a.pp, o.p_runqtail).unwrap_or(a.tail);
                e.arg1 = 1 + u64::from(tail.wrapping_sub(a.tail));
                e.arg2 = a.runnext;
            }
            // Entered before the entry probe was attached: the victim is unknown.
            None => {
                e.arg0 = u64::MAX;
                e.arg1 = 1;
            }
        }
        emit(&e);
    }
    0
}

/// runtime.releasep(): the M gives up m.p (still set at entry).
#[inline(always)]
pub(crate) fn on_releasep(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event_g(&ctx, EventKind::ReleaseP, o) {
        emit(&e);
    }
    0
}

/// runtime.stopm: this M parks on the idle list.
#[inline(always)]
pub(crate) fn on_stopm(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::MIdle, 0);
    0
}
