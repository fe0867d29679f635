//! `--all`'s record: a process that has just exec'd (any process on the machine), sent by the
//! exec tracepoint so userspace looks at it at once instead of at the next /proc scan. Nothing
//! is stopped: the record only says "look at this pid now".

/// One exec, as the ring sends it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecSeen {
    /// CLOCK_MONOTONIC ns at the exec tracepoint.
    pub ts: u64,
    /// The process (tgid) that exec'd.
    pub pid: u32,
    pub _pad: u32,
}

pub const EXEC_SEEN_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<ExecSeen>() == EXEC_SEEN_SIZE);

impl ExecSeen {
    /// Reads a record from the ring (native endian); `None` when it is too short.
    pub fn from_bytes(b: &[u8]) -> Option<ExecSeen> {
        let b: &[u8; EXEC_SEEN_SIZE] = b.get(..EXEC_SEEN_SIZE)?.try_into().ok()?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        let mut pid = [0u8; 4];
        pid.copy_from_slice(&b[8..12]);
        Some(ExecSeen {
            ts: u64::from_ne_bytes(ts),
            pid: u32::from_ne_bytes(pid),
            _pad: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = [0u8; EXEC_SEEN_SIZE];
        b[..8].copy_from_slice(&123_456_789u64.to_ne_bytes());
        b[8..12].copy_from_slice(&4242u32.to_ne_bytes());
        let e = ExecSeen::from_bytes(&b).unwrap();
        assert_eq!((e.ts, e.pid), (123_456_789, 4242));
        assert_eq!(ExecSeen::from_bytes(&b[..15]), None);
    }
}
