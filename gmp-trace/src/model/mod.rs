//! The scheduler model: folds the event stream into goroutines (G), threads (M) and processors
//! (P), their states in the vocabulary of Go's execution tracer, and the views derived from
//! them (scheduling latency, P utilization, the creation tree of what is still alive).
//!
//! Fed the same way from a live ring buffer or a recording, so everything here is testable
//! without root. Events from different CPUs can arrive slightly out of timestamp order (the ring
//! buffer orders by reservation), so nothing assumes monotonic time beyond min/max bookkeeping.
//! Memory is O(live goroutines + threads + Ps + creation sites): exited goroutines are folded
//! into aggregates and dropped.
//!
//! Here: what the model holds (`Model`) and how it is fed (`apply` per event, `seed_*` for what
//! existed at attach, `finish` at the end). What each event does lives in `apply/`, one file
//! per event family; the tracked entities in `goroutine`, `thread` and `proc`; the derived
//! views in `views`.
use std::collections::BTreeMap;

use crate::fasthash::{ByP, ByTid, FastMap};

use gmp_trace_common::{Event, EventKind};

mod apply;
pub mod dump;
pub mod goroutine;
pub mod graph;
pub mod hist;
pub mod proc;
pub mod startup;
pub mod thread;
pub mod views;

pub use goroutine::{GoState, Goroutine, Transition, TransitionCounts};
use graph::GraphAgg;
use hist::Histogram;
pub use proc::Proc;
use startup::Startup;
pub use thread::{InSyscall, MState, Thread};

/// Where and when runtime.main began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MainStart {
    pub ts: u64,
    pub goid: u64,
    pub tid: u32,
    pub m: i64,
}

/// A stop-the-world or GC range that has begun and not ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    /// stwReason / gcTriggerKind as the runtime numbers it.
    pub reason: u64,
    pub tid: u32,
}

/// Stop-the-world or GC ranges: how many began, and those still open. Ended ranges are only
/// counted: the outputs need no more, and a long trace has one per GC cycle (a busy server:
/// tens a second, for as long as it is traced).
#[derive(Clone, Debug, Default)]
pub struct Ranges {
    begun: usize,
    /// Oldest first, at most `OPEN_KEPT`: a start whose end was lost would stay open for good.
    pub open: Vec<Range>,
}

/// Open ranges kept (the runtime nests none: one STW or GC at a time).
const OPEN_KEPT: usize = 16;

impl Ranges {
    /// Ranges begun, ended or not.
    pub fn begun(&self) -> usize {
        self.begun
    }

    pub(crate) fn begin(&mut self, r: Range) {
        self.begun += 1;
        if self.open.len() == OPEN_KEPT {
            self.open.remove(0);
        }
        self.open.push(r);
    }

    /// Ends the latest range still open; an end with none open (its start was not seen) is
    /// ignored.
    pub(crate) fn end(&mut self) -> Option<Range> {
        self.open.pop()
    }
}

/// Per creation-site or per-start-function aggregates.
#[derive(Clone, Debug, Default)]
pub struct SiteStats {
    pub created: u64,
    pub exited: u64,
    pub latency: Histogram,
}

