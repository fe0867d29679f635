//! Wire types shared by the BPF probes and the userspace daemon.
//!
//! Everything here is `#[repr(C)]` with explicit padding and a size assert, because the same bytes
//! are written by the kernel side and read back by userspace (and by recordings on disk). Event kind
//! numbers are part of the recording format: never renumber or reuse one.
#![no_std]

/// One scheduler event as the probes emit it into the ring buffer.
///
/// `ts` is CLOCK_MONOTONIC in ns (`bpf_ktime_get_ns`), the clock Go's execution tracer uses.
/// The meaning of `arg0..arg2` depends on `kind` (see [`EventKind`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub ts: u64,
    pub kind: u32,
    /// OS thread id (the kernel's pid of the task), which is Go's `m.procid` and the tracer's `M=`.
    pub tid: u32,
    /// Process id (thread-group id).
    pub pid: u32,
    /// `p.id` of the P held by the M when the event happened, or -1.
    pub p: i32,
    /// The goroutine the event is about (see each kind), 0 for none / g0.
    pub goid: u64,
    /// `m.id` of the M the event happened on, or -1 when unknown.
    pub m: i64,
    pub arg0: u64,
    pub arg1: u64,
    pub arg2: u64,
}

pub const EVENT_SIZE: usize = 64;
const _: () = assert!(core::mem::size_of::<Event>() == EVENT_SIZE);

