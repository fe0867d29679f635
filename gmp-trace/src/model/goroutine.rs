//! A goroutine as the model tracks it, and its states in Go's tracer vocabulary.

/// A goroutine's state in the vocabulary of Go's execution tracer (internal/trace GoState).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoState {
    /// Existed before we looked, and we have not seen it change since.
    Unknown,
    NotExist,
    Runnable,
    Running,
    Syscall,
    Waiting,
}

impl GoState {
    /// Every state, in declaration (and `Ord`) order.
    pub const ALL: [GoState; 6] = [
        GoState::Unknown,
        GoState::NotExist,
        GoState::Runnable,
        GoState::Running,
        GoState::Syscall,
        GoState::Waiting,
    ];

    /// Maps a runtime `g.atomicstatus` value (scan bit ignored) to the tracer's vocabulary.
    pub fn from_runtime(status: u64) -> GoState {
        match status & !0x1000 {
            0 | 6 | 11 => GoState::NotExist, // _Gidle, _Gdead, _Gdeadextra (1.26+)
            1 => GoState::Runnable,          // _Grunnable
            2 => GoState::Running,
            3 => GoState::Syscall,
            // _Gwaiting, _Gpreempted (parked for a GC stack scan until resumeG readies it: Go's
            // tracer says waiting too, and the preempt_park probe reports the block), _Gleaked
            // (1.26+).
            4 | 9 | 10 => GoState::Waiting,
            _ => GoState::Unknown, // _Gcopystack and anything new: do not guess
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GoState::Unknown => "Unknown",
            GoState::NotExist => "NotExist",
            GoState::Runnable => "Runnable",
            GoState::Running => "Running",
            GoState::Syscall => "Syscall",
            GoState::Waiting => "Waiting",
        }
    }
}

// `TransitionCounts` indexes by `GoState as usize`: ALL[i] must be state i.
const _: () = {
    let mut i = 0;
    while i < GoState::ALL.len() {
        assert!(GoState::ALL[i] as usize == i);
        i += 1;
    }
};

/// Transitions counted by (from, to): a table rather than a map, since every transition
/// counts one. A pair counted once stays listed even when taken back to 0 (a syscall exit
/// undone, see `Model::undo_syscall_exit`), as the summary has always shown it.
#[derive(Clone, Debug, Default)]
pub struct TransitionCounts([[Option<u64>; GoState::ALL.len()]; GoState::ALL.len()]);

impl TransitionCounts {
    #[inline]
    pub fn add(&mut self, from: GoState, to: GoState) {
        *self.0[from as usize][to as usize].get_or_insert(0) += 1;
    }

    pub fn get(&self, &(from, to): &(GoState, GoState)) -> Option<&u64> {
        self.0[from as usize][to as usize].as_ref()
    }

    pub fn get_mut(&mut self, &(from, to): &(GoState, GoState)) -> Option<&mut u64> {
        self.0[from as usize][to as usize].as_mut()
    }

    /// The pairs counted, ordered by (from, to).
    pub fn iter(&self) -> impl Iterator<Item = ((GoState, GoState), u64)> + '_ {
        GoState::ALL.into_iter().flat_map(move |from| {
            GoState::ALL
                .into_iter()
                .filter_map(move |to| Some(((from, to), *self.get(&(from, to))?)))
        })
    }
}

/// One state change of one goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub ts: u64,
    pub goid: u64,
    pub from: GoState,
    pub to: GoState,
    /// The thread (M's OS tid) it happened on.
    pub tid: u32,
    /// The P held there, or -1.
    pub p: i32,
    /// The goroutine that caused it: the creator for NotExist->Runnable, the unblocker for
    /// Waiting->Runnable, 0 for none / a g0.
    pub by: u64,
    /// g.waitreason (runtime numbering) when `to` is Waiting.
    pub reason: u8,
}

/// Depth of the creator chain kept per goroutine for the leak tree.
pub const CHAIN: usize = 4;

#[derive(Clone, Debug)]
pub struct Goroutine {
    /// Its own id (the maps are keyed by it; kept for Debug output).
    #[allow(dead_code)]
    pub goid: u64,
    /// The creating goroutine; `Some(0)` when created from a g0 (g1, by rt0_go).
    pub parent: Option<u64>,
    pub start_pc: u64,
    pub create_pc: u64,
    pub created_ts: Option<u64>,
    pub exited_ts: Option<u64>,
    pub state: GoState,
    /// When it entered `state` (None: before we looked).
    pub since: Option<u64>,
    pub wait_reason: u8,
    /// Times it was started by `execute`.
    pub runs: u64,
    pub last_tid: Option<u32>,
    pub last_p: Option<i32>,
    pub max_latency: u64,
    /// Start functions of its creators, nearest first (creator, creator's creator, ...).
    pub creators: [u64; CHAIN],
    /// Existed when tracing began (read from the target's memory at attach).
    pub seeded: bool,
    /// (ts, tid) of the current run, while Running.
    pub run_start: Option<(u64, u32)>,
    /// Transitions whose "from" disagreed with what we had (lost events, unprobed paths).
    pub anomalies: u64,
}

impl Goroutine {
    /// A goroutine first seen mid-life (it existed before the trace, or its creation was lost).
    pub fn unknown(goid: u64) -> Goroutine {
        Goroutine {
            goid,
            parent: None,
            start_pc: 0,
            create_pc: 0,
            created_ts: None,
            exited_ts: None,
            state: GoState::Unknown,
            since: None,
            wait_reason: 0,
            runs: 0,
            last_tid: None,
            last_p: None,
            max_latency: 0,
            creators: [0; CHAIN],
            run_start: None,
            seeded: false,
            anomalies: 0,
        }
    }

    pub fn created(
        goid: u64,
        parent: u64,
        start_pc: u64,
        create_pc: u64,
        ts: u64,
        creators: [u64; CHAIN],
    ) -> Goroutine {
        Goroutine {
            parent: Some(parent),
            start_pc,
            create_pc,
            created_ts: Some(ts),
            state: GoState::Runnable,
            since: Some(ts),
            creators,
            ..Goroutine::unknown(goid)
        }
    }

    /// Alive and not on its way out: a goroutine that has called goexit1 counts as gone even if
    /// the process ended before the runtime marked it dead (a thread preempted in goexit1).
    pub fn is_live(&self) -> bool {
        self.state != GoState::NotExist && self.exited_ts.is_none()
    }

    /// The creator chain a child of this goroutine inherits.
    pub fn creator_chain_for_child(&self) -> [u64; CHAIN] {
        let mut c = [0; CHAIN];
        c[0] = self.start_pc;
        c[1..].copy_from_slice(&self.creators[..CHAIN - 1]);
        c
    }
}
