//! What Go's trace reader believes, mirrored while we write, and the primitive moves on it.
//!
//! The reader (internal/trace/order.go) replays every event against goroutine, P and thread
//! states and rejects a file at the first event that does not fit (a GoStart on a thread
//! without a P, a GoBlock of a goroutine that is not running there, a sequence number out of
//! step). Our events come from different probes and may miss a step (lost events, a path with
//! no probe), so every event is written through this mirror: each move first brings the
//! mirror to a state where the event is legal, writing the P events that takes (ProcStart,
//! ProcStop, ProcSteal) and, only when there is no other way, a goroutine event of its own
//! (counted in `Synth`). Timestamps are made strictly increasing in the order we write, so
//! the reader, which merges threads by time, replays exactly our order.
use std::io::{self, Write};

use crate::fasthash::FastMap;

use super::wire::{Ev, Wire, NO_THREAD};

/// Goroutine states as the format numbers them (tracev2.GoStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GSt {
    Runnable = 1,
    Running = 2,
    Syscall = 3,
    Waiting = 4,
}

/// P states as the format numbers them (tracev2.ProcStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PSt {
    Running = 1,
    Idle = 2,
    Syscall = 3,
}

#[derive(Clone, Copy, Debug)]
pub struct G {
    pub st: GSt,
    pub seq: u64,
    /// The thread it is on when Running or in Syscall.
    pub m: Option<u32>,
    /// In a wait Go's tracer does not show: Running to the reader.
    pub hidden: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct P {
    pub st: PSt,
    pub seq: u64,
    pub m: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct M {
    pub g: Option<u64>,
    pub p: Option<i32>,
}

/// Events written only to keep the file valid, by kind (reported, documented).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synth {
    /// GoStop/GoStart/GoUnblock/GoSyscallEndBlocked written without a transition of ours.
    pub go_events: u64,
    /// Transitions of ours with no event in the format (e.g. Runnable -> Waiting).
    pub unmapped: u64,
    /// Transitions of ours from a state the reader does not have the goroutine in (a step
    /// missed before), written from the reader's state.
    pub rewritten: u64,
    /// Waits left out as Go's tracer does (see `reasons::HIDDEN`).
    pub hidden_waits: u64,
    /// GC, STW, GOMAXPROCS or log events dropped: no goroutine running with a P to carry them.
    pub dropped: u64,
}

impl Synth {
    /// A line for the user when the file differs from our transitions (None when it does
    /// not); the test suite reads it too.
    pub fn note(&self) -> Option<String> {
        if self.go_events == 0 && self.unmapped == 0 && self.rewritten == 0 && self.dropped == 0 {
            return None;
        }
        Some(format!(
            "to keep it valid for Go's reader where the event stream missed a step, {} \
             goroutine events added, {} transitions written from another state, {} left out; \
             {} GC/STW/GOMAXPROCS events left out (no goroutine running with a P to carry \
             them); {} runtime-internal waits left out as Go's tracer does",
            self.go_events, self.rewritten, self.unmapped, self.dropped, self.hidden_waits
        ))
    }
}

pub struct State<W: Write> {
    pub wire: Wire<W>,
    pub gs: FastMap<u64, G>,
    pub ps: FastMap<i32, P>,
    pub ms: FastMap<u32, M>,
    last_ts: u64,
    pub synth: Synth,
    /// The one-frame stack (its start function) of goroutines about to be created or first
    /// seen: Go's reader names a goroutine by the root frame of its first stack.
    pub start_stack: FastMap<u64, u64>,
    /// The stack (Go table id, 0 none) of the event whose transition is being written: it goes
    /// on the GoBlock, GoStop, GoUnblock, GoCreate or GoSyscallBegin that transition becomes.
    pub cur_stack: u64,
    /// The GoStop reason of the transition being written: "runtime.Gosched" or "preempted" as
    /// its stack tells, "unspecified" without one (`GoTraceWriter::stop_reason`).
    pub stop_reason: &'static str,
    /// The reason of a stop written to make room ([`State::stop_running`]): "unspecified"
    /// but for procresize moving its caller to another P ("runtime.Gosched", as Go says).
    pub room_stop_reason: &'static str,
}

impl<W: Write> State<W> {
    pub fn new(wire: Wire<W>) -> Self {
        State {
            wire,
            gs: FastMap::default(),
            ps: FastMap::default(),
            ms: FastMap::default(),
            last_ts: 0,
            synth: Synth::default(),
            start_stack: FastMap::default(),
            cur_stack: 0,
            stop_reason: "unspecified",
            room_stop_reason: "unspecified",
        }
    }

