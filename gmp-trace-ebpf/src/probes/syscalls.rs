//! System calls: a goroutine entering one (blocking or not), leaving it, and losing its P on
//! the way out.
use aya_ebpf::{
    helpers::generated::bpf_get_attach_cookie, programs::ProbeContext, EbpfContext as _,
};
use gmp_trace_common::EventKind;

use super::simple;

/// runtime.entersyscall / entersyscallblock (cookie 1 = blocking): on the user goroutine.
#[inline(always)]
pub(crate) fn on_syscall_enter(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let blocking = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    simple(&ctx, EventKind::SyscallEnter, blocking);
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
