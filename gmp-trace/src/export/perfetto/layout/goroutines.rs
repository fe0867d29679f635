//! Goroutine tracks: each has exactly one open slice, its current state, from the first event
//! that names it to its exit; the "go", "unblock" and "steal" flows end on its next Running
//! slice. Goroutines that existed before tracing began get their track at their first event.
use std::io::{self, Write};

use gmp_trace_common::Event;

use crate::export::perfetto::emit::{track_uuid, Arg, EncodedArg, Track, TrackKind};
use crate::export::perfetto::proto::{TrackDescriptor, MERGE_NONE};
use crate::export::perfetto::vocab::{ArgName, Name};
use crate::export::perfetto::C_PS;
use crate::export::perfetto::{clamp, waitreason, FlowKind, PerfettoWriter, St, G};
use crate::export::Symbolize;
use crate::model::GoState;

impl<W: Write> PerfettoWriter<W> {
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

    pub(super) fn stw_name(&mut self, reason: u64) -> u64 {
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
    pub(in crate::export::perfetto) fn finish_g(&mut self, goid: u64, ts: u64) -> io::Result<()> {
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

    pub(super) fn on_go_create(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
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

    pub(super) fn on_execute(&mut self, e: &Event) -> io::Result<()> {
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

    pub(super) fn on_go_status(&mut self, e: &Event) -> io::Result<()> {
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

    pub(super) fn on_syscall(&mut self, e: &Event, enter: bool) -> io::Result<()> {
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
