//! From scheduler events to tracks: which slice opens and closes where.
//!
//! Invariants kept here:
//! - an M or P track has at most one open slice (the goroutine running there), so slices on it
//!   never overlap; instants nest inside it;
//! - a goroutine track always has exactly one open slice, its current state;
//! - timestamps on one track never go backwards (see `clamp`), so begin/end pairs stay ordered
//!   when events from different CPUs arrive slightly out of order;
//! - a flow id is written as a source once and ends at most once; flows whose target never
//!   appears are dropped with the goroutine.
//!
//! Anomalies tolerated rather than trusted: a goroutine seen running on two threads (the older
//! slice is closed), `execute` on a thread that still shows another goroutine (closed), events for
//! goroutines that existed before tracing began (their track starts at the first event),
//! trailing events of an exited goroutine (ignored).
//!
//! The one dispatch on the event kind is here; its handlers are split by the tracks they
//! write, so that each kind of track's invariants read in one file: `layout/threads.rs` (M and
//! P tracks: the goroutine running there, spinning, steals, P hand-offs) and
//! `layout/goroutines.rs` (a goroutine's own track, its state slices and the flows into them).
mod goroutines;
mod threads;

use std::io::{self, Write};

use gmp_trace_common::{Event, EventKind};

use super::emit::Arg;
use super::vocab::{ArgName, Name};
use super::{Lanes, PerfettoWriter};
use super::{C_GOMAXPROCS, C_LOST, C_STEAL_FAILED};
use crate::export::Symbolize;

impl<W: Write> PerfettoWriter<W> {
    // Long (~85 lines) on purpose: the per-event dispatch, one short arm per event kind, each
    // calling into emit.rs; kept as one match so the kinds read side by side.
    pub(super) fn apply(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let Some(kind) = EventKind::from_u32(e.kind) else {
            self.stats.unknown_events += 1;
            return Ok(());
        };
        if kind == EventKind::Lost {
            // Synthesised by userspace, not on any thread.
            self.stats.lost_events += e.arg0;
            let total = e.arg1.max(self.stats.lost_events);
            self.set_counter(C_LOST, total as i64);
            let name = Name::LostEvents.iid();
            let args = self.em.args(&[(ArgName::Lost.iid(), Arg::Uint(e.arg0))]);
            self.stats.instants += 1;
            return self
                .em
                .instant(e.ts, self.process_track, name, args, &[], &[]);
        }
        if kind == EventKind::StealFailed {
            // A counter from the probes, on no thread.
            self.set_counter(C_STEAL_FAILED, e.arg1 as i64);
            return Ok(());
        }
        if kind == EventKind::LoadBias {
            // Also gmp-trace's own note (about addresses): the symbolizer has applied it.
            return Ok(());
        }
        self.ensure_m(e)?;
        match kind {
            EventKind::GoCreate => self.on_go_create(e, sym),
            EventKind::Execute => self.on_execute(e),
            EventKind::Schedule => self.stop_m(e.tid, e.ts),
            EventKind::GoExit => self.finish_g(e.goid, e.ts),
            EventKind::GoStatus => self.on_go_status(e),
            EventKind::SyscallEnter => self.on_syscall(e, true),
            EventKind::SyscallExit => self.on_syscall(e, false),
            EventKind::AcquireP => {
                self.on_acquire_p(e)?;
                if e.arg1 & 1 != 0 {
                    self.spin_begin(e.tid, e.ts)?;
                }
                Ok(())
            }
            EventKind::ReleaseP => {
                self.spin_end(e.tid, e.ts)?;
                self.on_release_p(e)
            }
            EventKind::MIdle | EventKind::SpinEnd => self.spin_end(e.tid, e.ts),
            EventKind::SpinStart => self.spin_begin(e.tid, e.ts),
            EventKind::Steal => self.on_steal(e),
            EventKind::MStart => self.on_mstart(e),
            EventKind::NewM => self.on_newm(e, sym),
            EventKind::ProcResize => {
                self.set_counter(C_GOMAXPROCS, e.arg0 as i64);
                let name = Name::Gomaxprocs.iid();
                let args = self.em.args(&[(ArgName::Nprocs.iid(), Arg::Uint(e.arg0))]);
                self.stats.instants += 1;
                self.em
                    .instant(e.ts, self.process_track, name, args, &[], &[])
            }
            EventKind::StwStart => {
                let name = self.stw_name(e.arg0);
                let args = self.em.args(&[(ArgName::Reason.iid(), Arg::Uint(e.arg0))]);
                self.lane_begin(Lanes::Stw, e.ts, name, args)
            }
            EventKind::StwDone => self.lane_end(Lanes::Stw, e.ts),
            EventKind::GcStart => {
                let name = Name::Gc.iid();
                let trigger = match e.arg0 {
                    0 => "heap",
                    1 => "time",
                    2 => "cycle",
                    _ => "unknown",
                };
                let args = self
                    .em
                    .args(&[(ArgName::Trigger.iid(), Arg::Str(trigger.to_owned()))]);
                self.lane_begin(Lanes::Gc, e.ts, name, args)
            }
            EventKind::GcDone => self.lane_end(Lanes::Gc, e.ts),
            EventKind::Phase => self.on_phase(e, sym),
            // Nothing to draw (go_create covers newproc, the Startup lane runtime.main), and
            // kinds newer than this layout: ignored until it learns them.
            _ => Ok(()),
        }
    }
}
