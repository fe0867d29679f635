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
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{self as gen, bpf_get_attach_cookie, bpf_get_current_task},
    },
    macros::{map, raw_tracepoint, uprobe},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RawTracePointContext},
    EbpfContext as _,
};
use gmp_trace_common::{
    agg, counter, gstatus, phase, result_loc, Event, EventKind, Offsets, BLOCK, NO_BLOCK,
};

/// Go struct offsets and the target pid, written by the loader before the programs load.
#[no_mangle]
static OFFSETS: Offsets = Offsets::UNKNOWN;

/// Resized by the loader (`--buffer-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Non-zero in aggregate mode (`--aggregate`, set by the loader): the frequent events update
/// the `AGG_*` maps instead of going to the ring buffer.
#[no_mangle]
static AGGREGATE: u32 = 0;

/// Aggregate mode: events per kind.
#[map]
static AGG_KINDS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::KINDS, 0);

/// Aggregate mode: casgstatus changes by (old, new) status.
#[map]
static AGG_STATUS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::STATUS, 0);

/// Aggregate mode: changes to _Gwaiting by wait reason.
#[map]
static AGG_WAIT: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::WAIT, 0);

/// Aggregate mode: the Runnable -> Running latency histogram (buckets, sum, max).
#[map]
static AGG_LATENCY: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::LAT_SLOTS, 0);

/// Aggregate mode: when each runnable goroutine became runnable, by goid. LRU: a goroutine
/// that never runs again is evicted instead of filling the map.
#[map]
static RUNNABLE_SINCE: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1 << 16, 0);

/// Failure counters, indexed by `gmp_trace_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// What this CPU last learned about the thread on it, so the next probe on that thread's g0
/// (where most scheduler events fire) needs no read of g: an M's g0 and thread belong to it for
/// life. `check` catches a slot torn by a probe preempted while writing it.
#[repr(C)]
#[derive(Clone, Copy)]
struct ThreadCache {
    /// The thread's ids as bpf_get_current_pid_tgid gives them.
    pid_tgid: u64,
    gen: u64,
    g0: u64,
    m: u64,
    /// m.id, fixed for the M's life.
    m_id: u64,
    check: u64,
}

impl ThreadCache {
    #[inline(always)]
    fn sum(pid_tgid: u64, gen: u64, g0: u64, m: u64, m_id: u64) -> u64 {
        pid_tgid ^ gen ^ g0 ^ m ^ m_id.rotate_left(32) ^ 0x6a09_e667_f3bc_c908
    }

    /// No entry: `g0` 0 never matches a g.
    const NONE: ThreadCache = ThreadCache {
        pid_tgid: 0,
        gen: 0,
        g0: 0,
        m: 0,
        m_id: 0,
        check: 0,
    };
}

/// This CPU's entry for this thread on its g0 `g`, if it holds one from the current generation
/// ([`ThreadCache::NONE`] otherwise). The thread is part of the key, not just the g0: a cgo
/// extra M (and its g0) serves whichever C thread calls into Go next, without an mstart.
#[inline(always)]
fn known_thread(g: u64, pid_tgid: u64) -> ThreadCache {
    let Some(c) = CUR_THREAD.get_ptr(0) else {
        return ThreadCache::NONE;
    };
    // SAFETY: this CPU's slot from the lookup, valid for the program run; a torn copy fails
    // `check`.
    let c = unsafe { *c };
    let gen = generation(GEN_THREADS);
    if g != 0
        && c.g0 == g
        && c.pid_tgid == pid_tgid
        && c.gen == gen
        && c.check == ThreadCache::sum(c.pid_tgid, gen, g, c.m, c.m_id)
    {
        c
    } else {
        ThreadCache::NONE
    }
}

/// The P this CPU last saw (pointer and id): an M keeps its P across many events, and reading
/// p.id is a user-memory read. Invalidated with `gen` at procresize (the only place Ps are
/// made or destroyed, called at every start-the-world).
#[repr(C)]
#[derive(Clone, Copy)]
struct PCache {
    gen: u64,
    p: u64,
    id: u64,
    check: u64,
}

#[map]
static CUR_THREAD: PerCpuArray<ThreadCache> = PerCpuArray::with_max_entries(1, 0);