    /// Writes one event on thread `m`, stamped no earlier than `ts` and after everything
    /// written before.
    pub fn put(&mut self, m: u32, ts: u64, ev: Ev, args: &[u64]) -> io::Result<()> {
        let t = ts.max(self.last_ts + 1);
        self.last_ts = t;
        self.wire.event(m, t, ev, args)
    }

    pub fn m(&mut self, tid: u32) -> &mut M {
        self.ms.entry(tid).or_default()
    }

    /// The goroutine running (or in a syscall) on `tid`, per the reader.
    pub fn cur_g(&self, tid: u32) -> Option<u64> {
        self.ms.get(&tid).and_then(|m| m.g)
    }

    pub fn cur_p(&self, tid: u32) -> Option<i32> {
        self.ms.get(&tid).and_then(|m| m.p)
    }

    /// Whether `tid` has what user-level events need: a P and a running goroutine.
    pub fn user_ctx(&self, tid: u32) -> bool {
        self.cur_p(tid).is_some()
            && self
                .cur_g(tid)
                .and_then(|g| self.gs.get(&g))
                .is_some_and(|g| g.st == GSt::Running)
    }

    /// Introduces a P the reader has not seen, as idle.
    pub fn know_p(&mut self, tid: u32, ts: u64, p: i32) -> io::Result<()> {
        if !self.ps.contains_key(&p) {
            self.put(tid, ts, Ev::ProcStatus, &[p as u64, PSt::Idle as u64])?;
            self.ps.insert(
                p,
                P {
                    st: PSt::Idle,
                    seq: 0,
                    m: None,
                },
            );
        }
        Ok(())
    }

    /// A P held by `tid` at the start (`--pid` mode), announced as running there.
    pub fn seed_p(&mut self, tid: u32, ts: u64, p: i32) -> io::Result<()> {
        if self.ps.contains_key(&p) || self.cur_p(tid).is_some() {
            return Ok(());
        }
        self.put(tid, ts, Ev::ProcStatus, &[p as u64, PSt::Running as u64])?;
        self.ps.insert(
            p,
            P {
                st: PSt::Running,
                seq: 0,
                m: Some(tid),
            },
        );
        self.m(tid).p = Some(p);
        Ok(())
    }

    /// `tid` lets go of its P: ProcStop, or for a P left in a system call, ProcSteal by the
    /// thread itself (what the reader expects of a P that leaves a syscall without its G).
    pub fn drop_p(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        let Some(p) = self.cur_p(tid) else {
            return Ok(());
        };
        let st = self.ps.get(&p).map_or(PSt::Idle, |s| s.st);
        match st {
            PSt::Running => self.put(tid, ts, Ev::ProcStop, &[])?,
            PSt::Syscall => {
                let seq = self.bump_p(p);
                self.put(tid, ts, Ev::ProcSteal, &[p as u64, seq, tid as u64])?;
            }
            PSt::Idle => {}
        }
        if let Some(s) = self.ps.get_mut(&p) {
            s.st = PSt::Idle;
            s.m = None;
        }
        self.m(tid).p = None;
        Ok(())
    }

