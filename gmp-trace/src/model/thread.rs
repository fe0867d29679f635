//! An OS thread (the runtime's M) as the model tracks it: what it runs, the P it holds, its
//! spinning spells and, for the system-call reconciliation, what its goroutine's syscall saw.

#[derive(Clone, Debug, Default)]
pub struct Thread {
    pub tid: u32,
    /// `m.id`, when an event on this thread could read it.
    pub m: Option<i64>,
    pub mstart_ts: Option<u64>,
    /// The thread that created this M (newm on it), when seen.
    pub created_by: Option<u32>,
    pub events: u64,
    /// What the M is doing now, by the last event seen on it.
    pub state: MState,
    /// The P it holds (acquirep/releasep), and since when.
    pub p: Option<i32>,
    pub p_since: Option<u64>,
    /// Go >= 1.26: the goroutine whose exitsyscall began without a P (sysmon took it), and
    /// when, until it gets one here or is queued (the tracer's GoSyscallEndBlocked, then maybe
    /// GoStart).
    pub exit_without_p: Option<(u64, u64)>,
    /// Go >= 1.26: the goroutine whose exitsyscall began with its P, and when: sysmon can still
    /// take the P before exitsyscall looks (it holds the G's scan bit meanwhile), and then the
    /// goroutine is queued by exitsyscallNoP after all.
    pub exit_with_p: Option<(u64, u64)>,
    /// Go <= 1.25: the system call in progress on this thread.
    pub syscall: Option<InSyscall>,
    /// Since when the M spins (state Spinning), and its spinning time and spells so far.
    pub spin_since: Option<u64>,
    pub spinning_ns: u64,
    pub spins: u64,
    /// Successful run-queue steals made on this M.
    pub steals: u64,
    /// procresize began on this thread and its next event has not come yet: an acquirep then
    /// means the caller's P was destroyed or renumbered away (see `Model::resized_away`).
    pub resize_pending: bool,
    /// The goroutine the runtime's m.curg named when the model was seeded from a running
    /// process (`--pid`): where a goroutine running or in a system call then is.
    pub curg_at_seed: Option<u64>,
}

/// Go <= 1.25: a goroutine in a system call, and whether its P was lost meanwhile, which is
/// what Go's tracer checks on exit (`oldp != m.p || m.syscalltick != p.syscalltick`).
#[derive(Clone, Copy, Debug, Default)]
pub struct InSyscall {
    pub goid: u64,
    /// The P it entered with, and its owner changes then: another thread using it meanwhile
    /// means it was retaken by sysmon or stolen by another exitsyscall (syscalltick moved).
    pub p: i32,
    pub p_owner_changes: u64,
    /// This thread acquired a P during the call (exitsyscallfast_pidle).
    pub new_p: bool,
}

/// An M's activity, as far as the probes show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MState {
    #[default]
    Unknown,
    /// Running goroutine code.
    Running,
    /// In the scheduler looking for work (schedule/findRunnable).
    Scheduling,
    /// A spinning M (`m.spinning`): holds a P, has no work, and looks for some on other Ps
    /// (stealWork). See `Model::set_m_state` for where spinning begins and ends.
    Spinning,
    /// A goroutine on it is in a system call.
    Syscall,
    /// Parked on the idle M list (stopm), waiting to be woken with work.
    Idle,
}
