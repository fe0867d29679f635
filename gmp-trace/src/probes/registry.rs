//! The probe registry: which runtime function each BPF program watches, where in that function
//! the uprobe goes, for which Go versions, and at which `--level`. A new probe starts here (and
//! in gmp-trace-ebpf's program of the same name).
//!
//! The probes are placed after each function's stack-check prologue (one trap, ~1 us) rather than
//! on its first instruction (single-stepped, ~10x the cost); `binary::placement` finds the spot.
use gmp_trace_common::phase;
use Placement::{Body, Entry, Returned, Returns};

/// Where in the function a probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Once per call, after the stack-check prologue (arguments still in their registers).
    Body,
    /// The first instruction: for assembly (ABI0) functions, which have no Go prologue.
    Entry,
    /// On every RET instruction (return values in RAX); never a uretprobe, which crashes Go.
    Returns,
    /// Where the function has returned, with its result: in each caller, right after the call
    /// (one trap), else on its RETs (a trap and a single step each). The attach cookie says
    /// where the result is (`gmp_trace_common::result_loc`), so the spec's cookie must be 0.
    Returned,
}

pub struct ProbeSpec {
    /// The BPF program (function name in gmp-trace-ebpf).
    pub program: &'static str,
    /// The Go runtime function it is attached to.
    pub function: &'static str,
    pub placement: Placement,
    /// Handed to the program as its attach cookie (a phase id, a flag).
    pub cookie: u64,
    /// Without it the scheduler picture is wrong: a missing function is an error, not a warning.
    pub required: bool,
    /// Go versions (major.minor) the probe applies to: `since <= v < until`.
    pub since: (u32, u32),
    pub until: (u32, u32),
}

const ALL_VERSIONS: ((u32, u32), (u32, u32)) = ((1, 0), (u32::MAX, 0));

const fn probe(program: &'static str, function: &'static str, placement: Placement) -> ProbeSpec {
    ProbeSpec {
        program,
        function,
        placement,
        cookie: 0,
        required: true,
        since: ALL_VERSIONS.0,
        until: ALL_VERSIONS.1,
    }
}

const fn optional(mut p: ProbeSpec, cookie: u64) -> ProbeSpec {
    p.required = false;
    with_cookie(p, cookie)
}

const fn with_cookie(mut p: ProbeSpec, cookie: u64) -> ProbeSpec {
    p.cookie = cookie;
    p
}

const fn versions(mut p: ProbeSpec, since: (u32, u32), until: (u32, u32)) -> ProbeSpec {
    p.since = since;
    p.until = until;
    p
}

/// Every probe gmp-trace knows, in the order they are attached.
pub const PROBES: &[ProbeSpec] = &[
    // Goroutine lifecycle and scheduling.
    probe("newproc", "runtime.newproc", Body),
    probe("newproc1_ret", "runtime.newproc1", Returned),
    // runtime.execute is not probed: its casgstatus(_Grunnable -> _Grunning) stands for it
    // (source::Derive), one trap fewer per goroutine switch.
    probe("casgstatus", "runtime.casgstatus", Body),
    // A goroutine parked for a GC stack scan (preemptStop) changes status without casgstatus
    // (casGToPreemptScan, then casGFromPreempted to waiting): its block, Go's tracer's
    // GoBlock "preempted", is seen here. The cookie is the release's waitReasonPreempted.
    optional(probe("preempt_park", "runtime.preemptPark", Body), 0),
    probe("goexit1", "runtime.goexit1", Body),
    probe("schedule", "runtime.schedule", Body),
    probe("runtime_main", "runtime.main", Body),
    // Threads and processors. runtime.mstart is assembly (R14 not yet g); it calls mstart0,
    // which calls mstart1: the first point on a new M where R14 is its g0.
    probe("mstart", "runtime.mstart1", Body),
    probe("newm", "runtime.newm1", Body),
    probe("stopm", "runtime.stopm", Body),
    // Go 1.26+ exitsyscall takes a P with acquirepNoTrace (which acquirep calls too).
    versions(probe("acquirep", "runtime.acquirep", Body), (1, 0), (1, 26)),
    versions(
        probe("acquirep", "runtime.acquirepNoTrace", Body),
        (1, 26),
        (u32::MAX, 0),
    ),
    probe("releasep", "runtime.releasep", Body),
    probe("procresize", "runtime.procresize", Body),
    // Spinning Ms and work stealing (Go 1.19-1.27 all keep these out of line: stealWork calls
    // runqsteal, schedule calls resetspinning; checked per toolchain in binary/tests.rs). An M
    // spins from stealWork's entry (findRunnable sets m.spinning right before, if not already)
    // or from acquirep when it was handed its P as a spinning M (startm(pp, true), read from
    // m.spinning there), until resetspinning (found work), releasep (findRunnable drops its P
    // and clears m.spinning; gcstopm likewise), stopm or execute.
    // Optional: profile-guided builds (the Go toolchain's own compile, for one) inline
    // stealWork into findRunnable; the spinning/steal picture is then partial, not wrong.
    optional(probe("steal_work", "runtime.stealWork", Body), 0),
    optional(probe("resetspinning", "runtime.resetspinning", Body), 0),
    // runqsteal's result is the stolen g; its entry keeps the victim P for the return.
    optional(probe("runqsteal", "runtime.runqsteal", Body), 0),
    optional(probe("runqsteal_ret", "runtime.runqsteal", Returned), 0),
    // Stop-the-world, GC, syscalls.
    probe("stw_start", "runtime.stopTheWorldWithSema", Body),
    probe("stw_done", "runtime.startTheWorldWithSema", Body),
    probe("gc_start", "runtime.gcStart", Body),
    probe("gc_done", "runtime.gcMarkTermination", Body),
    probe("syscall_enter", "runtime.entersyscall", Body),
    optional(probe("syscall_enter", "runtime.entersyscallblock", Body), 1),
    probe("syscall_exit", "runtime.exitsyscall", Body),
    // Go 1.26+: the slow path of exitsyscall, taken when the P was gone by the time it looked
    // (after the exitsyscall probe had seen it): the exit was blocked after all.
    versions(
        optional(
            probe("syscall_lost_p", "runtime.exitsyscallTryGetP", Body),
            0,
        ),
        (1, 26),
        (u32::MAX, 0),
    ),
    // Startup milestones (cheap: each fires about once).
    optional(probe("phase_abi0", "runtime.rt0_go", Entry), phase::RT0_GO),
    optional(probe("phase", "runtime.schedinit", Body), phase::SCHEDINIT),
    optional(
        probe("phase_abi0", "runtime.mstart", Entry),
        phase::MSTART_M0,
    ),
    versions(
        probe("init_task", "runtime.doInit1", Body),
        (1, 21),
        (u32::MAX, 0),
    ),
    // Before 1.21 doInit recurses through the task's dependencies: its RETs close tasks.
    versions(
        with_cookie(probe("init_task", "runtime.doInit", Body), 1),
        (1, 0),
        (1, 21),
    ),
    versions(
        with_cookie(probe("phase", "runtime.doInit", Returns), phase::INIT_DONE),
        (1, 0),
        (1, 21),
    ),
    optional(probe("phase", "runtime.gcenable", Body), phase::GCENABLE),
    optional(probe("phase", "main.main", Body), phase::MAIN_MAIN),
    optional(probe("phase_abi0", "runtime.exit", Entry), phase::EXIT),
];

