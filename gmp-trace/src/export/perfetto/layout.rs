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
use std::io::{self, Write};

use gmp_trace_common::{Event, EventKind};

use super::emit::{track_uuid, Arg, EncodedArg, Track, TrackKind};
use super::proto::{ThreadDescriptor, TrackDescriptor, MERGE_NONE};
use super::vocab::{ArgName, Name};
use super::{clamp, waitreason, FlowKind, Lanes, PerfettoWriter, St, G, M, P};
use super::{C_GOMAXPROCS, C_LOST, C_PS, C_SPINNING, C_STEAL_FAILED, C_THREADS};
use crate::export::Symbolize;
use crate::model::GoState;

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

    // ---- threads and processors ----

    fn m_descriptor(&self, tid: u32, id: Option<i64>) -> TrackDescriptor {
        // Named like go tool trace's thread view, with the OS thread id people grep for; the
        // UI also appends the tid, and trace_processor has it in thread.tid.
        let name = match id {
            Some(m) => format!("M{m} (tid {tid})"),
            None => format!("M? (tid {tid})"),
        };
        TrackDescriptor {
            uuid: Some(track_uuid(
                self.meta.owner(),
                TrackKind::Thread,
                u64::from(tid),
            )),
            parent_uuid: Some(self.process_uuid),
            thread: Some(ThreadDescriptor {
                pid: Some(self.meta.pid as i32),
                tid: Some(tid as i32),
                thread_name: Some(name),
            }),
            ..TrackDescriptor::default()
        }
    }

    /// The event's thread track, created (or renamed once its m.id is known) as needed.
    fn ensure_m(&mut self, e: &Event) -> io::Result<()> {
        let id = (e.m >= 0).then_some(e.m);
        match self.ms.get_mut(&e.tid) {
            Some(m) => {
                if m.id.is_none() && id.is_some() {
                    m.id = id;
                    let d = self.m_descriptor(e.tid, id);
                    self.em.track(d)?;
                }
            }
            None => {
                let d = self.m_descriptor(e.tid, id);
                let track = Track::new(d.uuid.unwrap_or_default());
                self.em.track(d)?;
                self.ms.insert(
                    e.tid,
                    M {
                        track,
                        id,
                        last_ts: 0,
                        running: None,
                        spinning: false,
                        slices: 0,
                        p_args: None,
                    },
                );
                self.stats.thread_tracks += 1;
                self.set_counter(C_THREADS, self.ms.len() as i64);
            }
        }
        Ok(())
    }

    fn ensure_p(&mut self, p: i32) -> io::Result<()> {
        if self.ps.contains_key(&p) {
            return Ok(());
        }
        let uuid = track_uuid(self.meta.owner(), TrackKind::Proc, p as u32 as u64);
        let track = Track::new(uuid);
        self.em.track(TrackDescriptor {
            uuid: Some(uuid),
            parent_uuid: Some(self.procs_group),
            name: Some(format!("P{p}")),
            sibling_order_rank: Some(p),
            ..TrackDescriptor::default()
        })?;
        self.ps.insert(
            p,
            P {
                track,
                last_ts: 0,
                running: None,
                holder: None,
                slices: 0,
            },
        );
        self.stats.proc_tracks += 1;
        Ok(())
    }

    /// Closes the goroutine slice open on thread `tid`, if any.
    fn end_m_slice(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        let Some(m) = self.ms.get_mut(&tid) else {
            return Ok(());
        };
        let Some(goid) = m.running.take() else {
            return Ok(());
        };
        let ts = clamp(&mut m.last_ts, ts, &mut self.stats.clamped_timestamps);
        self.em.end(ts, m.track)?;
        if let Some(g) = self.gs.get_mut(&goid) {
            if g.on_m == Some(tid) {
                g.on_m = None;
            }
        }
        Ok(())
    }

    fn end_p_slice(&mut self, p: i32, ts: u64) -> io::Result<()> {
        let Some(pp) = self.ps.get_mut(&p) else {
            return Ok(());
        };
        let Some(goid) = pp.running.take() else {
            return Ok(());
        };
        let ts = clamp(&mut pp.last_ts, ts, &mut self.stats.clamped_timestamps);
        self.em.end(ts, pp.track)?;
        if let Some(g) = self.gs.get_mut(&goid) {
            if g.on_p == Some(p) {
                g.on_p = None;
            }
        }
        Ok(())
    }

    /// The goroutine stops running: its M and P slices end.
    fn stop_running(&mut self, goid: u64, ts: u64) -> io::Result<()> {
        let Some(g) = self.gs.get_mut(&goid) else {
            return Ok(());
        };
        let (on_m, on_p) = (g.on_m.take(), g.on_p.take());
        if let Some(tid) = on_m {
            if self.ms.get(&tid).is_some_and(|m| m.running == Some(goid)) {
                self.end_m_slice(tid, ts)?;
            }
        }
        if let Some(p) = on_p {
            if self.ps.get(&p).is_some_and(|pp| pp.running == Some(goid)) {
                self.end_p_slice(p, ts)?;
            }
        }
        Ok(())
    }

    /// Whatever runs on thread `tid` stops (it entered the scheduler).
    pub(super) fn stop_m(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        match self.ms.get(&tid).and_then(|m| m.running) {
            Some(goid) if self.gs.contains_key(&goid) => self.stop_running(goid, ts),
            _ => self.end_m_slice(tid, ts),
        }
    }

    /// Opens "spinning" on the thread's track (closing what ran there: it is in the scheduler).
    fn spin_begin(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        if self.ms.get(&tid).is_none_or(|m| m.spinning) {
            return Ok(());
        }
        self.stop_m(tid, ts)?;
        let name = Name::Spinning.iid();
        let Some(m) = self.ms.get_mut(&tid) else {
            return Ok(());
        };
        let ts = clamp(&mut m.last_ts, ts, &mut self.stats.clamped_timestamps);
        m.spinning = true;
        self.em.begin(ts, m.track, name, Vec::new(), &[])?;
        self.stats.spin_slices += 1;
        self.add_counter(C_SPINNING, 1);
        Ok(())
    }

    /// Closes the thread's "spinning" slice, if open.
    pub(super) fn spin_end(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        let Some(m) = self.ms.get_mut(&tid) else {
            return Ok(());
        };
        if !std::mem::take(&mut m.spinning) {
            return Ok(());
        }
        let ts = clamp(&mut m.last_ts, ts, &mut self.stats.clamped_timestamps);
        self.em.end(ts, m.track)?;
        self.add_counter(C_SPINNING, -1);
        Ok(())
    }

    /// A steal: an instant on the thief's thread and a flow to the stolen goroutine's next
    /// Running slice. (P tracks hold only goroutine slices.)
    fn on_steal(&mut self, e: &Event) -> io::Result<()> {
        let victim = e.arg0 as i64;
        let args = self.em.args(&[
            (ArgName::Goid.iid(), Arg::Uint(e.goid)),
            (ArgName::ThiefP.iid(), Arg::Int(i64::from(e.p))),
            (ArgName::VictimP.iid(), Arg::Int(victim)),
            (ArgName::Goroutines.iid(), Arg::Uint(e.arg1)),
        ]);
        let mut flow = None;
        if self.gs.contains_key(&e.goid) {
            let id = self.new_flow();
            if let Some(g) = self.gs.get_mut(&e.goid) {
                g.flows.push((id, FlowKind::Steal));
            }
            flow = Some(id);
        }
        let name = Name::Steal.iid();
        self.m_instant(e, name, args, flow.as_slice(), &[])?;
        Ok(())
    }

    pub(super) fn stop_p(&mut self, p: i32, ts: u64) -> io::Result<()> {
        self.end_p_slice(p, ts)
    }

    /// Opens "G7 main.worker" on the thread and P tracks.
    fn start_running(&mut self, goid: u64, tid: u32, m_id: i64, p: i32, ts: u64) -> io::Result<()> {
        let Some(name) = self.gs.get(&goid).map(|g| g.name_iid) else {
            return Ok(());
        };
        self.spin_end(tid, ts)?;
        if let Some(m) = self.ms.get_mut(&tid) {
            let ts = clamp(&mut m.last_ts, ts, &mut self.stats.clamped_timestamps);
            self.em.begin(ts, m.track, name, Vec::new(), &[])?;
            m.running = Some(goid);
            m.slices += 1;
            if let Some(g) = self.gs.get_mut(&goid) {
                g.on_m = Some(tid);
            }
        }
        if p >= 0 {
            self.start_on_p(goid, tid, m_id, p, ts)?;
        }
        Ok(())
    }

    fn start_on_p(&mut self, goid: u64, tid: u32, m_id: i64, p: i32, ts: u64) -> io::Result<()> {
        let Some(name) = self.gs.get(&goid).map(|g| g.name_iid) else {
            return Ok(());
        };
        self.ensure_p(p)?;
        let args = match self.ms.get_mut(&tid) {
            Some(m) => p_args(&mut m.p_args, m_id, tid),
            None => p_args(&mut None, m_id, tid),
        };
        let Some(pp) = self.ps.get_mut(&p) else {
            return Ok(());
        };
        let ts = clamp(&mut pp.last_ts, ts, &mut self.stats.clamped_timestamps);
        self.em.begin_encoded(ts, pp.track, name, &args)?;
        pp.running = Some(goid);
        pp.slices += 1;
        if let Some(g) = self.gs.get_mut(&goid) {
            g.on_p = Some(p);
        }
        Ok(())
    }

    fn on_acquire_p(&mut self, e: &Event) -> io::Result<()> {
        let Ok(p) = i32::try_from(e.arg0 as i64) else {
            return Ok(());
        };
        if p < 0 {
            return Ok(());
        }
        self.ensure_p(p)?;
        if let Some(pp) = self.ps.get_mut(&p) {
            if pp.holder.replace(e.tid).is_none() {
                self.add_counter(C_PS, 1);
            }
        }
        // A goroutine coming back from a syscall keeps running on its thread and takes a P
        // (no execute): show it on that P from now on.
        let running = self.ms.get(&e.tid).and_then(|m| m.running);
        if let Some(goid) = running {
            if self.gs.get(&goid).is_some_and(|g| g.on_p.is_none()) {
                if let Some(other) = self.ps.get(&p).and_then(|pp| pp.running) {
                    self.stop_running(other, e.ts)?;
                    self.end_p_slice(p, e.ts)?;
                }
                self.start_on_p(goid, e.tid, e.m, p, e.ts)?;
            }
        }
        Ok(())
    }

    fn on_release_p(&mut self, e: &Event) -> io::Result<()> {
        if e.p < 0 {
            return Ok(());
        }
        if let Some(pp) = self.ps.get_mut(&e.p) {
            if pp.holder == Some(e.tid) {
                pp.holder = None;
                self.add_counter(C_PS, -1);
            }
        }
        self.end_p_slice(e.p, e.ts)
    }

    fn on_mstart(&mut self, e: &Event) -> io::Result<()> {
        let flow = if e.m >= 0 {
            self.newm_flows.remove(&e.m)
        } else {
            None
        };
        if flow.is_some() {
            self.stats.flows_newm += 1;
        }
        let name = Name::MStart.iid();
        self.m_instant(e, name, Vec::new(), &[], flow.as_slice())?;
        Ok(())
    }

    fn on_newm(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let new_m = e.arg0 as i64;
        let mut args = vec![
            (ArgName::NewM.iid(), Arg::Int(new_m)),
            (ArgName::NewMP.iid(), Arg::Int(e.arg1 as i64)),
        ];
        if let Some(f) = sym.func_name(e.arg2) {
            args.push((ArgName::Fn.iid(), Arg::Str(f.to_owned())));
        }
        let args = self.em.args(&args);
        let mut flow = None;
        if new_m >= 0 {
            let id = self.new_flow();
            // A second newm for the same id replaces the first: its flow is dropped unfinished.
            self.newm_flows.insert(new_m, id);
            flow = Some(id);
        }
        let name = Name::NewM.iid();
        self.m_instant(e, name, args, flow.as_slice(), &[])?;
        Ok(())
    }

    /// An instant on the event's thread track; false if the thread has none (nothing written).
    fn m_instant(
        &mut self,
        e: &Event,
        name: u64,
        args: Vec<super::proto::DebugAnnotation>,
        flows: &[u64],
        terminating: &[u64],
    ) -> io::Result<bool> {
        let Some((ts, track)) = self.m_instant_at(e) else {
            return Ok(false);
        };
        self.em.instant(ts, track, name, args, flows, terminating)?;
        Ok(true)
    }

    /// Where an instant of the event goes on its thread's track (time kept in order on the
    /// track), counted; None for a thread without a track.
    #[inline(always)]
    fn m_instant_at(&mut self, e: &Event) -> Option<(u64, Track)> {
        let m = self.ms.get_mut(&e.tid)?;
        let ts = clamp(&mut m.last_ts, e.ts, &mut self.stats.clamped_timestamps);
        self.stats.instants += 1;
        Some((ts, m.track))
    }

    // ---- goroutines ----

    fn state_name(&mut self, st: St) -> u64 {
        match st {
            St::Running => Name::Running.iid(),
            St::Runnable => Name::Runnable.iid(),
            St::Syscall => Name::Syscall.iid(),
            St::Waiting(r) => {
                if let Some(&iid) = self.wait_names.get(&r) {
                    return iid;
                }
                let name = match waitreason::wait_reasons(&self.meta.go_version)
                    .and_then(|t| t.get(usize::from(r)))
                {
                    Some(&"") => "Waiting".to_owned(),
                    Some(s) => format!("Waiting ({s})"),
                    None => format!("Waiting (reason {r})"),
                };
                let iid = self.em.intern_name(name);
                self.wait_names.insert(r, iid);
                iid
            }
        }
    }

    fn stw_name(&mut self, reason: u64) -> u64 {
        if let Some(&iid) = self.stw_names.get(&reason) {
            return iid;
        }
        let name = match waitreason::stw_reasons(&self.meta.go_version)
            .and_then(|t| t.get(reason as usize))
        {
            Some(s) => format!("STW ({s})"),
            None => format!("STW (reason {reason})"),
        };
        let iid = self.em.intern_name(name);
        // Bounded: a stwReason is a uint8; anything else is not cached.
        if reason < 256 {
            self.stw_names.insert(reason, iid);
        }
        iid
    }

    /// Starts tracking a goroutine in state `st` since `ts`; its track waits for a name.
    fn new_g(&mut self, goid: u64, st: St, ts: u64) {
        self.gs.insert(
            goid,
            G {
                track: None,
                name_iid: 0,
                state: st,
                since: ts,
                slice_open: false,
                last_ts: 0,
                on_m: None,
                on_p: None,
                flows: Vec::new(),
            },
        );
        self.add_counter(st.counter(), 1);
        self.stats.max_live_goroutines = self.stats.max_live_goroutines.max(self.gs.len());
    }

    /// Creates the goroutine's track ("G7 main.worker", or "G7" when its start is unknown) and
    /// opens its current state there.
    fn materialize(&mut self, goid: u64, start_fn: Option<&str>) -> io::Result<()> {
        if self.gs.get(&goid).is_none_or(|g| g.track.is_some()) {
            return Ok(());
        }
        let name = match start_fn {
            Some(f) => format!("G{goid} {f}"),
            None => format!("G{goid}"),
        };
        let uuid = track_uuid(self.meta.owner(), TrackKind::Goroutine, goid);
        let track = Track::new(uuid);
        self.em.track(TrackDescriptor {
            uuid: Some(uuid),
            parent_uuid: Some(self.goroutines_group),
            name: Some(name.clone()),
            sibling_merge_behavior: Some(MERGE_NONE),
            ..TrackDescriptor::default()
        })?;
        let iid = self.em.intern_name(name);
        if let Some(g) = self.gs.get_mut(&goid) {
            g.track = Some(track);
            g.name_iid = iid;
        }
        self.stats.goroutine_tracks += 1;
        self.begin_state(goid)
    }

    /// Opens the slice of the goroutine's current state (ending flows if it is Running).
    fn begin_state(&mut self, goid: u64) -> io::Result<()> {
        let Some(st) = self.gs.get(&goid).map(|g| g.state) else {
            return Ok(());
        };
        let name = self.state_name(st);
        let Some(g) = self.gs.get_mut(&goid) else {
            return Ok(());
        };
        let Some(track) = g.track else {
            return Ok(());
        };
        let mut ends = std::mem::take(&mut self.flow_ends);
        ends.clear();
        if st == St::Running {
            for (id, kind) in g.flows.drain(..) {
                ends.push(id);
                match kind {
                    FlowKind::Go => self.stats.flows_go += 1,
                    FlowKind::Unblock => self.stats.flows_unblock += 1,
                    FlowKind::Steal => self.stats.flows_steal += 1,
                }
            }
        }
        let ts = clamp(&mut g.last_ts, g.since, &mut self.stats.clamped_timestamps);
        g.slice_open = true;
        self.stats.g_state_slices += 1;
        if self.keep_g_stats {
            *self.stats.g_slices.entry(goid).or_default() += 1;
        }
        // The stack of the event that changed the state (--stacks): where it blocked, yielded
        // or entered the system call.
        let stack = self.stack.take();
        let args = match &stack {
            Some(s) => self
                .em
                .args(&[(ArgName::Stack.iid(), Arg::Str(s.text.clone()))]),
            None => Vec::new(),
        };
        let r = self.em.begin(ts, track, name, args, &ends);
        if let Some(iid) = stack.and_then(|s| s.iid) {
            self.em.callstack(iid);
        }
        self.flow_ends = ends;
        r
    }

    /// Moves the goroutine to state `st` at `ts` (nothing if it is already there).
    fn set_state(&mut self, goid: u64, st: St, ts: u64) -> io::Result<()> {
        let Some(g) = self.gs.get_mut(&goid) else {
            return Ok(());
        };
        if g.state == st && (g.slice_open || g.track.is_none()) {
            return Ok(());
        }
        let old = g.state;
        if g.slice_open {
            let t = clamp(&mut g.last_ts, ts, &mut self.stats.clamped_timestamps);
            g.slice_open = false;
            if let Some(track) = g.track {
                self.em.end(t, track)?;
            }
        }
        g.state = st;
        g.since = ts;
        self.add_counter(old.counter(), -1);
        self.add_counter(st.counter(), 1);
        self.begin_state(goid)
    }

    /// The goroutine is gone: close everything it has open and forget it.
    pub(super) fn finish_g(&mut self, goid: u64, ts: u64) -> io::Result<()> {
        self.stop_running(goid, ts)?;
        let Some(mut g) = self.gs.remove(&goid) else {
            return Ok(());
        };
        if g.slice_open {
            let t = clamp(&mut g.last_ts, ts, &mut self.stats.clamped_timestamps);
            if let Some(track) = g.track {
                self.em.end(t, track)?;
            }
        }
        self.add_counter(g.state.counter(), -1);
        Ok(())
    }

    fn on_go_create(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let goid = e.goid;
        if goid == 0 {
            return Ok(());
        }
        let start_fn = sym
            .start_name(e.arg1)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{:#x}", e.arg1));
        let created_by = match sym.func_name(e.arg2) {
            Some(f) => Some(f.to_owned()),
            None => (e.arg2 != 0).then(|| format!("{:#x}", e.arg2)),
        };
        // Go 1.24+ reports casgstatus(_Gdead -> _Grunnable) first: that G is waiting here.
        if !self.gs.contains_key(&goid) {
            self.new_g(goid, St::Runnable, e.ts);
        }
        let flow = self.new_flow();
        let mut args = vec![
            (ArgName::Goid.iid(), Arg::Uint(goid)),
            (ArgName::StartFn.iid(), Arg::Str(start_fn.clone())),
            (ArgName::ParentGoid.iid(), Arg::Uint(e.arg0)),
        ];
        // g1 comes from rt0_go, which has no creation site.
        if let Some(site) = created_by {
            args.push((ArgName::CreatedBy.iid(), Arg::Str(site)));
        }
        let stack = self.stack.take();
        if let Some(s) = &stack {
            args.push((ArgName::Stack.iid(), Arg::Str(s.text.clone())));
        }
        let args = self.em.args(&args);
        let name = Name::Go.iid();
        if self.m_instant(e, name, args, &[flow], &[])? {
            if let Some(iid) = stack.and_then(|s| s.iid) {
                self.em.callstack(iid);
            }
        }
        if let Some(g) = self.gs.get_mut(&goid) {
            g.flows.push((flow, FlowKind::Go));
        }
        self.materialize(goid, Some(&start_fn))
    }

    fn on_execute(&mut self, e: &Event) -> io::Result<()> {
        let goid = e.goid;
        if goid == 0 {
            return Ok(());
        }
        if !self.gs.contains_key(&goid) {
            // Existed before tracing began.
            self.new_g(goid, St::Running, e.ts);
        }
        self.materialize(goid, None)?;
        self.stop_m(e.tid, e.ts)?;
        self.stop_running(goid, e.ts)?;
        if e.p >= 0 {
            self.ensure_p(e.p)?;
            if let Some(other) = self.ps.get(&e.p).and_then(|pp| pp.running) {
                self.stop_running(other, e.ts)?;
                self.end_p_slice(e.p, e.ts)?;
            }
            if let Some(pp) = self.ps.get_mut(&e.p) {
                if pp.holder.replace(e.tid).is_none() {
                    self.add_counter(C_PS, 1);
                }
            }
        }
        self.start_running(goid, e.tid, e.m, e.p, e.ts)?;
        self.set_state(goid, St::Running, e.ts)
    }

    fn on_go_status(&mut self, e: &Event) -> io::Result<()> {
        let goid = e.goid;
        // Go <= 1.23 flips a new G's status before assigning its goid: go_create covers it.
        if goid == 0 {
            return Ok(());
        }
        let reason = (e.arg2 & 0xff) as u8;
        let by = e.arg2 >> 8;
        let to = match GoState::from_runtime(e.arg1) {
            GoState::Running => St::Running,
            GoState::Runnable => St::Runnable,
            GoState::Waiting => St::Waiting(reason),
            GoState::Syscall => St::Syscall,
            GoState::NotExist => return self.finish_g(goid, e.ts),
            // _Gcopystack and unknown values are transient or unknown: keep the last state.
            GoState::Unknown => return Ok(()),
        };
        let Some(was) = self.gs.get(&goid).map(|g| g.state) else {
            self.new_g(goid, to, e.ts);
            if GoState::from_runtime(e.arg0) != GoState::NotExist {
                // Existed before tracing began; a new G waits for its go_create to be named.
                self.materialize(goid, None)?;
            }
            return Ok(());
        };
        if was.on_cpu() && !to.on_cpu() {
            self.stop_running(goid, e.ts)?;
        }
        if to == St::Runnable && matches!(was, St::Waiting(_)) && by != 0 {
            let flow = self.new_flow();
            // One per wakeup: its two numbers are encoded straight into the packet.
            let args = [
                EncodedArg::uint(ArgName::Goid.iid(), goid),
                EncodedArg::uint(ArgName::ByGoid.iid(), by),
            ];
            if let Some((ts, track)) = self.m_instant_at(e) {
                let name = Name::Unblock.iid();
                match self.stack.take() {
                    // The waker's stack (--stacks): the plain path, with a string argument.
                    Some(stack) => {
                        let args = self.em.args(&[
                            (ArgName::Goid.iid(), Arg::Uint(goid)),
                            (ArgName::ByGoid.iid(), Arg::Uint(by)),
                            (ArgName::Stack.iid(), Arg::Str(stack.text)),
                        ]);
                        self.em.instant(ts, track, name, args, &[flow], &[])?;
                        if let Some(iid) = stack.iid {
                            self.em.callstack(iid);
                        }
                    }
                    None => self.em.instant_encoded(ts, track, name, &args, &[flow])?,
                }
            }
            if let Some(g) = self.gs.get_mut(&goid) {
                g.flows.push((flow, FlowKind::Unblock));
            }
        }
        if matches!(was, St::Waiting(_)) {
            // A waker's stack goes on the unblock instant only, never on the woken one's slice.
            self.stack = None;
        }
        self.set_state(goid, to, e.ts)
    }

    fn on_syscall(&mut self, e: &Event, enter: bool) -> io::Result<()> {
        let goid = e.goid;
        if goid == 0 {
            return Ok(());
        }
        let Some(was) = self.gs.get(&goid).map(|g| g.state) else {
            self.new_g(goid, if enter { St::Syscall } else { St::Running }, e.ts);
            return self.materialize(goid, None);
        };
        match (enter, was) {
            (true, _) => self.set_state(goid, St::Syscall, e.ts),
            // Go 1.26+'s fast path skips casgstatus: the G simply runs on.
            (false, St::Syscall) => self.set_state(goid, St::Running, e.ts),
            (false, _) => Ok(()),
        }
    }
}

/// A P slice's args (`m`, `tid`) for thread `tid` running as `m_id`, encoded again only when
/// `m_id` is not the one `cache` holds them for.
fn p_args(cache: &mut Option<(i64, [EncodedArg; 2])>, m_id: i64, tid: u32) -> [EncodedArg; 2] {
    match cache {
        Some((m, args)) if *m == m_id => *args,
        _ => {
            let args = [
                EncodedArg::int(ArgName::M.iid(), m_id),
                EncodedArg::uint(ArgName::Tid.iid(), u64::from(tid)),
            ];
            *cache = Some((m_id, args));
            args
        }
    }
}
