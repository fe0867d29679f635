//! Process startup: exec (a raw tracepoint, with the new image's load bias), the phases of the
//! runtime's bootstrap (in Go-ABI and in assembly code), each package init task, and
//! runtime.main.
use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
        generated::{bpf_get_attach_cookie, bpf_get_current_task},
    },
    macros::raw_tracepoint,
    programs::{ProbeContext, RawTracePointContext},
    EbpfContext as _,
};
use gmp_trace_common::{phase, Event, EventKind, EXEC_PATH_CHUNK, EXEC_PATH_MAX};

use crate::{
    emit::emit,
    event::{bare_event, base_event_g, fill_m_p, NEED_P},
    maps::{offsets, saw_exec, EXEC_PATH},
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
/// The phase event, then the exec'd path in [`EventKind::ExecPath`] pieces.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn exec(ctx: RawTracePointContext) -> i32 {
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
        // TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
        exec_path(&e, ctx.arg::<u64>(2), o.binprm_filename);
        saw_exec();
    }
    0
}

/// Sends the path `bprm->filename` in pieces after the exec event `at`; one empty piece when
/// it cannot be read.
#[inline(always)]
fn exec_path(at: &Event, bprm: u64, filename_off: u32) {
    let mut piece = Event {
        kind: EventKind::ExecPath as u32,
        p: 0,
        goid: 0,
        m: 0,
        arg0: 0,
        arg1: 0,
        arg2: 0,
        ..*at
    };
    let Some(buf) = EXEC_PATH.get_ptr_mut(0) else {
        emit(&piece);
        return;
    };
    // SAFETY: this CPU's slot from the lookup, not shared while this program runs.
    let buf = unsafe { &mut *buf };
    let mut len = 0usize;
    if filename_off != 0 && bprm != 0 {
        // SAFETY: kernel addresses read through bpf_probe_read_kernel(_str), which handle
        // faults.
        if let Ok(name) =
            unsafe { bpf_probe_read_kernel((bprm + filename_off as u64) as *const u64) }
        {
            if let Ok(s) = unsafe { bpf_probe_read_kernel_str_bytes(name as *const u8, buf) } {
                len = s.len();
            }
        }
    }
    piece.p = len as i32;
    for i in 0..EXEC_PATH_MAX / EXEC_PATH_CHUNK {
        let at = i * EXEC_PATH_CHUNK;
        if i > 0 && at >= len {
            break;
        }
        let word = |k: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[at + k * 8..at + k * 8 + 8]);
            u64::from_le_bytes(w)
        };
        piece.goid = at as u64;
        piece.m = word(0) as i64;
        piece.arg0 = word(1);
        piece.arg1 = word(2);
        piece.arg2 = word(3);
        emit(&piece);
    }
}