#[map]
static CUR_P: PerCpuArray<PCache> = PerCpuArray::with_max_entries(1, 0);

/// Cache generations: [`GEN_THREADS`] moves at every new M (mstart1), [`GEN_PS`] at every
/// procresize; a cached entry from an older generation is not used.
#[map]
static GENERATION: Array<u64> = Array::with_max_entries(2, 0);
const GEN_THREADS: u32 = 0;
const GEN_PS: u32 = 1;

#[inline(always)]
fn generation(which: u32) -> u64 {
    // SAFETY: array element pointers stay valid for the program run; a racing increment at
    // worst yields the old value, which only costs a miss later.
    GENERATION
        .get(which)
        .map_or(0, |v| unsafe { core::ptr::read_volatile(v) })
}

#[inline(always)]
fn bump_generation(which: u32) {
    if let Some(p) = GENERATION.get_ptr_mut(which) {
        // SAFETY: the pointer comes from the lookup. Not atomic: two CPUs racing here may both
        // store the same new value, which still moves the generation, all that is needed.
        unsafe { core::ptr::write_volatile(p, core::ptr::read_volatile(p).wrapping_add(1)) };
    }
}

/// goids by g pointer, so probes about a goroutine they did not just read (casgstatus's gp
/// and its unblocker, newproc1's creator) need no read of it: a goid changes only when a dead g
/// is reused, and every way out of _Gdead passes casgstatus, which drops the entry (newproc1
/// assigns the new goid after that change; its return probe then stores it). Direct-mapped;
/// `check` rejects a slot torn by two CPUs writing it at once.
#[repr(C)]
#[derive(Clone, Copy)]
struct GoidSlot {
    g: u64,
    goid: u64,
    check: u64,
}

const GOID_SLOTS: u32 = 4096;

#[map]
static GOIDS: Array<GoidSlot> = Array::with_max_entries(GOID_SLOTS, 0);

#[inline(always)]
fn goid_slot(g: u64) -> u32 {
    // g structs are a few hundred bytes apart: skip the low bits that barely vary.
    ((g >> 6) ^ (g >> 18)) as u32 & (GOID_SLOTS - 1)
}

#[inline(always)]
fn goid_check(g: u64, goid: u64) -> u64 {
    g ^ goid.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15
}

#[inline(always)]
fn remember_goid(g: u64, goid: u64) {
    if g == 0 {
        return;
    }
    if let Some(p) = GOIDS.get_ptr_mut(goid_slot(g)) {
        // SAFETY: the pointer comes from the lookup and stays valid for the program run; a
        // racing writer at worst leaves a slot whose check fails.
        unsafe {
            *p = GoidSlot {
                g,
                goid,
                check: goid_check(g, goid),
            }
        };
    }
}

#[inline(always)]
fn forget_goid(g: u64) {
    if let Some(p) = GOIDS.get_ptr_mut(goid_slot(g)) {
        // SAFETY: as in `remember_goid`.
        unsafe {
            if (*p).g == g {
                (*p).check = 0;
            }
        }
    }
}

/// g.goid, from the cache when it knows g, else read (and remembered).
#[inline(always)]
fn goid_of(g: u64, o: &Offsets) -> u64 {
    if g == 0 {
        return 0;
    }
    if let Some(p) = GOIDS.get_ptr(goid_slot(g)) {
        // SAFETY: as in `remember_goid`.
        let slot = unsafe { *p };
        if slot.g == g && slot.check == goid_check(g, slot.goid) {
            return slot.goid;
        }
    }
    match read::<u64>(g, o.g_goid) {
        Some(goid) => {
            remember_goid(g, goid);
            goid
        }
        None => 0,
    }
}

/// runqsteal's arguments, kept from its entry for its RETs (where the registers are gone: Go
/// has no callee-saved registers), keyed by thread id.
#[repr(C)]
#[derive(Clone, Copy)]
struct StealArgs {
    /// The thief `pp` (to read its run queue tail again at the RET).
    pp: u64,
    /// pp.runqtail at entry.
    tail: u32,
    /// p2.id, the victim.
    victim: i32,
    /// stealRunNextG.
    runnext: u64,
}

