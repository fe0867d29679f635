//! The scheduler graph, aggregated over the run: who created whom (by start function), which
//! goroutines ran on which threads (M), which threads held which processors (P), with counts
//! and time. Goroutines are grouped by start function so the graph stays readable (and small)
//! for programs with millions of goroutines.
use crate::fasthash::FastMap;

/// Aggregated edges, keyed by pcs and ids; names are resolved at export (which orders them).
#[derive(Debug, Default)]
pub struct GraphAgg {
    /// (creator start pc, created start pc) -> count. Creator pc 0 = a g0 (the runtime).
    pub creates: FastMap<(u64, u64), u64>,
    /// (start pc, tid) -> (runs, ns running).
    pub runs_on: FastMap<(u64, u32), (u64, u64)>,
    /// (tid, p) -> (acquires, ns held).
    pub holds: FastMap<(u32, i32), (u64, u64)>,
}

impl GraphAgg {
    pub fn created(&mut self, parent_pc: u64, child_pc: u64) {
        *self.creates.entry((parent_pc, child_pc)).or_default() += 1;
    }

    pub fn ran(&mut self, start_pc: u64, tid: u32, ns: u64) {
        let e = self.runs_on.entry((start_pc, tid)).or_default();
        e.0 += 1;
        e.1 += ns;
    }

    pub fn held(&mut self, tid: u32, p: i32, ns: u64, acquired: bool) {
        let e = self.holds.entry((tid, p)).or_default();
        e.0 += u64::from(acquired);
        e.1 += ns;
    }
}
