//! The process-wide lanes (Startup, GC, STW): at most one open slice each, a new one closing
//! the previous.
use std::io::{self, Write};

use gmp_trace_common::{phase, Event};

use super::emit::Arg;
use super::proto::DebugAnnotation;
use super::vocab::{ArgName, Name};
use super::{clamp, waitreason, Lane, Lanes, PerfettoWriter};
use crate::export::Symbolize;
use crate::model::startup::package_of;

impl<W: Write> PerfettoWriter<W> {
    fn lane(&mut self, l: Lanes) -> &mut Lane {
        match l {
            Lanes::Startup => &mut self.startup,
            Lanes::Gc => &mut self.gc,
            Lanes::Stw => &mut self.stw,
        }
    }

    /// Opens a slice on a lane, closing the one still open there.
    pub(super) fn lane_begin(
        &mut self,
        l: Lanes,
        ts: u64,
        name: u64,
        args: Vec<DebugAnnotation>,
    ) -> io::Result<()> {
        self.lane_end(l, ts)?;
        let mut clamped = 0;
        let lane = self.lane(l);
        let ts = clamp(&mut lane.last_ts, ts, &mut clamped);
        lane.open = true;
        let track = lane.track;
        self.stats.clamped_timestamps += clamped;
        match l {
            Lanes::Startup => self.stats.startup_slices += 1,
            Lanes::Gc => self.stats.gc_slices += 1,
            Lanes::Stw => self.stats.stw_slices += 1,
        }
        self.em.begin(ts, track, name, args, &[])
    }

    pub(super) fn lane_end(&mut self, l: Lanes, ts: u64) -> io::Result<()> {
        let mut clamped = 0;
        let lane = self.lane(l);
        if !lane.open {
            return Ok(());
        }
        lane.open = false;
        let ts = clamp(&mut lane.last_ts, ts, &mut clamped);
        let track = lane.track;
        self.stats.clamped_timestamps += clamped;
        self.em.end(ts, track)
    }

    /// The traced program exec'd a new image: the trace of this image ends with an instant
    /// "exec PATH" on the startup lane (the process's own track group).
    pub fn image_replaced(&mut self, r: &crate::source::exec::Replacement) -> io::Result<()> {
        self.lane_end(Lanes::Startup, r.ts)?;
        let path = r.path.as_deref().unwrap_or("(new image's path unknown)");
        let name = self.em.intern_name(format!("exec {path}"));
        let lane = &mut self.startup;
        let ts = clamp(&mut lane.last_ts, r.ts, &mut self.stats.clamped_timestamps);
        self.stats.instants += 1;
        self.em.instant(ts, lane.track, name, Vec::new(), &[], &[])
    }

    pub(super) fn on_phase(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let name = match e.arg0 {
            phase::EXEC => Name::Exec.iid(),
            phase::RT0_GO => Name::Rt0Go.iid(),
            phase::SCHEDINIT => Name::Schedinit.iid(),
            // runtime.mstart runs on every new M too: only m0's is a startup phase.
            phase::MSTART_M0 if e.tid != self.meta.pid => return Ok(()),
            phase::MSTART_M0 => Name::MStartM0.iid(),
            phase::GCENABLE => Name::Gcenable.iid(),
            phase::MAIN_MAIN => Name::MainMain.iid(),
            phase::INIT_TASK if self.recursive_inits() => {
                // Go 1.19/1.20: doInit recurses into the task's dependencies before running
                // its functions; the slice is drawn when the call returns (INIT_DONE).
                self.lane_end(Lanes::Startup, e.ts)?;
                self.init_stack.enter(e.arg1, e.arg2, e.ts, ());
                return Ok(());
            }
            phase::INIT_DONE => return self.init_done(e.ts, sym),
            phase::INIT_TASK => {
                // runtime.main runs the runtime's tasks, then every package's, the runtime's
                // again among them: a task seen before is done already, and only marks the end
                // of what ran before it.
                if !self.init_tasks.insert(e.arg1) {
                    return self.lane_end(Lanes::Startup, e.ts);
                }
                self.init_name(e.arg1, e.arg2, sym)
            }
            phase::EXIT => {
                self.lane_end(Lanes::Startup, e.ts)?;
                let name = Name::Exit.iid();
                let args = self
                    .em
                    .args(&[(ArgName::Code.iid(), Arg::Int(e.arg1 as i64))]);
                let lane = &mut self.startup;
                let ts = clamp(&mut lane.last_ts, e.ts, &mut self.stats.clamped_timestamps);
                self.stats.instants += 1;
                return self.em.instant(ts, lane.track, name, args, &[], &[]);
            }
            other => self.em.intern_name(format!("phase {other}")),
        };
        let args = if e.arg0 == phase::INIT_TASK {
            self.em.args(&[(ArgName::Task.iid(), Arg::Uint(e.arg1))])
        } else {
            Vec::new()
        };
        self.lane_begin(Lanes::Startup, e.ts, name, args)
    }
}

impl<W: Write> PerfettoWriter<W> {
    /// Before Go 1.21 init tasks are run by the recursive `runtime.doInit`.
    fn recursive_inits(&self) -> bool {
        waitreason::major_minor(&self.meta.go_version).is_some_and(|v| v < (1, 21))
    }

    /// "init <import path>" for a task: from the task's address where the binary names it,
    /// else from its first init function, else the address.
    fn init_name(&mut self, task: u64, first_fn: u64, sym: &dyn Symbolize) -> u64 {
        let pkg = match self.meta.init_task_name.as_ref().and_then(|f| f(task)) {
            Some(p) => Some(p),
            None => sym.func_name(first_fn).map(|f| package_of(f).to_owned()),
        };
        let name = match pkg {
            Some(p) => format!("init {p}"),
            None => format!("init task {task:#x}"),
        };
        // Not cached: one per package.
        self.em.intern_name(name)
    }

    /// A doInit returned: a task with functions, done for the first time, gets its slice from
    /// its last dependency's return to now (the span GODEBUG=inittrace=1 measures).
    fn init_done(&mut self, ts: u64, sym: &dyn Symbolize) -> io::Result<()> {
        let Some(run) = self.init_stack.ret(ts) else {
            return Ok(());
        };
        let name = self.init_name(run.task, run.first_fn, sym);
        let args = self.em.args(&[(ArgName::Task.iid(), Arg::Uint(run.task))]);
        self.lane_begin(Lanes::Startup, run.start, name, args)?;
        self.lane_end(Lanes::Startup, run.end)
    }
}
