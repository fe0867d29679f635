//! A processor (the runtime's P) as the model tracks it: who holds it, how busy it was, and
//! the run-queue steals it made and suffered.

#[derive(Clone, Debug, Default)]
pub struct Proc {
    pub id: i32,
    pub held_by: Option<u32>,
    /// Time a goroutine was running on this P.
    pub busy_ns: u64,
    /// (since, goid) of the goroutine running on it now.
    pub running: Option<(u64, u64)>,
    pub acquires: u64,
    pub starts: u64,
    /// The thread of the last event that held it, and how often that changed: a P taken from
    /// a goroutine in a system call (sysmon's retake, or another exitsyscall stealing it).
    pub last_tid: Option<u32>,
    pub owner_changes: u64,
    /// Run-queue steals this P made (as the thief) and suffered (as the victim), and the
    /// goroutines each moved.
    pub steals: u64,
    pub stolen_from: u64,
    pub gs_stolen: u64,
    pub gs_lost: u64,
}
