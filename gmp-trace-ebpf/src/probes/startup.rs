//! Process startup: exec (a raw tracepoint, with the new image's load bias), the phases of the
//! runtime's bootstrap (in Go-ABI and in assembly code), each package init task, and
//! runtime.main.
use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_get_attach_cookie, bpf_get_current_task},
    },
    macros::raw_tracepoint,
    programs::{ProbeContext, RawTracePointContext},
    EbpfContext as _,
};
use gmp_trace_common::{phase, EventKind};

use crate::{
    emit::emit,
    event::{bare_event, base_event_g, fill_m_p, NEED_P},
    maps::offsets,
    read::{read, regs, tls_g},
};

/// runtime.main: the main goroutine (g1) begins.
#[inline(always)]
pub(crate) fn on_runtime_main(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event_g(&ctx, EventKind::RuntimeMain, o) {
        emit(&e);
    }
    0
}

/// A startup milestone in Go-ABI code (R14 is g); the phase id is the attach cookie.
#[inline(always)]
pub(crate) fn on_phase(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let o = offsets();
    if let Some(mut e) = base_event_g(&ctx, EventKind::Phase, o) {
        e.arg0 = id;
        emit(&e);
    }
    0
}

/// A startup milestone in assembly (ABI0) code, where R14 is not g: the g comes from the
/// thread's TLS slot instead. rt0_go runs before there is one (it sets it up), so it has none.
#[inline(always)]
pub(crate) fn on_phase_abi0(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let o = offsets();
    if let Some(mut e) = bare_event(EventKind::Phase, o) {
        e.arg0 = id;
        if id != phase::RT0_GO {
            let g = tls_g(o);
            if g != 0 {
                let cur = fill_m_p(&mut e, g, o, NEED_P);
                e.goid = cur.goid(g, o);
            }
        }
        if id == phase::EXIT {
            // runtime.exit(code int32) is ABI0: the argument is on the stack above the return pc.
            e.arg1 = read::<u32>(regs(&ctx).rsp, 8).unwrap_or(0) as u64;
        }
        emit(&e);
    }
    0
}

/// runtime.doInit1(t *initTask) (Go 1.21+) or doInit(t) (older): an init task begins on g1.
/// arg1 = t; arg2 = the task's first init function pc (0 when it has none).
///
/// The cookie names the task layout. 0 (Go 1.21+): `{state u32, nfns u32, fns [nfns]uintptr}`,
/// so the first pc is at t+8 (doInit1 is only called for tasks with functions). 1 (Go 1.19/1.20):
/// `{state, ndeps, nfns uintptr, deps [ndeps]*initTask, fns [nfns]uintptr}`, read in place.
#[inline(always)]
pub(crate) fn on_init_task(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let old_layout = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } == 1;
    let o = offsets();
    if let Some(mut e) = base_event_g(&ctx, EventKind::Phase, o) {
        let t = regs(&ctx).rax;
        e.arg0 = phase::INIT_TASK;
        e.arg1 = t;
        e.arg2 = if old_layout {
            let ndeps = read::<u64>(t, 8).unwrap_or(0);
            let nfns = read::<u64>(t, 16).unwrap_or(0);
            // A bound keeps the verifier's view of the offset finite; real tasks have far fewer.
            if nfns == 0 || ndeps > 1 << 20 {
                0
            } else {
                read::<u64>(t + 24 + ndeps * 8, 0).unwrap_or(0)
            }
        } else {
            read::<u64>(t, 8).unwrap_or(0)
        };
        emit(&e);
    }
    0
}

/// sched_process_exec: the traced pid has exec'd its new image (before its first instruction).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn exec(_ctx: RawTracePointContext) -> i32 {
    let o = offsets();
    if let Some(mut e) = bare_event(EventKind::Phase, o) {
        e.arg0 = phase::EXEC;
        // Where the new image's text is mapped (current->mm->start_code): the load bias of a
        // position-independent executable, known before its first instruction runs.
        if o.task_mm != 0 && o.mm_start_code != 0 {
            // SAFETY: bpf_get_current_task has no preconditions; both reads go through
            // bpf_probe_read_kernel, which handles faults.
            let task = unsafe { bpf_get_current_task() };
            let mm = unsafe { bpf_probe_read_kernel((task + o.task_mm as u64) as *const u64) };
            if let Ok(mm) = mm {
                // SAFETY: as above.
                e.arg1 =
                    unsafe { bpf_probe_read_kernel((mm + o.mm_start_code as u64) as *const u64) }
                        .unwrap_or(0);
            }
        }
        emit(&e);
    }
    0
}
