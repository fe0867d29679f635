//! The CPU sampler: a perf-event program on every CPU's software clock. It keeps only the target
//! process's samples and records, for each, the goroutine, M and P the thread was running (read
//! through the thread's TLS g, valid in any code, ABI0 or not) and, when the clock interrupted
//! user mode, the user registers and a copy of the top of the user stack, which the daemon
//! unwinds by `.gopclntab` (frame pointers do not survive frameless leaves); when it interrupted
//! the kernel (a system call, a fault), the user registers the thread entered the kernel with,
//! and the stack from there. No trap in the target: the timer interrupt it already takes is
//! where this runs.
use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel, generated,
    },
    programs::PerfEventContext,
};
use gmp_trace_common::{
    sample::{flags, stat, Sample, SampleHeader, SAMPLE_CURG_STACK, SAMPLE_STACK},
    Offsets, NO_FIELD,
};

use crate::{
    maps::{offsets, SAMPLES, SAMPLE_STATS},
    read::{read, tls_g},
};

const PAGE: u64 = 4096;
const BPF_RB_NO_WAKEUP: u64 = 1;

#[inline(always)]
fn count(idx: u32) {
    if let Some(p) = SAMPLE_STATS.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot from the lookup; per-CPU values are not shared.
        unsafe { *p += 1 };
    }
}

/// `syscall_regs`: for a sample in the kernel, take the user registers the thread entered it
/// with (`bpf_task_pt_regs`, kernel 5.15+ with BTF) and copy the user stack from them, so a
/// system call is charged to the Go code that made it; without, such a sample has no stack.
#[inline(always)]
pub(crate) fn on_sample(ctx: PerfEventContext, syscall_regs: bool) -> u32 {
    let o = offsets();
    let pid_tgid = bpf_get_current_pid_tgid();
    if o.target_pid == 0 || (pid_tgid >> 32) as u32 != o.target_pid {
        return 0;
    }
    let Some(mut slot) = SAMPLES.reserve::<Sample>(0) else {
        count(stat::DROPPED);
        return 0;
    };
    let rec = slot.as_mut_ptr();
    let mut h = goroutine(o);
    // SAFETY: no preconditions.
    h.ts = unsafe { bpf_ktime_get_ns() };
    h.tid = pid_tgid as u32;
    h.pid = (pid_tgid >> 32) as u32;
    // SAFETY: no preconditions.
    h.cpu = unsafe { bpf_get_smp_processor_id() };
    // SAFETY: a perf-event program's context is the kernel's bpf_perf_event_data, whose first
    // member is the interrupted context's pt_regs; the verifier allows these loads.
    let regs = unsafe { &(*ctx.ctx).regs };
    // x86: the privilege level in CS's low bits is 3 in user mode (the kernel's user_mode()).
    let user = if regs.cs & 3 == 3 {
        Some((regs.rip, regs.rsp, regs.rbp))
    } else {
        h.flags |= flags::IN_KERNEL;
        if syscall_regs {
            entry_regs()
        } else {
            None
        }
    };
    if let Some((pc, sp, bp)) = user {
        (h.pc, h.sp, h.bp) = (pc, sp, bp);
        // SAFETY: `rec` is the reserved record, ours until submit; `stack` is inside it.
        let dst = unsafe { core::ptr::addr_of_mut!((*rec).stack) }.cast::<u8>();
        h.stack_len = copy_stack(dst, &mut h);
    }
    if h.curg_sp != 0 {
        // SAFETY: as above; `curg_stack` is inside the record too.
        let dst = unsafe { core::ptr::addr_of_mut!((*rec).curg_stack) }.cast::<u8>();
        h.curg_stack_len = copy_curg_stack(dst, &h);
    }
    // Word by word into the record (a struct copy may become a memset/memcpy subprogram).
    let src = (&h as *const SampleHeader).cast::<u64>();
    let dst = rec.cast::<u64>();
    for i in 0..HEADER_WORDS {
        // SAFETY: both hold a SampleHeader (HEADER_WORDS words, 8-aligned) at their start.
        unsafe { core::ptr::write_volatile(dst.add(i), src.add(i).read()) };
    }
    slot.submit(BPF_RB_NO_WAKEUP);
    count(stat::TAKEN);
    0
}

/// The user registers the current thread entered the kernel with (the pt_regs at the top of
/// its kernel stack): RIP, RSP, RBP, when they are user mode's.
#[inline(always)]
fn entry_regs() -> Option<(u64, u64, u64)> {
    // SAFETY: no preconditions; the verifier types the result as the current task.
    let task = unsafe { generated::bpf_get_current_task_btf() };
    // SAFETY: `task` is the current task as the helper requires; the result is a kernel
    // address only read through bpf_probe_read_kernel below.
    let regs = unsafe { generated::bpf_task_pt_regs(task) } as *const pt_regs;
    if regs.is_null() {
        return None;
    }
    // SAFETY (each read): a kernel address; a bad one only makes the helper fail.
    let word = |p: *const u64| unsafe { bpf_probe_read_kernel(p) }.ok();
    // SAFETY: field addresses inside `regs`, computed without reading through it.
    let (cs, ip, sp, bp) = unsafe {
        (
            core::ptr::addr_of!((*regs).cs),
            core::ptr::addr_of!((*regs).rip),
            core::ptr::addr_of!((*regs).rsp),
            core::ptr::addr_of!((*regs).rbp),
        )
    };
    if word(cs)? & 3 != 3 {
        return None;
    }
    Some((word(ip)?, word(sp)?, word(bp)?))
}

