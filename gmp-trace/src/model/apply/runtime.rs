//! Runtime-wide events: GOMAXPROCS changes (procresize), stop-the-world and GC ranges, and
//! runtime.main's start. (Startup milestones go to `Startup`, lost events and failed steals are
//! counted by `Model::apply` itself: they are not observations on a thread.)
use gmp_trace_common::Event;

use crate::model::{MainStart, Model, Range};

impl Model {
    #[inline(always)]
    pub(in crate::model) fn on_proc_resize(&mut self, e: &Event) {
        self.gomaxprocs = Some(e.arg0);
        // Its acquirep, if it comes next on this thread, may move the running goroutine to
        // another P (see `resized_away`).
        if let Some(th) = self.threads.get_mut(&e.tid) {
            th.resize_pending = true;
        }
    }

    #[inline(always)]
    pub(in crate::model) fn on_stw_start(&mut self, e: &Event) {
        self.stw.begin(Range::open(e));
    }

    #[inline(always)]
    pub(in crate::model) fn on_stw_done(&mut self) {
        self.stw.end();
    }

    #[inline(always)]
    pub(in crate::model) fn on_gc_start(&mut self, e: &Event) {
        self.gc.begin(Range::open(e));
    }

    #[inline(always)]
    pub(in crate::model) fn on_gc_done(&mut self) {
        self.gc.end();
    }

    #[inline(always)]
    pub(in crate::model) fn on_runtime_main(&mut self, e: &Event) {
        self.runtime_main.push(MainStart {
            ts: e.ts,
            goid: e.goid,
            tid: e.tid,
            m: e.m,
        });
    }
}

impl Range {
    /// A range begun by `e`, its reason in arg0.
    fn open(e: &Event) -> Range {
        Range {
            start: e.ts,
            reason: e.arg0,
            tid: e.tid,
        }
    }
}