/// At most one entry per thread inside runqsteal (so about GOMAXPROCS); removed at the RET.
#[map]
static STEAL_ARGS: HashMap<u32, StealArgs> = HashMap::with_max_entries(4096, 0);

#[inline(always)]
fn offsets() -> &'static Offsets {
    // SAFETY: OFFSETS is a plain global in .rodata. Its address goes through a volatile read so
    // the compiler can neither constant-fold the placeholder (Offsets::UNKNOWN) in place of the
    // values the loader wrote, nor load every field up front (a volatile read of the struct
    // did): each probe loads just the offsets it uses.
    unsafe { &*core::ptr::read_volatile(&(&OFFSETS as *const Offsets)) }
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: the pointer comes from the map lookup and is valid for this CPU's slot; per-CPU
        // values are not shared, so a plain increment does not race.
        unsafe { *p += 1 };
    }
}

/// Reads a `T` at `base + off` in the traced process, straight into its place (returned by
/// value from the helper, a block was moved byte by byte: ~250 instructions per block, more
/// than the read itself); counts and returns None on failure.
#[inline(always)]
fn read<T>(base: u64, off: u32) -> Option<T> {
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
fn regs(ctx: &ProbeContext) -> &aya_ebpf::bindings::pt_regs {
    // SAFETY: for uprobe programs the context is the trapped task's pt_regs, valid for the
    // whole program run.
    unsafe { &*ctx.regs }
}

/// Fills the parts every event shares: time, thread, and the M and P of the current g (R14).
/// Returns None when the event is for another process.
#[inline(always)]
fn base_event(ctx: &ProbeContext, kind: EventKind, o: &Offsets) -> Option<Event> {
    base_event_m(ctx, kind, o, NEED_P).map(|(e, _)| e)
}

/// [`base_event`] with `goid` set to the current goroutine's (0 on a g0).
#[inline(always)]
fn base_event_g(ctx: &ProbeContext, kind: EventKind, o: &Offsets) -> Option<Event> {
    base_event_m(ctx, kind, o, NEED_P).map(|(mut e, cur)| {
        e.goid = cur.goid(regs(ctx).r14, o);
        e
    })
}

/// What the base reads learned about the current g and its M, so probes that need more of it
/// do not read it again: every user read costs ~100 ns on the hot path.
///
/// Plain fields and flags rather than `Option`s: a `None` leaves its payload undefined, and
/// the verifier rejects the program when the compiler copies that undefined register.
#[derive(Clone, Copy)]
struct Cur {
    /// g.m, 0 when unreadable.
    m: u64,
    /// The current g's goid, valid when `have_goid` (the g block read brought it along).
    goid: u64,
    /// m.curg, valid when `have_curg`.
    curg: u64,
    /// m.spinning, valid when `have_spinning`.
    spinning: u8,
    have_goid: bool,
    have_curg: bool,
    have_spinning: bool,
}

impl Cur {
    /// Nothing read, and nothing to read later: every accessor gives 0.
    #[inline(always)]
    fn known_nothing() -> Cur {
        Cur {
            m: 0,
            goid: 0,
            curg: 0,
            spinning: 0,
            have_goid: true,
            have_curg: true,
            have_spinning: true,
        }
    }

    #[inline(always)]
    fn goid(&self, g: u64, o: &Offsets) -> u64 {
        if self.have_goid {
            self.goid
        } else {
            read::<u64>(g, o.g_goid).unwrap_or(0)
        }
    }

    #[inline(always)]
    fn curg(&self, o: &Offsets) -> u64 {
        if self.have_curg {
            self.curg
        } else {
            read::<u64>(self.m, o.m_curg).unwrap_or(0)
        }
    }

    #[inline(always)]
    fn spinning(&self, o: &Offsets) -> u8 {
        if self.have_spinning {
            self.spinning
        } else {
            read::<u8>(self.m, o.m_spinning).unwrap_or(0)
        }
    }
}

/// What a probe needs of its M besides id and P (the hot path on a known M reads only these):
/// nothing more, m.curg too, or also m.spinning.
const NEED_P: u8 = 0;
const NEED_CURG: u8 = 1;
const NEED_ALL: u8 = 2;

/// [`base_event`], also returning what it learned about the current g and M (at least what
/// `need` asks for; the rest is read on demand through [`Cur`]).
#[inline(always)]
fn base_event_m(
    ctx: &ProbeContext,
    kind: EventKind,
    o: &Offsets,
    need: u8,
) -> Option<(Event, Cur)> {
    let mut e = bare_event(kind, o)?;
    // Aggregate mode counts the frequent kinds without their M and P: skip those reads.
    let cur = if lean(kind) {
        Cur::known_nothing()
    } else {
        fill_m_p(&mut e, regs(ctx).r14, o, need)
    };
    Some((e, cur))
}

/// True for events that aggregate mode only counts (see [`aggregate`]): their probes read
/// just what the counters and the latency histogram need.
#[inline(always)]
fn lean(kind: EventKind) -> bool {
    // SAFETY: a plain global in .rodata; volatile for the same reason as OFFSETS.
    let on = unsafe { core::ptr::read_volatile(&AGGREGATE) };
    on != 0 && !agg::streamed(kind as u32)
}

/// Room for a block read: [`BLOCK`] bytes as words, so fields come out with one 8-byte load
/// and a shift.
type Block = [u64; (BLOCK / 8) as usize];

/// The words a block read fetched: the first `len` bytes of `buf`, from `start` in the struct.
struct Words<'a> {
    buf: &'a core::mem::MaybeUninit<Block>,
    start: u32,
    len: u32,
}

