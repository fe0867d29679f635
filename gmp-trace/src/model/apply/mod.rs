//! How each event changes the model, one file per event family. `Model::apply` (in the parent
//! module) holds the one match on the event kind and calls the handlers here; this module adds
//! the bookkeeping every thread-bound event gets first.
//!
//! - `goroutines`: creation, status changes, starts and exit, and `transition`, the one place
//!   a goroutine changes state (with the latency, P-time and creation-site aggregates).
//! - `threads`: M lifecycle and activity, P acquire/release, spinning and steals.
//! - `syscalls`: system calls, and reconciling them with what Go's tracer reports when the P
//!   was lost meanwhile (the rules differ before and after Go 1.26).
//! - `runtime`: GOMAXPROCS (procresize), stop-the-world, GC and runtime.main.
//!
//! The model runs per event (tens of millions a second in replay), so the split must not add
//! calls, lookups or allocations on that path: handlers that stand for an arm of `apply`'s
//! match, or a piece of one hot function, are `#[inline(always)]`, so the compiler sees the same
//! code as one match would give it (plain `#[inline]` left `on_execute` and `on_schedule` as
//! calls, and cost measurably: cachegrind on a replay). Functions that were calls before stay
//! calls.
use gmp_trace_common::Event;

use super::{Model, Proc, Thread};

mod goroutines;
mod runtime;
mod syscalls;
mod threads;

impl Model {
    /// Counts a thread-bound event and notes its time, startup milestone, thread (and m.id)
    /// and P (and whether the P changed threads). Returns whether procresize had just begun on
    /// this thread: only the event right after it on the same thread can be its acquirep.
    #[inline(always)]
    pub(super) fn observe(&mut self, e: &Event) -> bool {
        self.events += 1;
        self.startup.apply(e);
        self.first_ts = Some(self.first_ts.map_or(e.ts, |t| t.min(e.ts)));
        self.last_ts = Some(self.last_ts.map_or(e.ts, |t| t.max(e.ts)));
        let th = self.threads.get_or_insert_with(e.tid, || Thread {
            tid: e.tid,
            ..Thread::default()
        });
        th.events += 1;
        let resize_pending = std::mem::take(&mut th.resize_pending);
        if e.m >= 0 {
            th.m = Some(e.m);
        }
        if e.p >= 0 {
            let p = self.procs.get_or_insert_with(e.p, || Proc {
                id: e.p,
                ..Proc::default()
            });
            if p.last_tid != Some(e.tid) {
                p.last_tid = Some(e.tid);
                p.owner_changes += 1;
            }
        }
        resize_pending
    }
}
