//! Our goroutine transitions (the model's, in Go's tracer vocabulary) and scheduler events,
//! written as Go trace events through the reader's mirror (`state.rs`).
//!
//! A transition maps onto the event Go's tracer writes for it: NotExist->Runnable GoCreate,
//! Runnable->Running GoStart, Running->Waiting GoBlock, Waiting->Runnable GoUnblock,
//! Running->Runnable GoStop, Running->NotExist GoDestroy, Running->Syscall GoSyscallBegin,
//! Syscall->Running GoSyscallEnd, Syscall->Runnable GoSyscallEndBlocked. The event is written
//! on the thread where the goroutine is to the reader (which is where it happened unless we
//! missed a step), after the moves that make it legal there.
use std::io::{self, Write};

use gmp_trace_common::{phase, Event, EventKind};

use crate::model::{GoState, Transition};

use super::reasons::Reasons;
use super::state::{GSt, State};
use super::wire::Ev;

/// Everything written besides the goroutines: GC, STW, GOMAXPROCS, startup phases.
#[derive(Default)]
pub struct Runtime {
    /// The last GC sequence number written, and whether a GC is open.
    gc_seq: u64,
    gc_open: bool,
    /// The goroutine whose STWBegin is open (STWEnd must be on it).
    stw_on: Option<u64>,
    /// GOMAXPROCS and startup logs waiting for a thread with a running goroutine.
    procs: Option<u64>,
    logs: Vec<(u64, String)>,
    /// Phase ids already logged, as bits.
    phases_seen: u64,
}

fn gst(s: GoState) -> Option<GSt> {
    Some(match s {
        GoState::Runnable => GSt::Runnable,
        GoState::Running => GSt::Running,
        GoState::Syscall => GSt::Syscall,
        GoState::Waiting => GSt::Waiting,
        GoState::Unknown | GoState::NotExist => return None,
    })
}

impl<W: Write> State<W> {
    /// One of our transitions.
    pub fn transition(&mut self, t: &Transition, reasons: &Reasons) -> io::Result<()> {
        let (tid, ts, g) = (t.tid, t.ts, t.goid);
        if t.from == GoState::NotExist && t.to == GoState::Runnable {
            return self.create(t);
        }
        if !self.gs.contains_key(&g) {
            // First sight of a goroutine that existed before (or whose creation we lost):
            // its status, then the transition from there.
            match gst(t.from) {
                Some(from) => self.status(tid, ts, g, from, t.p)?,
                None => {
                    if let Some(to) = gst(t.to) {
                        self.status(tid, ts, g, to, t.p)?;
                    }
                    return Ok(());
                }
            }
        }
        let Some(cur) = self.gs.get(&g).copied() else {
            return Ok(());
        };
        if gst(t.from) != Some(cur.st) && !(cur.hidden && t.to == GoState::Running) {
            log::trace!("Go trace: {t:?} from the reader's {cur:?}");
            // The reader has it in another state than our `from` (a step we missed): the event
            // written is from the reader's state.
            self.synth.rewritten += 1;
        }
        if cur.hidden {
            return self.after_hidden(t, cur.m);
        }
        match t.to {
            GoState::Running => self.enter_running(t, cur.st, cur.m),
            GoState::Runnable => self.enter_runnable(tid, ts, g, cur.st, cur.m),
            GoState::Waiting => match (cur.st, cur.m) {
                (GSt::Running, Some(m)) if reasons.hidden(t.reason) => {
                    // Go's tracer shows no wait here: the goroutine stays Running.
                    let _ = m;
                    if let Some(s) = self.gs.get_mut(&g) {
                        s.hidden = true;
                    }
                    self.synth.hidden_waits += 1;
                    Ok(())
                }
                (GSt::Running, Some(m)) => {
                    if !self.need_p(m, ts, -1)? {
                        self.synth.unmapped += 1;
                        return Ok(());
                    }
                    let r = self.wire.strings.id(reasons.block(t.reason));
                    self.put(m, ts, Ev::GoBlock, &[r, self.cur_stack])?;
                    self.set_g(g, GSt::Waiting, None);
                    self.m(m).g = None;
                    Ok(())
                }
                (GSt::Waiting, _) => Ok(()),
                _ => {
                    self.synth.unmapped += 1;
                    Ok(())
                }
            },
            GoState::Syscall => self.enter_syscall(t, cur.st, cur.m),
            GoState::NotExist => self.destroy(t, cur.st, cur.m),
            GoState::Unknown => Ok(()),
        }
    }

