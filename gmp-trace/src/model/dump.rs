//! A goroutine dump: every goroutine, thread (M) and processor (P) of a live Go process at one
//! moment, as read from the runtime's own memory (no probe, no signal, no stop). Plain data: the
//! reader in `process/snapshot.rs` fills it, the exporters in `export/godump/` print it in Go's
//! traceback format, grouped, or as JSON (docs/formats.md).
use std::sync::Arc;

use serde::Serialize;

/// One snapshot of a process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dump {
    pub pid: u32,
    /// As the binary's build info says it, e.g. "go1.27.3".
    pub go_version: String,
    /// The Go minor release (27 for go1.27.3): Go's names and print rules depend on it.
    #[serde(skip)]
    pub go_minor: u32,
    /// Wall clock (CLOCK_REALTIME, ns since the Unix epoch) when the reading began.
    pub taken_at_ns: u64,
    /// How long the reading took.
    pub duration_ns: u64,
    /// In runtime.allgs order (Go's own dump order), dead goroutines left out.
    pub goroutines: Vec<Goroutine>,
    /// The runtime.allm list, in list order.
    pub threads: Vec<Thread>,
    /// runtime.allp, by P id.
    pub procs: Vec<Proc>,
    /// Goroutines whose reads kept changing under us after every retry: their stack (and maybe
    /// their state) is left out rather than printed wrong.
    pub torn_reads: u64,
    /// Why the reading stopped before the end (the process exited, memory became unreadable);
    /// `None` for a whole dump.
    pub incomplete: Option<String>,
}

/// One goroutine.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Goroutine {
    pub goid: u64,
    /// Go's name for g.atomicstatus (scan bit removed): "runnable", "running", "syscall",
    /// "waiting", "copystack", "preempted", ...
    pub status: &'static str,
    /// The status word as read (g.atomicstatus, scan bit 0x1000 included).
    #[serde(skip)]
    pub status_raw: u32,
    /// Go's text for g.waitreason in the target's release ("chan receive", "select",
    /// "sync.Mutex.Lock", "IO wait", "sleep", ...); `None` when it has none (waitReasonZero).
    pub wait_reason: Option<&'static str>,
    /// Now minus g.waitsince, when the runtime has set it (it does so lazily, at GC time).
    pub waiting_ns: Option<u64>,
    /// m.id of g.m: the thread running it (or blocked in a system call with it).
    pub m: Option<i64>,
    /// p.id of that M's P.
    pub p: Option<i32>,
    /// g.lockedm != 0 (runtime.LockOSThread).
    pub locked_to_thread: bool,
    /// A runtime-internal goroutine (its start function is in package runtime, but not
    /// runtime.main): Go's own dump hides these unless GOTRACEBACK=system.
    pub system: bool,
    /// The function the goroutine was started with (g.startpc), Go's print name.
    pub start_function: Option<Arc<str>>,
    /// Where `go` ran (g.gopc) and in which goroutine.
    pub created_by: Option<CreatedBy>,
    /// g.parentGoid (Go 1.21+).
    pub parent_goid: Option<u64>,
    /// In JSON: `"stack": "frames"` with `"frames": [...]`, or `"stack": "running"`,
    /// `"stack": "torn"` with `"reason"`, `"stack": "unavailable"`.
    #[serde(flatten)]
    pub stack: Stack,
}

/// A goroutine's call stack, or why there is none.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(tag = "stack", rename_all = "snake_case")]
pub enum Stack {
    /// Innermost first, inlined calls expanded (every frame of package runtime included; the
    /// text exporter hides them the way Go does).
    /// Shared by every goroutine with the same stack (a million goroutines parked in one place
    /// hold one copy).
    Frames { frames: Arc<[Frame]> },
    /// Running on a CPU at that instant: it has no saved context, so its stack needs a sample.
    Running,
    /// The reads kept changing (see [`Dump::torn_reads`]) or the frame chain was implausible.
    Torn { reason: String },
    /// Not read (for example a goroutine that had no stack yet).
    #[default]
    Unavailable,
}

/// One frame; an inlined call is a frame of its own, like runtime.CallersFrames gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    /// Go's print name ("main.worker", "main.(*T).m", "main.f[...]").
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// An inlined call (no frame of its own on the stack).
    pub inlined: bool,
    /// A compiler-generated wrapper (a method or `go` statement wrapper): Go's traceback hides
    /// these.
    pub wrapper: bool,
    /// The frame's pc: the return address for a caller's frame, as the stack holds it.
    pub pc: u64,
    /// pc minus the physical function's entry, Go's `+0x..`; `None` for inlined frames.
    pub offset: Option<u64>,
}

/// `created by` of a goroutine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct CreatedBy {
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// The creating goroutine (g.parentGoid; `None` before Go 1.21, where Go does not print it).
    pub goid: Option<u64>,
    /// g.gopc minus the creating function's entry, Go's `+0x..`.
    pub offset: u64,
}

/// An M of runtime.allm.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Thread {
    /// m.id.
    pub m: i64,
    /// The OS thread id (m.procid).
    pub tid: u64,
    /// goid of m.curg: the goroutine it runs (or is in a system call with).
    pub curg: Option<u64>,
    /// p.id of m.p.
    pub p: Option<i32>,
    /// m.spinning: looking for work.
    pub spinning: bool,
}

/// A P of runtime.allp.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Proc {
    pub p: i32,
    /// Go's name for p.status: "idle", "running", "syscall", "gcstop", "dead".
    pub status: &'static str,
    /// m.id of p.m.
    pub m: Option<i64>,
    /// Goroutines in its local run queue (runqtail - runqhead).
    pub runq: u32,
}
