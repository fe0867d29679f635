//! The CPU sampler's record: what the perf-event program saw when the clock interrupted a thread
//! of the target (the goroutine, M, P and the interrupted user registers) followed by a copy of
//! the top of the user stack, which the daemon unwinds with `.gopclntab` (Go code keeps no
//! reliable frame-pointer chain through frameless leaves, so BPF's own stack walk cannot do it).
//!
//! One record per sample in the `SAMPLES` ring buffer: a fixed size (the ring reservation size
//! must be a constant), of which only `stack_len` bytes of `stack` are meaningful.

/// Bytes of user stack copied per sample, from the interrupted SP upwards: enough for the
/// innermost few dozen Go frames (typical frames are 32-200 bytes). A constant because the
/// ring buffer reservation's size must be one; the rest of a deeper stack is cut (the sample is
/// then marked truncated).
pub const SAMPLE_STACK: usize = 4096;

/// Flags of [`SampleHeader::flags`].
pub mod flags {
    /// The clock interrupted kernel mode (a system call, a page fault...): there are no user
    /// registers and no stack copy, only the goroutine attribution.
    pub const IN_KERNEL: u32 = 1;
    /// The thread ran on its M's g0 (scheduler, GC, `systemstack` calls); `goid`/`start_pc` are
    /// then the M's current goroutine's (m.curg, the one the work is done for), 0 when none.
    pub const ON_G0: u32 = 2;
    /// No g could be read (TLS offsets unknown, or a thread the runtime does not run Go on).
    pub const NO_G: u32 = 4;
    /// The full copy faulted (the stack's mapping ends sooner): a shorter one was taken.
    pub const COPY_SHORT: u32 = 8;
}

/// Bytes of the charged goroutine's own stack copied for a sample on g0 (from its saved
/// `g.sched.sp` up): when the g0 code runs in a `systemstack` call made for that goroutine, the
/// daemon continues the walk there, as Go's own profiler does, so the call is charged to the
/// Go code that made it.
pub const SAMPLE_CURG_STACK: usize = 4096;

/// Indexes into the per-CPU `SAMPLE_STATS` array.
pub mod stat {
    /// Samples of the target recorded.
    pub const TAKEN: u32 = 0;
    /// Samples of the target lost because the `SAMPLES` ring was full.
    pub const DROPPED: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// The fixed part of a sample.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleHeader {
    /// CLOCK_MONOTONIC ns (`bpf_ktime_get_ns`).
    pub ts: u64,
    /// The g in the thread's TLS slot (g0, gsignal or a user goroutine), 0 when unreadable.
    pub g: u64,
    /// That goroutine's goid (see [`flags::ON_G0`]); 0 for none.
    pub goid: u64,
    /// m.id, -1 when unknown.
    pub m: i64,
    /// g.startpc of the goroutine in `goid` (process address), 0 when unknown.
    pub start_pc: u64,
    /// Interrupted user registers: RIP, RSP, RBP (0 for a kernel-mode sample).
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// The running g's stack bounds (g.stack), 0 when unknown: the unwinder's limits.
    pub stack_lo: u64,
    pub stack_hi: u64,
    /// Thread id and process id (tgid).
    pub tid: u32,
    pub pid: u32,
    /// p.id of the M's P, -1 when none.
    pub p: i32,
    /// [`flags`].
    pub flags: u32,
    /// The CPU the sample was taken on.
    pub cpu: u32,
    /// Bytes of `stack` that hold the user stack from `sp` on.
    pub stack_len: u32,
    /// On g0 ([`flags::ON_G0`]) with a current goroutine: its saved context (g.sched pc, sp)
    /// and stack bounds, 0 when none or unknown...
    pub curg_pc: u64,
    pub curg_sp: u64,
    pub curg_lo: u64,
    pub curg_hi: u64,
    /// ...and the bytes of `curg_stack` that hold its stack from `curg_sp` on.
    pub curg_stack_len: u32,
    pub _pad: u32,
}

pub const SAMPLE_HEADER_SIZE: usize = 144;
const _: () = assert!(core::mem::size_of::<SampleHeader>() == SAMPLE_HEADER_SIZE);

/// A record's stack copies, as [`SampleHeader::parse`] finds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleStacks<'a> {
    /// The interrupted (or kernel-entering) thread's stack from `sp` on.
    pub own: &'a [u8],
    /// On g0, the current goroutine's from `curg_sp` on (empty when none).
    pub curg: &'a [u8],
}

/// One record of the `SAMPLES` ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Sample {
    pub header: SampleHeader,
    pub stack: [u8; SAMPLE_STACK],
    pub curg_stack: [u8; SAMPLE_CURG_STACK],
}

pub const SAMPLE_SIZE: usize = SAMPLE_HEADER_SIZE + SAMPLE_STACK + SAMPLE_CURG_STACK;
const _: () = assert!(core::mem::size_of::<Sample>() == SAMPLE_SIZE);
const _: () = assert!(core::mem::align_of::<Sample>() == 8);

impl SampleHeader {
    /// Decodes a record's header, its stack bytes (`stack_len` of them) and the current
    /// goroutine's (`curg_stack_len`), each capped by what the record holds; `None` when the
    /// record is shorter than a header.
    pub fn parse(b: &[u8]) -> Option<(SampleHeader, SampleStacks<'_>)> {
        if b.len() < SAMPLE_HEADER_SIZE {
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
        let h = SampleHeader {
            ts: u64_at(0),
            g: u64_at(8),
            goid: u64_at(16),
            m: u64_at(24) as i64,
            start_pc: u64_at(32),
            pc: u64_at(40),
            sp: u64_at(48),
            bp: u64_at(56),
            stack_lo: u64_at(64),
            stack_hi: u64_at(72),
            tid: u32_at(80),
            pid: u32_at(84),
            p: u32_at(88) as i32,
            flags: u32_at(92),
            cpu: u32_at(96),
            stack_len: u32_at(100),
            curg_pc: u64_at(104),
            curg_sp: u64_at(112),
            curg_lo: u64_at(120),
            curg_hi: u64_at(128),
            curg_stack_len: u32_at(136),
            _pad: 0,
        };
        let rest = &b[SAMPLE_HEADER_SIZE..];
        let own = &rest[..rest.len().min(SAMPLE_STACK)];
        let own = &own[..(h.stack_len as usize).min(own.len())];
        let curg = rest.get(SAMPLE_STACK..).unwrap_or_default();
        let curg = &curg[..(h.curg_stack_len as usize)
            .min(curg.len())
            .min(SAMPLE_CURG_STACK)];
        Some((h, SampleStacks { own, curg }))
    }
}