/// How much to trace: each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Goroutine creation and exit, threads, GOMAXPROCS, GC, STW and startup: rare events only.
    Lifecycle,
    /// Plus every goroutine state change and which M and P run it (casgstatus, which also
    /// stands for execute and, from here on, goexit1; acquirep/releasep, stopm).
    Sched,
    /// Plus the scheduler loop, spinning Ms, run-queue steals and system calls (schedule,
    /// stealWork, resetspinning, runqsteal, entersyscall, exitsyscall), and newproc's entry.
    Full,
}

/// The least level at which a program is attached.
pub fn level_of(program: &str) -> Level {
    match program {
        "casgstatus" | "preempt_park" | "acquirep" | "releasep" | "stopm" => Level::Sched,
        "schedule" | "syscall_enter" | "syscall_exit" | "syscall_lost_p" => Level::Full,
        // newproc's entry tells nothing go_create (newproc1's return) does not: the creator
        // (m.curg there) and the function (startpc). Below full it would be one trap more per
        // goroutine for a duplicate.
        "newproc" => Level::Full,
        // Every findRunnable of an M without local work: scheduler hot path.
        "steal_work" | "resetspinning" | "runqsteal" | "runqsteal_ret" => Level::Full,
        _ => Level::Lifecycle,
    }
}

/// Whether aggregate mode attaches `program`: what its counters and latency histogram need
/// (creation, exit, every status change, which includes execute's Runnable -> Running), the
/// run-queue steals, and the rare events it still streams. The scheduler loop, P hand-offs,
/// syscalls and spinning are left out: every probe hit costs about a microsecond whatever the
/// program does with it.
///
/// The steal probes stay although they fire in the scheduler's search loop: on the net/http
/// bench (2k requests, 2 vCPUs, untraced ~68 ms) the program took ~103 ms with them and
/// ~160 ms without them (less CPU, more wall time). Our guess, not verified: a trap in
/// runqsteal slows the spinning Ms' stealing, and they then get in the way of the Ms doing the
/// work less often.
pub fn in_aggregate(program: &str) -> bool {
    !matches!(
        program,
        "newproc"
            | "schedule"
            | "acquirep"
            | "releasep"
            | "stopm"
            | "syscall_enter"
            | "syscall_exit"
            | "syscall_lost_p"
            | "steal_work"
            | "resetspinning"
    )
}

/// `waitReasonPreempted` in Go `(major, minor)`'s runtime (runtime2.go), the wait reason the
/// `preempt_park` probe reports; 0 (no reason) where gmp-trace has not read that release.
pub fn wait_reason_preempted(go: (u32, u32)) -> u64 {
    match go {
        (1, 19) => 25,
        (1, 21..=27) => 28,
        _ => 0,
    }
}