#[derive(Debug, Default)]
pub struct Model {
    pub goroutines: FastMap<u64, Goroutine>,
    /// Looked up on every event (see `ByTid`, `ByP`); views sort by tid / P id.
    pub threads: ByTid<Thread>,
    pub procs: ByP<Proc>,
    pub gomaxprocs: Option<u64>,
    /// Events counted by kind number (see `events_by_kind`).
    pub by_kind: [u64; KIND_SLOTS],
    pub events: u64,
    pub lost: u64,
    pub created: u64,
    pub exited: u64,
    /// Exits of goroutines neither seen created nor present at attach: their creation event
    /// was lost (counted in `exited`, not in `created`).
    pub exited_unseen: u64,
    /// The traced program exec'd a new image: tracing ended there, and everything here is the
    /// first image's.
    pub image_replaced: Option<crate::source::exec::Replacement>,
    /// Events that came after that exec (the new image's, or ones racing it): not applied.
    pub events_after_exec: u64,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub runtime_main: Vec<MainStart>,
    /// Events whose kind this build does not know (a newer recording).
    pub unknown_kinds: u64,
    pub startup: Startup,
    /// Runnable -> Running latency over the whole program.
    pub latency: Histogram,
    /// Keyed by the creating call site (g.gopc) and by the start function (g.startpc).
    pub by_create_pc: FastMap<u64, SiteStats>,
    pub by_start_pc: FastMap<u64, SiteStats>,
    /// Transitions counted by (from, to).
    pub transitions: TransitionCounts,
    /// Every transition in order, when asked for (comparison with Go's tracer).
    pub transition_log: Option<Vec<Transition>>,
    pub stw: Ranges,
    pub gc: Ranges,
    /// Goroutines with the worst single scheduling latency: (latency, goid, start pc), bounded.
    pub worst_latency: Vec<(u64, u64, u64)>,
    /// Go >= 1.26 leaves syscalls out of casgstatus on the fast path: take them from the
    /// entersyscall/exitsyscall probes instead.
    pub syscalls_from_probes: bool,
    pub graph: GraphAgg,
    /// Goroutines read from the target at attach (--pid).
    pub seeded: u64,
    /// Forget a goroutine at goexit1 (when state changes are not traced, no casgstatus
    /// to _Gdead will come).
    pub retire_on_exit: bool,
    /// newm seen, its mstart not yet: new m.id -> creating thread.
    pub pending_newm: FastMap<i64, u32>,
    /// Successful run-queue steals, the goroutines they moved, and the attempts that found
    /// nothing (a counter from the probes, see `EventKind::StealFailed`).
    pub steals: u64,
    pub goroutines_stolen: u64,
    pub steal_failed: u64,
    /// Steals by (thief P, victim P): count and goroutines moved.
    pub steal_pairs: BTreeMap<(i32, i32), (u64, u64)>,
    /// Spinning Ms now and the most at once (the runtime's sched.nmspinning, as seen).
    pub spinning_now: u64,
    pub max_spinning: u64,
}

pub const WORST_KEPT: usize = 20;

