//! The scheduler model: folds the event stream into goroutines (G), threads (M) and processors
//! (P), their states in the vocabulary of Go's execution tracer, and the views derived from
//! them (scheduling latency, P utilization, the creation tree of what is still alive).
//!
//! Fed the same way from a live ring buffer or a recording, so everything here is testable
//! without root. Events from different CPUs can arrive slightly out of timestamp order (the ring
//! buffer orders by reservation), so nothing assumes monotonic time beyond min/max bookkeeping.
//! Memory is O(live goroutines + threads + Ps + creation sites): exited goroutines are folded
//! into aggregates and dropped.
use std::collections::BTreeMap;

use crate::fasthash::{ByP, ByTid, FastMap};

use gmp_trace_common::{Event, EventKind};

pub mod goroutine;
pub mod graph;
pub mod hist;
pub mod startup;
pub mod views;

pub use goroutine::{GoState, Goroutine, Transition, TransitionCounts};
use graph::GraphAgg;
use hist::Histogram;
use startup::Startup;

#[derive(Clone, Debug, Default)]
pub struct Thread {
    pub tid: u32,
    /// `m.id`, when an event on this thread could read it.
    pub m: Option<i64>,
    pub mstart_ts: Option<u64>,
    /// The thread that created this M (newm on it), when seen.
    pub created_by: Option<u32>,
    pub events: u64,
    /// What the M is doing now, by the last event seen on it.
    pub state: MState,
    /// The P it holds (acquirep/releasep), and since when.
    pub p: Option<i32>,
    pub p_since: Option<u64>,
    /// Go >= 1.26: the goroutine whose exitsyscall began without a P (sysmon took it), and
    /// when, until it gets one here or is queued (the tracer's GoSyscallEndBlocked, then maybe
    /// GoStart).
    pub exit_without_p: Option<(u64, u64)>,
    /// Go >= 1.26: the goroutine whose exitsyscall began with its P, and when: sysmon can still
    /// take the P before exitsyscall looks (it holds the G's scan bit meanwhile), and then the
    /// goroutine is queued by exitsyscallNoP after all.
    pub exit_with_p: Option<(u64, u64)>,
    /// Go <= 1.25: the system call in progress on this thread.
    pub syscall: Option<InSyscall>,
    /// Since when the M spins (state Spinning), and its spinning time and spells so far.
    pub spin_since: Option<u64>,
    pub spinning_ns: u64,
    pub spins: u64,
    /// Successful run-queue steals made on this M.
    pub steals: u64,
    /// procresize began on this thread and its next event has not come yet: an acquirep then
    /// means the caller's P was destroyed or renumbered away (see `Model::resized_away`).
    pub resize_pending: bool,
}

/// Go <= 1.25: a goroutine in a system call, and whether its P was lost meanwhile, which is
/// what Go's tracer checks on exit (`oldp != m.p || m.syscalltick != p.syscalltick`).
#[derive(Clone, Copy, Debug, Default)]
pub struct InSyscall {
    pub goid: u64,
    /// The P it entered with, and its owner changes then: another thread using it meanwhile
    /// means it was retaken by sysmon or stolen by another exitsyscall (syscalltick moved).
    pub p: i32,
    pub p_owner_changes: u64,
    /// This thread acquired a P during the call (exitsyscallfast_pidle).
    pub new_p: bool,
}

/// An M's activity, as far as the probes show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MState {
    #[default]
    Unknown,
    /// Running goroutine code.
    Running,
    /// In the scheduler looking for work (schedule/findRunnable).
    Scheduling,
    /// A spinning M (`m.spinning`): holds a P, has no work, and looks for some on other Ps
    /// (stealWork). See `Model::spin_start` for where spinning begins and ends.
    Spinning,
    /// A goroutine on it is in a system call.
    Syscall,
    /// Parked on the idle M list (stopm), waiting to be woken with work.
    Idle,
}

