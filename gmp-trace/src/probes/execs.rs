//! `--all`'s exec watch from userspace: the object's `all_exec` program loaded on its own (one
//! raw tracepoint on sched_process_exec, no uprobes), and its ring of `{ts, pid}` records read
//! as they come. One per run; it stops nothing, it only tells the run which pid to look at now.
use std::collections::VecDeque;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};
use gmp_trace_bpf_object::BPF_OBJECT;
use gmp_trace_common::execs::ExecSeen;
use tokio::io::unix::AsyncFd;

/// Why the watch could not start (the run falls back to rescanning /proc often).
#[derive(Debug, thiserror::Error)]
pub enum ExecWatchError {
    #[error("loading the BPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("{0} missing from the BPF object")]
    Missing(&'static str),
    #[error("the kernel rejected all_exec: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("the exec ring: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("watching the exec ring: {0}")]
    Io(#[from] std::io::Error),
}

pub struct ExecWatch {
    /// Owns the program and its link (dropping it detaches them) and the lost-records counter.
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    ready: VecDeque<ExecSeen>,
}

impl ExecWatch {
    pub fn start() -> Result<ExecWatch, ExecWatchError> {
        let mut ebpf = EbpfLoader::new()
            // The object's other maps come with it: as small as they go.
            .map_max_entries("EVENTS", 4096)
            .map_max_entries("SAMPLES", 4096)
            .map_max_entries("FOLLOW_EXECS", 4096)
            .map_max_entries("SEEN_STACKS", 1)
            .map_max_entries("RUNNABLE_SINCE", 1)
            .load(BPF_OBJECT)?;
        let p: &mut RawTracePoint = ebpf
            .program_mut("all_exec")
            .ok_or(ExecWatchError::Missing("program all_exec"))?
            .try_into()?;
        p.load()?;
        p.attach("sched_process_exec")?;
        let map = ebpf
            .take_map("ALL_EXECS")
            .ok_or(ExecWatchError::Missing("map ALL_EXECS"))?;
        let ring = RingBuf::try_from(map)?;
        // SAFETY: the RingBuf owns its map fd and keeps it open and unchanged for as long as
        // the AsyncFd holds it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(ExecWatch {
            ebpf,
            ring,
            ready: VecDeque::new(),
        })
    }

    /// The execs read so far, at least one (waits for it). Cancel-safe: records read but not
    /// returned wait in `ready`.
    pub async fn next(&mut self) -> std::io::Result<Vec<ExecSeen>> {
        loop {
            if !self.ready.is_empty() {
                return Ok(self.ready.drain(..).collect());
            }
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if let Some(e) = ExecSeen::from_bytes(&item) {
                    self.ready.push_back(e);
                }
            }
            guard.clear_ready();
        }
    }

    /// Records the ring had no room for since the start (their processes are left to the
    /// /proc rescan).
    pub fn lost(&self) -> u64 {
        let Some(map) = self.ebpf.map("ALL_EXECS_LOST") else {
            return 0;
        };
        let Ok(a) = PerCpuArray::<_, u64>::try_from(map) else {
            return 0;
        };
        a.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}