/// Reads `len` bytes (a window of [`Offsets::plan_blocks`]) at `addr + start` into `buf`; None
/// for [`NO_BLOCK`] (without counting a failure) or when the read fails (counted). Only the
/// window's bytes are read: every cache line costs, and the runtime writes these structs on
/// other CPUs all the time.
#[inline(always)]
fn fetch(
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
    fn field(&self, off: u32, size: u32) -> Option<u64> {
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

/// Sets the event's M and P from g.m and m.p, and returns what else the reads brought. On an M
/// this CPU knows (the thread's g0 in R14, where most scheduler events fire) g is not read and
/// m.id comes from the cache: only m.p is read, with m.curg when `need` asks for it. Otherwise
/// one read of g's window and one of m's. p.id comes from this CPU's P cache when it can.
#[inline(always)]
fn fill_m_p(e: &mut Event, g: u64, o: &Offsets, need: u8) -> Cur {
    let mut cur = Cur {
        m: 0,
        goid: 0,
        curg: 0,
        spinning: 0,
        have_goid: false,
        have_curg: false,
        have_spinning: false,
    };
    if g == 0 {
        return cur;
    }
    let pid_tgid = (u64::from(e.pid) << 32) | u64::from(e.tid);
    let known = known_thread(g, pid_tgid);
    let hit = known.g0 != 0;
    if hit {
        cur.m = known.m;
        cur.have_goid = true; // a g0's goid is 0
        e.m = known.m_id as i64;
    }
    let mut buf = core::mem::MaybeUninit::<Block>::uninit();
    if !hit {
        match fetch(&mut buf, g, o.g_block, o.g_block_len) {
            Some(w) => {
                cur.m = w.field(o.g_m, 8).unwrap_or(0);
                cur.goid = w.field(o.g_goid, 8).unwrap_or(0);
                cur.have_goid = true;
            }
            None => cur.m = read::<u64>(g, o.g_m).unwrap_or(0),
        }
    }
    if cur.m == 0 {
        return cur;
    }
    let p = if hit && need == NEED_P {
        read::<u64>(cur.m, o.m_p).unwrap_or(0)
    } else if hit && need == NEED_CURG {
        match fetch(&mut buf, cur.m, o.m_hot_block, o.m_hot_len) {
            Some(w) => {
                cur.curg = w.field(o.m_curg, 8).unwrap_or(0);
                cur.have_curg = true;
                w.field(o.m_p, 8).unwrap_or(0)
            }
            None => read::<u64>(cur.m, o.m_p).unwrap_or(0),
        }
    } else {
        let p = match fetch(&mut buf, cur.m, o.m_block, o.m_block_len) {
            Some(w) => {
                e.m = w.field(o.m_id, 8).map_or(-1, |v| v as i64);
                cur.curg = w.field(o.m_curg, 8).unwrap_or(0);
                cur.spinning = w.field(o.m_spinning, 1).unwrap_or(0) as u8;
                cur.have_curg = true;
                cur.have_spinning = true;
                w.field(o.m_p, 8).unwrap_or(0)
            }
            None => {
                e.m = read::<i64>(cur.m, o.m_id).unwrap_or(-1);
                read::<u64>(cur.m, o.m_p).unwrap_or(0)
            }
        };
        // Only g0s (and gsignal, on the same M) have goid 0: remember this thread's.
        if !hit && cur.have_goid && cur.goid == 0 && e.m >= 0 {
            if let Some(c) = CUR_THREAD.get_ptr_mut(0) {
                let (gen, m, m_id) = (generation(GEN_THREADS), cur.m, e.m as u64);
                // SAFETY: this CPU's slot from the lookup, valid for the program run; every
                // field is rewritten, `check` last.
                unsafe {
                    *c = ThreadCache {
                        pid_tgid,
                        gen,
                        g0: g,
                        m,
                        m_id,
                        check: ThreadCache::sum(pid_tgid, gen, g, m, m_id),
                    }
                };
            }
        }
        p
    };
    if p != 0 {
        e.p = p_id(p, o);
    }
    cur
}

/// p.id, from this CPU's cache when it holds `p` in the current generation.
#[inline(always)]
fn p_id(p: u64, o: &Offsets) -> i32 {
    let gen = generation(GEN_PS);
    let cached = CUR_P.get_ptr_mut(0);
    if let Some(c) = cached {
        // SAFETY: this CPU's slot from the lookup, valid for the program run.
        let c = unsafe { &*c };
        if c.p == p && c.gen == gen && c.check == (gen ^ p ^ c.id) {
            return c.id as u32 as i32;
        }
    }
    match read::<i32>(p, o.p_id) {
        Some(id) => {
            if let Some(c) = cached {
                let id = id as u32 as u64;
                // SAFETY: as above; every field is rewritten, `check` last.
                unsafe {
                    *c = PCache {
                        gen,
                        p,
                        id,
                        check: gen ^ p ^ id,
                    }
                };
            }
            id
        }
        None => -1,
    }
}

/// The current g from the thread's TLS slot (fs base + `tls_g`), for assembly (ABI0) code where
/// R14 is not g. The fs base is not in pt_regs: it is read from the task (`thread.fsbase`, at
/// the offset the loader found in the kernel's BTF). 0 when either offset is unknown.
#[inline(always)]
fn tls_g(o: &Offsets) -> u64 {
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

/// An event with no register-derived context (ABI0 code or kernel context).
#[inline(always)]
fn bare_event(kind: EventKind, o: &Offsets) -> Option<Event> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if o.target_pid != 0 && tgid != o.target_pid {
        return None;
    }
    Some(Event {
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
    })
}

/// Wake the reader only once this much is waiting (or on its own timer): a wakeup per event
/// costs a context switch per event on the traced program's CPUs.
const WAKEUP_BYTES: u64 = 256 * 1024;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

#[inline(always)]
fn emit(e: &Event) {
    // SAFETY: a plain global in .rodata; volatile for the same reason as OFFSETS.
    if unsafe { core::ptr::read_volatile(&AGGREGATE) } != 0 && !agg::streamed(e.kind) {
        aggregate(e);
        return;
    }
    match EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            // Word by word: a struct copy turned constant zero fields into a call to a memset
            // subprogram.
            let src = (e as *const Event).cast::<u64>();
            let dst = slot.as_mut_ptr().cast::<u64>();
            for i in 0..EVENT_WORDS {
                // SAFETY: both point at an Event (64 bytes, 8-aligned: EVENT_WORDS words); the
                // reserved slot is ours until submit.
                unsafe { core::ptr::write_volatile(dst.add(i), src.add(i).read()) };
            }
            slot.submit(wake_flags());
        }
        None => bump(counter::RINGBUF_FULL),
    }
}