    /// NotExist -> Runnable: GoCreate on the creator's thread, which needs a P there and,
    /// when a goroutine is current there, a running one.
    fn create(&mut self, t: &Transition) -> io::Result<()> {
        let (tid, ts, g) = (t.tid, t.ts, t.goid);
        if self.gs.contains_key(&g) {
            log::trace!("Go trace: creation of g{g} already known: {t:?}");
            self.synth.unmapped += 1;
            return Ok(());
        }
        let cur_ok = self
            .cur_g(tid)
            .and_then(|c| self.gs.get(&c))
            .is_none_or(|c| c.st == GSt::Running);
        if !cur_ok {
            // The creator is not running to the reader (a missed syscall exit): the creation
            // comes from the thread alone.
            self.stop_running(tid, ts)?;
        }
        if !self.need_p(tid, ts, t.p)? {
            log::trace!("Go trace: no P for the creation of g{g}: {t:?}");
            self.synth.unmapped += 1;
            return self.status(tid, ts, g, GSt::Runnable, -1);
        }
        let new_stack = self.start_stack.remove(&g).unwrap_or(0);
        self.put(tid, ts, Ev::GoCreate, &[g, new_stack, self.cur_stack])?;
        self.gs.insert(
            g,
            super::state::G {
                st: GSt::Runnable,
                seq: 0,
                m: None,
                hidden: false,
            },
        );
        Ok(())
    }

    /// The end of a wait Go's tracer does not show: nothing unless it does not end running.
    fn after_hidden(&mut self, t: &Transition, on: Option<u32>) -> io::Result<()> {
        if let Some(s) = self.gs.get_mut(&t.goid) {
            s.hidden = false;
        }
        let m = on.unwrap_or(t.tid);
        match t.to {
            GoState::Running if m == t.tid => Ok(()),
            GoState::Running => {
                self.stop_running(m, t.ts)?;
                self.start(t.tid, t.ts, t.goid, t.p).map(|_| ())
            }
            GoState::Runnable => self.yield_g(m, t.ts),
            GoState::NotExist => self.destroy(t, GSt::Running, Some(m)),
            _ => {
                self.synth.unmapped += 1;
                Ok(())
            }
        }
    }

    fn enter_running(&mut self, t: &Transition, st: GSt, on: Option<u32>) -> io::Result<()> {
        let (tid, ts, g) = (t.tid, t.ts, t.goid);
        match (st, on) {
            (GSt::Running, Some(m)) if m == tid => return Ok(()),
            (GSt::Syscall, Some(m)) if m == tid => {
                let p_in_syscall = self
                    .cur_p(tid)
                    .and_then(|p| self.ps.get(&p))
                    .is_some_and(|p| p.st == super::state::PSt::Syscall);
                if p_in_syscall {
                    self.put(tid, ts, Ev::GoSyscallEnd, &[])?;
                    if let Some(p) = self.cur_p(tid).and_then(|p| self.ps.get_mut(&p)) {
                        p.st = super::state::PSt::Running;
                    }
                    self.set_g(g, GSt::Running, Some(tid));
                    return Ok(());
                }
                // Its P was taken meanwhile: it comes out blocked and starts again.
                self.end_blocked(tid, ts, g)?;
                self.synth.go_events += 1;
                self.synth.rewritten += 1;
            }
            (GSt::Running | GSt::Syscall, Some(m)) => self.stop_running(m, ts)?,
            (GSt::Waiting, _) => {
                self.unblock(tid, ts, g)?;
                self.synth.go_events += 1;
            }
            _ => {}
        }
        if !self.start(tid, ts, g, t.p)? {
            self.synth.unmapped += 1;
        }
        Ok(())
    }

    fn enter_runnable(
        &mut self,
        tid: u32,
        ts: u64,
        g: u64,
        st: GSt,
        on: Option<u32>,
    ) -> io::Result<()> {
        match (st, on) {
            (GSt::Waiting, _) => self.unblock(tid, ts, g),
            (GSt::Running, Some(m)) => self.yield_g(m, ts),
            (GSt::Syscall, Some(m)) => self.end_blocked(m, ts, g),
            _ => Ok(()),
        }
    }

    fn enter_syscall(&mut self, t: &Transition, st: GSt, on: Option<u32>) -> io::Result<()> {
        let (ts, g) = (t.ts, t.goid);
        let m = match (st, on) {
            (GSt::Running, Some(m)) => m,
            (GSt::Syscall, _) => return Ok(()),
            _ => {
                self.synth.unmapped += 1;
                return Ok(());
            }
        };
        if !self.need_p(m, ts, t.p)? {
            self.synth.unmapped += 1;
            return Ok(());
        }
        let Some(p) = self.cur_p(m) else {
            return Ok(());
        };
        let seq = match self.ps.get_mut(&p) {
            Some(s) => {
                s.seq += 1;
                s.st = super::state::PSt::Syscall;
                s.seq
            }
            None => return Ok(()),
        };
        self.put(m, ts, Ev::GoSyscallBegin, &[seq, self.cur_stack])?;
        self.set_g(g, GSt::Syscall, Some(m));
        Ok(())
    }

