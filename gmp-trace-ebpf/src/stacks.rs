//! `--stacks`: the user stack of an event, walked by frame pointers (Go on amd64 keeps them)
//! from where the goroutine stopped, deduplicated by a hash of its PCs, and sent as a `Stack`
//! record right before the event (with its PCs in `StackPcs` pieces the first time that hash
//! is seen). Events stay 64 bytes; a stack seen before costs one 64-byte record.
//!
//! Where the walk starts depends on the probe's context, not on its registers alone: a probe on
//! g0 (park_m after mcall, ready inside systemstack, newproc1) describes a goroutine that is not
//! running, whose context `mcall`/`systemstack` saved in its `g.sched`; a probe on the
//! goroutine's own stack (entersyscall) walks from the registers. bpf_get_stack walks the
//! registers only, which on g0 is the scheduler's stack, hence this walk.
use aya_ebpf::bindings::pt_regs;
use gmp_trace_common::{Event, EventKind, Offsets, NO_FIELD, STACK_MAX_FRAMES, STACK_PCS_CHUNK};

use crate::{
    emit::{emit, emit_checked},
    maps::{SEEN_STACKS, STACKS, STACK_PCS, STACK_WINDOW},
    read::{fetch, read, Block},
};

/// Words of stack one read brings ([`STACK_WINDOW`]).
pub(crate) const WINDOW_WORDS: usize = 64;
const WINDOW_BYTES: u64 = WINDOW_WORDS as u64 * 8;

/// Whether `--stacks` is on.
#[inline(always)]
pub(crate) fn enabled() -> bool {
    // SAFETY: a plain global in .rodata; volatile for the same reason as OFFSETS.
    unsafe { core::ptr::read_volatile(&STACKS) != 0 }
}

/// Where a walk starts: the innermost pc, the frame pointer of the frame it returns into, and
/// the goroutine's stack bounds (every frame pointer must lie inside them).
#[derive(Clone, Copy)]
pub(crate) struct Start {
    pc: u64,
    bp: u64,
    lo: u64,
    hi: u64,
}

/// A goroutine stopped by mcall (park_m, gosched_m: `sched.pc` is the return address into
/// gopark/gosched, `sched.bp` that caller's frame pointer) or by systemstack (`sched.pc` is
/// systemstack_switch, `sched.bp` the frame pointer of systemstack's caller, which the daemon
/// drops as Go's tracebacks do).
#[inline(always)]
pub(crate) fn from_sched(g: u64, o: &Offsets) -> Option<Start> {
    if g == 0 || o.g_stack == NO_FIELD || o.g_sched_pc == NO_FIELD || o.g_sched_bp == NO_FIELD {
        return None;
    }
    let start = o.g_stack.min(o.g_sched_pc) & !7;
    let end = o.g_sched_bp.max(o.g_sched_pc).max(o.g_stack + 8) + 8;
    let mut buf = core::mem::MaybeUninit::<Block>::uninit();
    let (pc, bp, lo, hi) = match fetch(&mut buf, g, start, end - start) {
        Some(w) => (
            w.field(o.g_sched_pc, 8)?,
            w.field(o.g_sched_bp, 8)?,
            w.field(o.g_stack, 8)?,
            w.field(o.g_stack + 8, 8)?,
        ),
        None => {
            let [lo, hi] = read::<[u64; 2]>(g, o.g_stack)?;
            (
                read::<u64>(g, o.g_sched_pc)?,
                read::<u64>(g, o.g_sched_bp)?,
                lo,
                hi,
            )
        }
    };
    Some(Start { pc, bp, lo, hi })
}

