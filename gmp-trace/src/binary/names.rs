//! Go's own names and print rules for goroutine dumps, per Go release 1.19 .. 1.27: the status
//! and wait-reason strings `runtime.goroutineheader` prints, the P status names, which goroutines
//! `runtime.tracebackothers` hides, which frames `runtime.showfuncinfo` hides and how
//! `runtime.traceback1` shortens long stacks. The numberings change between releases, so every
//! table is keyed by the Go minor release; the tests check each table against the `runtime`
//! sources of every installed toolchain, so a new release that renumbers fails loudly.
//!
//! Go 1.20 has no toolchain on the test machines: its wait-reason list is the 1.21 list without
//! the three reasons 1.21 added with `casGToWaiting` ("GC worker (active)", "GC mark
//! termination", "stopping the world"); it is the one table no test checks.

/// The scan bit of g.atomicstatus (`_Gscan`): set while the GC scans the goroutine's stack.
pub const G_SCAN: u32 = 0x1000;

/// `_Gwaiting`: the only status (with 1.26's `_Gleaked`) whose name the wait reason replaces.
pub const G_WAITING: u32 = 4;

/// `gStatusStrings` as (value, name, first release that has it). Values 5 and 7
/// (`_Gmoribund_unused`, `_Genqueue_unused`) are holes of Go's array: Go prints "" for them.
const G_STATUS: &[(u32, &str, u32)] = &[
    (0, "idle", 0),
    (1, "runnable", 0),
    (2, "running", 0),
    (3, "syscall", 0),
    (4, "waiting", 0),
    (6, "dead", 0),
    (8, "copystack", 0),
    (9, "preempted", 0),
    (10, "leaked", 26),
    (11, "waiting for cgo callback", 26),
];

/// Go's name for a goroutine status word (scan bit ignored), in any release: no value was ever
/// reused, so the newest table serves all. "???" past the end of the table, as Go prints.
pub fn g_status_name(status: u32) -> &'static str {
    g_status_name_in(u32::MAX, status)
}

/// Go's name for a goroutine status word in release 1.`minor`: goroutineheader indexes
/// gStatusStrings, an array with holes ("" for 5 and 7) whose length grew in 1.26.
pub fn g_status_name_in(minor: u32, status: u32) -> &'static str {
    let status = status & !G_SCAN;
    let mut len = 0;
    for &(value, name, since) in G_STATUS {
        if since > minor {
            continue;
        }
        if value == status {
            return name;
        }
        len = value + 1;
    }
    if status < len {
        ""
    } else {
        "???"
    }
}

/// The P status constants (`_Pidle` ..): the runtime prints them only as numbers, so these are
/// the constants' names. 1.26 renamed `_Psyscall` to `_Psyscall_unused` (no P enters it any
/// more); the name stays "syscall".
pub fn p_status_name(status: u32) -> &'static str {
    match status {
        0 => "idle",
        1 => "running",
        2 => "syscall",
        3 => "gcstop",
        4 => "dead",
        _ => "???",
    }
}

// waitReasonStrings, index = the waitReason value, index 0 = waitReasonZero. Releases whose
// numbering only appends share one list, cut to their length.

#[rustfmt::skip]
const WAIT_19: &[&str] = &[
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "timer goroutine (idle)", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
    "preempted", "debug call",
];

/// Go 1.20: not checked against a toolchain (see the module comment).
#[rustfmt::skip]
const WAIT_20: &[&str] = &[
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "preempted", "debug call",
];

/// 1.21 is the first 32 entries, 1.22 the first 37, 1.23 all of them.
#[rustfmt::skip]
const WAIT_21_23: &[&str] = &[
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
    "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
    "GC mark termination", "stopping the world",
    // 1.22
    "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
    "coroutine",
    // 1.23
    "GC weak to strong wait",
];