const EVENT_WORDS: usize = core::mem::size_of::<Event>() / 8;
const _: () = assert!(core::mem::size_of::<Event>() == EVENT_WORDS * 8);
const _: () = assert!(core::mem::align_of::<Event>() == 8);

/// Records emitted on this CPU: the wakeup check runs on every [`QUERY_EVERY`]th.
#[map]
static EMITTED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Asking the ring how much is waiting reads the reader's position, a cache line the reader
/// keeps writing: ~65 ns a record. Asked every 16 records per CPU instead, the reader is still
/// woken within 16 records of [`WAKEUP_BYTES`], and its timer drains the rest.
const QUERY_EVERY: u64 = 16;

#[inline(always)]
fn wake_flags() -> u64 {
    if let Some(n) = EMITTED.get_ptr_mut(0) {
        // SAFETY: this CPU's slot from the lookup; per-CPU values are not shared.
        let k = unsafe {
            let k = *n;
            *n = k.wrapping_add(1);
            k
        };
        if k % QUERY_EVERY != 0 {
            return BPF_RB_NO_WAKEUP;
        }
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[inline(always)]
fn add(map: &PerCpuArray<u64>, idx: u32, v: u64) {
    if let Some(p) = map.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot from the map lookup; per-CPU values are not shared.
        unsafe { *p += v };
    }
}

/// Aggregate mode: count the event, and for scheduling latency remember when a goroutine
/// became runnable (created, or casgstatus to _Grunnable) until casgstatus(_Grunnable ->
/// _Grunning), which execute does when it runs it: the execute probe itself is not needed.
#[inline(always)]
fn aggregate(e: &Event) {
    add(&AGG_KINDS, e.kind, 1);
    if e.kind == EventKind::GoStatus as u32 {
        let (old, new) = ((e.arg0 & 0xf) as u32, (e.arg1 & 0xf) as u32);
        add(&AGG_STATUS, (old << 4) | new, 1);
        if new == gstatus::WAITING as u32 {
            add(&AGG_WAIT, (e.arg2 & 0xff) as u32, 1);
        } else if new == gstatus::RUNNABLE as u32 {
            let _ = RUNNABLE_SINCE.insert(&e.goid, &e.ts, 0);
        } else if new == gstatus::RUNNING as u32 && old == gstatus::RUNNABLE as u32 {
            ran(e);
        }
    } else if e.kind == EventKind::GoCreate as u32 {
        let _ = RUNNABLE_SINCE.insert(&e.goid, &e.ts, 0);
    }
}

/// A runnable goroutine starts running: one latency sample since it became runnable.
#[inline(always)]
fn ran(e: &Event) {
    let Some(since) = RUNNABLE_SINCE.get_ptr(&e.goid) else {
        return;
    };
    // SAFETY: the pointer comes from the lookup; a concurrent delete at worst yields a stale
    // timestamp (the element memory stays valid for this program run).
    let d = e.ts.saturating_sub(unsafe { *since });
    let _ = RUNNABLE_SINCE.remove(&e.goid);
    let b = agg::lat_bucket(d);
    add(
        &AGG_LATENCY,
        if b < agg::LAT_BUCKETS {
            b as u32
        } else {
            agg::LAT_BUCKETS as u32 - 1
        },
        1,
    );
    add(&AGG_LATENCY, agg::LAT_SUM, d);
    if let Some(p) = AGG_LATENCY.get_ptr_mut(agg::LAT_MAX) {
        // SAFETY: as in `add`.
        unsafe {
            if d > *p {
                *p = d
            }
        };
    }
}

/// A function's result where a return-watching probe sits: on a RET it is RAX; in a caller
/// after the call, wherever the cookie says the caller has moved it (see
/// `gmp_trace_common::result_loc`).
#[inline(always)]
fn result(ctx: &ProbeContext) -> u64 {
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

/// runtime.newproc(fn *funcval): on the creating goroutine.
#[inline(always)]
fn on_newproc(ctx: ProbeContext) -> u32 {
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
fn on_newproc1_ret(ctx: ProbeContext) -> u32 {
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
        emit(&e);
    }
    0
}

/// runtime.mstart1: the first Go code a new M runs, on its g0.
#[inline(always)]
fn on_mstart(ctx: ProbeContext) -> u32 {
    let o = offsets();
    // A new thread: a cached (thread id, g0) could only match by reuse of both.
    bump_generation(GEN_THREADS);
    if let Some((mut e, cur)) = base_event_m(&ctx, EventKind::MStart, o, NEED_P) {
        e.arg0 = read::<u64>(cur.m, o.m_procid).unwrap_or(0);
        emit(&e);
    }
    0
}

/// runtime.schedule: the M (on g0) looks for a goroutine to run.
#[inline(always)]
fn on_schedule(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::Schedule, o) {
        emit(&e);
    }
    0
}

/// runtime.goexit1: the goroutine in R14 is finishing.
#[inline(always)]
fn on_goexit1(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event_g(&ctx, EventKind::GoExit, o) {
        emit(&e);
    }
    0
}

/// A change out of these is a g being (re)born, with a new goid.
#[inline(always)]
fn reborn(old: u64) -> bool {
    old == gstatus::DEAD || old == gstatus::IDLE || old == gstatus::DEADEXTRA
}

/// runtime.casgstatus(gp, oldval, newval uint32).
#[inline(always)]
fn on_casgstatus(ctx: ProbeContext) -> u32 {
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
        emit(&e);
    }
    0
}