/// Event kinds. Numbers are fixed forever; new kinds get new numbers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `runtime.newproc(fn)` entered on the creating goroutine. goid = creator (0 when called from
    /// g0, as rt0_go does for g1), arg0 = fn entry pc.
    NewProc = 1,
    /// `runtime.newproc1` returned. goid = new goroutine, arg0 = parent goid (the M's curg, 0 when
    /// none), arg1 = new G's start pc, arg2 = creation site pc (g.gopc).
    GoCreate = 2,
    /// `runtime.mstart1` entered on a new M's g0. arg0 = m.procid as the runtime knows it.
    MStart = 3,
    /// `runtime.schedule` entered on g0: the M looks for work.
    Schedule = 4,
    /// goid starts running on this M and P: `runtime.execute(gp)` entered (arg0 = its
    /// inheritTime), or, derived by the daemon since execute is no longer probed, its
    /// casgstatus(_Grunnable -> _Grunning) (arg1 = 1, arg0 = 0: inheritTime unknown).
    Execute = 5,
    /// `runtime.goexit1` entered on the exiting goroutine.
    GoExit = 6,
    /// `runtime.casgstatus(gp, old, new)`: goid = gp. arg0 = old status, arg1 = new status,
    /// arg2 = g.waitreason (low 8 bits, meaningful when new is waiting) | (goid of the M's
    /// current goroutine, the one causing the change, e.g. the unblocker) << 8.
    GoStatus = 7,
    /// `runtime.acquirep(pp)`: the M takes P `arg0` (also in `p` for convenience). arg1 = 1
    /// when the M is already spinning (`m.spinning`): an M woken by `startm(pp, spinning=true)`
    /// or started with `mspinning` gets its P here and goes looking for work to steal.
    /// Recordings made before this field existed carry 0.
    AcquireP = 8,
    /// `runtime.releasep()`: the M gives up P `p`.
    ReleaseP = 9,
    /// `runtime.main` entered (on g1).
    RuntimeMain = 10,
    /// Synthesised by userspace: `arg0` events were lost (ring buffer full or failed reads) since
    /// the previous report; `arg1` = cumulative total.
    Lost = 11,
    /// `runtime.newm1(mp)`: the M in `m`/`tid` creates a new M. arg0 = the new m.id,
    /// arg1 = -1 and arg2 = 0 (reserved for the P handed over and the M's start function).
    NewM = 12,
    /// `runtime.procresize(nprocs)`: GOMAXPROCS becomes arg0.
    ProcResize = 13,
    /// `runtime.stopTheWorldWithSema(reason)`: arg0 = the runtime's stwReason (0 when the
    /// version passes none).
    StwStart = 14,
    /// `runtime.startTheWorldWithSema`: the world restarts.
    StwDone = 15,
    /// `runtime.gcStart(trigger)`: arg0 = gcTriggerKind (0 heap, 1 time, 2 cycle).
    GcStart = 16,
    /// `runtime.gcMarkTermination`: the GC cycle's mark phase ends.
    GcDone = 17,
    /// `runtime.entersyscall` / `entersyscallblock` on goroutine goid. arg0 = 1 when blocking.
    SyscallEnter = 18,
    /// `runtime.exitsyscall` on goroutine goid.
    SyscallExit = 19,
    /// A startup milestone (see [`phase`]): arg0 = phase id, arg1 = detail (for init tasks the
    /// init task's address; for exec the mapped start of the executable's text, 0 if unknown;
    /// for exit the exit code; for others 0).
    Phase = 20,
    /// `runtime.stopm`: the M has no work and goes to sleep on the idle list.
    MIdle = 21,
    /// Synthesised by userspace: code addresses in later events are the binary's addresses
    /// plus `arg0` (the load bias of a position-independent executable; 0 otherwise).
    LoadBias = 22,
    /// `runtime.stealWork` entered: the M is spinning (findRunnable calls it only with
    /// `m.spinning` set, setting it just before when needed) and looks for work on other Ps.
    SpinStart = 23,
    /// `runtime.resetspinning`: the spinning M found work and stops spinning.
    SpinEnd = 24,
    /// A RET of `runtime.runqsteal(pp, p2, stealRunNextG)` with a goroutine: P `p` (the
    /// thief, this M's P) took goroutines from P `arg0` (the victim). goid = the goroutine it
    /// returns (runs next), arg1 = goroutines taken in all (that one plus those moved into the
    /// thief's run queue), arg2 = 1 when runnext could be taken (the last of stealWork's rounds).
    Steal = 25,
    /// Synthesised by userspace: `arg0` steal attempts (runqsteal calls) came back empty
    /// since the previous report; `arg1` = cumulative total. Counted in the probe, not sent
    /// one by one: a spinning M makes many, and they carry nothing but the count.
    StealFailed = 26,
    /// `runtime.exitsyscallTryGetP` (Go 1.26+), on g0: the goroutine leaving a system call on
    /// this M finds its P gone after all (sysmon's retake or a stop-the-world took it after
    /// `exitsyscall` began) and looks for another; the tracer's GoSyscallEndBlocked.
    SyscallLostP = 27,
    /// A piece of the path a [`phase::EXEC`] exec'd (as the program passed it to execve), so
    /// an exec that replaces the traced image names the new one. `ts`/`tid`/`pid` are the exec's,
    /// `p` = the path's length in bytes (0: unknown), `goid` = this piece's byte offset, `m`
    /// and `arg0..arg2` = up to [`EXEC_PATH_CHUNK`] bytes of the path, little endian.
    ExecPath = 28,
    /// `--stacks`: the user stack of the event that follows it from the same thread (same
    /// `ts`, `tid`). Sent right before that event by the same probe. `goid` = the stack's id
    /// (a hash of its PCs computed in the probe), `p`/`m` = the event's, arg0 = the kind of the
    /// event it belongs to, arg1 = frames, arg2 = the goroutine whose stack it is (the creator
    /// for a creation, the waker for an unblock). Its PCs came before it in [`EventKind::StackPcs`]
    /// pieces, unless this id was sent earlier (or lost: the daemon says so).
    Stack = 29,
    /// A piece of the PCs of stack `goid` (the id of [`EventKind::Stack`]), sent the first
    /// time the probes see that id: `p` = frames << 8 | index of this piece's first frame,
    /// `m` and `arg0..arg2` = up to [`STACK_PCS_CHUNK`] return addresses, innermost first.
    StackPcs = 30,
}

/// PCs one [`EventKind::StackPcs`] event carries.
pub const STACK_PCS_CHUNK: usize = 4;
/// The deepest stack the probes walk (frames beyond are cut).
pub const STACK_MAX_FRAMES: usize = 32;

/// Path bytes one [`EventKind::ExecPath`] event carries.
pub const EXEC_PATH_CHUNK: usize = 32;

// `from_u32` indexes `ALL` by number: kind N must be `ALL[N - 1]`, with no gaps.
const _: () = {
    let mut i = 0;
    while i < EventKind::ALL.len() {
        assert!(EventKind::ALL[i] as u32 == i as u32 + 1);
        i += 1;
    }
};

