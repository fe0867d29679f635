//! Where events come from. `live` reads the probes' ring buffer; recorded files come later
//! through the same `Sink`, so the model and exporters cannot tell the two apart.
pub mod exec;
pub mod live;
pub mod recording;
pub mod sampler;
pub mod stacks;

use gmp_trace_common::gstatus::{DEAD, RUNNABLE, RUNNING};
use gmp_trace_common::{Event, EventKind};

/// Consumes decoded events in arrival order.
pub trait Sink {
    fn event(&mut self, e: &Event);
    /// A ring-buffer record too short to be an event (a newer or corrupt producer).
    fn malformed(&mut self, len: usize);
}

/// Events the daemon derives instead of probing for them. `runtime.execute(gp)` starts gp with
/// `casgstatus(gp, _Grunnable, _Grunning)` (the only other caller of that change is a coroutine
/// switch, which starts gp on this M just the same), so that status event, which already
/// carries the M, the P and gp, stands for the execute event too: one trap fewer per goroutine
/// switch. Recordings made while `runtime.execute` itself was probed carry their own execute
/// events; once one is seen nothing is derived.
///
/// Likewise a goroutine's exit: `goexit1` calls `goexit0` on the same M, which ends gp with
/// `casgstatus(gp, _Grunning, _Gdead)` (the only way from running to dead), so where status
/// changes are probed (levels sched and full) that change stands for `goexit1` too and its
/// probe is left out (`probes::without_derived`). At level lifecycle `goexit1` is probed; once
/// a probed exit is seen no exit is derived.
#[derive(Debug, Default)]
pub struct Derive {
    probed_execute: bool,
    probed_exit: bool,
}

/// `arg1` of an execute or exit event derived from casgstatus (the probes' own leave it 0).
pub const DERIVED: u64 = 1;

impl Derive {
    /// The event `e` also stands for, to be handled right before `e` itself: a derived execute
    /// or exit.
    #[inline]
    pub fn before(&mut self, e: &Event) -> Option<Event> {
        if e.kind == EventKind::GoStatus as u32 {
            let kind = match (e.arg0, e.arg1) {
                (RUNNABLE, RUNNING) if !self.probed_execute => EventKind::Execute,
                (RUNNING, DEAD) if !self.probed_exit => EventKind::GoExit,
                _ => return None,
            };
            return Some(Event {
                kind: kind as u32,
                arg0: 0,
                arg1: DERIVED,
                arg2: 0,
                ..*e
            });
        }
        if e.kind == EventKind::Execute as u32 {
            self.probed_execute = true;
        } else if e.kind == EventKind::GoExit as u32 {
            self.probed_exit = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(old: u64, new: u64) -> Event {
        Event {
            ts: 7,
            kind: EventKind::GoStatus as u32,
            tid: 3,
            pid: 1,
            p: 2,
            goid: 42,
            m: 5,
            arg0: old,
            arg1: new,
            arg2: 42 << 8,
        }
    }

    fn expand(d: &mut Derive, e: &Event) -> Vec<Event> {
        d.before(e).into_iter().chain([*e]).collect()
    }

    #[test]
    fn execute_derived_from_runnable_to_running() {
        let mut d = Derive::default();
        let e = status(1, 2);
        let out = expand(&mut d, &e);
        assert_eq!(out.len(), 2);
        let x = out[0];
        assert_eq!(x.kind, EventKind::Execute as u32);
        assert_eq!(
            (x.ts, x.tid, x.pid, x.p, x.goid, x.m, x.arg1),
            (7, 3, 1, 2, 42, 5, DERIVED)
        );
        assert_eq!(out[1], e);
        // Other changes pass through alone.
        for (old, new) in [(2, 4), (4, 1), (3, 2), (6, 1), (2, 1), (3, 6), (0, 6)] {
            assert_eq!(expand(&mut d, &status(old, new)), vec![status(old, new)]);
        }
    }

    #[test]
    fn exit_derived_from_running_to_dead() {
        let mut d = Derive::default();
        let e = status(2, 6);
        let out = expand(&mut d, &e);
        assert_eq!(out.len(), 2);
        let x = out[0];
        assert_eq!(x.kind, EventKind::GoExit as u32);
        assert_eq!(
            (x.ts, x.tid, x.m, x.p, x.goid, x.arg1),
            (7, 3, 5, 2, 42, DERIVED)
        );
        assert_eq!(out[1], e);
    }

    #[test]
    fn no_exit_derived_once_goexit1_is_probed() {
        let mut d = Derive::default();
        let probed = Event {
            kind: EventKind::GoExit as u32,
            ..status(0, 0)
        };
        assert_eq!(expand(&mut d, &probed), vec![probed]);
        assert_eq!(expand(&mut d, &status(2, 6)), vec![status(2, 6)]);
        // Execute is still derived: the two are independent.
        assert_eq!(expand(&mut d, &status(1, 2)).len(), 2);
    }

    #[test]
    fn nothing_derived_once_execute_is_probed() {
        let mut d = Derive::default();
        let probed = Event {
            kind: EventKind::Execute as u32,
            ..status(0, 0)
        };
        assert_eq!(expand(&mut d, &probed), vec![probed]);
        assert_eq!(expand(&mut d, &status(1, 2)), vec![status(1, 2)]);
    }
}