/// runtime.acquirep(pp): the M takes P pp (m.p is not set yet, so read pp.id). Also
/// m.spinning: an M handed a P by startm(pp, spinning=true) (woken in stopm) or started with
/// mspinning (mstart1) is already spinning here, before it reaches stealWork.
#[inline(always)]
fn on_acquirep(ctx: ProbeContext) -> u32 {
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
fn on_steal_work(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::SpinStart, o) {
        emit(&e);
    }
    0
}

/// runtime.resetspinning(): the spinning M found work (schedule calls it before execute).
#[inline(always)]
fn on_resetspinning(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event(&ctx, EventKind::SpinEnd, o) {
        emit(&e);
    }
    0
}

/// runtime.runqsteal(pp, p2 *p, stealRunNextG bool) *g, after its prologue: keep what the
/// RETs need (RAX = pp, RBX = p2, CL = stealRunNextG).
#[inline(always)]
fn on_runqsteal(ctx: ProbeContext) -> u32 {
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
fn on_runqsteal_ret(ctx: ProbeContext) -> u32 {
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
fn on_releasep(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event_g(&ctx, EventKind::ReleaseP, o) {
        emit(&e);
    }
    0
}

/// runtime.main: the main goroutine (g1) begins.
#[inline(always)]
fn on_runtime_main(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = base_event_g(&ctx, EventKind::RuntimeMain, o) {
        emit(&e);
    }
    0
}

/// runtime.newm1(mp *m): this M creates another, whose m.id is already assigned (newm's own
/// id argument is -1 for "allocate one", so it cannot link the two).
#[inline(always)]
fn on_newm(ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(mut e) = base_event_g(&ctx, EventKind::NewM, o) {
        e.arg0 = read::<i64>(regs(&ctx).rax, o.m_id).unwrap_or(-1) as u64;
        e.arg1 = u64::MAX;
        emit(&e);
    }
    0
}

/// runtime.procresize(nprocs int32): GOMAXPROCS changes (also once in schedinit).
#[inline(always)]
fn on_procresize(ctx: ProbeContext) -> u32 {
    let o = offsets();
    // Ps may be made or destroyed here: forget every cached p.id.
    bump_generation(GEN_PS);
    if let Some(mut e) = base_event(&ctx, EventKind::ProcResize, o) {
        e.arg0 = regs(&ctx).rax & 0xffff_ffff;
        emit(&e);
    }
    0
}

/// Go-ABI functions that only need "this happened now, here": the kind is the attach cookie.
#[inline(always)]
fn simple(ctx: &ProbeContext, kind: EventKind, arg0: u64) {
    let o = offsets();
    if let Some(mut e) = base_event_g(ctx, kind, o) {
        e.arg0 = arg0;
        emit(&e);
    }
}

/// runtime.stopTheWorldWithSema(reason) (reason in AL from Go 1.21; 0 before).
#[inline(always)]
fn on_stw_start(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::StwStart, regs(&ctx).rax & 0xff);
    0
}

#[inline(always)]
fn on_stw_done(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::StwDone, 0);
    0
}