/// 1.24 inserted "sync.WaitGroup.Wait" in the middle.
#[rustfmt::skip]
const WAIT_24: &[&str] = &[
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "semacquire", "sleep", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait",
    "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)",
    "preempted", "debug call", "GC mark termination", "stopping the world",
    "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
    "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait",
    "chan receive (synctest)", "chan send (synctest)", "select (synctest)",
];

/// 1.25 inserted "GOMAXPROCS updater (idle)" and renamed the synctest reasons "(durable)".
#[rustfmt::skip]
const WAIT_25: &[&str] = &[
    "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)",
    "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select",
    "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive",
    "chan send", "finalizer wait", "force gc (idle)", "GOMAXPROCS updater (idle)", "semacquire",
    "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock",
    "sync.WaitGroup.Wait", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
    "GC worker (active)", "preempted", "debug call", "GC mark termination", "stopping the world",
    "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
    "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait",
    "chan receive (durable)", "chan send (durable)", "select (durable)",
    "sync.WaitGroup.Wait (durable)", "cleanup wait",
];

/// 1.26 moved the channel and select reasons after "sleep", next to the sync ones; 1.27 kept
/// that order.
#[rustfmt::skip]
const WAIT_26: &[&str] = &[
    "", "GC assist marking", "IO wait", "dumping heap", "garbage collection",
    "garbage collection scan", "panicwait", "GC assist wait", "GC sweep wait",
    "GC scavenge wait", "finalizer wait", "force gc (idle)", "GOMAXPROCS updater (idle)",
    "semacquire", "sleep", "chan receive (nil chan)", "chan send (nil chan)",
    "select (no cases)", "select", "chan receive", "chan send", "sync.Cond.Wait",
    "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait",
    "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)",
    "preempted", "debug call", "GC mark termination", "stopping the world",
    "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
    "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait",
    "chan receive (durable)", "chan send (durable)", "select (durable)",
    "sync.WaitGroup.Wait (durable)", "cleanup wait",
];

/// waitReasonStrings of release 1.`minor`, index = waitReason value. Releases before 1.19 get
/// 1.19's, releases after 1.27 get 1.27's (the newest known numbering, best effort).
pub fn wait_reasons(minor: u32) -> &'static [&'static str] {
    match minor {
        ..=19 => WAIT_19,
        20 => WAIT_20,
        21 => &WAIT_21_23[..32],
        22 => &WAIT_21_23[..37],
        23 => WAIT_21_23,
        24 => WAIT_24,
        25 => WAIT_25,
        _ => WAIT_26,
    }
}