/// The goroutine `g` (R14) at a probe on its own stack, placed before the function pushes its
/// frame pointer (the registry's Body and Entry sites): the return address is at RSP and RBP
/// is still the caller's frame pointer.
#[inline(always)]
pub(crate) fn from_regs(r: &pt_regs, g: u64, o: &Offsets) -> Option<Start> {
    if g == 0 || o.g_stack == NO_FIELD {
        return None;
    }
    let [lo, hi] = read::<[u64; 2]>(g, o.g_stack)?;
    let pc = read::<u64>(r.rsp, 0)?;
    Some(Start {
        pc,
        bp: r.rbp,
        lo,
        hi,
    })
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Walks the stack from `s`, then sends it before the event `e` (which the caller emits right
/// after): a `Stack` record with its id, preceded by its PCs the first time. `whose` is the
/// goroutine the stack belongs to. Not inlined: the probes stay small, and its frame (two
/// events, the walk) is not added to theirs.
#[inline(never)]
pub(crate) fn send(e: &Event, whose: u64, s: &Start) {
    let (Some(buf), Some(win)) = (STACK_PCS.get_ptr_mut(0), STACK_WINDOW.get_ptr_mut(0)) else {
        return;
    };
    // SAFETY: this CPU's slots from the lookups; per-CPU values are not shared, and a probe
    // runs to completion before another one on this CPU.
    let (pcs, win) = unsafe { (&mut *buf, &mut *win) };
    let (n, id) = walk(pcs, win, s);
    // SAFETY: the value is only tested for presence.
    let seen = unsafe { SEEN_STACKS.get(&id) }.is_some();
    if !seen && send_pcs(e, pcs, n, id) {
        let _ = SEEN_STACKS.insert(&id, &0, 0);
    }
    emit(&Event {
        ts: e.ts,
        kind: EventKind::Stack as u32,
        tid: e.tid,
        pid: e.pid,
        p: e.p,
        goid: id,
        m: e.m,
        arg0: u64::from(e.kind),
        arg1: n as u64,
        arg2: whose,
    });
}

/// Fills `pcs` (innermost first) and returns how many frames and their hash (never 0). Stops
/// at a frame pointer outside the stack, not above the previous one, or a zero return address.
/// The stack is read a window at a time (from a frame up to [`WINDOW_BYTES`], never past the
/// stack's top), and read again only when a frame lies beyond it.
#[inline(always)]
fn walk(
    pcs: &mut [u64; STACK_MAX_FRAMES],
    win: &mut [u64; WINDOW_WORDS],
    s: &Start,
) -> (usize, u64) {
    pcs[0] = s.pc;
    let mut h = (FNV_OFFSET ^ s.pc).wrapping_mul(FNV_PRIME);
    let mut n = 1;
    let mut bp = s.bp;
    let (mut at, mut len) = (0u64, 0u64);
    for i in 1..STACK_MAX_FRAMES {
        if bp < s.lo || bp.wrapping_add(16) > s.hi || bp & 7 != 0 {
            break;
        }
        if bp < at || bp + 16 > at + len {
            let want = (s.hi - bp).min(WINDOW_BYTES);
            if !read_window(win, bp, want) {
                break;
            }
            (at, len) = (bp, want);
        }
        // Both words lie in the window (checked above); each index is masked on its own so the
        // verifier sees it in bounds (a shared base plus 8 loses that).
        let k = ((bp - at) / 8) as usize;
        let mask = WINDOW_WORDS - 1;
        // SAFETY: masked indexes of a WINDOW_WORDS array.
        let (next, ret) = unsafe {
            (
                *win.as_ptr().add(k & mask),
                *win.as_ptr().add((k + 1) & mask),
            )
        };
        if ret == 0 {
            break;
        }
        if let Some(slot) = pcs.get_mut(i) {
            *slot = ret;
        }
        n = i + 1;
        h = (h ^ ret).wrapping_mul(FNV_PRIME);
        if next <= bp {
            break;
        }
        bp = next;
    }
    (n, h | 1)
}

/// Reads `len` (16..=[`WINDOW_BYTES`]) bytes of user stack at `addr` into `win`.
#[inline(always)]
fn read_window(win: &mut [u64; WINDOW_WORDS], addr: u64, len: u64) -> bool {
    let len = len as u32;
    if !(16..=WINDOW_BYTES as u32).contains(&len) {
        return false;
    }
    // SAFETY: `win` has room for WINDOW_BYTES >= len bytes; a bad user address only makes the
    // helper fail.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            win.as_mut_ptr().cast(),
            len,
            addr as *const core::ffi::c_void,
        )
    };
    if rc != 0 {
        crate::maps::bump(gmp_trace_common::counter::READ_FAILED);
    }
    rc == 0
}

/// The first `n` PCs of `pcs` as `StackPcs` pieces; true when every piece went out.
#[inline(always)]
fn send_pcs(e: &Event, pcs: &[u64; STACK_MAX_FRAMES], n: usize, id: u64) -> bool {
    let pc = |i: usize| {
        if i < n {
            pcs.get(i).copied().unwrap_or(0)
        } else {
            0
        }
    };
    let mut ok = true;
    for k in 0..STACK_MAX_FRAMES / STACK_PCS_CHUNK {
        let at = k * STACK_PCS_CHUNK;
        if at >= n {
            break;
        }
        ok &= emit_checked(&Event {
            ts: e.ts,
            kind: EventKind::StackPcs as u32,
            tid: e.tid,
            pid: e.pid,
            p: ((n << 8) | at) as i32,
            goid: id,
            m: pc(at) as i64,
            arg0: pc(at + 1),
            arg1: pc(at + 2),
            arg2: pc(at + 3),
        });
    }
    ok
}
