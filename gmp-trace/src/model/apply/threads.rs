//! Thread (M) and processor (P) events: an M's creation and start, what it is doing (running,
//! scheduling, spinning, idle), the Ps it acquires and releases, and the run-queue steals of
//! spinning Ms.
use gmp_trace_common::Event;

use crate::model::{GoState, MState, Model, Proc};

impl Model {
    #[inline(always)]
    pub(in crate::model) fn on_new_m(&mut self, e: &Event) {
        // Linked to the new thread when its mstart reports the same m.id.
        self.pending_newm.insert(e.arg0 as i64, e.tid);
    }

    #[inline(always)]
    pub(in crate::model) fn on_mstart(&mut self, e: &Event) {
        let creator = self.pending_newm.remove(&e.m);
        if let Some(th) = self.threads.get_mut(&e.tid) {
            th.mstart_ts.get_or_insert(e.ts);
            th.created_by = th.created_by.or(creator);
        }
    }

    #[inline(always)]
    pub(in crate::model) fn on_schedule(&mut self, e: &Event) {
        // A new M started spinning (mspinning, then acquirep) enters schedule still spinning:
        // that does not end the spell.
        if self.threads.get(&e.tid).map(|t| t.state) != Some(MState::Spinning) {
            self.set_m_state(e.tid, e.ts, MState::Scheduling);
        }
    }

    #[inline(always)]
    pub(in crate::model) fn on_spin_start(&mut self, e: &Event) {
        // stealWork runs once per round of a spinning M's findRunnable: the first starts the
        // spell, the rest continue it.
        self.set_m_state(e.tid, e.ts, MState::Spinning);
    }

    #[inline(always)]
    pub(in crate::model) fn on_spin_end(&mut self, e: &Event) {
        // resetspinning: found work (execute follows). Without a known start (the M became
        // spinning where no probe sees it, e.g. findRunnable's re-check after dropping its P)
        // there is no spell to close.
        if self.threads.get(&e.tid).map(|t| t.state) == Some(MState::Spinning) {
            self.set_m_state(e.tid, e.ts, MState::Scheduling);
        }
    }

    /// acquirep (arg0 the P, arg1 bit 0: handed over as a spinning M). `resize_pending`: the
    /// previous event on this thread was procresize's entry (see `resized_away`).
    #[inline(always)]
    pub(in crate::model) fn on_acquire_p(&mut self, e: &Event, resize_pending: bool) {
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
            // A parked M woken with a P (stopm returns through acquirep) looks for work
            // again; handed the P as a spinning M (arg1), it spins from here.
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

    #[inline(always)]
    pub(in crate::model) fn on_release_p(&mut self, e: &Event) {
        // findRunnable drops its P and then clears m.spinning (gcstopm clears it first): a
        // spinning M that lets go of its P has stopped spinning.
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

    /// Moves thread `tid` to `state` at `ts`, opening or closing its spinning spell.
    pub(in crate::model) fn set_m_state(&mut self, tid: u32, ts: u64, state: MState) {
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
    pub(in crate::model) fn on_steal(&mut self, e: &Event) {
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
}