    fn bump_p(&mut self, p: i32) -> u64 {
        let s = self.ps.get_mut(&p).map(|s| {
            s.seq += 1;
            s.seq
        });
        s.unwrap_or(1)
    }

    /// `tid` takes P `p`, from whoever holds it.
    pub fn take_p(&mut self, tid: u32, ts: u64, p: i32) -> io::Result<()> {
        if self.cur_p(tid) == Some(p) {
            return Ok(());
        }
        self.drop_p(tid, ts)?;
        self.know_p(tid, ts, p)?;
        let held = self.ps.get(&p).and_then(|s| s.m.map(|m| (m, s.st)));
        if let Some((other, st)) = held {
            match st {
                PSt::Syscall => {
                    let seq = self.bump_p(p);
                    self.put(tid, ts, Ev::ProcSteal, &[p as u64, seq, other as u64])?;
                }
                _ => {
                    // The holder runs a goroutine: it yields first (a P is never taken from
                    // under a running goroutine).
                    self.stop_running(other, ts)?;
                    self.put(other, ts, Ev::ProcStop, &[])?;
                }
            }
            self.m(other).p = None;
        }
        let seq = self.bump_p(p);
        self.put(tid, ts, Ev::ProcStart, &[p as u64, seq])?;
        if let Some(s) = self.ps.get_mut(&p) {
            s.st = PSt::Running;
            s.m = Some(tid);
        }
        self.m(tid).p = Some(p);
        Ok(())
    }

