//! The scheduler model: folds the event stream into goroutines, threads (Ms) and processors (Ps).
//!
//! It is fed the same way from a live ring buffer or a recording, so everything here is testable
//! without root. Events from different CPUs can arrive slightly out of timestamp order (the ring
//! buffer orders by reservation, not by `ts`), so nothing here assumes monotonic time beyond
//! min/max bookkeeping.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use gmp_trace_common::{Event, EventKind};

pub mod startup;
use startup::Startup;

/// A goroutine's state in the vocabulary of Go's execution tracer (internal/trace GoState).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoState {
    /// Existed before we looked, and we have not seen it change since.
    Unknown,
    NotExist,
    Runnable,
    Running,
    Syscall,
    Waiting,
}

impl GoState {
    /// Maps a runtime `g.atomicstatus` value (scan bit ignored) to the tracer's vocabulary.
    pub fn from_runtime(status: u64) -> GoState {
        match status & !0x1000 {
            0 | 6 | 11 => GoState::NotExist, // _Gidle, _Gdead, _Gdeadextra (1.26+)
            1 | 9 => GoState::Runnable,      // _Grunnable, _Gpreempted (resumes as runnable)
            2 => GoState::Running,
            3 => GoState::Syscall,
            4 | 10 => GoState::Waiting, // _Gwaiting, _Gleaked (1.26+)
            _ => GoState::Unknown,      // _Gcopystack and anything new: do not guess
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GoState::Unknown => "Unknown",
            GoState::NotExist => "NotExist",
            GoState::Runnable => "Runnable",
            GoState::Running => "Running",
            GoState::Syscall => "Syscall",
            GoState::Waiting => "Waiting",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Goroutine {
    pub goid: u64,
    /// The creating goroutine; `Some(0)` when created from a g0 (g1, by rt0_go).
    pub parent: Option<u64>,
    pub start_pc: u64,
    pub create_pc: u64,
    pub created_ts: Option<u64>,
    pub exited_ts: Option<u64>,
    pub state: GoState,
    /// Times the goroutine was started by `execute`.
    pub runs: u64,
    pub last_tid: Option<u32>,
    pub last_p: Option<i32>,
}

#[derive(Clone, Debug, Default)]
pub struct Thread {
    pub tid: u32,
    /// `m.id`, when an event on this thread could read it.
    pub m: Option<i64>,
    pub mstart_ts: Option<u64>,
    pub first_ts: u64,
    pub events: u64,
}

/// Where and when runtime.main began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MainStart {
    pub ts: u64,
    pub goid: u64,
    pub tid: u32,
    pub m: i64,
}

#[derive(Debug, Default)]
pub struct Model {
    pub goroutines: HashMap<u64, Goroutine>,
    pub threads: BTreeMap<u32, Thread>,
    pub procs: BTreeSet<i32>,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub events: u64,
    pub lost: u64,
    pub created: u64,
    pub exited: u64,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub runtime_main: Vec<MainStart>,
    /// Events whose kind this build does not know (a newer recording).
    pub unknown_kinds: u64,
    pub startup: Startup,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// A model for process `pid` built with Go `major.minor`.
    pub fn for_target(pid: u32, go: (u32, u32)) -> Model {
        Model {
            startup: Startup::new(pid, go >= (1, 21)),
            ..Model::default()
        }
    }

    fn goroutine(&mut self, goid: u64) -> &mut Goroutine {
        self.goroutines.entry(goid).or_insert_with(|| Goroutine {
            goid,
            parent: None,
            start_pc: 0,
            create_pc: 0,
            created_ts: None,
            exited_ts: None,
            state: GoState::Unknown,
            runs: 0,
            last_tid: None,
            last_p: None,
        })
    }

    pub fn apply(&mut self, e: &Event) {
        let Some(kind) = EventKind::from_u32(e.kind) else {
            self.unknown_kinds += 1;
            return;
        };
        *self.by_kind.entry(kind.name()).or_default() += 1;
        if kind == EventKind::Lost {
            // Synthetic: carries the loss, not a runtime observation.
            self.lost += e.arg0;
            return;
        }
        self.events += 1;
        self.startup.apply(e);
        self.first_ts = Some(self.first_ts.map_or(e.ts, |t| t.min(e.ts)));
        self.last_ts = Some(self.last_ts.map_or(e.ts, |t| t.max(e.ts)));
        let th = self.threads.entry(e.tid).or_insert_with(|| Thread {
            tid: e.tid,
            first_ts: e.ts,
            ..Thread::default()
        });
        th.events += 1;
        if e.m >= 0 {
            th.m = Some(e.m);
        }
        if e.p >= 0 {
            self.procs.insert(e.p);
        }
        match kind {
            EventKind::GoCreate => {
                self.created += 1;
                let g = self.goroutine(e.goid);
                g.parent = Some(e.arg0);
                g.start_pc = e.arg1;
                g.create_pc = e.arg2;
                g.created_ts = Some(e.ts);
                g.exited_ts = None;
                g.state = GoState::Runnable;
            }
            EventKind::Execute => {
                let g = self.goroutine(e.goid);
                g.runs += 1;
                g.state = GoState::Running;
                g.last_tid = Some(e.tid);
                g.last_p = (e.p >= 0).then_some(e.p);
            }
            EventKind::GoExit => {
                self.exited += 1;
                let g = self.goroutine(e.goid);
                g.exited_ts = Some(e.ts);
                g.state = GoState::NotExist;
            }
            EventKind::GoStatus => {
                // casgstatus(_Gdead -> _Grunnable) on a new G runs before its goid is assigned on
                // Go <= 1.23 (goid 0): GoCreate from newproc1's return covers those.
                if e.goid != 0 {
                    let st = GoState::from_runtime(e.arg1);
                    let g = self.goroutine(e.goid);
                    if g.exited_ts.is_none() || st != GoState::NotExist {
                        g.state = st;
                    }
                }
            }
            EventKind::MStart => {
                th.mstart_ts.get_or_insert(e.ts);
            }
            EventKind::AcquireP => {
                if let Ok(p) = i32::try_from(e.arg0 as i64) {
                    if p >= 0 {
                        self.procs.insert(p);
                    }
                }
            }
            EventKind::RuntimeMain => self.runtime_main.push(MainStart {
                ts: e.ts,
                goid: e.goid,
                tid: e.tid,
                m: e.m,
            }),
            EventKind::NewProc
            | EventKind::Schedule
            | EventKind::ReleaseP
            | EventKind::Lost
            | EventKind::NewM
            | EventKind::ProcResize
            | EventKind::StwStart
            | EventKind::StwDone
            | EventKind::GcStart
            | EventKind::GcDone
            | EventKind::SyscallEnter
            | EventKind::SyscallExit
            | EventKind::Phase => {}
        }
    }

    pub fn duration_ns(&self) -> u64 {
        match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }

    /// Goroutines created during the trace that have not exited.
    pub fn live_goroutines(&self) -> usize {
        self.goroutines
            .values()
            .filter(|g| g.exited_ts.is_none() && g.state != GoState::NotExist)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, ts: u64, tid: u32, goid: u64) -> Event {
        Event {
            ts,
            kind: kind as u32,
            tid,
            pid: 100,
            p: 0,
            goid,
            m: 0,
            ..Event::default()
        }
    }

    #[test]
    fn create_run_exit() {
        let mut m = Model::new();
        let mut c = ev(EventKind::GoCreate, 10, 100, 7);
        c.arg0 = 1;
        c.arg1 = 0x1234;
        m.apply(&c);
        m.apply(&ev(EventKind::Execute, 20, 101, 7));
        m.apply(&ev(EventKind::GoExit, 30, 101, 7));
        let g = &m.goroutines[&7];
        assert_eq!(g.parent, Some(1));
        assert_eq!(g.start_pc, 0x1234);
        assert_eq!(g.runs, 1);
        assert_eq!(g.state, GoState::NotExist);
        assert_eq!((m.created, m.exited), (1, 1));
        assert_eq!(m.threads.len(), 2);
        assert_eq!(m.duration_ns(), 20);
        assert_eq!(m.live_goroutines(), 0);
    }

    #[test]
    fn lost_events_are_counted_not_applied() {
        let mut m = Model::new();
        let mut l = ev(EventKind::Lost, 5, 0, 0);
        l.arg0 = 42;
        m.apply(&l);
        assert_eq!(m.lost, 42);
        assert_eq!(m.events, 0);
        assert!(m.threads.is_empty());
    }

    #[test]
    fn runtime_status_mapping() {
        assert_eq!(GoState::from_runtime(2), GoState::Running);
        assert_eq!(GoState::from_runtime(0x1004), GoState::Waiting);
        assert_eq!(GoState::from_runtime(6), GoState::NotExist);
        assert_eq!(GoState::from_runtime(8), GoState::Unknown);
    }
}
