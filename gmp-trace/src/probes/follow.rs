//! `--follow`'s BPF side from userspace: the object's `follow_*` programs loaded on their own
//! (tracepoints on fork, exec and exit; no uprobes), the tree seeded with the launched program,
//! and the ring of stopped execs read as they come. One per run, whatever the number of
//! processes it follows.
use std::collections::VecDeque;

use anyhow::{anyhow, Context as _};
use aya::maps::{HashMap, MapData, RingBuf};
use aya::programs::RawTracePoint;
use aya::{Ebpf, EbpfLoader};
use gmp_trace_bpf_object::BPF_OBJECT;
use gmp_trace_common::follow::{tree, FollowExec};
use tokio::io::unix::AsyncFd;

use super::kernel;

pub struct FollowWatch {
    /// Owns the programs and their links (dropping it detaches them).
    _ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    ready: VecDeque<FollowExec>,
}

impl FollowWatch {
    /// Loads and attaches the follow programs with `root` (the launched program, held before
    /// its exec) as the tree's first member; its own exec is let through (launch mode probes
    /// it), every later exec in the tree is stopped and reported.
    pub fn start(root: u32) -> anyhow::Result<FollowWatch> {
        let (task_pid, task_tgid) = kernel::task_pid_tgid()?;
        let mut ebpf = EbpfLoader::new()
            .override_global("FOLLOW_TASK_PID", &task_pid, true)
            .override_global("FOLLOW_TASK_TGID", &task_tgid, true)
            // The object's other maps come with it: as small as they go.
            .map_max_entries("EVENTS", 4096)
            .map_max_entries("SAMPLES", 4096)
            .map_max_entries("SEEN_STACKS", 1)
            .map_max_entries("RUNNABLE_SINCE", 1)
            .load(BPF_OBJECT)
            .map_err(|e| anyhow!("loading the --follow programs failed: {e}"))?;
        {
            let map = ebpf
                .map_mut("FOLLOW_TREE")
                .ok_or_else(|| anyhow!("FOLLOW_TREE map missing from the BPF object"))?;
            let mut tree_map: HashMap<_, u32, u32> = HashMap::try_from(map)?;
            tree_map
                .insert(&root, &tree::SKIP_NEXT_EXEC, 0)
                .context("seeding the followed tree")?;
        }
        for (prog, tp) in [
            ("follow_fork", "sched_process_fork"),
            ("follow_exit", "sched_process_exit"),
            ("follow_exec", "sched_process_exec"),
        ] {
            let p: &mut RawTracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| anyhow!("BPF program {prog} missing from the object"))?
                .try_into()?;
            p.load()
                .with_context(|| format!("the kernel rejected BPF program {prog}"))?;
            p.attach(tp).with_context(|| format!("attaching to {tp}"))?;
        }
        let map = ebpf
            .take_map("FOLLOW_EXECS")
            .ok_or_else(|| anyhow!("FOLLOW_EXECS map missing from the BPF object"))?;
        let ring = RingBuf::try_from(map)?;
        // SAFETY: the RingBuf owns its map fd and keeps it open and unchanged for as long as
        // the AsyncFd holds it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .context("watching the --follow ring")?;
        Ok(FollowWatch {
            _ebpf: ebpf,
            ring,
            ready: VecDeque::new(),
        })
    }

    /// Stopped execs read from the ring now, without waiting (at the end of a run).
    pub fn pending(&mut self) -> Vec<FollowExec> {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            if let Some(e) = FollowExec::from_bytes(&item) {
                self.ready.push_back(e);
            }
        }
        self.ready.drain(..).collect()
    }

    /// The next stopped exec. Cancel-safe: records read but not returned wait in `ready`.
    pub async fn next(&mut self) -> anyhow::Result<FollowExec> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(e);
            }
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if let Some(e) = FollowExec::from_bytes(&item) {
                    self.ready.push_back(e);
                }
            }
            guard.clear_ready();
        }
    }
}