/// runtime.stopm: this M parks on the idle list.
#[inline(always)]
fn on_stopm(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::MIdle, 0);
    0
}

/// runtime.gcStart(trigger gcTrigger): the trigger struct arrives in registers, kind in RAX.
#[inline(always)]
fn on_gc_start(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::GcStart, regs(&ctx).rax & 0xff);
    0
}

#[inline(always)]
fn on_gc_done(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::GcDone, 0);
    0
}

/// runtime.entersyscall / entersyscallblock (cookie 1 = blocking): on the user goroutine.
#[inline(always)]
fn on_syscall_enter(ctx: ProbeContext) -> u32 {
    // SAFETY: ctx is the program's context pointer, as the helper requires.
    let blocking = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    simple(&ctx, EventKind::SyscallEnter, blocking);
    0
}

#[inline(always)]
fn on_syscall_exit(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::SyscallExit, 0);
    0
}

/// runtime.exitsyscallTryGetP (Go 1.26+): exitsyscall found no P on its M after all.
#[inline(always)]
fn on_syscall_lost_p(ctx: ProbeContext) -> u32 {
    simple(&ctx, EventKind::SyscallLostP, 0);
    0
}

/// A startup milestone in Go-ABI code (R14 is g); the phase id is the attach cookie.
#[inline(always)]
fn on_phase(ctx: ProbeContext) -> u32 {
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
fn on_phase_abi0(ctx: ProbeContext) -> u32 {
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
fn on_init_task(ctx: ProbeContext) -> u32 {
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

/// Does nothing: attached in place of the real programs (hidden `--empty-probes`) it measures
/// the floor, the cost of the trap alone.
#[inline(always)]
fn on_empty(_ctx: ProbeContext) -> u32 {
    0
}

/// Emits a bare record (clock and thread only, no user-memory reads; kind Schedule, so the
/// model takes it as a harmless scheduler-loop entry): attached in place of the real programs
/// (hidden `--emit-only-probes`) it measures what the ring buffer itself costs per hit.
#[inline(always)]
fn on_emit_only(_ctx: ProbeContext) -> u32 {
    let o = offsets();
    if let Some(e) = bare_event(EventKind::Schedule, o) {
        emit(&e);
    }
    0
}

/// Every uprobe program twice, one body each: `NAME` is a `uprobe.multi` program (one link for
/// all its sites, with a cookie per site; kernel 6.6+, one RCU grace period to detach), and
/// `NAME_pe` a classic uprobe (one perf-event link per site) for kernels without it. The loader
/// loads only the flavour it uses, so the kernel verifies each body once.
macro_rules! uprobe_programs {
    ($($body:ident => $multi:ident, $single:ident;)*) => {$(
        #[uprobe(multi)]
        pub fn $multi(ctx: ProbeContext) -> u32 {
            $body(ctx)
        }

        #[uprobe]
        pub fn $single(ctx: ProbeContext) -> u32 {
            $body(ctx)
        }
    )*};
}

uprobe_programs! {
    on_newproc => newproc, newproc_pe;
    on_newproc1_ret => newproc1_ret, newproc1_ret_pe;
    on_mstart => mstart, mstart_pe;
    on_schedule => schedule, schedule_pe;
    on_goexit1 => goexit1, goexit1_pe;
    on_casgstatus => casgstatus, casgstatus_pe;
    on_acquirep => acquirep, acquirep_pe;
    on_steal_work => steal_work, steal_work_pe;
    on_resetspinning => resetspinning, resetspinning_pe;
    on_runqsteal => runqsteal, runqsteal_pe;
    on_runqsteal_ret => runqsteal_ret, runqsteal_ret_pe;
    on_releasep => releasep, releasep_pe;
    on_runtime_main => runtime_main, runtime_main_pe;
    on_newm => newm, newm_pe;
    on_procresize => procresize, procresize_pe;
    on_stw_start => stw_start, stw_start_pe;
    on_stw_done => stw_done, stw_done_pe;
    on_stopm => stopm, stopm_pe;
    on_gc_start => gc_start, gc_start_pe;
    on_gc_done => gc_done, gc_done_pe;
    on_syscall_enter => syscall_enter, syscall_enter_pe;
    on_syscall_exit => syscall_exit, syscall_exit_pe;
    on_syscall_lost_p => syscall_lost_p, syscall_lost_p_pe;
    on_phase => phase, phase_pe;
    on_phase_abi0 => phase_abi0, phase_abi0_pe;
    on_init_task => init_task, init_task_pe;
    on_empty => empty, empty_pe;
    on_emit_only => emit_only, emit_only_pe;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
