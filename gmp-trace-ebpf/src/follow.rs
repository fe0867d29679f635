//! `--follow`: the launched program's process tree, kept in `FOLLOW_TREE` (tgids) by the fork
//! and exit tracepoints; at an exec of a member, SIGSTOP to it (queued now, taken on the way
//! out of execve, before the new image's first instruction) and a record to `FOLLOW_EXECS`, so
//! userspace can probe the new image before it runs and then send SIGCONT (when the ring is full
//! the exec is not stopped but counted in `FOLLOW_MISSED`). Loaded as an object
//! of its own (probes/follow.rs), apart from any traced process's probes.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_send_signal},
    macros::{map, raw_tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use gmp_trace_common::follow::{tree, FollowExec};

/// `task_struct.pid` and `.tgid`, in bytes (kernel BTF), set by the loader.
#[no_mangle]
static FOLLOW_TASK_PID: u32 = 0;
#[no_mangle]
static FOLLOW_TASK_TGID: u32 = 0;

/// The followed tree: tgid -> `tree::*`. Seeded by the loader with the launched program.
#[map]
static FOLLOW_TREE: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// Execs of members, stopped, for userspace.
#[map]
static FOLLOW_EXECS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Execs of members let run unstopped because `FOLLOW_EXECS` was full (no record, so no
/// SIGSTOP: a stopped process nobody hears of would stay stopped). Read at the end of the run.
#[map]
static FOLLOW_MISSED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

const SIGSTOP: u32 = 19;

fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// sched_process_fork(parent, child): a new process (not a thread) of a member joins the tree.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn follow_fork(ctx: RawTracePointContext) -> i32 {
    let parent = current_tgid();
    // SAFETY: a lookup; the value is not kept.
    let member = unsafe { FOLLOW_TREE.get(&parent) }.is_some();
    let child = ctx.arg::<u64>(1);
    // SAFETY: plain globals in .rodata, read volatile so the loader's values are used.
    let (o_pid, o_tgid) = unsafe {
        (
            core::ptr::read_volatile(&FOLLOW_TASK_PID),
            core::ptr::read_volatile(&FOLLOW_TASK_TGID),
        )
    };
    if child == 0 || o_pid == 0 || o_tgid == 0 {
        return 0;
    }
    // SAFETY: kernel addresses read through bpf_probe_read_kernel, which handles faults.
    let pid = unsafe { bpf_probe_read_kernel((child + u64::from(o_pid)) as *const i32) };
    // SAFETY: as above.
    let tgid = unsafe { bpf_probe_read_kernel((child + u64::from(o_tgid)) as *const i32) };
    if let (Ok(pid), Ok(tgid)) = (pid, tgid) {
        if pid == tgid && pid > 0 {
            if member {
                let _ = FOLLOW_TREE.insert(&(tgid as u32), &tree::MEMBER, 0);
            } else {
                // A process outside the tree with a dead member's pid: not ours.
                let _ = FOLLOW_TREE.remove(&(tgid as u32));
            }
        }
    }
    0
}

/// sched_process_exec: a member's new image is in place; stop it before it runs.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn follow_exec(_ctx: RawTracePointContext) -> i32 {
    let tgid = current_tgid();
    let Some(state) = FOLLOW_TREE.get_ptr_mut(&tgid) else {
        return 0;
    };
    // SAFETY: the pointer comes from the lookup; a process's execs are serialised.
    unsafe {
        if *state == tree::SKIP_NEXT_EXEC {
            *state = tree::MEMBER;
            return 0;
        }
        // An exec from a thread other than the leader: the old leader's exit came first.
        *state = tree::MEMBER;
    }
    // The record's slot first: without one userspace would never hear of the stop.
    let Some(mut slot) = FOLLOW_EXECS.reserve::<FollowExec>(0) else {
        if let Some(n) = FOLLOW_MISSED.get_ptr_mut(0) {
            // SAFETY: the pointer comes from the lookup; per-CPU, so no other writer.
            unsafe { *n += 1 };
        }
        return 0;
    };
    // SAFETY: no preconditions; the signal goes to the current process.
    let sent = unsafe { bpf_send_signal(SIGSTOP) };
    slot.write(FollowExec {
        // SAFETY: no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        pid: tgid,
        signal_result: sent as i32,
    });
    slot.submit(0);
    0
}

/// sched_process_exit: a member's last thread (or its leader) is leaving.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn follow_exit(_ctx: RawTracePointContext) -> i32 {
    let id = bpf_get_current_pid_tgid();
    if id as u32 == (id >> 32) as u32 {
        // Marked, not removed: an exec by another thread of the process kills the leader first
        // (see tree::LEADER_EXITED); a fork outside the tree reusing the pid removes it.
        let tgid = (id >> 32) as u32;
        if let Some(state) = FOLLOW_TREE.get_ptr_mut(&tgid) {
            // SAFETY: the pointer comes from the lookup.
            unsafe { *state = tree::LEADER_EXITED };
        }
    }
    0
}
