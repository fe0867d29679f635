//! `--all`: every exec on the machine, reported to userspace as `{ts, tgid}` so a new Go process
//! is looked at (and probed) at once rather than at the next /proc rescan. Nothing is stopped or
//! signalled. A record the ring has no room for is counted in `ALL_EXECS_LOST`; userspace logs
//! the count and its slower /proc rescan finds those processes. Loaded as an object of its own
//! (probes/execs.rs), apart from any traced process's probes.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, raw_tracepoint},
    maps::{PerCpuArray, RingBuf},
    programs::RawTracePointContext,
};
use gmp_trace_common::execs::ExecSeen;

/// Execs, for userspace: 16-byte records (24 with the ring's header), ~10k of them.
#[map]
static ALL_EXECS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Records dropped because the ring was full, per CPU.
#[map]
static ALL_EXECS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// sched_process_exec: the new image is in place; say so.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn all_exec(_ctx: RawTracePointContext) -> i32 {
    let rec = ExecSeen {
        // SAFETY: no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        pid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
    };
    if ALL_EXECS.output(&rec, 0).is_err() {
        if let Some(n) = ALL_EXECS_LOST.get_ptr_mut(0) {
            // SAFETY: a per-CPU slot: nothing else writes it while this program runs here.
            unsafe { *n += 1 };
        }
    }
    0
}
