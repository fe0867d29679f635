//! Go's words for why a goroutine blocked or the world stopped, from the runtime's numbers in
//! our events. Go's tracer does not write `g.waitreason` but a coarser `traceBlockReason`
//! (runtime/traceruntime.go) chosen at each gopark site; the mapping below follows those
//! sites. Also which waits Go's tracer never shows: the runtime parks a running goroutine in
//! _Gwaiting on the system stack (casGToWaiting*) while it stops the world, scans stacks or
//! assists the GC, and lets it run on without a trace event; we see those through casgstatus
//! and leave them out the same way.
use crate::export::perfetto::waitreason::{major_minor, stw_reasons, wait_reasons};

/// Waits the runtime enters with casGToWaiting / casGToWaitingForSuspendG (or, before 1.21,
/// the same casgstatus calls), for which Go's tracer writes nothing: the runtime's
/// `isWaitingForSuspendG` set, and the heap dump's wait. ("debug call" is not here: its
/// casGToWaiting is followed by a traced park.)
const HIDDEN: &[&str] = &[
    "stopping the world",
    "GC mark termination",
    "garbage collection",
    "garbage collection scan",
    "trace goroutine status",
    "trace proc status",
    "page trace flush",
    "GC assist marking",
    "GC worker (active)",
    "flushing proc caches",
    "dumping heap",
];

/// The names of one Go version's wait and stop-the-world reasons.
pub struct Reasons {
    wait: &'static [&'static str],
    stw: &'static [&'static str],
}

impl Reasons {
    pub fn for_version(go_version: &str) -> Reasons {
        let wait = wait_reasons(go_version).unwrap_or(match major_minor(go_version) {
            // Go 1.19 and 1.20, before the Perfetto exporter's tables (1.21 on): the runtime's own.
            Some((1, m @ (19 | 20))) => crate::binary::names::wait_reasons(m),
            _ => &[],
        });
        Reasons {
            wait,
            stw: stw_reasons(go_version).unwrap_or(&[]),
        }
    }

    fn wait_name(&self, reason: u8) -> Option<&'static str> {
        self.wait.get(reason as usize).copied()
    }

    /// Whether Go's tracer leaves a wait with this reason out.
    pub fn hidden(&self, reason: u8) -> bool {
        self.wait_name(reason).is_some_and(|n| HIDDEN.contains(&n))
    }

    /// The string Go's tracer writes on GoBlock for a wait with this reason.
    pub fn block(&self, reason: u8) -> &'static str {
        self.wait_name(reason).map_or("unspecified", block_reason)
    }

    /// The string of STWBegin for a stwReason.
    pub fn stw(&self, reason: u64) -> String {
        match self.stw.get(reason as usize) {
            Some(s) => s.to_string(),
            None => format!("stw reason {reason}"),
        }
    }
}

/// The traceBlockReason string of the gopark sites that use a wait reason.
pub fn block_reason(wait: &str) -> &'static str {
    match wait {
        "chan receive (nil chan)" | "chan send (nil chan)" | "select (no cases)" | "panicwait" => {
            "forever"
        }
        "IO wait" => "network",
        "select" => "select",
        "sync.Cond.Wait" => "sync.(*Cond).Wait",
        "GC assist wait" => "GC mark assist wait for work",
        "GC sweep wait" => "GC background sweeper wait",
        "wait for GC cycle" => "wait until GC ends",
        "sleep" => "sleep",
        "preempted" => "preempted",
        "debug call" => "wait for debug call",
        "GC weak to strong wait" => "GC weak to strong wait",
        "finalizer wait"
        | "force gc (idle)"
        | "GC worker (idle)"
        | "GC scavenge wait"
        | "trace reader (blocked)"
        | "timer goroutine (idle)"
        | "cleanup wait"
        | "GOMAXPROCS updater (idle)" => "system goroutine wait",
        w if w.starts_with("chan send") => "chan send",
        w if w.starts_with("chan receive") => "chan receive",
        w if w.starts_with("synctest") => "synctest",
        w if w.starts_with("semacquire")
            || w.starts_with("sync.Mutex")
            || w.starts_with("sync.RWMutex")
            || w.starts_with("sync.WaitGroup") =>
        {
            "sync"
        }
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_version() {
        let r = Reasons::for_version("go1.19.8");
        assert_eq!(r.block(14), "chan receive");
        assert!(r.hidden(7));
        let r = Reasons::for_version("go1.27.3");
        assert!(r.hidden(
            r.wait
                .iter()
                .position(|n| *n == "stopping the world")
                .unwrap() as u8
        ));
        assert_eq!(block_reason("sync.Mutex.Lock"), "sync");
        assert_eq!(block_reason("chan receive (nil chan)"), "forever");
        assert_eq!(Reasons::for_version("go1.18").block(3), "unspecified");
    }
}
