//! `--follow`'s record: an exec in the launched program's process tree, stopped (SIGSTOP sent
//! from the exec tracepoint, taken before the new image's first instruction) until userspace has
//! looked at the new image and probed it or let it go.

/// Values of the follow map (`FOLLOW_TREE`, tgid -> state).
pub mod tree {
    /// In the tree; its next exec is stopped.
    pub const MEMBER: u32 = 0;
    /// The launched program itself before its own exec (launch mode probes that one).
    pub const SKIP_NEXT_EXEC: u32 = 1;
    /// Its leader exited. Either the process is gone (the entry is dropped when a fork outside
    /// the tree reuses the pid), or a thread other than the leader is exec'ing: execve kills
    /// the old leader (its exit fires first) and the exec'ing thread takes over its pid, so an
    /// exec seen in this state is the member's own and is stopped like any other.
    pub const LEADER_EXITED: u32 = 2;
}

/// One exec in the followed tree, as the ring sends it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowExec {
    /// CLOCK_MONOTONIC ns at the exec tracepoint.
    pub ts: u64,
    /// The process (tgid) that exec'd.
    pub pid: u32,
    /// bpf_send_signal's result: 0 when the SIGSTOP was queued.
    pub signal_result: i32,
}

pub const FOLLOW_EXEC_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<FollowExec>() == FOLLOW_EXEC_SIZE);

impl FollowExec {
    /// Reads a record from the ring (native endian); `None` when it is too short.
    pub fn from_bytes(b: &[u8]) -> Option<FollowExec> {
        let b: &[u8; FOLLOW_EXEC_SIZE] = b.get(..FOLLOW_EXEC_SIZE)?.try_into().ok()?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        let (mut pid, mut r) = ([0u8; 4], [0u8; 4]);
        pid.copy_from_slice(&b[8..12]);
        r.copy_from_slice(&b[12..16]);
        Some(FollowExec {
            ts: u64::from_ne_bytes(ts),
            pid: u32::from_ne_bytes(pid),
            signal_result: i32::from_ne_bytes(r),
        })
    }
}
