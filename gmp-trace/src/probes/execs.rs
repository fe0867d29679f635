//! `--all`'s exec watch from userspace: the object's `all_exec` program loaded on its own (one
//! raw tracepoint on sched_process_exec, no uprobes), and its ring of `{ts, pid}` records read
//! as they come. One per run; it stops nothing, it only tells the run which pid to look at now.
use aya::maps::PerCpuArray;
use aya::programs::RawTracePoint;
use aya::Ebpf;
use gmp_trace_bpf_object::BPF_OBJECT;
use gmp_trace_common::execs::ExecSeen;

use super::records::{Records, RecordsError};

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
    Ring(#[from] RecordsError),
}

pub struct ExecWatch {
    /// Owns the program and its link (dropping it detaches them) and the lost-records counter.
    ebpf: Ebpf,
    ring: Records<ExecSeen>,
}

impl ExecWatch {
    pub fn start() -> Result<ExecWatch, ExecWatchError> {
        let mut ebpf = super::trimmed_loader(&["ALL_EXECS"]).load(BPF_OBJECT)?;
        let p: &mut RawTracePoint = ebpf
            .program_mut("all_exec")
            .ok_or(ExecWatchError::Missing("program all_exec"))?
            .try_into()?;
        p.load()?;
        p.attach("sched_process_exec")?;
        let map = ebpf
            .take_map("ALL_EXECS")
            .ok_or(ExecWatchError::Missing("map ALL_EXECS"))?;
        let ring = Records::new(map, ExecSeen::from_bytes)?;
        Ok(ExecWatch { ebpf, ring })
    }

    /// The execs read so far, at least one (waits for it). Cancel-safe.
    pub async fn next(&mut self) -> std::io::Result<Vec<ExecSeen>> {
        self.ring.wait().await?;
        Ok(self.ring.take_all())
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