impl EventKind {
    pub const ALL: [EventKind; 30] = [
        EventKind::NewProc,
        EventKind::GoCreate,
        EventKind::MStart,
        EventKind::Schedule,
        EventKind::Execute,
        EventKind::GoExit,
        EventKind::GoStatus,
        EventKind::AcquireP,
        EventKind::ReleaseP,
        EventKind::RuntimeMain,
        EventKind::Lost,
        EventKind::NewM,
        EventKind::ProcResize,
        EventKind::StwStart,
        EventKind::StwDone,
        EventKind::GcStart,
        EventKind::GcDone,
        EventKind::SyscallEnter,
        EventKind::SyscallExit,
        EventKind::Phase,
        EventKind::MIdle,
        EventKind::LoadBias,
        EventKind::SpinStart,
        EventKind::SpinEnd,
        EventKind::Steal,
        EventKind::StealFailed,
        EventKind::SyscallLostP,
        EventKind::ExecPath,
        EventKind::Stack,
        EventKind::StackPcs,
    ];

    /// Runs for every event (model, exporters): an index into [`EventKind::ALL`], whose kinds
    /// are numbered 1, 2, 3... in order (checked at compile time below).
    #[inline]
    pub fn from_u32(v: u32) -> Option<EventKind> {
        EventKind::ALL.get((v as usize).wrapping_sub(1)).copied()
    }

    /// The name used in JSONL output and recordings.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::NewProc => "newproc",
            EventKind::GoCreate => "go_create",
            EventKind::MStart => "mstart",
            EventKind::Schedule => "schedule",
            EventKind::Execute => "execute",
            EventKind::GoExit => "go_exit",
            EventKind::GoStatus => "go_status",
            EventKind::AcquireP => "acquire_p",
            EventKind::ReleaseP => "release_p",
            EventKind::RuntimeMain => "runtime_main",
            EventKind::Lost => "lost",
            EventKind::NewM => "new_m",
            EventKind::ProcResize => "proc_resize",
            EventKind::StwStart => "stw_start",
            EventKind::StwDone => "stw_done",
            EventKind::GcStart => "gc_start",
            EventKind::GcDone => "gc_done",
            EventKind::SyscallEnter => "syscall_enter",
            EventKind::SyscallExit => "syscall_exit",
            EventKind::Phase => "phase",
            EventKind::MIdle => "m_idle",
            EventKind::LoadBias => "load_bias",
            EventKind::SpinStart => "spin_start",
            EventKind::SpinEnd => "spin_end",
            EventKind::Steal => "steal",
            EventKind::StealFailed => "steal_failed",
            EventKind::SyscallLostP => "syscall_lost_p",
            EventKind::ExecPath => "exec_path",
            EventKind::Stack => "stack_ref",
            EventKind::StackPcs => "stack_pcs",
        }
    }
}

/// Goroutine statuses as casgstatus takes them (runtime/runtime2.go: the numbers never change,
/// new ones are added), for the probes and the daemon's derivations alike.
pub mod gstatus {
    pub const IDLE: u64 = 0;
    pub const RUNNABLE: u64 = 1;
    pub const RUNNING: u64 = 2;
    pub const WAITING: u64 = 4;
    pub const DEAD: u64 = 6;
    /// Go 1.27: a cgo extra M's g between callbacks.
    pub const DEADEXTRA: u64 = 11;
}

/// Startup milestones carried by [`EventKind::Phase`] events, in the order Go reaches them.
pub mod phase {
    /// `runtime.rt0_go`: the first Go-runtime instruction after the ELF entry stub.
    pub const RT0_GO: u64 = 1;
    /// `runtime.schedinit` entered (on m0's g0).
    pub const SCHEDINIT: u64 = 2;
    /// `runtime.mstart` (asm) entered on m0: the scheduler is about to run g1.
    pub const MSTART_M0: u64 = 3;
    /// `runtime.doInit1(t)` (Go 1.21+) / `runtime.doInit(t)` (older): one init task starts;
    /// arg1 = the task's address, arg2 = its first init function's pc (0 when it has none).
    /// Runtime tasks come first, then packages in order (before Go 1.21 doInit recurses into
    /// a task's dependencies first, so tasks complete in a different order than they start).
    pub const INIT_TASK: u64 = 4;
    /// `runtime.gcenable` entered on g1.
    pub const GCENABLE: u64 = 5;
    /// `main.main` entered.
    pub const MAIN_MAIN: u64 = 6;
    /// `runtime.exit(code)`: the process is ending. arg1 = exit code.
    pub const EXIT: u64 = 7;
    /// The kernel's sched_process_exec for the traced pid: the new image is in place.
    pub const EXEC: u64 = 8;
    /// A RET of `runtime.doInit(t)` (Go 1.19/1.20, where doInit recurses into the task's
    /// dependencies first): the innermost open init task is done.
    pub const INIT_DONE: u64 = 9;
}