/// Go's text for g.waitreason `code` in release 1.`minor`; `None` for waitReasonZero and for
/// codes past the release's table (where Go would print "unknown wait reason").
pub fn wait_reason(minor: u32, code: u8) -> Option<&'static str> {
    match wait_reasons(minor).get(usize::from(code)) {
        Some(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Go's isSystemGoroutine(gp, false) for a goroutine started at `start_function` that is not
/// running a finalizer or cleanup right now: runtime.* start functions are system goroutines,
/// except runtime.main (and runtime.handleAsyncEvent, wasm only) in every release and
/// runtime.corostart from 1.22 on. The finalizer goroutine (runtime.runfinq before 1.25,
/// runtime.runFinalizers from 1.25) and the cleanup goroutines (runtime.runCleanups, 1.25+)
/// are system goroutines only while idle: Go shows them while they run user code, which a
/// reader of memory cannot tell apart here (the caller decides for those).
pub fn is_system_goroutine(minor: u32, start_function: &str) -> bool {
    match start_function {
        "runtime.main" | "runtime.handleAsyncEvent" => false,
        "runtime.corostart" if minor >= 22 => false,
        f => f.starts_with("runtime."),
    }
}

/// Go's isExportedRuntime: an exported function of package runtime (shown in tracebacks).
/// Before 1.23 only the first letter after "runtime." counted, so methods such as
/// runtime.(*Func).Name were hidden; from 1.23 an exported method of an exported type counts.
pub fn is_exported_runtime(minor: u32, name: &str) -> bool {
    let Some(rest) = name.strip_prefix("runtime.") else {
        return false;
    };
    let upper = |s: &str| s.as_bytes().first().is_some_and(u8::is_ascii_uppercase);
    if minor < 23 {
        return upper(rest);
    }
    let (rcvr, func) = match rest.rfind('.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => ("", rest),
    };
    let rcvr = rcvr
        .strip_prefix("(*")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(rcvr);
    upper(func) && (rcvr.is_empty() || upper(rcvr))
}

/// Go's showfuncinfo at GOTRACEBACK=single/all (what runtime.Stack uses) for a frame of
/// `function` (its name as the binary holds it); `first` is true while no frame of the stack
/// has been shown yet (runtime.gopanic is hidden only there). `show_runtime` is
/// GOTRACEBACK=system: every frame shows. Wrapper elision needs the frame's neighbours and is
/// in [`wrapper_hidden`].
pub fn shows_frame(minor: u32, function: &str, first: bool, show_runtime: bool) -> bool {
    if show_runtime {
        return true;
    }
    // 1.25+ always shows these (by funcID) so a finalizer's stack says where it runs.
    if minor >= 25 && matches!(function, "runtime.runFinalizers" | "runtime.runCleanups") {
        return true;
    }
    if function == "runtime.gopanic" && !first {
        return true;
    }
    function.contains('.')
        && (!function.starts_with("runtime.") || is_exported_runtime(minor, function))
}

/// Go hides a compiler-generated wrapper frame (`is_wrapper`: funcID wrapper, see
/// [`func_id_wrapper`]) unless the function it called (`callee`, the next frame inward; `None`
/// for the innermost) is a panic function, so that the panic's cause stays visible.
pub fn wrapper_hidden(is_wrapper: bool, callee: Option<&str>, show_runtime: bool) -> bool {
    !show_runtime
        && is_wrapper
        && !matches!(
            callee,
            Some("runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap")
        )
}

/// The name a traceback prints for `function`: runtime.gopanic prints as "panic".
pub fn print_name(function: &str) -> &str {
    if function == "runtime.gopanic" {
        "panic"
    } else {
        function
    }
}

/// How a release shortens a long stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elision {
    /// Up to 1.20 (gentraceback with `_TracebackMaxFrames`): only the innermost `max`
    /// physical frames (shown or hidden, each with its inlined calls) are walked, and
    /// "...additional frames elided..." follows when exactly `max` frames were printed.
    FirstPhysical { max: usize },
    /// From 1.21 (`tracebackInnerFrames`, `tracebackOuterFrames`): when more than
    /// inner + outer frames would show, the innermost `inner`, then
    /// "...N frames elided...", then the outermost `outer`.
    InnerOuter { inner: usize, outer: usize },
}

/// The elision rule of release 1.`minor`.
pub fn elision(minor: u32) -> Elision {
    if minor <= 20 {
        Elision::FirstPhysical { max: 100 }
    } else {
        Elision::InnerOuter {
            inner: 50,
            outer: 50,
        }
    }
}

/// The line Go prints where frames were left out (without the newline).
pub fn elision_line(minor: u32, elided: usize) -> String {
    match elision(minor) {
        Elision::FirstPhysical { .. } => "...additional frames elided...".to_string(),
        Elision::InnerOuter { .. } => format!("...{elided} frames elided..."),
    }
}

/// Whether `created by` names the creating goroutine (`in goroutine N`, g.parentGoid): 1.21+.
pub fn prints_parent_goid(minor: u32) -> bool {
    minor >= 21
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;

/// The funcID the compiler gives wrappers (abi.FuncIDWrapper, runtime.funcID_wrapper in 1.19):
/// method and interface wrappers, the closures `go f(x)` compiles to (`gowrapN`), hash and eq
/// functions. Tracebacks hide them. Its number moved as special functions were added before it.
pub fn func_id_wrapper(minor: u32) -> u8 {
    match minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}
