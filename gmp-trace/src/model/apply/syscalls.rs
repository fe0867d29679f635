//! System calls, and what Go's tracer makes of them when the goroutine's P was lost meanwhile:
//! a plain exit is Syscall -> Running (GoSyscallEnd), one that lost its P is Syscall ->
//! Runnable (GoSyscallEndBlocked), then Runnable -> Running (GoStart) once it gets a P.
//! From Go 1.26 the fast path leaves syscalls out of casgstatus, so they come from the
//! entersyscall/exitsyscall probes and are corrected when the P turns out lost; up to Go 1.25
//! they come through casgstatus, and the loss is read from the thread's P history.
use gmp_trace_common::Event;

use crate::fasthash::ByP;
use crate::model::{GoState, InSyscall, MState, Model, Proc, Thread};

impl Model {
    #[inline(always)]
    pub(in crate::model) fn on_syscall_enter(&mut self, e: &Event) {
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

    #[inline(always)]
    pub(in crate::model) fn on_syscall_exit(&mut self, e: &Event) {
        self.set_m_state(e.tid, e.ts, MState::Running);
        if self.syscalls_from_probes {
            // exitsyscall's entry. With its P still held the syscall ends in Running
            // (GoSyscallEnd); without (sysmon took it) Go's tracer records Syscall ->
            // Runnable (GoSyscallEndBlocked), then a GoStart if exitsyscall gets a P
            // (acquirepNoTrace, see `syscall_got_p`), else the goroutine is queued
            // (exitsyscallNoP).
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

    /// A casgstatus `from -> to` of `e.goid` on a thread where its system call is ending:
    /// applies what Go's tracer reports there and returns true when that replaces applying
    /// the status change itself.
    #[inline(always)]
    pub(in crate::model) fn status_at_syscall_exit(
        &mut self,
        e: &Event,
        from: GoState,
        to: GoState,
    ) -> bool {
        let (exit_without_p, exit_with_p, in_syscall) = self
            .threads
            .get(&e.tid)
            .map(|th| (th.exit_without_p, th.exit_with_p, th.syscall))
            .unwrap_or_default();
        if exit_without_p.is_some_and(|(g, _)| g == e.goid) {
            if from == GoState::Syscall && to == GoState::Running {
                // Go >= 1.26 exitsyscall's Gsyscall -> Grunning, through casgstatus when the
                // CAS fails (a scan bit): already taken from the exitsyscall probe.
                return true;
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
                return true; // the failed-CAS casgstatus again: the probe had it
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
                return true;
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
                return true;
            }
        }
        false
    }

    /// Go >= 1.26: exitsyscall's probe saw the P, but sysmon or a stop-the-world took it before
    /// exitsyscall looked (they hold the goroutine's scan bit meanwhile, so its CAS to Running
    /// waited), and it now looks for another (exitsyscallTryGetP). For Go's tracer that exit
    /// was GoSyscallEndBlocked: take back the Syscall -> Running and make it Syscall ->
    /// Runnable; the GoStart follows when it gets a P (acquirepNoTrace), or exitsyscallNoP
    /// queues it.
    pub(in crate::model) fn syscall_lost_p(&mut self, e: &Event) {
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
    pub(in crate::model) fn syscall_got_p(&mut self, e: &Event) {
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
}

/// Go <= 1.25: opens the system call on thread `th` when `goid` enters Syscall, noting its P's
/// owner changes so far (see `InSyscall`), and closes it when `goid` leaves Syscall. Go >= 1.26
/// takes syscalls from their probes (`syscalls_from_probes`) and only closes here.
#[inline(always)]
pub(super) fn track_syscall(
    th: &mut Thread,
    procs: &ByP<Proc>,
    from_probes: bool,
    e: &Event,
    goid: u64,
    from: GoState,
    to: GoState,
) {
    if to == GoState::Syscall && !from_probes {
        th.syscall = Some(InSyscall {
            goid,
            p: e.p,
            p_owner_changes: procs.get(&e.p).map_or(0, |p| p.owner_changes),
            new_p: false,
        });
    } else if from == GoState::Syscall && th.syscall.is_some_and(|s| s.goid == goid) {
        th.syscall = None;
    }
}