/// Go runtime struct field offsets, handed to the probes at load time as a BPF global.
/// Values come from the target binary's DWARF (or a per-version table).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub g_goid: u32,
    pub g_atomicstatus: u32,
    pub g_m: u32,
    pub g_waitreason: u32,
    pub g_startpc: u32,
    pub g_gopc: u32,
    pub m_procid: u32,
    pub m_curg: u32,
    pub m_p: u32,
    pub m_id: u32,
    pub p_id: u32,
    /// Process to accept events from (tgid); 0 accepts all.
    pub target_pid: u32,
    /// Offset of `thread.fsbase` in the kernel's `task_struct` (from the kernel's BTF); 0 when
    /// unknown. With `tls_g` it gives the g of assembly (ABI0) code, where R14 is not g.
    pub task_fsbase: u32,
    /// Where the TLS slot holding g sits relative to the thread's fs base (-8 on linux/amd64,
    /// disassembled from the binary); 0 when unknown.
    pub tls_g: i32,
    /// m.spinning (bool).
    pub m_spinning: u32,
    /// p.runqtail (uint32): runqsteal moves it by the goroutines it queues on the thief.
    pub p_runqtail: u32,
    /// Offsets of `task_struct.mm` and `mm_struct.start_code` (kernel BTF; 0 when unknown):
    /// the exec event reports where the new image's text was mapped (its load bias).
    pub task_mm: u32,
    pub mm_start_code: u32,
    /// Block reads: a user-memory read costs the probe ~70 ns plus every cache line it
    /// touches (lines the runtime just wrote on another CPU cost the most), so fields that sit
    /// close together are fetched with one read of just the bytes that hold them: `*_block` is
    /// where the read starts ([`NO_BLOCK`]: too far apart, read one by one) and `*_len` how
    /// many bytes it takes (at most [`BLOCK`]). See [`Offsets::plan_blocks`].
    /// The current g's `m` and `goid`.
    pub g_block: u32,
    /// A goroutine argument's `goid` and `waitreason` (casgstatus).
    pub gp_block: u32,
    /// The M's `id`, `p`, `curg` and `spinning` (an M seen for the first time on this CPU).
    pub m_block: u32,
    /// The M's `curg` and `p` alone (an M whose id this CPU already knows).
    pub m_hot_block: u32,
    pub g_block_len: u32,
    pub gp_block_len: u32,
    pub m_block_len: u32,
    pub m_hot_len: u32,
    /// g.stack.lo (g.stack.hi is the next word): the sampler bounds its stack copy and the
    /// daemon's unwinding with it. [`NO_FIELD`] when unknown (0 is its real offset).
    pub g_stack: u32,
    /// m.g0, the M's scheduler goroutine: a sample whose g is it ran on the system stack
    /// (scheduler, GC, systemstack calls). [`NO_FIELD`] when unknown (0 is its real offset).
    pub m_g0: u32,
    /// g.sched.sp and g.sched.pc: where a goroutine that called `systemstack` stopped, which
    /// the sampler records for a sample on g0 so the walk can continue on that goroutine's
    /// stack. [`NO_FIELD`] when unknown.
    pub g_sched_sp: u32,
    pub g_sched_pc: u32,
    /// `linux_binprm.filename` (kernel BTF; 0 when unknown): the exec event sends the path
    /// the new image was exec'd by, as [`EventKind::ExecPath`] pieces.
    pub binprm_filename: u32,
    /// g.sched.bp: with g.sched.pc the frame-pointer chain `--stacks` walks for a goroutine
    /// stopped by mcall or systemstack. [`NO_FIELD`] when unknown.
    pub g_sched_bp: u32,
}

pub const OFFSETS_SIZE: usize = 128;

