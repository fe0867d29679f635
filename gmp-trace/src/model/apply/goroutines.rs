//! Goroutine events: creation (newproc1's return), status changes (casgstatus), starts
//! (execute) and exit (goexit1), and `transition`, the one place a goroutine changes state, so
//! that scheduling latency, P time, the graph's run time and the creation-site counts stay in
//! step whichever probe saw the change.
use gmp_trace_common::Event;

use super::syscalls::track_syscall;
use crate::model::{GoState, Goroutine, MState, Model, Transition, WORST_KEPT};

impl Model {
    pub(in crate::model) fn on_create(&mut self, e: &Event) {
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

    pub(in crate::model) fn on_status(&mut self, e: &Event) {
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
        if self.status_at_syscall_exit(e, from, to) {
            return;
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

    #[inline(always)]
    pub(in crate::model) fn on_execute(&mut self, e: &Event) {
        // resetspinning comes first when it is traced (level full); without it the spin ends
        // here.
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

    #[inline(always)]
    pub(in crate::model) fn on_exit(&mut self, e: &Event) {
        self.exited += 1;
        let g = self.goroutines.get_mut(&e.goid);
        if !g
            .as_ref()
            .is_some_and(|g| g.created_ts.is_some() || g.seeded)
        {
            self.exited_unseen += 1;
        }
        if let Some(g) = g {
            g.exited_ts = Some(e.ts);
        }
        if self.retire_on_exit {
            self.retire(e.goid);
        }
    }

    /// Applies `from -> to` to goroutine `goid` unless it is already in `to` (one runtime
    /// transition can be seen twice: by a dedicated probe and by casgstatus).
    pub(in crate::model) fn transition(
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
            let from_probes = self.syscalls_from_probes;
            track_syscall(th, &self.procs, from_probes, e, goid, from, to);
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
        self.occupy_p(e, goid, from, to);
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

    /// P utilization: a goroutine occupies the P from Running until it leaves Running.
    #[inline(always)]
    fn occupy_p(&mut self, e: &Event, goid: u64, from: GoState, to: GoState) {
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
    }

    pub(in crate::model) fn record(&mut self, t: Transition) {
        self.transitions.add(t.from, t.to);
        if let Some(log) = &mut self.transition_log {
            log.push(t);
        }
    }

    /// Folds an exited goroutine into the aggregates and forgets it.
    pub(in crate::model) fn retire(&mut self, goid: u64) {
        if let Some(g) = self.goroutines.remove(&goid) {
            if g.created_ts.is_some() {
                self.by_create_pc.entry(g.create_pc).or_default().exited += 1;
                self.by_start_pc.entry(g.start_pc).or_default().exited += 1;
            }
        }
    }
}

/// Keeps the `WORST_KEPT` worst (latency, goid, start pc), worst first, one entry per goroutine.
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
