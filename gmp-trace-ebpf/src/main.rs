//! Uprobes on the Go runtime's scheduler functions.
//!
//! Each probe is thin: read the registers Go's ABIInternal passes arguments in (RAX, RBX, RCX...;
//! R14 holds the current g), follow g.m / m.p for the M and P, and emit one fixed-size [`Event`]
//! into the ring buffer. Struct offsets come from userspace through the `OFFSETS` global, set at
//! load time, so one object serves every Go version. Failures are counted per CPU in `COUNTERS`;
//! nothing here may panic or log on the hot path.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{PerCpuArray, RingBuf},
    programs::ProbeContext,
};
use gmp_trace_common::{counter, Event, EventKind, Offsets};

/// Go struct offsets and the target pid, written by the loader before the programs load.
#[no_mangle]
static OFFSETS: Offsets = Offsets {
    g_goid: 0,
    g_atomicstatus: 0,
    g_m: 0,
    g_waitreason: 0,
    g_startpc: 0,
    g_gopc: 0,
    m_procid: 0,
    m_curg: 0,
    m_p: 0,
    m_id: 0,
    p_id: 0,
    target_pid: 0,
};

/// Resized by the loader (`--buffer-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Failure counters, indexed by `gmp_trace_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[inline(always)]
fn offsets() -> Offsets {
    // SAFETY: OFFSETS is a plain global in .rodata; the volatile read stops the compiler from
    // constant-folding the zeros above instead of the values the loader wrote.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: the pointer comes from the map lookup and is valid for this CPU's slot; per-CPU
        // values are not shared, so a plain increment does not race.
        unsafe { *p += 1 };
    }
}

/// Reads a `T` at `base + off` in the traced process; counts and returns None on failure.
#[inline(always)]
fn read<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_user copies from user memory with fault handling; a bad address
    // only makes it return an error.
    match unsafe { bpf_probe_read_user((base + off as u64) as *const T) } {
        Ok(v) => Some(v),
        Err(_) => {
            bump(counter::READ_FAILED);
            None
        }
    }
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &aya_ebpf::bindings::pt_regs {
    // SAFETY: for uprobe programs the context is the trapped task's pt_regs, valid for the
    // whole program run.
    unsafe { &*ctx.regs }
}

/// Fills the parts every event shares: time, thread, and the M and P of the current g (R14).
/// Returns None when the event is for another process.
#[inline(always)]
fn base_event(ctx: &ProbeContext, kind: EventKind, o: &Offsets) -> Option<Event> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if o.target_pid != 0 && tgid != o.target_pid {
        return None;
    }
    let mut e = Event {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        kind: kind as u32,
        tid: pid_tgid as u32,
        pid: tgid,
        p: -1,
        goid: 0,
        m: -1,
        arg0: 0,
        arg1: 0,
        arg2: 0,
    };
    let g = regs(ctx).r14;
    if let Some(m) = read::<u64>(g, o.g_m) {
        if m != 0 {
            e.m = read::<i64>(m, o.m_id).unwrap_or(-1);
            if let Some(p) = read::<u64>(m, o.m_p) {
                if p != 0 {
                    e.p = read::<i32>(p, o.p_id).unwrap_or(-1);
                }
            }
        }
    }
    Some(e)
}

#[inline(always)]
fn emit(e: &Event) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            slot.write(*e);
            slot.submit(0);
        }
        None => bump(counter::RINGBUF_FULL),
    }
}

/// The goid of the g in R14 (the goroutine running the probed code).
#[inline(always)]
fn current_goid(ctx: &ProbeContext, o: &Offsets) -> u64 {
    read::<u64>(regs(ctx).r14, o.g_goid).unwrap_or(0)
}

/// runtime.newproc(fn *funcval): on the creating goroutine.
#[uprobe]
pub fn newproc(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::NewProc, &o) {
        e.goid = current_goid(&ctx, &o);
        e.arg0 = read::<u64>(regs(&ctx).rax, 0).unwrap_or(0);
        emit(&e);
    }
    0
}

/// A RET of runtime.newproc1: RAX holds the new g. Runs on g0, so the creator is m.curg.
#[uprobe]
pub fn newproc1_ret(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::GoCreate, &o) {
        let newg = regs(&ctx).rax;
        e.goid = read::<u64>(newg, o.g_goid).unwrap_or(0);
        let m = read::<u64>(regs(&ctx).r14, o.g_m).unwrap_or(0);
        let curg = read::<u64>(m, o.m_curg).unwrap_or(0);
        e.arg0 = if curg != 0 {
            read::<u64>(curg, o.g_goid).unwrap_or(0)
        } else {
            0
        };
        e.arg1 = read::<u64>(newg, o.g_startpc).unwrap_or(0);
        e.arg2 = read::<u64>(newg, o.g_gopc).unwrap_or(0);
        emit(&e);
    }
    0
}

/// runtime.mstart1: the first Go code a new M runs, on its g0.
#[uprobe]
pub fn mstart(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::MStart, &o) {
        let m = read::<u64>(regs(&ctx).r14, o.g_m).unwrap_or(0);
        e.arg0 = read::<u64>(m, o.m_procid).unwrap_or(0);
        emit(&e);
    }
    0
}

/// runtime.schedule: the M (on g0) looks for a goroutine to run.
#[uprobe]
pub fn schedule(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::Schedule, &o) {
        emit(&e);
    }
    0
}

/// runtime.execute(gp, inheritTime): gp starts running on this M and P.
#[uprobe]
pub fn execute(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::Execute, &o) {
        e.goid = read::<u64>(regs(&ctx).rax, o.g_goid).unwrap_or(0);
        e.arg0 = regs(&ctx).rbx & 0xff;
        emit(&e);
    }
    0
}

/// runtime.goexit1: the goroutine in R14 is finishing.
#[uprobe]
pub fn goexit1(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::GoExit, &o) {
        e.goid = current_goid(&ctx, &o);
        emit(&e);
    }
    0
}

/// runtime.casgstatus(gp, oldval, newval uint32).
#[uprobe]
pub fn casgstatus(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::GoStatus, &o) {
        let r = regs(&ctx);
        let gp = r.rax;
        e.goid = read::<u64>(gp, o.g_goid).unwrap_or(0);
        e.arg0 = r.rbx & 0xffff_ffff;
        e.arg1 = r.rcx & 0xffff_ffff;
        e.arg2 = read::<u8>(gp, o.g_waitreason).unwrap_or(0) as u64;
        emit(&e);
    }
    0
}

/// runtime.acquirep(pp): the M takes P pp (m.p is not set yet, so read pp.id).
#[uprobe]
pub fn acquirep(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::AcquireP, &o) {
        let pid = read::<i32>(regs(&ctx).rax, o.p_id).unwrap_or(-1);
        e.p = pid;
        e.arg0 = pid as i64 as u64;
        e.goid = current_goid(&ctx, &o);
        emit(&e);
    }
    0
}

/// runtime.releasep(): the M gives up m.p (still set at entry).
#[uprobe]
pub fn releasep(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::ReleaseP, &o) {
        e.goid = current_goid(&ctx, &o);
        emit(&e);
    }
    0
}

/// runtime.main: the main goroutine (g1) begins.
#[uprobe]
pub fn runtime_main(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event(&ctx, EventKind::RuntimeMain, &o) {
        e.goid = current_goid(&ctx, &o);
        emit(&e);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
