//! Names of the runtime's `waitReason` and `stwReason` values, per Go version.
//!
//! The numbering moves between releases (e.g. "chan receive" is 14 up to Go 1.25 and 19 from
//! 1.26), so each table is keyed by Go major.minor. Generated from `runtime/runtime2.go`
//! (`waitReason` constants in declaration order, `waitReasonStrings`) and `runtime/proc.go`
//! (`stwReason`, `stwReasonStrings`) of Go 1.21.13, 1.22.10, 1.23.9, 1.24.11, 1.25.5, 1.26.6 and
//! 1.27.3; 1.26 and 1.27 share one table. Regenerate when adding a Go version.

/// The `waitReason` names of a Go version given as "go1.27.3", "1.27" or similar; `None` for
/// versions outside 1.21..=1.27 (numbering unknown: callers print the number).
pub fn wait_reasons(go_version: &str) -> Option<&'static [&'static str]> {
    Some(match major_minor(go_version)? {
        (1, 21) => WAIT_1_21,
        (1, 22) => WAIT_1_22,
        (1, 23) => WAIT_1_23,
        (1, 24) => WAIT_1_24,
        (1, 25) => WAIT_1_25,
        (1, 26) | (1, 27) => WAIT_1_26,
        _ => return None,
    })
}

/// The `stwReason` names (identical from Go 1.21 through 1.27).
pub fn stw_reasons(go_version: &str) -> Option<&'static [&'static str]> {
    match major_minor(go_version)? {
        (1, 21..=27) => Some(STW_1_21),
        _ => None,
    }
}

/// (major, minor) of "go1.27.3", "1.27", "go1.26rc1", "devel go1.28-abc" and the like.
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let start = v.find(|c: char| c.is_ascii_digit())?;
    let mut parts = v[start..].split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Go 1.21.
#[rustfmt::skip]
const WAIT_1_21: &[&str] = &[
    "", // 0
    "GC assist marking", // 1
    "IO wait", // 2
    "chan receive (nil chan)", // 3
    "chan send (nil chan)", // 4
    "dumping heap", // 5
    "garbage collection", // 6
    "garbage collection scan", // 7
    "panicwait", // 8
    "select", // 9
    "select (no cases)", // 10
    "GC assist wait", // 11
    "GC sweep wait", // 12
    "GC scavenge wait", // 13
    "chan receive", // 14
    "chan send", // 15
    "finalizer wait", // 16
    "force gc (idle)", // 17
    "semacquire", // 18
    "sleep", // 19
    "sync.Cond.Wait", // 20
    "sync.Mutex.Lock", // 21
    "sync.RWMutex.RLock", // 22
    "sync.RWMutex.Lock", // 23
    "trace reader (blocked)", // 24
    "wait for GC cycle", // 25
    "GC worker (idle)", // 26
    "GC worker (active)", // 27
    "preempted", // 28
    "debug call", // 29
    "GC mark termination", // 30
    "stopping the world", // 31
];

/// Go 1.22.
#[rustfmt::skip]
const WAIT_1_22: &[&str] = &[
    "", // 0
    "GC assist marking", // 1
    "IO wait", // 2
    "chan receive (nil chan)", // 3
    "chan send (nil chan)", // 4
    "dumping heap", // 5
    "garbage collection", // 6
    "garbage collection scan", // 7
    "panicwait", // 8
    "select", // 9
    "select (no cases)", // 10
    "GC assist wait", // 11
    "GC sweep wait", // 12
    "GC scavenge wait", // 13
    "chan receive", // 14
    "chan send", // 15
    "finalizer wait", // 16
    "force gc (idle)", // 17
    "semacquire", // 18
    "sleep", // 19
    "sync.Cond.Wait", // 20
    "sync.Mutex.Lock", // 21
    "sync.RWMutex.RLock", // 22
    "sync.RWMutex.Lock", // 23
    "trace reader (blocked)", // 24
    "wait for GC cycle", // 25
    "GC worker (idle)", // 26
    "GC worker (active)", // 27
    "preempted", // 28
    "debug call", // 29
    "GC mark termination", // 30
    "stopping the world", // 31
    "flushing proc caches", // 32
    "trace goroutine status", // 33
    "trace proc status", // 34
    "page trace flush", // 35
    "coroutine", // 36
];