/// The longest exec path the probes send (longer ones are cut, and say so by their length).
pub const EXEC_PATH_MAX: usize = 256;

/// An offset meaning "unknown" for the fields whose real offset is 0.
pub const NO_FIELD: u32 = u32::MAX;

/// Bytes fetched by one block read.
pub const BLOCK: u32 = 128;
/// A block offset meaning "read the fields one by one".
pub const NO_BLOCK: u32 = u32::MAX;

/// [`Offsets::UNKNOWN`].
impl Default for Offsets {
    fn default() -> Self {
        Offsets::UNKNOWN
    }
}

impl Offsets {
    /// Every offset 0 (unknown) and no block windows: each field read alone until
    /// [`Offsets::plan_blocks`] picks them.
    pub const UNKNOWN: Offsets = Offsets {
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
        task_fsbase: 0,
        tls_g: 0,
        m_spinning: 0,
        p_runqtail: 0,
        task_mm: 0,
        mm_start_code: 0,
        g_block: NO_BLOCK,
        gp_block: NO_BLOCK,
        m_block: NO_BLOCK,
        m_hot_block: NO_BLOCK,
        g_block_len: 0,
        gp_block_len: 0,
        m_block_len: 0,
        m_hot_len: 0,
        g_stack: NO_FIELD,
        m_g0: NO_FIELD,
        g_sched_sp: NO_FIELD,
        g_sched_pc: NO_FIELD,
        binprm_filename: 0,
        g_sched_bp: NO_FIELD,
    };

    /// Picks the block windows from the field offsets: each starts at its lowest field rounded
    /// down to 8 (so the probes take fields out of whole words) and ends with the word that
    /// holds its highest field; a window over [`BLOCK`] bytes is [`NO_BLOCK`]. The windows stay
    /// inside the structs (g is over 400 bytes, m over 1 KiB in every supported release).
    pub fn plan_blocks(&mut self) {
        fn window(fields: &[u32]) -> (u32, u32) {
            let lo = fields.iter().copied().min().unwrap_or(0) & !7;
            let hi = (fields.iter().copied().max().unwrap_or(0) & !7) + 8;
            if hi - lo <= BLOCK {
                (lo, hi - lo)
            } else {
                (NO_BLOCK, 0)
            }
        }
        (self.g_block, self.g_block_len) = window(&[self.g_m, self.g_goid]);
        (self.gp_block, self.gp_block_len) = window(&[self.g_goid, self.g_waitreason]);
        (self.m_block, self.m_block_len) =
            window(&[self.m_id, self.m_p, self.m_curg, self.m_spinning]);
        (self.m_hot_block, self.m_hot_len) = window(&[self.m_p, self.m_curg]);
    }
}
const _: () = assert!(core::mem::size_of::<Offsets>() == OFFSETS_SIZE);

/// Aggregate mode (`--aggregate`): the probes count and histogram in BPF maps instead of
/// streaming the frequent events. Shared so the probes and the daemon bucket identically.
pub mod agg {
    use super::EventKind;

    /// `AGG_KINDS`: events per kind, indexed by the kind's number.
    pub const KINDS: u32 = 64;
    /// `AGG_STATUS`: casgstatus changes, indexed `(old & 0xf) << 4 | (new & 0xf)` (the scan
    /// bit 0x1000 masked off).
    pub const STATUS: u32 = 256;
    /// `AGG_WAIT`: changes to _Gwaiting by g.waitreason.
    pub const WAIT: u32 = 256;
    /// Sub-buckets per power of two of the latency histogram (~3% relative error).
    pub const LAT_SUB: usize = 32;
    pub const LAT_BUCKETS: usize = 64 * LAT_SUB;
    /// `AGG_LATENCY` holds the buckets, then the sum, then the largest value (per CPU).
    pub const LAT_SUM: u32 = LAT_BUCKETS as u32;
    pub const LAT_MAX: u32 = LAT_BUCKETS as u32 + 1;
    pub const LAT_SLOTS: u32 = LAT_BUCKETS as u32 + 2;

    /// The log-linear bucket of a latency in ns: exact below 32, then 32 sub-buckets per power
    /// of two (the top 5 bits below the leading one).
    #[inline(always)]
    pub fn lat_bucket(v: u64) -> usize {
        if v < LAT_SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros() as usize; // >= 5
        let sub = ((v >> (exp - 5)) as usize) & (LAT_SUB - 1);
        (exp - 4) * LAT_SUB + sub
    }