/// Kind numbers start at 1 and have no gaps (see `EventKind::from_u32`).
pub const KIND_SLOTS: usize = EventKind::ALL.len() + 1;

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// A model for process `pid` built with Go `major.minor`.
    pub fn for_target(pid: u32, go: (u32, u32)) -> Model {
        Model {
            startup: Startup::new(pid, go >= (1, 21)),
            syscalls_from_probes: go >= (1, 26),
            ..Model::default()
        }
    }

    /// Keeps every transition for later comparison (memory grows with the trace).
    pub fn log_transitions(&mut self) {
        self.transition_log.get_or_insert_with(Vec::new);
    }

    /// Folds one event into the model. The one match on the event kind: each family's
    /// handlers live in `apply/` (see there).
    pub fn apply(&mut self, e: &Event) {
        let Some(kind) = EventKind::from_u32(e.kind) else {
            self.unknown_kinds += 1;
            return;
        };
        self.by_kind[kind as usize] += 1;
        if kind == EventKind::LoadBias {
            return; // about addresses, not the scheduler
        }
        if kind == EventKind::Lost {
            // Synthetic: carries the loss, not a runtime observation.
            self.lost += e.arg0;
            return;
        }
        if kind == EventKind::StealFailed {
            // Synthetic too: a counter from the probes, on no thread.
            self.steal_failed += e.arg0;
            return;
        }
        let resize_pending = self.observe(e);
        match kind {
            // Goroutines (apply/goroutines.rs).
            EventKind::GoCreate => self.on_create(e),
            EventKind::GoStatus => self.on_status(e),
            EventKind::Execute => self.on_execute(e),
            EventKind::GoExit => self.on_exit(e),
            // Threads and Ps (apply/threads.rs).
            EventKind::NewM => self.on_new_m(e),
            EventKind::MStart => self.on_mstart(e),
            EventKind::Schedule => self.on_schedule(e),
            EventKind::MIdle => self.set_m_state(e.tid, e.ts, MState::Idle),
            EventKind::AcquireP => self.on_acquire_p(e, resize_pending),
            EventKind::ReleaseP => self.on_release_p(e),
            EventKind::SpinStart => self.on_spin_start(e),
            EventKind::SpinEnd => self.on_spin_end(e),
            EventKind::Steal => self.on_steal(e),
            // System calls (apply/syscalls.rs).
            EventKind::SyscallEnter => self.on_syscall_enter(e),
            EventKind::SyscallExit => self.on_syscall_exit(e),
            EventKind::SyscallLostP => self.syscall_lost_p(e),
            // The runtime as a whole (apply/runtime.rs); startup phases went to `observe`.
            EventKind::ProcResize => self.on_proc_resize(e),
            EventKind::StwStart => self.on_stw_start(e),
            EventKind::StwDone => self.on_stw_done(),
            EventKind::GcStart => self.on_gc_start(e),
            EventKind::GcDone => self.on_gc_done(),
            EventKind::RuntimeMain => self.on_runtime_main(e),
            EventKind::NewProc
            | EventKind::Lost
            | EventKind::Phase
            | EventKind::LoadBias
            | EventKind::StealFailed
            | EventKind::ExecPath
            | EventKind::Stack
            | EventKind::StackPcs => {}
        }
    }

    /// The kinds seen and how often, in kind-number order.
    pub fn events_by_kind(&self) -> impl Iterator<Item = (EventKind, u64)> + '_ {
        EventKind::ALL
            .into_iter()
            .map(|k| (k, self.by_kind[k as usize]))
            .filter(|&(_, n)| n > 0)
    }

    pub fn duration_ns(&self) -> u64 {
        match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }

    /// Goroutines alive at the end (created during the trace or seen running, not exited).
    pub fn live_goroutines(&self) -> usize {
        self.goroutines.values().filter(|g| g.is_live()).count()
    }

    /// Adds a goroutine that existed when tracing began (read from the target's allgs), in the
    /// state the runtime had it. Dead ones are skipped; an unknown status stays Unknown.
    pub fn seed_goroutine(
        &mut self,
        goid: u64,
        status: u32,
        wait_reason: u8,
        start_pc: u64,
        create_pc: u64,
        parent: Option<u64>,
    ) {
        let state = GoState::from_runtime(status as u64);
        if state == GoState::NotExist || goid == 0 {
            return;
        }
        let mut g = Goroutine::unknown(goid);
        g.state = state;
        g.wait_reason = wait_reason;
        g.start_pc = start_pc;
        g.create_pc = create_pc;
        g.parent = parent;
        g.seeded = true;
        self.seeded += 1;
        self.goroutines.insert(goid, g);
    }

    /// Adds an M that existed when tracing began, with the goroutine it ran then (`curg`).
    pub fn seed_thread(&mut self, tid: u32, m: i64, p: Option<i32>, curg: Option<u64>) {
        let th = self.threads.get_or_insert_with(tid, || Thread {
            tid,
            ..Thread::default()
        });
        th.m = Some(m);
        th.p = p;
        th.curg_at_seed = curg;
        if let Some(p) = p {
            self.procs
                .get_or_insert_with(p, || Proc {
                    id: p,
                    ..Proc::default()
                })
                .held_by = Some(tid);
        }
    }

    /// Adds a P that existed when tracing began.
    pub fn seed_proc(&mut self, id: i32) {
        self.procs.get_or_insert_with(id, || Proc {
            id,
            ..Proc::default()
        });
    }

    /// Closes the books at the end of the trace: running goroutines' P time up to the end.
    pub fn finish(&mut self) {
        let end = self.last_ts.unwrap_or(0);
        for p in self.procs.values_mut() {
            if let Some((since, _)) = p.running.take() {
                p.busy_ns += end.saturating_sub(since);
            }
        }
        for g in self.goroutines.values_mut() {
            if let Some((t0, tid)) = g.run_start.take() {
                self.graph.ran(g.start_pc, tid, end.saturating_sub(t0));
            }
        }
        for th in self.threads.values_mut() {
            if let (Some(p), Some(since)) = (th.p, th.p_since.take()) {
                self.graph.held(th.tid, p, end.saturating_sub(since), false);
            }
            // Still spinning at the end: count the spell so far (the state stays Spinning).
            if let Some(since) = th.spin_since.take() {
                th.spinning_ns += end.saturating_sub(since);
            }
        }
    }
}

#[cfg(test)]
mod tests;