#[derive(Clone, Debug, Default)]
pub struct Proc {
    pub id: i32,
    pub held_by: Option<u32>,
    /// Time a goroutine was running on this P.
    pub busy_ns: u64,
    /// (since, goid) of the goroutine running on it now.
    pub running: Option<(u64, u64)>,
    pub acquires: u64,
    pub starts: u64,
    /// The thread of the last event that held it, and how often that changed: a P taken from
    /// a goroutine in a system call (sysmon's retake, or another exitsyscall stealing it).
    pub last_tid: Option<u32>,
    pub owner_changes: u64,
    /// Run-queue steals this P made (as the thief) and suffered (as the victim), and the
    /// goroutines each moved.
    pub steals: u64,
    pub stolen_from: u64,
    pub gs_stolen: u64,
    pub gs_lost: u64,
}

/// Where and when runtime.main began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MainStart {
    pub ts: u64,
    pub goid: u64,
    pub tid: u32,
    pub m: i64,
}

/// A stop-the-world or GC range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: Option<u64>,
    /// stwReason / gcTriggerKind as the runtime numbers it.
    pub reason: u64,
    pub tid: u32,
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
    pub stw: Vec<Range>,
    pub gc: Vec<Range>,
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
        self.events += 1;
        self.startup.apply(e);
        self.first_ts = Some(self.first_ts.map_or(e.ts, |t| t.min(e.ts)));
        self.last_ts = Some(self.last_ts.map_or(e.ts, |t| t.max(e.ts)));
        let th = self.threads.get_or_insert_with(e.tid, || Thread {
            tid: e.tid,
            ..Thread::default()
        });
        th.events += 1;
        // Only the event right after procresize's entry on the same thread can be its acquirep.
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
        match kind {
            EventKind::GoCreate => self.on_create(e),
            EventKind::GoStatus => self.on_status(e),
            EventKind::Execute => {
                // resetspinning comes first when it is traced (level full); without it the
                // spin ends here.
                self.set_m_state(e.tid, e.ts, MState::Running);
                if e.p >= 0 {
                    if let Some(p) = self.procs.get_mut(&e.p) {
                        p.starts += 1;
                    }
                }
                let g = self
                    .goroutines
                    .entry(e.goid)
                    .or_insert_with(|| Goroutine::unknown(e.goid));
                g.runs += 1;
                g.last_tid = Some(e.tid);
                g.last_p = (e.p >= 0).then_some(e.p);
            }
            EventKind::GoExit => {
                self.exited += 1;
                if let Some(g) = self.goroutines.get_mut(&e.goid) {
                    g.exited_ts = Some(e.ts);
                }
                if self.retire_on_exit {
                    self.retire(e.goid);
                }
            }
            EventKind::Schedule => {
                // A new M started spinning (mspinning, then acquirep) enters schedule still
                // spinning: that does not end the spell.
                if self.threads.get(&e.tid).map(|t| t.state) != Some(MState::Spinning) {
                    self.set_m_state(e.tid, e.ts, MState::Scheduling);
                }
            }
            EventKind::SyscallEnter => {
                self.set_m_state(e.tid, e.ts, MState::Syscall);
                if self.syscalls_from_probes {
                    self.transition(
                        e,
                        e.goid,
                        Some(GoState::Running),
                        GoState::Syscall,
                        0,
                        e.goid,
                    );
                }
            }
            EventKind::SyscallExit => {
                self.set_m_state(e.tid, e.ts, MState::Running);
                if self.syscalls_from_probes {
                    // exitsyscall's entry. With its P still held the syscall ends in Running
                    // (GoSyscallEnd); without (sysmon took it) Go's tracer records Syscall ->
                    // Runnable (GoSyscallEndBlocked), then a GoStart if exitsyscall gets a P
                    // (acquirepNoTrace, below), else the goroutine is queued (exitsyscallNoP).
                    let to = if e.p >= 0 {
                        GoState::Running
                    } else {
                        GoState::Runnable
                    };
                    if let Some(th) = self.threads.get_mut(&e.tid) {
                        if to == GoState::Runnable {
                            th.exit_without_p = Some((e.goid, e.ts));
                        } else {
                            th.exit_with_p = Some((e.goid, e.ts));
                        }
                    }
                    self.transition(e, e.goid, Some(GoState::Syscall), to, 0, e.goid);
                }
            }
            EventKind::MStart => {
                let creator = self.pending_newm.remove(&e.m);
                if let Some(th) = self.threads.get_mut(&e.tid) {
                    th.mstart_ts.get_or_insert(e.ts);
                    th.created_by = th.created_by.or(creator);
                }
            }
            EventKind::AcquireP => {
                let id = e.arg0 as i64 as i32;
                let moved = if resize_pending {
                    self.resized_away(e)
                } else {
                    None
                };
                if id >= 0 {
                    let p = self.procs.get_or_insert_with(id, || Proc {
                        id,
                        ..Proc::default()
                    });
                    p.held_by = Some(e.tid);
                    p.acquires += 1;
                    if let Some(th) = self.threads.get_mut(&e.tid) {
                        th.p = Some(id);
                        th.p_since = Some(e.ts);
                    }
                    // A parked M woken with a P (stopm returns through acquirep) looks for
                    // work again; handed the P as a spinning M (arg1), it spins from here.
                    let state = self.threads.get(&e.tid).map(|t| t.state);
                    if e.arg1 & 1 != 0 {
                        self.set_m_state(e.tid, e.ts, MState::Spinning);
                    } else if state == Some(MState::Idle) {
                        self.set_m_state(e.tid, e.ts, MState::Scheduling);
                    }
                    self.graph.held(e.tid, id, 0, true);
                    self.syscall_got_p(e);
                }
                if let Some(g) = moved {
                    self.transition(e, g, Some(GoState::Runnable), GoState::Running, 0, g);
                }
            }
            EventKind::ReleaseP => {
                // findRunnable drops its P and then clears m.spinning (gcstopm clears it
                // first): a spinning M that lets go of its P has stopped spinning.
                if self.threads.get(&e.tid).map(|t| t.state) == Some(MState::Spinning) {
                    self.set_m_state(e.tid, e.ts, MState::Scheduling);
                }
                if e.p >= 0 {
                    if let Some(p) = self.procs.get_mut(&e.p) {
                        p.held_by = None;
                    }
                }
                if let Some(th) = self.threads.get_mut(&e.tid) {
                    if let (Some(p), Some(since)) = (th.p.take(), th.p_since.take()) {
                        self.graph.held(e.tid, p, e.ts.saturating_sub(since), false);
                    }
                }
            }
            EventKind::ProcResize => {
                self.gomaxprocs = Some(e.arg0);
                if let Some(th) = self.threads.get_mut(&e.tid) {
                    th.resize_pending = true;
                }
            }
            EventKind::StwStart => self.stw.push(Range {
                start: e.ts,
                end: None,
                reason: e.arg0,
                tid: e.tid,
            }),
            EventKind::StwDone => close_range(&mut self.stw, e.ts),
            EventKind::GcStart => self.gc.push(Range {
                start: e.ts,
                end: None,
                reason: e.arg0,
                tid: e.tid,
            }),
            EventKind::GcDone => close_range(&mut self.gc, e.ts),
            EventKind::RuntimeMain => self.runtime_main.push(MainStart {
                ts: e.ts,
                goid: e.goid,
                tid: e.tid,
                m: e.m,
            }),
            EventKind::NewM => {
                // Linked to the new thread when its mstart reports the same m.id.
                self.pending_newm.insert(e.arg0 as i64, e.tid);
            }
            EventKind::MIdle => self.set_m_state(e.tid, e.ts, MState::Idle),
            EventKind::SyscallLostP => self.syscall_lost_p(e),
            EventKind::SpinStart => {
                // stealWork runs once per round of a spinning M's findRunnable: the first
                // starts the spell, the rest continue it.
                self.set_m_state(e.tid, e.ts, MState::Spinning);
            }
            EventKind::SpinEnd => {
                // resetspinning: found work (execute follows). Without a known start (the M
                // became spinning where no probe sees it, e.g. findRunnable's re-check after
                // dropping its P) there is no spell to close.
                if self.threads.get(&e.tid).map(|t| t.state) == Some(MState::Spinning) {
                    self.set_m_state(e.tid, e.ts, MState::Scheduling);
                }
            }
            EventKind::Steal => self.on_steal(e),
            EventKind::NewProc
            | EventKind::Lost
            | EventKind::Phase
            | EventKind::LoadBias
            | EventKind::StealFailed => {}
        }
    }

    /// Moves thread `tid` to `state` at `ts`, opening or closing its spinning spell.
    fn set_m_state(&mut self, tid: u32, ts: u64, state: MState) {
        let Some(th) = self.threads.get_mut(&tid) else {
            return;
        };
        let was = th.state;
        th.state = state;
        match (was == MState::Spinning, state == MState::Spinning) {
            (false, true) => {
                th.spin_since = Some(ts);
                th.spins += 1;
                self.spinning_now += 1;
                self.max_spinning = self.max_spinning.max(self.spinning_now);
            }
            (true, false) => {
                if let Some(since) = th.spin_since.take() {
                    th.spinning_ns += ts.saturating_sub(since);
                }
                self.spinning_now = self.spinning_now.saturating_sub(1);
            }
            _ => {}
        }
    }

    /// runqsteal returned a goroutine: the thief is the event's P, the victim arg0 (-1 when
    /// unknown), arg1 goroutines moved.
    fn on_steal(&mut self, e: &Event) {
        let victim = i32::try_from(e.arg0 as i64).unwrap_or(-1);
        let n = e.arg1.max(1);
        self.steals += 1;
        self.goroutines_stolen += n;
        let pair = self.steal_pairs.entry((e.p, victim)).or_default();
        pair.0 += 1;
        pair.1 += n;
        if let Some(th) = self.threads.get_mut(&e.tid) {
            th.steals += 1;
        }
        for (id, thief) in [(e.p, true), (victim, false)] {
            if id < 0 {
                continue;
            }
            let p = self.procs.get_or_insert_with(id, || Proc {
                id,
                ..Proc::default()
            });
            if thief {
                p.steals += 1;
                p.gs_stolen += n;
            } else {
                p.stolen_from += 1;
                p.gs_lost += n;
            }
        }
    }

    /// procresize (start-the-world, GOMAXPROCS) called acquirep: the caller's P is gone (its id
    /// is at or past the new GOMAXPROCS) and it takes allp[0] without leaving the goroutine it
    /// runs. Go's tracer "pretends that we were descheduled and then scheduled again" (a
    /// GoSched with ProcStop, then GoStart on the new P; no casgstatus happens), so the model
    /// does the same: Running -> Runnable on the old P here, Runnable -> Running once the new P
    /// is held. Returns that goroutine.
    fn resized_away(&mut self, e: &Event) -> Option<u64> {
        let old = self.threads.get(&e.tid)?.p?;
        let (_, g) = self.procs.get(&old)?.running?;
        let running_here = self.goroutines.get(&g).is_some_and(|x| {
            x.state == GoState::Running && x.run_start.map(|r| r.1) == Some(e.tid)
        });
        if !running_here {
            return None;
        }
        let on_old = Event { p: old, ..*e };
        self.transition(&on_old, g, Some(GoState::Running), GoState::Runnable, 0, g);
        Some(g)
    }

    /// Go >= 1.26: exitsyscall's probe saw the P, but sysmon or a stop-the-world took it before
    /// exitsyscall looked (they hold the goroutine's scan bit meanwhile, so its CAS to Running
    /// waited), and it now looks for another (exitsyscallTryGetP). For Go's tracer that exit
    /// was GoSyscallEndBlocked: take back the Syscall -> Running and make it Syscall ->
    /// Runnable; the GoStart follows when it gets a P (acquirepNoTrace), or exitsyscallNoP
    /// queues it.
    fn syscall_lost_p(&mut self, e: &Event) {
        let Some(th) = self.threads.get_mut(&e.tid) else {
            return;
        };
        let Some((g, since)) = th.exit_with_p.take() else {
            return; // lost at the entry already: Runnable since then
        };
        let unchanged = self.goroutines.get(&g).map(|g| (g.state, g.since))
            == Some((GoState::Running, Some(since)));
        if !unchanged {
            return;
        }
        self.undo_syscall_exit(g, since);
        self.transition(e, g, Some(GoState::Syscall), GoState::Runnable, 0, g);
        if let Some(th) = self.threads.get_mut(&e.tid) {
            th.exit_without_p = Some((g, e.ts));
        }
    }

    /// A P acquired on a thread whose goroutine is leaving a system call without its own P:
    /// Go's tracer reports GoSyscallEndBlocked + GoStart there.
    fn syscall_got_p(&mut self, e: &Event) {
        let Some(th) = self.threads.get_mut(&e.tid) else {
            return;
        };
        if let Some((g, since)) = th.exit_without_p.take() {
            // Go >= 1.26: exitsyscall got a P (exitsyscallTryGetP): the tracer's GoStart. Only
            // if nothing happened to the goroutine since (a probe may have been missing).
            let waiting = self.goroutines.get(&g).map(|g| (g.state, g.since));
            if waiting == Some((GoState::Runnable, Some(since))) {
                self.transition(e, g, Some(GoState::Runnable), GoState::Running, 0, g);
            }
        } else if let Some(sc) = &mut th.syscall {
            // Go <= 1.25: exitsyscallfast took an idle P (its own was retaken).
            sc.new_p = true;
        }
    }

    /// Takes back the Syscall -> Running that exitsyscall's probe logged at `since` for `goid`
    /// (its last transition), leaving it in Syscall.
    fn undo_syscall_exit(&mut self, goid: u64, since: u64) {
        if let Some(log) = &mut self.transition_log {
            if let Some(i) = log.iter().rposition(|t| t.goid == goid) {
                if log[i].ts == since && log[i].to == GoState::Running {
                    log.remove(i);
                }
            }
        }
        if let Some(n) = self
            .transitions
            .get_mut(&(GoState::Syscall, GoState::Running))
        {
            *n = n.saturating_sub(1);
        }
        for p in self.procs.values_mut() {
            if p.running.is_some_and(|(_, g)| g == goid) {
                p.running = None;
            }
        }
        if let Some(g) = self.goroutines.get_mut(&goid) {
            g.state = GoState::Syscall;
            g.run_start = None;
        }
    }

    fn on_create(&mut self, e: &Event) {
        self.created += 1;
        let (parent_chain, parent_pc) = self
            .goroutines
            .get(&e.arg0)
            .map(|p| (p.creator_chain_for_child(), p.start_pc))
            .unwrap_or_default();
        self.graph.created(parent_pc, e.arg1);
        let g = Goroutine::created(e.goid, e.arg0, e.arg1, e.arg2, e.ts, parent_chain);
        self.by_create_pc.entry(e.arg2).or_default().created += 1;
        self.by_start_pc.entry(e.arg1).or_default().created += 1;
        let goid = e.goid;
        self.goroutines.insert(goid, g);
        self.record(Transition {
            ts: e.ts,
            goid,
            from: GoState::NotExist,
            to: GoState::Runnable,
            tid: e.tid,
            p: e.p,
            by: e.arg0,
            reason: 0,
        });
    }

    fn on_status(&mut self, e: &Event) {
        // casgstatus from _Gdead is a goroutine being (re)born: on Go <= 1.23 before its goid is
        // set (the old goid of a reused g may still be there), so creation comes from newproc1's
        // return instead (GoCreate).
        if e.goid == 0 || e.arg0 & !0x1000 == 6 {
            return;
        }
        let from = GoState::from_runtime(e.arg0);
        let to = GoState::from_runtime(e.arg1);
        if from == GoState::Unknown || to == GoState::Unknown || from == to {
            // _Gcopystack and friends: not a scheduling transition.
            return;
        }
        let (exit_without_p, exit_with_p, in_syscall) = self
            .threads
            .get(&e.tid)
            .map(|th| (th.exit_without_p, th.exit_with_p, th.syscall))
            .unwrap_or_default();
        if exit_without_p.is_some_and(|(g, _)| g == e.goid) {
            if from == GoState::Syscall && to == GoState::Running {
                // Go >= 1.26 exitsyscall's Gsyscall -> Grunning, through casgstatus when the
                // CAS fails (a scan bit): already taken from the exitsyscall probe.
                return;
            }
            if from == GoState::Running && to == GoState::Runnable {
                // exitsyscallNoP: queued, already Runnable since exitsyscall.
                if let Some(th) = self.threads.get_mut(&e.tid) {
                    th.exit_without_p = None;
                }
            }
        }
        if let Some((g, since)) = exit_with_p.filter(|(g, _)| *g == e.goid) {
            if from == GoState::Syscall && to == GoState::Running {
                return; // the failed-CAS casgstatus again: the probe had it
            }
            if let Some(th) = self.threads.get_mut(&e.tid) {
                th.exit_with_p = None;
            }
            let unchanged = self.goroutines.get(&g).map(|g| (g.state, g.since))
                == Some((GoState::Running, Some(since)));
            if from == GoState::Running && to == GoState::Runnable && e.p < 0 && unchanged {
                // Go >= 1.26: sysmon took the P between exitsyscall's entry (where the probe
                // saw it) and its check, so exitsyscallNoP queues the goroutine: for Go's
                // tracer that exit was Syscall -> Runnable (GoSyscallEndBlocked).
                self.undo_syscall_exit(g, since);
                self.transition(e, g, Some(GoState::Syscall), to, 0, g);
                return;
            }
        }
        if let Some(sc) = in_syscall.filter(|sc| sc.goid == e.goid) {
            let retaken = self
                .procs
                .get(&sc.p)
                .is_some_and(|p| p.owner_changes != sc.p_owner_changes);
            if from == GoState::Syscall && to == GoState::Running && (sc.new_p || retaken) {
                // Go <= 1.25: exitsyscall got a P after losing its own; Go's tracer reports
                // GoSyscallEndBlocked + GoStart (lostP in exitsyscall).
                self.transition(e, e.goid, Some(from), GoState::Runnable, 0, e.goid);
                self.transition(e, e.goid, Some(GoState::Runnable), to, 0, e.goid);
                return;
            }
        }
        self.transition(
            e,
            e.goid,
            Some(from),
            to,
            (e.arg2 & 0xff) as u8,
            e.arg2 >> 8,
        );
    }

    /// Applies `from -> to` to goroutine `goid` unless it is already in `to` (one runtime
    /// transition can be seen twice: by a dedicated probe and by casgstatus).
    fn transition(
        &mut self,
        e: &Event,
        goid: u64,
        from: Option<GoState>,
        to: GoState,
        reason: u8,
        by: u64,
    ) {
        let g = self
            .goroutines
            .entry(goid)
            .or_insert_with(|| Goroutine::unknown(goid));
        if g.state == to {
            return;
        }
        if let Some(f) = from {
            if g.state != GoState::Unknown && g.state != f && to != GoState::NotExist {
                // An expected state we did not see (a lost event, or a path without a probe).
                g.anomalies += 1;
            }
        }
        let from = from.unwrap_or(g.state);
        let prev_since = g.since;
        if let Some(th) = self.threads.get_mut(&e.tid) {
            if to == GoState::Syscall && !self.syscalls_from_probes {
                th.syscall = Some(InSyscall {
                    goid,
                    p: e.p,
                    p_owner_changes: self.procs.get(&e.p).map_or(0, |p| p.owner_changes),
                    new_p: false,
                });
            } else if from == GoState::Syscall && th.syscall.is_some_and(|s| s.goid == goid) {
                th.syscall = None;
            }
        }
        g.state = to;
        g.since = Some(e.ts);
        if to == GoState::Waiting {
            g.wait_reason = reason;
        }
        // Scheduling latency: how long a runnable goroutine waited for a P.
        if from == GoState::Runnable && to == GoState::Running {
            if let Some(since) = prev_since {
                let lat = e.ts.saturating_sub(since);
                self.latency.record(lat);
                g.max_latency = g.max_latency.max(lat);
                let (cpc, spc) = (g.create_pc, g.start_pc);
                self.by_create_pc
                    .entry(cpc)
                    .or_default()
                    .latency
                    .record(lat);
                self.by_start_pc.entry(spc).or_default().latency.record(lat);
                note_worst(&mut self.worst_latency, (lat, goid, spc));
            }
        }
        if to == GoState::Running {
            g.run_start = Some((e.ts, e.tid));
        } else if let Some((t0, tid)) = g.run_start.take() {
            let spc = g.start_pc;
            self.graph.ran(spc, tid, e.ts.saturating_sub(t0));
        }
        // P utilization: a goroutine occupies the P from Running until it leaves Running.
        if to == GoState::Running && e.p >= 0 {
            if let Some(p) = self.procs.get_mut(&e.p) {
                p.running = Some((e.ts, goid));
            }
        } else if from == GoState::Running {
            for p in self.procs.values_mut() {
                if let Some((since, g)) = p.running {
                    if g == goid {
                        p.busy_ns += e.ts.saturating_sub(since);
                        p.running = None;
                    }
                }
            }
        }
        self.record(Transition {
            ts: e.ts,
            goid,
            from,
            to,
            tid: e.tid,
            p: e.p,
            by,
            reason,
        });
        if to == GoState::NotExist {
            self.retire(goid);
        }
    }

    fn record(&mut self, t: Transition) {
        self.transitions.add(t.from, t.to);
        if let Some(log) = &mut self.transition_log {
            log.push(t);
        }
    }

    /// Folds an exited goroutine into the aggregates and forgets it.
    fn retire(&mut self, goid: u64) {
        if let Some(g) = self.goroutines.remove(&goid) {
            if g.created_ts.is_some() {
                self.by_create_pc.entry(g.create_pc).or_default().exited += 1;
                self.by_start_pc.entry(g.start_pc).or_default().exited += 1;
            }
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

    /// Adds an M that existed when tracing began.
    pub fn seed_thread(&mut self, tid: u32, m: i64, p: Option<i32>) {
        let th = self.threads.get_or_insert_with(tid, || Thread {
            tid,
            ..Thread::default()
        });
        th.m = Some(m);
        th.p = p;
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

fn close_range(v: &mut [Range], ts: u64) {
    if let Some(r) = v.iter_mut().rev().find(|r| r.end.is_none()) {
        r.end = Some(ts);
    }
}

fn note_worst(v: &mut Vec<(u64, u64, u64)>, item: (u64, u64, u64)) {
    if v.len() < WORST_KEPT || item.0 > v.last().map_or(0, |w| w.0) {
        if let Some(pos) = v.iter().position(|w| w.1 == item.1) {
            if v[pos].0 >= item.0 {
                return;
            }
            v.remove(pos);
        }
        let at = v.partition_point(|w| w.0 >= item.0);
        v.insert(at, item);
        v.truncate(WORST_KEPT);
    }
}

#[cfg(test)]
mod tests;
