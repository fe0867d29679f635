//! Uprobes on the Go runtime's scheduler functions.
//!
//! Each probe is thin: read the registers Go's ABIInternal passes arguments in (RAX, RBX, RCX...;
//! R14 holds the current g), follow g.m / m.p for the M and P, and emit one fixed-size [`Event`]
//! into the ring buffer. Struct offsets come from userspace through the `OFFSETS` global, set at
//! load time, so one object serves every Go version. Failures are counted per CPU in `COUNTERS`;
//! nothing here may panic or log on the hot path.
//!
//! The flow of one hit, by module: `probes` (a body per runtime function, by family) builds its
//! event with `event` (shared fields, M/P/goid), which reads the process through `read` and
//! spares reads with `cache`; then `emit` sends it to the ring buffer, or `aggregate` counts it
//! in aggregate mode. `maps` holds every map and global the loader sees.
//!
//! [`Event`]: gmp_trace_common::Event
#![no_std]
#![no_main]

mod aggregate;
mod cache;
mod emit;
mod event;
mod execs;
mod follow;
mod maps;
mod probes;
mod read;
mod sampler;
mod stacks;

use aya_ebpf::{
    macros::{perf_event, uprobe},
    programs::{PerfEventContext, ProbeContext},
};
use probes::{bench, gc, lifecycle, scheduler, startup, syscalls, threads};

/// Every uprobe program twice, one body each: `NAME` is a `uprobe.multi` program (one link for
/// all its sites, with a cookie per site; kernel 6.6+, one RCU grace period to detach), and
/// `NAME_pe` a classic uprobe (one perf-event link per site) for kernels without it. The loader
/// loads only the flavour it uses, so the kernel verifies each body once. (The exec raw
/// tracepoint, a single program, is `probes::startup::exec`.)
macro_rules! uprobe_programs {
    ($($body:path => $multi:ident, $single:ident;)*) => {$(
        #[uprobe(multi)]
        pub fn $multi(ctx: ProbeContext) -> u32 {
            $body(ctx)
        }

        #[uprobe]
        pub fn $single(ctx: ProbeContext) -> u32 {
            $body(ctx)
        }
    )*};
}

// The loader finds these programs by name: renaming one is a change to userspace too.
uprobe_programs! {
    lifecycle::on_newproc => newproc, newproc_pe;
    lifecycle::on_newproc1_ret => newproc1_ret, newproc1_ret_pe;
    lifecycle::on_goexit1 => goexit1, goexit1_pe;
    lifecycle::on_casgstatus => casgstatus, casgstatus_pe;
    lifecycle::on_preempt_park => preempt_park, preempt_park_pe;
    scheduler::on_schedule => schedule, schedule_pe;
    scheduler::on_acquirep => acquirep, acquirep_pe;
    scheduler::on_releasep => releasep, releasep_pe;
    scheduler::on_stopm => stopm, stopm_pe;
    scheduler::on_steal_work => steal_work, steal_work_pe;
    scheduler::on_resetspinning => resetspinning, resetspinning_pe;
    scheduler::on_runqsteal => runqsteal, runqsteal_pe;
    scheduler::on_runqsteal_ret => runqsteal_ret, runqsteal_ret_pe;
    threads::on_mstart => mstart, mstart_pe;
    threads::on_newm => newm, newm_pe;
    threads::on_procresize => procresize, procresize_pe;
    startup::on_runtime_main => runtime_main, runtime_main_pe;
    startup::on_phase => phase, phase_pe;
    startup::on_phase_abi0 => phase_abi0, phase_abi0_pe;
    startup::on_init_task => init_task, init_task_pe;
    gc::on_stw_start => stw_start, stw_start_pe;
    gc::on_stw_done => stw_done, stw_done_pe;
    gc::on_gc_start => gc_start, gc_start_pe;
    gc::on_gc_done => gc_done, gc_done_pe;
    syscalls::on_syscall_enter => syscall_enter, syscall_enter_pe;
    syscalls::on_syscall_exit => syscall_exit, syscall_exit_pe;
    syscalls::on_syscall_lost_p => syscall_lost_p, syscall_lost_p_pe;
    bench::on_empty => empty, empty_pe;
    bench::on_emit_only => emit_only, emit_only_pe;
}

/// The CPU sampler, attached to every CPU's software clock (`probes/sampler.rs` finds it by
/// this name): a sample in the kernel carries the user stack it was entered from.
#[perf_event]
pub fn cpu_sample(ctx: PerfEventContext) -> u32 {
    sampler::on_sample(ctx, true)
}

/// The same for kernels that cannot load that (before 5.15, or no BTF): a sample in the kernel
/// has no stack.
#[perf_event]
pub fn cpu_sample_basic(ctx: PerfEventContext) -> u32 {
    sampler::on_sample(ctx, false)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
