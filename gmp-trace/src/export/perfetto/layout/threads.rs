//! Thread (M) and processor (P) tracks: which goroutine runs on each, a thread's "spinning"
//! slices and steal and newm instants, and a P taken or handed back. An M or P track has at
//! most one open slice, so closing the old one comes first everywhere here.
use std::io::{self, Write};

use gmp_trace_common::Event;

use crate::export::perfetto::emit::{track_uuid, Arg, EncodedArg, Track, TrackKind};
use crate::export::perfetto::proto::{DebugAnnotation, ThreadDescriptor, TrackDescriptor};
use crate::export::perfetto::vocab::{ArgName, Name};
use crate::export::perfetto::{clamp, FlowKind, PerfettoWriter, M, P};
use crate::export::perfetto::{C_PS, C_SPINNING, C_THREADS};
use crate::export::Symbolize;

impl<W: Write> PerfettoWriter<W> {
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
    pub(super) fn ensure_m(&mut self, e: &Event) -> io::Result<()> {
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

    pub(super) fn ensure_p(&mut self, p: i32) -> io::Result<()> {
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

    pub(super) fn end_p_slice(&mut self, p: i32, ts: u64) -> io::Result<()> {
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
    pub(super) fn stop_running(&mut self, goid: u64, ts: u64) -> io::Result<()> {
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
    pub(in crate::export::perfetto) fn stop_m(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        match self.ms.get(&tid).and_then(|m| m.running) {
            Some(goid) if self.gs.contains_key(&goid) => self.stop_running(goid, ts),
            _ => self.end_m_slice(tid, ts),
        }
    }

    /// Opens "spinning" on the thread's track (closing what ran there: it is in the scheduler).
    pub(super) fn spin_begin(&mut self, tid: u32, ts: u64) -> io::Result<()> {
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
    pub(in crate::export::perfetto) fn spin_end(&mut self, tid: u32, ts: u64) -> io::Result<()> {
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
    pub(super) fn on_steal(&mut self, e: &Event) -> io::Result<()> {
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

    pub(in crate::export::perfetto) fn stop_p(&mut self, p: i32, ts: u64) -> io::Result<()> {
        self.end_p_slice(p, ts)
    }

    /// Opens "G7 main.worker" on the thread and P tracks.
    pub(super) fn start_running(
        &mut self,
        goid: u64,
        tid: u32,
        m_id: i64,
        p: i32,
        ts: u64,
    ) -> io::Result<()> {
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

    pub(super) fn on_acquire_p(&mut self, e: &Event) -> io::Result<()> {
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

    pub(super) fn on_release_p(&mut self, e: &Event) -> io::Result<()> {
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

    pub(super) fn on_mstart(&mut self, e: &Event) -> io::Result<()> {
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

    pub(super) fn on_newm(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
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
    pub(super) fn m_instant(
        &mut self,
        e: &Event,
        name: u64,
        args: Vec<DebugAnnotation>,
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
    pub(super) fn m_instant_at(&mut self, e: &Event) -> Option<(u64, Track)> {
        let m = self.ms.get_mut(&e.tid)?;
        let ts = clamp(&mut m.last_ts, e.ts, &mut self.stats.clamped_timestamps);
        self.stats.instants += 1;
        Some((ts, m.track))
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