/// Go 1.23.
#[rustfmt::skip]
const WAIT_1_23: &[&str] = &[
    "", // 0
    "GC assist marking", // 1
    "IO wait", // 2
    "chan receive (nil chan)", // 3
    "chan send (nil chan)", // 4
    "dumping heap", // 5
    "garbage collection", // 6
    "garbage collection scan", // 7
    "panicwait", // 8
    "select", // 9
    "select (no cases)", // 10
    "GC assist wait", // 11
    "GC sweep wait", // 12
    "GC scavenge wait", // 13
    "chan receive", // 14
    "chan send", // 15
    "finalizer wait", // 16
    "force gc (idle)", // 17
    "semacquire", // 18
    "sleep", // 19
    "sync.Cond.Wait", // 20
    "sync.Mutex.Lock", // 21
    "sync.RWMutex.RLock", // 22
    "sync.RWMutex.Lock", // 23
    "trace reader (blocked)", // 24
    "wait for GC cycle", // 25
    "GC worker (idle)", // 26
    "GC worker (active)", // 27
    "preempted", // 28
    "debug call", // 29
    "GC mark termination", // 30
    "stopping the world", // 31
    "flushing proc caches", // 32
    "trace goroutine status", // 33
    "trace proc status", // 34
    "page trace flush", // 35
    "coroutine", // 36
    "GC weak to strong wait", // 37
];

/// Go 1.24.
#[rustfmt::skip]
const WAIT_1_24: &[&str] = &[
    "", // 0
    "GC assist marking", // 1
    "IO wait", // 2
    "chan receive (nil chan)", // 3
    "chan send (nil chan)", // 4
    "dumping heap", // 5
    "garbage collection", // 6
    "garbage collection scan", // 7
    "panicwait", // 8
    "select", // 9
    "select (no cases)", // 10
    "GC assist wait", // 11
    "GC sweep wait", // 12
    "GC scavenge wait", // 13
    "chan receive", // 14
    "chan send", // 15
    "finalizer wait", // 16
    "force gc (idle)", // 17
    "semacquire", // 18
    "sleep", // 19
    "sync.Cond.Wait", // 20
    "sync.Mutex.Lock", // 21
    "sync.RWMutex.RLock", // 22
    "sync.RWMutex.Lock", // 23
    "sync.WaitGroup.Wait", // 24
    "trace reader (blocked)", // 25
    "wait for GC cycle", // 26
    "GC worker (idle)", // 27
    "GC worker (active)", // 28
    "preempted", // 29
    "debug call", // 30
    "GC mark termination", // 31
    "stopping the world", // 32
    "flushing proc caches", // 33
    "trace goroutine status", // 34
    "trace proc status", // 35
    "page trace flush", // 36
    "coroutine", // 37
    "GC weak to strong wait", // 38
    "synctest.Run", // 39
    "synctest.Wait", // 40
    "chan receive (synctest)", // 41
    "chan send (synctest)", // 42
    "select (synctest)", // 43
];

/// Go 1.25.
#[rustfmt::skip]
const WAIT_1_25: &[&str] = &[
    "", // 0
    "GC assist marking", // 1
    "IO wait", // 2
    "chan receive (nil chan)", // 3
    "chan send (nil chan)", // 4
    "dumping heap", // 5
    "garbage collection", // 6
    "garbage collection scan", // 7
    "panicwait", // 8
    "select", // 9
    "select (no cases)", // 10
    "GC assist wait", // 11
    "GC sweep wait", // 12
    "GC scavenge wait", // 13
    "chan receive", // 14
    "chan send", // 15
    "finalizer wait", // 16
    "force gc (idle)", // 17
    "GOMAXPROCS updater (idle)", // 18
    "semacquire", // 19
    "sleep", // 20
    "sync.Cond.Wait", // 21
    "sync.Mutex.Lock", // 22
    "sync.RWMutex.RLock", // 23
    "sync.RWMutex.Lock", // 24
    "sync.WaitGroup.Wait", // 25
    "trace reader (blocked)", // 26
    "wait for GC cycle", // 27
    "GC worker (idle)", // 28
    "GC worker (active)", // 29
    "preempted", // 30
    "debug call", // 31
    "GC mark termination", // 32
    "stopping the world", // 33
    "flushing proc caches", // 34
    "trace goroutine status", // 35
    "trace proc status", // 36
    "page trace flush", // 37
    "coroutine", // 38
    "GC weak to strong wait", // 39
    "synctest.Run", // 40
    "synctest.Wait", // 41
    "chan receive (durable)", // 42
    "chan send (durable)", // 43
    "select (durable)", // 44
    "sync.WaitGroup.Wait (durable)", // 45
    "cleanup wait", // 46
];

