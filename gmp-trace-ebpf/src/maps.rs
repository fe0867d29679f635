//! Every map and global of the object, in one place: the loader finds them by name (and
//! overrides `OFFSETS` and `AGGREGATE` by symbol), so these names, types and sizes are a contract
//! with userspace. The logic that uses them lives in the module each comment names; the value
//! types of the cache maps are declared here too, so that this file depends on no other module.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use gmp_trace_common::{agg, counter, Offsets};

/// Go struct offsets and the target pid, written by the loader before the programs load.
#[no_mangle]
static OFFSETS: Offsets = Offsets::UNKNOWN;

#[inline(always)]
pub(crate) fn offsets() -> &'static Offsets {
    // SAFETY: OFFSETS is a plain global in .rodata. Its address goes through a volatile read so
    // the compiler can neither constant-fold the placeholder (Offsets::UNKNOWN) in place of the
    // values the loader wrote, nor load every field up front (a volatile read of the struct
    // did): each probe loads just the offsets it uses.
    unsafe { &*core::ptr::read_volatile(&(&OFFSETS as *const Offsets)) }
}

/// Non-zero in aggregate mode (`--aggregate`, set by the loader): the frequent events update
/// the `AGG_*` maps instead of going to the ring buffer.
#[no_mangle]
pub(crate) static AGGREGATE: u32 = 0;

/// Non-zero with `--stacks` (set by the loader): the probes of blocking, unblocking, creation
/// and system calls send the user stack before their event (stacks.rs).
#[no_mangle]
pub(crate) static STACKS: u32 = 0;

/// Execs of the target that start the traced image (1 in launch mode: the launch's own; 0 with
/// `--pid`), set by the loader. An exec beyond them replaces the image.
#[no_mangle]
pub(crate) static LAUNCH_EXECS: u32 = 0;

/// `[execs seen, image gone]`, written by the exec probe: once the traced image is replaced,
/// every probe goes quiet (the same file's probe sites exist in a new image of it, and the
/// aggregate counters must hold the first image's events only).
#[no_mangle]
static mut IMAGE_STATE: [u32; 2] = [0, 0];

/// Whether an exec replaced the traced image.
#[inline(always)]
pub(crate) fn image_gone() -> bool {
    // SAFETY: a plain global (.bss); a volatile read of one aligned word races with nothing
    // worse than seeing the flag one event late.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(IMAGE_STATE[1])) != 0 }
}

/// Counts an exec of the target; the one past [`LAUNCH_EXECS`] marks the image gone.
#[inline(always)]
pub(crate) fn saw_exec() {
    // SAFETY: as in `image_gone`; execs of one process are serialised by the kernel.
    unsafe {
        let seen = core::ptr::read_volatile(core::ptr::addr_of!(IMAGE_STATE[0])) + 1;
        core::ptr::write_volatile(core::ptr::addr_of_mut!(IMAGE_STATE[0]), seen);
        if seen > core::ptr::read_volatile(&LAUNCH_EXECS) {
            core::ptr::write_volatile(core::ptr::addr_of_mut!(IMAGE_STATE[1]), 1);
        }
    }
}

/// Failure counters, indexed by `gmp_trace_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// The exec probe's copy of the path being exec'd (too big for the BPF stack).
#[map]
pub(crate) static EXEC_PATH: PerCpuArray<[u8; gmp_trace_common::EXEC_PATH_MAX]> =
    PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn bump(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: the pointer comes from the map lookup and is valid for this CPU's slot; per-CPU
        // values are not shared, so a plain increment does not race.
        unsafe { *p += 1 };
    }
}

// `--stacks` (stacks.rs).

/// The stack being walked (too big for the BPF stack).
#[map]
pub(crate) static STACK_PCS: PerCpuArray<[u64; gmp_trace_common::STACK_MAX_FRAMES]> =
    PerCpuArray::with_max_entries(1, 0);

/// The piece of a goroutine's stack the walk reads at once: frames are small and adjacent, so
/// one read serves several (a user read costs ~70 ns plus each cache line).
#[map]
pub(crate) static STACK_WINDOW: PerCpuArray<[u64; crate::stacks::WINDOW_WORDS]> =
    PerCpuArray::with_max_entries(1, 0);

/// Stack ids whose PCs were sent: a stack's PCs go out once, then only its id. Sized by the
/// loader (1 entry without `--stacks`); LRU, so a stack evicted is simply sent again.
#[map]
pub(crate) static SEEN_STACKS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(1, 0);

// The ring buffer and its wakeup policy (emit.rs).