    /// Makes sure `tid` holds a P, preferring `hint` (the P our event names), then the one it
    /// has, then an idle one. False when there is none to take.
    pub fn need_p(&mut self, tid: u32, ts: u64, hint: i32) -> io::Result<bool> {
        if hint >= 0 {
            if self.ps.get(&hint).is_some_and(|s| s.st == PSt::Syscall) && self.cur_p(tid).is_some()
            {
                return Ok(true); // in a syscall elsewhere: keep ours rather than steal it
            }
            self.take_p(tid, ts, hint)?;
            return Ok(true);
        }
        if self.cur_p(tid).is_some() {
            return Ok(true);
        }
        // An idle P, else one from a thread with nothing running, else any (its goroutine
        // stops): a goroutine the reader has running without a P (we missed a step) must be
        // given one before anything else can happen to it.
        let rank = |s: &P| match s.m {
            None => 0,
            Some(m) if self.cur_g(m).is_none() => 1,
            Some(_) => 2,
        };
        let pick = self.ps.iter().map(|(&p, s)| (rank(s), p)).min();
        match pick {
            Some((_, p)) => {
                self.take_p(tid, ts, p)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The goroutine running on `tid` stops (GoStop, or GoSyscallEndBlocked for one in a
    /// syscall), written only to make room: counted as made up.
    pub fn stop_running(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        if let Some(g) = self.cur_g(tid) {
            log::trace!("Go trace: made-up stop of g{g} on thread {tid} at {ts}");
            self.synth.go_events += 1;
        }
        self.yield_because(tid, ts, self.room_stop_reason)
    }

    /// The goroutine running on `tid` stops (GoStop, with [`State::stop_reason`]) or leaves
    /// its syscall without its P.
    pub fn yield_g(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        self.yield_because(tid, ts, self.stop_reason)
    }

    fn yield_because(&mut self, tid: u32, ts: u64, reason: &str) -> io::Result<()> {
        let Some(g) = self.cur_g(tid) else {
            return Ok(());
        };
        match self.gs.get(&g).map(|s| s.st) {
            Some(GSt::Running) => {
                // GoStop needs a P; a thread that lost its P under a running goroutine (our
                // events missed a step) gets an idle one back first.
                if self.cur_p(tid).is_none() && !self.need_p(tid, ts, -1)? {
                    // No P at all yet: nothing can be written, the reader keeps it running.
                    self.synth.unmapped += 1;
                    return Ok(());
                }
                let r = self.wire.strings.id(reason);
                self.put(tid, ts, Ev::GoStop, &[r, self.cur_stack])?;
                self.set_g(g, GSt::Runnable, None);
            }
            Some(GSt::Syscall) => self.end_blocked(tid, ts, g)?,
            _ => {}
        }
        self.m(tid).g = None;
        Ok(())
    }

    /// Clears `tid` for a goroutine to start there: nothing may be running on it.
    pub fn clear_g(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        if self.cur_g(tid).is_some() {
            self.stop_running(tid, ts)?;
        }
        Ok(())
    }

    /// `g`, in a syscall on `tid`, comes out without its P (GoSyscallEndBlocked): the P, if
    /// still parked in the syscall on this thread, is taken back by the thread first.
    pub fn end_blocked(&mut self, tid: u32, ts: u64, g: u64) -> io::Result<()> {
        if let Some(p) = self.cur_p(tid) {
            if self.ps.get(&p).is_some_and(|s| s.st == PSt::Syscall) {
                self.drop_p(tid, ts)?;
            }
        }
        self.put(tid, ts, Ev::GoSyscallEndBlocked, &[])?;
        self.set_g(g, GSt::Runnable, None);
        self.m(tid).g = None;
        Ok(())
    }

    /// Records `g`'s new state (and thread) in the mirror.
    pub fn set_g(&mut self, g: u64, st: GSt, m: Option<u32>) {
        if let Some(s) = self.gs.get_mut(&g) {
            s.st = st;
            s.m = m;
            s.hidden = false;
        }
    }

    /// GoStatus for a goroutine the reader has not seen (valid anywhere in the first
    /// generation); on `tid` when Running or in Syscall there.
    pub fn status(&mut self, tid: u32, ts: u64, g: u64, st: GSt, hint_p: i32) -> io::Result<()> {
        let on = matches!(st, GSt::Running | GSt::Syscall);
        if on {
            self.clear_g(tid, ts)?;
            if st == GSt::Running {
                self.need_p(tid, ts, hint_p)?;
            }
        }
        let m = if on { tid as u64 } else { NO_THREAD };
        match self.start_stack.remove(&g) {
            Some(stack) => self.put(tid, ts, Ev::GoStatusStack, &[g, m, st as u64, stack])?,
            None => self.put(tid, ts, Ev::GoStatus, &[g, m, st as u64])?,
        }
        self.gs.insert(
            g,
            G {
                st,
                seq: 0,
                m: on.then_some(tid),
                hidden: false,
            },
        );
        if on {
            self.m(tid).g = Some(g);
        }
        Ok(())
    }

    /// GoStart of runnable `g` on `tid` (with a P there).
    pub fn start(&mut self, tid: u32, ts: u64, g: u64, hint_p: i32) -> io::Result<bool> {
        self.clear_g(tid, ts)?;
        if !self.need_p(tid, ts, hint_p)? {
            return Ok(false);
        }
        let seq = self.bump_g(g);
        self.put(tid, ts, Ev::GoStart, &[g, seq])?;
        self.set_g(g, GSt::Running, Some(tid));
        self.m(tid).g = Some(g);
        Ok(true)
    }

    /// GoUnblock of waiting `g`, written on `tid` (the waker's thread).
    pub fn unblock(&mut self, tid: u32, ts: u64, g: u64) -> io::Result<()> {
        let seq = self.bump_g(g);
        self.put(tid, ts, Ev::GoUnblock, &[g, seq, self.cur_stack])?;
        self.set_g(g, GSt::Runnable, None);
        Ok(())
    }

    fn bump_g(&mut self, g: u64) -> u64 {
        let s = self.gs.get_mut(&g).map(|s| {
            s.seq += 1;
            s.seq
        });
        s.unwrap_or(1)
    }

    /// The last timestamp written.
    pub fn now(&self) -> u64 {
        self.last_ts
    }
}