const HEADER_WORDS: usize = core::mem::size_of::<SampleHeader>() / 8;
const _: () = assert!(core::mem::size_of::<SampleHeader>() == HEADER_WORDS * 8);

/// The TLS g, its M and P, and the goroutine to charge: the g itself, or on g0 the M's curg
/// (a `systemstack` call works for it; none in the scheduler's own loop).
#[inline(always)]
fn goroutine(o: &Offsets) -> SampleHeader {
    let mut h = SampleHeader {
        m: -1,
        p: -1,
        ..SampleHeader::default()
    };
    let g = tls_g(o);
    h.g = g;
    if g == 0 {
        h.flags |= flags::NO_G;
        return h;
    }
    if o.g_stack != NO_FIELD {
        if let Some([lo, hi]) = read::<[u64; 2]>(g, o.g_stack) {
            (h.stack_lo, h.stack_hi) = (lo, hi);
        }
    }
    let mut charged = g;
    let m = read::<u64>(g, o.g_m).unwrap_or(0);
    if m != 0 {
        h.m = read::<i64>(m, o.m_id).unwrap_or(-1);
        let pp = read::<u64>(m, o.m_p).unwrap_or(0);
        if pp != 0 {
            h.p = read::<i32>(pp, o.p_id).unwrap_or(-1);
        }
        if o.m_g0 != NO_FIELD && read::<u64>(m, o.m_g0) == Some(g) {
            h.flags |= flags::ON_G0;
            charged = read::<u64>(m, o.m_curg).unwrap_or(0);
        }
    }
    if charged != 0 {
        h.goid = read::<u64>(charged, o.g_goid).unwrap_or(0);
        h.start_pc = read::<u64>(charged, o.g_startpc).unwrap_or(0);
        if h.flags & flags::ON_G0 != 0 {
            curg_context(o, charged, &mut h);
        }
    }
    h
}

/// The saved context and stack bounds of `curg`, the goroutine an M on g0 works for: where a
/// `systemstack` call left it (the daemon uses them only when the g0 stack ends in one).
#[inline(always)]
fn curg_context(o: &Offsets, curg: u64, h: &mut SampleHeader) {
    if o.g_sched_sp == NO_FIELD || o.g_sched_pc == NO_FIELD || o.g_stack == NO_FIELD {
        return;
    }
    let (Some(sp), Some(pc), Some([lo, hi])) = (
        read::<u64>(curg, o.g_sched_sp),
        read::<u64>(curg, o.g_sched_pc),
        read::<[u64; 2]>(curg, o.g_stack),
    ) else {
        return;
    };
    if lo <= sp && sp < hi && pc != 0 {
        (h.curg_pc, h.curg_sp, h.curg_lo, h.curg_hi) = (pc, sp, lo, hi);
    }
}

/// Copies the current goroutine's stack from its saved SP (inside its bounds, checked by
/// [`curg_context`]) into `dst` (room for [`SAMPLE_CURG_STACK`] bytes); returns the bytes.
#[inline(always)]
fn copy_curg_stack(dst: *mut u8, h: &SampleHeader) -> u32 {
    let mut len = SAMPLE_CURG_STACK as u64;
    if h.curg_hi - h.curg_sp < len {
        len = h.curg_hi - h.curg_sp;
    }
    let len = len as u32;
    if len == 0 || len > SAMPLE_CURG_STACK as u32 {
        return 0;
    }
    // SAFETY: `dst` has room for SAMPLE_CURG_STACK >= len bytes (checked above); a bad user
    // address only makes the helper fail.
    let rc = unsafe {
        generated::bpf_probe_read_user(dst.cast(), len, h.curg_sp as *const core::ffi::c_void)
    };
    if rc == 0 {
        len
    } else {
        0
    }
}

/// Copies the user stack from `h.sp` into `dst` (room for [`SAMPLE_STACK`] bytes): up to the
/// g's stack top when SP is inside it, else a full copy; if that faults (the mapping ends
/// sooner), what is left of SP's page. Returns the bytes copied.
#[inline(always)]
fn copy_stack(dst: *mut u8, h: &mut SampleHeader) -> u32 {
    let sp = h.sp;
    let mut len = SAMPLE_STACK as u64;
    if h.stack_lo <= sp && sp < h.stack_hi && h.stack_hi - sp < len {
        len = h.stack_hi - sp;
    }
    if try_copy(dst, sp, len) {
        return len as u32;
    }
    let page_rest = PAGE - (sp & (PAGE - 1));
    if page_rest < len && try_copy(dst, sp, page_rest) {
        h.flags |= flags::COPY_SHORT;
        return page_rest as u32;
    }
    h.flags |= flags::COPY_SHORT;
    0
}

#[inline(always)]
fn try_copy(dst: *mut u8, src: u64, len: u64) -> bool {
    // Bounds the verifier can see: the helper writes `len` bytes into the record's stack area.
    let len = len as u32;
    if len == 0 || len > SAMPLE_STACK as u32 {
        return false;
    }
    // SAFETY: `dst` has room for SAMPLE_STACK >= len bytes (checked above); a bad user address
    // only makes the helper fail.
    unsafe { generated::bpf_probe_read_user(dst.cast(), len, src as *const core::ffi::c_void) == 0 }
}
