//! System calls: a goroutine entering one (blocking or not), leaving it, and losing its P on
//! the way out.
use aya_ebpf::{
    helpers::generated::bpf_get_attach_cookie, programs::ProbeContext, EbpfContext as _,
};
use gmp_trace_common::EventKind;

use super::simple;
use crate::{emit::emit, event::base_event_g, maps::offsets, read::regs, stacks};

/// runtime.entersyscall / entersyscallblock (cookie 1 = blocking): on the user goroutine.
#[inline(always)]
pub(crate) fn on_syscall_enter(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let blocking = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if !stacks::enabled() {
        simple(&ctx, EventKind::SyscallEnter, blocking);
        return 0;
    }
    let o = offsets();
    if let Some(mut e) = base_event_g(&ctx, EventKind::SyscallEnter, o) {
        e.arg0 = blocking;
        // On the goroutine's own stack, at the function's first instruction.
        let r = regs(&ctx);
        if let Some(s) = stacks::from_regs(r, r.r14, o) {
            stacks::send(&e, e.goid, &s);
        }
        emit(&e);
    }
    0
}

#[inline(always)]
pub(crate) fn on_syscall_exit(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::SyscallExit, 0);
    0
}

/// runtime.exitsyscallTryGetP (Go 1.26+): exitsyscall found no P on its M after all.
#[inline(always)]
pub(crate) fn on_syscall_lost_p(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::SyscallLostP, 0);
    0
}