/// Resized by the loader (`--buffer-size`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Records emitted on this CPU: the wakeup check runs on every
/// [`QUERY_EVERY`](crate::emit::QUERY_EVERY)th.
#[map]
pub(crate) static EMITTED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

// Aggregate mode (aggregate.rs).

/// Aggregate mode: events per kind.
#[map]
pub(crate) static AGG_KINDS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::KINDS, 0);

/// Aggregate mode: casgstatus changes by (old, new) status.
#[map]
pub(crate) static AGG_STATUS: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::STATUS, 0);

/// Aggregate mode: changes to _Gwaiting by wait reason.
#[map]
pub(crate) static AGG_WAIT: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::WAIT, 0);

/// Aggregate mode: the Runnable -> Running latency histogram (buckets, sum, max).
#[map]
pub(crate) static AGG_LATENCY: PerCpuArray<u64> = PerCpuArray::with_max_entries(agg::LAT_SLOTS, 0);

/// Aggregate mode: when each runnable goroutine became runnable, by goid. LRU: a goroutine
/// that never runs again is evicted instead of filling the map.
#[map]
pub(crate) static RUNNABLE_SINCE: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1 << 16, 0);

// The per-CPU caches and their generations (cache.rs).

/// What this CPU last learned about the thread on it, so the next probe on that thread's g0
/// (where most scheduler events fire) needs no read of g: an M's g0 and thread belong to it for
/// life. `check` catches a slot torn by a probe preempted while writing it.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ThreadCache {
    /// The thread's ids as bpf_get_current_pid_tgid gives them.
    pub(crate) pid_tgid: u64,
    pub(crate) gen: u64,
    pub(crate) g0: u64,
    pub(crate) m: u64,
    /// m.id, fixed for the M's life.
    pub(crate) m_id: u64,
    pub(crate) check: u64,
}

/// The P this CPU last saw (pointer and id): an M keeps its P across many events, and reading
/// p.id is a user-memory read. Invalidated with `gen` at procresize (the only place Ps are
/// made or destroyed, called at every start-the-world).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct PCache {
    pub(crate) gen: u64,
    pub(crate) p: u64,
    pub(crate) id: u64,
    pub(crate) check: u64,
}

#[map]
pub(crate) static CUR_THREAD: PerCpuArray<ThreadCache> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub(crate) static CUR_P: PerCpuArray<PCache> = PerCpuArray::with_max_entries(1, 0);

/// Cache generations: [`GEN_THREADS`] moves at every new M (mstart1), [`GEN_PS`] at every
/// procresize; a cached entry from an older generation is not used.
#[map]
pub(crate) static GENERATION: Array<u64> = Array::with_max_entries(2, 0);
pub(crate) const GEN_THREADS: u32 = 0;
pub(crate) const GEN_PS: u32 = 1;

/// goids by g pointer, so probes about a goroutine they did not just read (casgstatus's gp
/// and its unblocker, newproc1's creator) need no read of it: a goid changes only when a dead g
/// is reused, and every way out of _Gdead passes casgstatus, which drops the entry (newproc1
/// assigns the new goid after that change; its return probe then stores it). Direct-mapped;
/// `check` rejects a slot torn by two CPUs writing it at once.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct GoidSlot {
    pub(crate) g: u64,
    pub(crate) goid: u64,
    pub(crate) check: u64,
}

pub(crate) const GOID_SLOTS: u32 = 4096;

#[map]
pub(crate) static GOIDS: Array<GoidSlot> = Array::with_max_entries(GOID_SLOTS, 0);

// Work stealing (probes/scheduler.rs).

/// runqsteal's arguments, kept from its entry for its RETs (where the registers are gone: Go
/// has no callee-saved registers), keyed by thread id.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct StealArgs {
    /// The thief `pp` (to read its run queue tail again at the RET).
    pub(crate) pp: u64,
    /// pp.runqtail at entry.
    pub(crate) tail: u32,
    /// p2.id, the victim.
    pub(crate) victim: i32,
    /// stealRunNextG.
    pub(crate) runnext: u64,
}

/// At most one entry per thread inside runqsteal (so about GOMAXPROCS); removed at the RET.
#[map]
pub(crate) static STEAL_ARGS: HashMap<u32, StealArgs> = HashMap::with_max_entries(4096, 0);

// The CPU sampler (sampler.rs).

/// One [`Sample`](gmp_trace_common::sample::Sample) per sample of the target. Resized by the
/// sampler's loader; drained on a timer (the program never wakes the reader).
#[map]
pub(crate) static SAMPLES: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

/// The sampler's per-CPU counts, indexed by `gmp_trace_common::sample::stat`.
#[map]
pub(crate) static SAMPLE_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(gmp_trace_common::sample::stat::COUNT, 0);