    /// The smallest value in bucket `b`.
    pub fn lat_lower(b: usize) -> u64 {
        if b < LAT_SUB {
            return b as u64;
        }
        let exp = b / LAT_SUB + 4;
        let sub = (b % LAT_SUB) as u64;
        (1u64 << exp) | (sub << (exp - 5))
    }

    /// Kinds still streamed in aggregate mode: rare ones (a few per second at most) that carry
    /// structure the counters cannot: startup (an exec's path too), threads, GOMAXPROCS, GC
    /// and stop-the-world.
    pub fn streamed(kind: u32) -> bool {
        kind == EventKind::Phase as u32
            || kind == EventKind::ExecPath as u32
            || kind == EventKind::MStart as u32
            || kind == EventKind::NewM as u32
            || kind == EventKind::ProcResize as u32
            || kind == EventKind::StwStart as u32
            || kind == EventKind::StwDone as u32
            || kind == EventKind::GcStart as u32
            || kind == EventKind::GcDone as u32
            || kind == EventKind::RuntimeMain as u32
    }
}

/// Indexes into the per-CPU `COUNTERS` array of failures the probes report.
pub mod counter {
    /// `bpf_ringbuf_reserve` failed: the event was dropped.
    pub const RINGBUF_FULL: u32 = 0;
    /// A `bpf_probe_read_user` of Go runtime memory failed: the event went out with gaps.
    pub const READ_FAILED: u32 = 1;
    /// `runtime.runqsteal` returned nil: a steal attempt that found nothing.
    pub const STEAL_FAILED: u32 = 2;
    pub const COUNT: u32 = 3;
}

/// Where a probe that watches a function's return reads the function's result, as its attach
/// cookie. A probe on a RET finds it in RAX; a probe in a caller, after the call, finds it
/// wherever the caller has moved it by then: another register or a slot of its frame.
pub mod result_loc {
    /// Registers by number: RAX (0, also what a RET sees), RBX, RCX, RDX, RSI, RDI, R8..R15;
    /// this many.
    pub const REGS: u64 = 14;
    /// Set for a stack slot: the low 32 bits are its offset from RSP.
    pub const STACK: u64 = 1 << 32;
}

pub mod execs;
pub mod follow;
pub mod sample;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are repr(C), Copy, made only of integers, and have no padding (the size
    // asserts above pin their layout), so any bit pattern is valid.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Offsets {}
    // SAFETY: as above (header of integers, then bytes; sizes asserted in sample.rs).
    unsafe impl aya::Pod for super::sample::Sample {}
}

impl Event {
    /// Decodes an event from raw ring-buffer or recording bytes; `None` when too short.
    pub fn from_bytes(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_ne_bytes(a)
        };
        let u32_at = |o: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[o..o + 4]);
            u32::from_ne_bytes(a)
        };
        Some(Event {
            ts: u64_at(0),
            kind: u32_at(8),
            tid: u32_at(12),
            pid: u32_at(16),
            p: u32_at(20) as i32,
            goid: u64_at(24),
            m: u64_at(32) as i64,
            arg0: u64_at(40),
            arg1: u64_at(48),
            arg2: u64_at(56),
        })
    }

    /// The exact inverse of [`Event::from_bytes`].
    pub fn to_bytes(&self) -> [u8; EVENT_SIZE] {
        let mut out = [0u8; EVENT_SIZE];
        out[0..8].copy_from_slice(&self.ts.to_ne_bytes());
        out[8..12].copy_from_slice(&self.kind.to_ne_bytes());
        out[12..16].copy_from_slice(&self.tid.to_ne_bytes());
        out[16..20].copy_from_slice(&self.pid.to_ne_bytes());
        out[20..24].copy_from_slice(&self.p.to_ne_bytes());
        out[24..32].copy_from_slice(&self.goid.to_ne_bytes());
        out[32..40].copy_from_slice(&self.m.to_ne_bytes());
        out[40..48].copy_from_slice(&self.arg0.to_ne_bytes());
        out[48..56].copy_from_slice(&self.arg1.to_ne_bytes());
        out[56..64].copy_from_slice(&self.arg2.to_ne_bytes());
        out
    }
}
