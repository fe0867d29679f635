//! `--follow`'s BPF side from userspace: the object's `follow_*` programs loaded on their own
//! (tracepoints on fork, exec and exit; no uprobes), the tree seeded with the launched program,
//! and the ring of stopped execs read as they come; which members are still alive (the run
//! lasts while one is), pruning the dead from the tree. One per run, whatever the number of
//! processes it follows.
use std::collections::HashSet;

use anyhow::{anyhow, Context as _};
use aya::maps::{HashMap, MapData, PerCpuArray};
use aya::programs::RawTracePoint;
use aya::Ebpf;
use gmp_trace_bpf_object::BPF_OBJECT;
use gmp_trace_common::follow::{tree, FollowExec};

use super::kernel;
use super::records::Records;

pub struct FollowWatch {
    /// Owns the programs and their links (dropping it detaches them); `None` once closed.
    ebpf: Option<Ebpf>,
    ring: Records<FollowExec>,
    tree: HashMap<MapData, u32, u32>,
    missed: PerCpuArray<MapData, u64>,
    /// Members found dead at the last look: dead at two looks in a row, they are.
    dead_once: HashSet<u32>,
}

impl FollowWatch {
    /// Loads and attaches the follow programs with `root` (the launched program, held before
    /// its exec) as the tree's first member; its own exec is let through (launch mode probes
    /// it), every later exec in the tree is stopped and reported.
    pub fn start(root: u32) -> anyhow::Result<FollowWatch> {
        let (task_pid, task_tgid) = kernel::task_pid_tgid()?;
        let mut ebpf = super::trimmed_loader(&["FOLLOW_TREE", "FOLLOW_EXECS"])
            .override_global("FOLLOW_TASK_PID", &task_pid, true)
            .override_global("FOLLOW_TASK_TGID", &task_tgid, true)
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
        let ring = Records::new(map, FollowExec::from_bytes).context("the --follow ring")?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("{name} map missing from the BPF object"))
        };
        let tree = HashMap::try_from(take(&mut ebpf, "FOLLOW_TREE")?)?;
        let missed = PerCpuArray::try_from(take(&mut ebpf, "FOLLOW_MISSED")?)?;
        Ok(FollowWatch {
            ebpf: Some(ebpf),
            ring,
            tree,
            missed,
            dead_once: HashSet::new(),
        })
    }

    /// The members alive now (processes, not zombies), after dropping the dead from the tree
    /// so that it holds what is alive (a long `make` forks far more than the map's size).
    /// A member is taken for dead when found so at two looks in a row: an exec by a thread
    /// other than the leader shows a zombie leader for an instant. A dead member's pid taken by
    /// a fork of another member between the last look and the removal would be dropped too:
    /// that needs the pid space to wrap in those microseconds.
    pub fn live_members(&mut self) -> Vec<u32> {
        let keys: Vec<u32> = self.tree.keys().filter_map(Result::ok).collect();
        let mut live = Vec::new();
        let mut dead = HashSet::new();
        for pid in keys {
            if process_alive(pid) {
                live.push(pid);
            } else if !self.dead_once.contains(&pid) {
                // Counted alive until the next look says the same.
                dead.insert(pid);
                live.push(pid);
            } else if self.tree.get(&pid, 0).ok() == Some(tree::LEADER_EXITED) {
                let _ = self.tree.remove(&pid);
            } else {
                // Dead without its exit seen (not expected): not alive, kept.
                dead.insert(pid);
            }
        }
        self.dead_once = dead;
        live
    }

    /// Execs of members the kernel side could not stop (its ring was full): they ran untraced.
    pub fn missed(&self) -> u64 {
        self.missed
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }

    /// Detaches the programs (no exec is stopped after this returns: detaching waits for the
    /// programs running), then returns the stopped execs not read yet, for the caller to let go.
    pub fn close(&mut self) -> Vec<FollowExec> {
        drop(self.ebpf.take());
        self.ring.take_all()
    }

    /// The next stopped exec. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<FollowExec> {
        loop {
            if let Some(e) = self.ring.pop() {
                return Ok(e);
            }
            self.ring.wait().await?;
        }
    }
}

/// Whether `pid` is a live process: a thread group leader (a thread of another process may
/// have the pid of a dead member) that is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
    };
    let zombie = matches!(field("State:").chars().next(), Some('Z' | 'X'));
    !zombie && field("Tgid:") == pid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_is_a_live_leader() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        // Exited but not reaped: a zombie, so not alive.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!process_alive(pid));
        child.wait().expect("reap");
        assert!(!process_alive(pid));
        // A thread's id is not a process (tests run on threads other than the main one).
        let me = std::thread::spawn(|| {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            (tid, process_alive(tid))
        })
        .join()
        .expect("thread");
        assert_ne!(me.0, std::process::id());
        assert!(!me.1, "thread {} taken for a process", me.0);
    }
}