/// Go 1.26, 1.27.
#[rustfmt::skip]
const WAIT_1_26: &[&str] = &[
    "", // 0
    "GC assist marking", // 1
    "IO wait", // 2
    "dumping heap", // 3
    "garbage collection", // 4
    "garbage collection scan", // 5
    "panicwait", // 6
    "GC assist wait", // 7
    "GC sweep wait", // 8
    "GC scavenge wait", // 9
    "finalizer wait", // 10
    "force gc (idle)", // 11
    "GOMAXPROCS updater (idle)", // 12
    "semacquire", // 13
    "sleep", // 14
    "chan receive (nil chan)", // 15
    "chan send (nil chan)", // 16
    "select (no cases)", // 17
    "select", // 18
    "chan receive", // 19
    "chan send", // 20
    "sync.Cond.Wait", // 21
    "sync.Mutex.Lock", // 22
    "sync.RWMutex.RLock", // 23
    "sync.RWMutex.Lock", // 24
    "sync.WaitGroup.Wait", // 25
    "trace reader (blocked)", // 26
    "wait for GC cycle", // 27
    "GC worker (idle)", // 28
    "GC worker (active)", // 29
    "preempted", // 30
    "debug call", // 31
    "GC mark termination", // 32
    "stopping the world", // 33
    "flushing proc caches", // 34
    "trace goroutine status", // 35
    "trace proc status", // 36
    "page trace flush", // 37
    "coroutine", // 38
    "GC weak to strong wait", // 39
    "synctest.Run", // 40
    "synctest.Wait", // 41
    "chan receive (durable)", // 42
    "chan send (durable)", // 43
    "select (durable)", // 44
    "sync.WaitGroup.Wait (durable)", // 45
    "cleanup wait", // 46
];

/// Go 1.21 through 1.27.
#[rustfmt::skip]
const STW_1_21: &[&str] = &[
    "unknown", // 0
    "GC mark termination", // 1
    "GC sweep termination", // 2
    "write heap dump", // 3
    "goroutine profile", // 4
    "goroutine profile cleanup", // 5
    "all goroutines stack trace", // 6
    "read mem stats", // 7
    "AllThreadsSyscall", // 8
    "GOMAXPROCS", // 9
    "start trace", // 10
    "stop trace", // 11
    "CountPagesInUse (test)", // 12
    "ReadMetricsSlow (test)", // 13
    "ReadMemStatsSlow (test)", // 14
    "PageCachePagesLeaked (test)", // 15
    "ResetDebugLog (test)", // 16
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chan_receive_moves_in_1_26() {
        assert_eq!(wait_reasons("go1.25.5").unwrap()[14], "chan receive");
        assert_eq!(wait_reasons("go1.26.6").unwrap()[19], "chan receive");
        assert_eq!(wait_reasons("go1.21.13").unwrap()[14], "chan receive");
        assert_eq!(wait_reasons("1.27").unwrap()[19], "chan receive");
        assert!(wait_reasons("go1.20.1").is_none());
        assert!(wait_reasons("go1.28.0").is_none());
        assert!(wait_reasons("unknown").is_none());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(major_minor("go1.27.3"), Some((1, 27)));
        assert_eq!(major_minor("go1.26rc1"), Some((1, 26)));
        assert_eq!(major_minor("devel go1.28-abc"), Some((1, 28)));
        assert_eq!(major_minor("go"), None);
        assert_eq!(stw_reasons("go1.24.1").unwrap()[9], "GOMAXPROCS");
    }
}