    fn destroy(&mut self, t: &Transition, st: GSt, on: Option<u32>) -> io::Result<()> {
        let (ts, g) = (t.ts, t.goid);
        match (st, on) {
            (GSt::Running, Some(m)) => {
                if !self.need_p(m, ts, t.p)? {
                    self.synth.unmapped += 1;
                    return Ok(());
                }
                self.put(m, ts, Ev::GoDestroy, &[])?;
                self.m(m).g = None;
            }
            (GSt::Syscall, Some(m)) => {
                // Without a P parked in the syscall, so the reader has none to abandon.
                if let Some(p) = self.cur_p(m) {
                    if self
                        .ps
                        .get(&p)
                        .is_some_and(|s| s.st == super::state::PSt::Syscall)
                    {
                        self.drop_p(m, ts)?;
                    }
                }
                self.put(m, ts, Ev::GoDestroySyscall, &[])?;
                self.m(m).g = None;
            }
            _ => {
                // Go's tracer has no event for a goroutine dying while not running.
                self.synth.unmapped += 1;
                return Ok(());
            }
        }
        self.gs.remove(&g);
        self.start_stack.remove(&g);
        Ok(())
    }

    /// A scheduler or runtime event of ours (not a goroutine transition).
    pub fn raw(&mut self, e: &Event, rt: &mut Runtime, reasons: &Reasons) -> io::Result<()> {
        let Some(kind) = EventKind::from_u32(e.kind) else {
            return Ok(());
        };
        let (tid, ts) = (e.tid, e.ts);
        match kind {
            EventKind::AcquireP if (e.arg0 as i64) >= 0 => {
                self.take_p(tid, ts, e.arg0 as i64 as i32)?
            }
            EventKind::ReleaseP => self.drop_p(tid, ts)?,
            EventKind::ProcResize => rt.procs = Some(e.arg0),
            EventKind::GcStart => {
                if !rt.gc_open && self.user_ctx(tid) {
                    rt.gc_seq += 1;
                    rt.gc_open = true;
                    self.put(tid, ts, Ev::GcBegin, &[rt.gc_seq, 0])?;
                } else {
                    self.synth.dropped += 1;
                }
            }
            EventKind::GcDone => {
                if rt.gc_open && self.user_ctx(tid) {
                    rt.gc_seq += 1;
                    rt.gc_open = false;
                    self.put(tid, ts, Ev::GcEnd, &[rt.gc_seq])?;
                } else {
                    self.synth.dropped += 1;
                }
            }
            EventKind::StwStart => {
                if rt.stw_on.is_none() && self.user_ctx(tid) {
                    let kind = self.wire.strings.id(&reasons.stw(e.arg0));
                    self.put(tid, ts, Ev::StwBegin, &[kind, 0])?;
                    rt.stw_on = self.cur_g(tid);
                } else {
                    self.synth.dropped += 1;
                }
            }
            EventKind::StwDone => self.stw_done(tid, ts, rt)?,
            EventKind::Phase => {
                // Each milestone once (every M passes through mstart).
                if let Some(name) =
                    phase_name(e.arg0).filter(|_| rt.phases_seen & (1 << e.arg0) == 0)
                {
                    rt.phases_seen |= 1 << e.arg0;
                    rt.logs.push((ts, name.to_string()));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// STWEnd goes on the goroutine that began it, wherever that runs now.
    fn stw_done(&mut self, tid: u32, ts: u64, rt: &mut Runtime) -> io::Result<()> {
        let Some(g) = rt.stw_on else {
            self.synth.dropped += 1;
            return Ok(());
        };
        let on = self.gs.get(&g).and_then(|s| s.m).unwrap_or(tid);
        if self.cur_g(on) == Some(g) && self.user_ctx(on) {
            self.put(on, ts, Ev::StwEnd, &[])?;
            rt.stw_on = None;
        } else {
            self.synth.dropped += 1;
        }
        Ok(())
    }

    /// Writes GOMAXPROCS and startup logs that wait for a thread with a running goroutine.
    pub fn pending(&mut self, tid: u32, rt: &mut Runtime) -> io::Result<()> {
        if (rt.procs.is_none() && rt.logs.is_empty()) || !self.user_ctx(tid) {
            return Ok(());
        }
        let ts = self.now();
        if let Some(n) = rt.procs.take() {
            self.put(tid, ts, Ev::ProcsChange, &[n, 0])?;
        }
        let key = self.wire.strings.id("gmp-trace startup");
        for (_, name) in std::mem::take(&mut rt.logs) {
            let v = self.wire.strings.id(&name);
            self.put(tid, ts, Ev::UserLog, &[0, key, v, 0])?;
        }
        Ok(())
    }
}

/// The startup milestones a reader sees as logs (the time they are written at is the first
/// moment a goroutine runs with a P after them: the format ties logs to a goroutine).
fn phase_name(id: u64) -> Option<&'static str> {
    Some(match id {
        phase::RT0_GO => "rt0_go",
        phase::SCHEDINIT => "schedinit",
        phase::MSTART_M0 => "mstart m0",
        phase::GCENABLE => "gcenable",
        phase::MAIN_MAIN => "main.main",
        phase::EXEC => "exec",
        _ => return None,
    })
}
