//! The process-wide lanes (Startup, GC, STW): at most one open slice each, a new one closing
//! the previous.
use std::io::{self, Write};

use gmp_trace_common::{phase, Event};

use super::emit::Arg;
use super::proto::DebugAnnotation;
use super::{clamp, Lane, Lanes, PerfettoWriter};
use crate::export::Symbolize;

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
        self.em.begin(ts, track, name, args, vec![])
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

    pub(super) fn on_phase(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let name = match e.arg0 {
            phase::EXEC => self.em.name("exec"),
            phase::RT0_GO => self.em.name("rt0_go"),
            phase::SCHEDINIT => self.em.name("schedinit"),
            // runtime.mstart runs on every new M too: only m0's is a startup phase.
            phase::MSTART_M0 if e.tid != self.meta.pid => return Ok(()),
            phase::MSTART_M0 => self.em.name("mstart_m0"),
            phase::GCENABLE => self.em.name("gcenable"),
            phase::MAIN_MAIN => self.em.name("main.main"),
            phase::INIT_TASK => {
                // runtime.main runs the runtime's tasks, then every package's, the runtime's
                // again among them: a task seen before is done already, and only marks the end
                // of what ran before it.
                if !self.init_tasks.insert(e.arg1) {
                    return self.lane_end(Lanes::Startup, e.ts);
                }
                let pkg = match self.meta.init_task_name.as_ref().and_then(|f| f(e.arg1)) {
                    Some(p) => Some(p),
                    // arg2: the task's first init function, when the probe could read it.
                    None => sym.func_name(e.arg2).map(|f| package_of(f).to_owned()),
                };
                let name = match pkg {
                    Some(p) => format!("init {p}"),
                    None => format!("init task {:#x}", e.arg1),
                };
                // Not cached: one per package.
                self.em.intern_name(name)
            }
            phase::EXIT => {
                self.lane_end(Lanes::Startup, e.ts)?;
                let name = self.em.name("exit");
                let args = self.em.args(&[("code", Arg::Int(e.arg1 as i64))]);
                let lane = &mut self.startup;
                let ts = clamp(&mut lane.last_ts, e.ts, &mut self.stats.clamped_timestamps);
                self.stats.instants += 1;
                return self.em.instant(ts, lane.track, name, args, vec![], vec![]);
            }
            other => self.em.intern_name(format!("phase {other}")),
        };
        let args = if e.arg0 == phase::INIT_TASK {
            self.em.args(&[("task", Arg::Uint(e.arg1))])
        } else {
            vec![]
        };
        self.lane_begin(Lanes::Startup, e.ts, name, args)
    }
}

/// The package of a Go function: "internal/poll.init.0" -> "internal/poll", "main.init" -> "main".
fn package_of(f: &str) -> &str {
    let start = f.rfind('/').map_or(0, |i| i + 1);
    match f[start..].find('.') {
        Some(i) => &f[..start + i],
        None => f,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn package_of_init_functions() {
        use super::package_of;
        assert_eq!(package_of("internal/poll.init.0"), "internal/poll");
        assert_eq!(package_of("main.init"), "main");
        assert_eq!(package_of("example.com/x/a.init"), "example.com/x/a");
        assert_eq!(package_of("runtime"), "runtime");
    }
}
