//! Reading the traced process and the trapped registers: one typed read at an offset, block
//! reads of a struct's hot window (with field extraction), the current g from TLS for ABI0
//! code, and a return value wherever the attach cookie says it is. Every failed read is counted
//! (`counter::READ_FAILED`), never fatal.
use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel,
        generated::{self as gen, bpf_get_attach_cookie, bpf_get_current_task},
    },
    programs::ProbeContext,
    EbpfContext as _,
};
use gmp_trace_common::{counter, result_loc, Offsets, BLOCK, NO_BLOCK};

use crate::maps::bump;

/// Reads a `T` at `base + off` in the traced process, straight into its place (returned by
/// value from the helper, a block was moved byte by byte: ~250 instructions per block, more
/// than the read itself); counts and returns None on failure.
#[inline(always)]
pub(crate) fn read<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the helper writes size_of::<T>() bytes into `v` (the destination may be
    // uninitialized) or fails; a bad source address only makes it return an error.
    let ret = unsafe {
        gen::bpf_probe_read_user(
            v.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            (base + off as u64) as *const core::ffi::c_void,
        )
    };
    if ret != 0 {
        bump(counter::READ_FAILED);
        return None;
    }
    // SAFETY: the helper succeeded, so every byte of `v` was written; T is plain data.
    Some(unsafe { v.assume_init() })
}

#[inline(always)]
pub(crate) fn regs(ctx: &ProbeContext) -> &aya_ebpf::bindings::pt_regs {
    // SAFETY: for uprobe programs the context is the trapped task's pt_regs, valid for the
    // whole program run.
    unsafe { &*ctx.regs }
}

/// Room for a block read: [`BLOCK`] bytes as words, so fields come out with one 8-byte load
/// and a shift.
pub(crate) type Block = [u64; (BLOCK / 8) as usize];

/// The words a block read fetched: the first `len` bytes of `buf`, from `start` in the struct.
pub(crate) struct Words<'a> {
    buf: &'a core::mem::MaybeUninit<Block>,
    start: u32,
    len: u32,
}

/// Reads `len` bytes (a window of [`Offsets::plan_blocks`]) at `addr + start` into `buf`; None
/// for [`NO_BLOCK`] (without counting a failure) or when the read fails (counted). Only the
/// window's bytes are read: every cache line costs, and the runtime writes these structs on
/// other CPUs all the time.
#[inline(always)]
pub(crate) fn fetch(
    buf: &mut core::mem::MaybeUninit<Block>,
    addr: u64,
    start: u32,
    len: u32,
) -> Option<Words<'_>> {
    if start == NO_BLOCK || len == 0 || len > BLOCK || addr == 0 {
        return None;
    }
    // SAFETY: the helper writes at most `len` <= size_of::<Block>() bytes into `buf` or fails; a
    // bad source address only makes it return an error.
    let ret = unsafe {
        gen::bpf_probe_read_user(
            buf.as_mut_ptr().cast(),
            len,
            (addr + start as u64) as *const core::ffi::c_void,
        )
    };
    if ret != 0 {
        bump(counter::READ_FAILED);
        return None;
    }
    Some(Words { buf, start, len })
}

impl Words<'_> {
    /// The `size`-byte field at `off` (8-aligned window, see [`Offsets::plan_blocks`]; Go
    /// aligns fields to their size, so none straddles two words); None outside the window.
    #[inline(always)]
    pub(crate) fn field(&self, off: u32, size: u32) -> Option<u64> {
        let rel = off.wrapping_sub(self.start);
        let (idx, shift) = (rel / 8, rel % 8);
        if idx >= self.len / 8 || shift + size > 8 {
            return None;
        }
        // SAFETY: word `idx` lies inside the first `len` bytes, which the read wrote.
        let w = unsafe { self.buf.as_ptr().cast::<u64>().add(idx as usize).read() } >> (shift * 8);
        Some(if size >= 8 {
            w
        } else {
            w & ((1u64 << (size * 8)) - 1)
        })
    }
}

/// The current g from the thread's TLS slot (fs base + `tls_g`), for assembly (ABI0) code where
/// R14 is not g. The fs base is not in pt_regs: it is read from the task (`thread.fsbase`, at
/// the offset the loader found in the kernel's BTF). 0 when either offset is unknown.
#[inline(always)]
pub(crate) fn tls_g(o: &Offsets) -> u64 {
    if o.task_fsbase == 0 || o.tls_g == 0 {
        return 0;
    }
    // SAFETY: bpf_get_current_task has no preconditions; the task pointer is only read through
    // bpf_probe_read_kernel, which handles faults.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: as above: a bad address makes the helper fail, nothing else.
    let fsbase = match unsafe { bpf_probe_read_kernel((task + o.task_fsbase as u64) as *const u64) }
    {
        Ok(v) => v,
        Err(_) => {
            bump(counter::READ_FAILED);
            return 0;
        }
    };
    if fsbase == 0 {
        return 0;
    }
    read::<u64>(fsbase.wrapping_add(o.tls_g as i64 as u64), 0).unwrap_or(0)
}

/// A function's result where a return-watching probe sits: on a RET it is RAX; in a caller
/// after the call, wherever the cookie says the caller has moved it (see
/// `gmp_trace_common::result_loc`).
#[inline(always)]
pub(crate) fn result(ctx: &ProbeContext) -> u64 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let c = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let r = regs(ctx);
    if c & result_loc::STACK != 0 {
        return read::<u64>(r.rsp, c as u32).unwrap_or(0);
    }
    match c {
        1 => r.rbx,
        2 => r.rcx,
        3 => r.rdx,
        4 => r.rsi,
        5 => r.rdi,
        6 => r.r8,
        7 => r.r9,
        8 => r.r10,
        9 => r.r11,
        10 => r.r12,
        11 => r.r13,
        12 => r.r14,
        13 => r.r15,
        _ => r.rax,
    }
}
